"""Answering questions from passages: extractive sentences with citations, and a local LLM's streamed answer."""

from __future__ import annotations

import functools
import json
import random
import threading
from typing import ClassVar

import numpy as np
import pytest

from engine import answer as answer_module
from engine.answer import (
    NOT_FOUND_MESSAGE,
    Passage,
    SentenceMeaning,
    ask,
    build_messages,
    question_terms,
    split_sentences,
    text_terms,
)
from engine.calibration import Calibration
from engine.errors import Cancelled, ModelUnavailableError, UsageError
from engine.llm import LlmClient
from engine.search import MARK_CLOSE, MARK_OPEN
from tests.unit._data import qa_json
from tests.unit.test_llm import FakeChatServer, closed_port_url, sse_stream

NORMANS = (
    "The Normans (Norman: Nourmands; French: Normands; Latin: Normanni) were the people who in the 10th and 11th "
    "centuries gave their name to Normandy, a region in France. They were descended from Norse raiders and pirates "
    "from Denmark, Iceland and Norway who, under their leader Rollo, agreed to swear fealty to King Charles III."
)
BREAD = "Bake the bread at 220 degrees for 30 minutes. Let it cool on a rack before slicing it."
SEOUL = "나는 2015년부터 2019년까지 서울에 살았다. 그 후에 부산으로 이사했다."
JEJU = "제주도 여행에서 한라산에 올랐다. 날씨가 맑아서 정상이 잘 보였어요."


def doc(
    item_id: int,
    path: str,
    text: str,
    score: float,
    locator: dict | None = None,
    similarity: float | None = None,
    kind: str = "document",
) -> Passage:
    return Passage(
        item_id=item_id,
        path=path,
        kind=kind,
        locator=locator if locator is not None else {"page": 1},
        text=text,
        media_time=None,
        tags=[],
        score=score,
        similarity=similarity,
    )


def photo(
    item_id: int, path: str, score: float, *, tags=(), taken: str | None = None, similarity: float | None = None
) -> Passage:
    return Passage(
        item_id=item_id,
        path=path,
        kind="image",
        locator={},
        text=None,
        media_time=taken,
        tags=list(tags),
        score=score,
        similarity=similarity,
    )


def unmarked(text: str) -> str:
    return text.replace(MARK_OPEN, "").replace(MARK_CLOSE, "")


class Retriever:
    """A retrieve function that returns fixed passages and records the questions it was asked."""

    def __init__(self, passages: list[Passage]):
        self.passages = passages
        self.questions: list[str] = []

    def __call__(self, question: str) -> list[Passage]:
        self.questions.append(question)
        return list(self.passages)


@pytest.fixture
def library_passages() -> list[Passage]:
    normans_locator = {"page": 3, "char_start": 1200, "char_end": 1510}
    return [
        doc(1, "/docs/recipes.txt", BREAD, 0.033, {"char_start": 0, "char_end": 85}),  # ranked first, off topic
        doc(2, "/docs/history/normans.pdf", NORMANS, 0.032, normans_locator),
        doc(3, "/docs/seoul.txt", SEOUL, 0.031, {"char_start": 0, "char_end": 40}),
        doc(4, "/docs/jeju.txt", JEJU, 0.030, {"char_start": 0, "char_end": 36}),
        photo(5, "/photos/IMG_2044.jpg", 0.029, tags=["office"], taken="2024-03-02T09:00:00", similarity=0.12),
    ]


# --- extractive -------------------------------------------------------------------------------


