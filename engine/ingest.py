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
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import (
    Cancelled,
    ExtractionError,
    ModelMismatchError,
    ModelUnavailableError,
    ShoeboxError,
    UsageError,
)
from .extractors import kind_for_path
from .store import FileRow, FileStatus, NewItem, space_of
from .stores import Store

# Photos are decoded at this longest side: enough for CLIP's 224-pixel input
# (short side >= 224 up to 2:1) and the 320-pixel thumbnail, and small enough
# that JPEG draft mode decodes a 12-megapixel photo at 1/8 scale.  Image
# queries are prepared the same way, so a photo searched by itself matches.
IMAGE_SIDE = 448
# ... or up to a quarter larger, as decoded: a 12-megapixel photo's 1/8 scale
# (504 x 378) is not resized again before CLIP's and the thumbnail's own resize.
IMAGE_SLACK = 1.25
# Passages for the text model: up to this many of its tokens, sentence-aware,
# overlapping by about PASSAGE_OVERLAP tokens.  Long enough to hold a thought
# and its context, short enough that a passage is about one thing.
PASSAGE_TOKENS = 256
PASSAGE_OVERLAP = 32
# Transcript passages are shorter: a result plays from the passage's start, so
# it should not start long before what was searched for.
SPEECH_PASSAGE_TOKENS = 128
SPEECH_PASSAGE_SECONDS = 40.0
# A run's first batch: the batches double from here up to the batch size, so the
# model starts on the first photos while the next are read (a full first batch
# leaves the model idle until it is read) and the first files are found sooner.
FIRST_BATCH = 8

ProgressCallback = Callable[[int, int, str], None]
CancelCheck = Callable[[], bool]


def read_photo(path: str | os.PathLike[str]) -> Any:
    """A picture decoded as indexing reads photos (an :class:`~engine.extractors.images.ExtractedImage`).

    Image queries are read by this too, so that a photo searched by itself matches.
    """
    from .extractors.images import extract_image

    return extract_image(path, max_side=IMAGE_SIDE, slack=IMAGE_SLACK)


# A file indexed before a model was here lists in its meta, under this key, what
# it still waits for: "clip" (a photo's or video's picture), "speech" (a
# recording's or video's sound) and/or "text" (vectors for its passages).
WAITING = "waiting"
_MODEL_NAMES = {"clip": "CLIP model", "text": "text model", "speech": "speech model"}
# (what, (one file, many files), how they are found now (one, many), how once the model is here (one, many))
WAITING_MESSAGES = (
    (
        "clip",
        ("photo or video", "photos and videos"),
        ("its name, date and any text in it", "name, date and any text in them"),
        ("what it shows", "what they show"),
    ),
    (
        "speech",
        ("recording or video", "recordings and videos"),
        ("its name and date", "name and date"),
        ("what is said in it", "what is said in them"),
    ),
    ("text", ("file", "files"), ("its words", "their words"), ("meaning", "meaning")),
)


def describe_waiting(counts: dict[str, int]) -> list[str]:
    """One line per model that files wait for: "3 photos and videos: found by ... now, by ... once ..."."""
    lines = []
    for what, nouns, now, later in WAITING_MESSAGES:
        n = counts.get(what, 0)
        if n:
            many = int(n != 1)
            lines.append(
                f"{n} {nouns[many]}: found by {now[many]} now, by {later[many]} once the {_MODEL_NAMES[what]} is set up"
            )
    return lines


