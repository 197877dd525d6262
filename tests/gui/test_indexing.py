"""Indexing from the window: drops, the progress panel, Cancel, failures and Retry, the folders list."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from desktop_app.controller import AppController
from desktop_app.indexing import (
    DropIndexer,
    FoldersPanel,
    IndexingPanel,
    describe_summary,
    describe_waiting,
    format_time_left,
    install_drop_indexing,
    paths_from_mime,
)
from engine.ingest import IndexSummary
from tests.helpers import make_photo, make_text


@pytest.fixture
def controller(library):
    controller = AppController(library=library)
    yield controller
    controller.shutdown()


class PhotoField(QLineEdit):
    """Stands in for the search field: it takes dropped photos itself."""

    def __init__(self):
        super().__init__()
        self.setAcceptDrops(True)
        self.dropped: list[str] = []

    def dragEnterEvent(self, event):
        if any(u.toLocalFile().endswith(".jpg") for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event):
        self.dropped += [u.toLocalFile() for u in event.mimeData().urls()]
        event.acceptProposedAction()


class _Window(QMainWindow):
    field: PhotoField
    label: QLabel
    panel: IndexingPanel
    dropper: DropIndexer


def make_window(qtbot, controller):
    window = _Window()
    central = QWidget()
    layout = QVBoxLayout(central)
    window.field = PhotoField()
    window.label = QLabel("results")
    window.panel = IndexingPanel(controller)
    layout.addWidget(window.field)
    layout.addWidget(window.label, 1)
    layout.addWidget(window.panel)
    window.setCentralWidget(central)
    window.resize(700, 400)
    window.dropper = install_drop_indexing(window, controller)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def mime_with(*urls: QUrl) -> QMimeData:
    mime = QMimeData()
    mime.setUrls(list(urls))
    return mime


def _drag_event(cls, widget: QWidget, mime: QMimeData):
    centre = widget.rect().center()  # drag events take a QPoint, a drop a QPointF
    event = cls(
        centre if cls is not QDropEvent else QPointF(centre),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    event.ignore()
    QApplication.sendEvent(widget, event)
    return event


def drag_onto(widget: QWidget, mime: QMimeData) -> QDragEnterEvent:
    """The drag entering ``widget``, as Qt delivers it (passed up to a parent that accepts drops)."""
    return _drag_event(QDragEnterEvent, widget, mime)


def drop_onto(widget: QWidget, mime: QMimeData) -> QDropEvent:
    """A whole drop: the drag enters, then drops.  Qt only delivers the drop where the enter was accepted."""
    drag_onto(widget, mime)
    return _drag_event(QDropEvent, widget, mime)


def test_dropping_a_folder_indexes_it_and_shows_the_summary(qtbot, controller, library, tmp_path):
    folder = tmp_path / "drop"
    for i in range(5):
        make_photo(folder / f"p{i}.jpg", i)
    make_text(folder / "note.txt", "The boiler service is due in October.")
    window = make_window(qtbot, controller)
    wanted: list[bool] = []
    window.panel.visibility_wanted.connect(wanted.append)
    assert window.panel.idle_label.isVisible()  # idle: one quiet line
    assert not window.panel.progress_bar.isVisible()

    bar_values: list[tuple[int, int]] = []
    window.panel.progress_bar.valueChanged.connect(
        lambda value: bar_values.append((value, window.panel.progress_bar.maximum()))
    )
    mime = mime_with(QUrl.fromLocalFile(str(folder)))
    assert drag_onto(window, mime).isAccepted()
    with qtbot.waitSignal(controller.index_started, timeout=5_000) as started:
        assert drop_onto(window, mime).isAccepted()
        assert controller.indexing is False  # deferred: the drop handler itself does no work
    assert started.args == [[str(folder)]]
    assert wanted == [True]
    assert window.panel.progress_bar.isVisible() and window.panel.cancel_button.isVisible()
    assert not window.panel.idle_label.isVisible()
    with qtbot.waitSignal(window.panel.summary_shown, timeout=60_000) as finished:
        pass
    summary = finished.args[0]
    assert (summary.added, summary.failed, summary.cancelled) == (6, [], False)
    assert (6, 6) in bar_values, bar_values  # the bar went to the end of the files
    assert window.panel.summary_label.text().startswith("Added 6")
    assert not window.panel.failures.isVisible()
    assert not window.panel.retry_button.isVisible()
    stored = {os.path.basename(f.path) for f in library.store.files_under(str(folder)) if f.status == "indexed"}
    assert stored == {f"p{i}.jpg" for i in range(5)} | {"note.txt"}

    assert window.panel.summary_label.isVisible() and not window.panel.progress_bar.isVisible()
    window.panel.dismiss_button.click()
    assert wanted[-1] is False
    assert window.panel.idle_label.isVisible() and not window.panel.summary_label.isVisible()


def test_cancel_keeps_what_was_done(qtbot, controller, library, tmp_path):
    folder = tmp_path / "many"
    total = 80
    for i in range(total):
        make_photo(folder / f"p{i:03d}.jpg", i)
    window = make_window(qtbot, controller)
    batch = library.settings.batch_size
    clicked: list[int] = []

    def on_progress(done, _total, message, _left):
        # Once a batch has been stored (the first file of the second batch is being read).
        if not clicked and os.path.isabs(message) and done > batch:
            clicked.append(done)
            qtbot.mouseClick(window.panel.cancel_button, Qt.MouseButton.LeftButton)
            assert "Stopping" in window.panel.message_label.full_text()
            assert not window.panel.cancel_button.isEnabled()

    controller.index_progress.connect(on_progress)
    with qtbot.waitSignal(controller.index_finished, timeout=120_000) as finished:
        controller.index([folder])
    summary = finished.args[0]
    assert clicked, "no file progress was reported"
    assert summary.cancelled is True
    kept = [f for f in library.store.files_under(str(folder)) if f.status == "indexed"]
    assert 0 < len(kept) < total, (len(kept), clicked)
    assert summary.added == len(kept)
    assert window.panel.title.text() == "Indexing stopped"
    assert "Stopped. What was indexed is kept" in window.panel.summary_label.text()
    assert f"added {len(kept)}" in window.panel.summary_label.text()


def test_failures_are_listed_with_their_reason_and_retried(qtbot, controller, library, tmp_path):
    folder = tmp_path / "mixed"
    make_photo(folder / "good.jpg", 1)
    bad = folder / "x.jpg"
    bad.write_bytes(b"this is not a picture" * 20)
    window = make_window(qtbot, controller)

    with qtbot.waitSignal(window.panel.summary_shown, timeout=60_000):
        drop_onto(window, mime_with(QUrl.fromLocalFile(str(folder))))
    assert window.panel.summary_label.text().startswith("Added 1 · 1 failed")
    assert window.panel.failures.isVisible()
    [(path, reason)] = window.panel.failure_rows()
    assert path == str(bad)
    assert reason == "File ends with .jpg but is not an image"
    assert window.panel.failures.topLevelItem(0).text(0) == "x.jpg"
    assert window.panel.retry_button.isVisible()

    make_photo(bad, 2)  # the person fixed the file
    with qtbot.waitSignal(controller.index_started, timeout=5_000) as started:
        qtbot.mouseClick(window.panel.retry_button, Qt.MouseButton.LeftButton)
    assert started.args == [[str(bad)]]
    with qtbot.waitSignal(window.panel.summary_shown, timeout=60_000) as finished:
        pass
    assert (finished.args[0].added, finished.args[0].failed) == (1, [])
    assert window.panel.failure_rows() == []
    assert not window.panel.retry_button.isVisible()
    assert library.store.get_file(str(bad)).status == "indexed"


def test_non_local_urls_are_ignored(qtbot, controller, tmp_path):
    window = make_window(qtbot, controller)
    web = mime_with(QUrl("https://example.com/holiday.jpg"), QUrl("ftp://example.com/notes.txt"))
    assert paths_from_mime(web) == []
    assert not drag_onto(window, web).isAccepted()
    with qtbot.assertNotEmitted(controller.index_started, wait=100):
        assert not drop_onto(window, web).isAccepted()

    folder = tmp_path / "local"
    make_text(folder / "a.txt", "hello there")
    mixed = mime_with(QUrl("https://example.com/x.jpg"), QUrl.fromLocalFile(str(folder)))
    with qtbot.waitSignal(controller.index_started, timeout=5_000) as started:
        drop_onto(window, mixed)
    assert started.args == [[str(folder)]]
    with qtbot.waitSignal(controller.index_finished, timeout=60_000):
        pass


def test_a_child_that_takes_its_own_drops_keeps_them(qtbot, controller, tmp_path):
    window = make_window(qtbot, controller)
    photo = make_photo(tmp_path / "query.jpg", 3)
    photo_mime = mime_with(QUrl.fromLocalFile(str(photo)))
    seen: list[str] = []
    window.dropper.paths_dropped.connect(seen.extend)
    # The photo field accepts the drag itself, so it never reaches the window's handler.
    assert drag_onto(window.field, photo_mime).isAccepted()
    with qtbot.assertNotEmitted(controller.index_started, wait=100):
        drop_onto(window.field, photo_mime)
    assert window.field.dropped == [str(photo)]
    assert seen == []
    # A child that does not take drops passes the drag up to the window.
    folder_mime = mime_with(QUrl.fromLocalFile(str(tmp_path)))
    assert drag_onto(window.label, folder_mime).isAccepted()
    assert seen == []  # accepting a drag starts nothing; only a drop does


def test_folders_panel_lists_adds_and_removes_folders(qtbot, controller, library, tmp_path, monkeypatch):
    first = tmp_path / "first"
    make_text(first / "a.txt", "The first folder holds a note about tulips.")
    library.index([first])
    panel = FoldersPanel(controller, removable=True)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.folders_shown, timeout=5_000) as shown:
        panel.refresh()
    assert shown.args == [[str(first)]]

    second = tmp_path / "second"
    make_text(second / "b.txt", "The second folder holds a note about roses.")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(second)))
    with qtbot.waitSignal(
        panel.folders_shown, timeout=60_000, check_params_cb=lambda folders: str(second) in folders
    ) as shown:
        qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert shown.args == [[str(first), str(second)]]

    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes))
    panel.list.setCurrentRow(0)
    with qtbot.waitSignal(
        panel.folders_shown, timeout=5_000, check_params_cb=lambda folders: str(first) not in folders
    ) as shown:
        qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert shown.args == [[str(second)]]
    assert library.store.files_under(str(first)) == []
    assert (first / "a.txt").exists()  # forgotten by the library, untouched on disk


def test_words():
    assert format_time_left(None) == ""
    assert format_time_left(3) == "a few seconds left"
    assert format_time_left(42) == "about 40 s left"
    assert format_time_left(125) == "about 2 min left"
    assert format_time_left(2 * 3600 + 20 * 60) == "about 2 h 20 min left"
    three_failed = [{"path": "a", "reason": "b"}] * 3
    assert describe_summary(IndexSummary(added=120, failed=three_failed)) == "Added 120 · 3 failed"
    assert describe_summary(IndexSummary(unchanged=4)) == "4 files already up to date"
    assert describe_summary(IndexSummary(added=2, cancelled=True)) == "Stopped. What was indexed is kept: added 2"


def test_files_that_wait_for_a_model_are_said_with_what_works_now(qtbot, controller):
    lines = describe_waiting({"clip": 3, "speech": 1})
    assert lines == [
        (
            "3 photos and videos: found by their names, dates and any text in them now, and by what they show "
            "once the CLIP model is set up (File ▸ Set up models…); they are finished then without indexing again."
        ),
        (
            "1 recording or video: found by its name and date now, and by what is said in it once the "
            "speech model is set up (File ▸ Set up models…); it is finished then without indexing again."
        ),
    ]
    panel = IndexingPanel(controller)
    qtbot.addWidget(panel)
    controller.index_started.emit([])
    controller.index_finished.emit(IndexSummary(added=4, waiting={"clip": 3, "speech": 1}))
    text = panel.summary_label.text()
    assert text.splitlines()[0] == "Added 4" and text.splitlines()[1:] == lines
    controller.index_started.emit([])
    controller.index_finished.emit(IndexSummary(unchanged=4, completed=4))
    assert panel.summary_label.text().splitlines()[-1] == "Finished 4 files that waited for a model."
