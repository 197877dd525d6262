"""The one way the app runs engine work in the background.

``run_task(fn, on_done, on_error)`` runs ``fn`` on the global thread pool and
delivers its result (or its exception) on the GUI thread.  Worker functions
never touch a widget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QDeadlineTimer, QObject, QRunnable, QThreadPool, Signal


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay):
        super().__init__()
        self.fn = fn
        self.relay = relay

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # delivered to on_error on the GUI thread
            self.relay.failed.emit(exc)
        else:
            self.relay.done.emit(result)


_live: set[_Relay] = set()
_long_jobs: QThreadPool | None = None


def long_jobs() -> QThreadPool:
    """The pool for long work (indexing, model loading), so that searches never queue behind it."""
    global _long_jobs
    if _long_jobs is None:
        _long_jobs = QThreadPool()
        _long_jobs.setMaxThreadCount(2)
    return _long_jobs


def wait_for_all(timeout_ms: int = 30_000) -> bool:
    """Wait for every background task in both pools; False if one was still running."""
    deadline = QDeadlineTimer(timeout_ms)
    ok = QThreadPool.globalInstance().waitForDone(deadline)
    return long_jobs().waitForDone(deadline) and ok


def run_task(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    *,
    long: bool = False,
) -> None:
    """Run ``fn()`` off the GUI thread; call ``on_done(result)`` or ``on_error(exc)`` on it.

    ``long=True`` runs it in the pool for long jobs (indexing, loading models).
    """
    relay = _Relay()
    _live.add(relay)  # keep the relay alive until it delivered

    def finish(callback: Callable[[Any], None] | None, value: Any) -> None:
        _live.discard(relay)
        if callback is not None:
            callback(value)

    relay.done.connect(lambda result: finish(on_done, result))
    relay.failed.connect(lambda exc: finish(on_error, exc))
    (long_jobs() if long else QThreadPool.globalInstance()).start(_Task(fn, relay))
