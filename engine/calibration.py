"""Calibration: a model's raw cosine similarity turned into a relevance between 0 and 1.

Cosine similarities mean different things for different models: all-MiniLM
puts unrelated sentences near 0.0, E5 near 0.75, CLIP's text-to-image
similarities live between 0.1 and 0.4.  A threshold on raw similarity is
therefore wrong for all models but one.  Each model gets a calibration::

    relevance = 1 / (1 + exp(-(cosine - center) / scale))

fitted by logistic regression on labelled pairs, the two classes weighted
equally: a *positive* is a query with the item it describes, a *negative* a
query with one of the :data:`HARD_NEGATIVES` most similar items it does not
describe (including queries about nothing in the data).  The negatives are
the hard ones on purpose: the threshold decides about the top of a ranking,
where the wrong items are the closest ones, not random ones.  A relevance of
0.5 is where an item near the top is as likely to be what was asked for as
not; search leaves out results below the threshold (:data:`DEFAULT_MIN_RELEVANCE`
by default) unless a typed word supports them.

Where calibrations come from, first match wins:

1. ``resources/calibration.json``, shipped with Shoebox, measured by
   ``scripts/calibrate.py`` (it says how, on what and with what result);
2. for a text model not listed there: a fit on the bundled probe pairs
   (``resources/calibration_probes.json``), computed the first time the model
   is used and remembered in ``<library>/models/calibration.json``;
3. for a CLIP model not listed there: :data:`CLIP_ESTIMATE`, an estimate from
   the similarities published CLIP models are known to give, labelled as such.

A model whose similarities do not tell related from unrelated pairs (the
``test-tiny`` models' random weights) gets ``informative = False``: nothing
passes on meaning alone; words still find things.

Queries written in CJK scripts get a calibration of their own (``cjk``) where
one was measured: an English model such as all-MiniLM-L6-v2 finds every Korean
text about as similar to every other, so for Korean queries it is not
informative, while for English queries it is.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .bundled import RESOURCES
from .text import is_no_space_script

log = logging.getLogger(__name__)

SHIPPED_FILE = RESOURCES / "calibration.json"
PROBES_FILE = RESOURCES / "calibration_probes.json"

# The relevance below which a result no typed word supports is left out.  Relevance is
# calibrated against the closest wrong items, so 0.25 means "about one chance in four, among
# the items nearest the query, of being what was asked for": weak but real matches stay (a
# paraphrase a small model is unsure of), while a query the library has nothing on (whose
# nearest items measure below 0.1 with the models measured; see docs/search.md) finds nothing.
DEFAULT_MIN_RELEVANCE = 0.25
# Below this area under the ROC curve a model's similarity is no evidence of relevance.
MIN_INFORMATIVE_AUC = 0.75
# Relevance that a model without information gives every item: never passes the threshold.
_FLOOR_LOGIT = -8.0
# Negatives per query: its most similar wrong items.
HARD_NEGATIVES = 3


def hardest(similarities: np.ndarray, count: int = HARD_NEGATIVES) -> np.ndarray:
    """The ``count`` highest finite values of each row (masked pairs are -inf), flattened."""
    if similarities.size == 0:
        return similarities.ravel()
    count = min(count, similarities.shape[1])
    top = np.sort(similarities, axis=1)[:, -count:].ravel()
    return top[np.isfinite(top)]


@dataclass(frozen=True)
class Calibration:
    """Maps cosine similarity to relevance; see the module docstring."""

    center: float
    scale: float
    informative: bool = True
    source: str = "measured"  # measured | probes | estimated
    auc: float | None = None
    cjk: Calibration | None = None  # for queries in CJK scripts, where measured apart

    def for_query(self, text: str) -> Calibration:
        """The calibration that applies to ``text``: the CJK one for a query in a CJK script, if any."""
        if self.cjk is not None and is_no_space_script(text):
            return self.cjk
        return self

    def logit(self, cosine: Any) -> Any:
        """Log-odds of relevance (numpy arrays or floats); a constant floor when not informative."""
        if not self.informative:
            return np.full_like(np.asarray(cosine, dtype=np.float64), _FLOOR_LOGIT)
        return (np.asarray(cosine, dtype=np.float64) - self.center) / self.scale

    def relevance(self, cosine: Any) -> Any:
        """Relevance in [0, 1] of a cosine similarity (or an array of them)."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.logit(cosine), -40, 40)))

    def relevance_of(self, cosine: float, prior: float = 0.0) -> float:
        """Relevance of one similarity, ``prior`` added to its log-odds (plain floats: search calls it per item)."""
        logit = (_FLOOR_LOGIT if not self.informative else (cosine - self.center) / self.scale) + prior
        return 1.0 / (1.0 + math.exp(-min(40.0, max(-40.0, logit))))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Published CLIP models (ViT-B-32 and kin) put a photo that matches a description at a