def approximate_tokens(text: str) -> int:
    """A generous count of a sentence-embedding model's tokens, for cutting passages before it is here.

    Word-piece tokenizers give a common English word one token and a rare one
    a few; each CJK character may be one token, punctuation is one.  Counting
    a word as one token per four letters (at least one) and every CJK
    character and punctuation mark as one stays at or above the real count
    for ordinary prose, so a passage cut with it fits the model later.
    """
    count = 0
    for match in _TOKEN_RE.finditer(text):
        piece = match.group()
        if piece[0].isalnum() and not _is_cjk(piece[0]):
            count += max(1, -(-len(piece) // 4))
        else:
            count += len(piece) if _is_cjk(piece[0]) else 1
    return count


_TOKEN_RE = re.compile(r"[^\W\d_]+|\d+|[^\w\s]", re.UNICODE)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3040 <= code <= 0x30FF  # kana
        or 0x3400 <= code <= 0x9FFF  # CJK ideographs
        or 0xAC00 <= code <= 0xD7A3  # Hangul syllables
        or 0x1100 <= code <= 0x11FF  # Hangul jamo
        or 0xF900 <= code <= 0xFAFF
    )


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
    # Files of this run stored without a model they need, per model ("clip", "speech", "text").
    waiting: dict[str, int] = field(default_factory=dict)
    completed: int = 0  # files that waited for a model and were finished now

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


@dataclass
class _Prepared:
    """One file read and ready to encode: its items in order (pictures first) and CLIP inputs."""

    cand: _Candidate
    items: list[NewItem]
    media_time: float | None
    meta: dict[str, Any]
    transcript: list[NewItem] = field(default_factory=list)
    tensors: list[Any] = field(default_factory=list)  # one per picture item, when CLIP is here
    sound: bool = False  # a video with a sound track


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
    """Indexes files into a :class:`~engine.stores.Store` with injected encoders.

    ``clip`` is a :class:`engine.models.ClipEncoder` (or anything with the same
    methods), ``text`` a :class:`engine.models.TextEncoder`, ``whisper`` a
    :class:`engine.models.WhisperTranscriber`.  Each is loaded by its first
    use, so a run that only removes or moves files never loads a model.
    """

    def __init__(
        self,
        store: Store,
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
        # Which models this run can use, found out once, without loading weights (see _check_ready).
        self._ready_checked = False
        self._ready: set[str] = set()
        self._missing: dict[str, str] = {}
        self._ocr = False
        self._ocr_reason: str | None = None
        self._ocr_problems: list[str] = []
        self._cancelled: CancelCheck = lambda: False  # the running call's should_cancel
        # update() stores only files still inside a library folder when their batch commits: a
        # folder forgotten while a watcher's batch was read must not come back with it.
        self._within_roots = False

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
        path does not exist.  A model whose weights are missing does not stop
        the run: files are stored with what needs no model and wait for it
        (``summary.waiting`` and ``warnings`` say which); files that waited
        and whose model is here now are finished (:meth:`complete_waiting`).
        A model that cannot be loaded although its weights are there raises
        :class:`ModelUnavailableError`; files finished before that stay committed.
        """
        started = time.perf_counter()
        progress = on_progress or (lambda done, total, message: None)
        cancelled = should_cancel or (lambda: False)
        summary = IndexSummary()
        self._cancelled = cancelled
        self._check_models()

        progress(0, 0, "looking for files")
        candidates, folders = self._scan(paths, summary.failed)
        for folder in folders:
            self.store.add_root(folder)
        work = self._compare(candidates, folders, summary, retry_failed, progress, cancelled)
        if not cancelled():
            self._process(work, summary, progress, cancelled)
        if not cancelled() and self.store.has_waiting():
            self.complete_waiting(summary, on_progress=progress, should_cancel=cancelled)
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
        self._cancelled = cancelled
        self._within_roots = True
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

        by_kind = {k: [c for c in work if c.kind == k] for k in ("image", "document", "audio", "video")}
        if any(by_kind.values()):
            self.check_ready()
        # Record each model in the library (refusing another) before anything is encoded with it.
        if "clip" in self._ready and (by_kind["image"] or by_kind["video"]):
            self._ensure_model("clip")
        if "text" in self._ready and (by_kind["document"] or by_kind["audio"] or by_kind["video"] or by_kind["image"]):
            self._ensure_model("text")
        with ThreadPoolExecutor(self.workers, thread_name_prefix="shoebox-extract") as pool:
            plan: list[tuple[str, Callable[[_Candidate], _Prepared], int]] = [
                ("image", self._prepare_image, 2 * self.batch_size),
                ("document", self._prepare_document, 8),
                # One recording or video at a time: decoded audio is large and Whisper is the bottleneck.
                ("audio", self._prepare_audio, 1),
                ("video", self._prepare_video, 1),
            ]
            for kind, prepare, lookahead in plan:
                if by_kind[kind] and not cancelled():
                    self._process_files(pool, by_kind[kind], prepare, summary, step, cancelled, lookahead)
        self._report_waiting(work, summary)

    # -- which models are here ----------------------------------------------

    def check_ready(self) -> None:
        """Find out, without loading any weights, which models this run can use.

        A model that is not on this computer does not stop the run: what needs
        no model is stored at once (names, dates, document text, recognised
        text, transcripts when Whisper is here) and the file remembers what it
        waits for (``meta["waiting"]``); :meth:`complete_waiting` finishes it
        once the model is set up.
        """
        if self._ready_checked:
            return
        self._ready_checked = True
        checks = {
            "clip": (self.clip, "locate_weights"),
            "text": (self.text, "locate"),
            "speech": (self.whisper, "locate_weights"),
        }
        for what, (model, method) in checks.items():
            if model is None:
                self._missing[what] = f"no {_MODEL_NAMES[what]} is configured"
                continue
            locate = getattr(model, method, None)
            try:
                if locate is not None:
                    locate()
            except ModelUnavailableError as exc:
                self._missing[what] = str(exc)
                continue
            self._ready.add(what)
        from .extractors.ocr import ocr_status

        status = ocr_status()
        self._ocr = status.available
        self._ocr_reason = status.reason

    @property
    def ready(self) -> set[str]:
        """The models this run can use ("clip", "text", "speech"), once :meth:`check_ready` ran."""
        return set(self._ready)

    def _token_len(self) -> Callable[[str], int]:
        return self.text.count_tokens if "text" in self._ready else approximate_tokens

    def _passage_tokens(self) -> int:
        if "text" not in self._ready:
            return PASSAGE_TOKENS
        return max(16, min(PASSAGE_TOKENS, int(self.text.max_tokens)))

    # -- extract, encode, store ------------------------------------------------

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

    def _save_thumbnail(self, image: Any, digest: str | None) -> None:
        from .extractors.images import save_thumbnail

        if self.thumbnails_dir is not None and digest:
            dest = thumbnail_path(self.thumbnails_dir, digest)
            if not dest.exists():
                save_thumbnail(image, dest)

    def _recognised_passages(self, text: str) -> list[NewItem]:
        """Text recognised in a picture, cut into passages (``ocr`` items)."""
        from .extractors.chunking import chunk_text

        tokens = self._passage_tokens()
        spans = chunk_text(text, tokens, min(PASSAGE_OVERLAP, tokens - 1), token_len=self._token_len())
        return [
            NewItem("ocr", text=text[start:end], char_start=start, char_end=end)
            for start, end in spans
            if text[start:end].strip()
        ]

    def _photo_text(self, path: str, image: Any) -> str:
        if not self._ocr:
            return ""
        from .extractors.ocr import photo_text

        try:
            return photo_text(path, image)
        except ExtractionError as exc:
            # The photo itself was read: it is indexed without its text, and the run says why.
            self._ocr_problems.append(f"{path}: its text could not be recognised ({exc})")
            return ""

    def _prepare_image(self, cand: _Candidate) -> _Prepared:
        extracted = read_photo(cand.path)
        self._save_thumbnail(extracted.image, cand.content_hash)
        meta = dict(extracted.meta)
        meta.update(width=extracted.width, height=extracted.height)
        items = [NewItem("image")]
        recognised = self._photo_text(cand.path, extracted.image)
        if recognised:
            items += self._recognised_passages(recognised)
            meta["recognised_text"] = True
        tensors = [self.clip.preprocess(extracted.image)] if "clip" in self._ready else []
        return _Prepared(cand, items, _timestamp(extracted.media_time, cand.mtime), meta, tensors=tensors)

    def _passages_of_document(self, path: str) -> tuple[list[NewItem], Any]:
        from .extractors.documents import extract_document

        doc = extract_document(
            path,
            token_len=self._token_len(),
            max_tokens=self._passage_tokens(),
            overlap_tokens=PASSAGE_OVERLAP,
            ocr=True,  # scanned pages are read when OCR is on; when it is off the reason says why
        )
        items = [
            NewItem(
                "ocr" if c.recognised else "text",
                text=c.text,
                page=c.page,
                char_start=c.char_start,
                char_end=c.char_end,
            )
            for c in doc.chunks
            if c.text.strip()
        ]
        if not items:
            raise ExtractionError("no text found in the document")
        return items, doc

    def _passages_of_transcript(self, segments: Sequence[NewItem]) -> list[NewItem]:
        from .extractors.chunking import group_segments

        texts = [seg.text or "" for seg in segments]
        windows = group_segments(
            texts,
            [(seg.start_s or 0.0, seg.end_s or 0.0) for seg in segments],
            self._token_len(),
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

    def _prepare_document(self, cand: _Candidate) -> _Prepared:
        items, doc = self._passages_of_document(cand.path)
        return _Prepared(cand, items, _timestamp(doc.media_time, cand.mtime), dict(doc.meta))

    def _transcribe(self, samples: Any) -> tuple[list[NewItem], str | None]:
        """Whisper's segments of ``samples`` as speech items, and the language heard."""
        # Whisper may take minutes on a long recording: a cancelled run stops it between segments.
        transcript = self.whisper.transcribe(samples, should_cancel=self._cancelled)
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
        return segments, transcript.language

    def _prepare_audio(self, cand: _Candidate) -> _Prepared:
        from .extractors.audio import decode_audio

        if "speech" not in self._ready:
            # Checked without decoding it all: a broken file fails now, not when Whisper arrives.
            audio = decode_audio(cand.path, max_seconds=1.0)
            meta = dict(audio.meta)
            # Found by its name and date until it is transcribed; the placeholder has no text.
            return _Prepared(cand, [NewItem("speech", start_s=0.0)], _timestamp(audio.media_time, cand.mtime), meta)
        audio = decode_audio(cand.path)
        segments, language = self._transcribe(audio.samples)
        meta = dict(audio.meta)
        meta.update(duration=audio.duration, language=language, segments=len(segments))
        return _Prepared(
            cand,
            self._passages_of_transcript(segments),
            _timestamp(audio.media_time, cand.mtime),
            meta,
            transcript=segments,
        )

    def _frames(self, path: str) -> tuple[Any, list[NewItem], list[Any]]:
        """A video's sampled frames: the extraction, one image item per frame and their CLIP inputs."""
        from .extractors.video import extract_video

        video = extract_video(path, max_side=IMAGE_SIDE)
        times = [frame.time_s for frame in video.frames]
        ends = [*times[1:], max(video.duration, times[-1] if times else 0.0)]
        items = [NewItem("image", start_s=t, end_s=end) for t, end in zip(times, ends, strict=True)]
        tensors = [self.clip.preprocess(f.image) for f in video.frames] if "clip" in self._ready else []
        return video, items, tensors

    def _prepare_video(self, cand: _Candidate) -> _Prepared:
        from .errors import NoPictureError
        from .extractors.video import video_sound

        try:
            video, items, tensors = self._frames(cand.path)
        except NoPictureError:
            # Sound without a picture (an .mp4 that is a voice memo): it is a recording.
            cand.kind = "audio"
            return self._prepare_audio(cand)
        if video.frames:
            self._save_thumbnail(video.poster().image, cand.content_hash)
        meta = dict(video.meta)
        meta.update(width=video.width, height=video.height, duration=video.duration)
        segments: list[NewItem] = []
        if video.has_audio and "speech" in self._ready:
            sound = video_sound(cand.path)
            if sound is not None:
                segments, meta["language"] = self._transcribe(sound.samples)
                meta["segments"] = len(segments)
        return _Prepared(
            cand,
            items + self._passages_of_transcript(segments),
            _timestamp(video.media_time, cand.mtime),
            meta,
            transcript=segments,
            tensors=tensors,
            sound=video.has_audio,
        )

    def _waiting_for(self, prepared: _Prepared) -> list[str]:
        """What a prepared file still needs a model for: "clip", "speech" and/or "text"."""
        kind = prepared.cand.kind
        waits = []
        if kind in ("image", "video") and "clip" not in self._ready:
            waits.append("clip")
        if (kind == "audio" or (kind == "video" and prepared.sound)) and "speech" not in self._ready:
            waits.append("speech")
        if "text" not in self._ready and any(space_of(i.modality) == "text" and i.text for i in prepared.items):
            waits.append("text")
        return waits

    def _process_files(
        self,
        pool: ThreadPoolExecutor,
        cands: list[_Candidate],
        prepare: Callable[[_Candidate], _Prepared],
        summary: IndexSummary,
        step: Callable[[_Candidate], None],
        cancelled: CancelCheck,
        lookahead: int,
    ) -> None:
        """Prepare files on the pool, encode them in batches on this thread, store each batch in one transaction."""
        ready: list[_Prepared] = []
        failures: list[tuple[_Candidate, str]] = []

        def flush() -> None:
            vectors = self._encode(ready)
            with self.store.transaction():
                for prepared, rows in zip(ready, vectors, strict=True):
                    cand = prepared.cand
                    if self._within_roots and self.store.root_of(cand.path) is None:
                        continue  # its folder was forgotten while it was read
                    meta = dict(prepared.meta)
                    waiting = self._waiting_for(prepared)
                    if waiting:
                        meta[WAITING] = waiting
                    self.store.add_file(
                        cand.path,
                        size=cand.size,
                        mtime=cand.mtime,
                        content_hash=cand.content_hash,
                        kind=cand.kind,
                        media_time=prepared.media_time,
                        meta=meta,
                        items=prepared.items,
                        vectors=rows,
                        transcript=prepared.transcript,
                    )
                    self._count(cand, summary)
                for cand, reason in failures:
                    if not (self._within_roots and self.store.root_of(cand.path) is None):
                        self._fail(cand, reason, summary)
            ready.clear()
            failures.clear()

        pending = 0
        batch = min(FIRST_BATCH, self.batch_size)
        for cand, prepared, exc in self._ordered(pool, prepare, cands, lookahead, cancelled):
            if isinstance(exc, Cancelled):
                break  # stopped while Whisper listened: the file is indexed by the next run
            if exc is not None:
                failures.append((cand, _reason(exc)))
            else:
                ready.append(prepared)
                pending += max(len(prepared.tensors), len(prepared.items))
            step(cand)
            if pending >= batch or len(ready) + len(failures) >= batch:
                flush()
                pending = 0
                batch = min(2 * batch, self.batch_size)
        if not cancelled() or failures:
            flush()

    def _encode(self, batch: Sequence[_Prepared]) -> list[dict[str, Any]]:
        """Each prepared file's vectors per space, encoded for the whole batch at once (one model call per space)."""
        out: list[dict[str, Any]] = [{} for _ in batch]
        if "clip" in self._ready and any(p.tensors for p in batch):
            import torch

            tensors = [t for p in batch for t in p.tensors]
            clip_rows = self.clip.encode_image_tensors(torch.stack(tensors))
            offset = 0
            for rows, prepared in zip(out, batch, strict=True):
                if prepared.tensors:
                    rows["clip"] = clip_rows[offset : offset + len(prepared.tensors)]
                    offset += len(prepared.tensors)
        if "text" in self._ready:
            texts = [[i.text or "" for i in p.items if space_of(i.modality) == "text"] for p in batch]
            # A recording's placeholder (no text yet) gets no vector; every other file's passages have text.
            wanted = [n for n, file_texts in enumerate(texts) if file_texts and all(file_texts)]
            if wanted:
                text_rows = self.text.encode_passages([t for n in wanted for t in texts[n]])
                offset = 0
                for n in wanted:
                    out[n]["text"] = text_rows[offset : offset + len(texts[n])]
                    offset += len(texts[n])
        return out

    def _report_waiting(self, work: Sequence[_Candidate], summary: IndexSummary) -> None:
        """Say what works now and what follows, for the files of this run that wait for a model."""
        if self._ocr_problems:
            summary.warnings += self._ocr_problems
            self._ocr_problems = []
        paths = [c.path for c in work]
        if not paths or not self._missing:
            return
        counts = self.store.count_waiting(paths)
        summary.waiting = {what: n for what, n in counts.items() if n}
        for what, line in zip(
            [w for w, *_ in WAITING_MESSAGES if counts.get(w)], describe_waiting(counts), strict=True
        ):
            summary.warnings.append(f"{line} ({self._missing.get(what, 'it is not set up')})")

    # -- files that wait for a model ----------------------------------------

    def complete_waiting(
        self,
        summary: IndexSummary,
        *,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> None:
        """Finish files that were indexed before a model was here, now that it is.

        Photos are read once more for CLIP (their recognised text stays);
        videos give their frames again; recordings and videos are transcribed;
        passages stored without vectors are embedded from their stored text,
        so no document is read again.  Each file is one transaction; a file
        that cannot be read now keeps waiting, and the summary says so.
        Counts finished files in ``summary.completed``.
        """
        progress = on_progress or (lambda done, total, message: None)
        cancelled = should_cancel or (lambda: False)
        self._cancelled = cancelled
        self.check_ready()
        order = [w for w in ("clip", "speech", "text") if w in self._ready]
        rows: dict[int, FileRow] = {}
        for what in order:
            for row in self.store.files_waiting(what):
                rows.setdefault(row.id, row)
        if not rows:
            return
        for space in ("clip", "text"):
            if space in self._ready:
                self._ensure_model(space)
        total = len(rows)
        for done, row in enumerate(sorted(rows.values(), key=lambda r: r.id), 1):
            if cancelled():
                summary.cancelled = True
                return
            progress(done - 1, total, f"finishing {os.path.basename(row.path)}")
            try:
                self._complete(row)
            except Cancelled:
                summary.cancelled = True
                return
            except (ModelUnavailableError, ModelMismatchError):
                raise
            except Exception as exc:  # unreadable now: it keeps waiting, found as before
                summary.warnings.append(f"{row.path}: still waits ({_reason(exc)})")
                continue
            summary.completed += 1
        progress(total, total, "finishing files that waited for a model")

    def _complete(self, row: FileRow) -> None:
        waiting = [w for w in row.meta.get(WAITING, []) if w in self._ready]
        meta = dict(row.meta)
        still = [w for w in meta.get(WAITING, []) if w not in waiting]
        new_items: list[NewItem] = []
        new_vectors: dict[str, Any] = {}
        clip_for: list[int] = []
        clip_rows: Any = None
        replace: list[str] = []
        transcript: list[NewItem] | None = None
        if "clip" in waiting:
            import torch

            if row.kind == "video":
                _, frames, tensors = self._frames(row.path)
                new_items += frames
                replace.append("image")
                if tensors:
                    new_vectors["clip"] = self.clip.encode_image_tensors(torch.stack(tensors))
            else:
                image = read_photo(row.path).image
                clip_for = [item_id for item_id, _ in self.store.items_missing_vectors(row.id, "clip")]
                if clip_for:  # a photo has one picture item: its vector, once per item waiting for it
                    vector = self.clip.encode_image_tensors(torch.stack([self.clip.preprocess(image)]))
                    clip_rows = vector.repeat(len(clip_for), axis=0)
        if "speech" in waiting:
            if row.kind == "video":
                from .extractors.video import video_sound

                sound = video_sound(row.path)
                samples = sound.samples if sound is not None else None
            else:
                from .extractors.audio import decode_audio

                audio = decode_audio(row.path)
                samples = audio.samples
                meta["duration"] = audio.duration
            segments, language = self._transcribe(samples) if samples is not None else ([], None)
            meta.update(language=language, segments=len(segments))
            passages = self._passages_of_transcript(segments)
            new_items += passages
            replace.append("speech")
            transcript = segments
            if passages and "text" in self._ready:
                new_vectors["text"] = self.text.encode_passages([p.text or "" for p in passages])
            elif passages:
                still.append("text")
        text_for: list[tuple[int, NewItem]] = []
        text_rows: Any = None
        if "text" in self._ready:
            text_for = [(i, item) for i, item in self.store.items_missing_vectors(row.id, "text") if item.text]
            if "speech" in replace:
                text_for = [(i, item) for i, item in text_for if item.modality != "speech"]
            if text_for:
                text_rows = self.text.encode_passages([item.text or "" for _, item in text_for])
        if still:
            meta[WAITING] = sorted(set(still))
        else:
            meta.pop(WAITING, None)
        with self.store.transaction():
            if self.store.get_file_by_id(row.id) is None:
                return  # removed meanwhile
            if transcript is not None:
                self.store.set_transcript(row.id, transcript)
            if replace:
                ordered = [i for i in new_items if i.modality == "image"] + [
                    i for i in new_items if i.modality != "image"
                ]
                self.store.replace_items(row.id, ordered, new_vectors or None, modalities=replace)
            if clip_for:
                self.store.add_vectors("clip", clip_for, clip_rows)
            if text_for:
                self.store.add_vectors("text", [i for i, _ in text_for], text_rows)
            self.store.set_file_meta(row.id, meta)

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
        # Pictures' recognised text and files that wait for a model are finished by complete_waiting.
        files = [
            row
            for row in self.store.files_missing_vectors("text")
            if row.kind in ("document", "audio") and not row.meta.get(WAITING)
        ]
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

        frames: dict[str, Future] = {}  # a video's frames, decoded once for all of its items in the batch

        def video_frames(path: str) -> list[Any]:
            from .extractors.video import extract_video

            return extract_video(path, max_side=IMAGE_SIDE).frames

        def prepare(item_id: int) -> Any:
            d = details[item_id]
            if d["kind"] == "video":
                # The same frames are chosen again; the one nearest the item's time is its picture.
                start = float(d["locator"].get("start") or 0.0)
                found = frames[d["path"]].result()
                if not found:
                    raise ExtractionError("the video shows no picture any more")
                frame = min(found, key=lambda f: abs(f.time_s - start))
                return self.clip.preprocess(frame.image)
            return self.clip.preprocess(read_photo(d["path"]).image)

        for item_id in batch:
            if details[item_id]["kind"] == "video" and details[item_id]["path"] not in frames:
                frames[details[item_id]["path"]] = pool.submit(video_frames, details[item_id]["path"])

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
                        kind=details[item_id]["kind"],
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
