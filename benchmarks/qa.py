"""Question answering baseline on SQuAD 2.0 (a dev subset) and KorQuAD 1.0 (dev).

Each paragraph of a data set becomes a text file; the files are indexed by the
real ``Library.index`` (chunking included) with the configured CLIP model, and
every question is then asked three ways:

* **retrieval recall@5**: does one of the top five items hold the answer, that
  is, is it a chunk of the gold paragraph whose character span covers the
  gold answer's start?  Measured for keywords only (FTS5), vectors only (CLIP
  text embedding of the question against every item) and hybrid (the planner
  with RRF, as ``shoebox search`` does);
* **extractive answer**: does ``Library.ask`` (no LLM) return an answer that
  contains a gold answer text (case and spacing ignored)?
* for SQuAD's unanswerable questions: how often ``ask`` says it found nothing.

Vector figures depend on the model: with ``test-tiny`` (random weights, the
default here because no real weights can be downloaded on a machine without
network) they are a floor; pass ``--clip-model ViT-B-32 --clip-weights FILE``
(or any open_clip model in the cache) for real numbers.  No target yet: this
is the baseline.

    .venv/bin/python benchmarks/qa.py [--limit 300] [--clip-model test-tiny]

Prints a table and writes JSON (default ``benchmarks/results/qa.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.library import Library  # noqa: E402
from engine.search import keyword_terms, query_terms  # noqa: E402
from engine.settings import load_settings  # noqa: E402

QA = ROOT.parent / "shared" / "data" / "corpora" / "qa"
SETS = {
    "SQuAD 2.0 subset": QA / "squad_v2_dev_subset_small.json",
    "KorQuAD 1.0 dev": QA / "KorQuAD_v1.0_dev.json",
}


def load_set(path: Path) -> tuple[list[tuple[str, str]], list[dict]]:
    """(file name, paragraph text) pairs and the questions with their gold file, answers and start."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs, questions = [], []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            name = f"a{a:03}_p{p:03}.txt"
            paragraphs.append((name, para["context"]))
            for qa in para["qas"]:
                answers = [x for x in qa.get("answers", [])]
                questions.append({
                    "question": qa["question"], "file": name,
                    "impossible": bool(qa.get("is_impossible")) or not answers,
                    "answers": sorted({x["text"] for x in answers}),
                    "starts": sorted({x["answer_start"] for x in answers}),
                })
    return paragraphs, questions


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def holds_answer(details: dict, gold_path: str, starts: list[int]) -> bool:
    if details.get("path") != gold_path:
        return False
    loc = details.get("locator", {})
    lo, hi = loc.get("char_start"), loc.get("char_end")
    if lo is None:
        return True  # a file without chunk offsets: the paragraph itself
    return any(lo <= s < hi for s in starts)


