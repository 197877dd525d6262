"""The app's one connection to the engine: every engine call runs here, off the GUI thread.

Widgets call the controller's methods and listen to its signals; they never
hold the :class:`~engine.library.Library` or its store, and never call a slow
engine function themselves (``tests/unit/test_architecture.py`` checks which
engine names a widget may import).  Work runs through
:func:`desktop_app.tasks.run_task` (searches, asks, tags, counts, thumbnails)
or the pool for long jobs with progress (indexing, re-embedding), and every
result arrives on the GUI thread, as a signal or a callback the widget passed.

Searches and questions carry a request number; a widget shows only the answer
to its latest request, so a slow old query never overwrites a newer one.

While the library is open its folders are watched (unless the settings say
not to): what changes in them is brought up to date as a quiet background job,
one batch at a time, behind any job that runs, and reported in the status bar.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QDeadlineTimer, QObject, QThreadPool, Signal

from engine.errors import Cancelled, ModelMismatchError, ModelUnavailableError, ShoeboxError
from engine.library import Library
from engine.query import Filters, Query
from engine.settings import Settings, load_settings, save_settings
from engine.store import SPACES
from engine.stores import check_location, describe_location, probe_store, split_password, with_password
from engine.watch import FolderWatcher

from .tasks import run_task, wait_for_all

log = logging.getLogger(__name__)
T = TypeVar("T")
OnError = Callable[[str], None]

NOT_OPEN = "The library is still opening."


class Job(enum.Enum):
    """The long job the controller runs (one at a time): none, indexing, re-embedding, or
    bringing up to date what changed in the watched folders (quiet: no progress is shown)."""

    NONE = "none"
    INDEX = "index"
    REEMBED = "reembed"
    WATCH = "watch"


def describe_error(exc: BaseException) -> str:
    """A sentence for a person; engine errors already are one (in their window wording)."""
    if isinstance(exc, ShoeboxError):
        return window_text(exc.for_window)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return f"Something went wrong ({type(exc).__name__}: {exc})"


# Advice meant for a command line: an option, a backquoted command, a shoebox command, an
# environment variable's name.  A window has none of these to offer.
_COMMAND_ADVICE = re.compile(r"(?<![\w-])--[a-z]|`|\bshoebox (models|index|search|ask)\b|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z(])")


MODEL_NOT_SET_UP = "A model Shoebox needs for this is not set up: choose File ▸ Set up models…"

# Where the window sets what an environment variable named in an engine message sets.
SETTING_WORDS = {
    "llm_url": "the server address in File ▸ Settings",
    "llm_model": "the model name in File ▸ Settings",
    "clip_model": "the CLIP model in File ▸ Settings",
    "clip_weights": "the CLIP weights file in File ▸ Settings",
    "clip_pretrained": "the CLIP model in File ▸ Set up models…",
    "whisper_model": "the Whisper model in File ▸ Settings",
    "whisper_weights": "the Whisper weights file in File ▸ Settings",
    "text_model": "the text model in File ▸ Settings",
    "watch_folders": "watching in File ▸ Settings",
    "store": "where the library is kept, in File ▸ Library storage…",
}
_ENV_NAME = re.compile(r"\b(SHOEBOX_[A-Z0-9_]+)\b(?!=)")


def _setting_words(match: re.Match[str]) -> str:
    env = {f.metadata.get("env"): f.name for f in fields(Settings)}
    key = env.get(match.group(1))
    return SETTING_WORDS.get(key, match.group(1)) if key else match.group(1)


def window_text(text: str, fallback: str = MODEL_NOT_SET_UP) -> str:
    """``text`` without the sentences that give command-line advice (options, commands, environment variables).

    Engine errors carry window wording of their own where they have such advice
    (``ShoeboxError.plain``); this keeps any other engine text (a search's warnings,
    a file's failure reason) free of it too.  An environment variable for a setting
    the window has becomes the window's name for it ("the server address in File ▸
    Settings").  When every sentence is advice,
    ``fallback`` is returned (by default, that a model is not set up).
    """
    if not _COMMAND_ADVICE.search(text):
        return text
    # A setting the window has is named as the window names it; what is left of advice goes.
    text = _ENV_NAME.sub(_setting_words, text)
    kept = [s for s in _SENTENCE_END.split(text.strip()) if not _COMMAND_ADVICE.search(s)]
    if not kept:
        return fallback
    joined = " ".join(kept).rstrip(";")
    joined = joined[0].upper() + joined[1:]
    return joined if joined.endswith((".", "!", "?")) else joined + "."


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


def describe_update(summary: Any, folders: Sequence[str]) -> str:
    """One quiet line for what a watched batch changed: "Updated 3 files in Pictures"."""
    changed = summary.added + summary.updated + summary.moved + summary.removed
    if len(folders) == 1:
        where = f" in {Path(folders[0]).name or folders[0]}"
    else:
        where = f" in {len(folders)} folders" if folders else ""
    text = f"Updated {changed} file{'' if changed == 1 else 's'}{where}"
    if summary.failed:
        text += f" ({len(summary.failed)} could not be read)"
    return text


def _changed(summary: Any) -> bool:
    return bool(summary.added or summary.updated or summary.moved or summary.removed or summary.failed)


def model_name(space: str, identity: dict) -> str:
    """A model as a person reads it: "CLIP ViT-B-32 (openai)", "the text model multilingual-e5-small"."""
    name = str(identity.get("name") or "?")
    if space == "clip":
        weights = identity.get("weights")
        return f"CLIP {name} ({weights})" if weights else f"CLIP {name}"
    if name.startswith(("/", "~", ".")) or (os.sep != "/" and os.sep in name):
        name = Path(name).name  # a folder on this computer: its own name says enough
    return f"the text model {name}"


def recorded_settings(settings: Settings, changes: Sequence[Any]) -> dict[str, Any]:
    """The settings changes that name again the models that built the library (for ``save_settings``).

    ``changes`` are :class:`engine.library.ModelChange` values.  A CLIP model is
    its architecture and its weights tag; an explicit weights file is dropped
    when the weights differ, since it would win over the tag.  A text model is
    named by what was recorded (a name or a folder).
    """
    values: dict[str, Any] = {}
    for change in changes:
        recorded, configured = change.recorded, change.configured
        if change.space == "clip":
            values["clip_model"] = recorded["name"]
            if recorded.get("weights") != configured.get("weights"):
                values["clip_pretrained"] = recorded["weights"]
                values["clip_weights"] = ""
        elif change.space == "text":
            values["text_model"] = recorded["name"]
    return {key: value for key, value in values.items() if getattr(settings, key) != value}


def overriding_environment(keys: Sequence[str]) -> list[str]:
    """The environment variables set now that override the settings ``keys`` (saving them changes nothing)."""
    env = {f.name: f.metadata["env"] for f in fields(Settings)}
    return [env[key] for key in keys if key in env and os.environ.get(env[key])]


class _ModelsDiffer(Exception):
    """A search refused by a model mismatch, with the changes found on the same worker."""

    def __init__(self, error: ModelMismatchError, changes: list[Any]):
        super().__init__(str(error))
        self.error = error
        self.changes = changes


def _model_changes_of(library: Library) -> list[Any]:
    """``library.model_changes()`` (worker side); an empty list when it cannot be told."""
    try:
        return list(library.model_changes())
    except Exception as exc:  # the search or the indexing reports a real mismatch by itself
        log.warning("could not compare the library's models with the settings: %s", exc)
        return []


def _on_disk_now(row: dict) -> dict:
    """A failure row with ``present`` and ``changed``: the file as it is now against when it failed."""
    try:
        st = os.stat(row["path"])
    except OSError:
        return {**row, "present": False, "changed": False}
    return {**row, "present": True, "changed": (st.st_size, st.st_mtime) != (row["size"], row["mtime"])}


def _saved_thumbnails(library: Library, wanted: dict[Any, str], read: Callable[[str, Path | None], T]) -> dict[Any, T]:
    from engine.ingest import thumbnail_path

    store, folder = library.store, library.settings.thumbnails_dir
    out = {}
    for key, path in wanted.items():
        row = store.get_file(path)
        saved = thumbnail_path(folder, row.content_hash) if row is not None and row.content_hash else None
        out[key] = read(path, saved if saved is not None and saved.is_file() else None)
    return out


class AppController(QObject):
    """Owns the :class:`Library`; runs its work in the background; reports by signals."""

    library_opened = Signal()  # the library is open: counts, folders and searches can be asked for
    library_failed = Signal(str)
    library_switched = Signal()  # another store replaced the library (library_opened follows): forget what was shown
    status = Signal(str)  # one line for the status bar
    models_ready = Signal()  # CLIP weights loaded: meaning search works
    models_missing = Signal(str)  # why; keyword search still works
    search_done = Signal(int, object)  # request number, engine.search.SearchResponse
    search_failed = Signal(int, str)
    search_needs_model_choice = Signal(int)  # request number: refused while the models differ (see model_changes)
    index_started = Signal(list)  # the paths
    index_progress = Signal(int, int, str, object)  # done, total, message, seconds left (float or None)
    index_finished = Signal(object)  # engine.ingest.IndexSummary (cancelled=True when stopped)
    index_failed = Signal(str)
    model_changes_found = Signal(list)  # engine.library.ModelChange values (empty: the models agree)
    reembed_started = Signal(str)  # what is re-embedded with what: "the photos with CLIP ViT-B-16 (…)"
    reembed_progress = Signal(int, int, str, object)  # done, total, message, seconds left (float or None)
    reembed_finished = Signal(object)  # engine.ingest.IndexSummary (cancelled=True when stopped)
    reembed_failed = Signal(str)
    ask_token = Signal(int, str)  # request number, a piece of the answer as it streams
    ask_done = Signal(int, object)  # request number, engine.answer.Answer
    ask_failed = Signal(int, str)
    tags_changed = Signal()
    library_changed = Signal()  # files were indexed or tags changed: counts and filters may differ
    folders_updated = Signal(object)  # engine.ingest.IndexSummary of changes found in the watched folders
    _changes_seen = Signal(list)  # the watcher's batch of paths, from its thread
    _watch_warning = Signal(str)  # the watcher cannot watch a folder (from its thread)

    def __init__(self, settings: Settings | None = None, library: Library | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.library: Library | None = library
        self._request = 0
        self._ask_request = 0
        self._ask_cancel = threading.Event()
        self._job_cancel = threading.Event()
        self._job = Job.NONE
        self._queue: list[tuple[list[str] | None, bool]] = []
        self._reembed_waiting: tuple[str | None] | None = None  # (space,) to re-embed when indexing ends
        self._model_changes: list[Any] = []
        self._model_check = 0
        self.models_loaded = False
        self._models_loading = 0  # the number of the load under way (0: none)
        self._loads = 0
        self._watcher: FolderWatcher | None = None
        self._watch_pending: set[str] = set()  # changed paths waiting for the running job to end
        self._watch_check = 0
        self._closing = False
        # Moving to another store: the new library, opened, waits here for the running job to end.
        self._switching = False
        self._switch_ready: tuple[Library, Callable[[Settings], None]] | None = None
        self._changes_seen.connect(self._on_changes_seen)
        self._watch_warning.connect(self.status.emit)
        self.library_changed.connect(self._update_watching)  # folders may have been added or forgotten

    @property
    def is_open(self) -> bool:
        return self.library is not None

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
        # The models start loading before anyone hears the library is open: a search
        # typed while it opened runs then, and must see them loading (answering from
        # words and names at once) rather than wait for them inside the search.
        self.load_models()
        self.library_opened.emit()
        self.check_models()
        self._update_watching()

    def load_models(self) -> None:
        """Load CLIP (and open the vector index) in the background; report with a signal."""
        library = self.library
        if library is None:
            return
        self._loads += 1
        self._models_loading = number = self._loads
        self.status.emit("Loading the models… (keyword search works meanwhile)")

        def load() -> None:
            missing: list[ModelUnavailableError] = []
            library.warm_up()
            # The saved indexes first: mapping them takes a moment, and searches by
            # words and names need their catalogs only, not the models.
            for space in SPACES:
                library.vector_index(space)  # loads, or starts building, the HNSW indexes
            try:
                library.clip.load()
                # The tokenizers take ~0.3 s of GIL-holding work to build; done here
                # rather than inside the first search or document, where it stalled
                # the GUI thread.
                library.clip.count_tokens("warm up")
            except ModelUnavailableError as exc:
                missing.append(exc)
            try:
                library.text_model.load()
                library.text_model.count_tokens("warm up")
                library.calibration("text")  # a model without a shipped calibration is measured once
            except ModelUnavailableError as exc:
                missing.append(exc)
            if missing:
                raise ModelUnavailableError(
                    " ".join(str(e) for e in missing), plain=" ".join(e.for_window for e in missing)
                )

        def done_loading() -> None:
            if self._models_loading == number:  # a later load (new settings) may still be under way
                self._models_loading = 0

        def loaded(_: Any) -> None:
            done_loading()
            if library is not self.library:
                return  # the library was replaced by another store's meanwhile; its own load reports
            self.models_loaded = True
            if number == self._loads:  # a later load (new settings) says when it is done
                self.status.emit("Ready")
            self.models_ready.emit()
            self.finish_waiting()

        def failed(exc: BaseException) -> None:
            done_loading()
            if library is not self.library:
                return
            self.models_loaded = False
            message = describe_error(exc)
            if number == self._loads:
                self.status.emit("Some of the models are not here: what they find is found by its words meanwhile")
            if isinstance(exc, ModelUnavailableError):
                self.models_missing.emit(message)
                self.finish_waiting()  # some other model may be here now
            else:
                self.library_failed.emit(message)

        run_task(load, loaded, failed, long=True)

    @property
    def models_loading(self) -> bool:
        """Whether the models are loading in the background now (searches then do not wait for them)."""
        return bool(self._models_loading)

    def apply_settings(self, settings: Settings) -> None:
        """Use settings saved by a dialog now: models that changed load again in the background.

        A model that differs from the one that built the library is reported by
        ``model_changes_found`` (the window then offers to re-embed).
        """
        self.settings = settings
        if self.library is not None:
            self.library.reconfigure(settings)
            self.load_models()
            self.check_models()
            self._update_watching()

    # -- where the library is kept -------------------------------------------------------

    @property
    def switching(self) -> bool:
        """Whether the library is moving to another store now (see :meth:`switch_store`)."""
        return self._switching

    @staticmethod
    def probe_store(settings: Settings) -> dict[str, Any]:
        """What is at the store ``settings`` name, changing nothing there (``engine.stores.probe_store``).

        Slow (up to 10 seconds for a server that does not answer): call it on a worker.
        """
        return probe_store(settings)

    def switch_store(self, changes: dict[str, Any], on_done: Callable[[Settings], None], on_error: OnError) -> None:
        """Keep the library where ``changes`` (``store`` and the ``pg_*`` settings) say from now on.

        The library there is opened first, in the background, while the current one
        goes on answering; only once it opens are ``changes`` written to
        ``settings.json``, so a server that does not answer leaves everything as it
        was, and ``on_error(message)`` says why.  Then watching stops, the running job
        is stopped (after its current batch; what it did is kept) and waited for, the
        old library closes and the new one takes its place: ``library_switched``,
        ``library_opened``, then ``on_done(saved settings)``.  Indexing asked for
        meanwhile runs on the new library.  The models stay on this computer, loaded
        as they are.
        """
        old, current = self.library, self.settings
        if old is None or current is None or self._switching:
            on_error(NOT_OPEN if old is None else "The library is already moving; wait a moment.")
            return
        settings = replace(current, **changes)
        self._switching = True
        self.status.emit(f"Opening the library at {describe_location(settings)}…")

        def work() -> Library:
            new = Library(
                settings,
                clip=old.clip,  # the same model settings: weights already loaded stay loaded
                text_model=old.text_model,
                whisper=old.whisper,
                index_build="background",
            )
            try:
                save_settings(current, **changes)
            except BaseException:
                new.close()
                raise
            return new

        def opened(new: Library) -> None:
            if self._closing:
                new.close()
                return
            self._switch_ready = (new, on_done)
            self._stop_watching()
            self.cancel_ask()
            self._reembed_waiting = None  # the new library's models are compared afresh
            if self._job is Job.NONE:
                self._finish_switch()
            else:
                self._job_cancel.set()  # _next_job finishes the switch once the job has stopped

        def failed(exc: BaseException) -> None:
            self._switching = False
            self.status.emit("The library stays where it was")
            on_error(describe_error(exc))
            if self._job is Job.NONE:
                self._next_job()  # what waited for the move runs on the library it stays in

        run_task(work, opened, failed, long=True)

    def _finish_switch(self) -> None:
        assert self._switch_ready is not None
        (new, on_done), self._switch_ready = self._switch_ready, None
        old = self.library
        self._switching = False
        self._job_cancel = threading.Event()  # the stopped job's cancel is not meant for what was queued
        self._model_changes = []
        self.models_loaded = False
        self.library = None
        self.library_switched.emit()
        self._opened(new)
        if old is not None:
            # Searches and reads already sent to the old library finish first (they hold it);
            # then it saves its vector indexes and closes, off the GUI thread.
            run_task(lambda: _close_after_reads(old), long=True)
        on_done(new.settings)
        self._next_job()

    # -- the library's models ----------------------------------------------------

    def check_models(self) -> None:
        """Compare the configured models with those that built the library (in the background).

        Answered by ``model_changes_found`` with the differences (an empty list when they agree).
        """
        library = self.library
        if library is None:
            return
        self._model_check += 1
        check = self._model_check

        def found(changes: list[Any]) -> None:
            if check == self._model_check:  # an older check would report settings since replaced
                self._found_changes(changes)

        run_task(lambda: _model_changes_of(library), found)

    def _found_changes(self, changes: list[Any]) -> None:
        self._model_changes = list(changes)
        self.model_changes_found.emit(list(changes))

    def model_changes(self) -> list[Any]:
        """The models that differ from those that built the library, as last found (ModelChange values)."""
        return list(self._model_changes)

    def restore_recorded_models(self) -> Settings:
        """Name again, in the settings, the models that built the library; returns the saved settings.

        Raises ``OSError`` or ``ValueError`` when the settings cannot be written.
        """
        settings = self.settings
        if settings is None:
            raise ShoeboxError(NOT_OPEN)
        values = recorded_settings(settings, self._model_changes)
        new = save_settings(settings, **values) if values else settings
        self.apply_settings(new)
        return new

    # -- searching ------------------------------------------------------------

    def search(self, query: Query) -> int:
        """Start a search; returns its request number (answered by search_done/search_failed).

        Everything comes back (``min_relevance`` 0): the results view hides what
        is below its relevance slider.  While the configured models differ from
        those that built the library (and no re-embed runs) the engine refuses
        to search: ``model_changes_found`` then reports the differences and
        ``search_needs_model_choice`` the request.  While the models load, a
        search does not wait for them: it answers from words and names, and
        its response's ``meaning_pending`` says to search again once
        ``models_ready`` is emitted.
        """
        self._request += 1
        request = self._request
        library = self.library
        if library is None:
            self.search_failed.emit(request, NOT_OPEN)
            return request
        query = query.replace(min_relevance=0.0, wait_for_models=not self.models_loading)

        def work() -> Any:
            try:
                return library.search(query)
            except ModelMismatchError as exc:
                raise _ModelsDiffer(exc, _model_changes_of(library)) from exc

        def failed(exc: BaseException) -> None:
            if isinstance(exc, _ModelsDiffer) and exc.changes:
                self._found_changes(exc.changes)
                self.search_needs_model_choice.emit(request)
            else:
                self.search_failed.emit(request, describe_error(exc))

        run_task(work, lambda response: self.search_done.emit(request, response), failed)
        return request

    @property
    def latest_request(self) -> int:
        return self._request

    def find_result(self, path: str, locator: dict | None, on_done: Any, on_error: Any) -> None:
        """Look up the result for a cited passage (off the GUI thread); calls back on it."""
        self._read(lambda library: library.result_at(path, locator), on_done, on_error)

    # -- reading for the widgets ------------------------------------------------------

    def _read(self, fn: Callable[[Library], T], on_done: Callable[[T], None], on_error: OnError) -> None:
        """Run ``fn(library)`` on the pool; ``on_done(result)`` or ``on_error(message)`` on the GUI thread."""
        library = self.library
        if library is None:
            on_error(NOT_OPEN)
            return
        run_task(lambda: fn(library), on_done, lambda exc: on_error(describe_error(exc)))

    def library_info(self, on_done: Callable[[dict, list], None], on_error: OnError) -> None:
        """The library's counts (``LibraryStore.stats()`` and ``ocr``: whether text in pictures is
        recognised) and its tags (name, source, count rows)."""

        def read(library: Library) -> tuple[dict, list]:
            stats = library.store.stats()
            stats["ocr"] = library.ocr_status()
            return stats, library.store.tags()

        self._read(read, lambda info: on_done(*info), on_error)

    def failures(self, on_done: Callable[[list[dict]], None], on_error: OnError) -> None:
        """Every file recorded as failed, as it is on disk now (``LibraryStore.failures`` rows).

        Each row also says whether the file is still ``present`` and whether it
        ``changed`` (size or time) since it failed.  The files are looked at on the pool.
        """
        self._read(lambda library: [_on_disk_now(row) for row in library.store.failures()], on_done, on_error)

    def folders(self, on_done: Callable[[list[tuple[str, bool]]], None], on_error: OnError) -> None:
        """The library's folders, each with whether it is on this computer now."""
        self._read(lambda library: [(root, os.path.isdir(root)) for root in library.store.roots()], on_done, on_error)

    def forget_folder(self, folder: str, on_done: Callable[[int], None], on_error: OnError) -> None:
        """Forget a folder and what was found in it (the files stay on disk); ``on_done(files forgotten)``."""

        def done(count: int) -> None:
            on_done(count)
            self.library_changed.emit()

        self._read(lambda library: library.forget_folder(folder), done, on_error)

    def browse(
        self, filters: Filters, after: Any, limit: int, on_done: Callable[[Any], None], on_error: OnError
    ) -> None:
        """A page of the library in time order (:meth:`engine.library.Library.browse`), read on the pool.

        ``after`` is the previous page's ``next`` (None for the first page).
        """
        self._read(lambda library: library.browse(filters, after, limit), on_done, on_error)

    def browse_months(
        self, filters: Filters, on_done: Callable[[list[tuple[int, int, int]]], None], on_error: OnError
    ) -> None:
        """(year, month, files) of every month with files passing ``filters``, newest first, read on the pool."""
        self._read(lambda library: library.browse_months(filters), on_done, on_error)

    def item_details(self, item_id: int, on_done: Callable[[dict], None], on_error: OnError) -> None:
        """An item's whole text and its file's metadata (``LibraryStore.item_details``); for a passage
        of a document, also ``context``: the text around it on its page (``LibraryStore.passage_context``)."""

        def read(library: Any) -> dict:
            details = library.store.item_details([item_id]).get(item_id, {})
            if details and details.get("modality") == "text":
                details["context"] = library.store.passage_context(item_id)
            return details

        self._read(read, on_done, on_error)

    def load_thumbnails(
        self,
        wanted: dict[Any, str],
        read: Callable[[str, Path | None], T],
        on_done: Callable[[dict[Any, T]], None],
        on_error: OnError,
    ) -> None:
        """Thumbnails of files (key -> path), read on the pool by ``read(path, saved)``.

        ``saved`` is the JPEG saved at index time (None when there is none);
        ``read`` runs on a worker thread, so it must not touch a widget (a
        QImage is fine).  ``on_done`` gets key -> what ``read`` returned.
        """
        self._read(lambda library: _saved_thumbnails(library, dict(wanted), read), on_done, on_error)

    # -- asking ---------------------------------------------------------------

    def ask(self, question: str, *, filters: Filters | None = None) -> int:
        """Start answering ``question``; tokens stream by ask_token, the end is ask_done/ask_failed."""
        self.cancel_ask()
        self._ask_cancel = cancel = threading.Event()
        self._ask_request += 1
        request = self._ask_request
        library = self.library
        if library is None:
            self.ask_failed.emit(request, NOT_OPEN)
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
    def job(self) -> Job:
        """The long job running now."""
        return self._job

    @property
    def indexing(self) -> bool:
        return self._job is Job.INDEX

    @property
    def reembedding(self) -> bool:
        return self._job is Job.REEMBED

    def rescan(self) -> None:
        """Bring every folder of the library up to date in the background (File ▸ Rescan).

        Reported like indexing; ``index_started`` carries no paths.
        """
        self._index_job([], retry_failed=False)

    def finish_waiting(self) -> None:
        """Finish, in the background, files indexed before a model was here, now that it is.

        Reported like indexing (``index_started`` with no paths); does nothing
        when no file waits for a model that is here.
        """

        if self.library is None:
            return

        def found(waiting: bool) -> None:
            if waiting:
                self._index_job(None, retry_failed=False)

        def failed(message: str) -> None:
            log.warning("could not look for files that wait for a model: %s", message)

        self._read(lambda library: library.has_waiting(), found, failed)

    def index(self, paths: Sequence[str | Path], *, retry_failed: bool = False) -> None:
        """Index files and folders in the background (queued behind a running job)."""
        targets = [str(p) for p in paths]
        if targets:
            self._index_job(targets, retry_failed=retry_failed)

    def _index_job(self, targets: list[str] | None, *, retry_failed: bool) -> None:
        """Index ``targets`` (every folder of the library when empty; None: finish the files that
        waited for a model), or queue it behind the running job."""
        if self._job is not Job.NONE or self._switching:
            if targets is None and (None, False) in self._queue:
                return
            self._queue.append((targets, retry_failed))
            if targets is not None:
                self.status.emit(f"Queued {len(targets)} item(s) for indexing" if targets else "Rescan queued")
            return
        library = self.library
        if library is None:
            self.index_failed.emit(NOT_OPEN)
            return
        self._job = Job.INDEX
        self._job_cancel = cancel = threading.Event()
        eta = EtaEstimator()
        self.index_started.emit(targets or [])

        def progress(done: int, total: int, message: str) -> None:
            self.index_progress.emit(done, total, message, eta.update(done, total))

        def work() -> Any:
            if targets is None:
                return library.finish_waiting(on_progress=progress, should_cancel=cancel.is_set)
            if not targets:
                return library.rescan(on_progress=progress, should_cancel=cancel.is_set, retry_failed=retry_failed)
            return library.index(targets, on_progress=progress, should_cancel=cancel.is_set, retry_failed=retry_failed)

        def finished(summary: Any) -> None:
            self._job = Job.NONE
            self.index_finished.emit(summary)
            self.library_changed.emit()
            self._next_job()

        def failed(exc: BaseException) -> None:
            self._job = Job.NONE
            self.index_failed.emit(describe_error(exc))
            self.library_changed.emit()
            if isinstance(exc, ModelMismatchError):
                self.check_models()  # the window offers the choice
            self._next_job()

        run_task(work, finished, failed, long=True)

    def _next_job(self) -> None:
        if self._switch_ready is not None:
            self._finish_switch()  # the job stopped: the library moves now; what is queued runs on the new one
            return
        if self._switching:
            return  # the next job runs on the library that opens
        if self._reembed_waiting is not None and not self._job_cancel.is_set():
            (space,) = self._reembed_waiting
            self._reembed_waiting = None
            self.reembed(space)
            return
        self._reembed_waiting = None
        if self._queue and not self._job_cancel.is_set():
            paths, retry = self._queue.pop(0)
            self._index_job(paths, retry_failed=retry)
            return
        self._queue.clear()
        if self._watch_pending:
            self._watch_job()

    def is_queued(self, paths: Sequence[str]) -> bool:
        """Whether indexing ``paths`` waits behind the running job (and will start when it ends)."""
        return any(queued == list(paths) for queued, _ in self._queue)

    def cancel_indexing(self) -> None:
        """Stop after the current batch; what was indexed is kept."""
        self._queue.clear()
        self._reembed_waiting = None
        self._job_cancel.set()

    def retry_failed(self) -> None:
        """Index again the files that failed."""
        library = self.library
        if library is None:
            return
        paths = [f.path for f in library.store.failed_files()]
        if paths:
            self.index(paths, retry_failed=True)

    # -- watching the folders -------------------------------------------------------

    @property
    def watching(self) -> list[str]:
        """The folders watched for changes now (empty when watching is off or no folder is there)."""
        return self._watcher.watched() if self._watcher is not None else []

    def _update_watching(self) -> None:
        """Watch the library's folders as they are now, or stop when the settings say not to."""
        library = self.library
        if library is None or self._closing:
            return
        settings = self.settings or library.settings
        if not settings.watch_folders:
            self._stop_watching()
            return
        self._watch_check += 1
        check = self._watch_check

        def watch(roots: list[str]) -> None:
            if check != self._watch_check or self._closing or self.library is not library:
                return  # a newer look at the folders, or the app is closing
            if self._watcher is None:
                self._watcher = FolderWatcher(
                    self._changes_seen.emit,
                    roots,
                    ignore=[library.settings.home],
                    on_warning=self._watch_warning.emit,
                )
                self._watcher.start()
            else:
                self._watcher.set_roots(roots)

        def failed(exc: BaseException) -> None:
            log.warning("could not read the library's folders to watch them: %s", exc)

        run_task(library.store.roots, watch, failed)

    def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        self._watch_pending.clear()
        if watcher is not None:
            watcher.stop()

    def _on_changes_seen(self, paths: list[str]) -> None:
        if self._closing or self.library is None or self._watcher is None:
            return
        self._watch_pending.update(paths)
        if self._job is Job.NONE and not self._switching:
            self._watch_job()

    def _watch_job(self) -> None:
        """Bring the changed paths up to date in the background, quietly (one writer at a time)."""
        library = self.library
        paths = sorted(self._watch_pending)
        self._watch_pending.clear()
        if library is None or not paths or self._closing:
            return
        self._job = Job.WATCH
        self._job_cancel = cancel = threading.Event()

        def work() -> tuple[Any, list[str]]:
            summary = library.update_paths(paths, should_cancel=cancel.is_set)
            roots = library.store.roots()
            folders = {path if path in roots else library.store.root_of(path) for path in paths}
            return summary, sorted(f for f in folders if f is not None)

        def finished(result: tuple[Any, list[str]]) -> None:
            summary, folders = result
            self._job = Job.NONE
            if summary.cancelled and not self._closing:
                self._watch_pending.update(paths)  # stopped for another reason than quitting: done next
            if _changed(summary):
                self.status.emit(describe_update(summary, folders))
                self.folders_updated.emit(summary)
                self.library_changed.emit()
            self._next_job()

        def failed(exc: BaseException) -> None:
            self._job = Job.NONE
            self.status.emit(f"The changes in the library's folders could not be indexed: {describe_error(exc)}")
            if isinstance(exc, ModelMismatchError):
                self.check_models()
            self._next_job()

        run_task(work, finished, failed, long=True)

    # -- re-embedding -------------------------------------------------------------

    def reembed(self, space: str | None = None) -> None:
        """Encode the library again with the configured models, in the background.

        ``space``: ``"clip"`` (photos), ``"text"`` (passages), or None for every
        space whose model changed.  Reported by ``reembed_started`` /
        ``reembed_progress`` / ``reembed_finished`` / ``reembed_failed``.  The
        engine writes the new vectors beside the old ones: searches keep using
        the old model until the new vectors are complete; a cancelled or failed
        run keeps the old vectors and model.  Waits for a running indexing job.
        """
        if self._job is Job.REEMBED:
            return
        if self._job in (Job.INDEX, Job.WATCH) or self._switching:
            self._reembed_waiting = (space,)
            self.status.emit("Re-embedding starts when the indexing ends")
            return
        library = self.library
        if library is None:
            self.reembed_failed.emit(NOT_OPEN)
            return
        changes = [c for c in self._model_changes if space in (None, c.space)]
        if space is None and len({c.space for c in changes}) == 1:
            space = changes[0].space  # only that model changed: leave the other space alone
        self._job = Job.REEMBED
        self._job_cancel = cancel = threading.Event()
        eta = EtaEstimator()
        self.reembed_started.emit(self._reembed_title(space, changes))

        def progress(done: int, total: int, message: str) -> None:
            self.reembed_progress.emit(done, total, message, eta.update(done, total))

        def work() -> Any:
            return library.reembed(space=space, on_progress=progress, should_cancel=cancel.is_set)

        def finished(summary: Any) -> None:
            self._job = Job.NONE
            self.reembed_finished.emit(summary)
            self.library_changed.emit()
            self.check_models()
            self._next_job()

        def failed(exc: BaseException) -> None:
            self._job = Job.NONE
            self.reembed_failed.emit(describe_error(exc))
            self.library_changed.emit()
            self.check_models()
            self._next_job()

        run_task(work, finished, failed, long=True)

    @staticmethod
    def _reembed_title(space: str | None, changes: Sequence[Any]) -> str:
        what = {"clip": "the photos", "text": "the documents and recordings"}
        parts = [f"{what.get(c.space, c.space)} with {model_name(c.space, c.configured)}" for c in changes]
        if parts:
            return " and ".join(parts)
        return f"{what[space]} with the configured model" if space in what else "the library with the configured models"

    def cancel_reembed(self) -> None:
        """Stop re-embedding after the current batch; the library keeps its old vectors and model."""
        if self._job is Job.REEMBED:
            self._job_cancel.set()
        self._reembed_waiting = None

    # -- tags -------------------------------------------------------------------

    def add_tag(self, tag: str, file_ids: Sequence[int], on_done: Callable[[], None] | None = None) -> None:
        """Tag the files (in the background); ``on_done()`` once the tag is stored, then ``tags_changed``."""
        self._tag_work(lambda lib: lib.store.add_tag(tag, list(file_ids)), on_done)

    def remove_tag(self, tag: str, file_ids: Sequence[int], on_done: Callable[[], None] | None = None) -> None:
        """Take a tag off the files (in the background); ``on_done()`` once it is, then ``tags_changed``."""
        self._tag_work(lambda lib: lib.store.remove_tag(tag, list(file_ids)), on_done)

    def _tag_work(self, fn: Any, on_done: Callable[[], None] | None) -> None:
        library = self.library
        if library is None:
            self.status.emit(NOT_OPEN)
            return

        def done(_: Any) -> None:
            if on_done is not None:
                on_done()
            self.tags_changed.emit()
            self.library_changed.emit()

        run_task(lambda: fn(library), done, lambda exc: self.status.emit(describe_error(exc)))

    def file_tags(
        self,
        file_ids: Sequence[int],
        on_done: Callable[[dict[int, tuple[list[str], list[str]]]], None],
        on_error: OnError,
    ) -> None:
        """The tags of files as stored now: ``{file_id: (every tag, the part Shoebox gave)}``."""
        ids = list(file_ids)

        def read(library: Library) -> dict[int, tuple[list[str], list[str]]]:
            tags = library.store.tags_of_files(ids)
            auto = library.store.tags_of_files(ids, source="auto")
            return {i: (tags.get(i, []), auto.get(i, [])) for i in ids}

        self._read(read, on_done, on_error)

    # -- models on this computer (no library needed; call these on a worker) ----------------------

    @staticmethod
    def list_models(settings: Settings) -> list[dict]:
        """Every model Shoebox can see (rows of ``engine.models.management.list_models``).  Slow: imports open_clip."""
        from engine.models import management

        return management.list_models(settings)

    @staticmethod
    def model_names(settings: Settings) -> tuple[list[str], list[str], list[str]]:
        """The CLIP, Whisper and text model names Shoebox knows, for the settings' lists."""
        from engine.models import clip_model_names, whisper_model_names
        from engine.models.weights import KNOWN_TEXT_MODELS

        return clip_model_names(), whisper_model_names(settings), sorted(KNOWN_TEXT_MODELS)

    @staticmethod
    def model_choices(settings: Settings) -> dict[str, list[tuple[str, str | None, str]]]:
        """For each kind (``"clip"``, ``"text"``, ``"whisper"``), the model names Shoebox knows.

        Each is ``(name, download, why_not)``: ``download`` is what to ask
        :meth:`download_model` for (None when nothing can be downloaded for it) and
        ``why_not`` says why not.  Slow: imports open_clip.
        """
        from engine.models import management

        choices: dict[str, list[tuple[str, str | None, str]]] = {}
        for kind in ("clip", "text", "whisper"):
            rows = []
            for name in management.known_model_names(settings, kind):
                download, why_not = management.download_choice(settings, kind, name)
                rows.append((name, download, why_not))
            choices[kind] = rows
        return choices

    @staticmethod
    def download_model(
        settings: Settings,
        kind: str,
        name: str | None,
        on_progress: Callable[[int, int, str], None],
        downloader: Any = None,
    ) -> tuple[Settings, list[str]]:
        """Download model ``name`` of ``kind`` (the person asked for it) and name it in the settings.

        ``name`` as :meth:`model_choices` gives it (None: the configured model);
        ``on_progress`` may raise Cancelled; ``downloader`` is an
        ``engine.models.management.Downloader`` (None: the models' publishers).
        Returns the saved settings and the environment variables that override what was saved.
        """
        from engine.models import management

        dest = management.download_model(
            settings, kind, name, force_allowed=True, on_progress=on_progress, downloader=downloader
        )
        return _name_in_settings(settings, dest)

    @staticmethod
    def import_model(
        settings: Settings, path: str, kind: str | None = None, name: str | None = None
    ) -> tuple[Settings, str, list[str]]:
        """Import a weights file or model folder as model ``name`` of ``kind`` and name it in the settings.

        ``kind`` and ``name`` are told from the file where None.  Returns the saved
        settings, the kind imported (``"clip"``, ``"text"``, ``"whisper"``) and the
        environment variables that override what was saved.
        """
        from engine.models import management

        dest = management.import_model(settings, path, kind, name)
        kind = dest.relative_to(settings.models_dir).parts[0]
        kind = kind if kind in ("clip", "text") else "whisper"
        settings, overridden = _name_in_settings(settings, dest)
        return settings, kind, overridden

    # -- closing ------------------------------------------------------------------

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Stop watching and background work, wait for it, save the index and close the library."""
        self._closing = True
        self._stop_watching()
        self.cancel_indexing()
        self.cancel_reembed()
        self.cancel_ask()
        wait_for_all(timeout_ms)
        if self._switch_ready is not None:  # a library opened elsewhere that had not yet taken over
            self._switch_ready[0].close()
            self._switch_ready = None
        if self.library is not None:
            self.library.close()
            self.library = None


def _close_after_reads(library: Library, timeout_ms: int = 30_000) -> None:
    """Close ``library`` once the short tasks running now (searches, reads) have finished (on the long-job pool)."""
    if not QThreadPool.globalInstance().waitForDone(QDeadlineTimer(timeout_ms)):
        log.warning("closing the previous library while a read still runs on it")
    library.close()


def store_address(settings: Settings) -> tuple[str, bool]:
    """Where ``settings`` keep the library, for an address field: the server address without
    its password ("" for the file on this computer), and whether a password is saved with it."""
    address, password = split_password(settings.store)
    return address, bool(password)


def library_location(settings: Settings) -> str:
    """Where ``settings`` keep the library, for people: the file's path, or the server without password."""
    return describe_location(settings)


