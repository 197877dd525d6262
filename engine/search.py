"""Search: a text and/or image query plus filters becomes a ranked list of files.

Evidence from three places is gathered for every candidate item, each a
probability that the item is what was asked for, and combined as independent
evidence (``1 - (1 - meaning)(1 - words)(1 - name)``: any one of them can
carry a result, together they rank it higher):

* **meaning** — the query embedded by CLIP (reaching photos in the ``clip``
  space) and by the text model (reaching passages in the ``text`` space),
  searched in each space's HNSW graph or exactly; each cosine similarity is
  turned into a calibrated relevance (:mod:`engine.calibration`);
* **words** — the typed words found in the item's text or in its file's name
  and folders, whole words and stems (or substrings in CJK), each weighted by
  how rare it is (:mod:`engine.text`);
* **names** — a query that spells a file's name (or one of its folders') puts
  that file first.

Results pass when their meaning is relevant enough (``min_relevance``, the
calibrated default 0.25) or a typed word or the name supports them: a query
that nothing supports finds nothing.  Documents and recordings come back once
per file, with their best passage first and the others in ``more``.

Keyword search works before any model is present: a text query without models
falls back to words alone and says so in ``warnings``.  Loading a model's weights
is never search time: a search that loads one reports it apart (``load_ms``), and
one that may not wait for it (``Query.wait_for_models`` False, the app while its
models load) answers from words and names at once (``meaning_pending``).
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np

from .calibration import DEFAULT_MIN_RELEVANCE, Calibration
from .errors import ModelUnavailableError, UsageError
from .query import Filters, Query
from .store import KINDS, SPACES, BrowseKey, root_containing, space_of
from .stores import Store
from .text import (
    Term,
    content_terms,
    find_terms,
    has_words,
    merge_spans,
    name_index,
    name_matches,
    parse_query,
    typed_words,
)

MARK_OPEN, MARK_CLOSE = "«", "»"  # how matched words are marked in snippets
SNIPPET_CHARS = 180

# How sure a result is when every typed word is found in it (rare words weigh more than common
# ones, so finding part of them counts in proportion): above a vague neighbour in meaning.
WORDS_CERTAINTY = 0.95
# How sure a result is when the query spells its file's name, or one of its folders' names.
NAME_FILE_CERTAINTY = 0.99
NAME_FOLDER_CERTAINTY = 0.97
# Meaning alone never ranks above this certainty: a calibration is steep where the classes it
# was fitted on separate well, so that among items all close in meaning (a whole article on the
# topic asked about) the typed words, not tiny differences in similarity, decide the order.
MEANING_RANK_CAP = 0.95
# When not one typed word occurs anywhere in the library, it is less likely to hold what is
# asked for ("xylophonequartzplinth", topics it has nothing on): the log-odds of meaning are
# lowered by this much, so meaning must be surer to carry a result alone.
UNKNOWN_WORDS_PRIOR = -2.0
# Said when a search answers from words and names while the models it needs are still loading.
MEANING_PENDING = "searching by meaning as soon as the models are loaded"
# How the warnings of a search that a missing model reduced to words begin.
MODELS_MISSING_WARNINGS = ("searching by keywords only", "some results are found by words only")
# Kinds of files with items in each vector space (photos' recognised text and
# videos' sound tracks are passages too).
_SPACE_KINDS = {"clip": ("image", "video"), "text": ("document", "audio", "image", "video")}


@dataclass
class SearchResult:
    """One found file (its best item).  ``locator`` holds page / char_start+char_end / start+end seconds.

    ``score`` orders the results (0-1: meaning, words and name together);
    ``relevance`` is the calibrated relevance of its meaning alone (None when
    no model judged it); ``similarity`` the raw cosine similarity;
    ``matched`` the typed words found in its text or name; ``name_match``
    ``"file"`` or ``"folder"`` when the query spells its name; ``more`` the
    file's other matching passages (each holding a typed word or close in
    meaning), best first.
    """

    path: str
    kind: str
    score: float
    locator: dict[str, Any]
    snippet: str | None
    media_time: str | None
    tags: list[str]
    item_id: int
    file_id: int
    similarity: float | None = None
    auto_tags: list[str] = field(default_factory=list)  # the part of ``tags`` CLIP gave
    relevance: float | None = None
    matched: list[str] = field(default_factory=list)
    name_match: str | None = None
    more: list[dict[str, Any]] = field(default_factory=list)
    # What the best item is: "image" (a photo, or a video's frame), "text", "speech" (a
    # recording's or video's words) or "ocr" (text recognised in a picture or a scanned page).
    modality: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def supported_by_words(self) -> bool:
        """Whether a typed word or the file's name supports this result (it passes any relevance threshold)."""
        return bool(self.matched or self.name_match)


