"""Browsing the library with no query: photos by month, documents and recordings by date, a page at a time.

:class:`LibraryBrowser` asks the controller for one page of each section
(200 files, newest first) when the window starts browsing and then whenever a
list is scrolled to its end, so a library of any size is never read whole.
Each page continues where the previous one ended (the engine's keyset, not
an offset), and only the answers to the current browse are delivered: a
page asked for before the filters changed is dropped.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.query import Filters

from .controller import AppController

PAGE_SIZE = 200
# The most a request asks for while a jump to a far month loads what comes before it: the
# jump then proceeds a request at a time, and the window stays responsive between them.
JUMP_PAGE = 2000
# The kinds of files each section shows (as the search results split them).
SECTION_KINDS = {"photos": ("image",), "passages": ("document", "audio", "video")}


def section_filters(filters: Filters, section: str) -> Filters | None:
    """``filters`` narrowed to one section's kinds; None when the section can have nothing."""
    kinds = SECTION_KINDS[section]
    if filters.kinds:
        kinds = tuple(k for k in kinds if k in filters.kinds)
        if not kinds:
            return None
    return Filters(
        kinds=kinds,
        tags=filters.tags,
        tags_mode=filters.tags_mode,
        after=filters.after,
        before=filters.before,
        folder=filters.folder,
    )


class LibraryBrowser(QObject):
    """Pages of the library in time order for each section, asked for one at a time."""

    page_ready = Signal(str, object, bool)  # section, SearchResults (newest first), whether more follow
    months_ready = Signal(list)  # (year, month, photos) newest first
    failed = Signal(str)

    def __init__(
        self,
        controller: AppController,
        page_size: int = PAGE_SIZE,
        parent: QObject | None = None,
        *,
        jump_page: int = JUMP_PAGE,
    ):
        super().__init__(parent)
        self.controller = controller
        self.page_size = page_size
        self.jump_page = max(page_size, jump_page)
        self._generation = 0
        self._filters: dict[str, Filters | None] = {}
        self._next: dict[str, Any] = {}
        self._done: set[str] = set()
        self._busy: set[str] = set()
        self.loaded: dict[str, int] = {}

    def start(self, filters: Filters) -> tuple[bool, bool]:
        """Browse anew within ``filters``: the first page of each section is asked for.

        Returns whether the photos and the documents can have anything at all (by kind).
        """
        self._generation += 1
        self._filters = {section: section_filters(filters, section) for section in SECTION_KINDS}
        self._next = dict.fromkeys(SECTION_KINDS)
        self._done = {section for section, f in self._filters.items() if f is None}
        self._busy = set()
        self.loaded = dict.fromkeys(SECTION_KINDS, 0)
        for section in SECTION_KINDS:
            self.fetch(section)
        photos = self._filters["photos"]
        if photos is not None:
            generation = self._generation
            self.controller.browse_months(
                photos,
                lambda months: self._deliver(generation, self.months_ready.emit, months),
                lambda message: self._deliver(generation, self.failed.emit, message),
            )
        return self._filters["photos"] is not None, self._filters["passages"] is not None

    def stop(self) -> None:
        """Pages still on their way are no longer wanted."""
        self._generation += 1
        self._busy = set()

    def finished(self, section: str) -> bool:
        """Whether every page of ``section`` has arrived."""
        return section in self._done

    def fetch(self, section: str, at_least: int = 0) -> bool:
        """Ask for the next page of ``section``, larger when ``at_least`` files are wanted loaded.

        A page holds at most :attr:`jump_page` files: ``at_least`` far beyond what is
        loaded takes several requests, each asked for when the last has arrived (the
        one waiting for them asks again).  False when the section is complete, or a
        page is already on its way.
        """
        filters = self._filters.get(section)
        if filters is None or section in self._done or section in self._busy:
            return False
        limit = max(self.page_size, min(self.jump_page, at_least - self.loaded[section]))
        self._busy.add(section)
        generation = self._generation
        self.controller.browse(
            filters,
            self._next[section],
            limit,
            lambda page: self._deliver(generation, self._arrived, section, page),
            lambda message: self._deliver(generation, self._fetch_failed, section, message),
        )
        return True

    def _deliver(self, generation: int, fn: Any, *args: Any) -> None:
        if generation == self._generation:
            fn(*args)

    def _arrived(self, section: str, page: Any) -> None:
        self._busy.discard(section)
        self._next[section] = page.next
        if page.next is None:
            self._done.add(section)
        self.loaded[section] += len(page.results)
        self.page_ready.emit(section, page.results, page.next is not None)

    def _fetch_failed(self, section: str, message: str) -> None:
        self._busy.discard(section)
        self._done.add(section)
        self.failed.emit(message)
