"""Calibration: cosine similarity to relevance, fitted, shipped, measured on the probes, per script."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.calibration import (
    CLIP_ESTIMATE,
    Calibration,
    CalibrationBook,
    auc,
    calibration_key,
    fit,
    hardest,
    load_probes,
    probe_similarities,
    shipped_calibrations,
)
from engine.models import ModelIdentity


def test_a_fit_puts_the_even_odds_between_the_classes():
    rng = np.random.default_rng(0)
    positives = rng.normal(0.6, 0.05, 300)
    negatives = rng.normal(0.2, 0.05, 3000)
    c = fit(positives, negatives)
    assert c.informative and c.center is not None and 0.35 < c.center < 0.45 and c.scale > 0
    assert c.relevance(0.6) > 0.95 and c.relevance(0.2) < 0.05
    assert float(c.relevance(c.center)) == pytest.approx(0.5)
    assert c.auc == pytest.approx(auc(positives, negatives), abs=1e-4) and c.auc is not None and c.auc > 0.99


def test_weights_let_a_small_hard_set_count_as_much_as_a_large_easy_one():
    hard_pos, hard_neg = np.full(10, 0.5), np.full(10, 0.4)
    easy_pos, easy_neg = np.full(1000, 0.8), np.full(10000, 0.0)
    pos, neg = np.concatenate([hard_pos, easy_pos]), np.concatenate([hard_neg, easy_neg])
    plain = fit(pos, neg)
    weighted = fit(
        pos,
        neg,
        positive_weights=np.r_[np.full(10, 0.1), np.full(1000, 0.001)],
        negative_weights=np.r_[np.full(10, 0.1), np.full(10000, 0.0001)],
    )
    assert weighted.center > plain.center  # the hard negatives at 0.4 push the even odds up


def test_random_similarities_are_not_evidence():
    rng = np.random.default_rng(1)
    c = fit(rng.normal(0.5, 0.1, 200), rng.normal(0.5, 0.1, 2000))
    assert not c.informative
    assert c.relevance(0.99) < 0.001  # nothing passes on meaning alone


def test_too_few_pairs_is_an_error():
    with pytest.raises(ValueError, match="at least three positive and three negative pairs"):
        fit([0.5, 0.6], [0.1, 0.2, 0.3])


def test_hardest_keeps_the_closest_wrong_items():
    sims = np.array([[0.1, 0.9, 0.5, -np.inf], [0.3, 0.2, 0.1, 0.0]])
    assert sorted(hardest(sims, 2)) == [0.2, 0.3, 0.5, 0.9]


def test_cjk_queries_use_their_own_calibration():
    korean = Calibration(center=1.0, scale=1.0, informative=False)
    c = Calibration(center=0.3, scale=0.05, cjk=korean)
    assert c.for_query("boiler service") is c
    assert c.for_query("보일러 점검") is korean
    assert Calibration(0.3, 0.05).for_query("보일러").center == 0.3  # none measured apart: the main one


def test_the_shipped_calibrations_say_how_they_were_measured():
    shipped = shipped_calibrations()
    minilm = shipped["text:sha256:53aa51172d142c89"]
    assert minilm["informative"] and 0.1 < minilm["center"] < 0.6
    assert minilm["measured_by"].startswith("python -m scripts.calibrate text")
    assert "SQuAD" in minilm["data"] and minilm["positives"] > 300
    assert minilm["cjk"]["informative"] is False  # an English model cannot judge Korean
    assert shipped["text:seed0"]["informative"] is False  # test-tiny: random weights
    assert shipped["clip:test-tiny:seed0"]["informative"] is False
    assert shipped["clip:shapes-clip:file:e1765de0f40c"]["informative"] is True


def test_the_probe_set_is_bundled_and_balanced():
    probes = load_probes()
    langs = [p["lang"] for p in probes["pairs"]]
    assert langs.count("en") >= 50 and langs.count("ko") >= 20
    assert len(probes["unrelated_queries"]) >= 30


class _Concepts:
    """A text model whose vectors are bags of letters: paraphrases are not found, but words are."""

    def _encode(self, texts):
        out = np.zeros((len(texts), 26), np.float32)
        for row, text in zip(out, texts, strict=True):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    row[ord(ch) - 97] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    encode_queries = encode_passages = _encode


def test_probe_similarities_per_script():
    parts = probe_similarities(_Concepts().encode_queries, _Concepts().encode_passages)
    assert set(parts) == {"other", "cjk"}
    positives, negatives = parts["other"]
    assert positives.size == sum(p["lang"] == "en" for p in load_probes()["pairs"]) and negatives.size > positives.size


def test_a_model_without_a_shipped_calibration_is_measured_once_and_remembered(tmp_path):
    book = CalibrationBook(tmp_path / "calibration.json")
    identity = ModelIdentity("folder:letters", "sha256:0000000000000000", 26)
    measured = book.get("text", identity, _Concepts())
    assert measured.source == "probes"
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert calibration_key("text", identity) in stored
    again = CalibrationBook(tmp_path / "calibration.json").get("text", identity)  # no model needed now
    assert again == measured


def test_clip_models_without_a_measurement_use_the_labelled_estimate(tmp_path):
    book = CalibrationBook(tmp_path / "calibration.json")
    c = book.get("clip", ModelIdentity("ViT-B-32", "laion2b_s34b_b79k", 512))
    assert c == CLIP_ESTIMATE and c.source == "estimated"
