"""The first window: opens at once, searches off the GUI thread, shows errors as messages."""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop_app.main_window import MainWindow
from tests.helpers import make_text


def test_window_opens_and_searches(qtbot, library, tmp_path):
    make_text(tmp_path / "f" / "boiler.txt", "The boiler service is due in October.")
    library.index([tmp_path / "f"])
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    assert "1 documents" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.results_shown, timeout=20_000) as blocker:
        qtbot.keyClicks(window.search_field, "boiler")
        qtbot.keyClick(window.search_field, Qt.Key.Key_Return)
    assert blocker.args[0] >= 1
    assert "boiler.txt" in window.results.item(0).text()
    assert "«boiler»" in window.results.item(0).text()


def test_search_shortcut_focuses_the_field(qtbot, library):
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    window.results.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(window.search_field.hasFocus, timeout=2_000)


def test_errors_are_shown_as_messages(qtbot, library):
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    from engine.errors import ModelUnavailableError

    window._show_error(ModelUnavailableError("CLIP weights are missing; run `shoebox models download clip`"))
    assert "shoebox models download" in window.summary.text()
