"""Every control usable in a small window (800 × 560) and at 200 % scaling: no cut-off button text,
no overlapping rows in the settings, the folder filter naming the folder chosen, the ask panel beside
the results on a divider that is remembered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QApplication, QComboBox, QLineEdit, QStyle, QWidget

from desktop_app.dialogs import ModelSetupDialog, SettingsDialog
from desktop_app.main_window import ASK_WIDTH_KEY, MainWindow
from tests.gui.test_main_window import search
from tests.helpers import make_photo, make_text

ROOT = Path(__file__).resolve().parents[2]
SMALL = (800, 560)
# What a dialog may take of an 800 × 560 screen once the title bar and a panel have theirs.
DIALOG_ROOM = (780, 500)
CONTROLS = (QAbstractButton, QComboBox, QLineEdit, QAbstractSpinBox)


def scale() -> float:
    return float(os.environ.get("QT_SCALE_FACTOR") or 1)


@pytest.fixture
def small_folder(library, tmp_path) -> Path:
    folder = tmp_path / "Family photos"
    make_photo(folder / "beach.jpg", 1)
    make_photo(folder / "forest.jpg", 2)
    make_text(folder / "boiler.txt", "The boiler service is due in October.\n\nCall the plumber about the pressure.")
    make_text(folder / "club.md", "# Club meeting\n\nThe boiler room is where we meet.")
    assert library.index([folder]).added == 4
    return folder


@pytest.fixture
def small_window(qtbot, library, small_folder, tmp_path):
    window = MainWindow(
        library=library, app_settings=QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    )
    window.results.set_threshold(None)
    qtbot.addWidget(window)
    window.resize(*SMALL)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    yield window
    window.close()


def cut_off_buttons(top: QWidget) -> list[str]:
    """The visible buttons under ``top`` whose text does not fit their width (what they show, and why)."""
    bad: list[str] = []
    for button in top.findChildren(QAbstractButton):
        text = button.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
        if not button.isVisible() or not text:
            continue
        style = button.style()
        margin = style.pixelMetric(QStyle.PixelMetric.PM_ButtonMargin, None, button)
        icon = button.iconSize().width() + 4 if not button.icon().isNull() else 0
        needed = button.fontMetrics().horizontalAdvance(text) + icon + margin
        if needed > button.width() and button.sizeHint().width() > button.width():
            bad.append(f"{text!r}: {button.width()} px wide, its text needs {needed}")
    return bad


def overlapping_siblings(top: QWidget) -> list[str]:
    """Visible sibling widgets under ``top`` that cover each other, and fields and buttons squeezed
    below the height they need (what a row looks like when the rows of a form overlap)."""
    bad: list[str] = []
    for parent in [top, *top.findChildren(QWidget)]:
        if not parent.isVisible():
            continue
        children = [
            c
            for c in parent.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
            if c.isVisible() and not c.isWindow()
        ]
        for i, a in enumerate(children):
            bad.extend(
                f"{describe(a)} overlaps {describe(b)}"
                for b in children[i + 1 :]
                if a.geometry().intersects(b.geometry())
            )
            inner = isinstance(parent, (QComboBox, QAbstractSpinBox))  # their own line edit, inside their frame
            if isinstance(a, CONTROLS) and not inner and a.height() < a.minimumSizeHint().height():
                bad.append(f"{describe(a)} squeezed to {a.height()} of {a.minimumSizeHint().height()} px")
    return bad


def describe(widget: QWidget) -> str:
    text = getattr(widget, "text", None)
    shown = text() if callable(text) and isinstance(text(), str) else ""
    return f"{type(widget).__name__}({shown or widget.objectName()!r})"


def settle(qtbot) -> None:
    """Let the layouts settle (a resize is applied on the next turns of the event loop)."""
    QApplication.processEvents()
    qtbot.wait(0)
    QApplication.processEvents()


def test_every_button_reads_whole_in_an_800_by_560_window(qtbot, small_window, small_folder):
    window = small_window
    assert window.devicePixelRatioF() == scale()
    assert window.minimumSizeHint().width() <= SMALL[0] and window.minimumSizeHint().height() <= SMALL[1]
    search(qtbot, window, "boiler")
    model = window.results.passage_model
    row = next(r for r in range(model.rowCount()) if model.result(r).path.endswith("boiler.txt"))
    window.results.passage_view.setFocus()
    window.results.passage_view.setCurrentIndex(model.index(row))
    qtbot.waitUntil(lambda: bool(window.preview.details), timeout=10_000)
    window.ask_action.trigger()
    window.filter_panel.set_folder(str(small_folder))
    # The longest the result count gets, with "Show all" beside it (results hidden by the slider).
    window.results.count_label.setText("60 results (59 weaker results hidden)")
    window.results.show_hidden_button.show()
    settle(qtbot)

    assert (window.width(), window.height()) == SMALL  # nothing pushed the window wider or taller
    assert window.ask_panel.isVisible() and window.preview.open_page_button.isVisible()
    assert all(button.isVisible() for button in window.preview.action_buttons)
    assert cut_off_buttons(window) == []
    # The results keep at least the ask panel's width, and every part keeps its own.
    results, ask = window.work_splitter.sizes()
    assert results >= ask > 0
    for part in (window.filter_panel, window.results_area, window.ask_box, window.preview):
        assert part.width() >= part.minimumSizeHint().width() or part.width() >= part.minimumWidth() > 0
    # The folder filter shows the folder's own name, whole; its tooltip the full path.
    combo = window.filter_panel.folder_combo
    assert combo.currentText() == small_folder.name
    assert combo.toolTip() == str(small_folder)
    arrow = combo.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
    assert combo.fontMetrics().horizontalAdvance(small_folder.name) + arrow < combo.width()


def test_the_settings_fit_a_small_screen_without_overlapping_rows(qtbot, small_window, tmp_path):
    window = small_window
    app_settings = QSettings(str(tmp_path / "app.ini"), QSettings.Format.IniFormat)
    dialog = SettingsDialog(window.controller.settings, window, controller=window.controller, app_settings=app_settings)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.resize(min(dialog.width(), DIALOG_ROOM[0]), min(dialog.height(), DIALOG_ROOM[1]))
    settle(qtbot)
    assert dialog.width() <= DIALOG_ROOM[0] and dialog.height() <= DIALOG_ROOM[1]
    assert overlapping_siblings(dialog) == []
    assert cut_off_buttons(dialog) == []
    # What does not fit scrolls, down to the last row; Save and Cancel stay in view.
    bar = dialog.scroll_area.verticalScrollBar()
    assert bar.maximum() > 0
    bar.setValue(bar.maximum())
    settle(qtbot)
    viewport = dialog.scroll_area.viewport()
    bottom = dialog.thumbnail_size.mapTo(viewport, dialog.thumbnail_size.rect().bottomLeft())
    assert 0 <= bottom.y() <= viewport.height()
    assert dialog.rect().contains(dialog.save_button.geometry().translated(dialog.buttons.pos()))
    dialog.close()


def test_the_model_setup_dialog_fits_a_small_screen(qtbot, small_window):
    dialog = ModelSetupDialog(small_window.controller.settings, small_window, reason="CLIP weights not found")
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.models_listed, timeout=10_000):
        dialog.show()
    dialog.resize(min(dialog.width(), DIALOG_ROOM[0]), min(dialog.height(), DIALOG_ROOM[1]))
    settle(qtbot)
    assert dialog.width() <= DIALOG_ROOM[0] and dialog.height() <= DIALOG_ROOM[1]
    assert overlapping_siblings(dialog) == []
    assert cut_off_buttons(dialog) == []
    dialog.close()


def test_the_ask_panel_shares_the_results_width_on_a_remembered_divider(qtbot, small_window, tmp_path):
    window = small_window
    window.resize(1240, 780)
    settle(qtbot)
    window.ask_action.trigger()
    settle(qtbot)
    results, ask = window.work_splitter.sizes()
    assert results >= ask >= window.ask_box.minimumSizeHint().width()
    # The person drags the divider: the results give the panel 40 pixels more.
    window.work_splitter.moveSplitter(results - 40, 1)
    settle(qtbot)
    moved = window.work_splitter.sizes()[1]
    assert moved == ask + 40
    assert int(window.app_settings.value(ASK_WIDTH_KEY)) == moved
    window.close_ask_panel()
    assert not window.ask_panel.isVisible()
    window.work_splitter.setSizes([1000, 0])

    # As after a restart: the width is read back from the settings file.
    window.app_settings = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    window._remembered_ask_width = 0
    window.ask_action.trigger()
    settle(qtbot)
    assert window.work_splitter.sizes()[1] == moved


@pytest.mark.skipif(bool(os.environ.get("QT_SCALE_FACTOR")), reason="this runs the tests above at 200 %")
def test_the_same_at_200_percent_scaling(tmp_path):
    """The tests above again in a process of its own with QT_SCALE_FACTOR=2: every widget and font is
    laid out at twice the pixels, as on a 1600 × 1120 screen set to 200 %.  The window is still
    800 × 560 in Qt's device-independent pixels, so this checks the same room against rounding at
    that scale and against pixmaps and metrics taken at the device pixel ratio (the scale factor has
    to be set before the QApplication exists, hence the subprocess)."""
    env = dict(os.environ, QT_SCALE_FACTOR="2", QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__)), "-k", "not 200_percent"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout
