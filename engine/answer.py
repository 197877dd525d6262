"""Answering a question from the person's own files, with citations.

:func:`ask` receives the retrieved passages (document chunks, transcript
segments, photos) from the caller's ``retrieve`` function and answers in one of
two ways:

* **extractive** (the default, no extra model): the passages are split into
  sentences, each sentence is scored for the question, and the best few are the
  answer, each followed by the number of the passage it came from, ``[n]``;
* **llm**, when an :class:`~engine.llm.LlmClient` is given: the relevant passages
  become numbered sources in a prompt, the local model's reply streams through
  ``on_token``, and its ``[n]`` markers are checked against the sources it was
  given.  If the server cannot be reached or fails, the extractive answer is
  returned with a warning that says why.

Sentence score (extractive)::

    coverage + RANK_WEIGHT / (1 + passage rank) + EMBED_WEIGHT * meaning

``coverage`` is the IDF-weighted share of the question's terms found in the
sentence, the IDF counted over all retrieved sentences.  Terms are lower-cased
English words without stop-words (a plural "s" removed), and for Korean (and
Chinese / Japanese) character bigrams, because Korean words carry particles:
"서울에서" in a question must match "서울로" in a sentence.  ``meaning`` is the
calibrated relevance (0-1) of the sentence to the question by the text model
(:class:`SentenceMeaning`: the question embedded as a query, the sentence as a
passage); it is used only when the library has a text model.

Relevance (what counts as "found") is decided by the module constants below:
a sentence is relevant when its coverage reaches :data:`MIN_KEYWORD_COVERAGE`, or
its own meaning reaches :data:`MIN_SENTENCE_RELEVANCE`, or its passage's
(from search) :data:`MIN_PASSAGE_RELEVANCE`; a photo is relevant when its
calibrated relevance reaches :data:`MIN_PASSAGE_RELEVANCE` (its CLIP similarity
:data:`MIN_IMAGE_SIMILARITY`, when it has no calibrated relevance) or the
question's terms match its tags or file name.
When nothing is relevant the answer says so (``found=False``) instead of guessing,
and no model is asked.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import Cancelled, LlmError, ModelUnavailableError, UsageError
from .extractors.documents import page_unit
from .search import SNIPPET_CHARS, mark_terms
from .text import STOP_WORDS, strip_particle

if TYPE_CHECKING:
    from .llm import LlmClient

NOT_FOUND_MESSAGE = "I couldn't find anything about that in your library."

# --- Relevance thresholds ---------------------------------------------------------------------
# A sentence is relevant when at least this share of the question's IDF weight is found in it.
# One rare content word out of four or five in the question passes; a question whose only overlap
# with the library is one common word (present in most retrieved sentences) does not.  Measured with
# five retrieved paragraphs per question (shared/data/corpora/qa): SQuAD questions with their paragraph
# among them are found 92% of the time and questions on another article 5% (0.15: 97% / 16%;
# 0.25: 81% / 4%); KorQuAD 98% / 1%.
MIN_KEYWORD_COVERAGE = 0.2
# Calibrated relevance (engine.calibration) at which a sentence, or a passage found by search,
# answers the question by meaning even when no word is shared.
MIN_SENTENCE_RELEVANCE = 0.9
MIN_PASSAGE_RELEVANCE = 0.9
# CLIP text-to-image cosine similarity, for a photo without a calibrated relevance: a photo that
# matches a description scores about 0.25-0.35, an unrelated one 0.1-0.2.
MIN_IMAGE_SIMILARITY = 0.25

# --- Sentence scoring ---------------------------------------------------------------------------
RANK_WEIGHT = 0.1  # bonus of the best-ranked passage's sentences (the n-th passage gets RANK_WEIGHT / n): a tie-breaker
EMBED_WEIGHT = 1.0  # weight of a sentence's calibrated meaning (0-1), as much as its words (coverage, 0-1)
MAX_EMBEDDED_SENTENCES = 256  # sentences embedded per question (best-ranked passages first)
SECONDARY_MIN_RATIO = 0.6  # a second or third sentence must score at least this share of the best one
DUPLICATE_OVERLAP = 0.8  # sentences sharing this share of the shorter one's terms are near duplicates
MAX_SENTENCE_CHARS = 400  # longer "sentences" (lists, unpunctuated transcripts) are cut at word boundaries

# --- LLM mode ----------------------------------------------------------------------------------
LLM_MAX_SOURCES = 8  # relevant passages given to the model, best first
LLM_SOURCE_CHARS = 1500  # characters of each source's text in the prompt
LLM_UNCITED_SOURCES = 3  # sources listed as citations when the model cited none
LLM_TEMPERATURE = 0.2
PHOTOS_IN_ANSWER = 5  # photos named in an extractive photo answer

SYSTEM_PROMPT = (
    "You answer questions about the user's own files using only the numbered sources in the "
    "user's message. The sources are passages from their documents, transcripts of their voice "
    "recordings, and their photos described by file name, date and tags.\n"
    "Rules:\n"
    "- Use only facts stated in the sources. Do not add knowledge from elsewhere.\n"
    "- After every statement taken from a source, cite it with the source's number in square "
    "brackets, like [1], or [1][3] for several.\n"
    "- If the sources do not contain the answer, say that the files do not say, and do not guess.\n"
    "- Answer briefly, in the language of the question."
)

# Question-side Korean bigrams that are question words, verb endings or particles, not content.
_KOREAN_QUESTION_STOP = frozenset(
    """언제 어디 무엇 무슨 누가 누구 어떻 떻게 얼마 어느 몇몇 왜요 뭐야 뭐지 뭐였 인가 인지 는지 은지 나요 까요
    었어 았어 였어 했어 어요 아요 에요 예요 세요 해요 니다 습니 었다 았다 였다 했다 한다 된다 있다 없다 있어 없어
    었나 았나 였나 했나 었습 았습 였습 했습 하였 되었 었던 았던 였던 했던 하는 하고 있는 없는 에서 에게 으로 부터
    까지 이랑 처럼 보다 이다 이야 이었 였는 었는 았는 했는 하나 하니 할까 인데 는데 던가 한가 알려 려줘 말해 해줘""".split()
)
# One-syllable Korean question words and particles that are not content on the question side.
_KOREAN_SINGLE_STOP = frozenset(
    "왜 뭐 뭘 몇 어 나 내 제 저 그 이 가 은 는 을 를 의 에 도 와 과 로 만 랑 좀 더 다 요 죠 까 니".split()
)
# Particles stripped from the end of a Korean word on the question side (longest first).
# Words in photo file names and tags that say nothing about the photo's content.
_PHOTO_NAME_STOP = frozenset(
    "photo photos picture pictures pic pics image images img dsc dscn dcim jpg jpeg png heic".split()
)
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt vs etc fig figs vol vols no nos p pp ch sec approx appt dept est govt inc ltd co corp
    jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e a.m p.m u.s u.k cf al ca""".split()
)
_TITLES = frozenset("mr mrs ms dr prof sr jr st mt".split())
_NUMBERED = frozenset("no nos p pp fig figs vol vols ch sec".split())
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()

