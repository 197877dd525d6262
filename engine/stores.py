"""Where a library is kept, and the interface every store offers the engine.

Two stores implement :class:`Store`:

* :class:`engine.store.LibraryStore`, the default: one SQLite file in the
  library's home folder, searched through Shoebox's own HNSW graphs, which
  follow the store's change log (:mod:`engine.index.live`);
* :class:`engine.postgres_store.PostgresStore`: a PostgreSQL server with
  pgvector, for a library that several computers share.  The server's own
  vector index (HNSW or IVFFlat) answers vector searches, with the filters in
  the same SQL statement (``serves_vectors`` is True), so every client sees
  every other client's changes at once.

``SHOEBOX_STORE`` (or ``shoebox --store``) names the store: empty for the
SQLite file, or any libpq address of a PostgreSQL database, as a URI
(``postgresql://user:secret@nas.local/shoebox``, ``postgresql:///shoebox?host=/run/postgresql``)
or as ``key=value`` words (``host=/run/postgresql dbname=shoebox``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload

import numpy as np

from .errors import LibraryError, UsageError

if TYPE_CHECKING:
    from .query import Filters
    from .settings import Settings
    from .store import BrowseKey, FileRow, NewItem, VectorRows
    from .text import Term

_URI_SCHEMES = ("postgresql://", "postgres://")
_CONNINFO_RE = re.compile(r"^\s*[A-Za-z_]+\s*=")
POSTGRES_HINT = "install Shoebox again with its dependencies (psycopg[binary] and pgvector)"


def is_postgres(location: str) -> bool:
    """Whether ``location`` (a ``SHOEBOX_STORE`` value) names a PostgreSQL database."""
    return location.startswith(_URI_SCHEMES) or bool(_CONNINFO_RE.match(location))


def check_location(location: str) -> None:
    """Raise :class:`UsageError` unless ``location`` is empty or a PostgreSQL address libpq can read."""
    if not location:
        return
    if not is_postgres(location):
        raise UsageError(
            f"SHOEBOX_STORE must be empty (the SQLite file in the library's folder) or a PostgreSQL address "
            f"such as postgresql://user@host/shoebox, not {redact(location)!r}",
            plain="The library's location must be empty (this computer) or a PostgreSQL address "
            "such as postgresql://user@host/shoebox.",
        )
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return  # said when the store is opened
    try:
        conninfo_to_dict(location)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's own words for what is wrong
        raise UsageError(f"SHOEBOX_STORE is not a PostgreSQL address libpq can read: {exc}") from None


def redact(location: str) -> str:
    """``location`` with any password replaced by ``***``, fit to print and log."""
    if location.startswith(_URI_SCHEMES):
        return re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", re.sub(r"([?&]password=)[^&]*", r"\1***", location))
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", location)


_URI_PASSWORD_RE = re.compile(r"^([a-z]+://[^:/@?#]*):([^@/?#]*)@", re.IGNORECASE)
_URI_QUERY_PASSWORD_RE = re.compile(r"([?&])password=([^&#]*)&?")
_WORD_PASSWORD_RE = re.compile(r"\s*\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def split_password(location: str) -> tuple[str, str]:
    """``location`` without its password, and the password (empty when it names none).

    For showing a saved address in a window while its password stays hidden:
    ``with_password(*split_password(location))`` names the same database as ``location``.
    """
    from urllib.parse import unquote

    if location.startswith(_URI_SCHEMES):
        password = ""
        match = _URI_PASSWORD_RE.match(location)
        if match:
            password = unquote(match.group(2))
            location = match.group(1) + "@" + location[match.end() :]
        query = _URI_QUERY_PASSWORD_RE.search(location)
        if query:
            password = unquote(query.group(2))
            joiner = query.group(1) if query.group(0).endswith("&") else ""
            location = (location[: query.start()] + joiner + location[query.end() :]).rstrip("?&")
        return location, password
    match = _WORD_PASSWORD_RE.search(location)
    if not match:
        return location, ""
    value = match.group(1)
    if value.startswith("'"):
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return (location[: match.start()] + location[match.end() :]).strip(), value


def with_password(location: str, password: str) -> str:
    """``location`` with ``password`` in it (replacing any it names); ``location`` itself when ``password`` is empty.

    A URI gets it after its user name (``postgresql://me:secret@host/db``), or as a
    ``password`` parameter when it names no user; ``key=value`` words get a ``password`` word.
    """
    from urllib.parse import quote

    if not password:
        return location
    location, _ = split_password(location)
    if location.startswith(_URI_SCHEMES):
        scheme, _, rest = location.partition("://")
        authority = re.match(r"[^/?#]*", rest)
        if authority and "@" in authority.group(0):
            return f"{scheme}://" + rest.replace("@", ":" + quote(password, safe="") + "@", 1)
        joiner = "&" if "?" in rest else "?"
        return f"{location}{joiner}password={quote(password, safe='')}"
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return f"{location} password='{quoted}'"


def describe_location(settings: Settings) -> str:
    """Where the library of ``settings`` is kept, for people: a file path, or the server address without password."""
    return redact(settings.store) if settings.store else str(settings.db_path)


def open_store(settings: Settings, *, readonly: bool = False) -> Store:
    """The store ``settings.store`` names (the SQLite file in ``settings.home`` when it is empty), opened and migrated.

    Raises :class:`LibraryError` when it cannot be opened (a server that does not answer,
    a database the user may not write), :class:`UsageError` for an address that is not one.
    """
    if not settings.store:
        from .store import LibraryStore

        return LibraryStore(settings.db_path, readonly=readonly)
    check_location(settings.store)
    try:
        from .postgres_store import PostgresStore
    except ImportError as exc:
        raise LibraryError(
            f"the library is kept in PostgreSQL ({redact(settings.store)}) but {exc.name} is missing; {POSTGRES_HINT}",
            plain="This library is kept on a PostgreSQL server, and this installation of Shoebox lacks "
            "PostgreSQL support.",
        ) from None
    return PostgresStore(settings.store, settings=settings, readonly=readonly)


def probe_store(settings: Settings) -> dict[str, Any]:
    """What is kept where ``settings.store`` points, found without changing anything there.

    Returns ``{"location": the address without password (or the file's path),
    "server": PostgreSQL's version (None for the SQLite file), "pgvector": whether the
    server can give that database the vector extension, "library": the stats of the
    Shoebox library kept there (:meth:`Store.stats`), or None when there is none yet}``.
    Unlike :func:`open_store` it creates no library where there is none, so an address
    can be tried before it is chosen.  Raises :class:`LibraryError` when the server cannot
    be reached (after at most 10 seconds) or the library there cannot be read, and
    :class:`UsageError` for an address that is not one.
    """
    location = describe_location(settings)
    if not settings.store:
        if not settings.db_path.is_file():
            return {"location": location, "server": None, "pgvector": True, "library": None}
        store = open_store(settings, readonly=True)
        try:
            return {"location": location, "server": None, "pgvector": True, "library": store.stats()}
        finally:
            store.close()
    check_location(settings.store)
    try:
        import psycopg
    except ImportError as exc:
        raise LibraryError(
            f"{exc.name} is missing, so Shoebox cannot use a PostgreSQL server; {POSTGRES_HINT}",
            plain="This installation of Shoebox lacks PostgreSQL support.",
        ) from None
    try:
        with psycopg.connect(settings.store, autocommit=True, connect_timeout=10, application_name="shoebox") as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), to_regclass('meta') IS NOT NULL,"
                " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
            ).fetchone()
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LibraryError(
            f"cannot reach the PostgreSQL server at {location}: {reason}",
            plain=f"Shoebox cannot reach the PostgreSQL server ({location}): {reason}",
        ) from None
    assert row is not None  # a SELECT without FROM returns one row
    version, has_meta, pgvector = row
    probe: dict[str, Any] = {"location": location, "server": str(version), "pgvector": bool(pgvector), "library": None}
    if has_meta:
        store = open_store(settings, readonly=True)
        try:
            probe["library"] = store.stats()
        finally:
            store.close()
    return probe


class Store(Protocol):
    """What the engine asks of a library's store.

    The SQLite store (:class:`engine.store.LibraryStore`) documents each method;
    the PostgreSQL store (:class:`engine.postgres_store.PostgresStore`) behaves the
    same, checked by one contract suite (``tests/unit/test_store.py`` and the search
    tests run against both).  ``path`` is the SQLite file, or for a server store a
    name inside the home folder that holds no data (the thumbnails and models stay local).
    """

    path: Path
    readonly: bool
    # True when the store itself answers vector searches (with filters) and keeps no change
    # log for a local graph; False when Shoebox's HNSW graphs follow :meth:`item_changes`.
    serves_vectors: bool

    # -- lifecycle and consistency
    def close(self) -> None: ...
    def location(self) -> str: ...
    def snapshot(self) -> AbstractContextManager[int]: ...
    @property
    def in_snapshot(self) -> bool: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    def integrity_check(self) -> str: ...
    @overload
    def get_meta(self, key: str) -> str | None: ...
    @overload
    def get_meta(self, key: str, default: str) -> str: ...
    @property
    def generation(self) -> int: ...
    def stats(self) -> dict: ...

    # -- models and vector spaces
    def model_identity(self, space: str = "clip") -> dict | None: ...
    def vector_table(self, space: str) -> str: ...
    def vector_table_is_first(self, space: str) -> bool: ...
    @staticmethod
    def same_model(space: str, a: dict | None, b: dict | None) -> bool: ...
    def ensure_model(self, name: str, weights: str, dim: int, space: str = "clip") -> None: ...
    def space_dim(self, space: str) -> int | None: ...
    @property
    def dim(self) -> int | None: ...
    @property
    def has_vectors(self) -> bool: ...
    def reset_vectors(self, space: str | None = None) -> None: ...
    def staged_model(self, space: str) -> dict | None: ...
    def begin_restage(self, name: str, weights: str, dim: int, space: str) -> dict: ...
    def staged_missing(self, space: str, limit: int) -> list[int]: ...
    def add_staged_vectors(self, space: str, item_ids: Sequence[int], vectors: np.ndarray) -> int: ...
    def finish_restage(self, space: str) -> bool: ...
    def abandon_restage(self, space: str) -> None: ...

    # -- folders and files
    def add_root(self, path: str) -> None: ...
    def remove_root(self, path: str) -> None: ...
    def roots(self) -> list[str]: ...
    def root_of(self, path: str) -> str | None: ...
    def get_file(self, path: str) -> FileRow | None: ...
    def get_file_by_id(self, file_id: int) -> FileRow | None: ...
    def files_under(self, folder: str) -> list[FileRow]: ...
    def has_files_under(self, folder: str) -> bool: ...
    def file_ids_under(self, path: str) -> list[int]: ...
    def files_with_hash(self, content_hash: str) -> list[FileRow]: ...
    def failed_files(self) -> list[FileRow]: ...
    def failures(self) -> list[dict[str, Any]]: ...
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
    ) -> int: ...
    def replace_items(
        self, file_id: int, items: Sequence[NewItem], vectors: VectorRows, *, modalities: Sequence[str] | None = None
    ) -> None: ...
    def set_file_meta(self, file_id: int, meta: dict) -> None: ...
    def set_transcript(self, file_id: int, segments: Sequence[NewItem]) -> None: ...
    def transcript(self, file_id: int) -> list[NewItem]: ...
    def add_vectors(self, space: str, item_ids: Sequence[int], vectors: np.ndarray) -> int: ...
    def items_missing_vectors(self, file_id: int, space: str) -> list[tuple[int, NewItem]]: ...
    def files_missing_vectors(self, space: str = "text", limit: int | None = None) -> list[FileRow]: ...
    def files_waiting(self, what: str) -> list[FileRow]: ...
    def has_waiting(self) -> bool: ...
    def count_waiting(self, paths: Sequence[str] | None = None) -> dict[str, int]: ...
    def record_failure(
        self, path: str, *, size: int, mtime: float, kind: str | None, reason: str, content_hash: str | None = None
    ) -> None: ...
    def touch_file(self, file_id: int, *, size: int, mtime: float) -> None: ...
    def move_file(self, file_id: int, new_path: str, *, size: int, mtime: float) -> None: ...
    def copy_file(self, source_id: int, new_path: str, *, size: int, mtime: float) -> int: ...
    def remove_file(self, file_id: int) -> None: ...

    # -- tags
    def add_tag(self, tag: str, file_ids: Iterable[int]) -> int: ...
    def remove_tag(self, tag: str, file_ids: Iterable[int]) -> int: ...
    def tags(self) -> list[tuple[str, str, int]]: ...
    def tags_of_files(self, file_ids: Iterable[int], *, source: str | None = None) -> dict[int, list[str]]: ...
    def file_ids_with_tags(self, names: Sequence[str], mode: str = ...) -> np.ndarray: ...
    def photos_to_autotag(self, signature: str, limit: int = 1000) -> list[tuple[int, int]]: ...
    def count_photos_to_autotag(self, signature: str) -> int: ...
    def set_auto_tags(self, file_id: int, tags: Sequence[tuple[str, float]], signature: str) -> None: ...
    def forget_unused_tags(self) -> None: ...

    # -- the change log (what a local graph follows)
    def items_version(self) -> int: ...
    def items_log_start(self) -> int: ...
    def item_changes(self, since: int, limit: int = 50_000) -> list[tuple[int, int, int]]: ...
    def prune_items_log(self, through: int) -> None: ...

    # -- the catalog and filters
    def item_catalog(
        self, item_ids: Sequence[int] | np.ndarray | None = None, space: str | None = None
    ) -> tuple[np.ndarray, ...]: ...
    def allowed_item_ids(self, filters: Filters, space: str | None = None) -> np.ndarray: ...
    def passing(self, item_ids: Sequence[int], filters: Filters) -> np.ndarray: ...
    def passes_any(self, filters: Filters, space: str) -> bool: ...
    def count_passing(self, filters: Filters) -> int: ...
    def latest_items(self, filters: Filters, limit: int) -> list[int]: ...
    def browse_files(
        self, filters: Filters, after: BrowseKey | None = None, limit: int = 200
    ) -> list[tuple[int, float | None]]: ...
    def browse_months(self, filters: Filters) -> list[tuple[int, int, int]]: ...
    def item_ids_of(self, target: Any) -> list[int]: ...
    def count_items(self, space: str | None = None) -> int: ...
    def count_space_items(self, space: str) -> int: ...

    # -- vectors and text
    def vector_knn(
        self,
        query: np.ndarray,
        k: int,
        kinds: Sequence[str] = (),
        space: str = "clip",
        filters: Filters | None = None,
    ) -> list[tuple[int, float]]: ...
    def vectors(self, item_ids: Sequence[int] | np.ndarray, space: str = "clip") -> np.ndarray: ...
    def iter_vectors(self, batch: int = 4096, space: str = "clip") -> Iterator[tuple[np.ndarray, np.ndarray]]: ...
    def keyword_search(
        self,
        terms: Sequence[Term | str],
        limit: int,
        filters: Filters | None = None,
        passing: Sequence[np.ndarray] | None = None,
    ) -> list[tuple[int, float]]: ...
    def term_counts(self, terms: Sequence[Term]) -> list[int]: ...
    def name_search(
        self, terms: Sequence[Term | str], limit: int, filters: Filters | None = None
    ) -> list[tuple[int, float]]: ...
    def first_items(self, file_ids: Sequence[int]) -> dict[int, int]: ...
    def item_details(self, item_ids: Sequence[int]) -> dict[int, dict]: ...
    def passage_context(self, item_id: int, around: int = ...) -> dict | None: ...
    def first_item_of_file(self, path: str) -> int | None: ...


class ServerStore(Store, Protocol):
    """A store whose server answers vector searches (``serves_vectors``): its index can be described and chosen."""

    def vector_index_options(self) -> dict[str, Any]: ...
    def set_vector_index(self, options: dict[str, Any]) -> None: ...
    def describe_index(self, space: str) -> dict[str, Any]: ...
    def optimize(self) -> dict[str, dict]: ...


def served(store: Store) -> ServerStore:
    """``store`` as the server store it is (callers check ``store.serves_vectors`` first)."""
    if not store.serves_vectors:
        raise TypeError(f"{type(store).__name__} does not serve vector searches")
    return store  # type: ignore[return-value]  # serves_vectors is what sets the two apart
