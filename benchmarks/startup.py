"""Start-up time of the desktop app: from process start to a window on screen that answers events.

Each run starts a fresh ``python -c`` process that builds the QApplication
and the :class:`desktop_app.main_window.MainWindow` with the ``shoebox-app``
entry point's own ``create_window()`` (which ends with ``show()``), then prints
a timestamp from a zero-delay timer: the
first turn of the event loop after ``show()``, when the window paints and
answers input.  The time is measured from just before the parent starts the
process, so it includes the interpreter's own start.  The library opens and
the models load in the background meanwhile (they are still loading when the
time is taken); the process then exits without waiting for them.

Also reported per run: the time to import the app and to ``show()``, the time until the
library's counts are on screen, and which heavy modules (torch, open_clip,
whisper, numba) had been imported when ``show()`` returned: there must be
none.  A bare ``python -c pass`` is timed the same way as a baseline.

    .venv/bin/python benchmarks/startup.py [--runs 7] [--home LIBRARY] [--type QUERY] [--out FILE]

With ``--type QUERY`` each run also types QUERY into the search field and presses
Enter as soon as the window answers, and reports how long the first results took
(target under 1 s), whether the models were still loading then (the first results
come from words and names), and when the results with meaning replaced them.
Give it a library (``--home``, with the model settings in the environment) whose
words QUERY matches, e.g. one ``benchmarks/search_process.py --keep`` wrote.

Without ``--home`` an empty library in a temporary folder is used, with the
test-tiny models (no weights need to be present).  Needs a display, or
``QT_QPA_PLATFORM=offscreen``, or ``xvfb-run``.  Target: under 1.5 s.
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

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.5
TYPED_TARGET_S = 1.0  # from typing to the first (keyword) results, while the models load
HEAVY = ("torch", "open_clip", "whisper", "numba")

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
marks = {{"started": time.time()}}
from PySide6.QtCore import QTimer
import desktop_app.__main__ as entry
marks["imported"] = time.time()
app, window = entry.create_window(["shoebox-app"])  # exactly what shoebox-app does before app.exec()
marks["shown"] = time.time()
heavy = sorted(m for m in {heavy!r} if m in sys.modules)

typed = {query!r}
extra = {{}}

def report(event):
    marks[event] = time.time()
    done = ("timeout", "meaning_results") if typed else ("library_ready", "timeout")
    if event in done:
        print(json.dumps({{"marks": marks, "heavy": heavy, **extra}}), flush=True)
        # Leave without waiting for the models to finish loading: only start-up is measured.
        os._exit(0)

def type_query():
    # What a person does: type into the search field and press Enter, at once.
    window.search_field.setText(typed)
    marks["typed"] = time.time()
    window.run_search()

def shown(count):
    if "typed" not in marks or count <= 0:
        return
    loading = window.controller.models_loading
    if "first_results" not in marks:
        extra["first_results_count"] = count
        extra["models_loading_at_first_results"] = loading
        report("first_results")
    if not loading and "first_results" in marks:
        report("meaning_results")

QTimer.singleShot(0, lambda: report("responsive"))
window.library_ready.connect(lambda: report("library_ready"))
if typed:
    QTimer.singleShot(0, type_query)
    window.results_shown.connect(shown)
QTimer.singleShot(60000 if typed else 20000, lambda: report("timeout"))
app.exec()
"""


def run_once(env: dict[str, str], query: str = "") -> dict:
    code = CHILD.format(root=str(ROOT), heavy=HEAVY, query=query)
    before = time.time()
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"the app did not start:\n{out.stderr[-3000:]}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    marks = report["marks"]
    typed = marks.get("typed")
    timing = {}
    if query:
        timing = {
            "typed_s": typed - before if typed else None,
            "first_results_after_typing_s": marks["first_results"] - typed
            if typed and "first_results" in marks
            else None,
            "first_results_count": report.get("first_results_count"),
            "models_loading_at_first_results": report.get("models_loading_at_first_results"),
            "meaning_results_after_typing_s": (
                marks["meaning_results"] - typed if typed and "meaning_results" in marks else None
            ),
        }
    return {
        **timing,
        "interpreter_s": marks["started"] - before,
        "imports_s": marks["imported"] - before,
        "shown_s": marks["shown"] - before,
        "responsive_s": marks["responsive"] - before,
        "library_ready_s": marks["library_ready"] - before if "library_ready" in marks else None,
        "heavy_modules_at_show": report["heavy"],
    }


