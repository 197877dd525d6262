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
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelUnavailableError, UsageError
from .store import Filters, LibraryStore

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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResponse:
    results: list[SearchResult]
    took_ms: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"results": [r.to_json() for r in self.results], "took_ms": self.took_ms, "warnings": self.warnings}


def query_terms(text: str) -> list[str]:
    """Words of a typed query, for keyword matching: split on spaces, outer punctuation removed."""
    terms = []
    for raw in text.split():
        word = raw.strip(_EDGE_PUNCTUATION)
        if word and word not in terms:
            terms.append(word)
    return terms


def mark_terms(text: str, terms: list[str]) -> str:
    """``text`` with every occurrence of the terms (case-insensitive) wrapped in « »."""
    if not terms:
        return text
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
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


def search(
    store: LibraryStore,
    clip: Any,
    text: str | None = None,
    *,
    image: str | Path | None = None,
    filters: Filters | None = None,
    k: int = 20,
) -> SearchResponse:
    """Find the ``k`` best items for a text and/or image query within ``filters``.

    ``clip`` is a :class:`engine.models.ClipEncoder` or None (keyword search only).
    Raises :class:`UsageError` for an empty query or a missing image file, and
    :class:`ModelUnavailableError` for an image query without model weights.
    """
    started = time.perf_counter()
    filters = filters or Filters()
    text = (text or "").strip()
    if not text and image is None:
        raise UsageError("type something to search for, or give an image")
    if k <= 0:
        raise UsageError("the number of results (-k) must be at least 1")
    warnings: list[str] = []
    terms = query_terms(text)
    pool = max(3 * k, 50)

    allowed: np.ndarray | None = None
    if not filters.empty and not (filters.kinds and len(filters.kinds) == 1 and not filters.tags
                                  and not filters.folder and filters.after is None and filters.before is None):
        allowed = store.allowed_item_ids(filters)

    queries: list[np.ndarray] = []
    if clip is not None and store.dim is not None:
        try:
            if text:
                queries.append(clip.encode_texts([text])[0])
            if image is not None:
                queries.append(embed_image_query(clip, image))
        except ModelUnavailableError as exc:
            if image is not None:
                raise
            warnings.append(f"searching by keywords only: {exc}")
            queries = []
    elif image is not None:
        raise ModelUnavailableError("searching by image needs the CLIP model; run `shoebox models download clip`")
    elif text:
        warnings.append("searching by keywords only: no CLIP model is set up for this library")

    rankings: list[list[tuple[int, float]]] = []
    similarity: dict[int, float] = {}
    for q in queries:
        if allowed is None:
            hits = [(item_id, 1.0 - dist) for item_id, dist in store.vector_knn(q, pool, filters.kinds)]
        elif len(allowed):
            hits = _exact_top(q, allowed, store.vectors(allowed), pool)
        else:
            hits = []
        rankings.append(hits)
        for item_id, sim in hits:
            similarity[item_id] = max(similarity.get(item_id, -1.0), sim)

    if terms:
        keyword_hits = store.keyword_search(terms, limit=pool if allowed is None and filters.empty else 2000)
        if allowed is not None:
            passing = set(allowed.tolist())
            keyword_hits = [h for h in keyword_hits if h[0] in passing]
        elif filters.kinds:
            details = store.item_details([h[0] for h in keyword_hits])
            keyword_hits = [h for h in keyword_hits if details.get(h[0], {}).get("kind") in filters.kinds]
        rankings.append(keyword_hits[:pool])

    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (item_id, _) in enumerate(ranking):
            fused[item_id] = fused.get(item_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    order = sorted(fused, key=lambda i: (-fused[i], -similarity.get(i, -1.0), i))[:k]

    details = store.item_details(order)
    tags = store.tags_of_files(d["file_id"] for d in details.values())
    results = []
    for item_id in order:
        d = details[item_id]
        results.append(SearchResult(
            path=d["path"], kind=d["kind"], score=round(fused[item_id], 6), locator=d["locator"],
            snippet=make_snippet(d["text"], terms), media_time=_iso(d["media_time"]), tags=tags.get(d["file_id"], []),
            item_id=item_id, file_id=d["file_id"],
            similarity=round(similarity[item_id], 6) if item_id in similarity else None,
        ))
    return SearchResponse(results, round((time.perf_counter() - started) * 1000, 2), warnings)
