"""Measure a model's calibration: the map from cosine similarity to relevance (engine/calibration.py).

Positives are queries with the item they describe; negatives are queries with
the few most similar items they do not describe (the hard negatives a ranking
meets at its top), and queries about nothing in the data with their closest items.  A logistic curve is fitted with the two classes weighted equally
(:func:`engine.calibration.fit`); the result, with how it was measured, goes to
``resources/calibration.json`` with ``--write``.

    # a text model (a folder, a Hugging Face name in the cache, or test-tiny)
    .venv/bin/python -m scripts.calibrate text --model PATH_OR_NAME [--write]
    # CLIP: shapes-clip on generated pictures, test-tiny, or a real model on your own captioned photos
    .venv/bin/python -m scripts.calibrate clip --model shapes-clip --weights resources/models/shapes-clip.safetensors
    .venv/bin/python -m scripts.calibrate clip --model ViT-B-32 --weights FILE --captions captions.tsv

Text data: the SQuAD 2.0 dev subset from ``../shared/data/corpora/qa``
(answerable questions and their paragraph; other articles' paragraphs as
negatives) together with the bundled probe pairs
(``resources/calibration_probes.json``: short searches, paraphrases, Korean,
and unrelated queries).  Without ``../shared`` the probes alone are used, and
the entry says so.  ``--captions`` is a TSV of ``image path<TAB>caption`` lines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.calibration import (  # noqa: E402
    SHIPPED_FILE,
    auc,
    calibration_key,
    fit,
    fit_by_script,
    hardest,
    probe_similarities,
)
from engine.settings import load_settings  # noqa: E402

SQUAD = ROOT.parent / "shared" / "data" / "corpora" / "qa" / "squad_v2_dev_subset_small.json"
COMMAND = "python -m scripts.calibrate"


def squad_similarities(encoder, path: Path = SQUAD) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) similarities on SQuAD: each answerable question with its paragraph / other articles'."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs: list[str] = []
    article_of: list[int] = []
    questions: list[tuple[str, int]] = []
    for a, article in enumerate(data):
        for para in article["paragraphs"]:
            index = len(paragraphs)
            paragraphs.append(para["context"])
            article_of.append(a)
            questions.extend(
                (qa["question"], index) for qa in para["qas"] if qa.get("answers") and not qa.get("is_impossible")
            )
    q = np.asarray(encoder.encode_queries([text for text, _ in questions]), np.float32)
    d = np.asarray(encoder.encode_passages(paragraphs), np.float32)
    sims = q @ d.T
    gold = np.array([i for _, i in questions])
    articles = np.array(article_of)
    positives = sims[np.arange(len(questions)), gold]
    # Paragraphs of the same article are about the same thing (partly relevant): not negatives.
    other_article = articles[None, :] != articles[gold][:, None]
    return positives, hardest(np.where(other_article, sims, -np.inf))


def measure_text(model: str) -> dict:
    from engine.models import build_text_encoder

    with tempfile.TemporaryDirectory(prefix="shoebox-calibrate-") as home:
        settings = load_settings(home=home, env={"SHOEBOX_TEXT_MODEL": model})
        encoder = build_text_encoder(settings)
        encoder.load()
        identity = encoder.identity
        probes = probe_similarities(encoder.encode_queries, encoder.encode_passages)
        parts = {f"probes-{group}": pair for group, pair in probes.items()}
        if SQUAD.exists():
            parts["squad"] = squad_similarities(encoder)
        # Queries in spaced scripts (SQuAD, English probes) make the main curve, each data set
        # weighing the same; Korean ones their own.
        spaced = [k for k in parts if k != "probes-cjk"]
        main = fit(
            np.concatenate([parts[k][0] for k in spaced]),
            np.concatenate([parts[k][1] for k in spaced]),
            positive_weights=np.concatenate([np.full(parts[k][0].size, 1 / parts[k][0].size) for k in spaced]),
            negative_weights=np.concatenate([np.full(parts[k][1].size, 1 / parts[k][1].size) for k in spaced]),
        )
        cjk = (
            fit_by_script({"other": parts["probes-other"], "cjk": parts["probes-cjk"]}).cjk
            if "probes-cjk" in parts
            else None
        )
        calibration = replace(main, cjk=cjk)
        data = " + ".join(
            sorted(
                {
                    "bundled probe pairs (resources/calibration_probes.json)"
                    if k.startswith("probes")
                    else "SQuAD 2.0 dev subset (answerable questions vs their paragraph / other articles)"
                    for k in parts
                }
            )
        )
        report = {
            name: _report(calibration.for_query("한" if name == "probes-cjk" else "a"), p, n)
            for name, (p, n) in parts.items()
        }
        positives = sum(p.size for p, _ in parts.values())
        negatives = sum(n.size for _, n in parts.values())
        return {
            "key": calibration_key("text", identity),
            "identity": identity,
            "calibration": calibration,
            "data": data,
            "report": report,
            "positives": int(positives),
            "negatives": int(negatives),
            "command": f"{COMMAND} text --model {model if not os.path.isdir(model) else 'FOLDER'} --write",
        }


def shapes_similarities(encoder, seed: int = 2024, scenes: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Captions of generated shape pictures: with their own picture / pictures they do not describe."""
    from scripts.shapes_clip import random_caption, random_spec, render_scene, satisfies

    rng = np.random.default_rng(seed)
    specs = [random_spec(rng) for _ in range(scenes)]
    captions = [random_caption(s, rng) for s in specs]
    images = encoder.encode_images([render_scene(s) for s in specs])
    texts = encoder.encode_texts([c for c, _ in captions])
    sims = texts @ images.T
    described = np.array([[satisfies(m, s) for s in specs] for _, m in captions])
    nonsense = encoder.encode_texts(
        [
            "qzvbrtt plonkwx",
            "a spreadsheet of tax returns",
            "the history of rome",
            "xylophonequartzplinth",
            "a violin concerto",
            "mortgage interest rates",
        ]
    )
    return sims[described], np.concatenate([hardest(np.where(described, -np.inf, sims)), hardest(nonsense @ images.T)])


