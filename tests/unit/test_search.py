"""Exact search with the test-tiny models: self-retrieval, hybrid ranking and filters."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from engine.errors import UsageError
from engine.search import MEANING_PENDING, make_snippet, query_terms
from engine.store import Filters
from tests.helpers import make_photo, make_text
from tests.postgres import both_stores

# Every test here that uses the library fixture runs on the SQLite store and on PostgreSQL.
store_setting = both_stores

NOTES = {
    "dentist.txt": "The dentist appointment is on Thursday at nine. Bring the insurance card and the x-ray letter.",
    "garden.txt": "Tomatoes and basil grow best on the south balcony; water them every morning in July.",
    "car.md": "# Car\n\nThe car insurance renews in March. The garage quoted 420 euros for the brakes.",
    "여행.txt": "제주도 여행 계획: 공항에서 렌터카를 빌리고 해변 근처 숙소에 머문다.",
}


@pytest.fixture
def indexed(tmp_path, library):
    root = tmp_path / "lib"
    for n, year in enumerate((2019, 2020, 2021, 2022, 2023, 2023)):
        make_photo(root / "photos" / f"img{n}.jpg", 40 + n, taken=datetime(year, 6, 1, 12, 0))
    for name, text in NOTES.items():
        make_text(root / "notes" / name, text)
    summary = library.index([root])
    assert summary.failed == []
    return root


def test_an_image_searched_by_itself_comes_back_first(indexed, library):
    for n in range(6):
        path = indexed / "photos" / f"img{n}.jpg"
        response = library.search(image=path, k=3)
        assert response.results[0].path == str(path)
        assert response.results[0].similarity == pytest.approx(1.0, abs=1e-4)


def test_a_document_chunk_searched_by_its_own_text_comes_back_first(indexed, library):
    for name, text in NOTES.items():
        response = library.search(" ".join(text.split()), k=3)
        assert response.results[0].path == str(indexed / "notes" / name), name


def test_results_carry_what_the_json_contract_promises(indexed, library):
    result = library.search("insurance", k=5).results[0]
    data = result.to_json()
    for key in ("path", "kind", "score", "locator", "snippet", "media_time", "tags"):
        assert key in data
    assert "«insurance»" in result.snippet.lower() or "«Insurance»" in result.snippet
    assert data["locator"]["char_start"] == 0


def test_keyword_match_ranks_the_right_note_high(indexed, library):
    paths = [r.path for r in library.search("brakes garage", k=3, filters=Filters(kinds=("document",))).results]
    assert paths[0] == str(indexed / "notes" / "car.md")


def test_korean_query_finds_korean_note(indexed, library):
    paths = [r.path for r in library.search("렌터카", k=3, filters=Filters(kinds=("document",))).results]
    assert paths[0] == str(indexed / "notes" / "여행.txt")


@pytest.mark.parametrize("kinds", [("image",), ("document",), ("image", "document")])
def test_kind_filter_returns_only_that_kind(indexed, library, kinds):
    # min_relevance=0: every passing item, as the app asks (test-tiny's random weights judge nothing relevant)
    results = library.search("summer", k=20, filters=Filters(kinds=kinds), min_relevance=0).results
    assert results and {r.kind for r in results} <= set(kinds)
    expected = {"image": 6, "document": 4}
    assert len(results) == min(20, sum(expected[k] for k in kinds))


def test_tag_filter(indexed, library):
    store = library.store
    ids = store.file_ids_under(str(indexed / "photos" / "img2.jpg")) + store.file_ids_under(
        str(indexed / "notes" / "garden.txt")
    )
    store.add_tag("family", ids)
    results = library.search("anything", k=10, filters=Filters(tags=("family",)), min_relevance=0).results
    assert sorted(r.path for r in results) == sorted(
        [str(indexed / "photos" / "img2.jpg"), str(indexed / "notes" / "garden.txt")]
    )
    assert all([t for t in r.tags if t not in r.auto_tags] == ["family"] for r in results)


def test_date_range_filter(indexed, library):
    f = Filters(kinds=("image",), after=datetime(2021, 1, 1).timestamp(), before=datetime(2023, 1, 1).timestamp())
    results = library.search("photo", k=10, filters=f, min_relevance=0).results
    assert sorted(r.path for r in results) == [str(indexed / "photos" / f"img{n}.jpg") for n in (2, 3)]
    assert all(r.media_time.startswith(("2021", "2022")) for r in results)


def test_folder_filter(indexed, library):
    results = library.search("insurance", k=10, filters=Filters(folder=str(indexed / "notes")), min_relevance=0).results
    assert len(results) == 4 and all(r.path.startswith(str(indexed / "notes")) for r in results)


def test_filtered_query_returns_k_whenever_k_match(indexed, library):
    f = Filters(after=datetime(2020, 1, 1).timestamp(), kinds=("image",))
    results = library.search("zzzz", k=5, filters=f, min_relevance=0).results
    assert len(results) == 5


def test_empty_query_is_a_usage_error(library):
    with pytest.raises(UsageError):
        library.search("   ")


def test_keyword_only_before_any_model(tmp_path):
    import numpy as np

    from engine.library import Library
    from engine.settings import load_settings
    from engine.store import NewItem

    lib = Library(load_settings(home=tmp_path / "nomodel", env={}))
    try:
        response = lib.search("passport")
        assert response.results == [] and "keywords only" in response.warnings[0]
        # a library with vectors but weights missing: text queries still work by keywords
        lib.store.ensure_model("intfloat/multilingual-e5-small", "sha256:0123456789abcdef", 4, space="text")
        with lib.store.transaction():
            lib.store.add_file(
                "/d/p.txt",
                size=1,
                mtime=1.0,
                content_hash="h",
                kind="document",
                media_time=1.0,
                items=[NewItem("text", text="passport renewal")],
                vectors=np.ones((1, 4)),
            )
        response = lib.search("passport")
        assert [r.path for r in response.results] == ["/d/p.txt"]
        assert "keywords only" in response.warnings[0]
    finally:
        lib.close()


# -- models that have not loaded yet ---------------------------------------------------------

SLOW_LOAD_S = 0.5


@pytest.fixture
def cold(indexed, library, tiny_settings, tiny_whisper, monkeypatch):
    """The indexed library opened again with test-tiny encoders whose weights are not loaded;
    yields it and the names of the encoders loaded since, in order."""
    from engine.library import Library
    from engine.models import build_clip, build_text_encoder

    library.close()
    clip, text = build_clip(tiny_settings), build_text_encoder(tiny_settings)
    assert not clip.loaded and not text.loaded
    calls: list[str] = []
    for name, encoder in (("clip", clip), ("text", text)):
        monkeypatch.setattr(encoder, "load", _recording(encoder, name, calls))
    lib = Library(library.settings, clip=clip, whisper=tiny_whisper, text_model=text)
    yield lib, calls
    lib.close()


def _recording(encoder, name, calls, sleep_s=0.0):
    """``encoder.load`` that notes ``name`` in ``calls`` (and sleeps ``sleep_s``) when it loads weights."""
    load = type(encoder).load.__get__(encoder)

    def recorded():
        if not encoder.loaded:
            calls.append(name)
            time.sleep(sleep_s)
        load()

    return recorded


def test_a_search_that_may_not_wait_answers_by_words_without_loading_a_model(cold, indexed):
    lib, calls = cold
    response = lib.search("insurance", k=10, wait_for_models=False)
    assert calls == [] and not lib.clip.loaded and not lib.text_model.loaded
    assert {r.path for r in response.results} == {str(indexed / "notes" / n) for n in ("dentist.txt", "car.md")}
    assert all(r.similarity is None and r.matched == ["insurance"] for r in response.results)
    assert response.meaning_pending and not response.keywords_only
    assert response.warnings == [MEANING_PENDING] and response.load_ms == 0.0
    data = response.to_json()
    assert data["meaning_pending"] is True and data["load_ms"] == 0.0
    # Once the weights are in memory the same search is by meaning too, and says nothing is pending.
    lib.text_model.load()
    lib.clip.load()
    calls.clear()
    again = lib.search("insurance", k=10, wait_for_models=False)
    assert not again.meaning_pending and MEANING_PENDING not in again.warnings and again.load_ms == 0.0
    assert all(r.similarity is not None for r in again.results)


def test_a_space_not_searched_is_not_waited_for(cold):
    lib, calls = cold
    lib.text_model.load()  # the text model is ready, CLIP is not
    calls.clear()
    notes = lib.search("insurance", k=10, wait_for_models=False, filters=Filters(kinds=("document",)))
    assert not notes.meaning_pending and notes.results and all(r.similarity is not None for r in notes.results)
    photos = lib.search("insurance", k=10, wait_for_models=False, filters=Filters(kinds=("image",)))
    assert photos.meaning_pending and calls == []


def test_loading_the_models_is_not_search_time(cold, monkeypatch):
    lib, calls = cold
    for name, encoder in (("clip", lib.clip), ("text", lib.text_model)):
        monkeypatch.setattr(encoder, "load", _recording(encoder, name, calls, SLOW_LOAD_S))
    began = time.perf_counter()
    response = lib.search("insurance", k=10)  # waits for the models (as the command line does)
    wall_ms = (time.perf_counter() - began) * 1000
    assert sorted(calls) == ["clip", "text"] and lib.clip.loaded and lib.text_model.loaded
    assert not response.meaning_pending and all(r.similarity is not None for r in response.results)
    assert response.load_ms >= 2 * SLOW_LOAD_S * 1000
    assert response.took_ms < SLOW_LOAD_S * 1000 and response.encode_ms < SLOW_LOAD_S * 1000
    assert response.took_ms + response.load_ms <= wall_ms
    # Loaded now: the next search loads nothing.
    assert lib.search("insurance", k=10).load_ms == 0.0 and len(calls) == 2


def test_query_terms_and_snippets():
    assert query_terms('"passport" AND (renewal) -x') == ["passport", "AND", "renewal", "x"]
    snippet = make_snippet("word " * 100 + "the passport is here " + "word " * 100, ["passport"])
    assert snippet is not None and "«passport»" in snippet and snippet.startswith("…") and snippet.endswith("…")


@pytest.mark.parametrize(
    "typed",
    [
        '"insurance',
        "insurance AND",
        "* OR -",
        "NEAR(a b)",
        "insurance'); DROP TABLE items;--",
        "((( ]]",
        "🦷 dentist 🦷",
        "the of and",
        "^x:y",
        "작년에 ))",
        "2023 * last week",
        "in",
        "-",
        "\u0000weird",
    ],
)
def test_anything_typed_is_searched_without_error(indexed, library, typed):
    response = library.search(typed, k=5)
    assert isinstance(response.results, list) and response.took_ms >= 0


def test_keyword_terms_drop_stop_words_and_korean_particles():
    from engine.search import keyword_terms

    assert keyword_terms(["When", "did", "the", "Normans", "reach", "Italy"]) == ["Normans", "reach", "Italy"]
    assert keyword_terms(["the", "of"]) == ["the", "of"]  # nothing else left: keep them
    assert keyword_terms(["임종석이", "서울에서", "사진"]) == ["임종석", "서울", "사진"]


def test_snippets_mark_words_not_pieces_of_words():
    from engine.search import keyword_terms, mark_terms

    # Whole words and their inflections, never a piece of another word.
    assert (
        mark_terms("Ingredients: red beans, reds and a redder sky", ["red"])
        == "Ingredients: «red» beans, «reds» and a redder sky"
    )
    assert mark_terms("가족사진을 정리", ["사진"]) == "가족«사진»을 정리"
    assert keyword_terms(["a", "red", "circle"]) == ["red", "circle"]


@pytest.fixture
def words_library(tmp_path, library):
    """Files whose names, folders and words the tests below search for (test-tiny: words decide)."""
    root = tmp_path / "home"
    make_photo(root / "Pictures" / "제주도 여행" / "IMG_4242.jpg", 1)
    make_photo(root / "Pictures" / "제주도 여행" / "IMG_4243.jpg", 2)
    make_photo(root / "Pictures" / "IMG_1036.jpg", 3)
    make_text(root / "notes" / "crazyones.txt", "Here's to the ones who see things differently.")
    make_text(root / "notes" / "QuarterlyReportDraft.md", "Sales grew in the north.")
    make_text(root / "notes" / "band.txt", "The misﬁts started rehearsing on the starboard deck.")
    make_text(root / "notes" / "biscuits.txt", "Cut the dough with a star cutter. Ｔｏｋｙｏ sticker on the tin.")
    # A long note: several passages, one card.
    make_text(
        root / "notes" / "boiler.txt",
        "\n\n".join(
            f"Part {n}. The boiler pressure was checked by the engineer. " + "Routine notes follow here. " * 40
            for n in range(4)
        ),
    )
    assert library.index([root]).failed == []
    return root


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("IMG_4242", ["Pictures/제주도 여행/IMG_4242.jpg"]),
        ("IMG 1036", ["Pictures/IMG_1036.jpg"]),
        ("crazyones", ["notes/crazyones.txt"]),
        ("quarterly report draft", ["notes/QuarterlyReportDraft.md"]),
    ],
)
def test_a_name_finds_its_file_first(words_library, library, query, expected):
    results = library.search(query, k=5).results
    assert [r.path for r in results[: len(expected)]] == [str(words_library / p) for p in expected]
    assert results[0].name_match == "file"


def test_a_folder_name_finds_every_file_in_it(words_library, library):
    paths = {r.path for r in library.search("제주도 여행", k=10).results}
    assert paths == {str(words_library / "Pictures" / "제주도 여행" / n) for n in ("IMG_4242.jpg", "IMG_4243.jpg")}


def test_plain_spellings_find_ligatures_and_full_width_letters(words_library, library):
    assert [r.path for r in library.search("misfits", k=5).results] == [str(words_library / "notes" / "band.txt")]
    tokyo = library.search("tokyo", k=5).results
    assert [r.path for r in tokyo] == [str(words_library / "notes" / "biscuits.txt")]
    assert "«Ｔｏｋｙｏ»" in tokyo[0].snippet  # the word as written is what is marked


def test_star_does_not_find_started(words_library, library):
    results = library.search("star", k=5).results
    assert [r.path for r in results] == [str(words_library / "notes" / "biscuits.txt")]
    assert "«star»" in results[0].snippet and "«start" not in results[0].snippet


@pytest.mark.parametrize("nonsense", ["xylophonequartzplinth", '"', "(((", "***", "qwpzrtkv mmnlx"])
def test_nonsense_finds_nothing(words_library, library, nonsense):
    response = library.search(nonsense, k=10)
    assert response.results == []


def test_one_card_per_file_with_its_other_passages(words_library, library):
    results = library.search("boiler engineer", k=10).results
    boiler = [r for r in results if r.path.endswith("boiler.txt")]
    assert len(boiler) == 1
    card = boiler[0]
    assert len(card.more) == 3 and {m["item_id"] for m in card.more}.isdisjoint({card.item_id})
    assert all("«boiler»" in m["snippet"] for m in card.more)
    # Question answering wants every passage on its own: those holding the words first.
    items = library.search("boiler engineer", k=10, per_file=False).results
    assert all(r.path.endswith("boiler.txt") and "«engineer»" in r.snippet for r in items[:4])


def test_results_say_why_they_were_found(words_library, library):
    result = library.search("biscuits cutter", k=3).results[0]
    data = result.to_json()
    assert set(data) >= {"relevance", "matched", "name_match", "more"}
    assert data["matched"] == ["biscuits", "cutter"]  # the name's word and the text's word
    response = library.search("xylophonequartzplinth", k=3).to_json()
    assert response["results"] == [] and response["min_relevance"] == library.settings.min_relevance


def test_a_filter_no_passage_passes_skips_the_word_lookup_and_still_finds_names(indexed, library, monkeypatch):
    """'Photos only' in a library whose photos hold no text: no word can match, so none is looked up."""
    calls = []
    real = library.store.keyword_search

    def counted(*args, **kwargs):
        calls.append(kwargs.get("filters"))
        return real(*args, **kwargs)

    monkeypatch.setattr(library.store, "keyword_search", counted)
    photos = library.search("img3 insurance", k=20, filters=Filters(kinds=("image",)), min_relevance=0)
    assert calls == []
    assert photos.results and {r.kind for r in photos.results} == {"image"}
    assert photos.results[0].path.endswith("img3.jpg")  # found by its name
    notes = library.search("insurance", k=20, filters=Filters(kinds=("document",)), min_relevance=0)
    assert len(calls) == 1 and {r.path.rsplit("/", 1)[-1] for r in notes.results[:2]} == {"dentist.txt", "car.md"}


# -- search by example stays on pictures ------------------------------------------------------------


def _transcript_first(library, path, text: str) -> None:
    """Store ``path``'s picture after a passage, as a video transcribed before CLIP came is stored."""
    from engine.store import NewItem

    store = library.store
    row = store.get_file(str(path))
    (picture,) = store.item_ids_of(str(path))
    vector = store.vectors([picture], space="clip")
    passage = library.text_model.encode_passages([text])
    with store.transaction():
        store.replace_items(row.id, [NewItem("ocr", text=text, char_start=0, char_end=len(text))], {"text": passage})
        store.replace_items(row.id, [NewItem("image")], {"clip": vector}, modalities=["image"])
    modalities = [store.item_details([i])[i]["modality"] for i in store.item_ids_of(str(path))]
    assert modalities == ["ocr", "image"]


