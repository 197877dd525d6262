"""A library: settings, the store and the models, wired together.

This is the one factory the CLI and the desktop app use.  Models are built
from the settings but load their weights only when first needed, so opening a
library, listing tags or a keyword search never waits for torch.

Three models serve a library: CLIP for photos (the ``clip`` vector space),
a sentence-embedding model for document and transcript passages (the ``text``
space) and Whisper for speech.  Each space has its own HNSW graph.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .calibration import CalibrationBook
from .errors import ModelUnavailableError
from .ingest import CancelCheck, Indexer, IndexSummary, ProgressCallback
from .query import Filters, Query
from .search import SearchResponse, search
from .settings import Settings, load_settings
from .store import SPACES, LibraryStore

log = logging.getLogger(__name__)

# Below this many items no HNSW graph is kept: exact search is as fast and exact.
GRAPH_MIN_ITEMS = 5000
# Where each space's graph is saved, beside the database.
INDEX_FILES = {"clip": "vectors.hnsw", "text": "text-vectors.hnsw"}


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
        self.store = LibraryStore(self.settings.db_path)
        self._clip = clip
        self._whisper = whisper
        self._text = text_model
        self._models_lock = threading.Lock()  # models are built at most once, from any thread
        self._index_lock = threading.Lock()
        self.index_build = index_build
        self.graph_min_items = graph_min_items
        self._live: dict[str, Any] = {}
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
            if any(getattr(old, f) != getattr(settings, f) for f in model_fields):
                self._clip = None
                self._tagger = None
            if any(
                getattr(old, f) != getattr(settings, f) for f in ("text_model", "allow_download", "device", "threads")
            ):
                self._text = None
            if any(
                getattr(old, f) != getattr(settings, f)
                for f in ("whisper_model", "whisper_weights", "allow_download", "device", "threads")
            ):
                self._whisper = None
            if any(getattr(old, f) != getattr(settings, f) for f in ("autotag_vocabulary", "autotag_threshold")):
                self._tagger = None

    # -- the HNSW indexes ---------------------------------------------------

    def index_path(self, space: str = "clip") -> Path:
        return self.settings.home / INDEX_FILES[space]

    def vector_index(
        self, space: str = "clip", *, build: str | None = None, on_progress: ProgressCallback | None = None
    ) -> Any:
        """The live index of ``space`` (an HNSW graph, or a matrix while the space is small), opened
        (and synced) on first use; None before the space has a model."""
        with self._index_lock:
            live = self._live.get(space)
            if live is None:
                if self.store.space_dim(space) is None:
                    return None
                from .index.live import LiveIndex

                live = LiveIndex(self.store, self.index_path(space), min_items=self.graph_min_items, space=space)
                live.open(build=build or self.index_build, on_progress=on_progress)
                self._live[space] = live
            elif build == "now" and live.state in ("failed", "closed"):
                live.state = "closed"
                live.open(build="now", on_progress=on_progress)
        live.sync(link="inline" if build == "now" else "auto")
        return live

    def update_index(self, on_progress: ProgressCallback | None = None) -> dict:
        """Bring every space's HNSW index up to date with the store and save it (after indexing)."""
        states: dict[str, dict] = {}
        for space in SPACES:
            live = self.vector_index(space, build="now", on_progress=on_progress)
            if live is None or live.state == "small":
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
        from .index.hnsw import HnswIndex

        positions = []
        for space in SPACES:
            live = self._live.get(space)
            if live is not None and live.state == "small":
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

    def __enter__(self) -> "Library":
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

    def calibration(self, space: str) -> Any:
        """The calibration of the model whose vectors fill ``space`` (None before that space has a model).

        A text model without a shipped calibration is measured on the bundled
        probes the first time (loading the model); raises
        :class:`ModelUnavailableError` when that model cannot be loaded.
        """
        from .models import ModelIdentity

        recorded = self.store.model_identity(space)
        if recorded is None:
            return None
        identity = ModelIdentity(recorded["name"], recorded["weights"], recorded["dim"])
        return self.calibrations.get(space, identity, self.text_model if space == "text" else None)

    def _calibrations(self) -> dict[str, Any]:
        out = {}
        for space in SPACES:
            try:
                calibration = self.calibration(space)
            except ModelUnavailableError:
                continue  # searched by words only; the search says so
            if calibration is not None:
                out[space] = calibration
        return out

    def search(self, query: Query | str | None = None, /, **fields: Any) -> SearchResponse:
        """Search the library; see :func:`engine.search.search`.

        ``query`` is a :class:`~engine.query.Query`, or the text of one whose
        other fields are given as keywords (``library.search("beach", k=5)``).
        Its ``min_relevance`` None means the library's setting (SHOEBOX_MIN_RELEVANCE).
        """
        query = Query.of(query, **fields)
        clip = self.clip if self.store.dim is not None else None
        text_model = self.text_model if self.store.space_dim("text") is not None else None
        live = {space: self.vector_index(space) for space in SPACES}
        if query.min_relevance is None:
            query = query.replace(min_relevance=self.settings.min_relevance)
        return search(
            self.store,
            query,
            clip=clip,
            text_model=text_model,
            calibrations=self._calibrations(),
            live=live,
        )

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

        def retrieve(text: str) -> list[Any]:
            response = self.search(text, filters=filters, k=k, per_file=False)
            if len(response.results) < k and response.dates:
                # The question's date words may be about the content ("What changed
                # in 2019?"), not when a file was made: also look at any date.
                wider = self.search(text, filters=filters, k=k, understand_dates=False, per_file=False)
                seen = {r.item_id for r in response.results}
                response.results += [r for r in wider.results if r.item_id not in seen][: k - len(response.results)]
            return self._passages(response.results)

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

        ids = self.store.item_ids_of(path)
        if not ids:
            raise UsageError(f"{path} is no longer in the library")
        details = self.store.item_details(ids)
        chosen = next((i for i in ids if locator and details[i]["locator"] == locator), ids[0])
        return result_for_items(self.store, [chosen])[0]

    def _passages(self, results: list[Any]) -> list[Any]:
        from .answer import Passage

        details = self.store.item_details([r.item_id for r in results])
        passages = []
        keyword_rank = 0
        for r in results:
            matched = bool(r.matched)
            passages.append(
                Passage(
                    item_id=r.item_id,
                    path=r.path,
                    kind=r.kind,
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
        """Encode the library again with the configured models: ``space`` ``"clip"`` (photos), ``"text"`` (passages) or both.

        Photos are read again from their files.  Passages are cut again for the
        text model and embedded: documents from their files, recordings from the
        transcripts kept in the library (Whisper does not run again).
        """
        if space not in (None, *SPACES):
            from .errors import UsageError

            raise UsageError(f"the space to re-embed is clip or text, not {space!r}")
        self.store.reset_vectors(space)
        for live in self._live.values():
            live.close(save=False)
        self._live.clear()
        if space in (None, "clip"):
            roots = [r for r in self.store.roots() if os.path.isdir(r)]
            return self.index(roots, on_progress=on_progress, should_cancel=should_cancel)
        indexer = self._indexer()
        summary = IndexSummary()
        try:
            indexer.fill_text_space(summary, on_progress=on_progress, should_cancel=should_cancel)
        finally:
            self._after_indexing(on_progress)
        summary.cancelled = bool(should_cancel and should_cancel())
        return summary


class _Lazy:
    """A model of the library, built only when first used (a run that only moves files builds none)."""

    def __init__(self, library: Library, name: str):
        self._library = library
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(getattr(self._library, self._name), attribute)
