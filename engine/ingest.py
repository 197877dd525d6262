"""Ingestion: scan folders, compare with the store, extract and encode what is new.

The pipeline per run:

1. **scan** the given paths (recursively; hidden entries and symlink loops skipped);
2. **compare** each file with the store: size and mtime first, then the content
   hash, so a moved or renamed file keeps its vectors and a copy reuses them;
3. **extract** new content on a small thread pool (decoding images, reading
   PDFs, decoding audio) while the main thread runs the models on the previous
   batch, so decoding overlaps with inference;
4. **encode** batches: photos with CLIP; documents cut into passages of the
   text model's size and embedded by it; recordings transcribed by Whisper,
   their segments joined into passages and embedded by the text model;
5. **store** each batch in one transaction, so a killed process loses at most
   the batch in flight and never leaves a half-indexed file.

A bad file is recorded as failed with a reason and never stops the batch.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ExtractionError, ModelUnavailableError, ShoeboxError, UsageError
from .extractors import kind_for_path
from .store import FileRow, FileStatus, LibraryStore, NewItem

# Photos are decoded at this longest side: enough for CLIP's 224-pixel input
# (short side >= 224 up to 2:1) and the 320-pixel thumbnail, and small enough
# that JPEG draft mode decodes a 12-megapixel photo at 1/8 scale.  Image
# queries are prepared the same way, so a photo searched by itself matches.
IMAGE_SIDE = 448
# Passages for the text model: up to this many of its tokens, sentence-aware,
# overlapping by about PASSAGE_OVERLAP tokens.  Long enough to hold a thought
# and its context, short enough that a passage is about one thing.
PASSAGE_TOKENS = 256
PASSAGE_OVERLAP = 32
# Transcript passages are shorter: a result plays from the passage's start, so
# it should not start long before what was searched for.
SPEECH_PASSAGE_TOKENS = 128
SPEECH_PASSAGE_SECONDS = 40.0

ProgressCallback = Callable[[int, int, str], None]
CancelCheck = Callable[[], bool]


@dataclass
class IndexSummary:
    """What one indexing run did.  ``failed`` lists ``{"path", "reason"}`` for this run's failures."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    reembedded: int = 0  # files whose passages were cut again and embedded for the text model
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Candidate:
    path: str
    kind: str | None
    size: int
    mtime: float
    row: FileRow | None  # the store's row at this path, if any
    content_hash: str | None = None
    error: str | None = None
    is_update: bool = False


def content_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """BLAKE2b digest of a file's bytes (hex); identifies content independently of its path."""
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def thumbnail_path(thumbnails_dir: Path, digest: str) -> Path:
    """Where the thumbnail of the content with hash ``digest`` is cached."""
    return thumbnails_dir / digest[:2] / f"{digest}.jpg"


def _timestamp(moment: datetime | None, fallback: float) -> float:
    if moment is None:
        return fallback
    try:
        return moment.timestamp()  # a naive time is the camera's local time
    except (OverflowError, OSError, ValueError):
        return fallback


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ShoeboxError):
        return str(exc)
    if isinstance(exc, PermissionError):
        return "permission denied: Shoebox may not read this file"
    if isinstance(exc, MemoryError):
        return "not enough memory to read this file"
    if isinstance(exc, OSError):
        return f"cannot read the file: {exc.strerror or exc}"
    return f"unexpected error while reading the file ({type(exc).__name__}: {exc})"


