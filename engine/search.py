"""Search: a text and/or image query plus filters becomes a ranked list of items.

Two rankings are computed and fused by reciprocal rank fusion (RRF):

* **vectors** — the query embedded by CLIP against every item's embedding.
  Without filters (or with one kind) this is sqlite-vec's exact KNN; with
  filters the passing items are selected in SQL first and ranked exactly with
  numpy, so a filtered query returns k results whenever k items pass.
* **keywords** — FTS5 (trigram) over item text; every typed word is quoted,
  so quotes, ``AND``, ``*``, brackets or SQL never raise a syntax error.

Keyword search works before any model is present: when the CLIP weights are
missing, a text query falls back to keywords alone and says so in ``warnings``.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelUnavailableError, UsageError
from .store import Filters, LibraryStore
from .text import STOP_WORDS, is_hangul, strip_particle

RRF_K = 60  # the usual constant of reciprocal rank fusion
MARK_OPEN, MARK_CLOSE = "«", "»"  # how matched words are marked in snippets
SNIPPET_CHARS = 180

_EDGE_PUNCTUATION = "\"'“”‘’«»()[]{}<>,.;:!?*^+-~|&=`"


@dataclass
class SearchResult:
    """One found item.  ``locator`` holds page / char_start+char_end / start+end seconds."""

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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResponse:
    """What a search found, and how.

    ``query`` is the text that was searched for meaning (dates taken out);
    ``dates`` the date phrases understood (``engine.dates.DatePhrase.to_json``),
    which the app shows as removable chips; ``plan`` how the vectors were
    searched (``hnsw-graph``, ``hnsw-scan``, ``hnsw-exact``, ``sqlite-vec``,
    ``exact``, ``keywords`` or ``browse``); ``matched`` how many items passed
    the filters (None when unfiltered); ``encode_ms`` the part of ``took_ms``
    spent embedding the query.
    """

    results: list[SearchResult]
    took_ms: float
    warnings: list[str] = field(default_factory=list)
    query: str = ""
    dates: list[dict[str, Any]] = field(default_factory=list)
    plan: str = ""
    matched: int | None = None
    encode_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "results": [r.to_json() for r in self.results], "took_ms": self.took_ms, "warnings": self.warnings,
            "query": self.query, "dates": self.dates, "plan": self.plan, "matched": self.matched,
            "encode_ms": self.encode_ms,
        }


def query_terms(text: str) -> list[str]:
    """Words of a typed query, for keyword matching: split on spaces, outer punctuation removed."""
    terms = []
    # Control characters (a NUL would end an FTS5 string early) are not words.
    text = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    for raw in text.split():
        word = raw.strip(_EDGE_PUNCTUATION)
        if word and word not in terms:
            terms.append(word)
    return terms


def keyword_terms(terms: list[str]) -> list[str]:
    """The words worth matching in text: stop words left out (while others remain), Korean particles cut off.

    "When did the Normans reach Italy?" matches on Normans, reach, Italy;
    "임종석이" matches "임종석" (the particle 이 is not part of the name).
    """
    out: list[str] = []
    for term in terms:
        if len(term) >= 3 and is_hangul(term[-1]):
            stem = strip_particle(term)
            term = stem if len(stem) >= 2 else term
        if term.lower() in STOP_WORDS:
            continue
        if term not in out:
            out.append(term)
    return out or terms


def mark_terms(text: str, terms: list[str]) -> str:
    """``text`` with every occurrence of the terms (case-insensitive) wrapped in « »."""
    if not terms:
        return text
    # A Latin-script word is marked where a word starts ("red" in "red" and
    # "reds", not in "Ingredients"); other scripts, Korean with its particles
    # first of all, wherever they occur.
    alternatives = [
        (r"(?<![A-Za-z0-9])" if t[:1].isascii() and t[:1].isalnum() else "") + re.escape(t)
        for t in sorted(terms, key=len, reverse=True)
    ]
    pattern = re.compile("|".join(alternatives), re.IGNORECASE)
    return pattern.sub(lambda m: f"{MARK_OPEN}{m.group(0)}{MARK_CLOSE}", text)


def make_snippet(text: str | None, terms: list[str], width: int = SNIPPET_CHARS) -> str | None:
    """A window of ``text`` around the first matched term, with the terms marked."""
    if not text:
        return None
    text = " ".join(text.split())
    start = 0
    lowered = text.lower()
    hits = [lowered.find(t.lower()) for t in terms]
    hits = [h for h in hits if h >= 0]
    if hits and min(hits) > width // 3:
        start = min(hits) - width // 3
        space = text.rfind(" ", 0, start + 1)
        start = space + 1 if space > start - 20 else start
    piece = text[start:start + width]
    if start + width < len(text):
        cut = piece.rfind(" ")
        piece = (piece[:cut] if cut > width // 2 else piece) + "…"
    if start > 0:
        piece = "…" + piece
    return mark_terms(piece, terms)


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
    from .extractors.images import extract_image
    from .ingest import IMAGE_SIDE

    path = Path(image_path)
    if not path.exists():
        raise UsageError(f"no such image: {image_path}")
    extracted = extract_image(path, max_side=IMAGE_SIDE)
    return clip.encode_images([extracted.image])[0]


def _timestamp(value: Any) -> float | None:
    return None if value is None else value.timestamp()


def _tighter(filters: Filters, after: float | None, before: float | None) -> Filters:
    """``filters`` with its time range narrowed to [after, before)."""
    if after is None and before is None:
        return filters
    new_after = filters.after if after is None else (after if filters.after is None else max(after, filters.after))
    new_before = filters.before if before is None else (before if filters.before is None else min(before, filters.before))
    return replace(filters, after=new_after, before=new_before)


def _only_kinds(filters: Filters) -> bool:
    """Whether the filters restrict nothing but the kind (sqlite-vec filters that itself)."""
    return (not filters.tags and not filters.folder and filters.after is None and filters.before is None
            and len(filters.kinds) <= 1)


def _member(sorted_ids: np.ndarray, item_ids: list[int]) -> np.ndarray:
    """Which of ``item_ids`` are in ``sorted_ids`` (sorted int64)."""
    if not item_ids or sorted_ids.size == 0:
        return np.zeros(len(item_ids), bool)
    probe = np.asarray(item_ids, np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, probe), sorted_ids.size - 1)
    return sorted_ids[pos] == probe


def search(
    store: LibraryStore,
    clip: Any,
    text: str | None = None,
    *,
    image: str | Path | None = None,
    like: str | Path | int | None = None,
    filters: Filters | None = None,
    k: int = 20,
    min_score: float | None = None,
    understand_dates: bool = True,
    live: Any = None,
    now: datetime | None = None,
) -> SearchResponse:
    """Find the ``k`` best items for a text and/or image query within ``filters``.

    Args:
        clip: a :class:`engine.models.ClipEncoder`, or None (keyword search only).
        image: an image file to search by (inside the library or not).
        like: "more like this": an indexed file's path (or an item id); its
            stored vector is the query and the file itself is left out.
        min_score: drop results whose cosine similarity to the query is below
            this (results that matched typed words are kept).
        understand_dates: take phrases like "last summer" or "작년" out of the
            text and make them a time filter (reported in ``dates``).
        live: a ready :class:`engine.index.live.LiveIndex` to plan over (HNSW
            with the catalog's filters); without it, exact search.

    Raises :class:`UsageError` for an empty query or a missing image file, and
    :class:`ModelUnavailableError` for an image query without model weights.
    """
    run = partial(_search, store, clip, text, image=image, like=like, filters=filters, k=k, min_score=min_score,
                  live=live, now=now)
    if not (understand_dates and text and text.strip()):
        return run(understand_dates=False)
    response = run(understand_dates=True)
    if response.results or not response.dates:
        return response
    # Nothing in the understood dates: perhaps the words were not meant as a
    # date ("the car insurance renews in March").  Say so and search them as words.
    labels = ", ".join(d["label"] for d in response.dates)
    fallback = run(understand_dates=False)
    if fallback.results:
        fallback.warnings.insert(0, f"nothing from {labels}; showing results from any time")
        return fallback
    return response


def _search(store: LibraryStore, clip: Any, text: str | None, *, image: str | Path | None,
            like: str | Path | int | None, filters: Filters | None, k: int, min_score: float | None,
            understand_dates: bool, live: Any, now: datetime | None) -> SearchResponse:
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
    terms = query_terms(semantic)
    pool = max(3 * k, 50)
    if live is not None and not live.usable:
        live = None

    allowed: np.ndarray | None = None
    if live is not None:
        allowed = live.allowed(filters)
    elif not _only_kinds(filters):
        allowed = store.allowed_item_ids(filters)

    excluded: set[int] = set()
    queries: list[np.ndarray] = []
    if like is not None:
        item_ids = store.item_ids_of(like)
        if not item_ids:
            raise UsageError(f"{like} is not in the library; search with --image to use an outside picture")
        excluded = set(item_ids)
        queries.append(store.vectors(item_ids[:1])[0])
    if clip is not None and store.dim is not None:
        try:
            if semantic:
                queries.append(clip.encode_texts([semantic])[0])
            if image is not None:
                queries.append(embed_image_query(clip, image))
        except ModelUnavailableError as exc:
            if image is not None:
                raise
            warnings.append(f"searching by keywords only: {exc}")
    elif image is not None:
        raise ModelUnavailableError("searching by image needs the CLIP model; run `shoebox models download clip`")
    elif semantic:
        warnings.append("searching by keywords only: no CLIP model is set up for this library")
    encoded = time.perf_counter()

    if not semantic and image is None and like is None:
        plan = "browse"
        order_scored = [(item_id, 0.0) for item_id in store.latest_items(filters, k)]
        response = _respond(store, order_scored, {}, terms, queries, set(), min_score, started, warnings)
        response.plan, response.dates, response.query, response.matched = plan, [p.to_json() for p in phrases], "", store.count_passing(filters)
        response.encode_ms = round((encoded - started) * 1000, 2)
        return response

    plan = "keywords"
    rankings: list[list[tuple[int, float]]] = []
    similarity: dict[int, float] = {}
    fetch = pool + len(excluded)
    for q in queries:
        if live is not None:
            hits, how = live.search(q, fetch, allowed)
            plan = f"hnsw-{how}"
        elif allowed is None:
            hits = [(item_id, 1.0 - dist) for item_id, dist in store.vector_knn(q, fetch, filters.kinds)]
            plan = "sqlite-vec"
        elif len(allowed):
            hits = _exact_top(q, allowed, store.vectors(allowed), fetch)
            plan = "exact"
        else:
            hits = []
            plan = "exact"
        hits = [h for h in hits if h[0] not in excluded][:pool]
        rankings.append(hits)
        for item_id, sim in hits:
            similarity[item_id] = max(similarity.get(item_id, -1.0), sim)

    keyword_ids: set[int] = set()
    if terms:
        unrestricted = allowed is None and not filters.kinds
        keyword_hits = store.keyword_search(keyword_terms(terms), limit=pool if unrestricted else 2000)
        if allowed is not None:
            passing = _member(allowed, [h[0] for h in keyword_hits])
            keyword_hits = [h for h, ok in zip(keyword_hits, passing) if ok]
        elif filters.kinds:
            details = store.item_details([h[0] for h in keyword_hits])
            keyword_hits = [h for h in keyword_hits if details.get(h[0], {}).get("kind") in filters.kinds]
        keyword_hits = [h for h in keyword_hits if h[0] not in excluded][:pool]
        keyword_ids = {h[0] for h in keyword_hits}
        rankings.append(keyword_hits)

    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (item_id, _) in enumerate(ranking):
            fused[item_id] = fused.get(item_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    order = sorted(fused, key=lambda i: (-fused[i], -similarity.get(i, -1.0), i))
    response = _respond(store, [(i, fused[i]) for i in order], similarity, terms, queries, keyword_ids,
                        min_score, started, warnings, k=k, vectors=live.vectors if live is not None else None)
    response.plan = plan
    response.dates = [p.to_json() for p in phrases]
    response.query = semantic
    response.matched = None if allowed is None else int(allowed.shape[0])
    response.encode_ms = round((encoded - started) * 1000, 2)
    return response


def result_for_items(store: LibraryStore, item_ids: list[int], terms: list[str] | None = None) -> list[SearchResult]:
    """Results for given items (to show a cited passage the way search shows it), in that order."""
    return _respond(store, [(i, 0.0) for i in item_ids], {}, terms or [], [], set(), None, time.perf_counter(),
                    []).results


def _respond(store: LibraryStore, scored: list[tuple[int, float]], similarity: dict[int, float], terms: list[str],
             queries: list[np.ndarray], keyword_ids: set[int], min_score: float | None, started: float,
             warnings: list[str], k: int | None = None, vectors: Any = None) -> SearchResponse:
    """Turn ranked item ids into results: similarity for every one, the threshold, details, tags."""
    if queries:
        candidates = [i for i, _ in (scored if k is None else scored[: 2 * k + len(keyword_ids)])]
        missing = [i for i in candidates if i not in similarity]
        if missing:
            found = (vectors or store.vectors)(missing)
            sims = np.max(np.stack([found @ q for q in queries]), axis=0)
            similarity = {**similarity, **{i: float(s) for i, s in zip(missing, sims)}}
    if min_score is not None and queries:
        scored = [(i, s) for i, s in scored if i in keyword_ids or similarity.get(i, -1.0) >= min_score]
    if k is not None:
        scored = scored[:k]
    ids = [i for i, _ in scored]
    marked = keyword_terms(terms) if terms else []  # "a red circle" marks red and circle, not every "a"
    details = store.item_details(ids)
    file_ids = [d["file_id"] for d in details.values()]
    tags = store.tags_of_files(file_ids)
    auto = store.tags_of_files(file_ids, source="auto")
    results = []
    for item_id, score in scored:
        d = details[item_id]
        results.append(SearchResult(
            path=d["path"], kind=d["kind"], score=round(score, 6), locator=d["locator"],
            snippet=make_snippet(d["text"], marked), media_time=_iso(d["media_time"]), tags=tags.get(d["file_id"], []),
            item_id=item_id, file_id=d["file_id"],
            similarity=round(similarity[item_id], 6) if item_id in similarity else None,
            auto_tags=auto.get(d["file_id"], []),
        ))
    return SearchResponse(results, round((time.perf_counter() - started) * 1000, 2), warnings)
