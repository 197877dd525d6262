"""Searches while the library is re-indexed see one consistent state: no exception, nothing missed.

One process with two threads (the app: the indexing worker and searches), and
two processes (the app searching while ``shoebox index`` runs beside it).
See :mod:`tests.stress` for what each search checks.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from engine.library import Library
from engine.query import Query
from engine.settings import load_settings
from tests.conftest import ROOT, TINY_ENV, tiny_env
from tests.stress import Churn, search_until, search_while_another_process_reindexes

ROUNDS = 40
PROCESS_ROUNDS = 6  # each round in the other process also re-opens the library and its models

pytestmark = pytest.mark.slow


def _library(home, tiny_clip, tiny_whisper, tiny_text, **kwargs) -> Library:
    settings = load_settings(home=home, env=dict(TINY_ENV))
    return Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text, **kwargs)


@pytest.mark.parametrize("graph", [False, True], ids=["matrix", "hnsw"])
def test_searches_while_a_thread_reindexes(tmp_path, tiny_clip, tiny_whisper, tiny_text, graph):
    churn = Churn(tmp_path / "folder")
    library = _library(
        tmp_path / "lib",
        tiny_clip,
        tiny_whisper,
        tiny_text,
        index_build="background",
        graph_min_items=1 if graph else 5000,
    )
    try:
        library.index([churn.root])
        done = threading.Event()
        errors: list[BaseException] = []

        def reindex() -> None:
            try:
                for _ in range(ROUNDS):
                    churn.step()
                    library.index([churn.root])
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)
            finally:
                done.set()

        writer = threading.Thread(target=reindex)
        writer.start()
        tally = search_until(library, churn, done, at_least=30)
        writer.join()
        assert not errors, errors
        print(f"{tally.searches} searches during {ROUNDS} re-indexes, {len(tally.failures)} failed")
        assert tally.failures == [], tally.failures[:5]
        if graph:
            assert library.vector_index("clip").state in ("ready", "building")
    finally:
        library.close()


def test_searches_while_another_process_reindexes(tmp_path, tiny_clip, tiny_whisper, tiny_text):
    churn = Churn(tmp_path / "folder")
    home = tmp_path / "lib"
    env = tiny_env(home)
    subprocess.run(
        [sys.executable, "-m", "engine", "index", str(churn.root)], env=env, cwd=ROOT, check=True, capture_output=True
    )
    library = _library(home, tiny_clip, tiny_whisper, tiny_text, index_build="background", graph_min_items=1)
    try:
        library.search(Query("warm up", k=1))  # the index is loaded before the other process starts
        tally, status, output = search_while_another_process_reindexes(library, churn, env, PROCESS_ROUNDS, at_least=30)
    finally:
        library.close()
    assert status == 0, output
    print(
        f"{tally.searches} searches while `shoebox index` ran {PROCESS_ROUNDS} times in another process, "
        f"{len(tally.failures)} failed"
    )
    assert tally.failures == [], tally.failures[:5]
