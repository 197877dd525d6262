"""What only the PostgreSQL store does: its vector indexes, its filtered searches, its text literals, its errors.

What both stores share is tested on both (test_store.py, test_search.py, test_browse.py).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import engine.postgres_store as pg
from engine.errors import LibraryError, SchemaTooNewError, UsageError
from engine.query import Filters
from engine.settings import load_settings
from engine.store import NewItem
from engine.stores import check_location, is_postgres, redact
from engine.text import parse_query

DIM = 16


def _store(uri: str, **env: str) -> pg.PostgresStore:
    return pg.PostgresStore(uri, settings=load_settings(home="/nonexistent-home", env=env))


def _fill(store: pg.PostgresStore, n: int, seed: int = 0) -> np.ndarray:
    """``n`` photos with random unit vectors, photo i taken at time i; returns the vectors (row i = item i + 1)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.ensure_model("test-tiny", "seed0", DIM)
    with store.transaction():
        for i in range(n):
            store.add_file(
                f"/photos/{i:05}.jpg",
                size=1,
                mtime=1.0,
                content_hash=str(i),
                kind="image",
                media_time=float(i),
                items=[NewItem("image")],
                vectors=vectors[i : i + 1],
            )
    store._exec("ANALYZE")
    return vectors


def _exact(vectors: np.ndarray, query: np.ndarray, k: int, passing: np.ndarray) -> list[int]:
    scores = vectors @ query
    scores[~passing] = -np.inf
    return [int(i) + 1 for i in np.argsort(-scores, kind="stable")[:k]]


def test_a_filtered_search_is_exact_over_few_passing_rows_and_still_returns_k_through_the_index(
    postgres_db, monkeypatch
):
    store = _store(postgres_db)
    vectors = _fill(store, 1200)
    query = vectors[7] + 0.1 * vectors[900]
    query /= np.linalg.norm(query)
    times = np.arange(1200)
    # Few pass: the passing rows are compared one by one, exactly.
    narrow = Filters(before=60.0)
    assert (
        store._estimated_rows(
            "SELECT v.item_id FROM item_vectors v JOIN items i ON i.id = v.item_id JOIN files f ON f.id = i.file_id "
            "WHERE f.media_time < ?",
            [60.0],
        )
        < pg.EXACT_ROWS
    )
    got = [i for i, _ in store.vector_knn(query, 10, filters=narrow)]
    assert got == _exact(vectors, query, 10, times < 60)
    # Past EXACT_ROWS the filter goes into the HNSW scan, which reads on until k rows pass.
    monkeypatch.setattr(pg, "EXACT_ROWS", 0)
    for before in (60.0, 600.0):
        hits = store.vector_knn(query, 10, filters=Filters(before=before))
        assert len(hits) == 10
        assert all(i <= before for i, _ in hits)  # item i + 1 was taken at time i
        assert [d for _, d in hits] == sorted(d for _, d in hits)
        truth = set(_exact(vectors, query, 10, times < before))
        assert len(truth & {i for i, _ in hits}) >= 8
    # Unfiltered, the index answers; its first hit is the nearest photo.
    assert store.vector_knn(query, 5)[0][0] == _exact(vectors, query, 1, times >= 0)[0]
    store.close()


def test_the_library_keeps_the_vector_index_it_was_created_with(postgres_db):
    store = _store(postgres_db, SHOEBOX_PG_INDEX="ivfflat", SHOEBOX_PG_LISTS="4")
    assert store.vector_index_options() == {"kind": "ivfflat", "lists": 4}
    vectors = _fill(store, 300)
    # IVFFlat learns its lists from rows: none is built for a few hundred, and search is exact.
    assert store.describe_index("clip")["index"] == "exact"
    assert store.vector_knn(vectors[3], 1)[0][0] == 4
    store.close()
    # Another client with other settings opens the same library: the library's index stands.
    other = _store(postgres_db, SHOEBOX_PG_INDEX="hnsw")
    assert other.vector_index_options()["kind"] == "ivfflat"
    with other.transaction():
        for i in range(300, 1100):
            other.add_file(
                f"/more/{i}.jpg",
                size=1,
                mtime=1.0,
                content_hash=f"m{i}",
                kind="image",
                media_time=None,
                items=[NewItem("image")],
                vectors=np.roll(vectors[i % 300], i % DIM)[None, :],
            )
    described = other.optimize()["clip"]
    assert described["index"] == "ivfflat" and described["parameters"]["lists"] == 4
    assert described["parameters"]["probes"] == 2  # the square root of the lists
    assert other._table_exists("item_vectors_ann")
    # Changing the index builds it again for every space.
    other.set_vector_index({"kind": "hnsw", "m": 8, "ef_construction": 32})
    described = other.describe_index("clip")
    assert described["index"] == "hnsw" and described["parameters"]["m"] == 8
    assert other.vector_knn(vectors[3], 1)[0][0] == 4
    other.close()