@dataclass
class SearchResponse:
    """What a search found, and how.

    ``query`` is the text that was searched for meaning (dates taken out);
    ``dates`` the date phrases understood (``engine.dates.DatePhrase.to_json``),
    which the app shows as removable chips; ``plan`` how the vectors were
    searched (``hnsw-graph``, ``hnsw-scan``, ``hnsw-exact``, ``sqlite-vec``,
    ``exact``, ``keywords`` or ``browse``); ``matched`` how many items passed
    the filters (None when unfiltered); ``encode_ms`` the part of ``took_ms``
    spent embedding the query; ``hidden`` how many candidates were left out
    because neither their meaning nor a word supported them; ``keywords_only``
    whether the words were matched without any model (none is set up or
    loadable: ``warnings`` says why); ``load_ms`` the time spent loading model
    weights for this search, which ``took_ms`` and ``encode_ms`` leave out;
    ``meaning_pending`` whether a model the query needs was still loading and
    was not waited for (its space was searched by words and names only, and
    ``warnings`` holds :data:`MEANING_PENDING`): searching again once it has
    loaded adds the results by meaning.
    """

    results: list[SearchResult]
    took_ms: float
    warnings: list[str] = field(default_factory=list)
    query: str = ""
    dates: list[dict[str, Any]] = field(default_factory=list)
    plan: str = ""
    matched: int | None = None
    encode_ms: float = 0.0
    hidden: int = 0
    min_relevance: float | None = None
    keywords_only: bool = False
    load_ms: float = 0.0
    meaning_pending: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "results": [r.to_json() for r in self.results],
            "took_ms": self.took_ms,
            "warnings": self.warnings,
            "query": self.query,
            "dates": self.dates,
            "plan": self.plan,
            "matched": self.matched,
            "encode_ms": self.encode_ms,
            "hidden": self.hidden,
            "min_relevance": self.min_relevance,
            "keywords_only": self.keywords_only,
            "load_ms": self.load_ms,
            "meaning_pending": self.meaning_pending,
        }


# ---------------------------------------------------------------------------- words


def query_terms(text: str) -> list[str]:
    """Words of a typed query, split on spaces, outer punctuation removed (as typed, for display)."""
    return typed_words(text)


def keyword_terms(terms: list[str]) -> list[str]:
    """The typed words worth matching: stop words left out while others remain, Korean particles cut off.

    "When did the Normans reach Italy?" matches on Normans, reach, Italy;
    "임종석이" matches "임종석".
    """
    parsed = content_terms(parse_query(" ".join(terms)))
    out: list[str] = []
    for term in parsed:
        word = term.keys[0] if term.kind == "substring" else term.typed
        if word not in out:
            out.append(word)
    return out


def _as_terms(terms: list[str] | list[Term]) -> list[Term]:
    if terms and isinstance(terms[0], Term):
        return list(terms)
    # Callers pass either terms or words, never a mix: these are words.
    return content_terms(parse_query(" ".join(cast("list[str]", terms))))


def _marked(text: str, spans: list[tuple[int, int]]) -> str:
    out = []
    last = 0
    for start, end in merge_spans(spans):
        out.append(text[last:start])
        out.append(f"{MARK_OPEN}{text[start:end]}{MARK_CLOSE}")
        last = end
    out.append(text[last:])
    return "".join(out)


def mark_terms(text: str, terms: list[str] | list[Term]) -> str:
    """``text`` with every word that matches the terms wrapped in « » (the same rules as keyword search).

    "red" marks "red" and "reds", not "redder" or "Ingredients"; Korean
    "사진" marks it inside "가족사진을".
    """
    parsed = _as_terms(terms)
    if not parsed or not text:
        return text
    spans = [span for found in find_terms(text, parsed).values() for span in found]
    return _marked(text, spans)


def make_snippet(text: str | None, terms: list[str] | list[Term], width: int = SNIPPET_CHARS) -> str | None:
    """A window of ``text`` (whitespace collapsed) around the first matched term, with the matched words marked."""
    if not text:
        return None
    parsed = _as_terms(terms)
    spans = [span for found in find_terms(text, parsed).values() for span in found] if parsed else []
    return _snippet_with_spans(text, spans, width)


# ---------------------------------------------------------------------------- helpers


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None


def _exact_top(query: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int) -> list[tuple[int, float]]:
    sims = vectors @ query
    k = min(k, len(ids))
    if k <= 0:
        return []
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return [(int(ids[i]), float(sims[i])) for i in top]


def embed_image_query(clip: Any, image_path: str | Path) -> np.ndarray:
    """The CLIP embedding of an image file, prepared exactly as indexing prepares photos."""
    from .ingest import read_photo

    path = Path(image_path)
    if not path.exists():
        raise UsageError(f"no such image: {image_path}")
    extracted = read_photo(path)
    return clip.encode_images([extracted.image])[0]


def _timestamp(value: Any) -> float | None:
    return None if value is None else value.timestamp()


def _tighter(filters: Filters, after: float | None, before: float | None) -> Filters:
    """``filters`` with its time range narrowed to [after, before)."""
    if after is None and before is None:
        return filters
    new_after = filters.after if after is None else (after if filters.after is None else max(after, filters.after))
    new_before = (
        filters.before if before is None else (before if filters.before is None else min(before, filters.before))
    )
    return replace(filters, after=new_after, before=new_before)


def _member(sorted_ids: np.ndarray, item_ids: list[int]) -> np.ndarray:
    """Which of ``item_ids`` are in ``sorted_ids`` (sorted int64)."""
    if not item_ids or sorted_ids.size == 0:
        return np.zeros(len(item_ids), bool)
    probe = np.asarray(item_ids, np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, probe), sorted_ids.size - 1)
    return sorted_ids[pos] == probe


