"""FolderWatcher on real folders in tmp_path, with short timings: batches, ignored files, roots that come back."""

from __future__ import annotations

import errno
import shutil
import threading
import time

import pytest

from engine.watch import FolderWatcher


class Batches:
    """Collects the watcher's batches (from its thread) and waits for them."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.warnings: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, paths: list[str]) -> None:
        with self._cond:
            self.batches.append(paths)
            self._cond.notify_all()

    def warn(self, message: str) -> None:
        with self._cond:
            self.warnings.append(message)
            self._cond.notify_all()

    def wait(self, predicate, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def seen(self) -> set[str]:
        with self._cond:
            return {p for batch in self.batches for p in batch}


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "files"
    (folder / "notes").mkdir(parents=True)
    return folder


@pytest.fixture
def watch(root):
    started: list[FolderWatcher] = []

    def make(**kw):
        batches = Batches()
        options = {"quiet_seconds": 0.3, "max_delay_seconds": 2.0, "poll_seconds": 0.1} | kw
        watcher = FolderWatcher(batches, [root], on_warning=batches.warn, **options)
        watcher.start()
        started.append(watcher)
        assert wait_for(lambda: watcher.watched() == [str(root)]), "the root was never watched"
        return watcher, batches

    yield make
    for watcher in started:
        watcher.stop()
        assert not watcher.running


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_burst_of_changes_is_one_batch(watch, root):
    _watcher, batches = watch(quiet_seconds=0.5)
    written = [root / "notes" / f"note {n}.txt" for n in range(20)]
    for path in written:
        path.write_text("a note", encoding="utf-8")
    assert batches.wait(lambda b: b.batches)
    time.sleep(1.0)  # longer than the quiet period: a second batch would be out by now
    assert len(batches.batches) == 1
    assert batches.batches[0] == sorted(str(p) for p in written)


def test_constant_changes_are_reported_after_the_longest_delay(watch, root):
    _watcher, batches = watch(quiet_seconds=0.5, max_delay_seconds=1.0)
    started = time.monotonic()
    stop = threading.Event()

    def churn():
        n = 0
        while not stop.is_set():
            (root / "notes" / f"log {n % 5}.txt").write_text(str(n), encoding="utf-8")
            n += 1
            time.sleep(0.05)  # never quiet for 0.5 s

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        assert batches.wait(lambda b: b.batches, timeout=5.0)
        waited = time.monotonic() - started
    finally:
        stop.set()
        writer.join()
    assert waited < 3.0, f"the first batch took {waited:.1f} s while the files kept changing"


def test_hidden_unsupported_and_ignored_files_are_left_out(tmp_path, root):
    library_home = root / "library"
    library_home.mkdir()
    batches = Batches()
    watcher = FolderWatcher(batches, [root], ignore=[library_home], quiet_seconds=0.2, poll_seconds=0.1)
    watcher.start()
    try:
        assert wait_for(lambda: watcher.watched() == [str(root)])
        (root / "notes" / ".draft.txt").write_text("hidden", encoding="utf-8")
        (root / ".cache").mkdir()
        (root / ".cache" / "page.txt").write_text("hidden folder", encoding="utf-8")
        (root / "notes" / "budget.xlsx.tmp").write_text("a kind Shoebox does not read", encoding="utf-8")
        (library_home / "thumbnail.jpg").write_bytes(b"the library's own file")
        (root / "outside.txt").write_text("x", encoding="utf-8")  # a file that counts ends the wait
        assert batches.wait(lambda b: b.batches)
        time.sleep(0.4)
        assert batches.seen() == {str(root / "outside.txt")}
    finally:
        watcher.stop()


def test_folder_events_are_reported_for_moves_and_deletions(watch, root):
    _watcher, batches = watch()
    (root / "trip").mkdir()
    (root / "trip" / "beach.jpg").write_bytes(b"jpeg")
    assert batches.wait(lambda b: str(root / "trip" / "beach.jpg") in b.seen())
    (root / "trip").rename(root / "holiday")
    assert batches.wait(lambda b: {str(root / "trip"), str(root / "holiday")} <= b.seen())
    moved = len(batches.batches)
    shutil.rmtree(root / "holiday")
    assert batches.wait(lambda b: any(str(root / "holiday") in batch for batch in b.batches[moved:]))


def test_a_root_deleted_and_made_again_is_watched_again(watch, root):
    watcher, batches = watch()
    shutil.rmtree(root)
    assert wait_for(lambda: watcher.watched() == [])
    batches.wait(lambda b: b.batches, timeout=1.0)  # the deletion's own batch, if any
    before = len(batches.batches)
    (root / "notes").mkdir(parents=True)
    # Back: the root is watched again and reported whole, to be rescanned.
    assert batches.wait(lambda b: any(batch == [str(root)] for batch in b.batches[before:]))
    assert watcher.watched() == [str(root)]
    (root / "notes" / "new.txt").write_text("a note", encoding="utf-8")
    assert batches.wait(lambda b: str(root / "notes" / "new.txt") in b.seen())


def test_a_root_replaced_between_two_looks_is_watched_again(watch, root, tmp_path):
    _watcher, batches = watch(poll_seconds=0.5)
    # Gone and back faster than the watcher looks: the new folder is another one all the same.
    root.rename(tmp_path / "old")
    (root / "notes").mkdir(parents=True)
    assert batches.wait(lambda b: [str(root)] in b.batches)
    (root / "notes" / "new.txt").write_text("a note", encoding="utf-8")
    assert batches.wait(lambda b: str(root / "notes" / "new.txt") in b.seen())


def test_a_root_that_appears_later_is_watched_and_reported(tmp_path):
    later = tmp_path / "drive"
    batches = Batches()
    watcher = FolderWatcher(batches, [later], quiet_seconds=0.2, poll_seconds=0.1)
    watcher.start()
    try:
        time.sleep(0.3)
        assert watcher.watched() == [] and batches.batches == []
        later.mkdir()
        assert batches.wait(lambda b: [str(later)] in b.batches)
        assert watcher.watched() == [str(later)]
    finally:
        watcher.stop()


def test_set_roots_watches_new_folders_without_reporting_them(watch, root, tmp_path):
    watcher, batches = watch()
    other = tmp_path / "more"
    other.mkdir()
    watcher.set_roots([root, other])
    assert wait_for(lambda: watcher.watched() == sorted([str(root), str(other)]))
    (other / "a.txt").write_text("a note", encoding="utf-8")
    assert batches.wait(lambda b: b.batches)
    assert batches.seen() == {str(other / "a.txt")}
    watcher.set_roots([other])
    assert wait_for(lambda: watcher.watched() == [str(other)])
    (root / "notes" / "b.txt").write_text("not watched any more", encoding="utf-8")
    time.sleep(0.5)
    assert str(root / "notes" / "b.txt") not in batches.seen()


class _LimitedObserver:
    """A watchdog observer whose every watch fails as Linux's does past fs.inotify.max_user_watches."""

    daemon = True
    emitters: tuple = ()

    def start(self):
        pass

    def stop(self):
        pass

    def join(self, timeout=None):
        pass

    def schedule(self, handler, path, recursive=False):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    def unschedule(self, watch):
        raise AssertionError("nothing was scheduled")