def test_more_like_a_photo_finds_photos_whatever_order_its_items_are_in(indexed, library):
    photo = indexed / "photos" / "img0.jpg"
    _transcript_first(library, photo, NOTES["dentist.txt"])
    for like in (str(photo), library.store.item_ids_of(str(photo))[0]):
        results = library.search(like=like, k=20, min_relevance=0).results
        assert results, like
        assert {r.kind for r in results} == {"image"}, [(r.kind, r.path) for r in results]
        assert all(r.modality == "image" for r in results)
        assert str(photo) not in {r.path for r in results}
        assert len(results) == 5  # the other photos, every one of them


def test_a_picture_as_the_query_finds_only_pictures(indexed, library):
    # Even with words typed beside it: they narrow the pictures, they add no passages.
    for text in ("", "dentist insurance"):
        results = library.search(text, image=indexed / "photos" / "img3.jpg", k=20, min_relevance=0).results
        assert results and {r.kind for r in results} == {"image"}


def test_a_kind_filter_still_decides_what_a_picture_example_returns(indexed, library):
    photo = indexed / "photos" / "img1.jpg"
    only_photos = library.search(like=str(photo), k=20, filters=Filters(kinds=("image",)), min_relevance=0)
    assert {r.kind for r in only_photos.results} == {"image"}
    documents = library.search(like=str(photo), k=20, filters=Filters(kinds=("document",)), min_relevance=0)
    assert documents.results == []  # a picture's likeness is no passage's


def test_more_like_a_document_finds_passages(indexed, library):
    results = library.search(like=str(indexed / "notes" / "garden.txt"), k=20, min_relevance=0).results
    assert results and {r.kind for r in results} == {"document"}
