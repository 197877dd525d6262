"""What a search asks for: one value passed from the window or the CLI down to the engine.

A :class:`Query` carries every choice a person makes for one search (the words,
an example picture or file, the filters, how many results and how strict), so
each layer (``AppController.search``, :meth:`engine.library.Library.search`,
:func:`engine.search.search`) passes it on whole instead of repeating its fields.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TagsMode(str, enum.Enum):
    """How several tags in a filter combine."""

    ANY = "any"  # a file with at least one of them
    ALL = "all"  # a file with every one of them


@dataclass(frozen=True)
class Filters:
    """What a search may return.  Every field is optional; empty means no restriction."""

    kinds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    tags_mode: str = TagsMode.ANY  # TagsMode (or its value, "any" or "all")
    after: float | None = None  # media time, POSIX seconds, inclusive
    before: float | None = None  # exclusive
    folder: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.kinds or self.tags or self.folder or self.after is not None or self.before is not None)


@dataclass(frozen=True)
class Query:
    """One search.

    ``text``: the words typed (dates in them become a time filter when
    ``understand_dates``); ``image``: a picture file to search by; ``like``: an
    indexed file's path (or an item id) whose stored vector is the query;
    ``filters``: what may be returned; ``k``: how many files (or items, with
    ``per_file=False``); ``min_score``: drop results whose cosine similarity is
    below it; ``min_relevance``: drop results whose calibrated relevance is
    below it (None: the library's setting, 0: keep everything);
    ``wait_for_models``: False answers from the words and names at once when a
    text encoder's weights are not loaded yet (the response's
    ``meaning_pending`` says so) instead of loading them inside the search.
    """

    text: str = ""
    image: str | Path | None = None
    like: str | Path | int | None = None
    filters: Filters = field(default_factory=Filters)
    k: int = 20
    min_score: float | None = None
    min_relevance: float | None = None
    understand_dates: bool = True
    per_file: bool = True
    wait_for_models: bool = True

    def replace(self, **changes: Any) -> Query:
        """A copy with ``changes`` applied (a Query is never changed in place)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, query: Query | str | None = None, **fields: Any) -> Query:
        """``query`` as a Query: a Query (with ``fields`` replaced), or the text of a new one."""
        if isinstance(query, Query):
            return query.replace(**fields) if fields else query
        if fields.get("filters") is None:
            fields.pop("filters", None)
        return cls(text=query or "", **fields)