class Indexer:
    """Indexes files into a :class:`LibraryStore` with injected encoders.

    ``clip`` is a :class:`engine.models.ClipEncoder` (or anything with the same
    methods), ``text`` a :class:`engine.models.TextEncoder`, ``whisper`` a
    :class:`engine.models.WhisperTranscriber`.  Each is loaded by its first
    use, so a run that only removes or moves files never loads a model.
    """

    def __init__(
        self,
        store: LibraryStore,
        clip: Any,
        whisper: Any = None,
        *,
        text: Any = None,
        thumbnails_dir: Path | None = None,
        batch_size: int = 32,
        workers: int | None = None,
    ):
        self.store = store
        self.clip = clip
        self.whisper = whisper
        self.text = text
        self.thumbnails_dir = Path(thumbnails_dir) if thumbnails_dir else None
        self.batch_size = max(1, batch_size)
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))

    # -- public ------------------------------------------------------------

    def index(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        retry_failed: bool = False,
    ) -> IndexSummary:
        """Bring the library up to date with the files at ``paths`` (files or folders).

        Returns an :class:`IndexSummary`.  Raises :class:`UsageError` when a
        path does not exist, and model errors (:class:`ModelUnavailableError`)
        when new content must be encoded but the weights are missing; files
        finished before that stay committed.
        """
        started = time.perf_counter()
        progress = on_progress or (lambda done, total, message: None)
        cancelled = should_cancel or (lambda: False)
        summary = IndexSummary()
        self._check_models()

        progress(0, 0, "looking for files")
        candidates, folders = self._scan(paths, summary.failed)
        for folder in folders:
            self.store.add_root(folder)
        work = self._compare(candidates, folders, summary, retry_failed, progress, cancelled)
        if not cancelled():
            self._process(work, summary, progress, cancelled)
        summary.cancelled = cancelled()
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    def update(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> IndexSummary:
        """Bring the library up to date with paths that changed (what a folder watcher saw).

        A path that is there is indexed as :meth:`index` would (a folder is
        walked, and the files the library has below it that are gone leave it),
        but no folder becomes a library folder, and a file of a kind Shoebox
        does not index is left out.  A path that is not there leaves the
        library: the file at it, or every file below it.  Both happen in one
        run, so a file moved (gone at one path, new at another) is recognised by
        its content and keeps its items and vectors.  Never raises for a path
        that vanished meanwhile; raises model errors as :meth:`index` does.
        """
        started = time.perf_counter()
        progress = on_progress or (lambda done, total, message: None)
        cancelled = should_cancel or (lambda: False)
        summary = IndexSummary()
        self._check_models()

        progress(0, 0, "looking for files")
        library_dir = os.path.abspath(self.store.path.parent)
        files: dict[str, _Candidate] = {}
        folders: list[str] = []
        gone: list[str] = []
        for path in dict.fromkeys(os.path.abspath(os.fspath(p)) for p in paths):
            if os.path.isdir(path):
                folders.append(path)
                for file_path in _walk(path, skip=library_dir, unreadable=summary.failed):
                    files.setdefault(file_path, self._candidate(file_path))
            elif os.path.isfile(path):
                if kind_for_path(path) is not None:
                    files.setdefault(path, self._candidate(path))
            elif not os.path.exists(path):
                gone.append(path)
        # A file that vanished between the walk and its stat is gone, not failed.
        for path, cand in list(files.items()):
            if cand.error is not None and not os.path.lexists(path):
                del files[path]
                gone.append(path)
        work = self._compare(list(files.values()), folders, summary, False, progress, cancelled)
        # After the comparison: what moved away has been found at its new path already.
        with self.store.transaction():
            for path in gone:
                rows = self.store.files_under(path)
                row = self.store.get_file(path)
                for vanished in [row, *rows] if row is not None else rows:
                    if not os.path.exists(vanished.path):
                        self.store.remove_file(vanished.id)
                        summary.removed += 1
        if not cancelled():
            self._process(work, summary, progress, cancelled)
        summary.cancelled = cancelled()
        summary.seconds = round(time.perf_counter() - started, 3)
        return summary

    # -- scan --------------------------------------------------------------

    def _scan(
        self, paths: Iterable[str | os.PathLike], unreadable: list[dict[str, str]]
    ) -> tuple[list[_Candidate], list[str]]:
        files: dict[str, _Candidate] = {}
        folders: list[str] = []
        library_dir = os.path.abspath(self.store.path.parent)
        for raw in paths:
            path = os.path.abspath(os.fspath(raw))
            if not os.path.exists(path):
                raise UsageError(f"no such file or folder: {raw}")
            if os.path.isdir(path):
                folders.append(path)
                for file_path in _walk(path, skip=library_dir, unreadable=unreadable):
                    files.setdefault(file_path, self._candidate(file_path))
            else:
                files.setdefault(path, self._candidate(path, explicit=True))
        return list(files.values()), folders

    def _candidate(self, path: str, explicit: bool = False) -> _Candidate:
        kind = kind_for_path(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            return _Candidate(path, kind, 0, 0.0, self.store.get_file(path), error=_reason(exc))
        cand = _Candidate(path, kind, st.st_size, st.st_mtime, self.store.get_file(path))
        if kind is None and explicit:
            cand.error = f"unsupported file type {Path(path).suffix or '(no extension)'}; Shoebox indexes photos, documents and recordings"
        return cand

    # -- compare -----------------------------------------------------------

    def _compare(
        self,
        candidates: list[_Candidate],
        folders: list[str],
        summary: IndexSummary,
        retry_failed: bool,
        progress: ProgressCallback,
        cancelled: CancelCheck,
    ) -> list[_Candidate]:
        """Sort candidates into unchanged / moved / copied / to encode; record removals."""
        seen = {c.path for c in candidates}
        to_hash: list[_Candidate] = []
        for cand in candidates:
            row = cand.row
            if (
                cand.error is None
                and row is not None
                and row.size == cand.size
                and row.mtime == cand.mtime
                and (row.status is FileStatus.INDEXED or not retry_failed)
            ):
                summary.unchanged += 1
                continue
            to_hash.append(cand)

        # Hash in parallel: it is I/O and hashlib releases the GIL.
        def fill_hash(cand: _Candidate) -> None:
            if cand.error is None and cand.kind is not None:
                try:
                    cand.content_hash = content_hash(cand.path)
                except OSError as exc:
                    cand.error = _reason(exc)

        total = len(to_hash)
        with ThreadPoolExecutor(self.workers) as pool:
            for done, _ in enumerate(pool.map(fill_hash, to_hash), 1):
                if done % 64 == 0 or done == total:
                    progress(done, total, "comparing with the library")

        vanished = [
            row
            for folder in folders
            for row in self.store.files_under(folder)
            if row.path not in seen and not os.path.exists(row.path)
        ]
        vanished_by_hash: dict[str, list[FileRow]] = {}
        for row in vanished:
            if row.content_hash and row.status is FileStatus.INDEXED:
                vanished_by_hash.setdefault(row.content_hash, []).append(row)

        work: list[_Candidate] = []
        with self.store.transaction():
            for cand in to_hash:
                row = cand.row
                if cand.error is not None:
                    self._fail(cand, cand.error, summary)
                    continue
                if row is not None and row.status is FileStatus.INDEXED and row.content_hash == cand.content_hash:
                    self.store.touch_file(row.id, size=cand.size, mtime=cand.mtime)
                    summary.unchanged += 1
                    continue
                if row is None or row.status is FileStatus.FAILED:
                    source = self._moved_from(cand, vanished_by_hash)
                    if source is not None:
                        self.store.move_file(source.id, cand.path, size=cand.size, mtime=cand.mtime)
                        if source in vanished:
                            vanished.remove(source)
                        summary.moved += 1
                        continue
                    twins = [r for r in self.store.files_with_hash(cand.content_hash or "") if r.kind == cand.kind]
                    if twins:
                        self.store.copy_file(twins[0].id, cand.path, size=cand.size, mtime=cand.mtime)
                        summary.added += 1
                        continue
                cand.is_update = row is not None and row.status is FileStatus.INDEXED
                work.append(cand)
            for row in vanished:
                self.store.remove_file(row.id)
                summary.removed += 1
        return work

    def _moved_from(self, cand: _Candidate, vanished_by_hash: dict[str, list[FileRow]]) -> FileRow | None:
        rows = vanished_by_hash.get(cand.content_hash or "")
        if rows:
            return rows.pop()
        # Moved in from a folder outside this run's paths.
        for row in self.store.files_with_hash(cand.content_hash or ""):
            if row.kind == cand.kind and not os.path.exists(row.path):
                return row
        return None

    def _fail(self, cand: _Candidate, reason: str, summary: IndexSummary) -> None:
        self.store.record_failure(
            cand.path, size=cand.size, mtime=cand.mtime, kind=cand.kind, reason=reason, content_hash=cand.content_hash
        )
        summary.failed.append({"path": cand.path, "reason": reason})

    # -- extract, encode, store -------------------------------------------

    def _process(
        self, work: list[_Candidate], summary: IndexSummary, progress: ProgressCallback, cancelled: CancelCheck
    ) -> None:
        total = len(work)
        counter = [0]

        def step(cand: _Candidate) -> None:
            counter[0] += 1
            progress(counter[0], total, cand.path)

        by_kind = {k: [c for c in work if c.kind == k] for k in ("image", "document", "audio")}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="shoebox-extract") as pool:
            if by_kind["image"]:
                self._ensure_model("clip")
                self._process_images(pool, by_kind["image"], summary, step, cancelled)
            if (by_kind["document"] or by_kind["audio"]) and not cancelled():
                # Before any file is read: a missing text model stops the run with
                # its own message rather than failing every document for it.
                self._ensure_model("text")
            if by_kind["document"] and not cancelled():
                self._process_texts(
                    pool, by_kind["document"], self._prepare_document, summary, step, cancelled, lookahead=8
                )
            if by_kind["audio"] and not cancelled():
                # One recording at a time: decoded audio is large and Whisper is the bottleneck.
                self._process_texts(pool, by_kind["audio"], self._prepare_audio, summary, step, cancelled, lookahead=1)

    def _ordered(
        self,
        pool: ThreadPoolExecutor,
        fn: Callable[[_Candidate], Any],
        cands: Sequence[_Candidate],
        lookahead: int,
        cancelled: CancelCheck,
    ) -> Iterator[tuple[_Candidate, Any, BaseException | None]]:
        """Run ``fn`` on the pool, ``lookahead`` ahead of the consumer, yielding in order."""
        pending: deque[tuple[_Candidate, Future]] = deque()
        queue = iter(cands)
        try:
            for cand in queue:
                pending.append((cand, pool.submit(fn, cand)))
                if len(pending) >= lookahead:
                    break
            while pending:
                if cancelled():
                    return
                cand, future = pending.popleft()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(fn, nxt)))
                try:
                    yield cand, future.result(), None
                except Exception as exc:  # a bad file: reported by the consumer, never fatal
                    yield cand, None, exc
        finally:
            for _, future in pending:
                future.cancel()

    def _prepare_image(self, cand: _Candidate) -> tuple[Any, Any]:
        from .extractors.images import extract_image, save_thumbnail

        extracted = extract_image(cand.path, max_side=IMAGE_SIDE)
        if self.thumbnails_dir is not None and cand.content_hash:
            dest = thumbnail_path(self.thumbnails_dir, cand.content_hash)
            if not dest.exists():
                save_thumbnail(extracted.image, dest)
        return extracted, self.clip.preprocess(extracted.image)

    def _process_images(
        self,
        pool: ThreadPoolExecutor,
        cands: list[_Candidate],
        summary: IndexSummary,
        step: Callable[[_Candidate], None],
        cancelled: CancelCheck,
    ) -> None:
        import torch

        batch: list[tuple[_Candidate, Any, Any]] = []
        failures: list[tuple[_Candidate, str]] = []

        def flush() -> None:
            vectors = self.clip.encode_image_tensors(torch.stack([t for _, _, t in batch])) if batch else None
            with self.store.transaction():
                for row, (cand, extracted, _) in enumerate(batch):
                    assert vectors is not None  # the batch is not empty: it was encoded above
                    meta = dict(extracted.meta)
                    meta.update(width=extracted.width, height=extracted.height)
                    self.store.add_file(
                        cand.path,
                        size=cand.size,
                        mtime=cand.mtime,
                        content_hash=cand.content_hash,
                        kind="image",
                        media_time=_timestamp(extracted.media_time, cand.mtime),
                        meta=meta,
                        items=[NewItem("image")],
                        vectors=vectors[row : row + 1],
                    )
                    self._count(cand, summary)
                for cand, reason in failures:
                    self._fail(cand, reason, summary)
            batch.clear()
            failures.clear()

        for cand, prepared, exc in self._ordered(pool, self._prepare_image, cands, 2 * self.batch_size, cancelled):
            if exc is not None:
                failures.append((cand, _reason(exc)))
            else:
                batch.append((cand, prepared[0], prepared[1]))
            step(cand)
            if len(batch) >= self.batch_size:
                flush()
        if not cancelled() or failures:
            flush()

    def _check_models(self) -> None:
        """Refuse to start when a configured model is not the one that wrote a space's vectors.

        Costs no weights: an identity is a name, a tag or a cached hash.  A text
        model that is not on this computer is not checked here; it stops the run
        only if passages must be embedded.
        """
        for space in ("clip", "text"):
            if self.store.model_identity(space) is None:
                continue
            try:
                self._ensure_model(space)
            except ModelUnavailableError:
                continue

    def _ensure_model(self, space: str) -> None:
        """Record the model of ``space`` in the library (refusing another one) before encoding with it."""
        encoder = self.clip if space == "clip" else self.text
        if encoder is None:
            raise ModelUnavailableError(f"no {'CLIP' if space == 'clip' else 'text'} model is configured")
        identity = encoder.identity
        self.store.ensure_model(identity.name, identity.weights, identity.dim, space=space)

    def _passages_of_document(self, path: str) -> tuple[list[NewItem], Any]:
        from .extractors.documents import extract_document

        doc = extract_document(
            path, token_len=self.text.count_tokens, max_tokens=self._passage_tokens(), overlap_tokens=PASSAGE_OVERLAP
        )
        items = [
            NewItem("text", text=c.text, page=c.page, char_start=c.char_start, char_end=c.char_end)
            for c in doc.chunks
            if c.text.strip()
        ]
        if not items:
            raise ExtractionError("no text found in the document")
        return items, doc

    def _passage_tokens(self) -> int:
        return max(16, min(PASSAGE_TOKENS, int(self.text.max_tokens)))

    def _passages_of_transcript(self, segments: Sequence[NewItem]) -> list[NewItem]:
        from .extractors.chunking import group_segments

        texts = [seg.text or "" for seg in segments]
        windows = group_segments(
            texts,
            [(seg.start_s or 0.0, seg.end_s or 0.0) for seg in segments],
            self.text.count_tokens,
            max_tokens=min(SPEECH_PASSAGE_TOKENS, self._passage_tokens()),
            max_seconds=SPEECH_PASSAGE_SECONDS,
        )
        return [
            NewItem(
                "speech",
                text=" ".join(texts[i].strip() for i in range(first, last + 1)),
                start_s=segments[first].start_s,
                end_s=segments[last].end_s,
                language=segments[first].language,
            )
            for first, last in windows
        ]

    def _prepare_document(self, cand: _Candidate) -> tuple[list[NewItem], float | None, dict, list[NewItem]]:
        items, doc = self._passages_of_document(cand.path)
        return items, _timestamp(doc.media_time, cand.mtime), dict(doc.meta), []

    def _prepare_audio(self, cand: _Candidate) -> tuple[list[NewItem], float | None, dict, list[NewItem]]:
        from .extractors.audio import decode_audio

        audio = decode_audio(cand.path)
        if self.whisper is None:
            raise ExtractionError("speech recognition is not available (no Whisper model configured)")
        transcript = self.whisper.transcribe(audio.samples)
        segments = [
            NewItem(
                "speech",
                text=seg.text.strip(),
                start_s=float(seg.start),
                end_s=float(seg.end),
                language=transcript.language,
            )
            for seg in transcript.segments
            if seg.text.strip()
        ]
        meta = dict(audio.meta)
        meta.update(duration=audio.duration, language=transcript.language, segments=len(segments))
        return self._passages_of_transcript(segments), _timestamp(audio.media_time, cand.mtime), meta, segments

    def _process_texts(
        self,
        pool: ThreadPoolExecutor,
        cands: list[_Candidate],
        prepare: Callable[[_Candidate], Any],
        summary: IndexSummary,
        step: Callable[[_Candidate], None],
        cancelled: CancelCheck,
        lookahead: int,
    ) -> None:
        """Documents and recordings: their items are passages, embedded by the text model."""
        ready: list[tuple[_Candidate, list[NewItem], float, dict, list[NewItem]]] = []
        failures: list[tuple[_Candidate, str]] = []

        def flush() -> None:
            texts = [item.text for _, items, _, _, _ in ready for item in items]
            vectors = self.text.encode_passages(texts) if texts else None
            offset = 0
            with self.store.transaction():
                for cand, items, media_time, meta, transcript in ready:
                    self.store.add_file(
                        cand.path,
                        size=cand.size,
                        mtime=cand.mtime,
                        content_hash=cand.content_hash,
                        kind=cand.kind,
                        media_time=media_time,
                        meta=meta,
                        items=items,
                        # vectors is None only when no file in the batch has passages
                        vectors=vectors[offset : offset + len(items)] if items and vectors is not None else None,
                        transcript=transcript,
                    )
                    offset += len(items)
                    self._count(cand, summary)
                for cand, reason in failures:
                    self._fail(cand, reason, summary)
            ready.clear()
            failures.clear()

        pending_items = 0
        for cand, prepared, exc in self._ordered(pool, prepare, cands, lookahead, cancelled):
            if exc is not None:
                failures.append((cand, _reason(exc)))
            else:
                items, media_time, meta, transcript = prepared
                ready.append((cand, items, media_time, meta, transcript))
                pending_items += len(items)
            step(cand)
            if pending_items >= self.batch_size or len(ready) + len(failures) >= self.batch_size:
                flush()
                pending_items = 0
        if not cancelled() or failures:
            flush()

    # -- the text space, filled again ---------------------------------------

    def fill_text_space(
        self,
        summary: IndexSummary,
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> None:
        """Cut and embed again the passages of every file that has none in the text space.

        For a library from an older Shoebox (passages cut for CLIP) or after
        the text model changed.  Documents are read again from their files;
        recordings are cut from the transcript kept in the library, so Whisper
        does not run again.  A document that can no longer be read keeps its
        old passages, found by their words, until the next indexing run sees
        it.  Each batch of files is one transaction; cancelling keeps what is
        done.  Counts the files in ``summary.reembedded``.
        """
        progress = on_progress or (lambda done, total, message: None)
        cancelled = should_cancel or (lambda: False)
        files = self.store.files_missing_vectors("text")
        if not files:
            return
        self._ensure_model("text")
        total = len(files)

        def prepare(row: FileRow) -> list[NewItem]:
            if row.kind == "audio":
                return self._passages_of_transcript(self.store.transcript(row.id))
            return self._passages_of_document(row.path)[0]

        done = 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="shoebox-reembed") as pool:
            for start in range(0, total, self.batch_size):
                if cancelled():
                    return
                batch = files[start : start + self.batch_size]
                prepared: list[tuple[FileRow, list[NewItem]]] = []
                for row, future in [(row, pool.submit(prepare, row)) for row in batch]:
                    try:
                        items = future.result()
                    except Exception as exc:  # unreadable now: keeps its old passages, found by words
                        summary.warnings.append(f"{row.path}: passages kept as they were ({_reason(exc)})")
                        continue
                    if items:
                        prepared.append((row, items))
                texts = [item.text for _, items in prepared for item in items]
                vectors = self.text.encode_passages(texts) if texts else None
                offset = 0
                with self.store.transaction():
                    for row, items in prepared:
                        assert vectors is not None  # prepared holds only files with passages: encoded above
                        self.store.replace_items(row.id, items, vectors[offset : offset + len(items)])
                        offset += len(items)
                        summary.reembedded += 1
                done += len(batch)
                progress(done, total, "embedding passages for the text model")

    def restage(
        self,
        space: str,
        summary: IndexSummary,
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> bool:
        """Embed every item of ``space`` with the configured model beside the current vectors, then switch.

        Searches go on with the current vectors (and the model that made them)
        until every item has its new vector; then the library switches to the
        new ones in one transaction.  Photos are read again from their files (a
        photo that can no longer be read is recorded as failed, as indexing
        would, and one deleted leaves the library); passages are embedded from
        the text kept in the library, so no document is read and Whisper does
        not run again.  Stopping keeps what
        is done: the next call resumes.  Returns whether the switch was made.
        Counts the files in ``summary.reembedded``.
        """
        progress = on_progress or (lambda done, total, message: None)
        cancelled = should_cancel or (lambda: False)
        encoder = self.clip if space == "clip" else self.text
        identity = encoder.identity
        self.store.begin_restage(identity.name, identity.weights, identity.dim, space)
        what = "photos" if space == "clip" else "passages"
        message = f"re-embedding {what} with {identity.name}"
        total = self.store.count_items(space)
        left = len(self.store.staged_missing(space, 1 << 62))
        progress(total - left, total, message)
        files: set[int] = set()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="shoebox-reembed")
        try:
            while not cancelled():
                batch = self.store.staged_missing(space, self.batch_size)
                if not batch:
                    if self.store.finish_restage(space):
                        return True
                    continue  # items were added while switching: embed them too
                details = self.store.item_details(batch)
                batch = [i for i in batch if i in details]
                if space == "clip":
                    ids, vectors = self._restage_photos(pool, batch, details, summary)
                else:
                    ids, vectors = batch, self.text.encode_passages([details[i]["text"] or "" for i in batch])
                if ids:
                    self.store.add_staged_vectors(space, ids, vectors)
                    files.update(details[i]["file_id"] for i in ids)
                left = max(0, left - len(batch))
                progress(total - left, total, message)
            summary.cancelled = True
            return False
        finally:
            pool.shutdown()
            summary.reembedded += len(files)

    def _restage_photos(
        self, pool: ThreadPoolExecutor, batch: list[int], details: dict[int, dict], summary: IndexSummary
    ) -> tuple[list[int], Any]:
        """The new CLIP vectors of the photos ``batch``; photos that cannot be read are recorded as failed."""
        import torch

        from .extractors.images import extract_image

        def prepare(item_id: int) -> Any:
            return self.clip.preprocess(extract_image(details[item_id]["path"], max_side=IMAGE_SIDE).image)

        ids: list[int] = []
        tensors = []
        futures = [(item_id, pool.submit(prepare, item_id)) for item_id in batch]
        for item_id, future in futures:
            try:
                tensors.append(future.result())
                ids.append(item_id)
            except Exception as exc:  # a photo gone or broken since it was indexed
                path = details[item_id]["path"]
                try:
                    info = os.stat(path)
                except FileNotFoundError:
                    # Deleted since it was indexed: it leaves the library, as the next index run would do.
                    with self.store.transaction():
                        self.store.remove_file(details[item_id]["file_id"])
                    summary.removed += 1
                    continue
                except OSError:
                    info = None
                reason = _reason(exc)
                with self.store.transaction():
                    self.store.record_failure(
                        path,
                        size=info.st_size if info else -1,
                        mtime=info.st_mtime if info else 0.0,
                        kind="image",
                        reason=reason,
                    )
                summary.failed.append({"path": path, "reason": reason})
        if not ids:
            return [], None
        return ids, self.clip.encode_image_tensors(torch.stack(tensors))

    @staticmethod
    def _count(cand: _Candidate, summary: IndexSummary) -> None:
        if cand.is_update:
            summary.updated += 1
        else:
            summary.added += 1


def _walk(root: str, skip: str | None = None, unreadable: list[dict[str, str]] | None = None) -> Iterator[str]:
    """Files below ``root``, depth first, skipping hidden entries and symlink loops.

    Folders that cannot be listed are appended to ``unreadable`` as ``{path, reason}``.
    """
    visited: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append(
                {"path": exc.filename or root, "reason": f"cannot open the folder: {exc.strerror or exc}"}
            )

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            dirnames[:] = []
            continue
        visited.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and os.path.join(dirpath, d) != skip)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            try:
                if not stat.S_ISREG(os.stat(full).st_mode):
                    continue
            except OSError:
                continue  # a dangling symlink
            if kind_for_path(full) is not None:
                yield full