_WORD_RE = re.compile(r"\w+(?:['’]\w+)*")
_MARKER_RE = re.compile(r"\[\s*(\d{1,3}(?:\s*,\s*\d{1,3})*)\s*\]")
_MARKER_PREFIX_RE = re.compile(r"\[\s*(?:\d{1,3}\s*(?:,\s*(?:\d{1,3}\s*)?)*)?")
_SENTENCE_END_RE = re.compile(
    r"([.!?…。！？]+)[\"'’”»)\]」』）]*(?:\[\d{1,3}\])*"
)  # footnote marks stay with their sentence


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class Passage:
    """One retrieved item, built by the caller from a search result and the item's full text.

    ``kind`` is "document", "audio" or "image"; ``locator`` is the item's
    ``{"page", "char_start", "char_end"}``, ``{"start", "end"}`` (seconds) or ``{}``;
    ``text`` is None for photos; ``score`` is the fused rank score (higher is
    better); ``similarity`` is the cosine similarity of the question to the item
    and ``relevance`` its calibrated relevance (None when no model judged it).
    """

    item_id: int
    path: str
    kind: str
    locator: dict
    text: str | None
    media_time: str | None
    tags: list[str]
    score: float
    similarity: float | None
    keyword_rank: int | None = None
    relevance: float | None = None