def baseline(env: dict[str, str]) -> float:
    before = time.time()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.time() - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--home", help="an existing library to open (default: an empty one in a temporary folder)")
    parser.add_argument(
        "--type",
        default="",
        metavar="QUERY",
        help="type QUERY and press Enter as soon as the window answers, and time its first results "
        "(the models still loading) and the results with meaning; use with --home",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup.json")
    args = parser.parse_args()

    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    temporary = None
    if args.home:
        env["SHOEBOX_HOME"] = str(Path(args.home).resolve())
    else:
        temporary = tempfile.TemporaryDirectory(prefix="shoebox-startup-")
        env["SHOEBOX_HOME"] = temporary.name
        env.update(
            {"SHOEBOX_CLIP_MODEL": "test-tiny", "SHOEBOX_CLIP_PRETRAINED": "", "SHOEBOX_WHISPER_MODEL": "test-tiny"}
        )

    runs = [run_once(env, args.type) for _ in range(args.runs)]
    bare = statistics.median(baseline(env) for _ in range(3))
    if temporary is not None:
        temporary.cleanup()

    columns = ("interpreter_s", "imports_s", "shown_s", "responsive_s", "library_ready_s")
    print(f"{'run':>4}  " + "  ".join(f"{c[:-2]:>13}" for c in columns) + "  heavy modules at show")
    for n, run in enumerate(runs, 1):
        cells = "  ".join(f"{run[c]:13.3f}" if run[c] is not None else f"{'-':>13}" for c in columns)
        print(f"{n:>4}  {cells}  {', '.join(run['heavy_modules_at_show']) or 'none'}")
    responsive = [r["responsive_s"] for r in runs]
    median = statistics.median(responsive)
    heavy = sorted({m for r in runs for m in r["heavy_modules_at_show"]})
    print(
        f"\nwindow responsive: median {median:.3f} s, min {min(responsive):.3f} s, max {max(responsive):.3f} s "
        f"(target < {TARGET_S} s: {'met' if median < TARGET_S else 'NOT met'}); bare `python -c pass`: {bare:.3f} s"
    )
    print(f"heavy modules imported before the window showed: {', '.join(heavy) or 'none'}")
    typing: dict = {}
    if args.type:
        first = [r["first_results_after_typing_s"] for r in runs]
        loading = [r["models_loading_at_first_results"] for r in runs]
        meaning = [r["meaning_results_after_typing_s"] for r in runs if r["meaning_results_after_typing_s"] is not None]
        answered = [f for f in first if f is not None]
        typing = {
            "query": args.type,
            "target_first_results_s": TYPED_TARGET_S,
            "median_first_results_s": statistics.median(answered) if answered else None,
            "max_first_results_s": max(answered) if answered else None,
            "runs_answered": len(answered),
            "runs_models_still_loading": sum(1 for v in loading if v),
            "median_meaning_results_s": statistics.median(meaning) if meaning else None,
        }
        print(
            f"typed {args.type!r} when the window answered: first results after a median "
            f"{typing['median_first_results_s'] or float('nan'):.3f} s (max {typing['max_first_results_s'] or float('nan'):.3f} s; "
            f"target < {TYPED_TARGET_S} s), the models still loading in {typing['runs_models_still_loading']} of "
            f"{len(runs)} runs; results with meaning after a median {typing['median_meaning_results_s'] or float('nan'):.1f} s"
        )

    from PySide6 import __version__ as pyside_version

    result = {
        "machine": {
            "cpu": platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "pyside6": pyside_version,
            "platform": os.environ.get("QT_QPA_PLATFORM") or ("xcb" if os.environ.get("DISPLAY") else "default"),
        },
        "library": "given" if args.home else "empty, test-tiny models",
        "target_s": TARGET_S,
        "median_responsive_s": median,
        "min_responsive_s": min(responsive),
        "max_responsive_s": max(responsive),
        "bare_python_s": bare,
        "heavy_modules_at_show": heavy,
        "met": median < TARGET_S and not heavy,
        "typing": typing,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
