"""The states of a live vector index, apart from the index itself (which loads numba)."""

from __future__ import annotations

import enum


class IndexState(str, enum.Enum):
    """Where a :class:`LiveIndex` stands (a ``str``: ``shoebox status --json`` shows the value)."""

    CLOSED = "closed"  # not opened yet
    SMALL = "small"  # no graph: a small space's vectors in a matrix, searched exactly (or no vectors)
    BUILDING = "building"  # a graph is being built in the background; searches are exact meanwhile
    READY = "ready"  # the graph is searched
    FAILED = "failed"  # no usable graph (``error`` says why); searches are exact
