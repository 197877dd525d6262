"""The library store: one SQLite database (through apsw) holding everything.

Files, items, tags, vectors (sqlite-vec ``vec0``) and item text (FTS5) live in
one database file in WAL mode.  It is the single source of truth: every
derived structure (the HNSW graphs, thumbnails) can be rebuilt from it.

Vectors live in two *spaces*, one table each, because two models make them:
``clip`` (``item_vectors``: photos, embedded by CLIP's image tower and reached
by its text tower) and ``text`` (``text_vectors``: document passages and
transcript passages, embedded by a sentence-embedding model).  Each space
records the identity of the model that wrote it and refuses another.

Text is indexed three ways, all in folded form (see :mod:`engine.text`):
``item_words`` holds word keys (whole words and stems, for spaced scripts),
``item_text`` the folded text with the trigram tokenizer (substrings, for CJK),
and ``file_names`` the words of each file's name and folders.

The schema is created by numbered migrations (``PRAGMA user_version``); a
database written by a newer Shoebox is refused.  The vector tables are created
when the library first learns which model fills them, because their dimension
comes from the model.

Writes happen in explicit ``BEGIN IMMEDIATE`` transactions so that a process
killed at any moment leaves either all of a file's rows or none of them.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import apsw
import numpy as np
import sqlite_vec

from .errors import LibraryError, ModelMismatchError, SchemaTooNewError
from .query import Filters, TagsMode
from .text import Term, fold, index_words, name_index, parse_query

KINDS = ("image", "document", "audio", "video")
# The vector spaces: which table holds them, which meta key names their model,
# and which items (by modality) belong to each.
SPACES = ("clip", "text")
_VECTOR_TABLE = {"clip": "item_vectors", "text": "text_vectors"}  # each space's table until its first re-embed
_MODEL_KEY = {"clip": "model", "text": "text_model"}
_MODALITIES = {"clip": ("image",), "text": ("text", "speech", "ocr")}
# Where a page of browsing ended: the last file's (media time, id); see LibraryStore.browse_files.
BrowseKey = tuple[float | None, int]


def space_of(modality: str) -> str:
    """The vector space of an item of ``modality`` (image -> clip; text, speech, ocr -> text)."""
    return "clip" if modality == "image" else "text"


PASSAGE_CONTEXT_CHARS = 1500  # how much of a passage's page a preview shows on each side of it
# Keyword search leaves out a typed word found in more than this share of the
# items (and at least COMMON_TERM_MIN of them) while a rarer word remains.
COMMON_TERM_SHARE = 0.01
COMMON_TERM_MIN = 500

# Each entry upgrades the schema by one version.  Never edit a released step:
# add a new one.
MIGRATIONS: list[str] = [
    # 1: files, items, tags, full text.
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE roots (
        path     TEXT PRIMARY KEY,
        added_at REAL NOT NULL
    );
    CREATE TABLE files (
        id           INTEGER PRIMARY KEY,
        path         TEXT NOT NULL UNIQUE,
        folder       TEXT NOT NULL,
        size         INTEGER NOT NULL,
        mtime        REAL NOT NULL,
        content_hash TEXT,
        kind         TEXT CHECK (kind IN ('image', 'document', 'audio')),
        status       TEXT NOT NULL CHECK (status IN ('indexed', 'failed')),
        error        TEXT,
        media_time   REAL,
        meta         TEXT,
        indexed_at   REAL NOT NULL
    );
    CREATE INDEX files_hash ON files (content_hash);
    CREATE INDEX files_kind_time ON files (kind, media_time);
    CREATE INDEX files_time ON files (media_time);
    CREATE INDEX files_folder ON files (folder);
    CREATE INDEX files_status ON files (status);
    CREATE TABLE items (
        id         INTEGER PRIMARY KEY,
        file_id    INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        seq        INTEGER NOT NULL,
        modality   TEXT NOT NULL CHECK (modality IN ('image', 'text', 'speech')),
        text       TEXT,
        page       INTEGER,
        char_start INTEGER,
        char_end   INTEGER,
        start_s    REAL,
        end_s      REAL,
        language   TEXT
    );
    CREATE INDEX items_file ON items (file_id, seq);
    CREATE TABLE tags (
        id     INTEGER PRIMARY KEY,
        name   TEXT NOT NULL UNIQUE COLLATE NOCASE,
        source TEXT NOT NULL DEFAULT 'user' CHECK (source IN ('user', 'auto'))
    );
    CREATE TABLE file_tags (
        file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        tag_id  INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
        PRIMARY KEY (file_id, tag_id)
    ) WITHOUT ROWID;
    CREATE INDEX file_tags_tag ON file_tags (tag_id, file_id);
    CREATE VIRTUAL TABLE item_text USING fts5 (
        text, content = 'items', content_rowid = 'id', tokenize = 'trigram'
    );
    -- Every item gets an FTS row (a photo's is empty), so FTS5's own integrity
    -- check can compare the index with the items table.
    CREATE TRIGGER items_text_insert AFTER INSERT ON items BEGIN
        INSERT INTO item_text (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER items_text_delete AFTER DELETE ON items BEGIN
        INSERT INTO item_text (item_text, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    """,
    # 2: a log of item changes (derived indexes catch up from it), the source
    # of each file's tag (the user's own, CLIP's auto-tags, or an auto-tag the
    # user removed and must not get back), and which auto-tag vocabulary a
    # photo was last tagged with.
    """
    CREATE TABLE items_log (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id INTEGER NOT NULL,
        op      INTEGER NOT NULL  -- 1: added, 0: removed
    );
    CREATE TRIGGER items_log_insert AFTER INSERT ON items BEGIN
        INSERT INTO items_log (item_id, op) VALUES (new.id, 1);
    END;
    CREATE TRIGGER items_log_delete AFTER DELETE ON items BEGIN
        INSERT INTO items_log (item_id, op) VALUES (old.id, 0);
    END;
    ALTER TABLE file_tags ADD COLUMN source TEXT NOT NULL DEFAULT 'user'
        CHECK (source IN ('user', 'auto', 'rejected'));
    ALTER TABLE file_tags ADD COLUMN score REAL;
    ALTER TABLE files ADD COLUMN autotag_sig TEXT;
    """,
    # 3: two vector spaces; words, substrings and names indexed in folded form;
    # transcripts kept, so passages can be re-cut without running Whisper again.
    # The Python half (_migrate_3) fills the new indexes from the items.
    """
    CREATE TABLE transcript_segments (
        file_id  INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        seq      INTEGER NOT NULL,
        start_s  REAL NOT NULL,
        end_s    REAL NOT NULL,
        text     TEXT NOT NULL,
        language TEXT,
        PRIMARY KEY (file_id, seq)
    ) WITHOUT ROWID;
    INSERT INTO transcript_segments (file_id, seq, start_s, end_s, text, language)
        SELECT file_id, seq, coalesce(start_s, 0), coalesce(end_s, 0), coalesce(text, ''), language
        FROM items WHERE modality = 'speech';
    DROP TRIGGER items_text_insert;
    DROP TRIGGER items_text_delete;
    DROP TABLE item_text;
    CREATE VIRTUAL TABLE item_text USING fts5 (text, tokenize = 'trigram');
    CREATE VIRTUAL TABLE item_words USING fts5 (
        words, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 0'
    );
    CREATE VIRTUAL TABLE file_names USING fts5 (
        words, plain, tokenize = 'unicode61 remove_diacritics 0'
    );
    """,
    # 4: videos (a file kind) and text recognised in pictures (an item
    # modality).  SQLite cannot change a CHECK constraint in place, so both
    # tables are rebuilt with the same rows and ids (foreign keys are off
    # meanwhile: see _migrate).
    """
    CREATE TABLE files_new (
        id           INTEGER PRIMARY KEY,
        path         TEXT NOT NULL UNIQUE,
        folder       TEXT NOT NULL,
        size         INTEGER NOT NULL,
        mtime        REAL NOT NULL,
        content_hash TEXT,
        kind         TEXT CHECK (kind IN ('image', 'document', 'audio', 'video')),
        status       TEXT NOT NULL CHECK (status IN ('indexed', 'failed')),
        error        TEXT,
        media_time   REAL,
        meta         TEXT,
        indexed_at   REAL NOT NULL,
        autotag_sig  TEXT
    );
    INSERT INTO files_new (id, path, folder, size, mtime, content_hash, kind, status, error, media_time, meta,
                           indexed_at, autotag_sig)
        SELECT id, path, folder, size, mtime, content_hash, kind, status, error, media_time, meta,
               indexed_at, autotag_sig FROM files;
    DROP TABLE files;
    ALTER TABLE files_new RENAME TO files;
    CREATE INDEX files_hash ON files (content_hash);
    CREATE INDEX files_kind_time ON files (kind, media_time);
    CREATE INDEX files_time ON files (media_time);
    CREATE INDEX files_folder ON files (folder);
    CREATE INDEX files_status ON files (status);
    CREATE TABLE items_new (
        id         INTEGER PRIMARY KEY,
        file_id    INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        seq        INTEGER NOT NULL,
        modality   TEXT NOT NULL CHECK (modality IN ('image', 'text', 'speech', 'ocr')),
        text       TEXT,
        page       INTEGER,
        char_start INTEGER,
        char_end   INTEGER,
        start_s    REAL,
        end_s      REAL,
        language   TEXT
    );
    INSERT INTO items_new (id, file_id, seq, modality, text, page, char_start, char_end, start_s, end_s, language)
        SELECT id, file_id, seq, modality, text, page, char_start, char_end, start_s, end_s, language FROM items;
    DROP TABLE items;
    ALTER TABLE items_new RENAME TO items;
    CREATE INDEX items_file ON items (file_id, seq);
    CREATE TRIGGER items_log_insert AFTER INSERT ON items BEGIN
        INSERT INTO items_log (item_id, op) VALUES (new.id, 1);
    END;
    CREATE TRIGGER items_log_delete AFTER DELETE ON items BEGIN
        INSERT INTO items_log (item_id, op) VALUES (old.id, 0);
    END;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
# Migrations that rebuild a table others refer to run with foreign keys off.
_REBUILDING_MIGRATIONS = {4}


class FileStatus(str, enum.Enum):
    """What became of a file the library knows (the ``files.status`` column)."""

    INDEXED = "indexed"  # its items are searchable
    FAILED = "failed"  # it could not be read; ``error`` says why


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    size: int
    mtime: float
    content_hash: str | None
    kind: str | None
    status: FileStatus
    error: str | None
    media_time: float | None
    meta: dict = field(default_factory=dict)


@dataclass
class NewItem:
    """One findable piece of a file, before it is stored."""

    modality: str  # image (a photo or a video frame) | text | speech | ocr (text recognised in a picture)
    text: str | None = None
    page: int | None = None
    char_start: int | None = None
    char_end: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    language: str | None = None


# Vectors for a file's items: None (none yet), one array (every item is in one
# space), or one array per space, its rows in the order of that space's items.
VectorRows = np.ndarray | dict[str, np.ndarray] | None


_FILE_COLUMNS = "id, path, size, mtime, content_hash, kind, status, error, media_time, meta"


def _file_row(row: Sequence[Any]) -> FileRow:
    meta = json.loads(row[9]) if row[9] else {}
    return FileRow(row[0], row[1], row[2], row[3], row[4], row[5], FileStatus(row[6]), row[7], row[8], meta)


def _folder_of(path: str) -> str:
    return os.path.dirname(path)


def _under(folder: str) -> tuple[str, str]:
    """SQL range bounds that select every path strictly inside ``folder``."""
    prefix = folder.rstrip(os.sep) + os.sep
    # os.sep + 1 is the next character after the separator: a half-open range
    # that an index on path can serve, unlike LIKE with its escaping trouble.
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)


class LibraryStore:
    """The library database.

    ``LibraryStore(path)`` opens (creating if needed) the database at ``path``
    and migrates it to the current schema.  Raises :class:`SchemaTooNewError`
    for a database from a newer Shoebox and :class:`LibraryError` when the file
    is not a usable database.  One instance may be used from several threads:
    writes (and reads outside a snapshot) are serialised on one connection;
    reads inside :meth:`snapshot` go through a connection of their thread's
    own and see one committed state while writers go on (WAL mode).
    """

    # Shoebox's own HNSW graphs answer vector searches, following the item log (engine.index.live).
    serves_vectors = False

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._local = threading.local()  # this thread's snapshot connection, while one is open
        self._readers: list[apsw.Connection] = []  # every thread's read connection, closed with the store
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect(readonly)
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate(readonly)
        except apsw.Error as exc:
            raise LibraryError(f"cannot open the library at {self.path}: {exc}") from None
        self._tag_files: dict[tuple, np.ndarray] = {}
        # space -> ((items_version, vector table), count)
        self._item_count: dict[str | None, tuple[tuple[int, str], int]] = {}
        self._match_counts: dict[tuple[str, str, bool], tuple[int, int]] = {}  # -> (items_version, count)

    def _connect(self, readonly: bool) -> apsw.Connection:
        flags = apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
        db = apsw.Connection(str(self.path), flags=flags)
        db.enable_load_extension(True)
        db.load_extension(sqlite_vec.loadable_path())
        db.enable_load_extension(False)
        db.set_busy_timeout(10_000)
        db.execute("PRAGMA foreign_keys = ON")
        # NORMAL is durable in WAL mode except for the last transactions on
        # power loss; it never corrupts the database.
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    @contextmanager
    def snapshot(self) -> Iterator[int]:
        """Make every read on this thread inside the block see one committed state of the library.

        Yields the state's ``items_version``.  Writers (this store's own
        connection, another thread, another process) go on committing; the
        block sees none of it, so a search never meets an item deleted between
        two of its reads.  The reads go through this thread's own connection
        (WAL lets it read while another writes), so they take no lock and never
        wait for a write transaction.  Nested blocks share the outer snapshot.
        Keep it short: the write-ahead log cannot be checkpointed past an open snapshot.
        """
        if getattr(self._local, "snapshot", None) is not None:
            yield self.items_version()
            return
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._connect(readonly=self.readonly)
            self._local.reader = reader
            with self._lock:
                self._readers.append(reader)
        reader.execute("BEGIN")
        try:
            self._local.snapshot = reader
            yield self.items_version()  # the first read fixes the snapshot
        finally:
            self._local.snapshot = None
            reader.execute("COMMIT")

    @property
    def in_snapshot(self) -> bool:
        """Whether this thread is inside :meth:`snapshot`."""
        return getattr(self._local, "snapshot", None) is not None

    # -- lifecycle ---------------------------------------------------------

    def location(self) -> str:
        """Where the library is kept, for people (the database file)."""
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._db.close()

    def __enter__(self) -> LibraryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self, readonly: bool) -> None:
        version = self._query("PRAGMA user_version")[0][0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"the library at {self.path} was written by a newer Shoebox (schema {version}, "
                f"this one knows up to {SCHEMA_VERSION}); update Shoebox to open it"
            )
        if version == SCHEMA_VERSION:
            return
        if readonly:
            raise LibraryError(f"the library at {self.path} needs an upgrade; open it once for writing")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            rebuilding = number in _REBUILDING_MIGRATIONS
            if rebuilding:
                # Dropping a table that others refer to would cascade its deletes
                # (SQLite's documented way to rebuild a table: foreign keys off,
                # outside the transaction, and checked before committing).
                self._db.execute("PRAGMA foreign_keys = OFF")
            try:
                with self.transaction():
                    self._db.execute(MIGRATIONS[number - 1])
                    follow_up = getattr(self, f"_migrate_{number}", None)
                    if follow_up is not None:
                        follow_up()
                    if rebuilding and self._query("PRAGMA foreign_key_check"):
                        raise LibraryError(f"the library at {self.path} could not be upgraded: its rows do not agree")
                    self._db.execute(f"PRAGMA user_version = {number}")
            finally:
                if rebuilding:
                    self._db.execute("PRAGMA foreign_keys = ON")

    def _migrate_3(self) -> None:
        """Fill the folded word, substring and name indexes; clear CLIP vectors of passages.

        Passages keep their text (keyword search finds them at once) and get
        text-space vectors when the library is next indexed or re-embedded.
        """
        rows = self._query("SELECT id, text FROM items WHERE text IS NOT NULL AND text != ''")
        for item_id, text in rows:
            self._index_item_text(item_id, text)
        for file_id, path in self._query("SELECT id, path FROM files WHERE status = 'indexed'"):
            self._index_file_name(file_id, path)
        if self._table_exists("item_vectors"):
            self._db.execute(
                "DELETE FROM item_vectors WHERE item_id IN (SELECT id FROM items WHERE modality != 'image')"
            )
        # A saved HNSW graph holds the passages' CLIP vectors: mark every change
        # before now as gone from the log, so a saved graph is rebuilt, never trusted.
        version = self._query("SELECT seq FROM sqlite_sequence WHERE name = 'items_log'")
        self._set_meta("items_log_pruned", str((version[0][0] if version else 0) + 1))
        self._bump_generation()

    def _table_exists(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction: everything inside commits together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] | dict = ()) -> list[tuple]:
        reader = getattr(self._local, "snapshot", None)
        if reader is not None:
            return reader.execute(sql, params).fetchall()
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _exec(self, sql: str, params: Sequence[Any] | dict = ()) -> int:
        """Run a write on the writer's connection; returns how many rows it changed."""
        with self._lock:
            self._db.execute(sql, params)
            return self._db.changes()

    def _insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an ``INSERT ... RETURNING id`` on the writer's connection; returns the new row's id."""
        with self._lock:
            row: Any = self._db.execute(sql, params).fetchall()[0]
            return int(row[0])

    def _written(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """A read on the writer's connection (what this transaction wrote so far), never a snapshot's."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def integrity_check(self) -> str:
        """'ok', or what SQLite found wrong (the database file and the full-text index)."""
        result = self._query("PRAGMA integrity_check")[0][0]
        if result != "ok":
            return result
        try:
            self._exec("INSERT INTO item_text (item_text, rank) VALUES ('integrity-check', 1)")
        except apsw.Error as exc:
            return f"full-text index: {exc}"
        return "ok"

    # -- meta and model ----------------------------------------------------

    @overload
    def get_meta(self, key: str) -> str | None: ...
    @overload
    def get_meta(self, key: str, default: str) -> str: ...
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def _set_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def generation(self) -> int:
        """A number that grows whenever items or vectors change (derived indexes compare it)."""
        return int(self.get_meta("generation", "0"))

    def _bump_generation(self) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES ('generation', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def model_identity(self, space: str = "clip") -> dict | None:
        """The model that wrote the vectors of ``space``: ``{name, weights, dim}`` (and ``table``), or None."""
        raw = self.get_meta(_MODEL_KEY[space])
        return json.loads(raw) if raw else None

    def vector_table(self, space: str) -> str:
        """The table that holds the searchable vectors of ``space`` (a re-embed writes a new one, then switches)."""
        return _table_of(space, self.model_identity(space))

    def vector_table_is_first(self, space: str) -> bool:
        """Whether ``space``'s vectors are still in the table its first model made (never re-embedded)."""
        return self.vector_table(space) == _VECTOR_TABLE[space]

    @staticmethod
    def same_model(space: str, a: dict | None, b: dict | None) -> bool:
        """Whether two recorded identities are the same model (a text model by its weights: its name may be a folder)."""
        if a is None or b is None:
            return a is b
        if space == "clip":
            return (a["name"], a["weights"], int(a["dim"])) == (b["name"], b["weights"], int(b["dim"]))
        return (a["weights"], int(a["dim"])) == (b["weights"], int(b["dim"]))

    # -- re-embedding beside the current vectors -----------------------------

    def staged_model(self, space: str) -> dict | None:
        """The model a re-embed of ``space`` is writing vectors for (beside the searchable ones), or None."""
        raw = self.get_meta(_MODEL_KEY[space] + "_next")
        return json.loads(raw) if raw else None

    def begin_restage(self, name: str, weights: str, dim: int, space: str) -> dict:
        """Start, or resume, writing the vectors of ``space`` for another model beside the current ones.

        Searches keep using the current vectors (and model) until
        :meth:`finish_restage` switches to the new ones in one transaction.
        Vectors already written for the same model are kept (a stopped
        re-embed resumes); those of a different model are dropped.  Returns
        the staged identity.
        """
        wanted: dict[str, Any] = {"name": name, "weights": weights, "dim": int(dim)}
        with self.transaction():
            if self.model_identity(space) is None:
                raise LibraryError(f"the library has no {space} vectors to re-embed yet")
            staged = self.staged_model(space)
            if staged is not None and self.same_model(space, staged, wanted):
                return staged
            if staged is not None:
                self._exec(f"DROP TABLE IF EXISTS {staged['table']}")
            number = int(self.get_meta("vector_tables_made", "0")) + 1
            self._set_meta("vector_tables_made", str(number))
            wanted["table"] = f"{_VECTOR_TABLE[space]}_{number}"
            self._create_vector_table(wanted["table"], int(dim))
            self._set_meta(_MODEL_KEY[space] + "_next", json.dumps(wanted, sort_keys=True))
            return wanted

    def staged_missing(self, space: str, limit: int) -> list[int]:
        """Items of ``space`` that have no vector yet for the staged model (empty when none is staged)."""
        staged = self.staged_model(space)
        if staged is None:
            return []
        marks = ",".join("?" * len(_MODALITIES[space]))
        rows = self._query(
            f"SELECT i.id FROM items i WHERE i.modality IN ({marks}) AND NOT EXISTS "
            f"(SELECT 1 FROM {staged['table']} v WHERE v.item_id = i.id) ORDER BY i.id LIMIT ?",
            (*_MODALITIES[space], int(limit)),
        )
        return [r[0] for r in rows]

    def add_staged_vectors(self, space: str, item_ids: Sequence[int], vectors: np.ndarray) -> int:
        """Write vectors for the staged model; items deleted meanwhile are skipped.  Returns how many were written."""
        with self.transaction():
            staged = self.staged_model(space)
            if staged is None:
                raise LibraryError(f"no re-embed of the {space} vectors is under way")
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            if len(item_ids) != len(vectors) or (len(vectors) and vectors.shape[1] != int(staged["dim"])):
                raise ValueError(f"{len(item_ids)} items need as many {staged['dim']}-dimensional vectors")
            written = 0
            for item_id, vector in zip(item_ids, vectors, strict=True):
                rows = self._query(
                    "SELECT f.kind, f.media_time FROM items i JOIN files f ON f.id = i.file_id WHERE i.id = ?",
                    (int(item_id),),
                )
                if not rows:
                    continue  # deleted since it was read
                self._exec(f"DELETE FROM {staged['table']} WHERE item_id = ?", (int(item_id),))
                self._insert_vector(staged["table"], int(item_id), vector, rows[0][0], rows[0][1])
                written += 1
            return written

    def finish_restage(self, space: str) -> bool:
        """Switch ``space`` to the staged vectors and model at once, if every item has one; returns whether it did."""
        with self.transaction():
            staged = self.staged_model(space)
            if staged is None or self.staged_missing(space, 1):
                return False
            old = self.vector_table(space)
            self._set_meta(_MODEL_KEY[space], json.dumps(staged, sort_keys=True))
            self._exec("DELETE FROM meta WHERE key = ?", (_MODEL_KEY[space] + "_next",))
            self._exec(f"DROP TABLE IF EXISTS {old}")
            self._bump_generation()
            return True

    def abandon_restage(self, space: str) -> None:
        """Drop the vectors written for a staged model (the current ones stay as they are)."""
        with self.transaction():
            staged = self.staged_model(space)
            if staged is not None:
                self._exec(f"DROP TABLE IF EXISTS {staged['table']}")
                self._exec("DELETE FROM meta WHERE key = ?", (_MODEL_KEY[space] + "_next",))

    def _create_vector_table(self, table: str, dim: int) -> None:
        self._exec(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0 ("
            f"item_id INTEGER PRIMARY KEY, embedding float[{int(dim)}] distance_metric=cosine, "
            f"kind TEXT, media_time FLOAT)"
        )

    def ensure_model(self, name: str, weights: str, dim: int, space: str = "clip") -> None:
        """Record the model of ``space`` on first use; refuse a different one afterwards.

        A text model is the same when its weights and dimension are (its name
        may be a folder's).  Raises :class:`ModelMismatchError` naming the
        command that re-embeds the library.
        """
        wanted: dict[str, Any] = {"name": name, "weights": weights, "dim": int(dim)}
        with self.transaction():
            current = self.model_identity(space)
            if current is None:
                self._set_meta(_MODEL_KEY[space], json.dumps(wanted, sort_keys=True))
                self._create_vector_table(_VECTOR_TABLE[space], int(dim))
                return
        if self.same_model(space, current, wanted):
            return
        staged = self.staged_model(space)
        if staged is not None and self.same_model(space, staged, wanted):
            raise ModelMismatchError(
                f"this library is being re-embedded with {name} ({weights}); run `shoebox reembed` to finish "
                f"(searches use the previous model meanwhile), then index again"
            )
        if space == "clip":
            raise ModelMismatchError(
                f"this library was built with CLIP {current['name']} ({current['weights']}, {current['dim']} dimensions) "
                f"but {name} ({weights}) is configured; set SHOEBOX_CLIP_MODEL={current['name']} "
                f"SHOEBOX_CLIP_PRETRAINED={current['weights']} to use it as it is, or run "
                f"`shoebox reembed` to re-encode the library with the new model"
            )
        raise ModelMismatchError(
            f"this library's passages were embedded with the text model {current['name']} ({current['weights']}, "
            f"{current['dim']} dimensions) but {name} ({weights}) is configured; set SHOEBOX_TEXT_MODEL={current['name']} "
            f"to use it as it is, or run `shoebox reembed --space text` to embed the passages with the new model"
        )

    def space_dim(self, space: str) -> int | None:
        """Width of the vectors in ``space``, or None before its model is known."""
        identity = self.model_identity(space)
        return None if identity is None else int(identity["dim"])

    @property
    def dim(self) -> int | None:
        """Width of the CLIP vectors (photos), or None before the CLIP model is known."""
        return self.space_dim("clip")

    @property
    def has_vectors(self) -> bool:
        """Whether any space has a model recorded (otherwise search is by keywords only)."""
        return any(self.space_dim(space) is not None for space in SPACES)

    def reset_vectors(self, space: str | None = None) -> None:
        """Forget the vectors of ``space`` (both when None) and its model, before re-embedding.

        Photos (the clip space) leave the library until the next indexing run
        encodes them again (their files are marked as changed).  Passages keep
        their text, so keyword search finds them until the text space is filled
        again (:meth:`files_missing_vectors`).
        """
        spaces = SPACES if space is None else (space,)
        with self.transaction():
            for name in spaces:
                for identity in (self.model_identity(name), self.staged_model(name)):
                    if identity is not None:
                        self._exec(f"DROP TABLE IF EXISTS {_table_of(name, identity)}")
                self._exec("DELETE FROM meta WHERE key IN (?, ?)", (_MODEL_KEY[name], _MODEL_KEY[name] + "_next"))
            if "clip" in spaces:
                # Photos are found only by their vectors: they leave until encoded again.
                self._exec("DELETE FROM items WHERE modality = 'image'")
                self._exec(
                    "UPDATE files SET size = -1, content_hash = NULL WHERE status = 'indexed' AND kind = 'image'"
                )
            self._bump_generation()

    # -- roots -------------------------------------------------------------

    def add_root(self, path: str) -> None:
        """Remember a folder the person added; the names of files inside it now count from it."""
        with self.transaction():
            if self._exec(
                "INSERT INTO roots (path, added_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (path, time.time())
            ):
                lo, hi = _under(path)
                for file_id, file_path in self._written(
                    "SELECT id, path FROM files WHERE status = 'indexed' AND path >= ? AND path < ?",
                    (lo, hi),
                ):
                    self._index_file_name(file_id, file_path)

    def remove_root(self, path: str) -> None:
        self._exec("DELETE FROM roots WHERE path = ?", (path,))

    def roots(self) -> list[str]:
        return [r[0] for r in self._query("SELECT path FROM roots ORDER BY path")]

    def root_of(self, path: str) -> str | None:
        """The outermost added folder that holds ``path``, or None."""
        # Read each time: another process (the CLI beside the app) may add folders.
        return root_containing(path, self.roots())

    # -- files -------------------------------------------------------------

    def get_file(self, path: str) -> FileRow | None:
        rows = self._query(f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?", (path,))
        return _file_row(rows[0]) if rows else None

    def get_file_by_id(self, file_id: int) -> FileRow | None:
        rows = self._query(f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?", (file_id,))
        return _file_row(rows[0]) if rows else None

    def files_under(self, folder: str) -> list[FileRow]:
        """Every file row whose path lies inside ``folder`` (recursively)."""
        lo, hi = _under(folder)
        rows = self._query(f"SELECT {_FILE_COLUMNS} FROM files WHERE path >= ? AND path < ?", (lo, hi))
        return [_file_row(r) for r in rows]

    def has_files_under(self, folder: str) -> bool:
        """Whether the library holds any indexed file inside ``folder``."""
        lo, hi = _under(folder)
        return bool(
            self._query("SELECT 1 FROM files WHERE path >= ? AND path < ? AND status = 'indexed' LIMIT 1", (lo, hi))
        )

    def files_with_hash(self, content_hash: str) -> list[FileRow]:
        rows = self._query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE content_hash = ? AND status = 'indexed'", (content_hash,)
        )
        return [_file_row(r) for r in rows]

    def failed_files(self) -> list[FileRow]:
        rows = self._query(f"SELECT {_FILE_COLUMNS} FROM files WHERE status = 'failed' ORDER BY path")
        return [_file_row(r) for r in rows]

    def failures(self) -> list[dict[str, Any]]:
        """Every file recorded as failed, by path, with when it failed.

        Each is ``{path, folder, kind, reason, failed_at, size, mtime}``: ``reason``
        is the sentence stored with the failure, ``failed_at`` a Unix time, and
        ``size``/``mtime`` what the file was when it failed (0 when it could not
        even be looked at), so a caller can tell whether it changed since.
        """
        rows = self._query(
            "SELECT path, folder, kind, error, indexed_at, size, mtime FROM files WHERE status = 'failed' ORDER BY path"
        )
        keys = ("path", "folder", "kind", "reason", "failed_at", "size", "mtime")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def add_file(
        self,
        path: str,
        *,
        size: int,
        mtime: float,
        content_hash: str | None,
        kind: str | None,
        media_time: float | None,
        meta: dict | None = None,
        items: Sequence[NewItem] = (),
        vectors: VectorRows = None,
        transcript: Sequence[NewItem] = (),
    ) -> int:
        """Store an indexed file with its items and their vectors; replaces any row at ``path``.

        Call inside :meth:`transaction` so the file and its items land together.
        ``vectors`` has one row per item, in order, when the items are all in
        one space, else one array per space (a photo and the text recognised
        in it); a space left out, or None, stores those items without vectors
        (found by keywords until :meth:`add_vectors` gives them some).  ``transcript`` holds a recording's segments as Whisper
        heard them (``start_s``, ``end_s``, ``text``, ``language``), kept so
        its passages can be cut again.  Tags already on ``path`` are kept.
        """
        existing = self.get_file(path)
        tags = self._file_tag_ids(existing.id) if existing else []
        self._delete_path(path)
        file_id = self._insert(
            "INSERT INTO files (path, folder, size, mtime, content_hash, kind, status, error, media_time, meta, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'indexed', NULL, ?, ?, ?) RETURNING id",
            (
                path,
                _folder_of(path),
                size,
                mtime,
                content_hash,
                kind,
                media_time,
                json.dumps(meta or {}, ensure_ascii=False),
                time.time(),
            ),
        )
        self._restore_tags(file_id, tags)
        self._index_file_name(file_id, path)
        if transcript:
            self._set_transcript(file_id, transcript)
        self._insert_items(file_id, kind, media_time, items, vectors)
        return file_id

    def replace_items(
        self,
        file_id: int,
        items: Sequence[NewItem],
        vectors: VectorRows,
        *,
        modalities: Sequence[str] | None = None,
    ) -> None:
        """Give an indexed file new items (passages cut again for another model); its row and tags stay.

        With ``modalities``, only the file's items of those modalities are
        replaced (a video's speech passages once it is transcribed; its frames
        stay).  Call inside :meth:`transaction`.
        """
        row = self.get_file_by_id(file_id)
        if row is None:
            raise LibraryError(f"file #{file_id} is not in the library")
        self._delete_items_of(file_id, modalities)
        first = self._query("SELECT coalesce(max(seq) + 1, 0) FROM items WHERE file_id = ?", (file_id,))[0][0]
        self._insert_items(file_id, row.kind, row.media_time, items, vectors, first_seq=first)
        self._bump_generation()

    def set_file_meta(self, file_id: int, meta: dict) -> None:
        """Replace an indexed file's metadata (what it still waits for, its duration...)."""
        self._exec("UPDATE files SET meta = ? WHERE id = ?", (json.dumps(meta, ensure_ascii=False), file_id))

    def set_transcript(self, file_id: int, segments: Sequence[NewItem]) -> None:
        """Keep a recording's or video's segments as Whisper heard them.  Call inside :meth:`transaction`."""
        self._set_transcript(file_id, segments)

    def _insert_items(
        self,
        file_id: int,
        kind: str | None,
        media_time: float | None,
        items: Sequence[NewItem],
        vectors: VectorRows,
        *,
        first_seq: int = 0,
    ) -> None:
        if not items:
            return
        by_space = _vectors_by_space(items, vectors)
        for space, rows in by_space.items():
            dim = self.space_dim(space)
            if dim is None:
                raise LibraryError(f"the library has no model recorded yet for its {space} vectors")
            if rows.shape[1] != dim:
                raise ValueError(f"vectors have {rows.shape[1]} dimensions, the library's {space} space {dim}")
        tables = {space: self.vector_table(space) for space in by_space}
        taken = dict.fromkeys(by_space, 0)  # the next row of each space's vectors
        with self._lock:
            for seq, item in enumerate(items, first_seq):
                item_id = self._insert(
                    "INSERT INTO items (file_id, seq, modality, text, page, char_start, char_end, start_s, end_s, language) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        file_id,
                        seq,
                        item.modality,
                        item.text,
                        item.page,
                        item.char_start,
                        item.char_end,
                        item.start_s,
                        item.end_s,
                        item.language,
                    ),
                )
                if item.text:
                    self._index_item_text(item_id, item.text)
                space = space_of(item.modality)
                if space in by_space:
                    self._insert_vector(tables[space], item_id, by_space[space][taken[space]], kind, media_time)
                    taken[space] += 1
        self._bump_generation()

    def add_vectors(self, space: str, item_ids: Sequence[int], vectors: np.ndarray) -> int:
        """Give items that were stored without one their vector in ``space`` (the model came later).

        Call inside :meth:`transaction`.  Items deleted meanwhile, or that have
        a vector already, are skipped.  Returns how many vectors were written.
        """
        dim = self.space_dim(space)
        if dim is None:
            raise LibraryError(f"the library has no model recorded yet for its {space} vectors")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(item_ids) != len(vectors) or (len(vectors) and vectors.shape[1] != dim):
            raise ValueError(f"{len(item_ids)} items need as many {dim}-dimensional vectors")
        table = self.vector_table(space)
        written = 0
        with self._lock:
            for item_id, vector in zip(item_ids, vectors, strict=True):
                rows = self._written(
                    f"SELECT f.kind, f.media_time, i.modality, EXISTS (SELECT 1 FROM {table} v WHERE v.item_id = i.id) "
                    "FROM items i JOIN files f ON f.id = i.file_id WHERE i.id = ?",
                    (int(item_id),),
                )
                if not rows or rows[0][3] or space_of(str(rows[0][2])) != space:
                    continue
                self._insert_vector(table, int(item_id), vector, rows[0][0], rows[0][1])
                self._log_added(int(item_id))
                written += 1
        if written:
            self._bump_generation()
        return written

    def items_missing_vectors(self, file_id: int, space: str) -> list[tuple[int, NewItem]]:
        """A file's items of ``space`` that have no vector there, in order: ``[(item id, item)]``."""
        modalities = _MODALITIES[space]
        marks = ",".join("?" * len(modalities))
        table = self.vector_table(space)
        missing = (
            f"AND NOT EXISTS (SELECT 1 FROM {table} v WHERE v.item_id = i.id)" if self._table_exists(table) else ""
        )
        rows = self._query(
            "SELECT i.id, i.modality, i.text, i.page, i.char_start, i.char_end, i.start_s, i.end_s, i.language "
            f"FROM items i WHERE i.file_id = ? AND i.modality IN ({marks}) {missing} ORDER BY i.seq",
            (file_id, *modalities),
        )
        return [(r[0], NewItem(*r[1:])) for r in rows]

    def _insert_vector(
        self, table: str, item_id: int, vector: np.ndarray, kind: str | None, media_time: float | None
    ) -> None:
        self._exec(
            f"INSERT INTO {table} (item_id, embedding, kind, media_time) VALUES (?, ?, ?, ?)",
            (item_id, np.ascontiguousarray(vector, dtype=np.float32).tobytes(), kind, float(media_time or 0.0)),
        )

    def _log_added(self, item_id: int) -> None:
        """Tell the vector indexes that follow the item log that ``item_id`` is new to them (it got its vector)."""
        self._exec("INSERT INTO items_log (item_id, op) VALUES (?, 1)", (item_id,))

    def _index_item_text(self, item_id: int, text: str) -> None:
        self._exec("INSERT INTO item_text (rowid, text) VALUES (?, ?)", (item_id, fold(text)))
        self._exec("INSERT INTO item_words (rowid, words) VALUES (?, ?)", (item_id, index_words(text)))

    def _unindex_items(self, item_ids: Sequence[int]) -> None:
        """Drop the text index rows of items about to be deleted."""
        marks = ",".join("?" * len(item_ids))
        self._exec(f"DELETE FROM item_text WHERE rowid IN ({marks})", item_ids)
        self._exec(f"DELETE FROM item_words WHERE rowid IN ({marks})", item_ids)

    def _index_file_name(self, file_id: int, path: str) -> None:
        words, plain = name_index(path, self.root_of(path))
        self._exec("DELETE FROM file_names WHERE rowid = ?", (file_id,))
        self._exec("INSERT INTO file_names (rowid, words, plain) VALUES (?, ?, ?)", (file_id, words, plain))

    def _unindex_file_name(self, file_id: int) -> None:
        self._exec("DELETE FROM file_names WHERE rowid = ?", (file_id,))

    def _set_transcript(self, file_id: int, segments: Sequence[NewItem]) -> None:
        self._exec("DELETE FROM transcript_segments WHERE file_id = ?", (file_id,))
        for seq, seg in enumerate(segments):
            self._exec(
                "INSERT INTO transcript_segments (file_id, seq, start_s, end_s, text, language) VALUES (?, ?, ?, ?, ?, ?)",
                (file_id, seq, float(seg.start_s or 0.0), float(seg.end_s or 0.0), seg.text or "", seg.language),
            )

    def transcript(self, file_id: int) -> list[NewItem]:
        """A recording's segments as Whisper heard them, in order (speech items with start and end)."""
        rows = self._query(
            "SELECT start_s, end_s, text, language FROM transcript_segments WHERE file_id = ? ORDER BY seq", (file_id,)
        )
        return [NewItem("speech", text=r[2], start_s=r[0], end_s=r[1], language=r[3]) for r in rows]

    def files_missing_vectors(self, space: str = "text", limit: int | None = None) -> list[FileRow]:
        """Indexed files with items in ``space`` that have no vector there (after a migration or a model change)."""
        modalities = _MODALITIES[space]
        marks = ",".join("?" * len(modalities))
        # A passage needs text to be embedded: a recording that waits for Whisper has a placeholder without.
        with_text = " AND text IS NOT NULL AND text != ''" if space == "text" else ""
        table = self.vector_table(space)
        if self._table_exists(table):
            # Every item has at most one vector and no vector outlives its item, so equal counts
            # mean nothing is missing: two counts instead of a lookup per passage.
            items = self._query(f"SELECT count(*) FROM items WHERE modality IN ({marks}){with_text}", modalities)[0][0]
            if items == self._query(f"SELECT count(*) FROM {table}")[0][0]:
                return []
        missing = (
            f"NOT EXISTS (SELECT 1 FROM {table} v WHERE v.item_id = i.id)" if self._table_exists(table) else "TRUE"
        )
        sql = (
            f"SELECT {_FILE_COLUMNS} FROM files WHERE status = 'indexed' AND id IN ("
            f"SELECT i.file_id FROM items i WHERE i.modality IN ({marks}) AND {missing}{with_text}) ORDER BY id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_file_row(r) for r in self._query(sql, modalities)]

    def files_waiting(self, what: str) -> list[FileRow]:
        """Indexed files that wait for a model (``"clip"``, ``"speech"`` or ``"text"``; see ``engine.ingest.WAITING``)."""
        rows = self._query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE status = 'indexed' AND json_valid(meta) AND EXISTS "
            "(SELECT 1 FROM json_each(files.meta, '$.waiting') w WHERE w.value = ?) ORDER BY id",
            (what,),
        )
        return [_file_row(r) for r in rows]

    def has_waiting(self) -> bool:
        """Whether any indexed file waits for a model."""
        return bool(self._query("SELECT 1 FROM files WHERE status = 'indexed' AND meta LIKE '%\"waiting\"%' LIMIT 1"))

    def count_waiting(self, paths: Sequence[str] | None = None) -> dict[str, int]:
        """How many indexed files wait for each model (of ``paths``, else of the whole library)."""
        sql = (
            "SELECT w.value, count(*) FROM files f, json_each(f.meta, '$.waiting') w "
            "WHERE f.status = 'indexed' AND json_valid(f.meta) AND f.meta LIKE '%\"waiting\"%'"
        )
        counts: dict[str, int] = {}
        if paths is None:
            return dict(self._query(sql + " GROUP BY w.value"))
        for chunk in _chunks(list(paths), 500):
            marks = ",".join("?" * len(chunk))
            for what, n in self._query(sql + f" AND f.path IN ({marks}) GROUP BY w.value", chunk):
                counts[what] = counts.get(what, 0) + n
        return counts

    def record_failure(
        self, path: str, *, size: int, mtime: float, kind: str | None, reason: str, content_hash: str | None = None
    ) -> None:
        """Remember that ``path`` could not be indexed, and why (replaces any earlier row)."""
        existing = self.get_file(path)
        tags = self._file_tag_ids(existing.id) if existing else []
        self._delete_path(path)
        file_id = self._insert(
            "INSERT INTO files (path, folder, size, mtime, content_hash, kind, status, error, media_time, meta, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'failed', ?, NULL, '{}', ?) RETURNING id",
            (path, _folder_of(path), size, mtime, content_hash, kind, reason, time.time()),
        )
        self._restore_tags(file_id, tags)

    def touch_file(self, file_id: int, *, size: int, mtime: float) -> None:
        """Update size and mtime of a file whose content did not change."""
        self._exec("UPDATE files SET size = ?, mtime = ? WHERE id = ?", (size, mtime, file_id))

    def move_file(self, file_id: int, new_path: str, *, size: int, mtime: float) -> None:
        """Give an indexed file a new path; its items, vectors and tags stay, its name words follow."""
        self._delete_path(new_path)
        with self._lock:
            self._exec(
                "UPDATE files SET path = ?, folder = ?, size = ?, mtime = ? WHERE id = ?",
                (new_path, _folder_of(new_path), size, mtime, file_id),
            )
            self._index_file_name(file_id, new_path)
        self._bump_generation()

    def copy_file(self, source_id: int, new_path: str, *, size: int, mtime: float) -> int:
        """Index ``new_path`` as a copy of an already indexed file, reusing its vectors and transcript."""
        source = self.get_file_by_id(source_id)
        if source is None:
            raise LibraryError(f"file #{source_id} is not in the library")
        columns = "i.modality, i.text, i.page, i.char_start, i.char_end, i.start_s, i.end_s, i.language"
        rows = self._query(f"SELECT i.id, {columns} FROM items i WHERE i.file_id = ? ORDER BY i.seq", (source_id,))
        items = [NewItem(*r[1:]) for r in rows]
        vectors: dict[str, np.ndarray] = {}
        for space in {space_of(item.modality) for item in items}:
            # KeyError: the source waits for vectors of this space; so does the copy.
            with contextlib.suppress(KeyError):
                vectors[space] = self.vectors([r[0] for r in rows if space_of(r[1]) == space], space=space)
        return self.add_file(
            new_path,
            size=size,
            mtime=mtime,
            content_hash=source.content_hash,
            kind=source.kind,
            media_time=source.media_time,
            meta=source.meta,
            items=items,
            vectors=vectors,
            transcript=self.transcript(source_id),
        )

    def remove_file(self, file_id: int) -> None:
        self._delete_file_id(file_id)

    def _delete_path(self, path: str) -> None:
        rows = self._query("SELECT id FROM files WHERE path = ?", (path,))
        if rows:
            self._delete_file_id(rows[0][0])

    def _delete_items_of(self, file_id: int, modalities: Sequence[str] | None = None) -> int:
        """Delete a file's items (of ``modalities``, else all) with their vectors and text index rows.

        Returns how many there were.
        """
        with self._lock:
            if modalities is None:
                ids = [r[0] for r in self._written("SELECT id FROM items WHERE file_id = ?", (file_id,))]
            else:
                marks = ",".join("?" * len(modalities))
                ids = [
                    r[0]
                    for r in self._written(
                        f"SELECT id FROM items WHERE file_id = ? AND modality IN ({marks})", (file_id, *modalities)
                    )
                ]
            if not ids:
                return 0
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for space in SPACES:
                    for identity in (self.model_identity(space), self.staged_model(space)):
                        if identity is not None:
                            table = _table_of(space, identity)
                            self._exec(f"DELETE FROM {table} WHERE item_id IN ({marks})", chunk)
                self._unindex_items(chunk)
                self._exec(f"DELETE FROM items WHERE id IN ({marks})", chunk)
            return len(ids)

    def _delete_file_id(self, file_id: int) -> None:
        with self._lock:
            n_items = self._delete_items_of(file_id)
            self._unindex_file_name(file_id)
            self._exec("DELETE FROM files WHERE id = ?", (file_id,))
        if n_items:
            self._bump_generation()

    # -- tags --------------------------------------------------------------

    def _file_tag_ids(self, file_id: int) -> list[tuple[int, str]]:
        """The tags a re-indexed file keeps: the user's own and the rejected auto-tags (auto-tags are redone)."""
        return self._query(
            "SELECT tag_id, source FROM file_tags WHERE file_id = ? AND source IN ('user', 'rejected')", (file_id,)
        )

    def _restore_tags(self, file_id: int, tags: Iterable[tuple[int, str]]) -> None:
        for tag_id, source in tags:
            self._exec(
                "INSERT INTO file_tags (file_id, tag_id, source) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (file_id, tag_id, source),
            )

    def file_ids_under(self, path: str) -> list[int]:
        """Ids of the file at ``path`` or of every file inside it, if it is a folder."""
        lo, hi = _under(path)
        rows = self._query("SELECT id FROM files WHERE path = ? OR (path >= ? AND path < ?)", (path, lo, hi))
        return [r[0] for r in rows]

    def add_tag(self, tag: str, file_ids: Iterable[int]) -> int:
        """Attach the user's ``tag`` to the files; returns how many gained it.

        An auto-tag of the same name becomes the user's own.
        """
        tag = tag.strip()
        if not tag:
            raise ValueError("a tag needs a name")
        added = 0
        with self.transaction():
            tag_id = self._tag_id(tag, create=True)
            for file_id in file_ids:
                added += self._exec(
                    "INSERT INTO file_tags (file_id, tag_id, source) VALUES (?, ?, 'user') "
                    "ON CONFLICT (file_id, tag_id) DO UPDATE SET source = 'user', score = NULL "
                    "WHERE file_tags.source != 'user'",
                    (file_id, tag_id),
                )
            self._bump_tags_version()
        return added

    def remove_tag(self, tag: str, file_ids: Iterable[int]) -> int:
        """Detach ``tag`` from the files; returns how many lost it.

        A removed auto-tag is remembered as rejected, so tagging again does not
        bring it back.  Tags no file carries are forgotten.
        """
        removed = 0
        with self.transaction():
            tag_id = self._tag_id(tag.strip(), create=False)
            if tag_id is None:
                return 0
            for file_id in file_ids:
                removed += self._exec(
                    "DELETE FROM file_tags WHERE file_id = ? AND tag_id = ? AND source = 'user'", (file_id, tag_id)
                )
                removed += self._exec(
                    "UPDATE file_tags SET source = 'rejected' WHERE file_id = ? AND tag_id = ? AND source = 'auto'",
                    (file_id, tag_id),
                )
            self._forget_unused_tags()
            self._bump_tags_version()
        return removed

    def _tag_id(self, name: str, *, create: bool) -> int | None:
        if create:
            self._exec("INSERT INTO tags (name) VALUES (?) ON CONFLICT DO NOTHING", (name,))
        rows = self._written(f"SELECT t.id FROM tags t WHERE {self._tag_named(1)}", (name,))
        return rows[0][0] if rows else None

    @staticmethod
    def _tag_named(count: int) -> str:
        """A condition on ``t.name`` holding ``count`` placeholders: the tag is one of those names, in any case."""
        return f"t.name IN ({','.join('?' * count)})"  # the column's collation is NOCASE

    def _forget_unused_tags(self) -> None:
        self._exec("DELETE FROM tags WHERE NOT EXISTS (SELECT 1 FROM file_tags ft WHERE ft.tag_id = tags.id)")

    def tags(self) -> list[tuple[str, str, int]]:
        """(name, source, number of files) for every tag in use, most used first.

        ``source`` is ``"user"`` or ``"auto"``; a name used both ways appears twice.
        """
        return self._query(
            "SELECT t.name, ft.source, count(*) AS n FROM file_tags ft JOIN tags t ON t.id = ft.tag_id "
            "WHERE ft.source IN ('user', 'auto') GROUP BY t.id, ft.source ORDER BY n DESC, t.name, ft.source"
        )

    def tags_of_files(self, file_ids: Iterable[int], *, source: str | None = None) -> dict[int, list[str]]:
        """Tag names per file (the user's and auto-tags; or only ``source``'s), sorted."""
        ids = list({int(i) for i in file_ids})
        result: dict[int, list[str]] = {i: [] for i in ids}
        sources = (source,) if source else ("user", "auto")
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for file_id, name in self._query(
                f"SELECT ft.file_id, t.name FROM file_tags ft JOIN tags t ON t.id = ft.tag_id "
                f"WHERE ft.file_id IN ({marks}) AND ft.source IN ({','.join('?' * len(sources))}) ORDER BY t.name",
                [*chunk, *sources],
            ):
                result[file_id].append(name)
        return result

    def file_ids_with_tags(self, names: Sequence[str], mode: str = TagsMode.ANY) -> np.ndarray:
        """Ids of the indexed files carrying any (or all) of the tags, user or auto (sorted int64).

        Remembered until files or tags change, so a tag filter over half the
        library costs one lookup while a person keeps refining the query.
        """
        names = [n.strip() for n in names if n.strip()]
        if not names:
            return np.empty(0, np.int64)
        key = (tuple(sorted({n.lower() for n in names})), mode, self._change_token())
        cached = self._tag_files.get(key)
        if cached is not None:
            return cached
        sql = (
            f"SELECT ft.file_id FROM file_tags ft JOIN tags t ON t.id = ft.tag_id "
            f"WHERE {self._tag_named(len(names))} AND ft.source IN ('user', 'auto') GROUP BY ft.file_id"
        )
        params: list[Any] = list(names)
        if mode == TagsMode.ALL:
            sql += " HAVING count(DISTINCT t.id) = ?"
            params.append(len({n.lower() for n in names}))
        ids = np.array([r[0] for r in self._query(sql, params)], np.int64)
        ids.sort()
        if len(self._tag_files) >= 32:
            self._tag_files.clear()
        self._tag_files[key] = ids
        return ids

    def _change_token(self) -> tuple:
        """Changes whenever files or tags change, in this process or another one."""
        rows = self._query("SELECT key, value FROM meta WHERE key IN ('generation', 'tags_version')")
        return tuple(sorted(rows))

    def _bump_tags_version(self) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES ('tags_version', '1') "
            "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    # -- auto-tags -----------------------------------------------------------

    _UNTAGGED_PHOTOS = (
        "FROM files f JOIN items i ON i.file_id = f.id WHERE f.status = 'indexed' AND f.kind = 'image' "
        "AND (f.autotag_sig IS NULL OR f.autotag_sig != ?)"
    )

    def photos_to_autotag(self, signature: str, limit: int = 1000) -> list[tuple[int, int]]:
        """(file id, item id) of indexed photos not yet tagged with the vocabulary ``signature``."""
        return self._query(
            f"SELECT f.id, min(i.id) {self._UNTAGGED_PHOTOS} GROUP BY f.id ORDER BY f.id LIMIT ?", (signature, limit)
        )

    def count_photos_to_autotag(self, signature: str) -> int:
        return self._query(f"SELECT count(DISTINCT f.id) {self._UNTAGGED_PHOTOS}", (signature,))[0][0]

    def set_auto_tags(self, file_id: int, tags: Sequence[tuple[str, float]], signature: str) -> None:
        """Replace the file's auto-tags by ``tags`` (name, score); the user's own and rejected ones stay.

        A file removed meanwhile (by another process) is left alone.
        """
        if not self._written("SELECT 1 FROM files WHERE id = ?", (file_id,)):
            return
        self._exec("DELETE FROM file_tags WHERE file_id = ? AND source = 'auto'", (file_id,))
        for name, score in tags:
            tag_id = self._tag_id(name, create=True)
            self._exec(
                "INSERT INTO file_tags (file_id, tag_id, source, score) VALUES (?, ?, 'auto', ?) ON CONFLICT DO NOTHING",
                (file_id, tag_id, float(score)),
            )
        self._exec("UPDATE files SET autotag_sig = ? WHERE id = ?", (signature, file_id))
        self._bump_tags_version()

    def forget_unused_tags(self) -> None:
        self._forget_unused_tags()

    # -- the item log (for derived indexes) -----------------------------------

    def items_version(self) -> int:
        """The position of the item log: grows with every item added or removed."""
        rows = self._query("SELECT seq FROM sqlite_sequence WHERE name = 'items_log'")
        return int(rows[0][0]) if rows else 0

    def items_log_start(self) -> int:
        """The first log position still kept (changes before it were pruned)."""
        return int(self.get_meta("items_log_pruned", "0"))

    def item_changes(self, since: int, limit: int = 50_000) -> list[tuple[int, int, int]]:
        """(seq, item id, op) after position ``since``: op 1 added, 0 removed."""
        return self._query("SELECT seq, item_id, op FROM items_log WHERE seq > ? ORDER BY seq LIMIT ?", (since, limit))

    def prune_items_log(self, through: int) -> None:
        """Forget log entries up to ``through`` (a saved index already holds them)."""
        with self.transaction():
            self._exec("DELETE FROM items_log WHERE seq <= ?", (through,))
            self._exec(
                "INSERT INTO meta (key, value) VALUES ('items_log_pruned', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                (str(through),),
            )

    def item_catalog(
        self, item_ids: Sequence[int] | np.ndarray | None = None, space: str | None = None
    ) -> tuple[np.ndarray, ...]:
        """(item ids, file ids, kind codes, media times) of every item (or of ``item_ids``), by item id.

        With ``space``, only the items that have a vector in that space.  Kind
        codes index :data:`KINDS`; an unknown media time is NaN.
        """
        sql = (
            "SELECT i.id, i.file_id, CASE f.kind WHEN 'image' THEN 0 WHEN 'document' THEN 1 WHEN 'audio' THEN 2 ELSE 3 END, "
            "f.media_time FROM items i JOIN files f ON f.id = i.file_id"
        )
        where = ""
        if space is not None:
            where = " AND i.modality IN (" + ",".join(f"'{m}'" for m in _MODALITIES[space]) + ")"
        if item_ids is None:
            rows = self._query(sql + " WHERE TRUE" + where + " ORDER BY i.id")
        else:
            rows = []
            for chunk in _chunks([int(i) for i in item_ids], 500):
                rows += self._query(sql + f" WHERE i.id IN ({','.join('?' * len(chunk))})" + where, chunk)
            rows.sort()
        if rows and space is not None:
            with_vectors = self._ids_with_vectors(space, None if item_ids is None else [r[0] for r in rows])
            rows = [r for r in rows if r[0] in with_vectors]
        if not rows:
            return (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0, np.float64))
        ids, fids, kinds, times = zip(*rows, strict=True)
        return (
            np.array(ids, np.int64),
            np.array(fids, np.int64),
            np.array(kinds, np.int8),
            np.array([np.nan if t is None else t for t in times], np.float64),
        )

    def _ids_with_vectors(self, space: str, item_ids: Sequence[int] | None) -> set[int]:
        if self.space_dim(space) is None:
            return set()
        table = self.vector_table(space)
        if item_ids is None:
            return {r[0] for r in self._query(f"SELECT item_id FROM {table}")}
        found: set[int] = set()
        for chunk in _chunks([int(i) for i in item_ids], 500):
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._query(f"SELECT item_id FROM {table} WHERE item_id IN ({marks})", chunk))
        return found

    # -- reading for search ------------------------------------------------

    def _filter_sql(self, filters: Filters, *, in_time_order: bool = False) -> tuple[str, list[Any]]:
        # In time order, the status is checked row by row (the unary + keeps SQLite from
        # choosing its index, which would sort every indexed file for one page).
        where = ["+f.status = 'indexed'" if in_time_order else "f.status = 'indexed'"]
        params: list[Any] = []
        if filters.kinds:
            where.append(f"f.kind IN ({','.join('?' * len(filters.kinds))})")
            params.extend(filters.kinds)
        if filters.after is not None:
            where.append("f.media_time >= ?")
            params.append(filters.after)
        if filters.before is not None:
            where.append("f.media_time < ?")
            params.append(filters.before)
        if filters.folder:
            folder = os.path.abspath(filters.folder)
            lo, hi = _under(folder)
            where.append("f.path >= ? AND f.path < ?")
            params.extend([lo, hi])
        if filters.tags:
            names = [t.strip() for t in filters.tags]
            named = self._tag_named(len(names))
            if filters.tags_mode == TagsMode.ALL:
                where.append(
                    f"(SELECT count(DISTINCT t.id) FROM file_tags ft JOIN tags t ON t.id = ft.tag_id "
                    f"WHERE ft.file_id = f.id AND {named} AND ft.source IN ('user', 'auto')) = ?"
                )
                params.extend(names)
                params.append(len({n.lower() for n in names}))
            else:
                where.append(
                    f"EXISTS (SELECT 1 FROM file_tags ft JOIN tags t ON t.id = ft.tag_id "
                    f"WHERE ft.file_id = f.id AND {named} AND ft.source IN ('user', 'auto'))"
                )
                params.extend(names)
        return " AND ".join(where), params

    def allowed_item_ids(self, filters: Filters, space: str | None = None) -> np.ndarray:
        """Ids of the items that pass ``filters`` (sorted int64 array), only those of ``space`` if given."""
        where, params = self._filter_sql(filters)
        if space is not None:
            where += " AND i.modality IN (" + ",".join(f"'{m}'" for m in _MODALITIES[space]) + ")"
        rows = self._query(
            f"SELECT i.id FROM items i JOIN files f ON f.id = i.file_id WHERE {where} ORDER BY i.id", params
        )
        return np.array([r[0] for r in rows], dtype=np.int64)

    def passes_any(self, filters: Filters, space: str) -> bool:
        """Whether any item of ``space`` (with a vector or not) passes ``filters``."""
        where, params = self._filter_sql(filters)
        marks = ",".join(f"'{m}'" for m in _MODALITIES[space])
        return bool(
            self._query(
                f"SELECT EXISTS (SELECT 1 FROM items i JOIN files f ON f.id = i.file_id "
                f"WHERE i.modality IN ({marks}) AND {where})",
                params,
            )[0][0]
        )

    def passing(self, item_ids: Sequence[int], filters: Filters) -> np.ndarray:
        """Which of ``item_ids`` pass ``filters``: a bool array in their order (deleted items do not)."""
        ids = [int(i) for i in item_ids]
        if not ids:
            return np.zeros(0, bool)
        where, params = self._filter_sql(filters)
        found: set[int] = set()
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._query(
                    f"SELECT i.id FROM items i JOIN files f ON f.id = i.file_id WHERE i.id IN ({marks}) AND {where}",
                    [*chunk, *params],
                )
            )
        return np.array([i in found for i in ids], bool)

    def count_passing(self, filters: Filters) -> int:
        """How many items pass ``filters``."""
        where, params = self._filter_sql(filters)
        return self._query(f"SELECT count(*) FROM items i JOIN files f ON f.id = i.file_id WHERE {where}", params)[0][0]

    def latest_items(self, filters: Filters, limit: int) -> list[int]:
        """The first item of each file passing ``filters``, newest media time first (browsing a date range)."""
        where, params = self._filter_sql(filters)
        rows = self._query(
            f"SELECT min(i.id) FROM items i JOIN files f ON f.id = i.file_id WHERE {where} "
            f"GROUP BY f.id ORDER BY f.media_time DESC, f.id DESC LIMIT ?",
            [*params, limit],
        )
        return [r[0] for r in rows]

    def browse_files(
        self, filters: Filters, after: BrowseKey | None = None, limit: int = 200
    ) -> list[tuple[int, float | None]]:
        """One page of the files passing ``filters``, newest media time first: (file id, media time) rows.

        Files are ordered by media time, newest first, then by id (highest
        first); files without a media time come last.  ``after`` is the
        (media time, file id) of the last row of the previous page (None for
        the first page): the page starts right after it, found through the
        index on media time, so a page deep in a large library costs what the
        first one does (no OFFSET).  Fewer than ``limit`` rows: nothing follows.
        """
        if limit <= 0:
            return []
        where, params = self._filter_sql(filters, in_time_order=True)
        rows: list[tuple[int, float | None]] = []
        if after is None or after[0] is not None:
            # Row values keep the index on media_time usable for the page's start.
            clause, extra = ("", []) if after is None else (" AND (f.media_time, f.id) < (?, ?)", [after[0], after[1]])
            rows += self._query(
                f"SELECT f.id, f.media_time FROM files f WHERE {where} AND f.media_time IS NOT NULL{clause} "
                "ORDER BY f.media_time DESC, f.id DESC LIMIT ?",
                [*params, *extra, limit],
            )
        if len(rows) < limit:
            # Then the files whose time is unknown, by id.
            last_id = after[1] if after is not None and after[0] is None else None
            clause, extra = ("", []) if last_id is None else (" AND f.id < ?", [last_id])
            rows += self._query(
                f"SELECT f.id, f.media_time FROM files f WHERE {where} AND f.media_time IS NULL{clause} "
                "ORDER BY f.id DESC LIMIT ?",
                [*params, *extra, limit - len(rows)],
            )
        return [(int(r[0]), r[1]) for r in rows]

    def browse_months(self, filters: Filters) -> list[tuple[int, int, int]]:
        """(year, month, files) for every month that has files passing ``filters``, newest first (local time).

        Files without a media time are left out.
        """
        where, params = self._filter_sql(filters)
        rows = self._query(
            "SELECT CAST(strftime('%Y', f.media_time, 'unixepoch', 'localtime') AS INTEGER) AS y, "
            "CAST(strftime('%m', f.media_time, 'unixepoch', 'localtime') AS INTEGER) AS m, count(*) "
            f"FROM files f WHERE {where} AND f.media_time IS NOT NULL GROUP BY y, m ORDER BY y DESC, m DESC",
            params,
        )
        return [(int(y), int(m), int(n)) for y, m, n in rows]

    def item_ids_of(self, target: str | os.PathLike | int) -> list[int]:
        """The item ids of the file at a path (or of the file holding an item id), in order."""
        if isinstance(target, (int, np.integer)):
            rows = self._query(
                "SELECT i.id FROM items i WHERE i.file_id = (SELECT file_id FROM items WHERE id = ?) ORDER BY i.seq",
                (int(target),),
            )
        else:
            rows = self._query(
                "SELECT i.id FROM items i JOIN files f ON f.id = i.file_id WHERE f.path = ? ORDER BY i.seq",
                (os.path.abspath(target),),
            )
        return [r[0] for r in rows]

    def count_items(self, space: str | None = None) -> int:
        """How many items the library holds, or hold vectors in ``space`` (counted again only after the item log moved)."""
        if space is None:
            return self._counted(None, "", "SELECT count(*) FROM items")
        if self.space_dim(space) is None:
            return 0
        table = self.vector_table(space)
        return self._counted(space, table, f"SELECT count(*) FROM {table}")

    def count_space_items(self, space: str) -> int:
        """How many items belong to ``space`` by their modality, with a vector yet or not (counted again only after the item log moved)."""
        marks = ",".join(f"'{m}'" for m in _MODALITIES[space])
        return self._counted("items of " + space, "", f"SELECT count(*) FROM items WHERE modality IN ({marks})")

    def _counted(self, key: str | None, table: str, sql: str) -> int:
        """The count ``sql`` gives, remembered under ``key`` until the item log moves (or ``table`` changes)."""
        version = (self.items_version(), table)
        cached = self._item_count.get(key)
        if cached is None or cached[0] != version:
            cached = self._item_count[key] = (version, self._query(sql)[0][0])
        return cached[1]

    def vector_knn(
        self,
        query: np.ndarray,
        k: int,
        kinds: Sequence[str] = (),
        space: str = "clip",
        filters: Filters | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest items of ``space`` to ``query`` as (item id, cosine distance), exactly.

        sqlite-vec's KNN without ``filters``; with them, the passing items' vectors are
        compared one by one (the HNSW graphs are the fast path: see engine.index.live).
        """
        if self.space_dim(space) is None or k <= 0:
            return []
        if filters is not None and not filters.empty:
            present = self.item_catalog(self.allowed_item_ids(filters, space), space=space)[0]
            if not len(present):
                return []
            q = np.ascontiguousarray(query, dtype=np.float32)
            distances = 1.0 - self.vectors(present, space=space) @ q
            top = np.argsort(distances, kind="stable")[:k]
            return [(int(present[i]), float(distances[i])) for i in top]
        table = self.vector_table(space)
        blob = np.ascontiguousarray(query, dtype=np.float32).tobytes()
        if len(kinds) == 1:
            rows = self._query(
                f"SELECT item_id, distance FROM {table} WHERE embedding MATCH ? AND k = ? AND kind = ? ORDER BY distance",
                (blob, k, kinds[0]),
            )
        else:
            rows = self._query(
                f"SELECT item_id, distance FROM {table} WHERE embedding MATCH ? AND k = ? ORDER BY distance", (blob, k)
            )
        return [(r[0], r[1]) for r in rows]

    def vectors(self, item_ids: Sequence[int] | np.ndarray, space: str = "clip") -> np.ndarray:
        """Stored vectors of ``item_ids`` in ``space``, in that order (missing ids raise KeyError)."""
        item_ids = [int(i) for i in item_ids]  # numpy integers do not bind as SQLite integers
        dim = self.space_dim(space)
        if dim is None:
            if item_ids:
                raise KeyError(item_ids[0])
            return np.empty((0, 0), np.float32)
        table = self.vector_table(space)
        found: dict[int, np.ndarray] = {}
        for chunk in _chunks(item_ids, 500):
            marks = ",".join("?" * len(chunk))
            found.update(self._vector_rows(f"SELECT item_id, embedding FROM {table} WHERE item_id IN ({marks})", chunk))
        out = np.empty((len(item_ids), dim), dtype=np.float32)
        for row, item_id in enumerate(item_ids):
            out[row] = found[item_id]
        return out

    def _vector_rows(self, sql: str, params: Sequence[Any]) -> list[tuple[int, np.ndarray]]:
        """The (item id, vector) rows ``sql`` reads, each vector as a float32 array."""
        return [(int(r[0]), np.frombuffer(r[1], dtype=np.float32)) for r in self._query(sql, params)]

    def iter_vectors(self, batch: int = 4096, space: str = "clip") -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every stored vector of ``space`` as (ids, vectors) batches, in id order (for building indexes)."""
        if self.space_dim(space) is None:
            return
        table = self.vector_table(space)
        last = -1
        while True:
            rows = self._vector_rows(
                f"SELECT item_id, embedding FROM {table} WHERE item_id > ? ORDER BY item_id LIMIT ?", (last, batch)
            )
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            yield ids, np.stack([r[1] for r in rows])
            last = int(ids[-1])

    def keyword_search(
        self,
        terms: Sequence[Term | str],
        limit: int,
        filters: Filters | None = None,
        passing: Sequence[np.ndarray] | None = None,
    ) -> list[tuple[int, float]]:
        """Items whose text holds the terms, best first, as (item id, rank; lower is better).

        ``terms`` come from :func:`engine.text.parse_query` (a plain string is
        parsed as a query).  Words and phrases are looked up by their keys in
        the word index (whole words and stems, ranked by bm25); substrings
        (CJK) in the trigram index, or, under three characters, by a scan.
        Nothing a person types can be an FTS5 syntax error: keys hold only
        letters and digits and every one is quoted.  With ``filters``, only
        items passing them are matched, so the ``limit`` best are the best
        of those (a filter applied afterwards would lose matches beyond it).

        ``passing``, when the caller knows them, are the ids of the items that
        pass ``filters`` (in one or more arrays); only those are matched.  A narrow filter is
        then checked against that list rather than against every match's
        file, tags and dates: a common word holds thousands of items that a
        filter passing 1 % of the library turns away one by one.
        """
        parsed = _as_terms(terms)
        words = [t for t in parsed if t.kind != "substring"]
        substrings = [t for t in parsed if t.kind == "substring"]
        listed = passing is not None and self._narrow(sum(len(a) for a in passing), limit)
        with self._passing_items(passing) if listed and passing is not None else nullcontext():
            return self._keyword_search(words, substrings, limit, filters, listed)

    def _narrow(self, passing: int, limit: int) -> bool:
        """Whether a filter passing ``passing`` items is cheaper to check against their list than per match.

        Listing costs about half a microsecond per passing item; the check
        per match about one, on about ``limit * items / passing`` matches
        of each common word before ``limit`` pass.
        """
        return passing * passing <= 2 * limit * max(1, self.count_items())

    @contextmanager
    def _passing_items(self, item_ids: Sequence[np.ndarray]) -> Iterator[None]:
        """Hold the ids in ``item_ids``' arrays in the temporary table ``passing_items`` of the connection this thread reads with.

        A temporary table belongs to its connection and is written even on a
        read-only one; outside a snapshot the store's lock keeps other
        threads off the connection until the block ends.
        """
        reader = getattr(self._local, "snapshot", None)
        with nullcontext() if reader is not None else self._lock:
            db = reader if reader is not None else self._db
            db.execute("CREATE TEMP TABLE IF NOT EXISTS passing_items (id INTEGER PRIMARY KEY)")
            db.execute("DELETE FROM temp.passing_items")
            db.execute(
                "INSERT OR IGNORE INTO temp.passing_items SELECT value FROM json_each(?)",
                (json.dumps([int(i) for ids in item_ids for i in ids.tolist()]),),
            )
            try:
                yield
            finally:
                db.execute("DELETE FROM temp.passing_items")

    def _keyword_search(
        self, words: list[Term], substrings: list[Term], limit: int, filters: Filters | None, listed: bool
    ) -> list[tuple[int, float]]:
        hits: dict[int, float] = {}

        def within(table: str) -> tuple[str, list[Any]]:
            if listed:
                return f" AND EXISTS (SELECT 1 FROM temp.passing_items p WHERE p.id = {table}.rowid)", []
            return self._items_within(filters, f"{table}.rowid")

        if words:
            hits.update(self._ranked_matches("item_words", [t.fts_words() for t in words], limit, within("item_words")))
        long_subs = [t.keys[0] for t in substrings if len(t.keys[0]) >= 3]
        text_within = within("item_text")
        if long_subs:
            for item_id, rank in self._ranked_matches(
                "item_text", ['"' + k + '"' for k in long_subs], limit, text_within
            ):
                hits[item_id] = hits.get(item_id, 0.0) + rank
        for term in substrings:
            key = term.keys[0]
            if len(key) >= 3:
                continue
            for (item_id,) in self._query(
                f"SELECT rowid FROM item_text WHERE text LIKE ? ESCAPE '\\'{text_within[0]} LIMIT ?",
                (_like_pattern(key), *text_within[1], limit),
            ):
                # A short substring hit counts like a weak keyword match.
                hits[item_id] = hits.get(item_id, 0.0) - 0.5
        return sorted(hits.items(), key=lambda kv: kv[1])[:limit]

    def _items_within(self, filters: Filters | None, item_id: str) -> tuple[str, list[Any]]:
        """An ``AND EXISTS (...)`` clause (and its parameters) keeping the rows of a text index
        whose items (their id in the column ``item_id``) pass ``filters``.

        Each match is checked by its item's and file's keys.  A ``rowid IN (SELECT ...)``
        list instead is handed to FTS5 as a rowid constraint, which then runs the MATCH
        once per listed row: 0.1 s per search at 10,000 items with a broad filter.
        """
        if filters is None or filters.empty:
            return "", []
        where, params = self._filter_sql(filters)
        return (
            f" AND EXISTS (SELECT 1 FROM items i JOIN files f ON f.id = i.file_id WHERE i.id = {item_id} AND {where})",
            params,
        )

    def _ranked_matches(
        self, table: str, expressions: list[str], limit: int, within: tuple[str, list[Any]] = ("", [])
    ) -> list[tuple[int, float]]:
        """bm25-ranked matches of any of the FTS5 ``expressions`` in ``table``, leaving out common ones.

        A term in a large share of the items says almost nothing about
        relevance (its IDF is near zero) but costs the most to rank, so such
        terms are left out while a rarer one remains; when every term is that
        common, each contributes its first matches unranked, and an item
        matching more terms ranks first.  ``within`` restricts the rows (see
        :meth:`_items_within`).
        """
        clause, params = within
        cap = max(COMMON_TERM_MIN, int(COMMON_TERM_SHARE * self.count_items()))
        rare = [e for e in expressions if self._count_matches(table, e) <= cap]
        if rare:
            return self._query(
                f"SELECT rowid, bm25({table}) FROM {table} WHERE {table} MATCH ?{clause} ORDER BY rank LIMIT ?",
                (" OR ".join(rare), *params, limit),
            )
        summed: dict[int, float] = {}
        share = max(limit, cap // (4 * len(expressions)))
        for expression in expressions:
            for (item_id,) in self._query(
                f"SELECT rowid FROM {table} WHERE {table} MATCH ?{clause} LIMIT ?", (expression, *params, share)
            ):
                summed[item_id] = summed.get(item_id, 0.0) - 1.0
        return sorted(summed.items(), key=lambda r: r[1])[:limit]

    def term_count_cap(self) -> int:
        """How far :meth:`term_counts` counts: past a tenth of the items a term is simply common."""
        return max(1000, self.count_items() // 10)

    def _count_matches(self, table: str, expression: str, like: bool = False) -> int:
        """Items matching an FTS5 ``expression`` (or a LIKE pattern), counted up to :meth:`term_count_cap` + 1.

        Remembered until the items change: a search asks first whether a term is
        common, then how common, and a person refining a query asks again.
        """
        version = self.items_version()
        key = (table, expression, like)
        cached = self._match_counts.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        condition = "text LIKE ? ESCAPE '\\'" if like else f"{table} MATCH ?"
        count = self._query(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {condition} LIMIT ?)",
            (expression, self.term_count_cap() + 1),
        )[0][0]
        if len(self._match_counts) >= 4096:
            self._match_counts.clear()
        self._match_counts[key] = (version, count)
        return count

    def term_counts(self, terms: Sequence[Term]) -> list[int]:
        """How many items hold each term (counted up to :meth:`term_count_cap` + 1), to weigh rare terms above common ones."""
        counts = []
        for term in terms:
            if term.kind != "substring":
                counts.append(self._count_matches("item_words", term.fts_words()))
            elif len(term.keys[0]) >= 3:
                counts.append(self._count_matches("item_text", '"' + term.keys[0] + '"'))
            else:
                counts.append(self._count_matches("item_text", _like_pattern(term.keys[0]), like=True))
        return counts

    def name_search(
        self, terms: Sequence[Term | str], limit: int, filters: Filters | None = None
    ) -> list[tuple[int, float]]:
        """Indexed files whose name or folders hold the terms, best first, as (file id, rank; lower is better).

        With ``filters``, only files with an item passing them are matched.
        """
        parsed = _as_terms(terms)
        hits: dict[int, float] = {}
        clause = ""
        params: list[Any] = []
        if filters is not None and not filters.empty:
            where, params = self._filter_sql(filters)
            # Checked per match (see _items_within): a file passes when it has an item and passes the filters.
            clause = (
                f" AND EXISTS (SELECT 1 FROM files f WHERE f.id = file_names.rowid AND {where}"
                " AND EXISTS (SELECT 1 FROM items i WHERE i.file_id = f.id))"
            )
        words = [t.fts_words() for t in parsed if t.kind != "substring"]
        if words:
            hits.update(
                self._query(
                    f"SELECT rowid, bm25(file_names) FROM file_names WHERE file_names MATCH ?{clause} ORDER BY rank LIMIT ?",
                    ("words : (" + " OR ".join(words) + ")", *params, limit),
                )
            )
        for term in parsed:
            if term.kind == "substring":
                for (file_id,) in self._query(
                    f"SELECT rowid FROM file_names WHERE plain LIKE ? ESCAPE '\\'{clause} LIMIT ?",
                    (_like_pattern(term.keys[0]), *params, limit),
                ):
                    hits[file_id] = hits.get(file_id, 0.0) - 1.0
        return sorted(hits.items(), key=lambda kv: kv[1])[:limit]

    def first_items(self, file_ids: Sequence[int]) -> dict[int, int]:
        """The first item of each file (by its order in the file): {file id: item id}."""
        out: dict[int, int] = {}
        for chunk in _chunks([int(i) for i in file_ids], 500):
            marks = ",".join("?" * len(chunk))
            # The bare column takes the row of min(seq): a file's first item, even after some were replaced.
            out.update(
                (r[0], r[1])
                for r in self._query(
                    f"SELECT file_id, id, min(seq) FROM items WHERE file_id IN ({marks}) GROUP BY file_id", chunk
                )
            )
        return out

    def item_details(self, item_ids: Sequence[int]) -> dict[int, dict]:
        """What a result shows, per item id: path, kind, locator, text, media time, file id."""
        out: dict[int, dict] = {}
        for chunk in _chunks([int(i) for i in item_ids], 500):
            marks = ",".join("?" * len(chunk))
            for row in self._query(
                "SELECT i.id, f.id, f.path, f.kind, i.modality, i.text, i.page, i.char_start, i.char_end, i.start_s, i.end_s, "
                f"i.language, f.media_time, f.meta FROM items i JOIN files f ON f.id = i.file_id WHERE i.id IN ({marks})",
                chunk,
            ):
                locator: dict[str, Any] = {}
                if row[6] is not None:
                    locator["page"] = row[6]
                if row[7] is not None:
                    locator["char_start"], locator["char_end"] = row[7], row[8]
                if row[9] is not None:
                    locator["start"], locator["end"] = row[9], row[10]
                out[row[0]] = {
                    "file_id": row[1],
                    "path": row[2],
                    "kind": row[3],
                    "modality": row[4],
                    "text": row[5],
                    "locator": locator,
                    "language": row[11],
                    "media_time": row[12],
                    "meta": json.loads(row[13]) if row[13] else {},
                }
        return out

    def passage_context(self, item_id: int, around: int = PASSAGE_CONTEXT_CHARS) -> dict | None:
        """A text item in its context: its page's text from ``around`` characters before it to as many after.

        Passages are stored as overlapping chunks of a page (``char_start``/``char_end`` into it),
        each only as long as a model reads at once (a few dozen characters of Korean or Chinese);
        the neighbouring chunks are stitched back into the page's text, so a reader sees the
        paragraphs around what was found.  Returns ``{"text", "start", "end"}``, where
        ``text[start:end]`` is the item's own text, or None for an item that is not a passage of a
        document (a photo, a transcript segment, text recognised in a picture) or is not stored.
        """
        rows = self._query(
            "SELECT file_id, page, char_start, char_end, text FROM items WHERE id = ? AND modality = 'text'",
            (int(item_id),),
        )
        if not rows or rows[0][2] is None or rows[0][3] is None or rows[0][4] is None:
            return None
        file_id, page, start, end, own = rows[0]
        neighbours = self._query(
            "SELECT char_start, char_end, text FROM items WHERE file_id = ? AND modality = 'text' AND page IS NOT DISTINCT FROM ? "
            "AND char_start IS NOT NULL AND char_end > ? AND char_start < ? ORDER BY char_start, char_end",
            (file_id, page, start - around, end + around),
        )
        stitched = ""
        shift = 0  # a page offset minus its place in ``stitched``, for the run placed last
        stitched_end: int | None = None  # the page offset where ``stitched`` ends
        at: int | None = None  # where the item's own text is in ``stitched``
        for piece_start, piece_end, text in neighbours:
            if not text or piece_end - piece_start != len(text):
                continue  # not a verbatim slice of the page: it cannot be placed
            if stitched_end is None:
                stitched, shift = text, piece_start
            elif piece_start > stitched_end:
                # The chunks leave out only whitespace between them; which kind is not stored.
                stitched += "\n\n"
                shift = piece_start - len(stitched)
                stitched += text
            elif piece_end > stitched_end:
                stitched += text[stitched_end - piece_start :]
            stitched_end = max(stitched_end or piece_end, piece_end)
            if at is None and (piece_start, piece_end) == (start, end):
                at = start - shift
        if at is None or stitched[at : at + len(own)] != own:
            return {"text": own, "start": 0, "end": len(own)}
        return {"text": stitched, "start": at, "end": at + len(own)}

    def first_item_of_file(self, path: str) -> int | None:
        rows = self._query(
            "SELECT i.id FROM items i JOIN files f ON f.id = i.file_id WHERE f.path = ? ORDER BY i.seq LIMIT 1", (path,)
        )
        return rows[0][0] if rows else None

    def stats(self) -> dict:
        """Counts for ``shoebox status``."""
        by_kind = dict.fromkeys(KINDS, 0)
        for kind, n in self._query("SELECT kind, count(*) FROM files WHERE status = 'indexed' GROUP BY kind"):
            if kind in by_kind:
                by_kind[kind] = n
        failed = self._query("SELECT count(*) FROM files WHERE status = 'failed'")[0][0]
        items = self.count_items()
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return {
            "library": str(self.path),
            "store": "sqlite",
            "files": by_kind,
            "failed": failed,
            "items": items,
            "tags": len(self.tags()),
            "model": public_identity(self.model_identity()),
            "text_model": public_identity(self.model_identity("text")),
            "roots": self.roots(),
            "waiting": self.count_waiting(),
            "schema_version": SCHEMA_VERSION,
            "generation": self.generation,
            "database_bytes": size,
        }


def _vectors_by_space(items: Sequence[NewItem], vectors: VectorRows) -> dict[str, np.ndarray]:
    """``vectors`` as {space: rows}, checked against the items of each space."""
    if vectors is None:
        return {}
    counts: dict[str, int] = {}
    for item in items:
        space = space_of(item.modality)
        counts[space] = counts.get(space, 0) + 1
    if not isinstance(vectors, dict):
        if len(counts) != 1:
            raise ValueError("items of two spaces need their vectors per space")
        vectors = {next(iter(counts)): vectors}
    out = {}
    for space, rows in vectors.items():
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if len(rows) != counts.get(space, 0):
            raise ValueError(f"one vector per item is required ({counts.get(space, 0)} {space} items)")
        out[space] = rows
    return out


def public_identity(identity: dict | None) -> dict | None:
    """A recorded model identity as people see it: name, weights, dim (not the table that holds its vectors)."""
    if identity is None:
        return None
    return {"name": identity["name"], "weights": identity["weights"], "dim": int(identity["dim"])}


def _table_of(space: str, identity: dict | None) -> str:
    """The vector table named in a recorded identity (one recorded before re-embedding existed names none)."""
    return (identity or {}).get("table", _VECTOR_TABLE[space])


def root_containing(path: str, roots: Sequence[str]) -> str | None:
    """The outermost of ``roots`` (added folders) that holds ``path``, or None."""
    for root in sorted(roots, key=len):
        if path.startswith(root.rstrip(os.sep) + os.sep):
            return root
    return None


def _as_terms(terms: Sequence[Term | str]) -> list[Term]:
    parsed: list[Term] = []
    for term in terms:
        parsed += parse_query(term) if isinstance(term, str) else [term]
    return parsed


def _like_pattern(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
