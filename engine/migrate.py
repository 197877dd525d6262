"""Copying a library from its SQLite file into a PostgreSQL database, and checking the copy.

``shoebox store migrate --to postgresql://...`` runs :func:`migrate_library`: every row of
the SQLite library (folders, files, items, transcripts, tags with their sources and scores,
the model identities that say which table holds each space's vectors) is copied with its id
into an empty PostgreSQL database, in one transaction, through COPY.  Vectors are copied as
they are stored, never encoded again, and each space's vector index is built once they are
all there.  The word and name indexes are built in the target by the PostgreSQL store's own
indexing hooks, so their word rules are those of a library indexed there from the start.

Then :func:`verify_migration` compares the two: the row counts of every table, and what
searches return: for a sample of stored items, their vector's exact ten nearest neighbours in
the SQLite library against the server index's answer, and for a sample of words and file-name
words, the items and files each store finds.  Nothing is changed in the SQLite library.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LibraryError, UsageError
from .store import _MODEL_KEY, SPACES, LibraryStore
from .stores import is_postgres, open_store, redact

if TYPE_CHECKING:
    from .postgres_store import PostgresStore
    from .settings import Settings
    from .stores import Store

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, str], None]
CancelCheck = Callable[[], bool]

BATCH = 5000  # rows read from SQLite and written to the server at a time
NEIGHBOURS = 10  # the k of the nearest-neighbour check
# The server's index (HNSW or IVFFlat) is approximate: the check wants the same first result
# for every sampled item (its own vector) and at least this share of the exact ten on average.
MIN_OVERLAP = 0.8

# Every table copied, its columns, and the columns its rows are read in order of.
_TABLES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("roots", ("path", "added_at"), ("path",)),
    (
        "files",
        (
            "id",
            "path",
            "folder",
            "size",
            "mtime",
            "content_hash",
            "kind",
            "status",
            "error",
            "media_time",
            "meta",
            "indexed_at",
            "autotag_sig",
        ),
        ("id",),
    ),
    (
        "items",
        ("id", "file_id", "seq", "modality", "text", "page", "char_start", "char_end", "start_s", "end_s", "language"),
        ("id",),
    ),
    ("transcript_segments", ("file_id", "seq", "start_s", "end_s", "text", "language"), ("file_id", "seq")),
    ("tags", ("id", "name", "source"), ("id",)),
    ("file_tags", ("file_id", "tag_id", "source", "score"), ("file_id", "tag_id")),
)
# Library state kept in meta that a copy must carry: how many vector tables were made (a later
# re-embed numbers its table after them) and the tags' version (cached tag filters follow it).
# The model identities (which name each space's table) are copied with their tables.
_META_KEYS = ("vector_tables_made", "tags_version")


@dataclass
class TableCount:
    """Rows of one table (or one space's vectors) in the SQLite library and in its copy."""

    table: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


@dataclass
class NeighbourCheck:
    """How the copy's vector index answers for a sample of ``space``'s own stored vectors.

    ``first_same``: samples whose first result is the exact one (or as near: a tie);
    ``overlap``: the mean share of the exact ten nearest that the copy returned too;
    ``vectors_same``: whether the sampled vectors are stored bit for bit alike.
    """

    space: str
    samples: int
    first_same: int
    overlap: float
    vectors_same: bool
    index: str = ""

    @property
    def ok(self) -> bool:
        return self.vectors_same and self.first_same == self.samples and self.overlap >= MIN_OVERLAP


@dataclass
class LookupCheck:
    """Whether both stores find the same items (``what`` "words") or files ("names") for a sample of words."""

    what: str
    words: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.different


@dataclass
class MigrationSummary:
    """What :func:`migrate_library` copied and what the check found; ``ok`` when every check passed."""

    source: str
    target: str  # without any password
    seconds: float = 0.0
    cancelled: bool = False
    counts: list[TableCount] = field(default_factory=list)
    neighbours: list[NeighbourCheck] = field(default_factory=list)
    lookups: list[LookupCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.cancelled
            and all(c.ok for c in self.counts)
            and all(n.ok for n in self.neighbours)
            and all(w.ok for w in self.lookups)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 2),
            "counts": [{"table": c.table, "source": c.source, "target": c.target, "ok": c.ok} for c in self.counts],
            "neighbours": [
                {
                    "space": n.space,
                    "index": n.index,
                    "samples": n.samples,
                    "first_same": n.first_same,
                    "overlap": round(n.overlap, 4),
                    "vectors_same": n.vectors_same,
                    "ok": n.ok,
                }
                for n in self.neighbours
            ],
            "lookups": [{"what": w.what, "words": w.words, "different": w.different, "ok": w.ok} for w in self.lookups],
            "notes": self.notes,
        }


