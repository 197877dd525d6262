"""A library copied from SQLite into PostgreSQL (`shoebox store migrate`), and the store commands.

The SQLite library is indexed with the test-tiny models; the copy goes into a fresh database
of the session's PostgreSQL server (tests/postgres.py) and must answer every query as the
original does.  The commands run as a person runs them: a real process, its exit status and
its output (never a traceback).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest
from psycopg.conninfo import conninfo_to_dict

from engine.errors import LibraryError
from engine.library import Library
from engine.migrate import MigrationSummary, holds_library, migrate_library, verify_migration
from engine.query import Filters, Query
from engine.settings import load_settings
from engine.store import LibraryStore, NewItem
from engine.stores import open_store
from tests.conftest import tiny_env
from tests.helpers import make_photo, make_text, make_tone


def shoebox(home, *args, env=None):
    proc = subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)],
        env={**tiny_env(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def fill(library, root) -> None:
    """Photos, notes (one in Korean), a recording and a tag, indexed into ``library``."""
    make_photo(root / "photos" / "beach.jpg", 1, taken=datetime(2020, 5, 1, 9, 0))
    make_photo(root / "photos" / "garden.png", 2)
    make_photo(root / "photos" / "party.jpg", 3, taken=datetime(2023, 8, 2, 18, 0))
    make_text(root / "notes" / "boiler.txt", "The boiler service is due in October; call the plumber first.")
    make_text(root / "notes" / "dentist receipt.txt", "Receipt from the dentist: cleaning and an x-ray, paid in cash.")
    make_text(root / "notes" / "사진 메모.txt", "가족 사진을 정리하고 앨범을 만들기")
    make_tone(root / "recordings" / "tone.wav")
    summary = library.index([root])
    assert not summary.failed
    library.store.add_tag("family", library.store.file_ids_under(str(root / "photos")))


def answers(library, query: Query) -> list[tuple[str, dict]]:
    return [(r.path, r.locator) for r in library.search(query).results]


def test_the_copy_holds_every_row_and_answers_as_the_original(
    library, tmp_path, postgres_db, tiny_clip, tiny_whisper, tiny_text
):
    root = tmp_path / "files"
    fill(library, root)
    summary = migrate_library(library.store, postgres_db, library.settings)
    assert summary.ok, summary.to_json()
    counts = {c.table: (c.source, c.target) for c in summary.counts}
    assert counts["files"] == (7, 7)
    assert counts["vectors of photos"] == (3, 3)
    assert counts["file tags"][0] >= 3 and counts["file tags"][0] == counts["file tags"][1]
    assert counts["transcript segments"][0] == counts["transcript segments"][1]
    assert [n.space for n in summary.neighbours] == ["clip", "text"]
    assert all(n.samples > 0 and n.vectors_same for n in summary.neighbours)
    assert summary.lookups[0].words and summary.lookups[1].words

    copy = Library(
        library.settings.with_overrides(store=postgres_db), clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text
    )
    try:
        assert copy.store.serves_vectors
        assert copy.store.stats()["files"] == library.store.stats()["files"]
        assert copy.store.tags() == library.store.tags()
        queries = [
            Query(text="boiler", min_relevance=0),  # words
            Query(text="plumber october", min_relevance=0),
            Query(text="가족", min_relevance=0),  # a substring (Korean)
            Query(text="dentist", min_relevance=0),  # a file's name
            Query(text="a sunny afternoon", min_relevance=0),  # meaning, both spaces
            Query(image=str(root / "photos" / "beach.jpg"), min_relevance=0),  # an image's nearest photos
            Query(text="photo", filters=Filters(kinds=("image",), tags=("family",)), min_relevance=0),  # filters
            Query(text="cash", filters=Filters(after=datetime(2000, 1, 1).timestamp()), min_relevance=0),
        ]
        for query in queries:
            expected = answers(library, query)
            assert expected, query
            assert answers(copy, query) == expected, query
        assert answers(copy, queries[0])[0][0] == str(root / "notes" / "boiler.txt")

        # New rows take ids after the copied ones (the identity sequences were moved past them).
        before = max(copy.store.file_ids_under(str(root)))
        make_text(root / "later" / "new.txt", "A note written after the move to the server.")
        copy.index([root / "later"])
        added = copy.store.get_file(str(root / "later" / "new.txt"))
        assert added is not None and added.id > before
    finally:
        copy.close()


def test_a_database_holding_a_library_is_refused(library, tmp_path, postgres_db):
    make_text(tmp_path / "files" / "a.txt", "one small note about a boiler")
    library.index([tmp_path / "files"])
    assert migrate_library(library.store, postgres_db, library.settings).ok
    with pytest.raises(LibraryError, match="already holds a library"):
        migrate_library(library.store, postgres_db, library.settings)
    # The same database named by libpq's key=value words.
    words = " ".join(f"{k}={v}" for k, v in conninfo_to_dict(postgres_db).items())
    assert words.startswith(("host=", "user=", "port=", "dbname="))
    with pytest.raises(LibraryError, match="already holds a library"):
        migrate_library(library.store, words, library.settings)


# Checks of the cancel flag before the first row, then inside the COPY of files, of vectors (binary),
# and in the pipelines that index words and names (one note: one batch of each).
@pytest.mark.parametrize("checks", [0, 2, 4, 5, 6])
def test_a_cancelled_copy_leaves_the_database_empty(library, tmp_path, postgres_db, checks):
    make_text(tmp_path / "files" / "a.txt", "one small note about a boiler")
    library.index([tmp_path / "files"])
    asked = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) > checks

    summary = migrate_library(library.store, postgres_db, library.settings, should_cancel=cancel)
    assert summary.cancelled and not summary.ok and len(asked) == checks + 1
    target = open_store(library.settings.with_overrides(store=postgres_db))
    try:
        assert holds_library(target) == 0
    finally:
        target.close()
    assert migrate_library(library.store, postgres_db, library.settings).ok  # and may be filled afterwards


def test_the_check_finds_a_copy_that_differs(library, tmp_path, postgres_db):
    root = tmp_path / "files"
    make_text(root / "a.txt", "the boiler service is due in october")
    make_text(root / "b.txt", "a receipt from the dentist")
    library.index([root])
    assert migrate_library(library.store, postgres_db, library.settings).ok
    target = open_store(library.settings.with_overrides(store=postgres_db))
    try:
        gone = target.get_file(str(root / "b.txt"))
        assert gone is not None
        with target.transaction():
            target.remove_file(gone.id)
        summary = MigrationSummary("source", "target")
        verify_migration(library.store, target, summary)
    finally:
        target.close()
    assert not summary.ok
    wrong = {c.table for c in summary.counts if not c.ok}
    assert {"files", "items", "vectors of passages", "word index", "name index"} <= wrong


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_does_not_answer_is_said_plainly(tmp_path):
    unreachable = f"postgresql://shoebox@127.0.0.1:{closed_port()}/shoebox"
    for args, env in (
        (("--store", unreachable, "status"), None),
        (("search", "boiler"), {"SHOEBOX_STORE": unreachable}),
        (("--store", unreachable, "store", "info"), None),
    ):
        proc = shoebox(tmp_path / "home", *args, env=env)
        assert proc.returncode == 1, proc.stderr
        assert "cannot reach the PostgreSQL library" in proc.stderr and "Connection refused" in proc.stderr
    LibraryStore(tmp_path / "home" / "library.sqlite3").close()  # an empty SQLite library to copy
    proc = shoebox(tmp_path / "home", "store", "migrate", "--to", unreachable)
    assert proc.returncode == 1 and "cannot reach the PostgreSQL library" in proc.stderr
    proc = shoebox(tmp_path / "home", "store", "migrate", "--to", str(tmp_path / "elsewhere.sqlite3"))
    assert proc.returncode == 2 and "PostgreSQL address" in proc.stderr


def test_store_commands(library, tmp_path, postgres_db):
    root = tmp_path / "files"
    make_photo(root / "beach.jpg", 1)
    make_text(root / "boiler.txt", "The boiler service is due in October; call the plumber first.")
    library.index([root])
    home = library.settings.home
    sqlite_status = json.loads(shoebox(home, "status", "--json").stdout)
    assert sqlite_status["store"] == "sqlite"

    proc = shoebox(home, "store", "index", "--kind", "hnsw")
    assert proc.returncode == 2 and "SQLite file" in proc.stderr

    proc = shoebox(home, "store", "migrate", "--to", postgres_db)
    assert proc.returncode == 0, proc.stderr
    assert "the copy checks out" in proc.stdout
    assert f"shoebox --store {postgres_db} search" in proc.stdout
    assert "DIFFERENT" not in proc.stdout

    status = json.loads(shoebox(home, "--store", postgres_db, "status", "--json").stdout)
    assert status["store"] == "postgresql" and status["library"] == postgres_db
    assert set(status) >= set(sqlite_status)  # every field the SQLite library's status gives
    assert status["files"] == sqlite_status["files"] and status["items"] == sqlite_status["items"]
    text = shoebox(home, "--store", postgres_db, "status").stdout
    assert "PostgreSQL server" in text and "on the server" in text

    found = json.loads(shoebox(home, "--store", postgres_db, "search", "boiler", "--json").stdout)
    assert found["results"][0]["path"] == str(root / "boiler.txt")

    info = json.loads(shoebox(home, "--store", postgres_db, "store", "info", "--json").stdout)
    assert info["store"] == "postgresql" and info["location"] == postgres_db
    assert info["vector_index"] == {"kind": "hnsw", "m": 16, "ef_construction": 64}
    assert info["spaces"]["clip"]["index"] == "hnsw" and info["spaces"]["clip"]["items"] == 1

    proc = shoebox(
        home, "--store", postgres_db, "store", "index", "--kind", "hnsw", "--m", "8", "--ef-construction", "32"
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(shoebox(home, "--store", postgres_db, "store", "info", "--json").stdout)
    assert info["vector_index"] == {"kind": "hnsw", "m": 8, "ef_construction": 32}
    assert info["spaces"]["text"]["parameters"]["m"] == 8
    changed = json.loads(shoebox(home, "--store", postgres_db, "store", "index", "--kind", "ivfflat", "--json").stdout)
    assert changed["vector_index"] == {"kind": "ivfflat", "lists": 0}
    # Too few rows to learn lists from: searched exactly until there are enough.
    assert changed["spaces"]["clip"]["index"] == "exact"
    proc = shoebox(home, "--store", postgres_db, "store", "index", "--kind", "ivfflat", "--m", "8")
    assert proc.returncode == 2 and "--kind hnsw" in proc.stderr

    proc = shoebox(home, "store", "migrate", "--to", postgres_db)
    assert proc.returncode == 1 and "already holds a library" in proc.stderr

    info = json.loads(shoebox(home, "store", "info", "--json").stdout)
    assert info["store"] == "sqlite" and info["location"] == str(home / "library.sqlite3")


def test_migrate_use_keeps_the_library_on_the_server(library, tmp_path, postgres_db):
    make_text(tmp_path / "files" / "boiler.txt", "The boiler service is due in October.")
    library.index([tmp_path / "files"])
    home = library.settings.home
    proc = shoebox(home, "store", "migrate", "--to", postgres_db, "--use", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (
        summary["ok"]
        and summary["used"]
        and summary["counts"][0]
        == {
            "table": "files",
            "source": 1,
            "target": 1,
            "ok": True,
        }
    )
    assert json.loads((home / "settings.json").read_text())["store"] == postgres_db
    assert json.loads(shoebox(home, "status", "--json").stdout)["store"] == "postgresql"
    # --store '' is the SQLite file again, for one command.
    assert json.loads(shoebox(home, "--store", "", "status", "--json").stdout)["store"] == "sqlite"


def test_a_copy_that_fails_its_check_exits_with_an_error(tmp_path, monkeypatch, capsys):
    """The index's recall alone falling short is told apart from rows that differ; both exit with 1."""
    from engine import cli, migrate

    home = tmp_path / "home"
    LibraryStore(home / "library.sqlite3").close()
    outcomes = {
        "recall": migrate.NeighbourCheck("clip", 20, 20, 0.5, True, "hnsw"),
        "rows": migrate.NeighbourCheck("clip", 20, 17, 0.9, True, "hnsw"),
    }
    for what, check in outcomes.items():
        summary = migrate.MigrationSummary("source", "postgresql://me@nas/shoebox", neighbours=[check])
        summary.counts.append(migrate.TableCount("files", 3, 3 if what == "recall" else 2))
        monkeypatch.setattr(migrate, "migrate_library", lambda *args, summary=summary, **kwargs: summary)
        assert cli.main(["--home", str(home), "store", "migrate", "--to", "postgresql://me@nas/shoebox"]) == 1
        out = capsys.readouterr().out
        assert "DIFFERENT" in out
        if what == "recall":
            assert "the rows and vectors match" in out and "SHOEBOX_PG_EF_SEARCH" in out
        else:
            assert "the copy does not match the library" in out
        assert "shoebox --store" not in out  # no advice to use a copy that failed


