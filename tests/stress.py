"""A folder that changes while it is searched: the harness of the concurrency tests and benchmark.

:class:`Churn` keeps a folder of photos and notes and changes it a little each
round, the way a person's folder changes between indexing runs: one photo gets
new pixels, one note new text, one note is deleted and another created, one
note is renamed.  Through all of that some things hold in every committed
state of the library, and :func:`check_search` asks for them:

* every photo is found by "more like this" from the anchor photo when the
  search may return all of them (photos are only ever replaced, never removed);
* the note that is rewritten each round is always found by its constant word;
* each note is found by its own word, within a folder filter.

A search that raises, or misses one of those, is a failure.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.query import Filters, Query
from tests.helpers import make_photo, make_text

CONSTANT_WORD = "pelican"  # in the note rewritten every round
NOTE_WORDS = ["harbour", "lantern", "meadow", "orchard", "quarry", "saddle", "timber", "violet"]


class Churn:
    """A folder of ``photos`` photos and a few notes that changes a little each :meth:`step`."""

    def __init__(self, root: Path, photos: int = 8, *, create: bool = True):
        self.root = root
        self.photos = [root / "photos" / f"photo-{n:02d}.png" for n in range(photos)]
        self.notes = root / "notes"
        self.round = 0
        if not create:  # another process made it (and has not changed it yet)
            return
        for n, path in enumerate(self.photos):
            make_photo(path, seed=n)
        for n, word in enumerate(NOTE_WORDS):
            make_text(self.notes / f"{word}.txt", f"A note about the {word}, number {n}.")
        self._write_changing()
        make_text(self.notes / "gone-0.txt", "A note that is deleted in the next round.")

    @property
    def anchor(self) -> Path:
        return self.photos[0]

    def _write_changing(self) -> None:
        make_text(
            self.notes / "changing.txt", f"The {CONSTANT_WORD} note, version {self.round}: " + "words " * self.round
        )

    def step(self) -> None:
        """Change the folder: new pixels, new text, one note gone and one new, one renamed."""
        self.round += 1
        n = self.round
        changed = self.photos[1 + n % (len(self.photos) - 1)]
        make_photo(changed, seed=1000 + n)
        self._write_changing()
        (self.notes / f"gone-{n - 1}.txt").unlink()
        make_text(self.notes / f"gone-{n}.txt", f"A note that is deleted in round {n + 1}.")
        word = NOTE_WORDS[n % len(NOTE_WORDS)]
        here = next(self.notes.glob(f"{word}*.txt"))
        here.rename(self.notes / f"{word}-{n}.txt")


@dataclass
class Tally:
    """What a search loop saw."""

    searches: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.searches / self.seconds if self.seconds else 0.0


def check_search(library: Any, churn: Churn, n: int) -> str | None:
    """Run the ``n``-th search of the cycle; return what went wrong, or None."""
    which = n % 3
    try:
        if which == 0:
            others = {str(p) for p in churn.photos if p != churn.anchor}
            response = library.search(Query(like=str(churn.anchor), k=len(churn.photos) + 5, min_relevance=0.0))
            got = {r.path for r in response.results}
            if got != others:
                return f"like-search missed {sorted(others - got)} / returned extra {sorted(got - others)}"
        elif which == 1:
            response = library.search(Query(CONSTANT_WORD, k=5, min_relevance=0.0, understand_dates=False))
            if not any(r.path.endswith("changing.txt") for r in response.results):
                return f"{CONSTANT_WORD!r} did not find changing.txt: {[r.path for r in response.results]}"
        else:
            word = NOTE_WORDS[n // 3 % len(NOTE_WORDS)]
            query = Query(
                word,
                k=5,
                min_relevance=0.0,
                understand_dates=False,
                filters=Filters(kinds=("document",), folder=str(churn.notes)),
            )
            response = library.search(query)
            if not any(Path(r.path).name.startswith(word) for r in response.results):
                return f"{word!r} did not find its note: {[r.path for r in response.results]}"
    except Exception as exc:  # the point of the harness: any exception is a failure to report
        return f"{type(exc).__name__}: {exc}"
    return None


def search_until(library: Any, churn: Churn, done: threading.Event, *, at_least: int = 0) -> Tally:
    """Search in a loop until ``done`` is set (and at least ``at_least`` searches ran)."""
    tally = Tally()
    started = time.perf_counter()
    while not done.is_set() or tally.searches < at_least:
        problem = check_search(library, churn, tally.searches)
        tally.searches += 1
        if problem is not None:
            tally.failures.append(problem)
    tally.seconds = time.perf_counter() - started
    return tally


def search_while_another_process_reindexes(
    library: Any, churn: Churn, env: dict[str, str], rounds: int, *, at_least: int = 0
) -> tuple[Tally, int, str]:
    """Search ``library`` while another process runs ``shoebox index`` on ``churn``'s folder ``rounds`` times.

    ``churn`` must be unchanged since it was made (the other process changes it from there).
    Returns what the searches saw, the other process's exit status and the end of its output.
    """
    import subprocess

    root = Path(__file__).resolve().parents[1]
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.stress", str(churn.root), str(rounds)],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    done = threading.Event()
    output: list[str] = []

    def wait() -> None:
        output.append(writer.communicate()[0])
        done.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        tally = search_until(library, churn, done, at_least=at_least)
    finally:
        waiter.join()
    return tally, writer.returncode, output[0][-3000:]


def reindex_rounds(root: Path, rounds: int) -> None:
    """Change ``root`` (made by :class:`Churn`, unchanged since) and run ``shoebox index`` on it, ``rounds`` times.

    The other process of the two-process test: the same command a person
    runs, called in one interpreter so that the rounds are not spent starting Python.
    """
    from engine.cli import main

    churn = Churn(root, create=False)
    for _ in range(rounds):
        churn.step()
        status = main(["index", str(root)])
        if status != 0:
            raise SystemExit(f"shoebox index exited with {status} in round {churn.round}")


if __name__ == "__main__":
    reindex_rounds(Path(sys.argv[1]), int(sys.argv[2]))
