"""Text recognition: what it costs per photo, and what it does to indexing speed.

* **detector**: milliseconds of :func:`engine.extractors.ocr.likely_has_text` per 448-pixel
  preview, on ordinary photos and on photos of text, and how many of each it says hold text;
* **OCR**: seconds of :func:`engine.extractors.ocr.photo_text` per photo of text (decoding at
  OCR size and Tesseract), with the share of the drawn words it finds;
* **indexing**: photos per second of ``Indexer.index`` on a folder of ``--images`` camera-sized
  photos of which ``--text-share`` hold text (pages, receipts, screenshots, slides, signs in
  English and Korean), with text recognition on and with ``SHOEBOX_OCR=off``.  The target is
  "on" within 20 % of "off".  The table also says how many photos indexing ran the detector and
  Tesseract on: zero means this ingestion does not call ``photo_text``, and both runs measured
  the same thing.  Each figure is the best of ``--repeat`` runs, alternating.

    .venv/bin/python benchmarks/ocr.py [--images 200] [--text-share 0.05] [--models test-tiny]

Prints a table and writes JSON (default ``benchmarks/results/ocr.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.ingest import build_encoder, make_photos
from engine.extractors import ocr
from engine.extractors.images import extract_image
from engine.ingest import IMAGE_SIDE, Indexer
from engine.store import LibraryStore
from tests.helpers import text_photo

ENGLISH = [
    "Dental invoice for Mrs. Jones",
    "Total due: 125.40 EUR by 3 March",
    "Thank you for your visit",
    "Please keep this receipt",
]
KOREAN = ["치과 예약은 목요일 오전 10시입니다", "영수증 합계 금액 12,500원", "방문해 주셔서 감사합니다"]
STYLES = ("page", "receipt", "screenshot", "slide", "sign")


def make_text_photos(folder: Path, count: int, size: tuple[int, int]) -> list[tuple[Path, list[str]]]:
    """``count`` camera-sized JPEGs of text, styles and languages in turn; each with the lines drawn."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for n in range(count):
        style = STYLES[n % len(STYLES)]
        lines = ENGLISH if (n // len(STYLES)) % 2 == 0 else KOREAN
        if style == "sign":
            lines = lines[:2]
        path = folder / f"TXT_{n:04}.jpg"
        text_photo(lines, style, seed=n, size=size).save(path, quality=88)
        made.append((path, lines))
    return made


def words_found(lines: list[str], text: str) -> tuple[int, int]:
    folded = "".join(text.casefold().split())
    words = [w for line in lines for w in line.split()]
    return sum("".join(w.casefold().split()) in folded for w in words), len(words)


class Calls:
    """Counts calls of the OCR module's detector and recogniser, however ingestion reaches them."""

    def __init__(self) -> None:
        self.detector = 0
        self.said_yes = 0
        self.recognised = 0
        self._lock = threading.Lock()

    @contextmanager
    def counting(self) -> Iterator[None]:
        detect, recognise = ocr.likely_has_text, ocr.recognise

        def counted_detect(image: Any) -> bool:
            answer = detect(image)
            with self._lock:
                self.detector += 1
                self.said_yes += int(answer)
            return answer

        def counted_recognise(*args: Any, **kwargs: Any) -> str:
            with self._lock:
                self.recognised += 1
            return recognise(*args, **kwargs)

        ocr.likely_has_text = counted_detect
        ocr.recognise = counted_recognise
        try:
            yield
        finally:
            ocr.likely_has_text, ocr.recognise = detect, recognise


@contextmanager
def ocr_setting(value: str | None) -> Iterator[None]:
    before = os.environ.get(ocr.OCR_ENV)
    if value is None:
        os.environ.pop(ocr.OCR_ENV, None)
    else:
        os.environ[ocr.OCR_ENV] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ocr.OCR_ENV, None)
        else:
            os.environ[ocr.OCR_ENV] = before


def best_of(repeat: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeat))