def test_the_watch_limit_is_a_warning_and_the_root_is_rescanned_periodically(root):
    batches = Batches()
    watcher = FolderWatcher(
        batches,
        [root],
        on_warning=batches.warn,
        quiet_seconds=0.05,
        poll_seconds=0.05,
        fallback_seconds=0.3,
        observer_factory=_LimitedObserver,
    )
    watcher.start()
    try:
        assert batches.wait(lambda b: len(b.batches) >= 2, timeout=5.0)
        assert watcher.running and watcher.watched() == []
        assert all(batch == [str(root)] for batch in batches.batches)
        assert len(batches.warnings) == 1  # said once, not at every look
        assert "limit on watched folders" in batches.warnings[0] and str(root) in batches.warnings[0]
    finally:
        watcher.stop()


def test_a_callback_that_fails_does_not_end_the_watching(root):
    calls: list[list[str]] = []

    def failing(paths):
        calls.append(paths)
        if len(calls) == 1:
            raise RuntimeError("the first batch fails")

    watcher = FolderWatcher(failing, [root], quiet_seconds=0.2, poll_seconds=0.1)
    watcher.start()
    try:
        assert wait_for(lambda: watcher.watched() == [str(root)])
        (root / "a.txt").write_text("one", encoding="utf-8")
        assert wait_for(lambda: len(calls) == 1)
        (root / "b.txt").write_text("two", encoding="utf-8")
        assert wait_for(lambda: len(calls) == 2)
        assert calls[1] == [str(root / "b.txt")]
    finally:
        watcher.stop()


def test_stop_ends_the_threads(root):
    watcher = FolderWatcher(lambda paths: None, [root], poll_seconds=0.1)
    watcher.start()
    assert wait_for(lambda: watcher.watched() == [str(root)])
    before = {t.name for t in threading.enumerate()}
    assert "shoebox-watch" in before
    watcher.stop()
    assert not watcher.running and watcher.watched() == []
    assert "shoebox-watch" not in {t.name for t in threading.enumerate()}