def store_location(address: str, password: str, saved: Settings) -> str:
    """The libpq address to save for ``address`` typed in a window and ``password`` (empty: none typed).

    With no password typed, the password saved with the same address is kept, so a
    saved password need never be shown to be kept.
    """
    address = address.strip()
    if not password:
        saved_address, saved_password = split_password(saved.store)
        if saved_password and address == saved_address:
            password = saved_password
    return with_password(address, password) if address else ""


def store_address_problem(location: str) -> str:
    """Why ``location`` is not a PostgreSQL address, in a window's words ("" when it is one)."""
    if not location.strip():
        return "Enter the server's address, for example postgresql://me@nas.local/shoebox."
    try:
        check_location(location)
    except ShoeboxError as exc:
        if exc.plain:
            return exc.plain
        reason = str(exc).partition(": ")[2] or str(exc)
        return f"PostgreSQL cannot read this address: {reason}"
    return ""


def _name_in_settings(settings: Settings, dest: Path) -> tuple[Settings, list[str]]:
    """Save the settings that make the models load what is now at ``dest`` in the model cache."""
    changes = _settings_after_import(settings, dest)
    if changes:
        settings = save_settings(settings, **changes)
    return settings, overriding_environment(list(changes))


def _settings_after_import(settings: Settings, dest: Path) -> dict[str, Any]:
    """The settings that make the models load the file (or text model folder) just imported to ``dest``."""
    from engine.models.weights import text_name_from_cache_dir

    parts = dest.relative_to(settings.models_dir).parts
    changes: dict[str, Any] = {}
    if parts[0] == "text":
        name = text_name_from_cache_dir(parts[1])
        if name != settings.text_model:
            changes["text_model"] = name
    elif parts[0] == "clip":
        model, dirname = parts[1], parts[2]
        tag = "file:" + dirname[5:] if dirname.startswith("file-") else dirname
        if model != settings.clip_model:
            changes["clip_model"] = model
        if tag != settings.clip_pretrained:
            changes["clip_pretrained"] = tag
        if settings.clip_weights:
            changes["clip_weights"] = ""  # an explicit file would win over the cache
    else:
        name = dest.name.removesuffix(".pt")  # a .pt file, or a CTranslate2 folder ("tiny.en")
        if name != settings.whisper_model:
            changes["whisper_model"] = name
        if settings.whisper_weights:
            changes["whisper_weights"] = ""
    return changes
