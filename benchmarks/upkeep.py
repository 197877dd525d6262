"""Index upkeep: dead nodes, file size and search latency while a library is re-indexed again and again.

A library of ``--files`` files (two passages each, seeded random vectors
clustered around 64 centres: not real embeddings) is changed ``--rounds``
times the way re-indexing a changing folder changes it: a share of the files
(``--churn``) get new content, a few are deleted and a few added.  After each
round the live index is synced and saved, as ``Library.update_index`` does,
and the table shows its live and dead nodes, the saved file's size and that
size over the size of a graph built afresh from the same vectors.  The same
rounds are run with compaction turned off, for comparison.

Then the graph is pushed over the compaction threshold and searched without a
compaction running and while one runs in the background (from the sync that
found the changes, as in the app): latency per search and recall@10 against
exact search over the stored vectors.

    .venv/bin/python benchmarks/upkeep.py [--files 2000] [--dim 512] [--rounds 10] [--churn 0.1] [--out FILE]

Writes ``benchmarks/results/upkeep.json``.
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

import engine.index.live as live_module
from engine.index.live import COMPACT_DEAD_FRACTION, LiveIndex
from engine.store import LibraryStore, NewItem

SPACE = "text"
K = 10


class Corpus:
    """Seeded vectors for files: each file's two passages near one of 64 centres."""

    def __init__(self, dim: int, seed: int):
        self.rng = np.random.default_rng(seed)
        self.centres = self.rng.normal(size=(64, dim)).astype(np.float32)
        self.dim = dim

    def vectors(self, n: int) -> np.ndarray:
        centre = self.centres[self.rng.integers(0, 64, n)]
        v = centre + 0.6 * self.rng.normal(size=(n, self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def write_files(store: LibraryStore, corpus: Corpus, names: list[int], version: int) -> None:
    with store.transaction():
        for f in names:
            store.add_file(
                f"/library/folder{f % 20}/file{f}.txt",
                size=version,
                mtime=float(version),
                content_hash=f"{f}-{version}",
                kind="document",
                media_time=None,
                items=[NewItem("text", text=f"file {f} a"), NewItem("text", text=f"file {f} b")],
                vectors=corpus.vectors(2),
            )


def remove_files(store: LibraryStore, names: list[int]) -> None:
    with store.transaction():
        for f in names:
            row = store.get_file(f"/library/folder{f % 20}/file{f}.txt")
            if row is not None:
                store.remove_file(row.id)


def fresh_size(store: LibraryStore, folder: Path) -> int:
    """The size of a graph file built afresh from the store's vectors now."""
    path = folder / "fresh.hnsw"
    path.unlink(missing_ok=True)
    fresh = LiveIndex(store, path, min_items=1, space=SPACE)
    fresh.open(build="now")
    fresh.save_if_changed(prune=False)
    fresh.close(save=False)
    return path.stat().st_size


def churn_rounds(args, folder: Path, compaction: bool) -> tuple[list[dict], LibraryStore, LiveIndex, Corpus, list[int]]:
    """Index the library, then change and re-index it ``args.rounds`` times: a row per round, the library's files."""
    live_module.COMPACT_DEAD_FRACTION = COMPACT_DEAD_FRACTION if compaction else float("inf")
    store = LibraryStore(folder / "library.sqlite3")
    store.ensure_model("seeded-random", "clustered", args.dim, space=SPACE)
    corpus = Corpus(args.dim, args.seed)
    order = np.random.default_rng(args.seed + 1)
    present = list(range(args.files))
    next_name = args.files
    write_files(store, corpus, present, 1)
    live = LiveIndex(store, folder / "vectors.hnsw", min_items=1, space=SPACE)
    live.open(build="now")
    live.save_if_changed()
    rows = []
    for round_ in range(args.rounds + 1):
        if round_:
            changed = order.choice(present, int(args.churn * len(present)), replace=False).tolist()
            write_files(store, corpus, changed, round_ + 1)
            gone = order.choice(present, max(1, len(present) // 100), replace=False).tolist()
            remove_files(store, gone)
            present = [f for f in present if f not in set(gone)]
            added = list(range(next_name, next_name + len(gone)))
            next_name += len(gone)
            write_files(store, corpus, added, round_ + 1)
            present += added
            t = time.perf_counter()
            live.sync(link="inline")
            live.save_if_changed()  # waits for a compaction the sync started, or compacts first
            seconds = time.perf_counter() - t
        else:
            seconds = 0.0
        state = live.describe()
        size = fresh_size(store, folder) if compaction else None  # the same vectors either way: built once
        rows.append(
            {
                "round": round_,
                "live": state["live"],
                "dead": state["dead"],
                "file_bytes": state["file_bytes"],
                "fresh_bytes": size,
                "ratio": state["file_bytes"] / size if size else None,
                "sync_and_save_s": seconds,
            }
        )
    return rows, store, live, corpus, present


def exact_top(store: LibraryStore, queries: np.ndarray) -> list[set[int]]:
    parts = list(store.iter_vectors(8192, space=SPACE))
    ids = np.concatenate([i for i, _ in parts])
    vecs = np.concatenate([v for _, v in parts])
    sims = queries @ vecs.T
    return [set(ids[np.argsort(-row)[:K]].tolist()) for row in sims]


def timed_searches(live: LiveIndex, queries: np.ndarray, truth: list[set[int]], while_=None) -> dict:
    """Search every query once (or cycling, for as long as ``while_()`` holds); latency and recall@10."""
    latencies, found, n = [], 0, 0
    while True:
        for q, want in zip(queries, truth, strict=True):
            if while_ is not None and not while_():
                break
            t = time.perf_counter()
            hits, _ = live.search(q, K)
            latencies.append(time.perf_counter() - t)
            found += len({h[0] for h in hits} & want)
            n += 1
        else:
            if while_ is not None and while_():
                continue
        break
    ms = sorted(x * 1e3 for x in latencies)
    return {
        "searches": n,
        "p50_ms": statistics.median(ms) if ms else None,
        "p95_ms": ms[int(0.95 * (len(ms) - 1))] if ms else None,
        "max_ms": ms[-1] if ms else None,
        "recall_at_10": found / (K * n) if n else None,
    }


def latency_during_compaction(args, store: LibraryStore, live: LiveIndex, corpus: Corpus, present: list[int]) -> dict:
    live_module.COMPACT_DEAD_FRACTION = float("inf")
    write_files(store, corpus, present[: int(0.4 * len(present))], 99)  # past the threshold, not compacted yet
    live.sync(link="inline")
    live_module.COMPACT_DEAD_FRACTION = COMPACT_DEAD_FRACTION
    rng = np.random.default_rng(args.seed + 2)
    queries = corpus.vectors(args.queries)
    truth = exact_top(store, queries)
    before = live.describe()
    timed_searches(live, queries[:20], truth[:20])  # warm-up: the first searches touch cold arrays
    idle = timed_searches(live, queries, truth)

    write_files(store, corpus, [present[int(rng.integers(len(present)))]], 100)  # the change that finds it
    t = time.perf_counter()
    live.sync()  # starts the background compaction
    if not live.describe()["compacting"]:
        raise SystemExit("the sync did not start a compaction")
    during = timed_searches(live, queries, truth, while_=lambda: live.describe()["compacting"])
    live.wait_compaction()
    seconds = time.perf_counter() - t
    truth = exact_top(store, queries)
    after = timed_searches(live, queries, truth)
    return {
        "nodes_before": {"live": before["live"], "dead": before["dead"]},
        "nodes_after": {"live": live.describe()["live"], "dead": live.describe()["dead"]},
        "compaction_s": seconds,
        "no_compaction": idle,
        "during_compaction": during,
        "after_compaction": after,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="files of two passages each (default 2000)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--churn", type=float, default=0.1, help="share of the files changed per round")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "upkeep.json")
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shoebox-upkeep-") as tmp:
        (Path(tmp) / "off").mkdir()
        (Path(tmp) / "on").mkdir()
        without, store, live, _, _ = churn_rounds(args, Path(tmp) / "off", compaction=False)
        live.close(save=False)
        store.close()
        with_, store, live, corpus, present = churn_rounds(args, Path(tmp) / "on", compaction=True)
        latency = latency_during_compaction(args, store, live, corpus, present)
        live.close(save=False)
        store.close()
    live_module.COMPACT_DEAD_FRACTION = COMPACT_DEAD_FRACTION

    print(
        f"{args.files} files x 2 passages, seeded random {args.dim}-d vectors (clustered, not real embeddings); "
        f"{args.churn:.0%} of the files changed and 1% replaced per round; "
        f"compaction at {COMPACT_DEAD_FRACTION:.0%} dead"
    )
    print(f"\n{'':>5}  {'with compaction':^48}  {'without':^26}")
    print(
        f"{'round':>5}  {'live':>6} {'dead':>6} {'file kB':>9} {'fresh kB':>9} {'ratio':>6} {'sync+save s':>11}"
        f"  {'dead':>6} {'file kB':>9} {'ratio':>6}"
    )
    for a, b in zip(with_, without, strict=True):
        b["fresh_bytes"] = a["fresh_bytes"]
        b["ratio"] = b["file_bytes"] / a["fresh_bytes"]
        print(
            f"{a['round']:>5}  {a['live']:>6} {a['dead']:>6} {a['file_bytes'] / 1e3:>9.0f}"
            f" {a['fresh_bytes'] / 1e3:>9.0f} {a['ratio']:>6.2f} {a['sync_and_save_s']:>11.2f}"
            f"  {b['dead']:>6} {b['file_bytes'] / 1e3:>9.0f} {b['ratio']:>6.2f}"
        )
    print(
        f"\nsearch (k={K}, {args.queries} queries) on a graph of {latency['nodes_before']['live']} live + "
        f"{latency['nodes_before']['dead']} dead nodes; the background compaction took {latency['compaction_s']:.1f} s"
    )
    print(f"{'':<22}{'searches':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'recall@10':>11}")
    for name in ("no_compaction", "during_compaction", "after_compaction"):
        r = latency[name]
        print(
            f"{name.replace('_', ' '):<22}{r['searches']:>9}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}"
            f"{r['max_ms']:>9.2f}{r['recall_at_10']:>11.3f}"
        )

    result = {
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()},
        "data": f"seeded random {args.dim}-d vectors clustered around 64 centres (not real embeddings)",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "compact_dead_fraction": COMPACT_DEAD_FRACTION,
        "rounds_with_compaction": with_,
        "rounds_without_compaction": without,
        "search": latency,
        "wall_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