def test_word_keys_and_queries_are_literals_postgres_reads_as_they_are(postgres_db):
    assert pg._tsvector(["run", "o'neil", "run", "x" * 300]) == "'run':1,3 'o''neil':2"
    [word] = parse_query("running")
    assert pg.tsquery_of(word) == "'run'"
    [phrase] = parse_query('"dentist receipt"')
    assert pg.tsquery_of(phrase) == "'dentist' <-> 'receipt'"
    [prefix] = parse_query("denti*")
    assert pg.tsquery_of(prefix) == "'denti':*"
    store = _store(postgres_db)
    store.ensure_model("test-tiny", "seed0", DIM, space="text")
    with store.transaction():
        store.add_file(
            "/notes/a.txt",
            size=1,
            mtime=1.0,
            content_hash="a",
            kind="document",
            media_time=None,
            items=[NewItem("text", text="O'Neil's dentist receipt: ∞ & | ! <-> :*")],
            vectors=np.ones((1, DIM), np.float32),
        )
    # Quotes, operators and backslashes typed by a person stay text.
    for typed in ["o'neil", "& | !", "<->", ":*", "\\", "'", "receipt:*"]:
        store.keyword_search(parse_query(typed), 10)
    assert [i for i, _ in store.keyword_search(parse_query("o'neil dentist"), 10)] == [1]
    store.close()


def test_writers_take_turns_and_a_reader_never_waits(postgres_db):
    first, second = _store(postgres_db), _store(postgres_db)
    first.ensure_model("test-tiny", "seed0", DIM)
    order: list[str] = []
    entered = threading.Event()

    def write_second() -> None:
        entered.wait()
        with second.transaction():
            order.append("second")
            second.add_root("/b")

    thread = threading.Thread(target=write_second)
    thread.start()
    with first.transaction():
        first.add_root("/a")
        entered.set()
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the first writer
        # Reading goes on meanwhile (another client; this one's connection is the waiting writer's),
        # and sees the committed state only.
        reader = _store(postgres_db)
        assert reader.roots() == []
        reader.close()
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]
    assert first.roots() == ["/a", "/b"]
    first.close()
    second.close()


def test_a_library_from_a_newer_shoebox_is_refused(postgres_db):
    _store(postgres_db).close()
    store = _store(postgres_db)
    store._set_meta("schema_version", str(pg.PG_SCHEMA_VERSION + 1))
    store.close()
    with pytest.raises(SchemaTooNewError, match="newer Shoebox"):
        _store(postgres_db)


def test_an_unreachable_server_is_a_clear_error_without_the_password():
    with pytest.raises(LibraryError) as caught:
        pg.PostgresStore("postgresql://me:hunter2@127.0.0.1:1/shoebox")
    assert "cannot reach the PostgreSQL library" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.for_window
    assert "SHOEBOX_STORE" not in caught.value.for_window


def test_addresses_are_recognised_checked_and_shown_without_passwords():
    assert is_postgres("postgresql://nas/shoebox") and is_postgres("host=/run/postgresql dbname=shoebox")
    assert not is_postgres("/home/me/library.sqlite3")
    with pytest.raises(UsageError, match="SHOEBOX_STORE must be empty"):
        check_location("/home/me/library.sqlite3")
    with pytest.raises(UsageError, match="libpq"):
        check_location("host=nas dbname='unclosed")
    assert redact("postgresql://me:s3cret@nas/shoebox") == "postgresql://me:***@nas/shoebox"
    assert redact("postgresql://nas/shoebox?user=me&password=s3cret") == "postgresql://nas/shoebox?user=me&password=***"
    assert redact("host=nas password='a b' dbname=x") == "host=nas password=*** dbname=x"


def test_a_library_is_reached_through_a_unix_socket_folder_in_key_value_words(
    postgres_db, tmp_path, tiny_clip, tiny_whisper, tiny_text
):
    """``SHOEBOX_STORE='host=/run/postgresql dbname=shoebox'``: libpq's words, host naming a socket folder."""
    import psycopg

    from engine.library import Library
    from tests.conftest import TINY_ENV
    from tests.helpers import make_text

    with psycopg.connect(postgres_db) as conn:
        row = conn.execute("SHOW unix_socket_directories").fetchone()
        assert row is not None
        folder = row[0].split(",")[0].strip()
        port = conn.info.port
        database = conn.info.dbname
    address = f"host={folder} port={port} dbname={database} user=postgres"
    note = make_text(tmp_path / "notes" / "lantern.txt", "The lantern hangs by the harbour door.")
    settings = load_settings(home=tmp_path / "home", env={**TINY_ENV, "SHOEBOX_STORE": address})
    with Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text) as library:
        assert library.index([note.parent]).added == 1
        assert library.search("lantern", k=1, min_relevance=0.0).results[0].path == str(note)
        assert library.store.location() == address
        # Over the socket, the server has no address of its own for this connection.
        assert library.store._query("SELECT inet_server_addr()")[0][0] is None  # type: ignore[attr-defined]


def test_a_connection_the_server_drops_is_opened_again(postgres_db):
    """A server restart (or a network that went and came back) ends every session; the next call works."""
    import psycopg

    store = _store(postgres_db)
    _fill(store, 3)
    with store.snapshot():
        pass  # this thread's snapshot connection exists now

    def drop_every_session() -> None:
        with psycopg.connect(postgres_db, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

    drop_every_session()
    assert store.count_items() >= 0 and len(store.roots()) == 0  # a read: tried again on a new connection
    drop_every_session()
    store.add_root("/after")  # a write: its transaction opens a new connection first
    drop_every_session()
    with store.snapshot():
        assert store.roots() == ["/after"]
    store.close()