def _space_wanted(space: str, filters: Filters) -> bool:
    return not filters.kinds or any(kind in filters.kinds for kind in _SPACE_KINDS[space])


def is_loaded(encoder: Any) -> bool:
    """Whether ``encoder``'s weights are in memory (an object that does not say is taken as ready)."""
    return bool(getattr(encoder, "loaded", True))


_ENCODE_POOL: ThreadPoolExecutor | None = None
_ENCODE_POOL_LOCK = threading.Lock()


def _encode_query(encoders: dict[str, Any], text: str) -> dict[str, np.ndarray | ModelUnavailableError]:
    """Each space's query vector of ``text``; the two encoders run at once.

    The runtimes release the interpreter lock while they compute, and one short
    query keeps neither busy on every core, so CLIP's text tower and the text
    model take about as long together as the slower of them alone.
    """

    def one(space: str) -> np.ndarray | ModelUnavailableError:
        encoder = encoders[space]
        try:
            vector = encoder.encode_texts([text]) if space == "clip" else encoder.encode_queries([text])
        except ModelUnavailableError as exc:
            return exc
        return np.asarray(vector[0], np.float32)

    spaces = list(encoders)
    if len(spaces) < 2:
        return {space: one(space) for space in spaces}
    global _ENCODE_POOL
    with _ENCODE_POOL_LOCK:
        if _ENCODE_POOL is None:
            _ENCODE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoebox-encode")
        pool = _ENCODE_POOL
    later = pool.submit(one, spaces[1])
    out = {spaces[0]: one(spaces[0])}
    out[spaces[1]] = later.result()
    return out