class SentenceMeaning:
    """The text model and its calibration: how close in meaning sentences are to a question.

    ``model`` has ``encode_queries`` and ``encode_passages`` (unit rows);
    ``calibration`` an :class:`engine.calibration.Calibration` (None: raw
    similarities are used as they are, clipped to 0-1).
    """

    def __init__(self, model: Any, calibration: Any = None):
        self.model = model
        self.calibration = calibration

    def relevance(self, question: str, sentences: list[str]) -> np.ndarray:
        """Calibrated relevance (0-1) of each sentence to the question."""
        q = np.asarray(self.model.encode_queries([question]), np.float32)
        s = np.asarray(self.model.encode_passages(sentences), np.float32)
        if q.ndim != 2 or s.ndim != 2 or s.shape[0] != len(sentences):
            raise ValueError(f"the text model returned shapes {q.shape} and {s.shape} for {len(sentences)} sentences")
        sims = s @ q[0]
        if self.calibration is None:
            return np.clip(sims, 0.0, 1.0)
        return np.asarray(self.calibration.relevance(sims), np.float64)


@dataclass
class Citation:
    """A source used by the answer: ``number`` is the ``[n]`` in the answer text."""

    number: int
    path: str
    kind: str
    locator: dict
    snippet: str
    item_id: int

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "path": self.path,
            "kind": self.kind,
            "locator": dict(self.locator),
            "snippet": self.snippet,
            "item_id": self.item_id,
        }


@dataclass
class Answer:
    """What :func:`ask` returns.  ``mode`` says who wrote ``answer``: "extractive" or "llm"."""

    answer: str
    citations: list[Citation]
    photos: list[Passage]
    found: bool
    mode: str
    took_ms: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [c.to_json() for c in self.citations],
            "photos": [
                {"path": p.path, "media_time": p.media_time, "tags": list(p.tags or []), "item_id": p.item_id}
                for p in self.photos
            ],
            "found": self.found,
            "mode": self.mode,
            "took_ms": self.took_ms,
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------
# Terms


def _script(ch: str) -> str:
    o = ord(ch)
    if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if 0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF:
        return "cjk"
    return "other"


def _runs(word: str) -> Iterable[tuple[str, str]]:
    """(run, script) for the runs of one script in a word: "iphone으로" → ("iphone", other), ("으로", hangul)."""
    start = 0
    for i in range(1, len(word) + 1):
        if i == len(word) or _script(word[i]) != _script(word[start]):
            yield word[start:i], _script(word[start])
            start = i


def _stem(word: str) -> str:
    """A light English stem: plural and possessive endings only ("centuries" → "century")."""
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)] if len(run) > 1 else [run]


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def text_terms(text: str) -> set[str]:
    """The terms of a sentence: stemmed English words (stop-words left out) and CJK character bigrams."""
    out: set[str] = set()
    for word in _WORD_RE.findall(_normalise(text)):
        for run, script in _runs(word):
            if script == "other":
                run = run.strip("_'’")
                if not run or run in STOP_WORDS or (len(run) < 2 and not run.isdigit()):
                    continue
                out.add(_stem(run))
            else:
                out.update(_bigrams(run))
                if script == "hangul":
                    stem = strip_particle(run)
                    if len(stem) == 1 and stem != run:  # "집에" also gives "집"
                        out.add(stem)
    return out


def question_terms(question: str) -> tuple[set[str], list[str]]:
    """The question's content terms (as :func:`text_terms` makes them), and its content words as typed.

    Korean words lose their particle before bigrams are taken ("서울에서" → "서울"), and
    question words and verb endings ("언제", "었어") are left out like English stop-words.
    The typed words are for marking matches in snippets.
    """
    terms: set[str] = set()
    words: list[str] = []
    for word in _WORD_RE.findall(_normalise(question)):
        for run, script in _runs(word):
            if script == "other":
                run = run.strip("_'’")
                if not run or run in STOP_WORDS or (len(run) < 2 and not run.isdigit()):
                    continue
                terms.add(_stem(run))
                words.append(run)
            elif script == "hangul":
                stem = strip_particle(run)
                if len(stem) == 1:
                    if stem not in _KOREAN_SINGLE_STOP:
                        terms.add(stem)
                        words.append(stem)
                    continue
                grams = [g for g in _bigrams(stem) if g not in _KOREAN_QUESTION_STOP]
                terms.update(grams)
                if grams:
                    words.append(stem)
            else:
                terms.update(_bigrams(run))
                words.append(run)
    return terms, list(dict.fromkeys(w for w in words if len(w) >= 2 or _script(w[0]) != "other"))


