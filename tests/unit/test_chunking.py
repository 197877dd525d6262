"""Chunking text into CLIP-sized overlapping spans."""

from __future__ import annotations

import itertools
import time
import unicodedata

import pytest

from engine.extractors.chunking import chunk_text, clip_token_counter

from ._data import corpus_dir, qa_json

ENGLISH = (
    "The dentist's receipt came in March. It listed a cleaning, two X-rays and a check-up, "
    "and the total was 240 euros. I paid it by card on the same day! Was the insurance "
    "going to cover any of it? The form said claims must be filed within ninety days. "
)


def _count(text: str) -> int:
    return clip_token_counter()(text)


def _check_invariants(text: str, spans: list[tuple[int, int]], max_tokens: int = 75) -> None:
    covered = bytearray(len(text))
    for start, end in spans:
        piece = text[start:end]
        assert piece and piece == piece.strip(), (start, end)
        assert _count(piece) <= max_tokens, piece
        covered[start:end] = b"\x01" * (end - start)
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))
    for (s1, e1), (s2, e2) in itertools.pairwise(spans):
        assert s1 < s2 and e1 < e2  # in order, and every span adds new text


def test_empty_and_blank_text() -> None:
    assert chunk_text("") == []
    assert chunk_text(" \n\t \u3000 ") == []


def test_short_text_is_one_span_without_surrounding_space() -> None:
    text = "\n  Passport expires on 3 May 2027.  \n"
    assert chunk_text(text) == [(3, 34)]
    assert text[3:34] == "Passport expires on 3 May 2027."


def test_english_prose_breaks_at_sentences_and_overlaps() -> None:
    text = ENGLISH * 12
    spans = chunk_text(text)
    _check_invariants(text, spans)
    assert len(spans) > 5
    # Spans end where sentences end, except when a sentence is too long to fit.
    assert sum(text[e - 1] in ".!?" for _, e in spans) >= len(spans) - 1
    for (_s1, e1), (s2, _e2) in itertools.pairwise(spans):
        assert s2 < e1  # they overlap ...
        assert 0 < _count(text[s2:e1]) <= 15  # ... by at most overlap_tokens
        assert text[s2 - 1].isspace()  # and the next one starts at a word


def test_paragraph_break_is_preferred() -> None:
    first = "Receipts and invoices from the dentist, kept for the insurance claim this year. " * 3
    second = "Holiday plans: flights booked, hotel still open, passport renewal due before June. " * 3
    text = first.strip() + "\n\n" + second.strip()
    spans = chunk_text(text, overlap_tokens=0)
    assert text[spans[0][0] : spans[0][1]] == first.strip()


def test_zero_overlap_spans_do_not_overlap() -> None:
    text = ENGLISH * 6
    spans = chunk_text(text, overlap_tokens=0)
    _check_invariants(text, spans)
    assert all(e1 <= s2 for (_, e1), (s2, _) in itertools.pairwise(spans))


def test_korean_corpus_text_fits_clip() -> None:
    text = (corpus_dir("text") / "ko" / "utf-8_coding-interview-university_README-ko.md").read_text(encoding="utf-8")
    text = text[:40_000]
    spans = chunk_text(text)
    _check_invariants(text, spans)
    # Korean words are separated by spaces: spans start at a word, never inside one.
    for start, _ in spans[1:]:
        assert not (text[start - 1].isalnum() and text[start].isalnum())


def test_chinese_without_spaces_is_split_and_fits() -> None:
    text = "維基大典者網路為礎集天下知四海言眾人志書百科焉始作者維基媒體基金會也" * 40  # no spaces, no punctuation
    spans = chunk_text(text)
    _check_invariants(text, spans)
    assert len(spans) > 10
    assert "".join(text[s:e] for s, e in chunk_text(text, overlap_tokens=0)) == text


def test_japanese_prefers_its_own_sentence_ends() -> None:
    sentence = "昔々、ある所に子供のいない老夫婦が住んでいた。"
    text = sentence * 12
    spans = chunk_text(text)
    _check_invariants(text, spans)
    assert all(text[e - 1] == "。" for _, e in spans)


def test_one_enormous_word_is_cut() -> None:
    text = "https://example.com/" + "a1b2c3d4" * 400 + " end"
    spans = chunk_text(text)
    _check_invariants(text, spans)
    assert text[spans[-1][0] : spans[-1][1]].endswith(" end")


@pytest.mark.parametrize(
    "text",
    [
        "caf\u00e9 na\u00efve r\u00e9sum\u00e9 " * 60,  # accented Latin (NFC)
        unicodedata.normalize("NFD", "café naïve résumé Ångström ") * 60,  # decomposed accents
        "Tom &amp; Jerry &lt;3 &#233;t&#233; " * 60,  # HTML entities CLIP's cleaning unescapes
        "the \ufb01nal o\ufb03ce \u201cquoted\u201d it\u2019s " * 60,  # ligatures, curly quotes
        "tab\tbell\x07null\x00vertical\x0bend " * 60,  # control characters
        "emoji 🎉🎂👨‍👩‍👧 and flags 🇰🇷🇯🇵 " * 40,
        "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ，ｗｉｔｈ　ｓｐａｃｅｓ。" * 30,
        "Привет мир, это тест. مرحبا بالعالم. नमस्ते दुनिया। " * 30,
    ],
)
def test_awkward_text_still_fits_clip(text: str) -> None:
    _check_invariants(text, chunk_text(text))


def test_custom_token_len_and_limits() -> None:
    text = ENGLISH * 3
    spans = chunk_text(text, max_tokens=20, overlap_tokens=5, token_len=len)  # characters as tokens
    assert all(e - s <= 20 for s, e in spans)
    covered = bytearray(len(text))
    for s, e in spans:
        covered[s:e] = b"\x01" * (e - s)
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="max_tokens must be at least 1"):
        chunk_text("text", max_tokens=0)
    with pytest.raises(ValueError, match="overlap_tokens must be in"):
        chunk_text("text", max_tokens=10, overlap_tokens=10)
    with pytest.raises(ValueError, match="overlap_tokens must be in"):
        chunk_text("text", overlap_tokens=-1)


def test_word_counts_add_up_to_the_tokenizer_count() -> None:
    counter = clip_token_counter()
    text = "It's 9 o'clock: don't forget the dentist's receipt (240 EUR), ok?"
    import regex

    words = regex.findall(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", text, flags=regex.I)
    assert sum(counter.count_word(w) for w in words) == counter(text)


def test_a_megabyte_of_text_takes_seconds_not_minutes() -> None:
    clip_token_counter()("warm up")  # building the tokenizer is not what is measured
    squad = qa_json("squad_v2_dev_subset_small.json")
    text = "\n\n".join(p["context"] for d in squad["data"] for p in d["paragraphs"])
    text = (text * (1_000_000 // len(text) + 1))[:1_000_000]
    started = time.perf_counter()
    spans = chunk_text(text)
    elapsed = time.perf_counter() - started
    assert spans[-1][1] == len(text.rstrip())
    assert elapsed < 8, f"chunking 1 MB took {elapsed:.1f} s"  # about 0.7 s on a 2-core laptop