def test_extractive_answer_quotes_the_sentence_and_cites_its_passage(library_passages):
    tokens: list[str] = []
    retrieve = Retriever(library_passages)
    result = ask("When were the Normans in Normandy?", retrieve, on_token=tokens.append)
    assert retrieve.questions == ["When were the Normans in Normandy?"]
    assert result.found and result.mode == "extractive"
    assert result.answer.startswith("The Normans (Norman: Nourmands;")
    assert "10th and 11th centuries" in result.answer
    assert result.answer.endswith("a region in France. [1]")
    assert "Bake" not in result.answer and "[2]" not in result.answer
    [citation] = result.citations
    assert (citation.number, citation.path, citation.kind) == (1, "/docs/history/normans.pdf", "document")
    assert citation.locator == {"page": 3, "char_start": 1200, "char_end": 1510}
    assert citation.item_id == 2
    assert "10th and 11th centuries" in unmarked(citation.snippet)
    assert f"{MARK_OPEN}Normans{MARK_CLOSE}" in citation.snippet
    assert "".join(tokens) == result.answer
    assert result.photos == [] and result.warnings == []


def test_korean_question_matches_words_with_particles(library_passages):
    result = ask("서울에서 언제 살았어?", Retriever(library_passages))
    assert result.found
    assert result.answer == "나는 2015년부터 2019년까지 서울에 살았다. [1]"
    assert [(c.path, c.locator) for c in result.citations] == [("/docs/seoul.txt", {"char_start": 0, "char_end": 40})]


def test_korean_question_about_a_place_finds_the_trip(library_passages):
    result = ask("한라산에 언제 올랐지?", Retriever(library_passages))
    assert result.answer == "제주도 여행에서 한라산에 올랐다. [1]"
    assert result.citations[0].path == "/docs/jeju.txt"


def test_transcript_segments_are_cited_with_their_times():
    segments = [
        doc(10, "/audio/interview.m4a", "Thanks for coming in today.", 0.05, {"start": 0.0, "end": 3.2}, kind="audio"),
        doc(
            11,
            "/audio/interview.m4a",
            "Our funding came from a regional arts grant in 2021.",
            0.04,
            {"start": 12.0, "end": 17.5},
            kind="audio",
        ),
        doc(12, "/audio/interview.m4a", "We spent it on a new kiln.", 0.03, {"start": 17.5, "end": 20.0}, kind="audio"),
    ]
    result = ask("Where did the funding come from?", Retriever(segments))
    assert result.answer == "Our funding came from a regional arts grant in 2021. [1]"
    [citation] = result.citations
    assert (citation.kind, citation.locator, citation.item_id) == ("audio", {"start": 12.0, "end": 17.5}, 11)


def test_several_sentences_are_numbered_by_passage_in_order_of_first_use():
    passages = [
        doc(1, "/a.txt", "The passport expires in March 2027. Renewal takes six weeks.", 0.05),
        # An overlapping chunk repeats the first sentence: it must not be quoted twice.
        doc(2, "/a.txt", "The passport expires in March 2027. The embassy is closed on Fridays.", 0.04, {"page": 2}),
        doc(3, "/b.txt", "My husband's passport expires in June 2026.", 0.03),
        doc(4, "/c.txt", "The garden needs water every morning.", 0.02),
    ]
    result = ask("When does the passport expire?", Retriever(passages), max_sentences=3)
    assert result.answer.count("The passport expires in March 2027.") == 1
    assert result.answer == ("The passport expires in March 2027. [1] My husband's passport expires in June 2026. [2]")
    assert [(c.number, c.path, c.item_id) for c in result.citations] == [(1, "/a.txt", 1), (2, "/b.txt", 3)]
    single = ask("When does the passport expire?", Retriever(passages), max_sentences=1)
    assert single.answer == "The passport expires in March 2027. [1]"


def test_sentences_from_one_passage_share_its_number():
    passages = [
        doc(
            1,
            "/trip.txt",
            "We took a flight to Lisbon on 3 May. Lisbon was sunny. The flight home from Lisbon was late.",
            0.05,
        ),
        doc(2, "/other.txt", "Lisbon trams are yellow.", 0.04),
    ]
    result = ask("Lisbon flight", Retriever(passages), max_sentences=3)
    assert result.answer == "We took a flight to Lisbon on 3 May. [1] The flight home from Lisbon was late. [1]"
    [citation] = result.citations
    assert (citation.number, citation.path) == (1, "/trip.txt")
    assert unmarked(citation.snippet) == "We took a flight to Lisbon on 3 May. … The flight home from Lisbon was late."