class _Stop(Exception):
    """Raised inside the copy's transaction when the cancel check says stop: everything is rolled back."""


def migrate_library(
    source: Store,
    target: str,
    settings: Settings,
    *,
    on_progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    sample: int = 20,
) -> MigrationSummary:
    """Copy the SQLite library ``source`` into the empty PostgreSQL database at ``target``, then check the copy.

    ``target`` is any libpq address; ``settings`` gives the vector index the copy is built
    with (``pg_index``, ``pg_m`` ...).  Everything is copied in one transaction: a cancel
    (``should_cancel``, checked between batches) or an error leaves the target as empty as it
    was.  ``on_progress(done, total, message)`` is called between batches; ``sample`` is how
    many items, words and names per check :func:`verify_migration` samples.

    Raises :class:`UsageError` when ``source`` is not a SQLite library or ``target`` not a
    PostgreSQL address, :class:`LibraryError` when the target cannot be reached or already
    holds a library.  Returns a :class:`MigrationSummary` (``cancelled`` when stopped).
    """
    if source.serves_vectors or not isinstance(source, LibraryStore):
        raise UsageError(
            f"the library is already kept in PostgreSQL ({source.location()}); `shoebox store migrate` copies the "
            f"SQLite library of a home folder (run it with --store '' to copy the SQLite file there)"
        )
    if not is_postgres(target):
        raise UsageError(
            f"{redact(target)!r} is not a PostgreSQL address; write it as postgresql://user@host/database "
            "or as libpq words (host=... dbname=...)"
        )
    import psycopg

    started = time.monotonic()
    summary = MigrationSummary(source=source.location(), target=redact(target))
    store = _open_target(target, settings)
    try:
        try:
            _copy(source, store, summary, on_progress, should_cancel)
        except psycopg.Error as exc:  # a row the server refuses: nothing was copied
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise LibraryError(
                f"could not copy the library into {store.location()}: {first}; nothing was copied",
                plain=f"The library could not be copied into {store.location()}: {first}. Nothing was copied.",
            ) from None
        except _Stop:
            summary.cancelled = True
            summary.notes.append("stopped before the end: nothing was copied (the target is as empty as before)")
            summary.seconds = time.monotonic() - started
            return summary
        store.analyze()
        if on_progress is not None:
            on_progress(0, 0, "checking the copy")
        verify_migration(source, store, summary, sample=sample)
    finally:
        store.close()
    summary.seconds = time.monotonic() - started
    return summary


def _open_target(target: str, settings: Settings) -> PostgresStore:
    from .postgres_store import PostgresStore

    store = open_store(replace(settings, store=target))
    assert isinstance(store, PostgresStore)  # open_store opens a PostgreSQL address with it
    return store


def holds_library(store: Store) -> int:
    """How many files, folders, tags and recorded models ``store`` holds (0: an empty library)."""
    rows = sum(_count(store, table) for table in ("files", "roots", "tags"))
    return rows + sum(store.model_identity(space) is not None for space in SPACES)


