"""One library on a PostgreSQL server, shared by several clients at once.

Each client is what one computer runs: its own home folder (thumbnails, models, settings)
and the same ``SHOEBOX_STORE``.  Two app instances are two :class:`Library` objects; a third
client is the ``shoebox`` command in another process.  They see each other's changes as soon
as they commit (the server's vector index serves every search, so no client has a graph to
catch up), and two of them indexing the same folder at once store each file once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.library import Library
from engine.query import Filters, Query
from engine.settings import load_settings
from tests.conftest import ROOT, TINY_ENV, tiny_env
from tests.helpers import make_photo, make_text
from tests.stress import CONSTANT_WORD, Churn, search_while_another_process_reindexes

pytestmark = pytest.mark.slow


@pytest.fixture
def clients(tmp_path, postgres_db, tiny_clip, tiny_whisper, tiny_text):
    """Two app instances on the same server library; yields (a, b, the CLI's environment)."""
    made: list[Library] = []

    def client(name: str) -> Library:
        settings = load_settings(home=tmp_path / name, env={**TINY_ENV, "SHOEBOX_STORE": postgres_db})
        made.append(Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text))
        return made[-1]

    env = tiny_env(tmp_path / "cli")
    env["SHOEBOX_STORE"] = postgres_db
    yield client("a"), client("b"), env
    for library in made:
        library.close()


def _folder(root: Path, words: list[str], photos: int = 3, seed: int = 0) -> Path:
    for n, word in enumerate(words):
        make_text(root / "notes" / f"{word}.txt", f"A note about the {word}, written on day {n}.")
    for n in range(photos):
        make_photo(root / "photos" / f"photo-{n}.png", seed=seed + n)
    return root


def _paths(library: Library, query: Query) -> list[str]:
    return [r.path for r in library.search(query).results]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_what_one_client_indexes_the_others_find_at_once(clients, tmp_path):
    a, b, env = clients
    first = _folder(tmp_path / "first", ["lantern", "orchard"], seed=10)
    summary = a.index([first])
    assert summary.failed == [] and summary.added == 5

    # The other app finds it by words, by meaning (a photo as the query) and by browsing.
    note = str(first / "notes" / "lantern.txt")
    assert _paths(b, Query("lantern", k=3, min_relevance=0.0))[0] == note
    photos = {str(p) for p in (first / "photos").iterdir()}
    like = _paths(b, Query(like=str(first / "photos" / "photo-0.png"), k=5, min_relevance=0.0))
    assert set(like) == photos - {str(first / "photos" / "photo-0.png")}
    assert len(b.browse().results) == 5
    assert b.store.roots() == [str(first)]

    # A tag added in one app filters the other's searches.
    file_id = b.store.get_file(note).id
    assert b.store.add_tag("Trip", [file_id]) == 1
    assert _paths(a, Query("", k=10, filters=Filters(tags=("trip",)))) == [note]

    # The command line, a third client, indexes another folder: both apps find it.
    second = _folder(tmp_path / "second", ["quarry"], photos=0)
    run = _cli(env, "index", str(second), "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["added"] == 1
    for library in (a, b):
        assert _paths(library, Query("quarry", k=3, min_relevance=0.0))[0] == str(second / "notes" / "quarry.txt")
    # And the command line finds what the apps indexed.
    run = _cli(env, "search", "orchard", "--json", "-k", "3")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["results"][0]["path"] == str(first / "notes" / "orchard.txt")

    # A file one client removes is gone for the other.
    (first / "notes" / "orchard.txt").unlink()
    a.index([first])
    assert str(first / "notes" / "orchard.txt") not in _paths(b, Query("orchard", k=5, min_relevance=0.0))


def _each_file_once(library: Library, folder: Path) -> None:
    on_disk = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    stored = sorted(row.path for row in library.store.files_under(str(folder)))
    assert stored == on_disk
    # Every file holds its own items once: one picture per photo, a note's passages once.
    rows = library.store._query(  # type: ignore[attr-defined]
        "SELECT f.path, i.modality, count(*) FROM files f JOIN items i ON i.file_id = f.id "
        "GROUP BY f.path, i.modality ORDER BY f.path"
    )
    for path, modality, count in rows:
        if modality == "image":
            assert count == 1, path
        else:
            assert count == 1, (path, modality, count)  # each note is one short passage
    assert library.store.count_items() == len(on_disk)


def test_two_clients_and_the_cli_indexing_one_folder_at_once_store_each_file_once(clients, tmp_path):
    a, b, env = clients
    churn = Churn(tmp_path / "shared", photos=10)
    for _ in range(3):
        start = threading.Barrier(3)
        errors: list[BaseException] = []

        def index(library: Library, start: threading.Barrier, errors: list[BaseException]) -> None:
            try:
                start.wait()
                library.index([churn.root])
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=index, args=(library, start, errors)) for library in (a, b)]
        for thread in threads:
            thread.start()
        start.wait()
        run = _cli(env, "index", str(churn.root))
        for thread in threads:
            thread.join()
        assert errors == [] and run.returncode == 0, (errors, run.stderr)
        _each_file_once(a, churn.root)
        note = str(churn.notes / "changing.txt")
        assert _paths(b, Query(CONSTANT_WORD, k=3, min_relevance=0.0, understand_dates=False))[0] == note
        churn.step()


def test_searches_in_one_client_stay_whole_while_another_reindexes(clients, tmp_path):
    """Every search sees a committed state: each photo, note and rename whole, never half."""
    a, _b, env = clients
    churn = Churn(tmp_path / "churn")
    a.index([churn.root])
    tally, returncode, output = search_while_another_process_reindexes(a, churn, env, rounds=4, at_least=30)
    assert returncode == 0, output
    assert tally.failures == [], tally.failures[:5]
    assert tally.searches >= 30
