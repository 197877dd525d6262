"""The Qt binding itself must not corrupt the interpreter.

PySide6 6.12.0 on Python 3.11 drops one reference to ``None`` on every call of
a C++ method returning void, and one to ``True`` on every signal emission:
after a few hundred thousand calls Python aborts with "deallocating None".
pyproject.toml keeps PySide6 below 6.12; this test fails if a binding with
that fault is installed.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel


class _Emitter(QObject):
    fired = Signal(bool)


def test_void_calls_and_signals_keep_reference_counts(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    emitter = _Emitter()
    received: list[object] = []
    emitter.fired.connect(received.append)
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(2000):
        label.setText("x")
        emitter.fired.emit(True)
    assert len(received) == 2000
    received.clear()
    # Other threads may hold a few references for a moment; a leak loses thousands.
    assert sys.getrefcount(None) > none_before - 500
    assert sys.getrefcount(True) > true_before - 500