def test_an_unrelated_question_finds_nothing(library_passages):
    tokens: list[str] = []
    result = ask("What is the capital of Peru?", Retriever(library_passages), on_token=tokens.append)
    assert result.found is False
    assert result.answer == NOT_FOUND_MESSAGE
    assert result.citations == [] and result.photos == []
    assert tokens == [NOT_FOUND_MESSAGE]


def test_no_passages_finds_nothing():
    result = ask("When were the Normans in Normandy?", Retriever([]))
    assert (result.found, result.answer, result.citations) == (False, NOT_FOUND_MESSAGE, [])


def test_photos_that_match_by_tag_are_the_answer_when_no_text_does(library_passages):
    beach = photo(
        6, "/photos/beach_day.jpg", 0.028, tags=["beach", "summer"], taken="2025-08-12T10:30:00", similarity=0.11
    )
    dunes = photo(7, "/photos/DSC0001.jpg", 0.027, taken="2025-08-13T16:00:00", similarity=0.31)  # similar enough
    result = ask("When was I at the beach?", Retriever([*library_passages, beach, dunes]))
    assert result.found
    assert [p.item_id for p in result.photos] == [6, 7]  # the office photo is neither tagged nor similar
    assert result.answer == "Photos that match: beach_day.jpg (12 Aug 2025) [1], DSC0001.jpg (13 Aug 2025) [2]."
    assert [(c.number, c.path, c.kind, c.locator) for c in result.citations] == [
        (1, "/photos/beach_day.jpg", "image", {}),
        (2, "/photos/DSC0001.jpg", "image", {}),
    ]
    assert "tags: beach, summer" in unmarked(result.citations[0].snippet)


def test_matching_photos_are_listed_beside_a_text_answer(library_passages):
    normandy = photo(8, "/photos/normandy_coast.jpg", 0.028, tags=["normandy", "coast"], taken="2023-07-01")
    result = ask("When were the Normans in Normandy?", Retriever([*library_passages, normandy]))
    assert "10th and 11th centuries" in result.answer
    assert [p.path for p in result.photos] == ["/photos/normandy_coast.jpg"]
    assert [c.kind for c in result.citations] == ["document"]


def test_long_photo_lists_are_shortened():
    photos = [photo(i, f"/p/cat{i}.jpg", 1.0 - i / 100, similarity=0.3) for i in range(8)]
    result = ask("my cat", Retriever(photos))
    assert len(result.photos) == 8
    assert result.answer.endswith("cat4.jpg [5] and 3 more.")
    assert len(result.citations) == 5


