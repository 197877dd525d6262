"""Indexing in the window: the progress panel, the library's folders, and drops.

Three self-contained pieces, each given the :class:`~desktop_app.controller.AppController`
and nothing else; none of them calls the engine on the GUI thread:

* :class:`IndexingPanel` shows a run as it goes (progress, the file being read,
  the time left, Cancel) and what it did when it ends (a summary, the files that
  failed with their reason, Retry failed).  When idle it shrinks to one line and
  asks its container to hide it.
* :class:`FoldersPanel` lists the library's folders and adds (or forgets) one.
* :func:`install_drop_indexing` lets a person drop files and folders anywhere on
  a window to index them.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable
from typing import Any

import shiboken6
from PySide6.QtCore import QEvent, QMimeData, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QFontMetrics, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .controller import AppController, Job, window_text

# ---------------------------------------------------------------------------------------------
# Words


def format_time_left(seconds: float | None) -> str:
    """ "about 2 min left" and the like; empty while the time left is unknown."""
    if seconds is None or seconds != seconds or seconds < 0:  # None or NaN
        return ""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 55:
        return f"about {max(10, round(seconds / 10) * 10)} s left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {max(1, minutes)} min left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min left" if minutes else f"about {hours} h left"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def describe_summary(summary: Any) -> str:
    """One line for an :class:`~engine.ingest.IndexSummary`: "Added 120 · 3 failed"."""
    parts = []
    if summary.added:
        parts.append(f"added {summary.added}")
    if summary.updated:
        parts.append(f"updated {summary.updated}")
    if summary.moved:
        parts.append(f"{summary.moved} moved")
    if summary.removed:
        parts.append(f"{summary.removed} removed")
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed")
    if summary.unchanged and not parts:
        parts.append(f"{_plural(summary.unchanged, 'file')} already up to date")
    elif summary.unchanged:
        parts.append(f"{summary.unchanged} unchanged")
    text = " · ".join(parts) if parts else "nothing new to index"
    text = text[0].upper() + text[1:]
    if summary.cancelled:
        return f"Stopped. What was indexed is kept: {text[0].lower() + text[1:]}"
    return text


# What files that wait for a model are found by now, and by what once it is set up:
# (what, one file, many files, found now (one, many), found then (one, many), the model).
_WAITING_TEXT = (
    (
        "clip",
        ("photo or video", "photos and videos"),
        ("its name, date and any text in it", "their names, dates and any text in them"),
        ("what it shows", "what they show"),
        "the CLIP model",
    ),
    (
        "speech",
        ("recording or video", "recordings and videos"),
        ("its name and date", "their names and dates"),
        ("what is said in it", "what is said in them"),
        "the speech model",
    ),
    ("text", ("file", "files"), ("its words", "their words"), ("its meaning", "their meaning"), "the text model"),
)


def describe_waiting(waiting: dict[str, int]) -> list[str]:
    """Sentences for files indexed before a model was here: what works now and what follows."""
    lines = []
    for what, nouns, now, later, model in _WAITING_TEXT:
        n = waiting.get(what, 0)
        if n:
            many = int(n != 1)
            lines.append(
                f"{n} {nouns[many]}: found by {now[many]} now, and by {later[many]} once {model} is set up "
                f"(File ▸ Set up models…); {'they are' if many else 'it is'} finished then without indexing again."
            )
    return lines


def describe_reembed(summary: Any) -> str:
    """One line for a re-embedding run's :class:`~engine.ingest.IndexSummary`."""
    if summary.cancelled:
        return "Stopped. Nothing changed: searches keep using the model the library was built with."
    text = "Done: searches now use the new model."
    if summary.failed:
        text += f" {_plural(len(summary.failed), 'file')} could not be read again (listed below)."
    return text


def readable_reason(reason: str) -> str:
    """A failure reason as a sentence: the engine's reasons are written for a person, less their command-line advice."""
    reason = window_text((reason or "unknown reason").strip())
    return reason[0].upper() + reason[1:]


def _phase_text(message: str) -> str:
    message = (message or "").strip()
    return message[0].upper() + message[1:] if message else ""


def when_alive(obj: QObject, fn: Callable[..., None]) -> Callable[..., None]:
    """Wrap a ``run_task`` callback so it is dropped when ``obj`` was deleted while the task ran.

    A result may arrive after the person closed the dialog or panel that asked for it.
    """

    def call(*args: Any) -> None:
        if shiboken6.isValid(obj):
            fn(*args)

    return call


