"""A library: settings, the store and the models, wired together.

This is the one factory the CLI and the desktop app use.  Models are built
from the settings but load their weights only when first needed, so opening a
library, listing tags or a keyword search never waits for torch.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import ModelUnavailableError
from .ingest import CancelCheck, Indexer, IndexSummary, ProgressCallback
from .search import SearchResponse, search
from .settings import Settings, load_settings
from .store import Filters, LibraryStore

log = logging.getLogger(__name__)

# Below this many items no HNSW graph is kept: exact search is as fast and exact.
GRAPH_MIN_ITEMS = 5000


class Library:
    """The library at ``settings.home``.

    ``clip`` and ``whisper`` may be injected (tests pass the ``test-tiny``
    models); otherwise they are built from the settings on first use.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clip: Any = None,
        whisper: Any = None,
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
        self._models_lock = threading.Lock()  # models are built at most once, from any thread
        self._index_lock = threading.Lock()
        self.index_build = index_build
        self.graph_min_items = graph_min_items
        self._live: Any = None
        self._tagger: Any = None

    def close(self) -> None:
        if self._live is not None:
            try:
                self._live.close(save=True)
            except OSError as exc:  # the index is derived: the next start rebuilds it
                log.warning("could not save the vector index: %s", exc)
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
            if any(getattr(old, f) != getattr(settings, f)
                   for f in ("whisper_model", "whisper_weights", "allow_download", "device", "threads")):
                self._whisper = None
            if any(getattr(old, f) != getattr(settings, f)
                   for f in ("autotag_vocabulary", "autotag_threshold")):
                self._tagger = None

    # -- the HNSW index ----------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.settings.home / "vectors.hnsw"

    def vector_index(self, *, build: str | None = None, on_progress: ProgressCallback | None = None) -> Any:
        """The live HNSW index, opened (and synced) on first use; None while the library is small."""
        with self._index_lock:
            if self._live is None:
                if self.store.dim is None or self.store.count_items() < self.graph_min_items:
                    return None
                from .index.live import LiveIndex

                live = LiveIndex(self.store, self.index_path, min_items=self.graph_min_items)
                live.open(build=build or self.index_build, on_progress=on_progress)
                self._live = live
            elif build == "now" and self._live.state in ("failed", "closed"):
                self._live.state = "closed"
                self._live.open(build="now", on_progress=on_progress)
            live = self._live
        live.sync(link="inline" if build == "now" else "auto")
        return live

    def update_index(self, on_progress: ProgressCallback | None = None) -> dict:
        """Bring the HNSW index up to date with the store and save it (after indexing)."""
        live = self.vector_index(build="now", on_progress=on_progress)
        if live is None:
            return {"state": "small", "items": self.store.count_items()}
        live.wait()
        live.sync(link="inline")
        live.save_if_changed()
        return live.describe()

    def index_status(self) -> dict:
        if self._live is not None:
            return self._live.describe()
        return {"state": "not loaded", "file": str(self.index_path), "saved": self.index_path.exists()}

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
    def whisper(self) -> Any:
        with self._models_lock:
            if self._whisper is None:
                from .models import build_whisper

                self._whisper = build_whisper(self.settings)
        return self._whisper

    def index(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        retry_failed: bool = False,
    ) -> IndexSummary:
        """Index files and folders; see :meth:`engine.ingest.Indexer.index`."""
        indexer = Indexer(
            self.store, self.clip, _LazyWhisper(self),
            thumbnails_dir=self.settings.thumbnails_dir, batch_size=self.settings.batch_size,
        )
        try:
            summary = indexer.index(paths, on_progress=on_progress, should_cancel=should_cancel,
                                    retry_failed=retry_failed)
        finally:
            # What was committed is tagged and findable through the index, cancelled or not.
            self._after_indexing(on_progress)
        return summary

    def _after_indexing(self, on_progress: ProgressCallback | None) -> None:
        if self.store.dim is None:
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

    def search(
        self,
        text: str | None = None,
        *,
        image: str | Path | None = None,
        like: str | Path | int | None = None,
        filters: Filters | None = None,
        k: int = 20,
        min_score: float | None = None,
        understand_dates: bool = True,
    ) -> SearchResponse:
        """Search the library; see :func:`engine.search.search`."""
        clip = self.clip if self.store.dim is not None else None
        live = self.vector_index()
        return search(self.store, clip, text, image=image, like=like, filters=filters, k=k, min_score=min_score,
                      understand_dates=understand_dates, live=live)

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

        With ``SHOEBOX_LLM_URL`` set (and ``use_llm``), the answer is generated
        by that model and streamed to ``on_token``; otherwise it is extractive.
        """
        from .answer import ask
        from .llm import client_from_settings

        def retrieve(text: str) -> list[Any]:
            response = self.search(text, filters=filters, k=k)
            if len(response.results) < k and response.dates:
                # The question's date words may be about the content ("What changed
                # in 2019?"), not when a file was made: also look at any date.
                wider = self.search(text, filters=filters, k=k, understand_dates=False)
                seen = {r.item_id for r in response.results}
                response.results += [r for r in wider.results if r.item_id not in seen][: k - len(response.results)]
            return self._passages(response.results)

        clip = self.clip if self.store.dim is not None else None
        encode = None
        if clip is not None:
            def encode(texts: list[str]) -> Any:
                return clip.encode_texts(texts)

        llm = client_from_settings(self.settings) if use_llm else None
        return ask(question, retrieve, llm=llm, on_token=on_token, should_cancel=should_cancel, encode_texts=encode)

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
        from .search import MARK_OPEN

        details = self.store.item_details([r.item_id for r in results])
        passages = []
        keyword_rank = 0
        for r in results:
            matched = bool(r.snippet and MARK_OPEN in r.snippet)
            passages.append(Passage(
                item_id=r.item_id, path=r.path, kind=r.kind, locator=r.locator,
                text=details.get(r.item_id, {}).get("text"), media_time=r.media_time, tags=r.tags,
                score=r.score, similarity=r.similarity, keyword_rank=keyword_rank if matched else None,
            ))
            keyword_rank += matched
        return passages

    def reembed(
        self, *, on_progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None
    ) -> IndexSummary:
        """Drop every vector and encode the library's folders again with the configured model."""
        self.store.reset_vectors()
        roots = [r for r in self.store.roots() if os.path.isdir(r)]
        return self.index(roots, on_progress=on_progress, should_cancel=should_cancel)


class _LazyWhisper:
    """Builds Whisper only when a recording is actually transcribed."""

    def __init__(self, library: Library):
        self._library = library

    def transcribe(self, samples: Any) -> Any:
        return self._library.whisper.transcribe(samples)