def captioned_similarities(encoder, captions_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """A person's own captioned photos: each caption with its photo / with the other photos."""
    from PIL import Image

    with open(captions_file, encoding="utf-8", newline="") as f:
        rows = [(Path(r[0]), r[1]) for r in csv.reader(f, delimiter="\t") if len(r) >= 2]
    images = encoder.encode_images([Image.open(p) for p, _ in rows])
    texts = encoder.encode_texts([c for _, c in rows])
    sims = texts @ images.T
    same = np.eye(len(rows), dtype=bool)
    return sims[same], hardest(np.where(same, -np.inf, sims))


def measure_clip(model: str, weights: str, captions: str | None) -> dict:
    from engine.models import build_clip

    with tempfile.TemporaryDirectory(prefix="shoebox-calibrate-") as home:
        env = {"SHOEBOX_CLIP_MODEL": model, "SHOEBOX_CLIP_WEIGHTS": weights}
        if model == "test-tiny":
            env["SHOEBOX_CLIP_PRETRAINED"] = ""
        encoder = build_clip(load_settings(home=home, env=env))
        encoder.load()
        identity = encoder.identity
        if captions:
            positives, negatives = captioned_similarities(encoder, Path(captions))
            data = f"captioned photos ({Path(captions).name})"
        else:
            positives, negatives = shapes_similarities(encoder)
            data = "generated pictures of coloured shapes with their captions (scripts/shapes_clip.py)"
        calibration = fit(positives, negatives)
        command = f"{COMMAND} clip --model {model}" + (" --weights FILE" if weights else "")
        return {
            "key": calibration_key("clip", identity),
            "identity": identity,
            "calibration": calibration,
            "data": data,
            "report": {"all": _report(calibration, positives, negatives)},
            "positives": int(positives.size),
            "negatives": int(negatives.size),
            "command": command + " --write",
        }


def _report(calibration, positives: np.ndarray, negatives: np.ndarray) -> dict:
    rel_pos = calibration.relevance(positives)
    rel_neg = calibration.relevance(negatives)
    return {
        "positives": int(positives.size),
        "negatives": int(negatives.size),
        "auc": round(auc(positives, negatives), 4),
        "positives_passing": round(float(np.mean(rel_pos >= 0.5)), 4),
        "negatives_passing": round(float(np.mean(rel_neg >= 0.5)), 4),
        "cosine_positive_median": round(float(np.median(positives)), 4),
        "cosine_negative_median": round(float(np.median(negatives)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("space", choices=("text", "clip"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--weights", default="", help="CLIP weights file (clip only)")
    parser.add_argument("--captions", help="TSV of image path and caption (clip only)")
    parser.add_argument("--write", action="store_true", help=f"record the result in {SHIPPED_FILE.name}")
    args = parser.parse_args(argv)
    result = measure_text(args.model) if args.space == "text" else measure_clip(args.model, args.weights, args.captions)
    calibration = result["calibration"]
    identity = result["identity"]
    print(f"{args.space} model {identity.name} ({identity.weights}, {identity.dim}-d) on {result['data']}")
    print(
        f"  center {calibration.center}  scale {calibration.scale}  informative {calibration.informative}  "
        f"AUC {calibration.auc}"
    )
    if calibration.cjk is not None:
        cjk = calibration.cjk
        print(f"  CJK queries: center {cjk.center}  scale {cjk.scale}  informative {cjk.informative}  AUC {cjk.auc}")
    print(
        f"  | {'data':<11} | {'pos':>5} | {'neg':>7} | {'AUC':>6} | {'pos ≥ 0.5':>9} | {'neg ≥ 0.5':>9} "
        f"| {'cos pos':>7} | {'cos neg':>7} |"
    )
    for name, r in result["report"].items():
        print(
            f"  | {name:<11} | {r['positives']:>5} | {r['negatives']:>7} | {r['auc']:>6.3f} | "
            f"{r['positives_passing']:>9.3f} | {r['negatives_passing']:>9.3f} | "
            f"{r['cosine_positive_median']:>7.3f} | {r['cosine_negative_median']:>7.3f} |"
        )
    if args.write:
        shipped = json.loads(SHIPPED_FILE.read_text(encoding="utf-8")) if SHIPPED_FILE.exists() else {"models": {}}
        entry = calibration.to_json()
        entry.update(
            model=identity.name,
            data=result["data"],
            measured_by=result["command"],
            positives=result["positives"],
            negatives=result["negatives"],
            report=result["report"],
        )
        shipped["models"][result["key"]] = entry
        shipped.setdefault(
            "about",
            "Calibrations measured by scripts/calibrate.py: relevance = "
            "1 / (1 + exp(-(cosine - center) / scale)). See engine/calibration.py.",
        )
        SHIPPED_FILE.write_text(
            json.dumps(shipped, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote {result['key']} to {SHIPPED_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
