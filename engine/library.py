"""A library: settings, the store and the models, wired together.

This is the one factory the CLI and the desktop app use.  Models are built
from the settings but load their weights only when first needed, so opening a
library, listing tags or a keyword search never waits for torch.

Three models serve a library: CLIP for photos (the ``clip`` vector space),
a sentence-embedding model for document and transcript passages (the ``text``
space) and Whisper for speech.  Each space has its own HNSW graph.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .calibration import CalibrationBook
from .errors import LibraryError, ModelMismatchError, ModelUnavailableError
from .index.state import IndexState
from .ingest import CancelCheck, Indexer, IndexSummary, ProgressCallback
from .query import Filters, Query
from .search import BrowsePage, SearchResponse, browse, is_loaded, search
from .settings import Settings, load_settings
from .store import SPACES, BrowseKey, LibraryStore, public_identity
from .stores import Store, open_store, served

if TYPE_CHECKING:
    from .models.clip import ClipEncoder
    from .models.text import TextEncoder

log = logging.getLogger(__name__)

# Below this many items no HNSW graph is kept: exact search is as fast and exact.
GRAPH_MIN_ITEMS = 5000
# Where each space's graph is saved, beside the database.
# Imported on first use (the command line starts fast without them); the app imports them at start-up.
_LAZY_MODULES = (
    "engine.index.live",
    "engine.dates",
    "engine.answer",
    "engine.llm",
    "engine.autotag",
    "engine.extractors.images",
    "engine.extractors.documents",
    "engine.extractors.chunking",
    "engine.extractors.audio",
)
INDEX_FILES = {"clip": "vectors.hnsw", "text": "text-vectors.hnsw"}


@dataclass(frozen=True)
class ModelChange:
    """A space whose configured model is not the one that wrote its vectors.

    ``recorded`` and ``configured`` are ``{name, weights, dim}``; ``staged``
    whether a re-embed with the configured model is under way (stopped or
    running, here or in another process): searches then use the recorded model
    until it completes.
    """

    space: str
    recorded: dict
    configured: dict
    staged: bool = False

    def describe(self) -> str:
        what = "photos" if self.space == "clip" else "passages"
        return (
            f"the library's {what} were embedded with {self.recorded['name']} ({self.recorded['weights']}); "
            f"the settings name {self.configured['name']} ({self.configured['weights']})"
        )


class _Preload:
    """Load the encoders a search will need on a thread while the search opens the vector indexes.

    A fresh process (one ``shoebox search``) spends a few hundred milliseconds on
    each: the model sessions, and the index kernels and files.  A load that fails
    here is left for the search, which loads again and reports why in its answer.
    """

    def __init__(self, encoders: Iterable[Any]) -> None:
        self.seconds = 0.0
        todo = [e for e in encoders if e is not None and not is_loaded(e)]
        self._thread = threading.Thread(target=self._run, args=(todo,), name="shoebox-preload", daemon=True)
        if todo:
            self._thread.start()

    def _run(self, todo: list[Any]) -> None:
        began = time.perf_counter()
        for encoder in todo:
            try:
                encoder.load()
                if hasattr(encoder, "count_tokens"):
                    encoder.count_tokens("warm up")
            except Exception as exc:  # the search loads it again and reports this
                log.debug("loading %r ahead of the search failed: %s", encoder, exc)
        self.seconds = time.perf_counter() - began

    def join(self) -> float:
        """Wait for the loads; the seconds they took (model loading, kept out of the search's time)."""
        if self._thread.is_alive():
            self._thread.join()
        return self.seconds


class Library:
    """The library at ``settings.home``.

    ``clip``, ``text_model`` and ``whisper`` may be injected (tests pass the
    ``test-tiny`` models); otherwise they are built from the settings on first use.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clip: Any = None,
        whisper: Any = None,
        text_model: Any = None,
        index_build: str = "never",
        graph_min_items: int = GRAPH_MIN_ITEMS,
    ):
        """``index_build`` is what a search does when the saved HNSW index is
        missing or unusable: ``"never"`` searches exactly (a one-shot CLI
        process), ``"background"`` builds it in a thread meanwhile (the app),
        ``"now"`` builds it first.  Indexing always brings it up to date."""
        self.settings = settings or load_settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.store: Store = open_store(self.settings)
        self._clip = clip
        self._whisper = whisper
        self._text = text_model
        self._models_lock = threading.Lock()  # models are built at most once, from any thread
        self._index_lock = threading.Lock()
        self.index_build = index_build
        self.graph_min_items = graph_min_items
        self._live: dict[str, Any] = {}
        self._recorded_encoders: dict[str, Any] = {}  # space -> the encoder of the model that wrote its vectors
        self._closed = False
        self._tagger: Any = None
        self.calibrations = CalibrationBook(self.settings.models_dir / "calibration.json")

    def close(self) -> None:
        """Save the HNSW indexes and close the database; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        for live in self._live.values():
            try:
                live.close(save=True, prune=False)
            except OSError as exc:  # the index is derived: the next start rebuilds it
                log.warning("could not save the vector index: %s", exc)
        self._prune_log()
        self.store.close()

    def reconfigure(self, settings: Settings) -> None:
        """Use new settings (from the app's dialogs); models are rebuilt on next use if they changed."""
        old = self.settings
        self.settings = settings
        model_fields = ("clip_model", "clip_pretrained", "clip_weights", "allow_download", "device", "threads")
        with self._models_lock:
            for space, encoder in (("clip", self._clip), ("text", self._text)):
                # The model that wrote the library's vectors keeps answering searches while
                # they are re-embedded for the new one.
                if encoder is not None and self._is_recorded(space, encoder):
                    self._recorded_encoders[space] = encoder
            if any(getattr(old, f) != getattr(settings, f) for f in model_fields):
                self._clip = None
                self._tagger = None
            if any(
                getattr(old, f) != getattr(settings, f) for f in ("text_model", "allow_download", "device", "threads")
            ):
                self._text = None
            if any(
                getattr(old, f) != getattr(settings, f)
                for f in ("whisper_model", "whisper_weights", "whisper_backend", "allow_download", "device", "threads")
            ):
                self._whisper = None
            if any(getattr(old, f) != getattr(settings, f) for f in ("autotag_vocabulary", "autotag_threshold")):
                self._tagger = None

    # -- the HNSW indexes ---------------------------------------------------

    @staticmethod
    def warm_up() -> None:
        """Import now what the first search, question or indexing run would otherwise stop to import.

        The vector index's kernels (numba and llvmlite), the date grammar and
        the extractors take hundreds of milliseconds to import (to compile,
        where no bytecode is cached), most of it holding the interpreter lock,
        which freezes the window if it happens while indexing runs; the app
        calls this from its start-up worker instead.
        """
        for module in _LAZY_MODULES:
            importlib.import_module(module)
        from .index.hnsw import warm_up

        warm_up()

    def index_path(self, space: str = "clip") -> Path:
        """The saved graph of ``space``'s current vectors (a re-embed's new vectors get a file of their own)."""
        if self.store.vector_table_is_first(space):
            return self.settings.home / INDEX_FILES[space]
        return self.settings.home / f"{self.store.vector_table(space)}.hnsw"

    def vector_index(
        self, space: str = "clip", *, build: str | None = None, on_progress: ProgressCallback | None = None
    ) -> Any:
        """The live index of ``space`` (an HNSW graph, or a matrix while the space is small), opened
        (and synced) on first use; None before the space has a model, and for a store that answers
        vector searches itself (PostgreSQL)."""
        if self.store.serves_vectors:
            return None
        with self._index_lock:
            live = self._live.get(space)
            if live is not None and live.table != self.store.vector_table(space):
                # Re-embedded (here or by another process): the old graph holds the old vectors.
                live.close(save=False)
                self._live.pop(space)
                if live.path != self.index_path(space):
                    live.path.unlink(missing_ok=True)
                live = None
            if live is None:
                if self.store.space_dim(space) is None:
                    return None
                from .index.live import LiveIndex

                assert isinstance(self.store, LibraryStore)  # a store that does not serve vectors keeps the log
                live = LiveIndex(self.store, self.index_path(space), min_items=self.graph_min_items, space=space)
                live.open(build=build or self.index_build, on_progress=on_progress)
                self._live[space] = live
            elif build == "now" and live.state in (IndexState.FAILED, IndexState.CLOSED):
                live.state = IndexState.CLOSED
                live.open(build="now", on_progress=on_progress)
        live.sync(link="inline" if build == "now" else "auto")
        return live

    def update_index(self, on_progress: ProgressCallback | None = None) -> dict:
        """Bring every space's HNSW index up to date with the store and save it (after indexing).

        A store that serves vector searches builds what its own indexes wait for instead.
        """
        if self.store.serves_vectors:
            return served(self.store).optimize()
        states: dict[str, dict] = {}
        for space in SPACES:
            live = self.vector_index(space, build="now", on_progress=on_progress)
            if live is None or live.state == IndexState.SMALL:
                states[space] = {"state": "small", "items": self.store.count_items(space)}
                continue
            live.wait()
            live.sync(link="inline")
            live.save_if_changed(prune=False)
            states[space] = live.describe()
        self._prune_log()
        return states

    def _prune_log(self) -> None:
        """Forget the item changes that every saved index already holds.

        Both spaces' graphs follow one change log, so it is pruned only up to
        the oldest position saved in either graph file.
        """
        if self.store.serves_vectors:
            return  # no graph follows the change log
        from .index.hnsw import HnswIndex

        positions = []
        for space in SPACES:
            live = self._live.get(space)
            if live is not None and live.state == IndexState.SMALL:
                continue
            saved = HnswIndex.saved_generation(self.index_path(space))
            if saved is None:
                if live is not None or self.store.count_items(space) >= self.graph_min_items:
                    return  # a graph is (or will be) built from the log: keep all of it
                continue
            positions.append(saved)
        if positions:
            try:
                self.store.prune_items_log(min(positions))
            except Exception as exc:  # a read-only library or a busy writer: pruning waits for next time
                log.warning("could not prune the change log: %s", exc)

    def index_status(self) -> dict:
        """Per space: the live index's state (see :meth:`LiveIndex.describe`), or what the saved file holds.

        Either way ``live`` and ``dead`` count the graph's nodes (None when
        there is no readable file) and ``file_bytes`` is the file's size.
        """
        if self.store.serves_vectors:
            describe = served(self.store).describe_index
            return {space: describe(space) for space in SPACES}
        from .index.hnsw import HnswIndex

        out = {}
        for space in SPACES:
            live = self._live.get(space)
            if live is not None:
                out[space] = live.describe()
                continue
            path = self.index_path(space)
            counts = HnswIndex.saved_node_counts(path)
            try:
                size: int | None = path.stat().st_size
            except OSError:
                size = None
            out[space] = {
                "state": "not loaded",
                "file": str(path),
                "saved": size is not None,
                "live": counts[0] if counts else None,
                "dead": counts[1] if counts else None,
                "file_bytes": size,
            }
        return out

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def clip(self) -> Any:
        with self._models_lock:
            if self._clip is None:
                from .models import build_clip

                self._clip = build_clip(self.settings)  # cheap: weights load on first encode
        return self._clip

    @property
    def text_model(self) -> Any:
        """The sentence-embedding model for passages (built on first use; weights load on first encode)."""
        with self._models_lock:
            if self._text is None:
                from .models import build_text_encoder

                self._text = build_text_encoder(self.settings)
        return self._text

    @property
    def whisper(self) -> Any:
        with self._models_lock:
            if self._whisper is None:
                from .models import build_whisper

                self._whisper = build_whisper(self.settings)
        return self._whisper

    def _indexer(self) -> Indexer:
        return Indexer(
            self.store,
            _Lazy(self, "clip"),
            _Lazy(self, "whisper"),
            text=_Lazy(self, "text_model"),
            thumbnails_dir=self.settings.thumbnails_dir,
            batch_size=self.settings.batch_size,
        )

    def index(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        retry_failed: bool = False,
    ) -> IndexSummary:
        """Index files and folders; see :meth:`engine.ingest.Indexer.index`.

        Afterwards, passages that still lack text-space vectors (a library
        from an older Shoebox, or a text model that changed) get them, photos
        are auto-tagged and the HNSW graphs are brought up to date.
        """
        indexer = self._indexer()
        try:
            summary = indexer.index(
                paths, on_progress=on_progress, should_cancel=should_cancel, retry_failed=retry_failed
            )
            if not summary.cancelled and not (should_cancel and should_cancel()):
                self._fill_text_space(indexer, summary, on_progress, should_cancel)
        finally:
            # What was committed is tagged and findable through the index, cancelled or not.
            self._after_indexing(on_progress)
        return summary

    def rescan(
        self,
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        retry_failed: bool = False,
    ) -> IndexSummary:
        """Bring every folder of the library up to date: new, changed, moved and deleted files.

        A folder that is not there (an unplugged drive, a network share that is
        down) is left as it was, its files still in the library, and the
        summary's warnings say so.  Raises :class:`UsageError` when the library
        has no folders yet.
        """
        from .errors import UsageError

        roots = self.store.roots()
        if not roots:
            raise UsageError("the library has no folders yet: give a folder to index")
        present = [root for root in roots if self._root_is_there(root)]
        summary = (
            self.index(present, on_progress=on_progress, should_cancel=should_cancel, retry_failed=retry_failed)
            if present
            else IndexSummary()
        )
        summary.warnings += [
            f"{root} is not there or is empty (an unplugged drive?): its files stay in the library as they were"
            for root in roots
            if root not in present
        ]
        return summary

    def _root_is_there(self, root: str) -> bool:
        """Whether a library folder can be trusted to show its files now.

        A drive that is not mounted often leaves its mount point behind as an
        empty folder: an empty folder that held indexed files counts as not
        there, so its files are kept rather than removed from the library.
        """
        if not os.path.isdir(root):
            return False
        try:
            with os.scandir(root) as entries:
                if next(entries, None) is not None:
                    return True
        except OSError:
            return False
        return not self.store.has_files_under(root)

    def finish_waiting(
        self, *, on_progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None
    ) -> IndexSummary:
        """Finish the files indexed before a model was here, for every model that is here now.

        See :meth:`engine.ingest.Indexer.complete_waiting`; ``summary.completed`` counts them.
        """
        started = time.perf_counter()
        summary = IndexSummary()
        try:
            self._indexer().complete_waiting(summary, on_progress=on_progress, should_cancel=should_cancel)
        finally:
            self._after_indexing(on_progress)
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def has_waiting(self) -> bool:
        """Whether files wait for a model that is here now (so :meth:`finish_waiting` has work)."""
        if not self.store.has_waiting():
            return False
        indexer = self._indexer()
        indexer.check_ready()
        return any(self.store.files_waiting(what) for what in indexer.ready)

    def update_paths(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> IndexSummary:
        """Bring up to date the files at ``paths``, which changed in the library's folders (a watcher's batch).

        Files there are indexed (new or changed; a moved file keeps its vectors),
        paths no longer there leave the library (a deleted folder takes every
        file below it), all in one run; see :meth:`engine.ingest.Indexer.update`.
        Only paths inside the library's folders count: others, hidden ones, those
        in the library's own folder and those of a folder that is not there now
        (an unplugged drive: its files stay as they were, as :meth:`rescan` does)
        are left alone, so a batch that arrives after its folder was forgotten
        changes nothing.
        """
        from .store import root_containing

        roots = self.store.roots()
        home = os.path.abspath(self.settings.home)
        wanted: list[str] = []
        for raw in paths:
            path = os.path.abspath(os.fspath(raw))
            root = path if path in roots else root_containing(path, roots)
            if root is None or not self._root_is_there(root):
                continue
            if path == home or path.startswith(home.rstrip(os.sep) + os.sep):
                continue
            if any(part.startswith(".") for part in Path(os.path.relpath(path, root)).parts if part != "."):
                continue
            wanted.append(path)
        if not wanted:
            return IndexSummary()
        indexer = self._indexer()
        summary: IndexSummary | None = None
        try:
            summary = indexer.update(wanted, on_progress=on_progress, should_cancel=should_cancel)
            if not summary.cancelled and not (should_cancel and should_cancel()):
                self._fill_text_space(indexer, summary, on_progress, should_cancel)
        finally:
            changed = summary is None or summary.added or summary.updated or summary.moved or summary.removed
            if changed or (summary is not None and summary.reembedded):
                self._after_indexing(on_progress)  # a batch of unchanged files leaves nothing to tag or link
        return summary

    def _fill_text_space(
        self,
        indexer: Indexer,
        summary: IndexSummary,
        on_progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
    ) -> None:
        if not self.store.files_missing_vectors("text", limit=1):
            return
        try:
            indexer.fill_text_space(summary, on_progress=on_progress, should_cancel=should_cancel)
        except ModelUnavailableError as exc:
            log.warning("passages wait for the text model: %s", exc)
            summary.warnings.append(f"passages are found by their words only until the text model is set up: {exc}")

    def _after_indexing(self, on_progress: ProgressCallback | None) -> None:
        if not self.store.has_vectors:
            return
        try:
            self.autotag(on_progress=on_progress)
        except ModelUnavailableError as exc:
            log.warning("photos were not auto-tagged: %s", exc)
        self.update_index(on_progress=on_progress)

    @staticmethod
    def ocr_status() -> dict[str, Any]:
        """Whether text in pictures and scanned pages is recognised: ``{available, reason, languages}``.

        ``reason`` says why it is off, or which language's data is missing while it is on.
        """
        from .extractors.ocr import ocr_status

        status = ocr_status()
        return {"available": status.available, "reason": status.reason, "languages": list(status.languages)}

    def forget_folder(self, folder: str) -> int:
        """Remove a library folder and every file found in it (the files on disk are untouched); returns how many.

        One transaction: a search sees the folder whole or gone.
        """
        store = self.store
        with store.transaction():
            rows = store.files_under(folder)
            for row in rows:
                store.remove_file(row.id)
            store.remove_root(folder)
        return len(rows)

    def autotagger(self) -> Any:
        from .autotag import AutoTagger, read_vocabulary

        if self._tagger is None:
            vocabulary = read_vocabulary(self.settings.autotag_vocabulary or None)
            self._tagger = AutoTagger(self.clip, vocabulary, self.settings.autotag_threshold)
        return self._tagger

    def autotag(self, *, on_progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None) -> int:
        """Auto-tag the photos not yet tagged with the current vocabulary; returns how many."""
        if not self.settings.autotags or self.store.dim is None:
            return 0
        from .autotag import autotag_library

        return autotag_library(self.store, self.autotagger(), on_progress=on_progress, should_cancel=should_cancel)

    def calibration(self, space: str, *, measure: bool = True) -> Any:
        """The calibration of the model whose vectors fill ``space`` (None before that space has a model).

        A text model without a shipped calibration is measured on the bundled
        probes the first time (loading the model); raises
        :class:`ModelUnavailableError` when that model cannot be loaded.  With
        ``measure`` False an unloaded text model is not loaded to measure one:
        None then, when none is shipped or remembered.
        """
        from .models import ModelIdentity

        recorded = self.store.model_identity(space)
        if recorded is None:
            return None
        identity = ModelIdentity(recorded["name"], recorded["weights"], recorded["dim"])
        if space == "text" and not measure and not is_loaded(self.text_model):
            try:
                return self.calibrations.get(space, identity)
            except ValueError:  # none without measuring: the space is not searched by meaning meanwhile
                return None
        return self.calibrations.get(space, identity, self.text_model if space == "text" else None)

    def _calibrations(self, *, measure: bool = True) -> tuple[dict[str, Any], float]:
        """Each space's calibration, and the seconds spent loading the text model to measure one."""
        out = {}
        loading = 0.0
        for space in SPACES:
            unloaded = (
                space == "text" and self.store.model_identity(space) is not None and not is_loaded(self.text_model)
            )
            began = time.perf_counter()
            try:
                calibration = self.calibration(space, measure=measure)
            except ModelUnavailableError:
                continue  # searched by words only; the search says so
            finally:
                if unloaded and is_loaded(self.text_model):
                    loading += time.perf_counter() - began
            if calibration is not None:
                out[space] = calibration
        return out, loading

    def search(self, query: Query | str | None = None, /, **fields: Any) -> SearchResponse:
        """Search the library; see :func:`engine.search.search`.

        ``query`` is a :class:`~engine.query.Query`, or the text of one whose
        other fields are given as keywords (``library.search("beach", k=5)``).
        Its ``min_relevance`` None means the library's setting (SHOEBOX_MIN_RELEVANCE).

        The search sees one committed state of the library while indexing goes
        on in another thread or process (see :meth:`consistent`).  Loading the
        models (and measuring a text model's calibration the first time) is
        reported in ``load_ms``, never in ``took_ms``; with
        ``wait_for_models=False`` a model that has not loaded is not waited for
        (see :class:`~engine.query.Query`).
        """
        return self._search(Query.of(query, **fields))[0]

    def _search(self, query: Query, then: Callable[[SearchResponse], Any] | None = None) -> tuple[SearchResponse, Any]:
        """:meth:`search`, and ``then(response)`` called inside the same snapshot (None without it)."""
        if query.min_relevance is None:
            query = query.replace(min_relevance=self.settings.min_relevance)
        for _ in range(3):
            recorded = {space: self.store.model_identity(space) for space in SPACES}
            encoders = self.search_encoders()
            preload = _Preload(encoders.values()) if query.wait_for_models and query.text.strip() else None
            live = {space: self.vector_index(space) for space in SPACES}
            preloaded = preload.join() if preload is not None else 0.0
            calibrations, loading = self._calibrations(measure=query.wait_for_models)
            loading += preloaded
            with self.consistent(live):
                if any(self.store.model_identity(space) != recorded[space] for space in SPACES):
                    continue  # re-embedded since the encoders were chosen: choose again
                response = search(
                    self.store,
                    query,
                    clip=encoders["clip"],
                    text_model=encoders["text"],
                    calibrations=calibrations,
                    live=live,
                )
                response.load_ms = round(response.load_ms + loading * 1000, 2)
                return response, (then(response) if then is not None else None)
        raise LibraryError("the library's models kept changing during the search; search again")

    def browse(self, filters: Filters | None = None, after: BrowseKey | None = None, limit: int = 200) -> BrowsePage:
        """A page of the library's files passing ``filters``, newest first; see :func:`engine.search.browse`.

        Reads one committed state of the library while indexing goes on.
        """
        with self.store.snapshot():
            return browse(self.store, filters or Filters(), after, limit)

    def browse_months(self, filters: Filters | None = None) -> list[tuple[int, int, int]]:
        """(year, month, files) of every month with files passing ``filters``, newest first."""
        with self.store.snapshot():
            return self.store.browse_months(filters or Filters())

    def search_encoders(self) -> dict[str, Any]:
        """The encoder of each space's queries: the model that wrote its vectors (None: no vectors yet).

        That is the configured model, or, while the library is being re-embedded
        with the configured model, the previous one (searches go on with the
        vectors it made; a space whose previous model is not on this computer is
        searched by words).  Raises :class:`ModelMismatchError` when a configured
        model did not write the vectors and no re-embed with it is under way.
        """
        out: dict[str, Any] = {}
        for space in SPACES:
            recorded = self.store.model_identity(space)
            if recorded is None:
                out[space] = None
                continue
            encoder = self.clip if space == "clip" else self.text_model
            change = self._change(space, encoder)
            if change is None:
                out[space] = encoder
            elif change.staged:
                out[space] = self._recorded_encoder(space)
            else:
                raise ModelMismatchError(self._mismatch_message(change))
        return out

    def model_changes(self) -> list[ModelChange]:
        """The spaces whose configured model is not the one that wrote their vectors (costs no weights)."""
        changes = []
        for space in SPACES:
            if self.store.model_identity(space) is None:
                continue
            change = self._change(space, self.clip if space == "clip" else self.text_model)
            if change is not None:
                changes.append(change)
        return changes

    def _change(self, space: str, encoder: Any) -> ModelChange | None:
        """How ``encoder`` differs from the model that wrote ``space``'s vectors (None: it is that model, or none did)."""
        recorded = public_identity(self.store.model_identity(space))
        if recorded is None:
            return None
        try:
            identity = encoder.identity
        except ModelUnavailableError as exc:
            # Not on this computer: its identity (a hash of its weights) is unknown.  Searching
            # needs it only if it is the recorded model, which keeps its name.
            if encoder.name == recorded["name"]:
                return None
            log.info("the configured %s model cannot be checked: %s", space, exc)
            return ModelChange(space, recorded, {"name": encoder.name, "weights": "not on this computer", "dim": 0})
        configured = {"name": identity.name, "weights": identity.weights, "dim": int(identity.dim)}
        if self.store.same_model(space, recorded, configured):
            return None
        staged = self.store.same_model(space, self.store.staged_model(space), configured)
        return ModelChange(space, recorded, configured, staged)

    def _is_recorded(self, space: str, encoder: Any) -> bool:
        """Whether ``encoder`` is the model that wrote ``space``'s vectors."""
        return self._change(space, encoder) is None

    def _recorded_encoder(self, space: str) -> Any:
        """An encoder of the model that wrote ``space``'s vectors, or None when it is not on this computer."""
        recorded = self.store.model_identity(space)
        kept = self._recorded_encoders.get(space)
        if kept is not None and self._is_recorded(space, kept):
            return kept
        from dataclasses import replace

        from .models import build_clip, build_text_encoder

        assert recorded is not None, f"no model wrote the {space} vectors"  # callers check first
        encoder: ClipEncoder | TextEncoder
        if space == "clip":
            if str(recorded["weights"]).startswith("file:"):
                return None  # a weights file of its own: only the settings that named it know where it is
            settings = replace(
                self.settings, clip_model=recorded["name"], clip_pretrained=recorded["weights"], clip_weights=""
            )
            encoder = build_clip(settings)
        else:
            encoder = build_text_encoder(replace(self.settings, text_model=recorded["name"]))
        if not self._is_recorded(space, encoder):
            return None
        self._recorded_encoders[space] = encoder
        return encoder

    def _mismatch_message(self, change: ModelChange) -> str:
        space_flag = "" if change.space == "clip" else " --space text"
        recorded = change.recorded
        if change.space == "text":
            back = f" (SHOEBOX_TEXT_MODEL={recorded['name']})"
        elif not str(recorded["weights"]).startswith("file:"):
            back = f" (SHOEBOX_CLIP_MODEL={recorded['name']} SHOEBOX_CLIP_PRETRAINED={recorded['weights']})"
        else:
            back = " (the weights file it was built with)"
        return (
            f"{change.describe()}: run `shoebox reembed{space_flag}` to re-embed the library with the new model "
            f"(searches keep working meanwhile), or set the model back{back}"
        )

    @contextmanager
    def consistent(self, live: dict[str, Any]) -> Iterator[int]:
        """Read one committed state of the library, with each space's index in step with it.

        Pins the live indexes (in a fixed order, so two searches never wait on
        each other crosswise), opens a store snapshot, and syncs the indexes to
        exactly that snapshot: a vector hit is always a row the snapshot has,
        and every item the snapshot has is in the index (or searched exactly
        while it waits to be linked).  Yields the snapshot's items version.
        """
        held = [live[space] for space in SPACES if live.get(space) is not None]
        with ExitStack() as stack:
            for index in held:
                stack.enter_context(index.pinned())
            # The snapshot starts after every sync that came before the pins:
            # an index is never ahead of it.
            version = stack.enter_context(self.store.snapshot())
            for index in held:
                index.sync()
            yield version

    def ask(
        self,
        question: str,
        *,
        filters: Filters | None = None,
        k: int = 12,
        on_token: Callable[[str], None] | None = None,
        should_cancel: CancelCheck | None = None,
        use_llm: bool = True,
    ) -> Any:
        """Answer ``question`` from the library's passages; see :func:`engine.answer.ask`.

        Passages come from the text space (and photos from the clip space) by
        the same search, one item at a time; sentences are scored with the
        text model.  With ``SHOEBOX_LLM_URL`` set (and ``use_llm``), the answer
        is generated by that model and streamed to ``on_token``; otherwise it
        is extractive.
        """
        from .answer import SentenceMeaning, ask
        from .llm import client_from_settings

        def texts(response: SearchResponse) -> dict[int, dict]:
            # Read in the search's own snapshot: a passage deleted since is still the one found.
            return self.store.item_details([r.item_id for r in response.results])

        def retrieve(text: str) -> list[Any]:
            query = Query(text, filters=filters or Filters(), k=k, per_file=False)
            response, details = self._search(query, then=texts)
            if len(response.results) < k and response.dates:
                # The question's date words may be about the content ("What changed
                # in 2019?"), not when a file was made: also look at any date.
                wider, more = self._search(query.replace(understand_dates=False), then=texts)
                seen = {r.item_id for r in response.results}
                response.results += [r for r in wider.results if r.item_id not in seen][: k - len(response.results)]
                details = {**more, **details}
            return self._passages(response.results, details)

        meaning = None
        if self.store.space_dim("text") is not None:
            try:
                meaning = SentenceMeaning(self.text_model, self.calibration("text"))
            except ModelUnavailableError as exc:
                log.info("sentences are scored by their words only: %s", exc)
        llm = client_from_settings(self.settings) if use_llm else None
        return ask(question, retrieve, llm=llm, on_token=on_token, should_cancel=should_cancel, meaning=meaning)

    def result_at(self, path: str, locator: dict | None = None) -> Any:
        """The search result for the item of ``path`` at ``locator`` (a citation), or its first item.

        Raises :class:`UsageError` when the file is no longer in the library.
        """
        from .errors import UsageError
        from .search import result_for_items

        with self.store.snapshot():
            ids = self.store.item_ids_of(path)
            if not ids:
                raise UsageError(f"{path} is no longer in the library")
            details = self.store.item_details(ids)
            chosen = next((i for i in ids if locator and details[i]["locator"] == locator), ids[0])
            return result_for_items(self.store, [chosen])[0]

    def _passages(self, results: list[Any], details: dict[int, dict]) -> list[Any]:
        from .answer import Passage

        passages = []
        keyword_rank = 0
        for r in results:
            matched = bool(r.matched)
            # Answers read recognised text as a document's, a video's words as a recording's
            # and its frames as photos.
            kind = r.kind
            if r.modality == "ocr":
                kind = "document"
            elif r.kind == "video":
                kind = "audio" if r.modality == "speech" else "image"
            passages.append(
                Passage(
                    item_id=r.item_id,
                    path=r.path,
                    kind=kind,
                    locator=r.locator,
                    text=details.get(r.item_id, {}).get("text"),
                    media_time=r.media_time,
                    tags=r.tags,
                    score=r.score,
                    similarity=r.similarity,
                    keyword_rank=keyword_rank if matched else None,
                    relevance=r.relevance,
                )
            )
            keyword_rank += matched
        return passages

    def reembed(
        self,
        *,
        space: str | None = None,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> IndexSummary:
        """Re-embed the library with the configured models: ``space`` ``"clip"`` (photos), ``"text"`` (passages), or None.

        None means every space whose configured model did not write its vectors
        (a stopped re-embed resumes); when there is none, every space.  The
        new vectors are written beside the current ones, which searches go on
        using until every item has its new vector; then the space switches at
        once (see :meth:`engine.ingest.Indexer.restage`).  Stopping keeps what
        is done, and the next call resumes.  A space without vectors yet is
        left to indexing.
        """
        if space not in (None, *SPACES):
            from .errors import UsageError

            raise UsageError(f"the space to re-embed is clip or text, not {space!r}")
        spaces = [space] if space is not None else self._spaces_to_reembed()
        indexer = self._indexer()
        summary = IndexSummary()
        started = time.perf_counter()
        try:
            for name in spaces:
                if self.store.model_identity(name) is None:
                    continue
                if name == "text" and self.store.files_missing_vectors("text", limit=1):
                    indexer.fill_text_space(summary, on_progress=on_progress, should_cancel=should_cancel)
                if not indexer.restage(name, summary, on_progress=on_progress, should_cancel=should_cancel):
                    break  # stopped: the current vectors stay searchable
                self._recorded_encoders.pop(name, None)
        finally:
            self._after_indexing(on_progress)
        summary.cancelled = summary.cancelled or bool(should_cancel and should_cancel())
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def _spaces_to_reembed(self) -> list[str]:
        changed = [c.space for c in self.model_changes()]
        return changed or [s for s in SPACES if self.store.model_identity(s) is not None]


class _Lazy:
    """A model of the library, built only when first used (a run that only moves files builds none)."""

    def __init__(self, library: Library, name: str):
        self._library = library
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(getattr(self._library, self._name), attribute)