class ConceptEncoder:
    """A stand-in for CLIP's text encoder: words map to concepts, so synonyms embed alike."""

    CONCEPTS: ClassVar[dict[str, str]] = {
        "automobile": "car",
        "car": "car",
        "fix": "repair",
        "garage": "repair",
        "price": "cost",
        "quoted": "cost",
        "euros": "cost",
    }

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        names = [*sorted(set(self.CONCEPTS.values())), "other"]
        rows = np.zeros((len(texts), len(names)), dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            for word in text.lower().replace("?", " ").replace(".", " ").split():
                row[names.index(self.CONCEPTS.get(word, "other"))] += 1.0 if word in self.CONCEPTS else 0.2
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class ConceptModel:
    """A text model made of :class:`ConceptEncoder`: queries and passages embed alike."""

    def __init__(self, encoder=None) -> None:
        self.encoder = encoder or ConceptEncoder()

    def encode_queries(self, texts):
        return self.encoder(texts)

    def encode_passages(self, texts):
        return self.encoder(texts)


# Concept vectors of synonyms are close (cosine about 0.9), of unrelated words far apart.
CONCEPT_CALIBRATION = Calibration(center=0.5, scale=0.05)


def concept_meaning(encoder=None) -> SentenceMeaning:
    return SentenceMeaning(ConceptModel(encoder), CONCEPT_CALIBRATION)


def test_embedding_similarity_finds_a_sentence_that_shares_no_word():
    passages = [
        doc(1, "/notes/garden.txt", "Tomatoes grow best on the balcony. Water them daily.", 0.05),
        doc(2, "/notes/car.txt", "Tomorrow is Monday. The garage quoted 420 euros for the car.", 0.04),
    ]
    assert ask("automobile fix price", Retriever(passages)).found is False  # no word in common
    encoder = ConceptEncoder()
    result = ask("automobile fix price", Retriever(passages), meaning=concept_meaning(encoder))
    assert result.found
    assert result.answer == "The garage quoted 420 euros for the car. [1]"
    assert result.citations[0].path == "/notes/car.txt"
    # The question once as a query, the sentences once as passages.
    assert encoder.calls[0] == ["automobile fix price"] and len(encoder.calls) == 2


def test_embedding_similarity_reorders_keyword_ties():
    passages = [doc(1, "/a.txt", "The car is blue. The car garage quoted 420 euros.", 0.05)]
    plain = ask("car", Retriever(passages), max_sentences=1)
    assert plain.answer == "The car is blue. [1]"
    blended = ask("car price", Retriever(passages), max_sentences=1, meaning=concept_meaning())
    assert blended.answer == "The car garage quoted 420 euros. [1]"


def test_a_missing_text_model_falls_back_to_words():
    def encoder(texts):
        raise ModelUnavailableError("the text model intfloat/multilingual-e5-small is not on this computer")

    passages = [doc(1, "/n.txt", NORMANS, 0.05)]
    result = ask("When were the Normans in Normandy?", Retriever(passages), meaning=concept_meaning(encoder))
    assert "10th and 11th centuries" in result.answer
    assert any("multilingual-e5-small is not on this computer" in w for w in result.warnings)


def test_answer_to_json_is_what_the_cli_prints(library_passages):
    beach = photo(6, "/photos/beach.jpg", 0.02, tags=["beach"], taken="2025-08-12T10:30:00")
    result = ask("Normans in Normandy at the beach", Retriever([*library_passages, beach]))
    data = json.loads(json.dumps(result.to_json()))
    assert set(data) == {"answer", "citations", "photos", "found", "mode", "took_ms", "warnings"}
    assert set(data["citations"][0]) == {"number", "path", "kind", "locator", "snippet", "item_id"}
    assert data["photos"] == [
        {"path": "/photos/beach.jpg", "media_time": "2025-08-12T10:30:00", "tags": ["beach"], "item_id": 6}
    ]
    assert data["took_ms"] >= 0 and data["mode"] == "extractive"


def test_bad_arguments_are_usage_errors(library_passages):
    with pytest.raises(UsageError):
        ask("   ", Retriever(library_passages))
    with pytest.raises(UsageError):
        ask("Normans", Retriever(library_passages), max_sentences=0)


def test_cancelled_before_retrieval_raises_and_retrieves_nothing(library_passages):
    retrieve = Retriever(library_passages)
    with pytest.raises(Cancelled):
        ask("When were the Normans in Normandy?", retrieve, should_cancel=lambda: True)
    assert retrieve.questions == []


# --- sentences and terms ----------------------------------------------------------------------


def test_sentences_split_on_ends_but_not_abbreviations_or_initials():
    text = (
        "Dr. Kim met J. R. R. Tolkien at 3 p.m. on Friday. Prices rose, e.g. bread and milk. "
        "It cost 3.50 euros! Really?\n\nA new paragraph without an end\nstill one sentence"
    )
    assert split_sentences(text) == [
        "Dr. Kim met J. R. R. Tolkien at 3 p.m. on Friday.",
        "Prices rose, e.g. bread and milk.",
        "It cost 3.50 euros!",
        "Really?",
        "A new paragraph without an end still one sentence",
    ]


def test_numbered_abbreviations_end_a_sentence_only_before_a_word():
    assert split_sentences("See No. 5 on p. 12 for more. I said no. Then we left etc. And so on.") == [
        "See No. 5 on p. 12 for more.",
        "I said no.",
        "Then we left etc.",
        "And so on.",
    ]


def test_footnote_marks_in_quoted_text_do_not_look_like_citations():
    passages = [
        doc(1, "/wiki.txt", "The Normans gave their name to Normandy in the 10th century.[3] Other text.", 0.05)
    ]
    result = ask("Normans Normandy", Retriever(passages))
    assert result.answer == "The Normans gave their name to Normandy in the 10th century. [1]"


def test_korean_and_japanese_sentences_split():
    assert split_sentences("서울에 살았다.그리고 부산으로 이사했어요. 정말요? 네!") == [
        "서울에 살았다.",
        "그리고 부산으로 이사했어요.",
        "정말요?",
        "네!",
    ]
    assert split_sentences("東京へ行った。次に大阪。") == ["東京へ行った。", "次に大阪。"]


def test_overlong_sentences_are_cut_at_word_boundaries():
    words = " ".join(f"word{i}" for i in range(200))
    pieces = split_sentences(words)
    assert len(pieces) > 1
    assert all(len(p) <= answer_module.MAX_SENTENCE_CHARS for p in pieces)
    assert " ".join(pieces) == words


def test_question_terms_drop_stop_words_and_korean_particles():
    assert question_terms("When were the Normans in Normandy?")[0] == {"norman", "normandy"}
    terms, _words = question_terms("서울에서 언제 살았어?")
    assert "서울" in terms and "언제" not in terms and "에서" not in terms
    assert "서울" in text_terms("2019년에 서울로 이사했다.")
    assert "집" in question_terms("집에 언제 왔어?")[0] and "집" in text_terms("집에서 쉬었다.")


# --- LLM mode ---------------------------------------------------------------------------------


@pytest.fixture
def chat_server():
    with FakeChatServer() as server:
        yield server


def llm_passages() -> list[Passage]:
    return [
        doc(1, "/docs/history/normans.pdf", NORMANS, 0.05, {"page": 3, "char_start": 1200, "char_end": 1510}),
        doc(
            2,
            "/audio/lecture.m4a",
            "The Normans settled in Normandy after the treaty of 911.",
            0.04,
            {"start": 72.0, "end": 80.5},
            kind="audio",
        ),
        photo(3, "/photos/normandy_coast.jpg", 0.03, tags=["normandy", "coast"], taken="2023-07-01T12:00:00"),
        doc(4, "/docs/recipes.txt", BREAD, 0.02),  # not relevant: never given to the model
    ]


def test_llm_answer_streams_and_its_citations_are_checked(chat_server):
    pieces = [
        "The Normans",
        " lived in Normandy in the 10th",
        " and 11th centuries [",
        "1], after 911 [2]",
        " and liked bread [",
        "7].",
        " The coast is in a photo [3][",
        "1].",
    ]
    chat_server.script = sse_stream(pieces)
    tokens: list[str] = []
    client = LlmClient(chat_server.base_url, "test-model")
    result = ask("When were the Normans in Normandy?", Retriever(llm_passages()), llm=client, on_token=tokens.append)

    assert result.mode == "llm" and result.found
    assert result.answer == (
        "The Normans lived in Normandy in the 10th and 11th centuries [1], after 911 [2]"
        " and liked bread. The coast is in a photo [3][1]."
    )
    assert "".join(tokens) == result.answer
    assert tokens[0] == "The Normans" and len(tokens) >= 5  # streamed piece by piece, not at the end
    assert [w for w in result.warnings if "[7]" in w]
    assert [(c.number, c.path, c.kind, c.locator, c.item_id) for c in result.citations] == [
        (1, "/docs/history/normans.pdf", "document", {"page": 3, "char_start": 1200, "char_end": 1510}, 1),
        (2, "/audio/lecture.m4a", "audio", {"start": 72.0, "end": 80.5}, 2),
        (3, "/photos/normandy_coast.jpg", "image", {}, 3),
    ]
    assert "10th and 11th centuries" in unmarked(result.citations[0].snippet)
    assert [p.item_id for p in result.photos] == [3]

    [(_path, _, body)] = chat_server.requests
    assert body["model"] == "test-model" and body["stream"] is True
    system, user = body["messages"]
    assert system["role"] == "system" and "only" in system["content"] and "[1]" in system["content"]
    prompt = user["content"]
    assert "[1] normans.pdf, page 3: The Normans (Norman: Nourmands;" in prompt
    assert "[2] recording lecture.m4a, 1:12–1:20: The Normans settled" in prompt
    assert "[3] photo normandy_coast.jpg, taken 1 Jul 2023, tags: normandy, coast" in prompt
    assert "[4]" not in prompt and "Bake the bread" not in prompt
    assert prompt.endswith("Question: When were the Normans in Normandy?")


@pytest.mark.parametrize("size", [1, 2, 5])
def test_markers_split_anywhere_in_the_stream_are_checked(chat_server, size):
    text = "  Rollo led them [1]. Nobody knows [12] why [ 2 ,9] and [x] stays [1, 2]. "
    chat_server.script = sse_stream([text[i : i + size] for i in range(0, len(text), size)])
    tokens: list[str] = []
    result = ask(
        "Who led the Normans in Normandy?",
        Retriever(llm_passages()),
        llm=LlmClient(chat_server.base_url, "m"),
        on_token=tokens.append,
    )
    assert result.answer == "Rollo led them [1]. Nobody knows why [2] and [x] stays [1, 2]."
    assert "".join(tokens) == result.answer
    assert [c.number for c in result.citations] == [1, 2]
    assert [w for w in result.warnings if "[12], [9]" in w]


def test_an_answer_without_citations_lists_the_top_sources_and_warns(chat_server):
    chat_server.script = sse_stream(["They were there in the 10th and 11th centuries."])
    result = ask(
        "When were the Normans in Normandy?", Retriever(llm_passages()), llm=LlmClient(chat_server.base_url, "m")
    )
    assert result.answer == "They were there in the 10th and 11th centuries."
    assert [c.number for c in result.citations] == [1, 2, 3]
    assert any("cites none" in w for w in result.warnings)


def test_nothing_relevant_means_the_model_is_not_asked(chat_server):
    result = ask("What is the capital of Peru?", Retriever(llm_passages()), llm=LlmClient(chat_server.base_url, "m"))
    assert result.found is False and result.answer == NOT_FOUND_MESSAGE
    assert chat_server.requests == []


def test_unreachable_llm_falls_back_to_the_extractive_answer():
    url = closed_port_url()
    tokens: list[str] = []
    result = ask(
        "When were the Normans in Normandy?", Retriever(llm_passages()), llm=LlmClient(url, "m"), on_token=tokens.append
    )
    assert result.mode == "extractive" and result.found
    assert "10th and 11th centuries" in result.answer and result.citations[0].path == "/docs/history/normans.pdf"
    [warning] = result.warnings
    assert url in warning and "connection refused" in warning and "SHOEBOX_LLM_URL" in warning
    assert "".join(tokens) == result.answer


def test_a_failing_llm_falls_back_to_the_extractive_answer(chat_server):
    chat_server.status = 500
    chat_server.content_type = "application/json"
    chat_server.script = [b'{"error": {"message": "out of memory"}}']
    result = ask(
        "When were the Normans in Normandy?", Retriever(llm_passages()), llm=LlmClient(chat_server.base_url, "m")
    )
    assert result.mode == "extractive" and "10th and 11th centuries" in result.answer
    assert any("HTTP 500" in w and "out of memory" in w for w in result.warnings)


def test_cancelling_while_the_answer_streams(chat_server):
    gate = chat_server.gate()
    chat_server.script = [*sse_stream(["The Normans"])[:2], gate, *sse_stream([" lived" * 200] * 200)[1:]]
    tokens: list[str] = []
    cancel = threading.Event()

    def on_token(text: str) -> None:
        tokens.append(text)
        cancel.set()  # the person presses Cancel as soon as text appears

    with pytest.raises(Cancelled):
        ask(
            "When were the Normans in Normandy?",
            Retriever(llm_passages()),
            llm=LlmClient(chat_server.base_url, "m"),
            on_token=on_token,
            should_cancel=cancel.is_set,
        )
    assert tokens == ["The Normans"]
    gate.set()
    # The connection was closed when the answer was cancelled, so the server cannot finish writing.
    assert chat_server.finished.wait(10)
    assert chat_server.aborted


def test_build_messages_numbers_sources_from_one():
    messages = build_messages("  Where?  ", llm_passages()[:2])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"].index("[1] normans.pdf") < messages[1]["content"].index("[2] recording lecture.m4a")
    assert messages[1]["content"].endswith("Question: Where?")


# --- measured on real question-answering data -----------------------------------------------


def _qa_cases(name, limit=None):
    data = qa_json(name)["data"]
    articles = [
        [
            (p["context"], [(q["question"], [a["text"] for a in q["answers"]]) for q in p["qas"]])
            for p in article["paragraphs"]
        ]
        for article in data
    ]
    cases: list[tuple[int, int, str, list[str]]] = []
    for a, paragraphs in enumerate(articles):
        for p, (_, questions) in enumerate(paragraphs):
            cases.extend((a, p, q, answers) for q, answers in questions if answers)
    random.Random(0).shuffle(cases)
    return articles, cases[:limit]


_PARAGRAPH_TERMS: dict[str, set[str]] = {}


def _retrieved(paragraphs, question, gold=None, k=5):
    """Five paragraphs by shared terms, the gold one among them: a stand-in for search."""
    terms = question_terms(question)[0]

    def shared(i: int) -> int:
        text = paragraphs[i][0]
        if text not in _PARAGRAPH_TERMS:
            _PARAGRAPH_TERMS[text] = text_terms(text)
        return len(terms & _PARAGRAPH_TERMS[text])

    order = sorted(range(len(paragraphs)), key=lambda i: -shared(i))[:k]
    if gold is not None and gold not in order:
        order[-1] = gold
    return [doc(i, f"/p{i}.txt", paragraphs[i][0], 1.0 / (60 + r)) for r, i in enumerate(order)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "limit", "min_found", "min_first", "max_found_elsewhere"),
    [
        ("squad_v2_dev_subset_small.json", None, 0.85, 0.55, 0.10),
        ("KorQuAD_v1.0_dev.json", 300, 0.93, 0.75, 0.05),
    ],
)
def test_answers_on_squad_and_korquad(name, limit, min_found, min_first, max_found_elsewhere):
    articles, cases = _qa_cases(name, limit)
    found = first = elsewhere = 0
    for a, p, question, answers in cases:
        result = ask(question, functools.partial(_retrieved, articles[a], gold=p))
        found += result.found
        first += result.found and any(t in result.answer.split(" [")[0] for t in answers)
        other = articles[(a + 1) % len(articles)]  # paragraphs about something else
        elsewhere += ask(question, functools.partial(_retrieved, other)).found
    n = len(cases)
    assert found / n >= min_found
    assert first / n >= min_first  # the first quoted sentence holds the gold answer
    assert elsewhere / n <= max_found_elsewhere