def _copy(
    source: LibraryStore,
    target: PostgresStore,
    summary: MigrationSummary,
    on_progress: ProgressCallback | None,
    should_cancel: CancelCheck | None,
) -> None:
    """Every row of ``source`` into ``target``, in one transaction of the target (and one snapshot of the source)."""
    done = 0

    def step(rows: int, message: str) -> None:
        nonlocal done
        if should_cancel is not None and should_cancel():
            raise _Stop
        done += rows
        if on_progress is not None:
            on_progress(min(done, total), total, message)

    # The target's write transaction holds the library's write lock: no other client writes meanwhile.
    with source.snapshot(), target.transaction():
        held = holds_library(target)
        if held:
            raise LibraryError(
                f"the database at {target.location()} already holds a library ({_count(target, 'files')} files); "
                "`shoebox store migrate` copies into an empty database: create one (CREATE DATABASE ...) or use "
                "this one as it is with --store",
                plain=f"The PostgreSQL database {target.location()} already holds a library; choose an empty one.",
            )
        spaces = [space for space in SPACES if source.model_identity(space) is not None]
        text_rows = _count(source, "items", "text IS NOT NULL AND text != ''")
        name_rows = _count(source, "files", "status = 'indexed'")
        total = (
            sum(_count(source, table) for table, _, _ in _TABLES)
            + sum(source.count_items(space) for space in spaces)
            + text_rows
            + name_rows
        )
        step(0, "copying the library")
        for key in _META_KEYS:
            value = source.get_meta(key)
            if value is not None:
                target._set_meta(key, value)
        for table, columns, order in _TABLES:
            target.copy_rows(table, columns, _batches(source, table, columns, order, step, summary))
        for space in spaces:
            identity = source.model_identity(space)
            assert identity is not None
            table = source.vector_table(space)
            # The identity names the table: the copy keeps the name, so a later re-embed numbers after it.
            target._set_meta(_MODEL_KEY[space], source.get_meta(_MODEL_KEY[space], ""))
            label = "photos" if space == "clip" else "passages"
            target.load_vectors(table, int(identity["dim"]), _vector_batches(source, space, step, label))
            staged = source.staged_model(space)
            if staged is not None:
                summary.notes.append(
                    f"a re-embed of the {label} for {staged['name']} was under way; its vectors so far were not "
                    "copied: run `shoebox reembed` on the new library to do it there"
                )
        target.index_item_texts(
            _pairs(source, "items", "id, text", "text IS NOT NULL AND text != ''", step, "indexing words")
        )
        target.index_file_names(_pairs(source, "files", "id, path", "status = 'indexed'", step, "indexing names"))
        target.restart_identities()
        target._bump_generation()
        step(0, "committing")


def _clean(value: Any) -> Any:
    """A SQLite value as PostgreSQL text takes it: text may not hold NUL characters there."""
    return value.replace("\x00", "") if isinstance(value, str) and "\x00" in value else value


def _batches(
    source: LibraryStore,
    table: str,
    columns: Sequence[str],
    order: Sequence[str],
    step: Callable[[int, str], None],
    summary: MigrationSummary,
) -> Iterator[list[tuple]]:
    """The rows of ``table`` in batches, read in key order (each batch starts after the last key read)."""
    key_at = [columns.index(c) for c in order]
    after: tuple | None = None
    cleaned = 0
    while True:
        where = ""
        params: list[Any] = []
        if after is not None:
            where = f" WHERE ({', '.join(order)}) > ({', '.join('?' * len(order))})"
            params = list(after)
        rows = source._query(
            f"SELECT {', '.join(columns)} FROM {table}{where} ORDER BY {', '.join(order)} LIMIT ?", [*params, BATCH]
        )
        if not rows:
            break
        out = []
        for row in rows:
            clean = tuple(_clean(v) for v in row)
            cleaned += clean != tuple(row)
            out.append(clean)
        step(len(rows), f"copying {table.replace('_', ' ')}")
        yield out
        after = tuple(rows[-1][i] for i in key_at)
    if cleaned:
        summary.notes.append(f"{cleaned} rows of {table} held NUL characters, which PostgreSQL text cannot: left out")


