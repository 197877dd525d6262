"""Watching the library's folders: what changed in them, reported in batches.

A :class:`FolderWatcher` follows the library's folders (its roots) recursively
through ``watchdog`` (inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW
on Windows) and collects the paths of files and folders that were created,
changed, moved or deleted.  A burst of changes (a folder copied in, a photo
editor saving) is reported once, as one batch, when the folders have been quiet
for a moment, or after a few seconds at most while changes keep coming.

Roots come and go: a drive is unplugged, a folder is deleted and made again.
The watcher looks every few seconds whether each root is there (and is still
the same folder), watches it again when it is back and reports the root itself
so that it gets rescanned.  When the system cannot watch a root (Linux's
limit on inotify watches, a folder Shoebox may not read), the watcher says so
once and reports that root for a rescan every few minutes instead.

The batches are handed to a callback on the watcher's own thread; what to do
with them (:meth:`engine.library.Library.update_paths`) is the caller's
business.  This module knows nothing of Qt.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .extractors import kind_for_path

log = logging.getLogger(__name__)

# Defaults: a batch goes out after this long without a change ...
QUIET_SECONDS = 1.0
# ... or this long after its first change, whatever keeps coming.
MAX_DELAY_SECONDS = 5.0
# How often the roots are looked at (there? the same folder? the watch still alive?).
POLL_SECONDS = 3.0
# How often a root that cannot be watched is reported for a rescan instead.
FALLBACK_SECONDS = 300.0

ChangesCallback = Callable[[list[str]], None]
WarningCallback = Callable[[str], None]


@dataclass
class _Root:
    """What the watcher knows of one root."""

    path: str
    watch: Any = None  # the watchdog ObservedWatch while the root is watched
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the folder that is watched
    report_on_arm: bool = False  # it was away: report it for a rescan once it is watched again
    fallback: bool = False  # cannot be watched: reported for a rescan every fallback interval
    next_fallback: float = 0.0


def _identity(path: str) -> tuple[int, int] | None:
    """The folder at ``path`` as (device, inode); None when there is no folder there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isdir(path):
        return None
    return (st.st_dev, st.st_ino)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class FolderWatcher:
    """Watches folders recursively and hands batches of changed paths to ``on_changes``.

    ``on_changes(paths)`` is called on the watcher's own thread with a sorted
    list of absolute paths: files of the kinds Shoebox indexes that were
    created, changed, moved (both ends) or deleted, folders that were created,
    moved or deleted, and roots that came back (to be rescanned whole).
    Hidden files and folders, files of other kinds and anything inside
    ``ignore`` (the library's own folder) are left out.  ``on_warning(message)``
    (same thread) says, once per root, that a root cannot be watched and is
    rescanned every ``fallback_seconds`` instead.  Nothing here raises into the
    caller once started: a callback that raises is logged and the watcher goes on.

    ``quiet_seconds``, ``max_delay_seconds``, ``poll_seconds`` and
    ``fallback_seconds`` set the timing (tests make them short).
    ``observer_factory`` builds the watchdog observer (default: the platform's own).
    """

    def __init__(
        self,
        on_changes: ChangesCallback,
        roots: Iterable[str | os.PathLike] = (),
        *,
        ignore: Iterable[str | os.PathLike] = (),
        on_warning: WarningCallback | None = None,
        quiet_seconds: float = QUIET_SECONDS,
        max_delay_seconds: float = MAX_DELAY_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        fallback_seconds: float = FALLBACK_SECONDS,
        observer_factory: Callable[[], Any] | None = None,
    ):
        self.on_changes = on_changes
        self.on_warning = on_warning
        self.quiet_seconds = quiet_seconds
        self.max_delay_seconds = max(max_delay_seconds, quiet_seconds)
        self.poll_seconds = poll_seconds
        self.fallback_seconds = fallback_seconds
        self._ignore = [os.path.abspath(os.fspath(p)) for p in ignore]
        self._observer_factory = observer_factory
        self._cond = threading.Condition()
        self._wanted = self._normalise(roots)  # the roots asked for (set_roots); read by the thread
        self._roots: dict[str, _Root] = {}  # the roots the thread works on (only the thread touches these)
        self._watched_now: list[str] = []  # the roots watched, as of the thread's last look
        self._pending: set[str] = set()
        self._first_change = 0.0
        self._last_change = 0.0
        self._stopping = False
        self._poll_now = True
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._handler: Any = None

    # -- public -------------------------------------------------------------------

    def start(self) -> None:
        """Start watching (the roots are armed on the watcher's thread, not the caller's)."""
        if self._thread is not None:
            return
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                watcher._event(event)

        self._handler = _Handler()
        self._observer = (self._observer_factory or Observer)()
        self._observer.daemon = True
        self._observer.start()
        with self._cond:
            self._stopping = False
            self._poll_now = True
        self._thread = threading.Thread(target=self._run, name="shoebox-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and wait for the watcher's threads; changes not yet reported are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout)
        self._roots.clear()
        with self._cond:
            self._watched_now = []
            self._pending.clear()

    def set_roots(self, roots: Iterable[str | os.PathLike]) -> None:
        """Watch these folders from now on (others are no longer watched); returns at once.

        A root newly given is not reported (it was just indexed); one that is not
        there yet is reported when it appears.
        """
        with self._cond:
            self._wanted = self._normalise(roots)
            self._poll_now = True
            self._cond.notify_all()

    @property
    def roots(self) -> list[str]:
        """The roots asked for."""
        with self._cond:
            return sorted(self._wanted)

    def watched(self) -> list[str]:
        """The roots watched for changes now (not those away, nor those rescanned instead)."""
        with self._cond:
            return list(self._watched_now)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- events (the observer's thread) ----------------------------------------------

    def _event(self, event: Any) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write") or (kind == "modified" and event.is_directory):
            return  # reading a file, or a folder's own time changing with its files
        paths = [event.src_path, getattr(event, "dest_path", "")]
        wanted = [os.fsdecode(p) for p in paths if p]
        wanted = [p for p in wanted if self._relevant(p, event.is_directory)]
        if wanted:
            self._add(wanted)

    def _relevant(self, path: str, is_directory: bool) -> bool:
        """Whether a change at ``path`` can matter to the library."""
        if any(_inside(path, folder) for folder in self._ignore):
            return False
        with self._cond:
            roots = list(self._wanted)
        root = next((r for r in sorted(roots, key=len) if _inside(path, r)), None)
        if root is None:
            return False
        relative = os.path.relpath(path, root)
        if relative != "." and any(part.startswith(".") for part in relative.split(os.sep)):
            return False
        # A folder's change may move or remove files of every kind below it.
        return is_directory or kind_for_path(path) is not None

    def _add(self, paths: Iterable[str]) -> None:
        with self._cond:
            now = time.monotonic()
            if not self._pending:
                self._first_change = now
            self._last_change = now
            self._pending.update(paths)
            self._cond.notify_all()

    # -- the watcher's thread -----------------------------------------------------------

    def _due(self) -> float:
        return min(self._last_change + self.quiet_seconds, self._first_change + self.max_delay_seconds)

    def _run(self) -> None:
        next_poll = time.monotonic()
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    wake = next_poll if not self._poll_now else now
                    if self._pending:
                        wake = min(wake, self._due())
                    if wake <= now:
                        break
                    self._cond.wait(wake - now)
                if self._stopping:
                    break
                poll = self._poll_now or time.monotonic() >= next_poll
                self._poll_now = False
                wanted = set(self._wanted)
            if poll:
                try:
                    self._poll(wanted)
                except Exception as exc:  # one bad look at the roots must not end the watching
                    log.warning("could not look at the library's folders: %s", exc)
                next_poll = time.monotonic() + self.poll_seconds
            with self._cond:
                batch: list[str] = []
                if self._pending and time.monotonic() >= self._due():
                    batch = sorted(self._pending)
                    self._pending.clear()
            if batch:
                self._deliver(batch)

    def _deliver(self, batch: list[str]) -> None:
        try:
            self.on_changes(batch)
        except Exception as exc:  # the caller's failure: logged, and the watching goes on
            log.warning("the changes in the library's folders could not be handed on: %s", exc)

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        if self.on_warning is not None:
            try:
                self.on_warning(message)
            except Exception as exc:
                log.warning("the warning could not be handed on: %s", exc)

    def _poll(self, wanted: set[str]) -> None:
        """Arm, re-arm and disarm the roots to match what is wanted and what is there."""
        for path in [p for p in self._roots if p not in wanted]:
            self._disarm(self._roots.pop(path))
        now = time.monotonic()
        returned: list[str] = []
        for path in sorted(wanted):
            root = self._roots.get(path)
            if root is None:
                root = self._roots[path] = _Root(path)
            identity = _identity(path)
            if identity is None:
                if root.watch is not None or root.fallback or root.identity is not None:
                    log.info("%s is not there: its files stay in the library as they were", path)
                self._disarm(root)
                root.fallback = False
                root.identity = None
                root.report_on_arm = True
                continue
            if root.fallback:
                if identity != root.identity:
                    # Another folder now: try watching it again (the limit may have been raised too).
                    root.fallback = False
                    root.report_on_arm = True
                elif now >= root.next_fallback:
                    root.next_fallback = now + self.fallback_seconds
                    returned.append(path)
                    continue
                else:
                    continue
            if root.watch is not None and (identity != root.identity or not self._alive(root.watch)):
                # Deleted and made again between two looks, or the watch ended by itself.
                self._disarm(root)
                root.report_on_arm = True
            if root.watch is None:
                self._arm(root, identity)
                if root.report_on_arm:  # back (watched, or rescanned every fallback interval): rescan it now
                    root.report_on_arm = False
                    returned.append(path)
        with self._cond:
            self._watched_now = sorted(r.path for r in self._roots.values() if r.watch is not None)
        if returned:
            self._add(returned)

    def _arm(self, root: _Root, identity: tuple[int, int]) -> bool:
        """Watch ``root``; on failure say so and rescan it periodically instead."""
        try:
            root.watch = self._observer.schedule(self._handler, root.path, recursive=True)
        except OSError as exc:
            root.watch = None
            root.fallback = True
            root.identity = identity
            root.next_fallback = time.monotonic() + self.fallback_seconds
            if exc.errno in (errno.ENOSPC, errno.EMFILE):
                why = (
                    "the system's limit on watched folders is reached "
                    "(on Linux, raising fs.inotify.max_user_watches lifts it)"
                )
            else:
                why = exc.strerror or str(exc)
            minutes = max(1, round(self.fallback_seconds / 60))
            self._warn(
                f"Shoebox cannot watch {root.path} for changes: {why}. "
                f"It looks for changes there every {minutes} min instead."
            )
            return False
        root.identity = identity
        return True

    def _alive(self, watch: Any) -> bool:
        """Whether the observer still follows ``watch`` (an emitter ends when its folder goes away)."""
        emitters = getattr(self._observer, "emitters", None)
        if emitters is None:
            return True
        for emitter in list(emitters):
            if emitter.watch == watch:
                return bool(emitter.is_alive())
        return False

    def _disarm(self, root: _Root) -> None:
        watch, root.watch = root.watch, None
        if watch is None or self._observer is None:
            return
        try:
            self._observer.unschedule(watch)
        except (KeyError, OSError) as exc:  # already gone with its folder
            log.debug("stopped watching %s: %s", root.path, exc)

    @staticmethod
    def _normalise(roots: Iterable[str | os.PathLike]) -> set[str]:
        return {os.path.abspath(os.fspath(r)) for r in roots}