# text-to-image cosine of about 0.25-0.35 and unrelated photos at about 0.10-0.20.  Not
# measured here (no released CLIP weights could be obtained on the machine that measured
# the others); scripts/calibrate.py measures it where they are.
CLIP_ESTIMATE = Calibration(center=0.22, scale=0.025, source="estimated")


def sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos = np.asarray(positives, np.float64)
    neg = np.asarray(negatives, np.float64)
    if not pos.size or not neg.size:
        return 0.5
    values = np.concatenate([pos, neg])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, np.float64)
    sorted_values = values[order]
    # Average ranks over ties.
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    rank_sum = ranks[: pos.size].sum()
    return float((rank_sum - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size))


def fit(
    positives: Sequence[float] | np.ndarray,
    negatives: Sequence[float] | np.ndarray,
    *,
    source: str = "measured",
    positive_weights: Sequence[float] | np.ndarray | None = None,
    negative_weights: Sequence[float] | np.ndarray | None = None,
) -> Calibration:
    """Fit relevance = sigmoid((cos - center) / scale) to labelled similarities, classes weighted equally.

    Within a class, pairs weigh the same unless weights are given (a caller
    pooling data sets weighs each set equally, so that thousands of easy
    negatives from one set do not drown the hard ones of another).  Logistic
    regression by Newton's method, with a small ridge on the slope so that
    perfectly separated classes give a finite, steep curve.  Returns a
    non-informative calibration when the classes do not separate (AUC below
    :data:`MIN_INFORMATIVE_AUC`).
    """
    pos = np.asarray(positives, np.float64)
    neg = np.asarray(negatives, np.float64)
    if pos.size < 3 or neg.size < 3:
        raise ValueError("a calibration needs at least three positive and three negative pairs")
    area = auc(pos, neg)
    if area < MIN_INFORMATIVE_AUC:
        return Calibration(center=1.0, scale=1.0, informative=False, source=source, auc=round(area, 4))
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    wp = np.ones(pos.size) if positive_weights is None else np.asarray(positive_weights, np.float64)
    wn = np.ones(neg.size) if negative_weights is None else np.asarray(negative_weights, np.float64)
    w = np.concatenate([0.5 * wp / wp.sum(), 0.5 * wn / wn.sum()])
    # Standardise x for a well-conditioned Newton step.
    mean, std = float(x.mean()), float(x.std()) or 1.0
    z = (x - mean) / std
    a, b = 1.0, 0.0
    ridge = 1e-4
    for _ in range(100):
        p = sigmoid(a * z + b)
        grad_a = np.sum(w * (p - y) * z) + ridge * a
        grad_b = np.sum(w * (p - y))
        h = w * p * (1 - p)
        haa = np.sum(h * z * z) + ridge
        hab = np.sum(h * z)
        hbb = np.sum(h) + 1e-12
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da = (hbb * grad_a - hab * grad_b) / det
        db = (haa * grad_b - hab * grad_a) / det
        a, b = a - da, b - db
        if abs(da) < 1e-10 and abs(db) < 1e-10:
            break
    slope = a / std  # in cosine units
    center = mean - b * std / a
    return Calibration(
        center=round(float(center), 5), scale=round(float(1.0 / slope), 5), source=source, auc=round(area, 4)
    )


# ---------------------------------------------------------------------------- lookup


def calibration_key(space: str, identity: Any) -> str:
    """The key of a model's calibration: CLIP by name and weights, a text model by its weights alone.

    (A text model is the same model whatever folder or name it is reached by.)
    """
    if space == "text":
        return f"text:{identity.weights}"
    return f"clip:{identity.name}:{identity.weights}"


_shipped: dict[str, dict] | None = None
_lock = threading.Lock()


def shipped_calibrations() -> dict[str, dict]:
    """The calibrations measured for Shoebox (``resources/calibration.json``), by key."""
    global _shipped
    with _lock:
        if _shipped is None:
            try:
                _shipped = json.loads(SHIPPED_FILE.read_text(encoding="utf-8"))["models"]
            except (OSError, ValueError, KeyError):
                _shipped = {}
        return _shipped


