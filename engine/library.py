"""A library: settings, the store and the models, wired together.

This is the one factory the CLI and the desktop app use.  Models are built
from the settings but load their weights only when first needed, so opening a
library, listing tags or a keyword search never waits for torch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .ingest import CancelCheck, Indexer, IndexSummary, ProgressCallback
from .search import SearchResponse, search
from .settings import Settings, load_settings
from .store import Filters, LibraryStore


class Library:
    """The library at ``settings.home``.

    ``clip`` and ``whisper`` may be injected (tests pass the ``test-tiny``
    models); otherwise they are built from the settings on first use.
    """

    def __init__(self, settings: Settings | None = None, *, clip: Any = None, whisper: Any = None):
        self.settings = settings or load_settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.store = LibraryStore(self.settings.db_path)
        self._clip = clip
        self._whisper = whisper
        self._models_lock = threading.Lock()  # models are built at most once, from any thread

    def close(self) -> None:
        self.store.close()

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
        return indexer.index(paths, on_progress=on_progress, should_cancel=should_cancel, retry_failed=retry_failed)

    def search(
        self, text: str | None = None, *, image: str | Path | None = None, filters: Filters | None = None, k: int = 20
    ) -> SearchResponse:
        """Search the library; see :func:`engine.search.search`."""
        clip = self.clip if self.store.dim is not None else None
        return search(self.store, clip, text, image=image, filters=filters, k=k)

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