# ---------------------------------------------------------------------------------------------
# Sentences


def _is_abbreviation(block: str, dot: int) -> bool:
    """Whether the "." at ``dot`` ends an abbreviation or an initial rather than a sentence."""
    start = dot
    while start > 0 and (block[start - 1].isalnum() or block[start - 1] == "."):
        start -= 1
    token = block[start:dot].lower()
    if not token:
        return False
    after = block[dot + 1 :].lstrip()
    if token in _TITLES:
        return True
    if len(token) == 1 and token.isalpha() and token.isascii():
        return True  # an initial: "J. R. R. Tolkien"
    if token in _NUMBERED:  # "No. 5", "pp. 12-14"; but "I said no. Then …" ends a sentence
        return after[:1].isdigit()
    if token in _ABBREVIATIONS or "." in token:  # "etc.", "e.g.", "U.S.": a capital after it starts a sentence
        return not after[:1].isupper()
    return False


def split_sentences(text: str) -> list[str]:
    """Sentences of a passage, in order.

    A paragraph break always ends a sentence.  Otherwise a sentence ends at
    ". ! ? …" (with closing quotes or brackets) before a space, at "。！？"
    anywhere, and at "." between Korean syllables ("했다.그리고"); not after an
    abbreviation, a title or an initial ("Dr. Kim", "e.g. this", "J. Smith").
    Pieces longer than :data:`MAX_SENTENCE_CHARS` are cut at a ";" or at word boundaries.
    """
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n", text or ""):
        block = " ".join(block.split())
        start = 0
        for m in _SENTENCE_END_RE.finditer(block):
            end = m.end()
            following = block[end : end + 1]
            punct = m.group(0)
            last = block[m.start() - 1] if m.start() > 0 else ""
            if any(c in "。！？" for c in punct) or following == "":
                pass
            elif following.isspace():
                if m.group(1) == "." and _is_abbreviation(block, m.start()):
                    continue
            elif _script(last) == "hangul" and _script(following) == "hangul" and punct[0] in ".!?":
                pass
            else:
                continue
            sentences.extend(_cut_long(block[start:end].strip()))
            start = end
        sentences.extend(_cut_long(block[start:].strip()))
    return [s for s in sentences if any(ch.isalnum() for ch in s)]