def _vector_batches(
    source: LibraryStore, space: str, step: Callable[[int, str], None], label: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for ids, vectors in source.iter_vectors(BATCH, space=space):
        step(len(ids), f"copying the vectors of the {label}")
        yield ids, vectors


def _pairs(
    source: LibraryStore, table: str, columns: str, where: str, step: Callable[[int, str], None], message: str
) -> Iterator[tuple[int, str]]:
    """(id, text) rows of ``table`` passing ``where``, in id order, a batch at a time."""
    last = -1
    while True:
        rows = source._query(
            f"SELECT {columns} FROM {table} WHERE id > ? AND {where} ORDER BY id LIMIT ?", (last, BATCH)
        )
        if not rows:
            return
        step(len(rows), message)
        for item_id, text in rows:
            yield int(item_id), _clean(text)
        last = int(rows[-1][0])


def _count(store: Store, table: str, where: str = "") -> int:
    sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
    return int(store._query(sql)[0][0])  # type: ignore[attr-defined]


# -- checking the copy ----------------------------------------------------------


def verify_migration(source: Store, target: Store, summary: MigrationSummary, *, sample: int = 20) -> None:
    """Compare ``target`` with ``source`` and record what was found in ``summary``.

    Counts: files, items, each space's vectors, transcript segments, tags, file tags, folders,
    and the rows of the word and name indexes.  Searches: for ``sample`` stored items per
    space (spread evenly over the ids), their own vector's exact ten nearest neighbours in
    ``source`` against ``target.vector_knn``; for ``sample`` words taken from passages and
    from file names, the items (files) that each store's keyword (name) search finds.
    """
    tables = [table for table, _, _ in _TABLES]
    for table in ("files", "items"):
        summary.counts.append(TableCount(table, _count(source, table), _count(target, table)))
    for space in SPACES:
        if source.model_identity(space) is not None or target.model_identity(space) is not None:
            label = "vectors of photos" if space == "clip" else "vectors of passages"
            summary.counts.append(TableCount(label, source.count_items(space), target.count_items(space)))
    for table in tables:
        if table not in ("files", "items"):
            summary.counts.append(TableCount(table.replace("_", " "), _count(source, table), _count(target, table)))
    summary.counts.append(
        TableCount(
            "word index", _count(source, "items", "text IS NOT NULL AND text != ''"), _count(target, "item_text")
        )
    )
    summary.counts.append(TableCount("name index", _count(source, "file_names"), _count(target, "file_names")))
    for space in SPACES:
        if source.model_identity(space) is not None:
            summary.neighbours.append(_check_neighbours(source, target, space, sample))
    summary.lookups.append(_check_words(source, target, sample))
    summary.lookups.append(_check_names(source, target, sample))


def _spread(ids: np.ndarray, n: int) -> list[int]:
    """``n`` of ``ids`` spread evenly from first to last (all of them when there are no more)."""
    if len(ids) <= n:
        return [int(i) for i in ids]
    return [int(ids[i]) for i in np.linspace(0, len(ids) - 1, n).round().astype(int)]


def _check_neighbours(source: Store, target: Store, space: str, sample: int) -> NeighbourCheck:
    ids = _spread(source.item_catalog(space=space)[0], sample)
    index = ""
    describe = getattr(target, "describe_index", None)
    if describe is not None:
        index = str(describe(space)["index"])
    if not ids:
        return NeighbourCheck(space, 0, 0, 1.0, True, index)
    vectors = source.vectors(ids, space=space)
    try:
        copied = target.vectors(ids, space=space)
        same = bool(np.array_equal(vectors, copied))
    except KeyError:
        same = False
    first_same = 0
    overlaps = []
    for vector in vectors:
        exact = source.vector_knn(vector, NEIGHBOURS, space=space)
        found = target.vector_knn(vector, NEIGHBOURS, space=space)
        if found and exact and (found[0][0] == exact[0][0] or abs(found[0][1] - exact[0][1]) < 1e-5):
            first_same += 1  # the same item, or one as near (two copies of a photo share a vector)
        wanted = {i for i, _ in exact}
        overlaps.append(len(wanted & {i for i, _ in found}) / max(1, len(wanted)))
    return NeighbourCheck(space, len(ids), first_same, float(np.mean(overlaps)), same, index)


_WORD = re.compile(r"\w{3,}")


def _sample_words(texts: Sequence[str], sample: int) -> list[str]:
    """The longest word of each text (the most particular), without repeats, up to ``sample``."""
    words: list[str] = []
    for text in texts:
        found = [w for w in _WORD.findall(text or "") if not w.isdigit()]
        if found:
            word = max(found, key=len)
            if word.lower() not in {w.lower() for w in words}:
                words.append(word)
        if len(words) >= sample:
            break
    return words


def _check_words(source: Store, target: Store, sample: int) -> LookupCheck:
    ids = source._query("SELECT id FROM items WHERE text IS NOT NULL AND text != '' ORDER BY id")  # type: ignore[attr-defined]
    picked = _spread(np.array([r[0] for r in ids], np.int64), sample * 2)
    texts = [source.item_details([i])[i]["text"] for i in picked]
    check = LookupCheck("words", _sample_words(texts, sample))
    limit = max(1, source.count_items())  # every match: a cut-off would depend on each store's ranking
    for word in check.words:
        if {i for i, _ in source.keyword_search([word], limit)} != {i for i, _ in target.keyword_search([word], limit)}:
            check.different.append(word)
    return check


def _check_names(source: Store, target: Store, sample: int) -> LookupCheck:
    ids = source._query("SELECT id FROM files WHERE status = 'indexed' ORDER BY id")  # type: ignore[attr-defined]
    picked = _spread(np.array([r[0] for r in ids], np.int64), sample * 2)
    paths = [row.path for row in (source.get_file_by_id(i) for i in picked) if row is not None]
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    check = LookupCheck("names", _sample_words(stems, sample))
    limit = max(1, _count(source, "files"))
    for word in check.words:
        if {i for i, _ in source.name_search([word], limit)} != {i for i, _ in target.name_search([word], limit)}:
            check.different.append(word)
    return check