def _from_entry(entry: dict) -> Calibration:
    cjk = entry.get("cjk")
    return Calibration(
        center=float(entry.get("center", 1.0)),
        scale=float(entry.get("scale", 1.0)),
        informative=bool(entry.get("informative", True)),
        source=entry.get("source", "measured"),
        auc=entry.get("auc"),
        cjk=_from_entry(cjk) if isinstance(cjk, dict) else None,
    )


def load_probes() -> dict[str, Any]:
    """The bundled probe pairs and unrelated queries (``resources/calibration_probes.json``)."""
    return json.loads(PROBES_FILE.read_text(encoding="utf-8"))


SCRIPT_GROUPS = ("other", "cjk")


def script_group(query: str) -> str:
    """``"cjk"`` for a query written in a CJK script, else ``"other"``."""
    return "cjk" if is_no_space_script(query) else "other"


def probe_similarities(
    encode_queries: Callable[[list[str]], np.ndarray],
    encode_passages: Callable[[list[str]], np.ndarray],
    probes: dict[str, Any] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(positive, negative) cosine similarities of a text model on the probe set, per script of the query.

    Positives: each probe query with its own passage.  Negatives: each query
    with the :data:`HARD_NEGATIVES` most similar other passages in its script,
    and each unrelated query with its most similar passages in its script (a
    passage in another language is an easy negative that would flatter a model
    that cannot read this one).
    """
    probes = probes or load_probes()
    pairs = probes["pairs"]
    queries = [p["query"] for p in pairs]
    passages = [p["passage"] for p in pairs]
    unrelated = list(probes.get("unrelated_queries", []))
    q = np.asarray(encode_queries(queries + unrelated), np.float32)
    d = np.asarray(encode_passages(passages), np.float32)
    sims = q @ d.T
    n = len(pairs)
    groups = np.array([script_group(text) for text in queries + unrelated])
    passage_groups = np.array([script_group(text) for text in passages])
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for group in SCRIPT_GROUPS:
        mine = groups[:n] == group
        same = passage_groups == group
        positives = np.diag(sims[:n, :n])[mine]
        others = np.where(np.eye(n, dtype=bool), -np.inf, sims[:n, :n])[mine][:, same]
        negatives = np.concatenate([hardest(others), hardest(sims[n:][groups[n:] == group][:, same])])
        if positives.size and negatives.size:
            out[group] = (positives, negatives)
    return out


def fit_by_script(parts: dict[str, tuple[np.ndarray, np.ndarray]], *, source: str = "measured") -> Calibration:
    """One calibration for queries in spaced scripts, with a CJK one inside it when CJK pairs were measured."""
    if "other" not in parts:
        raise ValueError("a calibration needs pairs whose queries are not in a CJK script")
    main = fit(*parts["other"], source=source)
    if "cjk" in parts and min(parts["cjk"][0].size, parts["cjk"][1].size) >= 3:
        main = replace(main, cjk=fit(*parts["cjk"], source=source))
    return main


class CalibrationBook:
    """The calibrations of a library's models: shipped ones, else measured on the probes and remembered.

    ``cache_file`` is ``<library>/models/calibration.json``.
    """

    def __init__(self, cache_file: Path | None):
        self.cache_file = cache_file
        self._memo: dict[str, Calibration] = {}
        self._lock = threading.Lock()

    def get(self, space: str, identity: Any, text_encoder: Any = None) -> Calibration:
        """The calibration of the model ``identity`` in ``space``.

        For a text model without a shipped calibration, ``text_encoder`` is
        used to measure one on the probe set (a few seconds, once).
        """
        key = calibration_key(space, identity)
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            entry = shipped_calibrations().get(key)
            if entry is None:
                entry = self._cached().get(key)
            if entry is not None:
                calibration = _from_entry(entry)
            elif space == "text" and text_encoder is not None:
                parts = probe_similarities(text_encoder.encode_queries, text_encoder.encode_passages)
                calibration = fit_by_script(parts, source="probes")
                self._remember(key, calibration)
            elif space == "clip":
                calibration = CLIP_ESTIMATE
            else:
                raise ValueError(f"no calibration for {key} and no model to measure one")
            self._memo[key] = calibration
            return calibration

    def _cached(self) -> dict[str, dict]:
        if self.cache_file is None:
            return {}
        try:
            return json.loads(self.cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _remember(self, key: str, calibration: Calibration) -> None:
        if self.cache_file is None:
            return
        cached = self._cached()
        cached[key] = calibration.to_json()
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(cached, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(self.cache_file)
        except OSError as exc:  # a read-only library measures again next time; nothing is lost
            log.warning("could not remember the calibration of %s in %s: %s", key, self.cache_file, exc)