def time_index(clip: Any, folder: Path, lib: Path, batch: int) -> tuple[float, dict]:
    store = LibraryStore(lib / "library.sqlite3")
    try:
        indexer = Indexer(store, clip, None, thumbnails_dir=lib / "thumbnails", batch_size=batch)
        started = time.perf_counter()
        summary = indexer.index([folder])
        seconds = time.perf_counter() - started
    finally:
        store.close()
    return seconds, summary.to_json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--text-share", type=float, default=0.05, help="share of photos that hold text")
    parser.add_argument("--size", default="2000x1500", help="photo size WxH (default 2000x1500)")
    parser.add_argument(
        "--models",
        default="test-tiny",
        help="CLIP models, e.g. test-tiny,ViT-B-32 (random init); NAME@torch or NAME@onnx picks the runtime. "
        "The first row's speed without OCR is the reference the others are compared with",
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ocr.json"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    status = ocr.ocr_status()
    if not status.available:
        print(f"cannot measure text recognition: {status.reason}", file=sys.stderr)
        return 1

    text_count = max(1, round(args.images * args.text_share))
    with tempfile.TemporaryDirectory(prefix="shoebox-bench-ocr-") as tmp:
        work = Path(tmp)
        folder = work / "photos"
        print(f"making {args.images} photos of {width}x{height}, {text_count} of them with text ...", file=sys.stderr)
        ordinary = make_photos(folder, args.images - text_count, (width, height))
        texts = make_text_photos(folder, text_count, (width, height))

        # (a) the detector and Tesseract, one photo at a time on one thread.
        ordinary_previews = [extract_image(p, max_side=IMAGE_SIDE).image for p in ordinary]
        text_previews = [extract_image(p, max_side=IMAGE_SIDE).image for p, _ in texts]

        def detector_seconds(previews: list) -> float:
            started = time.perf_counter()
            for image in previews:
                ocr.likely_has_text(image)
            return (time.perf_counter() - started) / len(previews)

        detector_ordinary = best_of(args.repeat, lambda: detector_seconds(ordinary_previews))
        detector_text = best_of(args.repeat, lambda: detector_seconds(text_previews))
        false_positives = sum(ocr.likely_has_text(image) for image in ordinary_previews)
        detected = sum(ocr.likely_has_text(image) for image in text_previews)
        ocr_seconds, found, total = [], 0, 0
        for (path, lines), preview in zip(texts, text_previews, strict=True):
            started = time.perf_counter()
            text = ocr.photo_text(path, preview)
            ocr_seconds.append(time.perf_counter() - started)
            hit, count = words_found(lines, text)
            found, total = found + hit, total + count
        per_photo = {
            "detector_ms_ordinary": detector_ordinary * 1000,
            "detector_ms_text": detector_text * 1000,
            "detector_false_positives": false_positives,
            "ordinary_photos": len(ordinary_previews),
            "detector_recall": detected / len(text_previews),
            "ocr_s_per_text_photo": sum(ocr_seconds) / len(ocr_seconds),
            "ocr_s_max": max(ocr_seconds),
            "words_found": found / max(1, total),
        }

        # (b) indexing with recognition on and off.
        rows = []
        for spec in args.models.split(","):
            name, _, runtime = spec.partition("@")
            clip = build_encoder(name, work / f"home-{name}", args.threads, args.batch, runtime)
            runs: dict[str, list[float]] = {"on": [], "off": []}
            calls: dict[str, Calls] = {}
            for run in range(args.repeat):
                for mode, setting in (("off", "off"), ("on", None)):
                    counter = Calls()
                    with ocr_setting(setting), counter.counting():
                        seconds, summary = time_index(
                            clip, folder, work / spec.replace("@", "-") / f"{mode}-{run}", args.batch
                        )
                    assert summary["added"] == args.images and not summary["failed"], summary
                    runs[mode].append(seconds)
                    calls[mode] = counter
            row = {
                "model": (name if name == "test-tiny" else f"{name} (random init)")
                + (f", {clip.runtime}" if getattr(clip, "runtime", None) else ""),
                "off_ips": args.images / min(runs["off"]),
                "on_ips": args.images / min(runs["on"]),
                "off_s": runs["off"],
                "on_s": runs["on"],
                "detector_calls": calls["on"].detector,
                "tesseract_photos": calls["on"].recognised,
            }
            row["on_vs_off"] = row["on_ips"] / row["off_ips"]
            rows.append(row)
            print(
                f"{row['model']}: off {row['off_ips']:.1f}/s, on {row['on_ips']:.1f}/s ({row['on_vs_off']:.2f})",
                file=sys.stderr,
            )

    import torch

    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "tesseract": status.describe(),
    }
    print()
    print(
        f"Text recognition, {args.images} JPEG photos {width}x{height}, {text_count} with text; "
        f"{machine['cores']} cores; best of {args.repeat}"
    )
    print(
        f"detector: {per_photo['detector_ms_ordinary']:.1f} ms per ordinary photo, "
        f"{per_photo['detector_ms_text']:.1f} ms per photo of text; said yes to "
        f"{false_positives}/{len(ordinary_previews)} ordinary photos and {detected}/{len(text_previews)} photos of text"
    )
    print(
        f"OCR: {per_photo['ocr_s_per_text_photo']:.2f} s per photo of text (max {per_photo['ocr_s_max']:.2f} s), "
        f"{per_photo['words_found']:.0%} of the drawn words found"
    )
    for r in rows:  # the first row without OCR is the reference (e.g. today's pipeline)
        r["on_vs_reference"] = r["on_ips"] / rows[0]["off_ips"]
    header = (
        f"| {'model':<36} | {'OCR off (photos/s)':>18} | {'OCR on (photos/s)':>17} | {'on / off':>8} "
        f"| {'on / first off':>14} | {'detector ran on':>15} | {'Tesseract ran on':>16} |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r['model']:<36} | {r['off_ips']:>18.1f} | {r['on_ips']:>17.1f} | {r['on_vs_off']:>8.2f} "
            f"| {r['on_vs_reference']:>14.2f} | {r['detector_calls']:>15} | {r['tesseract_photos']:>16} |"
        )
    if rows and all(r["detector_calls"] == 0 for r in rows):
        print("\nnote: indexing never called the detector: this ingestion does not run text recognition yet.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "images": args.images,
                "text_photos": text_count,
                "size": [width, height],
                "per_photo": per_photo,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