class _Loads:
    """The seconds one search spends loading weights (kept out of its ``took_ms``)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def load(self, encoder: Any) -> None:
        """Load ``encoder`` unless loaded; raises what its ``load`` raises, counting the time either way.

        Its tokenizer is read here too (CLIP's is built on first use, apart from its weights).
        """
        if is_loaded(encoder):
            return
        began = time.perf_counter()
        try:
            encoder.load()
            if hasattr(encoder, "count_tokens"):
                encoder.count_tokens("warm up")
        finally:
            self.seconds += time.perf_counter() - began


# ---------------------------------------------------------------------------- search


def search(
    store: Store,
    query: Query,
    *,
    clip: Any = None,
    text_model: Any = None,
    calibrations: dict[str, Calibration] | None = None,
    live: Any = None,
    now: datetime | None = None,
) -> SearchResponse:
    """Find the ``query.k`` best files (or items) for a text and/or image query within its filters.

    Args:
        query: what is searched for (see :class:`engine.query.Query`); its
            ``min_relevance`` None means :data:`engine.calibration.DEFAULT_MIN_RELEVANCE`.
        clip: a :class:`engine.models.ClipEncoder` (photos), or None.
        text_model: a :class:`engine.models.TextEncoder` (passages), or None.
        calibrations: each space's :class:`~engine.calibration.Calibration`;
            a space without one is ranked by raw similarity and not thresholded.
        live: ``{space: LiveIndex}`` (or one LiveIndex for the clip space) to
            plan over (HNSW with the catalog's filters); without, exact search.

    Dates in the text ("last summer", "작년") become a time filter, reported in
    ``dates``; when nothing falls in them, the words are searched at any time.
    With ``query.per_file`` each file is one result, its other passages in ``more``.
    A search by example whose example is a picture (``query.image``, or ``query.like``
    naming a photo or a video) returns pictures only: photos and video frames, unless
    ``query.filters.kinds`` names the kinds wanted.

    Raises :class:`UsageError` for an empty query or a missing image file, and
    :class:`ModelUnavailableError` for an image query without model weights.
    """
    if query.min_relevance is None:
        query = query.replace(min_relevance=DEFAULT_MIN_RELEVANCE)
    run = partial(
        _search,
        store,
        clip,
        query,
        text_model=text_model,
        calibrations=calibrations or {},
        live=live if isinstance(live, dict) else {"clip": live},
        now=now,
    )
    text = query.text
    if not (query.understand_dates and text and text.strip()):
        return run(understand_dates=False)
    response = run(understand_dates=True)
    if response.results or not response.dates:
        return response
    # Nothing in the understood dates: perhaps the words were not meant as a
    # date ("the car insurance renews in March").  Say so and search them as words.
    labels = ", ".join(d["label"] for d in response.dates)
    fallback = run(understand_dates=False)
    fallback.load_ms = round(fallback.load_ms + response.load_ms, 2)  # the first run may have loaded a model
    if fallback.results:
        fallback.warnings.insert(0, f"nothing from {labels}; showing results from any time")
        return fallback
    return response


@dataclass
class _Candidate:
    item_id: int
    space: str
    similarity: float | None = None
    keyword: bool = False  # found by the keyword index (so a word may match)


class _Query:
    """What one search needs while it runs (to keep :func:`_search` readable)."""

    def __init__(self, store: Store, live: dict[str, Any], filters: Filters):
        self.store = store
        self.live = {s: (index if index is not None and index.usable else None) for s, index in live.items()}
        self.filters = filters
        self.allowed: dict[str, np.ndarray | None] = {}
        # A store that serves vector searches applies the filters in its own statements:
        # the passing items are never listed here.
        self.served = store.serves_vectors
        for space in SPACES:
            index = self.live.get(space)
            if self.served:
                self.allowed[space] = None
            elif index is not None:
                self.allowed[space] = index.allowed(filters)
            elif filters.empty:
                self.allowed[space] = None
            else:
                self.allowed[space] = store.allowed_item_ids(filters, space)

    def filtered(self) -> bool:
        return not self.filters.empty

    def vector_hits(self, space: str, query: np.ndarray, fetch: int) -> tuple[list[tuple[int, float]], str]:
        index = self.live.get(space)
        allowed = self.allowed[space]
        if self.served:
            hits = self.store.vector_knn(query, fetch, space=space, filters=self.filters)
            return [(i, 1.0 - d) for i, d in hits], "server"
        if index is not None:
            hits, how = index.search(query, fetch, allowed)
            return hits, "exact" if how == "matrix" else f"hnsw-{how}"
        if allowed is None:
            return [(i, 1.0 - d) for i, d in self.store.vector_knn(query, fetch, space=space)], "sqlite-vec"
        if not len(allowed):
            return [], "exact"
        present = allowed
        try:
            vectors = self.store.vectors(allowed, space=space)
        except KeyError:  # some passing items wait for their vectors
            with_vectors = self.store.item_catalog(allowed, space=space)[0]
            present = with_vectors
            vectors = self.store.vectors(with_vectors, space=space) if with_vectors.size else np.empty((0, 1))
        return (_exact_top(query, present, vectors, fetch) if len(present) else []), "exact"

    def vectors(self, space: str, item_ids: list[int]) -> dict[int, np.ndarray]:
        """Stored vectors of those items that have one in ``space``."""
        if not item_ids or self.store.space_dim(space) is None:
            return {}
        index = self.live.get(space)
        if index is not None:
            try:
                return dict(zip(item_ids, index.vectors(item_ids), strict=True))
            except KeyError:
                pass  # some have no vector yet: ask the store which do
        present = [int(i) for i in self.store.item_catalog(item_ids, space=space)[0]]
        return dict(zip(present, self.store.vectors(present, space=space), strict=True)) if present else {}

    def passes_many(self, item_ids: list[int]) -> np.ndarray:
        """Which of the items pass the filters (in whichever space each is)."""
        if not self.filtered():
            return np.ones(len(item_ids), bool)
        if self.served:
            return self.store.passing(item_ids, self.filters)
        mask = np.zeros(len(item_ids), bool)
        for allowed in self.allowed.values():
            if allowed is not None:
                mask |= _member(allowed, item_ids)
        return mask


def _search(
    store: Store,
    clip: Any,
    query: Query,
    *,
    text_model: Any,
    calibrations: dict[str, Calibration],
    live: dict[str, Any],
    now: datetime | None,
    understand_dates: bool,
) -> SearchResponse:
    text, image, like, filters, k = query.text, query.image, query.like, query.filters, query.k
    min_score, per_file = query.min_score, query.per_file
    min_relevance = DEFAULT_MIN_RELEVANCE if query.min_relevance is None else query.min_relevance
    started = time.perf_counter()
    filters = filters or Filters()
    raw = (text or "").strip()
    if k <= 0:
        raise UsageError("the number of results (-k) must be at least 1")
    warnings: list[str] = []
    phrases: list[Any] = []
    semantic = raw
    if raw and understand_dates:
        from .dates import combine, extract_dates

        semantic, phrases = extract_dates(raw, now=now)
        after, before = combine(phrases)
        filters = _tighter(filters, _timestamp(after), _timestamp(before))
    if not semantic and image is None and like is None and not phrases and filters.empty:
        raise UsageError("type something to search for, or give an image")
    terms = content_terms(parse_query(semantic))
    pool = max(4 * k, 60)
    q = _Query(store, live, filters)

    # -- the query's vectors, per space
    excluded: set[int] = set()
    by_example = image is not None or like is not None
    queries: dict[str, list[np.ndarray]] = {space: [] for space in SPACES}
    keywords_only = False
    meaning_pending = False
    loads = _Loads()
    if like is not None:
        item_ids = store.item_ids_of(like)
        if not item_ids:
            raise UsageError(f"{like} is not in the library; search with --image to use an outside picture")
        excluded = set(item_ids)
        space, example = _example_vector(store, q, like, item_ids)
        if example is None:
            raise UsageError(f"{like} has no vector yet; index the library again to give it one")
        queries[space].append(example)
    # A picture as the example (a photo, a video's frame, an image file) finds pictures: photos
    # and video frames, never passages, unless the kind filter asks for other kinds.
    pictures_only = (image is not None or bool(queries["clip"])) and not filters.kinds
    if image is not None:
        if clip is None or store.dim is None:
            raise ModelUnavailableError("searching by image needs the CLIP model; run `shoebox models download clip`")
        # A picture has no words to answer with meanwhile: its search waits for CLIP either way.
        loads.load(clip)
        queries["clip"].append(embed_image_query(clip, image))
    if semantic and has_words(semantic):  # "***" or "(((" has no meaning to search for
        encoders = {
            "clip": clip if store.dim is not None else None,
            "text": text_model if store.space_dim("text") is not None else None,
        }
        if by_example:
            encoders["text"] = None  # an example picks its own space; the words then rank within it
        missing: list[str] = []
        wanted: dict[str, Any] = {}
        for space, encoder in encoders.items():
            if encoder is None or not _space_wanted(space, filters):
                continue
            if not query.wait_for_models and not is_loaded(encoder):
                meaning_pending = True  # its words and names answer now; its meaning when it has loaded
                continue
            try:
                loads.load(encoder)
                wanted[space] = encoder
            except ModelUnavailableError as exc:
                missing.append(str(exc))
        for space, vector in _encode_query(wanted, semantic).items():
            if isinstance(vector, ModelUnavailableError):
                missing.append(str(vector))
            else:
                queries[space].append(vector)
        keywords_only = not any(queries.values()) and not by_example and not meaning_pending
        if meaning_pending:
            warnings.append(MEANING_PENDING)
        if missing:
            all_by_words, some_by_words = MODELS_MISSING_WARNINGS
            warnings.append(
                f"{all_by_words}: " + " ".join(missing)
                if not any(queries.values())
                else f"{some_by_words}: " + missing[0]
            )
        elif keywords_only:
            warnings.append(f"{MODELS_MISSING_WARNINGS[0]}: no model is set up for this library yet")
    encoded = time.perf_counter()
    # Loading weights is not search time: the clock starts again as if the search began after it.
    started += loads.seconds
    load_ms = round(loads.seconds * 1000, 2)

    if not semantic and not by_example:
        latest = [_Ranked(item_id, 0.0) for item_id in store.latest_items(filters, k)]
        response = _respond(store, latest, terms, started, warnings, k=k, per_file=False)
        response.plan, response.query = "browse", ""
        response.dates = [p.to_json() for p in phrases]
        response.matched = store.count_passing(filters)
        response.encode_ms = round((encoded - started) * 1000, 2)
        response.load_ms = load_ms
        return response

    # -- candidates: nearest in each space, keyword hits, name hits
    plans: dict[str, str] = {}
    candidates: dict[int, _Candidate] = {}
    fetch = pool + len(excluded)
    for space in SPACES:
        for vector in queries[space]:
            hits, plans[space] = q.vector_hits(space, vector, fetch)
            for item_id, sim in hits[:fetch]:
                if item_id in excluded:
                    continue
                cand = candidates.setdefault(item_id, _Candidate(item_id, space))
                cand.similarity = sim if cand.similarity is None else max(cand.similarity, sim)
    known_words = False  # does any typed word occur anywhere in the library?
    named_files: set[int] = set()
    if terms:
        # The filters go into the word and name lookups, so the best matches are the best of those that pass.
        within = filters if q.filtered() else None
        # Words are held by the text space's items (passages, transcripts, recognised text):
        # when the filter lets none of them through ("photos only" in a library without text
        # in its photos), no word can match, and looking would check every match in vain.
        text_passing = q.allowed.get("text")
        # The catalog holds the items with vectors: ask the store too, for passages still
        # waiting for the text model (found by their words meanwhile).
        if q.served:
            words_possible = not q.filtered() or store.passes_any(filters, "text")
        else:
            words_possible = (
                text_passing is None
                or len(text_passing) > 0
                or (store.count_space_items("text") > store.count_items("text") and store.passes_any(filters, "text"))
            )
        # The filter's passing items are known from the catalogs: a narrow filter is checked against them.
        known = list(q.allowed.values())
        passing_ids = (
            [a for a in known if a is not None] if q.filtered() and all(a is not None for a in known) else None
        )
        keyword_hits = (
            store.keyword_search(terms, limit=pool + len(excluded), filters=within, passing=passing_ids)
            if words_possible
            else []
        )
        passing = q.passes_many([item_id for item_id, _ in keyword_hits])
        kept = 0
        for (item_id, _), ok in zip(keyword_hits, passing, strict=True):
            if kept >= pool:
                break
            if item_id in excluded or not ok:
                continue
            candidates.setdefault(item_id, _Candidate(item_id, "")).keyword = True
            kept += 1
        named = store.name_search(terms, limit=pool, filters=within)
        named_files = {f for f, _ in named}
        known_words = bool(keyword_hits or named)
        if named:
            firsts = store.first_items([f for f, _ in named])
            named_items = [firsts[f] for f, _ in named if f in firsts]
            for item_id, ok in zip(named_items, q.passes_many(named_items), strict=True):
                if item_id in excluded or not ok:
                    continue
                candidates.setdefault(item_id, _Candidate(item_id, ""))
        if by_example:
            # Words narrow an example search; they do not add files of other kinds.
            candidates = {i: c for i, c in candidates.items() if c.similarity is not None}

    details = store.item_details(list(candidates))
    candidates = {i: c for i, c in candidates.items() if i in details}  # deleted meanwhile: gone
    for cand in candidates.values():
        cand.space = space_of(details[cand.item_id]["modality"])
    if pictures_only:
        candidates = {i: c for i, c in candidates.items() if c.space == "clip"}

    # Similarities of candidates found only by words, so every one is judged on meaning too.
    for space in SPACES:
        if not queries[space]:
            continue
        need = [c.item_id for c in candidates.values() if c.space == space and c.similarity is None]
        found = q.vectors(space, need)
        for item_id, vector in found.items():
            candidates[item_id].similarity = float(max(vector @ qv for qv in queries[space]))

    calibrations = {space: c.for_query(semantic) for space, c in calibrations.items()}
    prior = UNKNOWN_WORDS_PRIOR if terms and not known_words else 0.0
    ranked = _rank(store, candidates, details, terms, semantic, queries, calibrations, by_example, prior, named_files)
    response = _respond(
        store,
        ranked,
        terms,
        started,
        warnings,
        k=k,
        per_file=per_file,
        details=details,
        min_score=min_score,
        min_relevance=min_relevance,
    )
    response.plan = plans.get("clip") or plans.get("text") or "keywords"
    response.keywords_only = keywords_only
    response.meaning_pending = meaning_pending
    response.load_ms = load_ms
    response.dates = [p.to_json() for p in phrases]
    response.query = semantic
    allowed_sets = [a for a in q.allowed.values() if a is not None]
    if q.served:
        response.matched = store.count_passing(filters) if q.filtered() else None
    else:
        response.matched = int(sum(a.shape[0] for a in allowed_sets)) if q.filtered() else None
    response.encode_ms = round((encoded - started) * 1000, 2)
    response.min_relevance = min_relevance
    return response


def _example_vector(store: Store, q: _Query, like: Any, item_ids: list[int]) -> tuple[str, np.ndarray | None]:
    """The space and stored vector that stand for the file of ``like`` ("more like this").

    A photo or a video is its picture: the item ``like`` names when it is one of its
    pictures (a video's frame at the moment found), else its first picture with a vector,
    whatever order its items were stored in (a video's transcript may precede its frames
    when CLIP came later).  A document or a recording is its first passage.
    """
    first = store.item_details(item_ids[:1]).get(item_ids[0])
    if first is not None and first["kind"] in _SPACE_KINDS["clip"]:
        modalities = {i: d["modality"] for i, d in store.item_details(item_ids).items()}
        pictures = [i for i in item_ids if modalities.get(i) == "image"]
        if isinstance(like, (int, np.integer)) and int(like) in pictures:
            pictures.remove(int(like))
            pictures.insert(0, int(like))
        found = q.vectors("clip", pictures)
        chosen = next((i for i in pictures if i in found), None)
        return "clip", (found[chosen] if chosen is not None else None)
    space = space_of(first["modality"]) if first is not None else "clip"
    return space, q.vectors(space, item_ids[:1]).get(item_ids[0])


@dataclass
class _Ranked:
    item_id: int
    score: float  # 0..1
    relevance: float | None = None
    similarity: float | None = None
    matched: list[str] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    name_match: str | None = None


def _term_weights(store: Store, terms: list[Term]) -> list[float]:
    """Inverse document frequency of each term: rare words weigh more than common ones."""
    total = max(1, store.count_items())
    counts = store.term_counts(terms)
    return [math.log(1.0 + total / (1.0 + c)) for c in counts]


def _rank(
    store: Store,
    candidates: dict[int, _Candidate],
    details: dict[int, dict],
    terms: list[Term],
    semantic: str,
    queries: dict[str, list[np.ndarray]],
    calibrations: dict[str, Calibration],
    by_example: bool,
    prior: float = 0.0,
    named_files: set[int] | frozenset[int] = frozenset(),
) -> list[_Ranked]:
    """Score every candidate from its meaning, its words and its name; best first.

    ``prior`` is added to the log-odds of meaning (see :data:`UNKNOWN_WORDS_PRIOR`).
    ``named_files`` are the files whose names the name index found for the terms: only their
    names are read word by word (a name the index did not find holds none of the terms).
    An image query ("more like this", a dropped picture) ranks by similarity alone:
    no calibration says how alike two photos must be, so it is not thresholded.
    """
    weights = _term_weights(store, terms) if terms and candidates else []
    total_weight = sum(weights) or 1.0
    roots = store.roots() if named_files else []
    names: dict[str, tuple[set[int], str | None]] = {}  # path -> (terms its names hold, name match)
    out: list[_Ranked] = []
    for cand in candidates.values():
        d = details[cand.item_id]
        path = d["path"]
        # -- words: in the text, and in the file's name and folders
        text = d["text"]
        # Only what the word index found holds the words (a vector neighbour that also holds them,
        # beyond the best keyword matches, is marked when shown but does not rank by them).
        found = find_terms(text, terms) if terms and text and cand.keyword else {}
        matched_terms = set(found)
        name = None
        if terms and d["file_id"] in named_files:
            if path not in names:
                root = root_containing(path, roots)
                words, plain = name_index(path, root)
                in_name = set(find_terms(words, terms)) if words else set()
                in_name |= {n for n, t in enumerate(terms) if t.kind == "substring" and t.keys[0] in plain}
                names[path] = (in_name, name_matches(path, root, semantic))
            in_name, name = names[path]
            matched_terms |= in_name
        coverage = sum(weights[n] for n in matched_terms) / total_weight if matched_terms else 0.0
        # -- meaning
        calibration = calibrations.get(cand.space)
        relevance = None
        if by_example:
            score = (cand.similarity if cand.similarity is not None else -1.0) + 0.1 * coverage
        else:
            meaning = 0.0
            if cand.similarity is not None and queries.get(cand.space) and calibration is not None:
                relevance = meaning = calibration.relevance_of(cand.similarity, prior)
            elif cand.similarity is not None and queries.get(cand.space):
                meaning = max(0.0, cand.similarity)  # uncalibrated: ranked by similarity, never thresholded
            named = NAME_FILE_CERTAINTY if name == "file" else NAME_FOLDER_CERTAINTY if name == "folder" else 0.0
            meaning = min(meaning, MEANING_RANK_CAP)
            score = 1.0 - (1.0 - meaning) * (1.0 - WORDS_CERTAINTY * coverage**2) * (1.0 - named)
        spans = [span for n in found for span in found[n]]
        out.append(
            _Ranked(
                cand.item_id,
                score,
                relevance,
                cand.similarity,
                matched=[terms[n].typed for n in sorted(matched_terms)],
                spans=spans,
                name_match=name,
            )
        )
    out.sort(key=lambda r: (-r.score, -(r.similarity if r.similarity is not None else -2.0), r.item_id))
    return out


def result_for_items(store: Store, item_ids: list[int], terms: list[str] | None = None) -> list[SearchResult]:
    """Results for given items (to show a cited passage the way search shows it), in that order."""
    parsed = content_terms(parse_query(" ".join(terms or [])))
    details = store.item_details(item_ids)
    ranked = []
    for item_id in item_ids:
        text = details.get(item_id, {}).get("text")
        found = find_terms(text, parsed) if text and parsed else {}
        ranked.append(_Ranked(item_id, 0.0, spans=[s for spans in found.values() for s in spans]))
    return _respond(store, ranked, parsed, time.perf_counter(), [], k=None, per_file=False, details=details).results


@dataclass
class BrowsePage:
    """One page of the library in time order (see :func:`browse`).

    ``results`` are one per file, newest first, each with the file's first
    item; ``next`` is what to pass as ``after`` for the page that follows, or
    None when this page was the last.
    """

    results: list[SearchResult]
    next: BrowseKey | None
    took_ms: float = 0.0


def browse(store: Store, filters: Filters, after: BrowseKey | None = None, limit: int = 200) -> BrowsePage:
    """A page of the files passing ``filters``, newest media time first (files without a time last).

    ``after`` is the ``next`` of the previous page (None for the first);
    pages never overlap and, read in turn, hold every passing file once.
    A file with no item (nothing could be shown for it) is skipped.  Raises
    :class:`UsageError` for a ``limit`` below 1.
    """
    if limit < 1:
        raise UsageError("a page must hold at least one file")
    started = time.perf_counter()
    rows = store.browse_files(filters, after, limit)
    first = store.first_items([file_id for file_id, _ in rows])
    ranked = [_Ranked(first[file_id], 0.0) for file_id, _ in rows if file_id in first]
    results = _respond(store, ranked, [], started, [], k=None, per_file=False).results
    following = (rows[-1][1], rows[-1][0]) if len(rows) == limit else None
    return BrowsePage(results, following, round((time.perf_counter() - started) * 1000, 2))


def _passes(r: _Ranked, min_score: float | None, min_relevance: float) -> bool:
    supported = bool(r.matched or r.name_match)
    if min_score is not None and not supported and (r.similarity is None or r.similarity < min_score):
        return False
    if min_relevance > 0 and not supported and r.relevance is not None and r.relevance < min_relevance:
        return False
    # Nor what was found by nothing but a stop word or a filter.
    return not (min_relevance > 0 and not supported and r.relevance is None and r.similarity is None)


def _respond(
    store: Store,
    ranked: list[_Ranked],
    terms: list[Term],
    started: float,
    warnings: list[str],
    *,
    k: int | None,
    per_file: bool,
    details: dict[int, dict] | None = None,
    min_score: float | None = None,
    min_relevance: float = 0.0,
) -> SearchResponse:
    """Turn ranked items into results: the threshold, one result per file, details, snippets, tags."""
    shown = [r for r in ranked if _passes(r, min_score, min_relevance)]
    hidden = len(ranked) - len(shown)
    groups: list[list[_Ranked]] = []
    if per_file:
        by_file: dict[int, list[_Ranked]] = {}
        if details is None:
            details = store.item_details([r.item_id for r in shown])
        # A file's other passages must hold a typed word themselves or be close in meaning:
        # its name matching the query says nothing about which of its passages to open.
        own_bar = max(min_relevance, DEFAULT_MIN_RELEVANCE)
        for r in shown:
            d = details.get(r.item_id)
            if d is None:
                continue
            group = by_file.get(d["file_id"])
            if group is None:
                group = by_file[d["file_id"]] = []
                groups.append(group)
            elif not (r.spans or (r.relevance is not None and r.relevance >= own_bar)):
                continue
            group.append(r)
    else:
        groups = [[r] for r in shown]
    if k is not None:
        groups = groups[:k]
    ids = [r.item_id for group in groups for r in group]
    missing = [i for i in ids if details is None or i not in details]
    if details is None or missing:
        details = {**(details or {}), **store.item_details(missing if details is not None else ids)}
    groups = [[r for r in group if r.item_id in details] for group in groups]
    groups = [group for group in groups if group]
    file_ids = list({details[group[0].item_id]["file_id"] for group in groups})
    tags = store.tags_of_files(file_ids)
    auto = store.tags_of_files(file_ids, source="auto")

    def snippet_of(r: _Ranked) -> str | None:
        text = details[r.item_id]["text"]
        if not text:
            return None
        if not r.spans and terms:
            found = find_terms(text, terms)
            r.spans = [span for spans in found.values() for span in spans]
        return _snippet_with_spans(text, r.spans)

    def locator_of(r: _Ranked) -> dict[str, Any]:
        d = details[r.item_id]
        if d["modality"] != "speech" or not r.spans or d["locator"].get("start") is None:
            return d["locator"]
        return _spoken_at(store, d, r.spans)

    results = []
    for group in groups:
        best = group[0]
        d = details[best.item_id]
        results.append(
            SearchResult(
                path=d["path"],
                kind=d["kind"],
                score=round(best.score, 6),
                locator=locator_of(best),
                snippet=snippet_of(best),
                media_time=_iso(d["media_time"]),
                tags=tags.get(d["file_id"], []),
                item_id=best.item_id,
                file_id=d["file_id"],
                similarity=None if best.similarity is None else round(best.similarity, 6),
                auto_tags=auto.get(d["file_id"], []),
                relevance=None if best.relevance is None else round(best.relevance, 6),
                matched=best.matched,
                name_match=best.name_match,
                modality=d["modality"],
                more=[
                    {
                        "item_id": r.item_id,
                        "modality": details[r.item_id]["modality"],
                        "locator": locator_of(r),
                        "snippet": snippet_of(r),
                        "score": round(r.score, 6),
                        "relevance": None if r.relevance is None else round(r.relevance, 6),
                        "similarity": None if r.similarity is None else round(r.similarity, 6),
                    }
                    for r in group[1:]
                ],
            )
        )
    return SearchResponse(results, round((time.perf_counter() - started) * 1000, 2), warnings, hidden=hidden)


def _spoken_at(store: Store, detail: dict[str, Any], spans: list[tuple[int, int]]) -> dict[str, Any]:
    """A speech passage's locator, starting at the transcript segment where the typed words are said.

    A passage joins several of Whisper's segments (up to 40 seconds); a
    typed word found late in it should play from where it is said, not from
    the passage's start.  The segment holding most of the matched words
    wins (the earliest of equals).  ``passage`` keeps the passage's own
    ``[start, end]``.
    """
    locator = detail["locator"]
    start, end = float(locator["start"]), float(locator.get("end") or locator["start"])
    segments = [
        seg
        for seg in store.transcript(detail["file_id"])
        if (seg.start_s or 0.0) >= start - 1e-6 and (seg.end_s or 0.0) <= end + 1e-6
    ]
    best, best_count, position = None, 0, 0
    for seg in segments:
        length = len((seg.text or "").strip())
        count = sum(1 for first, _ in spans if position <= first < position + length)
        if count > best_count:
            best, best_count = seg, count
        position += length + 1  # joined with one space
    if best is None or best.start_s is None or best.start_s <= start:
        return locator
    return {**locator, "start": float(best.start_s), "passage": [start, end]}


def _snippet_with_spans(text: str, spans: list[tuple[int, int]], width: int = SNIPPET_CHARS) -> str:
    """A window of ``text`` (whitespace collapsed) around its first marked span, the spans marked."""
    # Collapse whitespace while keeping a map from old offsets to new ones.
    pieces = []
    new_of_old = [0] * (len(text) + 1)
    out_len = 0
    in_space = False
    for i, ch in enumerate(text):
        new_of_old[i] = out_len
        if ch.isspace():
            if not in_space and out_len:
                pieces.append(" ")
                out_len += 1
            in_space = True
        else:
            pieces.append(ch)
            out_len += 1
            in_space = False
    new_of_old[len(text)] = out_len
    flat = "".join(pieces).rstrip()
    mapped = sorted((new_of_old[s], new_of_old[e]) for s, e in spans if e > s)
    start = 0
    if mapped and mapped[0][0] > width // 3:
        start = mapped[0][0] - width // 3
        space = flat.rfind(" ", 0, start + 1)
        start = space + 1 if space > start - 20 else start
    end = min(len(flat), start + width)
    if end < len(flat):
        cut = flat.rfind(" ", start, end)
        if cut > start + width // 2:
            end = cut
    inside = [(max(s, start) - start, min(e, end) - start) for s, e in mapped if s < end and e > start]
    snippet = _marked(flat[start:end], inside)
    if end < len(flat):
        snippet += "…"
    if start > 0:
        snippet = "…" + snippet
    return snippet


__all__ = [
    "KINDS",
    "MARK_CLOSE",
    "MARK_OPEN",
    "MEANING_PENDING",
    "SearchResponse",
    "SearchResult",
    "embed_image_query",
    "is_loaded",
    "keyword_terms",
    "make_snippet",
    "mark_terms",
    "query_terms",
    "result_for_items",
    "search",
]
