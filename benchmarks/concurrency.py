"""Searches during re-indexing: how many run, how many fail, and what indexing costs them.

A folder of photos and notes (``tests/stress.py``'s :class:`Churn`) changes a
little in each round (new pixels, new text, a note deleted, one created, one
renamed) and is indexed again, while searches run in a loop and check what
holds in every committed state: "more like this" finds every photo, the
rewritten note is found by its constant word, each note by its own word within
a folder filter.  A search that raises or misses one of those is a failure.

Three runs:

* **reference**: searches alone, nobody writing, for ``--seconds``;
* **thread**: the app's case, one ``Library`` with its indexing worker re-indexing round after
  round in a thread, for ``--seconds``;
* **process**: the app searching while ``shoebox index`` runs ``--process-rounds`` times in
  another process (each round there also opens the library and its models, as the command does).

Reported per run: searches, failures, searches per second and that rate over
the reference's (measured in the same run).  The models are the ``test-tiny``
ones (the real CLIP and BERT architectures with seeded random weights): the
figures measure the library's concurrency, not the models' speed.

    .venv/bin/python benchmarks/concurrency.py [--seconds 20] [--process-rounds 10] [--photos 24] [--out FILE]

Prints a table and writes ``benchmarks/results/concurrency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.library import Library
from engine.query import Query
from engine.settings import load_settings
from tests.conftest import TINY_ENV, tiny_env
from tests.stress import Churn, Tally, search_until, search_while_another_process_reindexes


def _library(home: Path) -> Library:
    # As the app opens it: the graph built in the background; a small graph threshold so
    # that searches go through the HNSW index, not only the exact matrix.
    return Library(load_settings(home=home, env=dict(TINY_ENV)), index_build="background", graph_min_items=1)


def _stop_after(seconds: float, done: threading.Event) -> threading.Timer:
    timer = threading.Timer(seconds, done.set)
    timer.start()
    return timer


def run_reference(home: Path, churn: Churn, seconds: float) -> Tally:
    with _library(home) as library:
        library.search(Query("warm up", k=1))
        done = threading.Event()
        timer = _stop_after(seconds, done)
        tally = search_until(library, churn, done)
        timer.cancel()
    return tally


def run_thread(home: Path, churn: Churn, seconds: float) -> tuple[Tally, int]:
    with _library(home) as library:
        library.search(Query("warm up", k=1))
        done = threading.Event()
        finished = [0]

        def reindex() -> None:
            try:
                while not done.is_set():
                    churn.step()
                    library.index([churn.root])
                    finished[0] += 1
            finally:
                done.set()

        writer = threading.Thread(target=reindex)
        timer = _stop_after(seconds, done)
        writer.start()
        tally = search_until(library, churn, done)
        writer.join()
        timer.cancel()
    return tally, finished[0]


def run_process(home: Path, churn: Churn, rounds: int) -> tuple[Tally, int, str]:
    with _library(home) as library:
        library.search(Query("warm up", k=1))
        tally, status, output = search_while_another_process_reindexes(library, churn, tiny_env(home), rounds)
    return tally, rounds if status == 0 else -1, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the reference and thread runs")
    parser.add_argument("--process-rounds", type=int, default=10, help="`shoebox index` runs in the other process")
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "concurrency.json")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shoebox-concurrency-") as tmp:
        tmp_path = Path(tmp)
        churn = Churn(tmp_path / "folder", photos=args.photos)
        home = tmp_path / "lib"
        with _library(home) as library:
            library.index([churn.root])
        print(f"reference: searching for {args.seconds:.0f} s with nobody writing", file=sys.stderr)
        reference = run_reference(home, churn, args.seconds)
        rows.append({"run": "reference", "rounds": 0, "tally": reference})
        print("thread: re-indexing from a thread of the same process", file=sys.stderr)
        tally, done = run_thread(home, churn, args.seconds)
        rows.append({"run": "thread", "rounds": done, "tally": tally})
        print(f"process: `shoebox index` {args.process_rounds} times in another process", file=sys.stderr)
        # The other process makes its own Churn at round 0: continue from a fresh folder state.
        churn = Churn(tmp_path / "folder2", photos=args.photos)
        home2 = tmp_path / "lib2"
        subprocess.run(
            [sys.executable, "-m", "engine", "index", str(churn.root)],
            env=tiny_env(home2),
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        tally, done, output = run_process(home2, churn, args.process_rounds)
        if done < 0:
            print(output, file=sys.stderr)
        rows.append({"run": "process", "rounds": done, "tally": tally})

    table = []
    print(f"\n{'run':<10} {'rounds':>6} {'searches':>9} {'failed':>7} {'per s':>8} {'vs reference':>13}")
    for row in rows:
        seen: Tally = row["tally"]
        ratio = seen.per_second / reference.per_second if reference.per_second else 0.0
        print(
            f"{row['run']:<10} {row['rounds']:>6} {seen.searches:>9} {len(seen.failures):>7} "
            f"{seen.per_second:>8.1f} {ratio:>12.2f}x"
        )
        table.append(
            {
                "run": row["run"],
                "rounds": row["rounds"],
                "searches": seen.searches,
                "failed": len(seen.failures),
                "seconds": round(seen.seconds, 2),
                "searches_per_second": round(seen.per_second, 2),
                "vs_reference": round(ratio, 3),
                "failures": seen.failures[:10],
            }
        )
    result = {
        "benchmark": "concurrency",
        "models": "test-tiny (seeded random weights)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {"seconds": args.seconds, "process_rounds": args.process_rounds, "photos": args.photos},
        "runs": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 1 if any(r["failed"] for r in table) else 0


if __name__ == "__main__":
    sys.exit(main())
