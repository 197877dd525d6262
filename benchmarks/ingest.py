"""Indexing speed: the whole pipeline against the CLIP forward pass alone, on the same photos.

For each model (``test-tiny`` and a randomly initialised ``ViT-B-32``, which does the same
arithmetic as the real one) this measures, in one run:

* **forward**: images per second of ``encode_image_tensors`` on tensors prepared beforehand
  (the model's arithmetic and nothing else);
* **pipeline**: images per second of ``Indexer.index`` on the folder, from scanning and hashing
  through decoding, thumbnails, preprocessing and encoding to the committed SQLite rows;
* **decode**: images per second of extraction + preprocessing alone, on one thread.

The ratio pipeline / forward is the pipeline's overhead; the target is >= 0.9 (decoding and
writing overlap with inference).  Each figure is the best of ``--repeat`` runs, alternating,
because these machines are noisy.

    .venv/bin/python benchmarks/ingest.py [--images 96] [--models test-tiny,ViT-B-32]

Prints a table and writes JSON (default ``benchmarks/results/ingest.json``).
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

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.extractors.images import extract_image
from engine.ingest import IMAGE_SIDE, Indexer
from engine.models import ClipEncoder, build_clip, configure_torch_threads
from engine.settings import load_settings
from engine.store import LibraryStore


def make_photos(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """Photo-like JPEGs: smooth gradients, shapes and sensor noise, camera-sized."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for n in range(count):
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = (xx * rng.uniform(0.2, 1) + yy * rng.uniform(0.2, 1)) / (w + h)
        pixels = c0 + (c1 - c0) * t[..., None] + rng.normal(0, 6, (h, w, 3))
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(8):
            x0, y0 = int(rng.integers(0, w - 50)), int(rng.integers(0, h - 50))
            x1, y1 = x0 + int(rng.integers(20, w // 3)), y0 + int(rng.integers(20, h // 3))
            draw.ellipse((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        path = folder / f"IMG_{n:04}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def build_encoder(name: str, home: Path, threads: int, batch: int, runtime: str = "") -> ClipEncoder:
    """CLIP ``name`` (random init unless test-tiny); ``runtime`` ("onnx"/"torch") as SHOEBOX_CLIP_RUNTIME."""
    env = {"SHOEBOX_CLIP_MODEL": name, "SHOEBOX_THREADS": str(threads), "SHOEBOX_BATCH_SIZE": str(batch)}
    if runtime:
        env["SHOEBOX_CLIP_RUNTIME"] = runtime
    settings = load_settings(home=home, env=env)
    configure_torch_threads(settings)
    if name == "test-tiny":
        clip = build_clip(settings)
    else:
        clip = ClipEncoder(settings, name=name, random_init=True)
    clip.load()
    return clip


def time_forward(clip: ClipEncoder, tensors: list, batch: int) -> float:
    import torch

    started = time.perf_counter()
    for start in range(0, len(tensors), batch):
        clip.encode_image_tensors(torch.stack(tensors[start : start + batch]))
    return time.perf_counter() - started


def time_pipeline(clip: ClipEncoder, folder: Path, work: Path, batch: int, run: int) -> tuple[float, dict]:
    lib = work / f"lib-{run}"
    store = LibraryStore(lib / "library.sqlite3")
    try:
        indexer = Indexer(store, clip, None, thumbnails_dir=lib / "thumbnails", batch_size=batch)
        started = time.perf_counter()
        summary = indexer.index([folder])
        seconds = time.perf_counter() - started
    finally:
        store.close()
    return seconds, summary.to_json()


def time_decode(clip: ClipEncoder, paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        clip.preprocess(extract_image(path, max_side=IMAGE_SIDE).image)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", default="2000x1500", help="photo size WxH (default 2000x1500)")
    parser.add_argument("--models", default="test-tiny,ViT-B-32")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ingest.json"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    size = (width, height)

    import torch

    rows = []
    with tempfile.TemporaryDirectory(prefix="shoebox-bench-") as tmp:
        work = Path(tmp)
        print(f"making {args.images} photos of {size[0]}x{size[1]} ...", file=sys.stderr)
        paths = make_photos(work / "photos", args.images, size)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        for name in args.models.split(","):
            clip = build_encoder(name, work / f"home-{name}", args.threads, args.batch)
            tensors = [clip.preprocess(extract_image(p, max_side=IMAGE_SIDE).image) for p in paths]
            time_forward(clip, tensors[: args.batch], args.batch)  # warm-up
            forward, pipeline, decode = [], [], []
            summary: dict[str, Any] = {}
            for run in range(args.repeat):
                forward.append(time_forward(clip, tensors, args.batch))
                seconds, summary = time_pipeline(clip, work / "photos", work / name, args.batch, run)
                pipeline.append(seconds)
                decode.append(
                    time_decode(clip, paths[: max(8, args.images // 4)]) * args.images / max(8, args.images // 4)
                )
            assert summary["added"] == args.images and not summary["failed"], summary
            row = {
                "model": name if name == "test-tiny" else f"{name} (random init)",
                "images": args.images,
                "forward_ips": args.images / min(forward),
                "pipeline_ips": args.images / min(pipeline),
                "decode_ips_1thread": args.images / min(decode),
                "forward_s": forward,
                "pipeline_s": pipeline,
            }
            row["ratio"] = row["pipeline_ips"] / row["forward_ips"]
            rows.append(row)
            print(
                f"{row['model']}: forward {row['forward_ips']:.1f}/s, pipeline {row['pipeline_ips']:.1f}/s, "
                f"ratio {row['ratio']:.2f}",
                file=sys.stderr,
            )

    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    print()
    print(
        f"Ingestion, {args.images} JPEG photos {size[0]}x{size[1]} ({megabytes:.0f} MB), batch {args.batch}, "
        f"{machine['cores']} cores, torch {machine['torch']} ({machine['torch_threads']} threads), best of {args.repeat}"
    )
    header = f"| {'model':<26} | {'forward only (img/s)':>20} | {'whole pipeline (img/s)':>22} | {'pipeline / forward':>18} | {'decode+preprocess, 1 thread (img/s)':>35} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r['model']:<26} | {r['forward_ips']:>20.1f} | {r['pipeline_ips']:>22.1f} | {r['ratio']:>18.2f} | {r['decode_ips_1thread']:>35.1f} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "images": args.images,
                "size": size,
                "batch": args.batch,
                "megabytes": megabytes,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
