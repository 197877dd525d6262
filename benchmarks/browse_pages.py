"""How long one page of browsing takes on a large library (the store and the engine; no window).

    .venv/bin/python benchmarks/browse_pages.py --files 10000 --page 200

Builds a library of ``--files`` files in a temporary folder (four photos to
each document, over ten years; a tenth tagged), then times the first page, a
page deep in the library (reached by following the pages), a page of
documents only, of a tag, and the month counts.  Prints the median of
``--runs`` reads of each, in milliseconds.

Then, on the GUI side (offscreen Qt, or the display there is), the real
:class:`desktop_app.results.ResultsView` browses: the store's photos are
added a page at a time, as scrolling asks for them, while a 5 ms heartbeat
timer runs; the longest gap between beats is how long the window stood still.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from engine.query import Filters
from engine.search import browse
from engine.store import LibraryStore, NewItem


def build(path: Path, files: int) -> LibraryStore:
    store = LibraryStore(path)
    start = datetime(2016, 1, 1).timestamp()
    span = datetime(2026, 1, 1).timestamp() - start
    with store.transaction():
        for n in range(files):
            photo = n % 5 != 0
            store.add_file(
                f"/library/{'photos' if photo else 'notes'}/{n // 500}/file_{n:06}.{'jpg' if photo else 'txt'}",
                size=1000,
                mtime=1.0,
                content_hash=f"h{n}",
                kind="image" if photo else "document",
                media_time=start + span * ((n * 7919) % files) / files,
                items=[NewItem("image")] if photo else [NewItem("text", text=f"Passage {n} of a note.")],
            )
    tagged = [r[0] for r in store._query("SELECT id FROM files WHERE id % 10 = 0")]
    store.add_tag("holiday", tagged)
    return store


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def window_pauses(store: LibraryStore, page: int) -> tuple[int, float]:
    """(photos shown, longest pause of the GUI thread in ms) while every photo is added a page at a time."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from desktop_app.controller import AppController
    from desktop_app.results import ResultsView, ThumbnailLoader

    app = QApplication.instance() or QApplication([])
    loader = ThumbnailLoader(AppController(None, None))
    loader.close()  # no files behind these rows: placeholders only
    view = ResultsView(loader)
    view.resize(1000, 760)
    view.show()
    view.start_browsing(True, False, "Your library")
    view.set_months(store.browse_months(Filters(kinds=("image",))))
    pages = []
    after = None
    while True:
        result = browse(store, Filters(kinds=("image",)), after, page)
        pages.append(result)
        after = result.next
        if after is None:
            break
    beats = [time.perf_counter()]
    gaps: list[float] = []

    def beat() -> None:
        now = time.perf_counter()
        gaps.append(now - beats[-1])
        beats.append(now)

    heartbeat = QTimer(interval=5)
    heartbeat.timeout.connect(beat)
    heartbeat.start()

    def next_page() -> None:
        result = pages.pop(0)
        view.add_page("photos", result.results, bool(pages))
        if pages:
            QTimer.singleShot(100, next_page)
        else:
            QTimer.singleShot(1500, app.quit)

    QTimer.singleShot(0, next_page)
    app.exec()
    heartbeat.stop()
    return len(view.photo_model.results()), max(gaps) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        store = build(Path(folder) / "library.sqlite3", args.files)
        print(f"built {args.files} files in {time.perf_counter() - began:.1f} s")
        everything = Filters()
        after = None
        for _ in range(args.files // args.page // 2):  # halfway through, page by page
            after = browse(store, everything, after, args.page).next
        cases = {
            "first page (everything)": lambda: browse(store, everything, None, args.page),
            "a page halfway down": lambda: browse(store, everything, after, args.page),
            "first page of photos": lambda: browse(store, Filters(kinds=("image",)), None, args.page),
            "first page of documents": lambda: browse(
                store, Filters(kinds=("document", "audio", "video")), None, args.page
            ),
            "first page of a tag": lambda: browse(store, Filters(tags=("holiday",)), None, args.page),
            "months of the photos": lambda: store.browse_months(Filters(kinds=("image",))),
        }
        for name, fn in cases.items():
            print(f"{name:28} {timed(fn, args.runs):7.1f} ms")
        shown, pause = window_pauses(store, args.page)
        print(f"window: {shown} photos added {args.page} at a time, longest pause {pause:.0f} ms")
        store.close()


if __name__ == "__main__":
    main()
