"""Search through the planner: HNSW and exact plans agree, filters, dates, more-like-this, thresholds, auto-tags."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from engine.library import Library
from engine.settings import load_settings
from engine.store import Filters
from tests.conftest import TINY_ENV
from tests.helpers import make_photo, make_text

NOW = datetime(2026, 11, 23, 10, 0)


@pytest.fixture
def photos(tmp_path):
    """40 photos over four years (ten per year, June), and two notes."""
    root = tmp_path / "files"
    for n in range(40):
        make_photo(
            root / "photos" / str(2020 + n // 10) / f"p{n:02}.jpg",
            100 + n,
            taken=datetime(2020 + n // 10, 6, 1 + n % 10, 12, 0),
        )
    make_text(root / "notes" / "boiler.txt", "The boiler service is due in October; call the plumber first.")
    make_text(root / "notes" / "tax.txt", "Tax return documents: salary statements, receipts and the bank letter.")
    return root


def _library(tmp_path, models, name: str, graph_min_items: int, **env) -> Library:
    settings = load_settings(home=tmp_path / name, env={**TINY_ENV, **env})
    clip, whisper, text = models
    return Library(settings, clip=clip, whisper=whisper, text_model=text, graph_min_items=graph_min_items)


@pytest.fixture
def models(tiny_clip, tiny_whisper, tiny_text):
    return tiny_clip, tiny_whisper, tiny_text


@pytest.fixture
def graph_and_exact(tmp_path, models, photos):
    """The same files in a library searched through HNSW and one searched exactly."""
    graph = _library(tmp_path, models, "graph", graph_min_items=10)
    exact = _library(tmp_path, models, "exact", graph_min_items=10**9)
    for lib in (graph, exact):
        assert lib.index([photos]).failed == []
    yield graph, exact
    graph.close()
    exact.close()


def test_index_is_built_saved_and_used(graph_and_exact):
    graph, exact = graph_and_exact
    assert graph.index_path("clip").exists() and not exact.index_path("clip").exists()
    assert graph.index_status()["clip"]["state"] == "ready"
    assert graph.search("boiler", k=5).plan.startswith("hnsw")
    assert exact.search("boiler", k=5).plan == "exact"  # a small space: its vectors in a matrix


@pytest.mark.parametrize(
    "filters",
    [
        Filters(),
        Filters(kinds=("image",)),
        Filters(after=datetime(2021, 1, 1).timestamp(), before=datetime(2022, 1, 1).timestamp()),
        Filters(kinds=("document",)),
    ],
)
def test_hnsw_plan_and_exact_plan_return_the_same_ranking(graph_and_exact, photos, filters):
    graph, exact = graph_and_exact
    for n in (0, 13, 27):
        image = photos / "photos" / str(2020 + n // 10) / f"p{n:02}.jpg"
        a = graph.search(image=image, filters=filters, k=8, understand_dates=False)
        b = exact.search(image=image, filters=filters, k=8, understand_dates=False)
        assert [r.path for r in a.results] == [r.path for r in b.results]
        # An image finds photos only: documents are in another space.
        passing = {"image": 40, "document": 0}[filters.kinds[0]] if filters.kinds else 40
        assert len(a.results) == min(8, passing)


def test_a_filter_passing_few_items_still_returns_all_of_them(graph_and_exact):
    graph, _ = graph_and_exact
    ids = graph.store.file_ids_under(str(graph.store.roots()[0]))[:3]
    graph.store.add_tag("trip", ids)
    response = graph.search("anything at all", filters=Filters(tags=("trip",)), k=10, min_relevance=0)
    assert response.matched == 3 and len(response.results) == 3


def test_dates_in_the_query_become_a_filter_and_a_chip(graph_and_exact):
    graph, _ = graph_and_exact
    response = graph.search("photos from 2022", k=20, filters=Filters(kinds=("image",)))
    assert response.query == "photos"
    assert [d["text"] for d in response.dates] == ["from 2022"]
    assert response.dates[0]["after"].startswith("2022-01-01") and response.dates[0]["before"].startswith("2023-01-01")
    assert len(response.results) == 10
    assert all(r.media_time.startswith("2022-") for r in response.results)
    # The same words searched as words: no filter.
    words = graph.search("photos from 2022", k=20, filters=Filters(kinds=("image",)), understand_dates=False)
    assert words.dates == [] and len(words.results) == 20


def test_a_query_that_is_only_a_date_lists_that_time_newest_first(graph_and_exact):
    graph, _ = graph_and_exact
    response = graph.search("2021", k=5)
    assert response.plan == "browse" and response.query == ""
    assert [r.media_time[:10] for r in response.results] == [f"2021-06-{d:02}" for d in (10, 9, 8, 7, 6)]


def test_nothing_in_the_understood_dates_falls_back_to_words(graph_and_exact):
    graph, _ = graph_and_exact
    response = graph.search("boiler service in October", k=3, filters=Filters(kinds=("document",)))
    assert response.results and response.results[0].path.endswith("boiler.txt")
    assert any("showing results from any time" in w for w in response.warnings)


def test_more_like_this_leaves_the_photo_out_and_finds_its_neighbours(graph_and_exact, photos):
    graph, exact = graph_and_exact
    target = photos / "photos" / "2020" / "p03.jpg"
    for lib in (graph, exact):
        like = lib.search(like=target, k=5)
        by_image = lib.search(image=target, k=6)
        assert str(target) not in [r.path for r in like.results]
        assert by_image.results[0].path == str(target)
        assert [r.path for r in like.results] == [r.path for r in by_image.results[1:6]]


def test_min_score_drops_weak_matches_but_keeps_word_matches(graph_and_exact):
    graph, _ = graph_and_exact
    everything = graph.search("boiler", k=42, min_relevance=0)
    sims = sorted(r.similarity for r in everything.results)
    cut = sims[len(sims) // 2]
    kept = graph.search("boiler", k=42, min_score=cut, min_relevance=0)
    assert 0 < len(kept.results) < len(everything.results)
    for r in kept.results:
        assert r.similarity >= cut or r.matched
    assert any(r.path.endswith("boiler.txt") for r in kept.results)


def test_results_stay_right_while_files_come_and_go(graph_and_exact, photos):
    graph, _ = graph_and_exact
    graph.search("warm up", k=1)
    new = make_photo(photos / "late" / "new.jpg", 999, taken=datetime(2024, 1, 1))
    graph.index([photos / "late"])
    assert graph.search(image=new, k=1).results[0].path == str(new)
    new.unlink()
    graph.index([photos / "late"])
    assert str(new) not in [r.path for r in graph.search(image=photos / "photos" / "2020" / "p00.jpg", k=50).results]


def test_auto_tags_are_stored_apart_and_filterable(tmp_path, models, photos):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("# test\nalpha: a photo of alpha\nbeta\ngamma: gamma | the gamma thing\n", encoding="utf-8")
    lib = _library(
        tmp_path,
        models,
        "auto",
        graph_min_items=10**9,
        SHOEBOX_AUTOTAG_VOCABULARY=str(vocab),
        SHOEBOX_AUTOTAG_THRESHOLD="0.34",
    )
    try:
        lib.index([photos])
        tagger = lib.autotagger()
        store = lib.store
        auto = {n: c for n, s, c in store.tags() if s == "auto"}
        assert auto and set(auto) <= {"alpha", "beta", "gamma"}
        # Tags are what the tagger computes from the stored vectors, with the threshold.
        photo = photos / "photos" / "2020" / "p00.jpg"
        item = store.item_ids_of(photo)[0]
        expected = [name for name, p in tagger.tag(store.vectors([item]))[0]]
        row = store.get_file(str(photo))
        assert row is not None
        file_id = row.id
        assert sorted(store.tags_of_files([file_id], source="auto")[file_id]) == sorted(expected)
        name = next(iter(auto))
        filtered = lib.search("x", filters=Filters(tags=(name,)), k=50, min_relevance=0)
        assert len({r.path for r in filtered.results}) == auto[name]
        # A tag the user removes stays removed when tagging runs again.
        holder = filtered.results[0]
        store.remove_tag(name, [holder.file_id])
        store._exec(  # type: ignore[attr-defined]
            "UPDATE files SET autotag_sig = NULL"
        )
        lib.autotag()
        assert name not in store.tags_of_files([holder.file_id])[holder.file_id]
        # The user's tag of the same name wins over an auto-tag.
        store.add_tag(name, [holder.file_id])
        assert (name, "user", 1) in store.tags()
    finally:
        lib.close()


def test_autotagger_threshold_and_vocabulary_errors(tmp_path, tiny_clip):
    from engine.autotag import AutoTagger, read_vocabulary
    from engine.errors import UsageError

    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UsageError, match="no tags"):
        read_vocabulary(tmp_path / "empty.txt")
    with pytest.raises(UsageError, match="cannot read"):
        read_vocabulary(tmp_path / "missing.txt")
    vocabulary = read_vocabulary()
    assert len(vocabulary) >= 40 and any(t.name == "beach" for t in vocabulary)
    strict = AutoTagger(tiny_clip, vocabulary, threshold=1.0)
    loose = AutoTagger(tiny_clip, vocabulary, threshold=0.001)
    vecs = np.eye(tiny_clip.dim, dtype=np.float32)[:4]
    assert all(tags == [] for tags in strict.tag(vecs))
    for tags in loose.tag(vecs):
        assert 1 <= len(tags) <= 3
        assert [p for _, p in tags] == sorted((p for _, p in tags), reverse=True)
    assert strict.signature != loose.signature


def test_reconfigure_rebuilds_only_what_changed(tmp_path, tiny_whisper):
    from dataclasses import replace

    settings = load_settings(home=tmp_path / "re", env=dict(TINY_ENV))
    lib = Library(settings, whisper=tiny_whisper)
    try:
        clip = lib.clip
        lib.reconfigure(replace(settings, llm_url="http://127.0.0.1:9/v1"))
        assert lib.clip is clip and lib.settings.llm_url == "http://127.0.0.1:9/v1"
        lib.reconfigure(replace(lib.settings, clip_pretrained="seed1"))
        assert lib.clip is not clip and lib.clip.identity.weights == "seed1"
    finally:
        lib.close()
