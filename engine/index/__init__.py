"""Approximate nearest-neighbour index over the store's vectors.

``from engine.index import HnswIndex`` -- see :mod:`engine.index.hnsw`.  The graph's
kernels load numba, so the package imports them only when ``HnswIndex`` is asked for:
``engine.index.state`` stays light for the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hnsw import HnswIndex

__all__ = ["HnswIndex"]


def __getattr__(name: str) -> Any:
    if name == "HnswIndex":
        from .hnsw import HnswIndex

        return HnswIndex
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
