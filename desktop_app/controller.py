"""The app's one connection to the engine: every engine call runs here, off the GUI thread.

Widgets call the controller's methods and listen to its signals; they never
call a slow engine function themselves.  Work runs through
:func:`desktop_app.tasks.run_task` (searches, asks, tags) or a dedicated
thread-pool task with progress (indexing), and every result arrives as a
signal on the GUI thread.

Searches and questions carry a request number; a widget shows only the answer
to its latest request, so a slow old query never overwrites a newer one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.errors import Cancelled, ModelUnavailableError, ShoeboxError
from engine.library import Library
from engine.query import Filters, Query
from engine.settings import Settings, load_settings
from engine.store import SPACES

from .tasks import run_task, wait_for_all


def describe_error(exc: BaseException) -> str:
    """A sentence for a person; engine errors already are one."""
    if isinstance(exc, ShoeboxError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return f"Something went wrong ({type(exc).__name__}: {exc})"


class EtaEstimator:
    """Time left from the rate of the recent progress (seconds; None while unknown)."""

    def __init__(self, window: float = 20.0):
        self.window = window
        self._samples: list[tuple[float, int]] = []

    def update(self, done: int, total: int, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.pop(0)
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if total <= 0 or d1 <= d0 or t1 <= t0:
            return None
        return max(0.0, (total - done) * (t1 - t0) / (d1 - d0))


class AppController(QObject):
    """Owns the :class:`Library`; runs its work in the background; reports by signals."""

    library_opened = Signal(object)  # the Library
    library_failed = Signal(str)
    status = Signal(str)  # one line for the status bar
    models_ready = Signal()  # CLIP weights loaded: meaning search works
    models_missing = Signal(str)  # why; keyword search still works
    search_done = Signal(int, object)  # request number, engine.search.SearchResponse
    search_failed = Signal(int, str)
    index_started = Signal(list)  # the paths
    index_progress = Signal(int, int, str, object)  # done, total, message, seconds left (float or None)
    index_finished = Signal(object)  # engine.ingest.IndexSummary (cancelled=True when stopped)
    index_failed = Signal(str)
    ask_token = Signal(int, str)  # request number, a piece of the answer as it streams
    ask_done = Signal(int, object)  # request number, engine.answer.Answer
    ask_failed = Signal(int, str)
    tags_changed = Signal()
    library_changed = Signal()  # files were indexed or tags changed: counts and filters may differ

    def __init__(self, settings: Settings | None = None, library: Library | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.library: Library | None = library
        self._request = 0
        self._ask_request = 0
        self._ask_cancel = threading.Event()
        self._index_cancel = threading.Event()
        self._indexing = False
        self._queue: list[tuple[list[str], bool]] = []
        self.models_loaded = False

    # -- opening ------------------------------------------------------------

    def open(self) -> None:
        """Open the library (in the background unless one was given), then load the models."""
        if self.library is not None:
            self._opened(self.library)
            return
        self.status.emit("Opening the library…")
        run_task(self._open_library, self._opened, lambda exc: self.library_failed.emit(describe_error(exc)))

    def _open_library(self) -> Library:
        return Library(self.settings or load_settings(), index_build="background")

    def _opened(self, library: Library) -> None:
        self.library = library
        self.settings = library.settings
        library.index_build = "background"
        self.library_opened.emit(library)
        self.load_models()

    def load_models(self) -> None:
        """Load CLIP (and open the vector index) in the background; report with a signal."""
        library = self.library
        if library is None:
            return
        self.status.emit("Loading the models… (keyword search works meanwhile)")

        def load() -> None:
            missing: list[str] = []
            try:
                library.clip.load()
                # The tokenizers take ~0.3 s of GIL-holding work to build; done here
                # rather than inside the first search or document, where it stalled
                # the GUI thread.
                library.clip.count_tokens("warm up")
            except ModelUnavailableError as exc:
                missing.append(str(exc))
            try:
                library.text_model.load()
                library.text_model.count_tokens("warm up")
                library.calibration("text")  # a model without a shipped calibration is measured once
            except ModelUnavailableError as exc:
                missing.append(str(exc))
            for space in SPACES:
                library.vector_index(space)  # loads or starts building the HNSW indexes
            if missing:
                raise ModelUnavailableError(" ".join(missing))

        def loaded(_: Any) -> None:
            self.models_loaded = True
            self.status.emit("Ready")
            self.models_ready.emit()

        def failed(exc: BaseException) -> None:
            self.models_loaded = False
            message = describe_error(exc)
            self.status.emit("Some of the models are not here: what they find is found by its words meanwhile")
            if isinstance(exc, ModelUnavailableError):
                self.models_missing.emit(message)
            else:
                self.library_failed.emit(message)

        run_task(load, loaded, failed, long=True)

    def apply_settings(self, settings: Settings) -> None:
        """Use settings saved by a dialog now: models that changed load again in the background."""
        self.settings = settings
        if self.library is not None:
            self.library.reconfigure(settings)
            self.load_models()

    # -- searching ------------------------------------------------------------

    def search(self, query: Query) -> int:
        """Start a search; returns its request number (answered by search_done/search_failed).

        Everything comes back (``min_relevance`` 0): the results view hides what
        is below its relevance slider.
        """
        self._request += 1
        request = self._request
        library = self.library
        if library is None:
            self.search_failed.emit(request, "The library is still opening.")
            return request
        query = query.replace(min_relevance=0.0)
        run_task(
            lambda: library.search(query),
            lambda response: self.search_done.emit(request, response),
            lambda exc: self.search_failed.emit(request, describe_error(exc)),
        )
        return request

    @property
    def latest_request(self) -> int:
        return self._request

    def find_result(self, path: str, locator: dict | None, on_done: Any, on_error: Any) -> None:
        """Look up the result for a cited passage (off the GUI thread); calls back on it."""
        library = self.library
        if library is None:
            on_error("The library is still opening.")
            return
        run_task(lambda: library.result_at(path, locator), on_done, lambda exc: on_error(describe_error(exc)))

    # -- asking ---------------------------------------------------------------

    def ask(self, question: str, *, filters: Filters | None = None) -> int:
        """Start answering ``question``; tokens stream by ask_token, the end is ask_done/ask_failed."""
        self.cancel_ask()
        self._ask_cancel = cancel = threading.Event()
        self._ask_request += 1
        request = self._ask_request
        library = self.library
        if library is None:
            self.ask_failed.emit(request, "The library is still opening.")
            return request

        def work() -> Any:
            return library.ask(
                question,
                filters=filters,
                on_token=lambda t: self.ask_token.emit(request, t),
                should_cancel=cancel.is_set,
            )

        def failed(exc: BaseException) -> None:
            if isinstance(exc, Cancelled):
                return  # the person asked something else, or closed the panel
            self.ask_failed.emit(request, describe_error(exc))

        run_task(work, lambda answer: self.ask_done.emit(request, answer), failed)
        return request

    def cancel_ask(self) -> None:
        self._ask_cancel.set()

    # -- indexing -------------------------------------------------------------

    @property
    def indexing(self) -> bool:
        return self._indexing

    def index(self, paths: Sequence[str | Path], *, retry_failed: bool = False) -> None:
        """Index files and folders in the background (queued behind a running job)."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        if self._indexing:
            self._queue.append((paths, retry_failed))
            self.status.emit(f"Queued {len(paths)} item(s) for indexing")
            return
        library = self.library
        if library is None:
            self.index_failed.emit("The library is still opening.")
            return
        self._indexing = True
        self._index_cancel = cancel = threading.Event()
        eta = EtaEstimator()
        self.index_started.emit(paths)

        def progress(done: int, total: int, message: str) -> None:
            self.index_progress.emit(done, total, message, eta.update(done, total))

        def work() -> Any:
            return library.index(paths, on_progress=progress, should_cancel=cancel.is_set, retry_failed=retry_failed)

        def finished(summary: Any) -> None:
            self._indexing = False
            self.index_finished.emit(summary)
            self.library_changed.emit()
            self._next_job()

        def failed(exc: BaseException) -> None:
            self._indexing = False
            self.index_failed.emit(describe_error(exc))
            self.library_changed.emit()
            self._next_job()

        run_task(work, finished, failed, long=True)

    def _next_job(self) -> None:
        if self._queue and not self._index_cancel.is_set():
            paths, retry = self._queue.pop(0)
            self.index(paths, retry_failed=retry)
        else:
            self._queue.clear()

    def cancel_indexing(self) -> None:
        """Stop after the current batch; what was indexed is kept."""
        self._queue.clear()
        self._index_cancel.set()

    def retry_failed(self) -> None:
        """Index again the files that failed."""
        library = self.library
        if library is None:
            return
        paths = [f.path for f in library.store.failed_files()]
        if paths:
            self.index(paths, retry_failed=True)

    # -- tags -------------------------------------------------------------------

    def add_tag(self, tag: str, file_ids: Sequence[int]) -> None:
        self._tag_work(lambda lib: lib.store.add_tag(tag, list(file_ids)))

    def remove_tag(self, tag: str, file_ids: Sequence[int]) -> None:
        self._tag_work(lambda lib: lib.store.remove_tag(tag, list(file_ids)))

    def _tag_work(self, fn: Any) -> None:
        library = self.library
        if library is None:
            return

        def done(_: Any) -> None:
            self.tags_changed.emit()
            self.library_changed.emit()

        run_task(lambda: fn(library), done, lambda exc: self.status.emit(describe_error(exc)))

    # -- closing ------------------------------------------------------------------

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Stop background work, wait for it, save the index and close the library."""
        self.cancel_indexing()
        self.cancel_ask()
        wait_for_all(timeout_ms)
        if self.library is not None:
            self.library.close()
            self.library = None
