"""Words as search sees them: folding, stems, phrases, prefixes, CJK substrings, names."""

from __future__ import annotations

import pytest

from engine.text import (
    content_terms,
    find_terms,
    fold,
    has_words,
    index_words,
    name_folders,
    name_index,
    name_matches,
    parse_query,
    word_key,
)


def marked(text: str, query: str) -> list[str]:
    """The pieces of ``text`` that the query's terms mark."""
    spans = sorted(s for found in find_terms(text, content_terms(parse_query(query))).values() for s in found)
    return [text[a:b] for a, b in spans]


def test_folding_makes_ligatures_full_width_and_case_one_form():
    assert fold("misﬁts ﬂyer") == "misfits flyer"
    assert fold("ＳＨＯＥＢＯＸ Ｔｏｋｙｏ") == "shoebox tokyo"
    assert fold("Straße") == "strasse"
    assert word_key("Café") == word_key("cafe") == "cafe"
    assert word_key("Running") == word_key("runs") == word_key("run") == "run"


@pytest.mark.parametrize(
    ("text", "query", "expected"),
    [
        ("She started the engine by the starboard light", "star", []),
        ("The sourdough starter and a star biscuit", "star", ["star"]),
        ("Five stars for the stars", "star", ["stars", "stars"]),
        ("We were running late; he runs daily", "run", ["running", "runs"]),
        ("The misﬁts came in", "misfits", ["misﬁts"]),
        ("Sticker from ＳＨＯＥＢＯＸ in Ｔｏｋｙｏ", "shoebox tokyo", ["ＳＨＯＥＢＯＸ", "Ｔｏｋｙｏ"]),
        ("Ingredients: red beans, reds and a redder sky", "red", ["red", "reds"]),
        ("가족사진을 정리하고 앨범을 만들기", "사진", ["사진"]),
        ("임종석이 서울에서 말했다", "임종석이", ["임종석"]),
        ("the receipt and the receiver", "recei*", ["receipt", "receiver"]),
        ("file IMG_4242.jpg and IMG 4243 and 4242 alone", "IMG_4242", ["IMG_4242"]),
        ("boiler service due, the service of the boiler", '"boiler service"', ["boiler service"]),
        ("Margaret married him in 1066", "Margaret's husband", ["Margaret"]),
    ],
)
def test_words_match_as_words_and_stems(text, query, expected):
    assert marked(text, query) == expected


def test_a_stem_never_becomes_a_stop_word():
    # "mining" must not find the pronoun "mine" in "the passport is mine".
    assert word_key("mining") == "mining" and word_key("mine") == "mine"
    assert marked("the passport is mine", "cryptocurrency mining rig") == []


def test_queries_without_words_have_no_terms():
    for typed in ('"', "(((", "***", "--", "?!", "...;;", "   "):
        assert parse_query(typed) == [] and not has_words(typed)
    assert has_words("a") and has_words("제주")


def test_stop_words_count_only_when_nothing_else_is_left():
    terms = parse_query("receipts from the dentist")
    assert [t.keys for t in content_terms(terms)] == [("receipt",), ("dentist",)]
    assert [t.keys for t in content_terms(parse_query("the who"))] == [("the",), ("who",)]
    assert parse_query("don't")[0].stop and parse_query("it's")[0].stop


def test_typed_syntax_is_read_as_words():
    kinds = [(t.kind, t.keys) for t in parse_query("passport AND (renewal) -x NEAR(a b) col:value")]
    assert ("word", ("passport",)) in kinds and ("word", ("and",)) in kinds and ("word", ("renew",)) in kinds
    assert ("phrase", ("col", "valu")) in kinds
    assert all(t.fts_words().startswith('"') for t in parse_query('a*b "c'))


def test_the_word_index_holds_keys():
    assert index_words("Running misﬁts in ＴＯＫＹＯ, 제주도 여행") == "run misfit in tokyo"
    assert index_words(None) == ""


def test_names_are_words_from_the_library_folder_down():
    root = "/home/me/Pictures"
    path = "/home/me/Pictures/제주도 여행/IMG_4242.JPG"
    assert name_folders(path, root) == ["Pictures", "제주도 여행"]
    assert name_folders("/tmp/loose/file.txt", None) == ["loose"]  # indexed alone: its folder only
    words, plain = name_index(path, root)
    assert words.split()[:2] == ["img", "4242"] and "jpg" not in words.split()  # no extension
    assert "제주도 여행" in plain
    camel, _ = name_index("/n/projects/QuarterlyReportDraft.md", "/n")
    assert {"quarterlyreportdraft", "quarter", "report", "draft"} <= set(camel.split())
    assert name_matches(path, root, "IMG_4242") == "file"
    assert name_matches(path, root, "img 4242") == "file"
    assert name_matches(path, root, "제주도 여행") == "folder"
    assert name_matches("/n/projects/QuarterlyReportDraft.md", "/n", "quarterly report draft") == "file"
    assert name_matches(path, root, "IMG_4243") is None


def test_the_quick_path_finds_exactly_what_reading_every_word_finds():
    """find_terms keys only the words that begin like a term when text needs no folding; same answer."""
    import random

    from engine.text import split_text

    vocab = (
        "run running runs ran star stars started starter starboard receipt receipts dentist the a of "
        "iPhone 4242 IMG_4242 e-mail don't Margaret's 제주도 여행 사진 가족사진을 임종석이 boiler service "
        "happily happy dry dries cafe café ＴＯＫＹＯ misﬁts Straße"
    ).split()
    separators = [" ", "  ", ", ", ". ", "\n", " - ", "_", "(", ")", "'", "’", "«", "—", "/"]
    queries = [*vocab, '"boiler service"', "recei*", "star*", "run*", "dry", "happily"]
    rng = random.Random(1)
    for _ in range(2000):
        text = "".join(rng.choice(vocab) + rng.choice(separators) for _ in range(rng.randint(1, 30)))
        terms = content_terms(parse_query(" ".join(rng.choice(queries) for _ in range(rng.randint(1, 4)))))
        assert find_terms(text, terms) == find_terms(text, terms, split=split_text(text)), (text, terms)