def evaluate(library: Library, folder: Path, questions: list[dict], k: int = 5) -> dict:
    store = library.store
    clip = library.clip
    counts = {"keyword": 0, "vector": 0, "hybrid": 0, "answer": 0, "answerable": 0,
              "impossible": 0, "impossible_not_found": 0, "answer_found_flag": 0}
    started = time.perf_counter()
    for q in questions:
        if q["impossible"]:
            counts["impossible"] += 1
            answer = library.ask(q["question"], use_llm=False)
            counts["impossible_not_found"] += not answer.found
            continue
        counts["answerable"] += 1
        gold = str(folder / q["file"])
        keyword_ids = [i for i, _ in store.keyword_search(keyword_terms(query_terms(q["question"])), limit=k)]
        vector_ids = [i for i, _ in store.vector_knn(clip.encode_texts([q["question"]])[0], k)]
        hybrid_ids = [r.item_id for r in library.search(q["question"], k=k).results]
        details = store.item_details(keyword_ids + vector_ids + hybrid_ids)
        for name, ids in (("keyword", keyword_ids), ("vector", vector_ids), ("hybrid", hybrid_ids)):
            counts[name] += any(holds_answer(details.get(i, {}), gold, q["starts"]) for i in ids)
        answer = library.ask(q["question"], use_llm=False)
        counts["answer_found_flag"] += answer.found
        counts["answer"] += any(_norm(a) in _norm(answer.answer) for a in q["answers"])
    n = max(counts["answerable"], 1)
    return {
        "questions": len(questions),
        "answerable": counts["answerable"],
        "recall5_keyword": counts["keyword"] / n,
        "recall5_vector": counts["vector"] / n,
        "recall5_hybrid": counts["hybrid"] / n,
        "answer_contains_gold": counts["answer"] / n,
        "answered": counts["answer_found_flag"] / n,
        "impossible": counts["impossible"],
        "impossible_said_not_found": (counts["impossible_not_found"] / counts["impossible"]
                                      if counts["impossible"] else None),
        "seconds_per_question": (time.perf_counter() - started) / max(len(questions), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=300,
                        help="questions per data set, a seeded sample (0: all of them)")
    parser.add_argument("--clip-model", default="test-tiny")
    parser.add_argument("--clip-pretrained", default="")
    parser.add_argument("--clip-weights", default="")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "qa.json"))
    args = parser.parse_args(argv)
    missing = [str(p) for p in SETS.values() if not p.exists()]
    if missing:
        print(f"qa.py: data not found: {', '.join(missing)} (expected ../shared beside the project)", file=sys.stderr)
        return 1

    rows = []
    with tempfile.TemporaryDirectory(prefix="shoebox-qa-") as tmp:
        env = {"SHOEBOX_CLIP_MODEL": args.clip_model, "SHOEBOX_CLIP_PRETRAINED": args.clip_pretrained,
               "SHOEBOX_CLIP_WEIGHTS": args.clip_weights, "SHOEBOX_WHISPER_MODEL": "test-tiny",
               "SHOEBOX_AUTOTAGS": "0"}
        for label, path in SETS.items():
            paragraphs, questions = load_set(path)
            if args.limit and len(questions) > args.limit:
                questions = random.Random(0).sample(questions, args.limit)
            folder = Path(tmp) / label.split()[0].lower()
            folder.mkdir()
            for name, text in paragraphs:
                (folder / name).write_text(text, encoding="utf-8")
            settings = load_settings(home=Path(tmp) / f"home-{folder.name}", env=env)
            with Library(settings) as library:
                t = time.perf_counter()
                summary = library.index([folder])
                indexed_s = time.perf_counter() - t
                if summary.failed:
                    print(f"qa.py: {len(summary.failed)} paragraphs failed to index: {summary.failed[:3]}",
                          file=sys.stderr)
                row = {"set": label, "paragraphs": len(paragraphs), "items": library.store.count_items(),
                       "index_seconds": round(indexed_s, 1), **evaluate(library, folder, questions)}
                model = library.store.model_identity()
            row["model"] = f"{model['name']} ({model['weights']})"
            rows.append(row)
            print(f"  {label}: done", file=sys.stderr)

    print()
    print(f"Question answering, top 5, extractive answers (no LLM); CLIP {rows[0]['model']}")
    header = (f"| {'data set':<17} | {'questions':>9} | {'recall@5 keyword':>16} | {'recall@5 vector':>15} "
              f"| {'recall@5 hybrid':>15} | {'answer has gold':>15} | {'no-answer → not found':>21} |")
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        impossible = "—" if r["impossible_said_not_found"] is None else f"{r['impossible_said_not_found']:.2f}"
        print(f"| {r['set']:<17} | {r['answerable']:>9} | {r['recall5_keyword']:>16.3f} | {r['recall5_vector']:>15.3f} "
              f"| {r['recall5_hybrid']:>15.3f} | {r['answer_contains_gold']:>15.3f} | {impossible:>21} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    out.write_text(json.dumps({"machine": machine, "limit": args.limit, "rows": rows}, indent=2, ensure_ascii=False))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