def test_a_re_embedded_library_keeps_its_vector_tables(tmp_path, postgres_db):
    """Vectors in a re-embed's table are copied under that name; a re-embed under way is left out, with a note."""
    settings = load_settings(home=tmp_path / "home", env={})
    rng = np.random.default_rng(5)
    source = LibraryStore(settings.db_path)
    try:
        source.ensure_model("first", "w1", 8, "clip")
        with source.transaction():
            for n in range(4):
                vector = rng.normal(size=(1, 8)).astype(np.float32)
                source.add_file(
                    f"/photos/{n}.jpg",
                    size=1,
                    mtime=1.0,
                    content_hash=str(n),
                    kind="image",
                    media_time=None,
                    items=[NewItem("image")],
                    vectors=vector / np.linalg.norm(vector),
                )
        source.begin_restage("second", "w2", 6, "clip")
        ids = source.staged_missing("clip", 10)
        source.add_staged_vectors("clip", ids, rng.normal(size=(len(ids), 6)).astype(np.float32))
        assert source.finish_restage("clip")
        source.begin_restage("third", "w3", 4, "clip")  # under way
        assert source.vector_table("clip") == "item_vectors_1"

        summary = migrate_library(source, postgres_db, settings)
        assert summary.ok, summary.to_json()
        assert any("re-embed" in note for note in summary.notes)
        target = open_store(settings.with_overrides(store=postgres_db))
        try:
            assert target.vector_table("clip") == "item_vectors_1"
            assert target.model_identity("clip") == source.model_identity("clip")
            assert target.staged_model("clip") is None
            assert np.array_equal(target.vectors(ids, space="clip"), source.vectors(ids, space="clip"))
            # A later re-embed numbers its table after the copied ones.
            assert target.begin_restage("fourth", "w4", 4, "clip")["table"] == "item_vectors_3"
        finally:
            target.close()
    finally:
        source.close()