class _ElidedLabel(QLabel):
    """A one-line label that shortens its text in the middle instead of widening the window.

    Its size hint does not follow the text, so a new file name every few
    milliseconds never makes the layout recompute.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.PlainText)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(40, self.width())
        self.setText(QFontMetrics(self.font()).elidedText(self._full, Qt.TextElideMode.ElideMiddle, width))


# ---------------------------------------------------------------------------------------------
# The progress panel


class PanelState(enum.Enum):
    """What the progress panel shows."""

    IDLE = "idle"  # one quiet line; the container may hide the panel
    RUNNING = "running"  # a job's progress, with Cancel
    STOPPING = "stopping"  # Cancel was pressed; the job ends after its current batch
    FINISHED = "finished"  # what the last job did


class IndexingPanel(QWidget):
    """Shows indexing (or re-embedding) as it runs and what it did; for a dock or a bottom bar.

    ``IndexingPanel(controller, parent=None)``.  It follows the controller's
    ``index_*`` and ``reembed_*`` signals (started / progress / finished /
    failed).  While a run goes: a progress bar, the file being read, "about 2 min
    left" and a Cancel button (``controller.cancel_indexing``: what was done is
    kept; ``controller.cancel_reembed``: the old model stays).  After it: a
    summary ("Added 120 · 3 failed"), the failed files with their reason, and
    Retry failed (``controller.retry_failed``) after indexing.

    When idle it shows one quiet line and emits ``visibility_wanted(False)``; when a
    run starts, ``visibility_wanted(True)``.  Its container (a ``QDockWidget``, a
    bottom bar) connects that signal to its own ``setVisible``.

    Signals: ``visibility_wanted(bool)``; ``summary_shown(object)`` after a run's
    summary (an ``IndexSummary``) is on screen.
    """

    visibility_wanted = Signal(bool)
    summary_shown = Signal(object)

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.state = PanelState.IDLE
        self.job = Job.NONE  # the job shown (the one running, or the last one)
        self.last_summary: Any = None

        self.idle_label = QLabel("Not indexing. Drop files or folders on the window to add them to the library.")
        self.idle_label.setWordWrap(True)
        self.idle_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.title = QLabel("Indexing")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.message_label = _ElidedLabel()
        self.eta_label = QLabel()
        self.eta_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop indexing; the files indexed so far are kept")

        self.summary_label = QLabel()
        self.summary_label.setTextFormat(Qt.TextFormat.PlainText)
        self.summary_label.setWordWrap(True)
        self.retry_button = QPushButton("Retry failed")
        self.retry_button.setToolTip("Try the files that failed again")
        self.dismiss_button = QPushButton("Close")
        self.dismiss_button.setToolTip("Hide this summary")
        self.failures = QTreeWidget()
        self.failures.setColumnCount(2)
        self.failures.setHeaderLabels(["File", "Why it was not indexed"])
        self.failures.setRootIsDecorated(False)
        self.failures.setUniformRowHeights(True)
        self.failures.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.failures.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.failures.header().setStretchLastSection(True)

        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.eta_label)
        top.addWidget(self.cancel_button)
        top.addWidget(self.retry_button)
        top.addWidget(self.dismiss_button)
        self._running = QWidget()
        running = QVBoxLayout(self._running)
        running.setContentsMargins(0, 0, 0, 0)
        running.addWidget(self.progress_bar)
        running.addWidget(self.message_label)
        self._result = QWidget()
        result = QVBoxLayout(self._result)
        result.setContentsMargins(0, 0, 0, 0)
        result.addWidget(self.summary_label)
        result.addWidget(self.failures)

        layout = QVBoxLayout(self)
        layout.addWidget(self.idle_label)
        layout.addLayout(top)
        layout.addWidget(self._running)
        layout.addWidget(self._result)
        self._show_state(PanelState.IDLE)

        self.cancel_button.clicked.connect(self.cancel)
        self.retry_button.clicked.connect(self.retry_failed)
        self.dismiss_button.clicked.connect(self.dismiss)
        controller.index_started.connect(self._started)
        controller.index_progress.connect(self._progress)
        controller.index_finished.connect(self._finished)
        controller.index_failed.connect(self._failed)
        controller.reembed_started.connect(self._reembed_started)
        controller.reembed_progress.connect(self._progress)
        controller.reembed_finished.connect(self._finished)
        controller.reembed_failed.connect(self._failed)

    # -- actions -----------------------------------------------------------

    def cancel(self) -> None:
        """Stop the run after the batch in flight; what was indexed stays (a re-embed keeps the old model)."""
        if self.state is not PanelState.RUNNING:
            return
        self.state = PanelState.STOPPING
        self.cancel_button.setEnabled(False)
        self.eta_label.setText("")
        if self.job is Job.REEMBED:
            self.controller.cancel_reembed()
            self.message_label.set_full_text("Stopping; searches keep using the model the library was built with…")
        else:
            self.controller.cancel_indexing()
            self.message_label.set_full_text("Stopping after the current batch; what was indexed is kept…")

    def retry_failed(self) -> None:
        """Index the files that failed again."""
        self.retry_button.setEnabled(False)
        self.controller.retry_failed()
        if self.state is PanelState.FINISHED:  # nothing started: no file is recorded as failed any more
            self.retry_button.setEnabled(True)
            self.summary_label.setText(f"{self.summary_label.text()}\nNo file is waiting to be retried.")

    def dismiss(self) -> None:
        """Hide the summary of the last run."""
        self._show_state(PanelState.IDLE)

    # -- controller signals ----------------------------------------------------

    def _started(self, paths: list) -> None:
        self.job = Job.INDEX
        self.cancel_button.setToolTip("Stop indexing; the files indexed so far are kept")
        if not paths:
            self.title.setText("Rescanning every folder")
            self.title.setToolTip("Finding new, changed, moved and deleted files in the library's folders")
        elif len(paths) == 1:
            name = os.path.basename(os.path.normpath(paths[0])) or paths[0]
            self.title.setText(f"Indexing {name}")
            self.title.setToolTip(paths[0])
        else:
            self.title.setText(f"Indexing {_plural(len(paths), 'item')}")
            self.title.setToolTip("\n".join(paths[:20]))
        self._running_now("Looking for files…")

    def _reembed_started(self, what: str) -> None:
        self.job = Job.REEMBED
        self.title.setText(f"Re-embedding {what}")
        self.title.setToolTip("Search keeps working with the old model until the new one is ready")
        self.cancel_button.setToolTip("Stop re-embedding; the library keeps the model it was built with")
        self._running_now("Reading the library…")

    def _running_now(self, message: str) -> None:
        self.progress_bar.setRange(0, 0)  # busy until the first count arrives
        self.progress_bar.setFormat("")
        self.message_label.set_full_text(message)
        self.eta_label.setText("")
        self.cancel_button.setEnabled(True)
        self._show_state(PanelState.RUNNING)

    def _progress(self, done: int, total: int, message: str, seconds_left: Any) -> None:
        if self.state not in (PanelState.RUNNING, PanelState.STOPPING):
            return
        if total > 0:
            if self.progress_bar.maximum() != total:
                self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(min(done, total))
        elif self.progress_bar.maximum() != 0:
            self.progress_bar.setRange(0, 0)
        if self.state is PanelState.STOPPING:
            return
        if os.path.isabs(message):  # a file being read
            self.progress_bar.setFormat("%v of %m files")
            folder = os.path.basename(os.path.dirname(message))
            where = f" in {folder}" if folder else ""
            self.message_label.set_full_text(f"Reading {os.path.basename(message)}{where}")
            self.message_label.setToolTip(message)
            self.eta_label.setText(format_time_left(seconds_left))
        else:  # a phase: "comparing with the library", "auto-tagging photos", ...
            self.progress_bar.setFormat("%v of %m")
            self.message_label.set_full_text(_phase_text(message) + "…")
            self.message_label.setToolTip("")
            self.eta_label.setText(format_time_left(seconds_left) if total > 0 else "")

    def _finished(self, summary: Any) -> None:
        self.last_summary = summary
        seconds = getattr(summary, "seconds", 0.0) or 0.0
        took = f" (in {seconds:.0f} s)" if seconds >= 1 else ""
        if self.job is Job.REEMBED:
            self.title.setText("Re-embedding stopped" if summary.cancelled else "Re-embedding finished")
            self.summary_label.setText(describe_reembed(summary) + ("" if summary.cancelled else took))
        else:
            self.title.setText("Indexing stopped" if summary.cancelled else "Indexing finished")
            lines = [describe_summary(summary) + took, *describe_waiting(getattr(summary, "waiting", {}) or {})]
            if getattr(summary, "completed", 0):
                lines.append(f"Finished {_plural(summary.completed, 'file')} that waited for a model.")
            self.summary_label.setText("\n".join(lines))
        self._fill_failures(summary.failed)
        self._show_state(PanelState.FINISHED)
        self.summary_shown.emit(summary)

    def _failed(self, message: str) -> None:
        self.last_summary = None
        text = _phase_text(message) or "Something went wrong."
        if self.job is Job.REEMBED:
            self.title.setText("Re-embedding failed")
            text = f"{text.rstrip('.')}. Searches keep using the model the library was built with."
        else:
            self.title.setText("Indexing stopped")
        self.summary_label.setText(text)
        self._fill_failures([])
        self._show_state(PanelState.FINISHED)

    # -- drawing -------------------------------------------------------------

    def _fill_failures(self, failed: Iterable[dict]) -> None:
        self.failures.clear()
        rows = []
        for failure in failed:
            path = failure.get("path", "")
            row = QTreeWidgetItem([os.path.basename(path) or path, readable_reason(failure.get("reason", ""))])
            row.setToolTip(0, path)
            row.setToolTip(1, readable_reason(failure.get("reason", "")))
            row.setData(0, Qt.ItemDataRole.UserRole, path)
            rows.append(row)
        self.failures.addTopLevelItems(rows)
        self.failures.setVisible(bool(rows))
        if rows:  # as tall as its rows, up to eight; then it scrolls
            row_height = self.failures.sizeHintForRow(0)
            frame = 2 * self.failures.frameWidth() + self.failures.header().sizeHint().height()
            self.failures.setFixedHeight(frame + row_height * min(len(rows), 8) + 2)
        self.retry_button.setEnabled(True)

    def failure_rows(self) -> list[tuple[str, str]]:
        """(path, reason) of each failure listed."""
        rows = []
        for i in range(self.failures.topLevelItemCount()):
            item = self.failures.topLevelItem(i)
            assert item is not None  # i < topLevelItemCount()
            rows.append((item.data(0, Qt.ItemDataRole.UserRole), item.text(1)))
        return rows

    def _show_state(self, state: PanelState) -> None:
        self.state = state
        running = state in (PanelState.RUNNING, PanelState.STOPPING)
        finished = state is PanelState.FINISHED
        self._running.setVisible(running)
        self.eta_label.setVisible(running)
        self.cancel_button.setVisible(running)
        self._result.setVisible(finished)
        self.dismiss_button.setVisible(finished)
        self.retry_button.setVisible(finished and self.job is Job.INDEX and self.failures.topLevelItemCount() > 0)
        self.idle_label.setVisible(state is PanelState.IDLE)
        self.title.setVisible(state is not PanelState.IDLE)
        self.visibility_wanted.emit(state is not PanelState.IDLE)


# ---------------------------------------------------------------------------------------------
# The library's folders


def add_folder_dialog(parent: QWidget | None, controller: AppController) -> str | None:
    """Ask for a folder and index it; returns the folder, or None when the person cancelled."""
    folder = QFileDialog.getExistingDirectory(parent, "Add a folder to the library", os.path.expanduser("~"))
    if not folder:
        return None
    controller.index([folder])
    return folder


class FoldersPanel(QWidget):
    """The library's folders with Add folder… (and Remove when ``removable``).

    ``FoldersPanel(controller, parent=None, *, removable=False)``.  The list is
    read off the GUI thread and refreshed on ``library_opened`` and
    ``library_changed``; Add folder… indexes the chosen folder through the
    controller.  Remove forgets a folder's files (never touching them on disk)
    after the person confirms.

    Signals: ``folders_shown(list)`` with the folders after each refresh.
    """

    folders_shown = Signal(list)

    def __init__(self, controller: AppController, parent: QWidget | None = None, *, removable: bool = False):
        super().__init__(parent)
        self.controller = controller
        self._generation = 0
        self.folders: list[str] = []

        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.add_button = QPushButton("Add folder…")
        self.add_button.setToolTip("Choose a folder; Shoebox indexes its photos, documents and recordings")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Forget this folder's files (they stay on your disk)")
        self.remove_button.setVisible(removable)
        self.remove_button.setEnabled(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.note)
        layout.addLayout(buttons)

        self.add_button.clicked.connect(lambda: add_folder_dialog(self, self.controller))
        self.remove_button.clicked.connect(self.remove_selected)
        self.list.itemSelectionChanged.connect(lambda: self.remove_button.setEnabled(bool(self.list.selectedItems())))
        controller.library_opened.connect(self.refresh)
        controller.library_changed.connect(self.refresh)
        # "The library is opening…" ends when it fails to open, too.
        controller.library_failed.connect(
            when_alive(self, lambda message: self.note.setText(f"The library could not be opened: {message}"))
        )
        self.refresh()

    def refresh(self) -> None:
        """Read the folders again (off the GUI thread)."""
        if not self.controller.is_open:
            self.note.setText("The library is opening…")
            return
        self._generation += 1
        generation = self._generation

        def show(rows: list[tuple[str, bool]]) -> None:
            if generation == self._generation:
                self._show(rows)

        def failed(message: str) -> None:
            if generation == self._generation:
                self.note.setText(f"Cannot list the folders: {message}")

        self.controller.folders(when_alive(self, show), when_alive(self, failed))

    def _show(self, rows: list[tuple[str, bool]]) -> None:
        self.list.clear()
        self.folders = [root for root, _ in rows]
        for root, present in rows:
            missing = "  (not found: moved, renamed or on a disk that is not connected)"
            item = QListWidgetItem(root if present else root + missing)
            item.setData(Qt.ItemDataRole.UserRole, root)
            item.setToolTip(root)
            self.list.addItem(item)
        self.note.setText("" if rows else "No folders yet: add one, or drop files and folders on the window.")
        self.folders_shown.emit(list(self.folders))

    def remove_selected(self) -> None:
        items = self.list.selectedItems()
        if not items:
            return
        folder = items[0].data(Qt.ItemDataRole.UserRole)
        if self.controller.job is not Job.NONE:
            self.note.setText("Wait for indexing (or re-embedding) to finish before removing a folder.")
            return
        answer = QMessageBox.question(
            self,
            "Remove folder",
            f"Remove {folder} from the library?\n\nShoebox forgets what it found in this folder. "
            "The files themselves stay where they are.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.remove_button.setEnabled(False)

        def done(count: int) -> None:
            self.note.setText(f"Removed {folder} ({_plural(count, 'file')}) from the library.")

        self.controller.forget_folder(
            folder,
            when_alive(self, done),
            when_alive(self, lambda message: self.note.setText(f"Cannot remove {folder}: {message}")),
        )


# ---------------------------------------------------------------------------------------------
# Drops


def paths_from_mime(mime: QMimeData | None) -> list[str]:
    """The local files and folders a drag carries; web and other non-local URLs are left out."""
    if mime is None or not mime.hasUrls():
        return []
    paths = []
    for url in mime.urls():
        if url.isLocalFile():
            path = url.toLocalFile()
            if path:
                paths.append(os.path.normpath(path))
    return list(dict.fromkeys(paths))


class DropIndexer(QObject):
    """The event filter :func:`install_drop_indexing` puts on a window.

    It only sees drags that reached the window itself: Qt offers a drag to the
    widget under the pointer first and passes it to the parent only when that
    widget does not accept it, so a child that takes its own drops (the search
    field taking a photo) keeps them.

    Signals: ``paths_dropped(list)`` when a drop was taken (before indexing starts).
    """

    paths_dropped = Signal(list)

    def __init__(self, window: QWidget, controller: AppController):
        super().__init__(window)
        self.window = window
        self.controller = controller

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove) and isinstance(event, QDragMoveEvent):
            return self._drag(event)
        if kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            return self._drop(event)
        return False

    def _drag(self, event: QDragEnterEvent | QDragMoveEvent) -> bool:
        if paths_from_mime(event.mimeData()):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()
        return True

    def _drop(self, event: QDropEvent) -> bool:
        paths = paths_from_mime(event.mimeData())
        if not paths:
            event.ignore()
            return True
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self.paths_dropped.emit(paths)
        # Later, not inside the drop: the drag source's native loop is still waiting for the
        # drop to return, and indexing may open dialogs or queue work.
        QTimer.singleShot(0, self, lambda: self.controller.index(paths))
        return True


def install_drop_indexing(window: QWidget, controller: AppController) -> DropIndexer:
    """Let a person drop files and folders on ``window`` to index them; returns the filter.

    Local files and folders are indexed through ``controller.index``; web links
    and other non-local URLs are refused.  Children that accept drops themselves
    keep them.
    """
    window.setAcceptDrops(True)
    dropper = DropIndexer(window, controller)
    window.installEventFilter(dropper)
    return dropper