def _cut_long(sentence: str) -> list[str]:
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [sentence] if sentence else []
    pieces: list[str] = []
    for part in re.split(r"(?<=;)\s+", sentence):
        while len(part) > MAX_SENTENCE_CHARS:
            cut = part.rfind(" ", MAX_SENTENCE_CHARS // 2, MAX_SENTENCE_CHARS)
            cut = cut if cut > 0 else MAX_SENTENCE_CHARS
            pieces.append(part[:cut].strip())
            part = part[cut:].strip()
        if part:
            pieces.append(part)
    return pieces


# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass
class _Sentence:
    passage: Passage
    rank: int  # the passage's rank among the retrieved passages, 0 = best
    index: int  # position in the passage
    text: str
    terms: set[str]
    coverage: float = 0.0
    meaning: float | None = None  # calibrated relevance by the text model
    score: float = 0.0

    def relevant(self) -> bool:
        return (
            self.coverage >= MIN_KEYWORD_COVERAGE
            or (self.meaning is not None and self.meaning >= MIN_SENTENCE_RELEVANCE)
            or (self.passage.relevance is not None and self.passage.relevance >= MIN_PASSAGE_RELEVANCE)
        )


def _photo_terms(passage: Passage) -> set[str]:
    words = [Path(passage.path).stem.replace("_", " ").replace("-", " "), *(passage.tags or ())]
    return {t for t in text_terms(" ".join(words)) if t not in _PHOTO_NAME_STOP}


def _photo_relevant(passage: Passage, coverage: float) -> bool:
    if coverage >= MIN_KEYWORD_COVERAGE:
        return True
    if passage.relevance is not None:
        return passage.relevance >= MIN_PASSAGE_RELEVANCE
    return passage.similarity is not None and passage.similarity >= MIN_IMAGE_SIMILARITY


class _Scorer:
    """IDF-weighted coverage of the question's terms, over all retrieved sentences and photos."""

    def __init__(self, q_terms: set[str], documents: list[set[str]]):
        n = max(1, len(documents))
        df: dict[str, int] = dict.fromkeys(q_terms, 0)
        for terms in documents:
            for t in q_terms & terms:
                df[t] += 1
        self.weights = {t: math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in q_terms}
        self.total = sum(self.weights.values())

    def coverage(self, terms: set[str]) -> float:
        if not self.total:
            return 0.0
        return sum(w for t, w in self.weights.items() if t in terms) / self.total


def _is_duplicate(terms: set[str], text: str, chosen: list[_Sentence]) -> bool:
    for other in chosen:
        if text == other.text or text in other.text or other.text in text:
            return True
        smaller = min(len(terms), len(other.terms))
        if smaller and len(terms & other.terms) / smaller >= DUPLICATE_OVERLAP:
            return True
    return False


def _embed_scores(question: str, sentences: list[_Sentence], meaning: SentenceMeaning, warnings: list[str]) -> None:
    """Set ``meaning`` of the best-ranked sentences from the text model."""
    chosen = sentences[:MAX_EMBEDDED_SENTENCES]
    try:
        relevance = meaning.relevance(question, [s.text for s in chosen])
    except ModelUnavailableError as exc:
        warnings.append(f"sentences scored by their words only: {exc}")
        return
    for s, value in zip(chosen, relevance, strict=True):
        s.meaning = float(value)


def _rank_passages(passages: list[Passage]) -> list[Passage]:
    return sorted(passages, key=lambda p: -p.score)  # stable: the caller's order breaks ties


def _scored_sentences(
    question: str, q_terms: set[str], passages: list[Passage], meaning: SentenceMeaning | None, warnings: list[str]
) -> tuple[list[_Sentence], list[tuple[Passage, float]]]:
    """Every sentence of the text passages, scored; and each photo with its tag / name coverage."""
    sentences: list[_Sentence] = []
    photos: list[tuple[Passage, set[str]]] = []
    for rank, passage in enumerate(passages):
        if passage.kind == "image" or passage.text is None:
            if passage.kind == "image":
                photos.append((passage, _photo_terms(passage)))
            continue
        for index, text in enumerate(split_sentences(passage.text)):
            sentences.append(_Sentence(passage, rank, index, text, text_terms(text)))
    # Term weights come from the text only: a photo named after a question word must not make
    # that word look common, which would hide the very photo that matches it.
    scorer = _Scorer(q_terms, [s.terms for s in sentences] or [terms for _, terms in photos])
    if meaning is not None and sentences:
        _embed_scores(question, sentences, meaning, warnings)
    for s in sentences:
        s.coverage = scorer.coverage(s.terms)
        s.score = s.coverage + RANK_WEIGHT / (1 + s.rank)
        if s.meaning is not None:
            s.score += EMBED_WEIGHT * s.meaning
    sentences.sort(key=lambda s: (-s.score, s.rank, s.index))
    return sentences, [(p, scorer.coverage(terms)) for p, terms in photos]


def _pick(sentences: list[_Sentence], limit: int) -> list[_Sentence]:
    chosen: list[_Sentence] = []
    for s in sentences:
        if len(chosen) >= limit:
            break
        if not s.relevant():
            continue
        if chosen and s.score < SECONDARY_MIN_RATIO * chosen[0].score:
            break
        if _is_duplicate(s.terms, s.text, chosen):
            continue
        chosen.append(s)
    return chosen


# ---------------------------------------------------------------------------------------------
# Formatting


def format_date(iso: str | None) -> str | None:
    """ "2025-08-12T10:00:00" → "12 Aug 2025"; None stays None; anything unparsable is returned as given."""
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"  # not strftime: no locale


def _clock(seconds: Any) -> str:
    total = int(float(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def describe_location(passage: Passage) -> str:
    """Where in its file a passage is, for a person: "page 3", "0:12–0:17", or ""."""
    loc = passage.locator or {}
    if loc.get("page") is not None:
        return f"{page_unit(passage.path)} {loc['page']}"
    if loc.get("start") is not None:
        end = f"–{_clock(loc['end'])}" if loc.get("end") is not None else ""
        return f"{_clock(loc['start'])}{end}"
    return ""


def _photo_description(passage: Passage) -> str:
    parts = [Path(passage.path).name]
    when = format_date(passage.media_time)
    if when:
        parts.append(when)
    if passage.tags:
        parts.append("tags: " + ", ".join(passage.tags))
    return ", ".join(parts)


def _clip_snippet(text: str, words: list[str]) -> str:
    text = " ".join(text.split())
    if len(text) > SNIPPET_CHARS:
        cut = text.rfind(" ", SNIPPET_CHARS // 2, SNIPPET_CHARS)
        text = text[: cut if cut > 0 else SNIPPET_CHARS] + "…"
    return mark_terms(text, words)


class _Numbering:
    """Citation numbers for passages, in order of first use."""

    def __init__(self) -> None:
        self.citations: list[Citation] = []
        self._by_item: dict[int, Citation] = {}

    def cite(self, passage: Passage, snippet: str) -> int:
        existing = self._by_item.get(passage.item_id)
        if existing is not None:
            if snippet and snippet not in existing.snippet:
                existing.snippet = f"{existing.snippet} … {snippet}"
            return existing.number
        citation = Citation(
            len(self.citations) + 1, passage.path, passage.kind, dict(passage.locator or {}), snippet, passage.item_id
        )
        self.citations.append(citation)
        self._by_item[passage.item_id] = citation
        return citation.number


# ---------------------------------------------------------------------------------------------
# Answering


def _check_cancel(should_cancel: Callable[[], bool] | None) -> None:
    if should_cancel is not None and should_cancel():
        raise Cancelled("answering was cancelled")


def _extractive(
    chosen: list[_Sentence], photos: list[Passage], words: list[str], on_token: Callable[[str], None] | None
) -> tuple[str, list[Citation]]:
    numbering = _Numbering()
    pieces: list[str] = []
    if chosen:
        for s in chosen:
            number = numbering.cite(s.passage, _clip_snippet(s.text, words))
            # A "[3]" inside the quoted text (a footnote mark) would read as one of our citations.
            quoted = " ".join(_MARKER_RE.sub(" ", s.text).split())
            pieces.append(f"{quoted} [{number}]")
    elif photos:
        named = []
        for p in photos[:PHOTOS_IN_ANSWER]:
            number = numbering.cite(p, mark_terms(_photo_description(p), words))
            when = format_date(p.media_time)
            named.append(f"{Path(p.path).name}{f' ({when})' if when else ''} [{number}]")
        more = len(photos) - PHOTOS_IN_ANSWER
        pieces.append("Photos that match: " + ", ".join(named) + (f" and {more} more." if more > 0 else "."))
    text = ""
    for i, piece in enumerate(pieces):
        delivered = piece if i == 0 else " " + piece
        text += delivered
        if on_token is not None:
            on_token(delivered)
    return text, numbering.citations


class _CitationFilter:
    """Checks ``[n]`` markers while text streams: markers naming no source are dropped (with the
    space before them) before the text is passed on, so what was streamed is the final answer.

    Text that might still become a marker ("[", "[1") and trailing spaces are held back until
    the next piece shows what they are; leading spaces of the answer are dropped.
    """

    def __init__(self, count: int):
        self.count = count
        self.cited: list[int] = []
        self.invalid: list[int] = []
        self._held = ""
        self._started = False

    def _emit(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            self._started = bool(text)
        return text

    def _marker(self, numbers_text: str) -> str | None:
        """The marker to keep for a matched "[n, m]", or None when it names no source."""
        numbers = [int(n) for n in re.findall(r"\d+", numbers_text)]
        valid = [n for n in numbers if 1 <= n <= self.count]
        for n in numbers:
            if n not in valid and n not in self.invalid:
                self.invalid.append(n)
        for n in valid:
            if n not in self.cited:
                self.cited.append(n)
        if not valid:
            return None
        return "".join(f"[{n}]" for n in dict.fromkeys(valid)) if len(valid) != len(numbers) else ""

    def feed(self, piece: str) -> str:
        buf = self._held + piece
        out: list[str] = []
        while True:
            i = buf.find("[")
            if i < 0:
                keep = len(buf.rstrip())
                out.append(buf[:keep])
                buf = buf[keep:]
                break
            m = _MARKER_RE.match(buf, i)
            if m:
                before = buf[:i].rstrip()
                replacement = self._marker(m.group(1))
                if replacement is None:
                    out.append(before)
                elif replacement == "":
                    out.append(buf[: m.end()])
                else:
                    out.append(buf[:i] + replacement)
                buf = buf[m.end() :]
                continue
            prefix = _MARKER_PREFIX_RE.match(buf, i)
            if prefix and prefix.end() == len(buf) and len(buf) - i < 40:
                keep = len(buf[:i].rstrip())
                out.append(buf[:keep])
                buf = buf[keep:]
                break
            out.append(buf[: i + 1])
            buf = buf[i + 1 :]
        self._held = buf
        return self._emit("".join(out))

    def finish(self) -> str:
        rest, self._held = self._held.rstrip(), ""
        return self._emit(rest)


def _source_line(number: int, passage: Passage) -> str:
    name = Path(passage.path).name
    if passage.kind == "image":
        when = format_date(passage.media_time)
        details = [f"photo {name}"]
        if when:
            details.append(f"taken {when}")
        details.append("tags: " + (", ".join(passage.tags) if passage.tags else "none"))
        return f"[{number}] " + ", ".join(details)
    where = describe_location(passage)
    label = f"{name}, {where}" if where else name
    if passage.kind == "audio":
        label = f"recording {label}"
    text = " ".join((passage.text or "").split())
    if len(text) > LLM_SOURCE_CHARS:
        text = text[:LLM_SOURCE_CHARS].rsplit(" ", 1)[0] + " …"
    return f"[{number}] {label}: {text}"


def build_messages(question: str, sources: list[Passage]) -> list[dict[str, str]]:
    """The chat messages for the LLM: the rules, then the numbered sources and the question."""
    lines = "\n\n".join(_source_line(i, p) for i, p in enumerate(sources, start=1))
    user = f"Sources:\n\n{lines}\n\nQuestion: {question.strip()}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _llm_answer(
    question: str,
    sources: list[Passage],
    best_sentence: dict[int, str],
    words: list[str],
    llm: LlmClient,
    on_token: Callable[[str], None] | None,
    should_cancel: Callable[[], bool] | None,
    warnings: list[str],
) -> tuple[str, list[Citation]]:
    """Stream the model's answer; raises LlmError when it fails and Cancelled when asked to stop."""
    checker = _CitationFilter(len(sources))
    parts: list[str] = []

    def deliver(text: str) -> None:
        if text:
            parts.append(text)
            if on_token is not None:
                on_token(text)

    stream = llm.stream_chat(build_messages(question, sources), temperature=LLM_TEMPERATURE)
    try:
        _check_cancel(should_cancel)
        for piece in stream:
            deliver(checker.feed(piece))
            _check_cancel(should_cancel)  # before waiting for the next piece
        deliver(checker.finish())
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    text = "".join(parts)
    if not text.strip():
        raise LlmError(f"the LLM server at {getattr(llm, 'endpoint', '?')} returned an empty answer")
    if checker.invalid:
        listed = ", ".join(f"[{n}]" for n in checker.invalid)
        warnings.append(
            f"the model cited {listed}, which is not one of the {len(sources)} sources it was given; "
            "removed from the answer"
        )

    def citation(number: int) -> Citation:
        p = sources[number - 1]
        snippet = (
            mark_terms(_photo_description(p), words)
            if p.kind == "image"
            else best_sentence.get(p.item_id) or _clip_snippet(p.text or "", words)
        )
        return Citation(number, p.path, p.kind, dict(p.locator or {}), snippet, p.item_id)

    numbers = checker.cited
    if not numbers:
        numbers = list(range(1, min(LLM_UNCITED_SOURCES, len(sources)) + 1))
        warnings.append("the model's answer cites none of your files; check it against the sources listed")
    return text, [citation(n) for n in numbers]


def ask(
    question: str,
    retrieve: Callable[[str], list[Passage]],
    *,
    llm: LlmClient | None = None,
    on_token: Callable[[str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    meaning: SentenceMeaning | None = None,
    max_sentences: int = 3,
) -> Answer:
    """Answer ``question`` from the passages ``retrieve(question)`` returns.

    Without ``llm`` (or when it fails) the answer is extractive: up to
    ``max_sentences`` of the best sentences, each followed by ``[n]``, the number
    of its :class:`Citation` (distinct passages, in order of first use); with no
    relevant text, the matching photos are named instead.  With ``llm`` the
    relevant passages are numbered sources for the model; markers it writes that
    name no source are removed and reported in ``warnings``; ``citations`` are the
    sources it cited (numbered as in the prompt), or when it cited none, the top
    :data:`LLM_UNCITED_SOURCES` sources with a warning.  If the model fails, the
    extractive answer is returned with a warning naming the server.

    ``on_token`` receives the answer text in pieces (per sentence when extractive,
    per streamed chunk from the model); the pieces join to ``Answer.answer``, except
    when the model fails part-way, in which case the fallback answer follows what
    had streamed, and the returned ``answer`` is what to show.  ``meaning``
    (the text model and its calibration) adds each sentence's relevance by
    meaning to its score.  ``should_cancel`` is checked after retrieval and between streamed
    chunks; when it returns True, :class:`Cancelled` is raised.

    When nothing passes the relevance thresholds, ``found`` is False and the answer
    is :data:`NOT_FOUND_MESSAGE`, with no citations.  Raises :class:`UsageError` for
    an empty question or ``max_sentences`` < 1, and whatever ``retrieve`` raises.
    """
    started = time.perf_counter()
    if not question or not question.strip():
        raise UsageError("type a question to ask")
    if max_sentences < 1:
        raise UsageError("max_sentences must be at least 1")
    warnings: list[str] = []
    _check_cancel(should_cancel)
    passages = _rank_passages(list(retrieve(question)))
    _check_cancel(should_cancel)

    q_terms, words = question_terms(question)
    sentences, photo_scores = _scored_sentences(question, q_terms, passages, meaning, warnings)
    _check_cancel(should_cancel)
    photos = [p for p, coverage in photo_scores if _photo_relevant(p, coverage)]
    chosen = _pick(sentences, max_sentences)

    def finished(text: str, citations: list[Citation], found: bool, mode: str) -> Answer:
        took = round((time.perf_counter() - started) * 1000, 2)
        return Answer(text, citations, photos, found, mode, took, warnings)

    if not chosen and not photos:
        if on_token is not None:
            on_token(NOT_FOUND_MESSAGE)
        return finished(NOT_FOUND_MESSAGE, [], False, "extractive")

    if llm is not None:
        best_sentence: dict[int, str] = {}
        relevant_items: set[int] = {p.item_id for p in photos}
        for s in sentences:  # best first
            if s.relevant():
                relevant_items.add(s.passage.item_id)
                best_sentence.setdefault(s.passage.item_id, _clip_snippet(s.text, words))
        sources = [p for p in passages if p.item_id in relevant_items][:LLM_MAX_SOURCES]
        streamed: list[str] = []

        def relay(piece: str) -> None:
            streamed.append(piece)
            if on_token is not None:
                on_token(piece)

        try:
            text, citations = _llm_answer(question, sources, best_sentence, words, llm, relay, should_cancel, warnings)
            return finished(text, citations, True, "llm")
        except LlmError as exc:
            warnings.append(
                f"the local LLM gave no answer, so this answer is made of sentences from your files: {exc}. "
                f"Check that the server at {getattr(llm, 'url', '') or 'SHOEBOX_LLM_URL'} is running and that "
                "SHOEBOX_LLM_URL and SHOEBOX_LLM_MODEL are right."
            )
            if streamed and on_token is not None:
                on_token("\n\n")  # separates the fallback from what had streamed before the failure
    text, citations = _extractive(chosen, photos, words, on_token)
    return finished(text, citations, True, "extractive")
