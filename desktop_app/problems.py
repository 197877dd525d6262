"""View ▸ Problems: every file of the library that could not be read, with why, at any time.

The indexing panel lists the failures of the run that just ended; once it is
dismissed they were only a count in the status bar.  :class:`ProblemsWindow`
lists every file the library records as failed (its name, the reason stored
with it, its folder and when it failed), narrows them by a filter, and offers
Open, Show in folder and Retry on the selected rows.  Retry is offered only
where the cause can have gone away (:func:`retry_hint`): a missing model, text
recognition that was off, a file that could not be read, or a file that changed
since; a damaged or unsupported file that is unchanged would fail the same way.

The rows are read off the GUI thread (``AppController.failures``) into a
:class:`ProblemsModel`, so thousands of them cost one view, not a widget each.
The list is read again when indexing ends, when the library changes and when
the window comes back to the front (a file may have been fixed meanwhile).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QFont, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from .controller import AppController
from .indexing import readable_reason, when_alive

EMPTY_TEXT = "No problems: every file was read."
OPEN_AT_MOST = 10  # a stray Enter on a large selection must not open a hundred windows
REVEAL_AT_MOST = 5

# Reasons whose cause lies outside the file, and can be put right without touching it.
_MODEL_MISSING = re.compile(
    r"weights|model cache|not on this computer|models (download|import)|no (clip|text) model is configured",
    re.IGNORECASE,
)
_OCR_OFF = re.compile(
    r"text recognition (is off|was not asked for|failed to start)|text is not recognised|tesseract", re.IGNORECASE
)
_NOT_READ = re.compile(
    r"permission denied|may not read|cannot read the file|cannot open the folder|not enough memory", re.IGNORECASE
)


def retry_hint(reason: str, *, present: bool = True, changed: bool = False) -> tuple[bool, str]:
    """Whether retrying a failed file can succeed now, and a sentence that says why (or why not).

    ``reason`` is the sentence stored with the failure; ``present`` whether the
    file is still there; ``changed`` whether its size or time differ from when
    it failed.
    """
    if not present:
        return False, "The file is not there any more (moved, deleted or on a disk that is not connected)."
    if changed:
        return True, "The file changed since it failed: Retry reads it again."
    if _MODEL_MISSING.search(reason or ""):
        return True, "It needs a model: Retry once the model is set up (File ▸ Set up models…)."
    if _OCR_OFF.search(reason or ""):
        return True, "It needs text recognition: Retry once it is on."
    if _NOT_READ.search(reason or ""):
        return True, "It could not be read at the time: Retry once it can be (permissions, memory, the disk)."
    return False, "Retrying would fail the same way until the file is replaced or repaired."


def format_failed_at(stamp: float | None, now: datetime | None = None) -> str:
    """When a file failed, briefly: "today 14:03", "yesterday 09:12", "3 Mar 14:03", "3 Mar 2023"."""
    if not stamp:
        return ""
    when = datetime.fromtimestamp(stamp)
    now = now or datetime.now()
    days = (now.date() - when.date()).days
    if days == 0:
        return f"today {when:%H:%M}"
    if days == 1:
        return f"yesterday {when:%H:%M}"
    if when.year == now.year:
        return f"{when.day} {when:%b %H:%M}"
    return f"{when.day} {when:%b %Y}"


def _short_folder(folder: str) -> str:
    """A folder (or file) under the home folder as ``~/…``."""
    home = os.path.expanduser("~")
    if home not in ("", "/") and (folder == home or folder.startswith(home + os.sep)):
        return "~" + folder[len(home) :]
    return folder


@dataclass(frozen=True)
class Problem:
    """One failed file as the window shows it."""

    path: str
    folder: str
    reason: str  # as stored
    failed_at: float
    present: bool
    changed: bool
    retryable: bool
    hint: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path) or self.path

    @classmethod
    def from_row(cls, row: dict) -> Problem:
        """From an ``AppController.failures`` row."""
        reason = str(row.get("reason") or "")
        present, changed = bool(row.get("present", True)), bool(row.get("changed", False))
        retryable, hint = retry_hint(reason, present=present, changed=changed)
        path = str(row["path"])
        return cls(
            path=path,
            folder=str(row.get("folder") or os.path.dirname(path)),
            reason=reason,
            failed_at=float(row.get("failed_at") or 0.0),
            present=present,
            changed=changed,
            retryable=retryable,
            hint=hint,
        )


# ---------------------------------------------------------------------------------------------
# The model


class ProblemsModel(QAbstractTableModel):
    """The failed files as a table: Name, Reason, Folder, Failed.  ``Qt.UserRole`` gives the :class:`Problem`.

    It filters and sorts itself, in one pass over its rows in Python, rather
    than through a ``QSortFilterProxyModel``: a proxy asks for each row's data
    one call at a time, which for tens of thousands of rows held the GUI thread
    for seconds.  The view only asks for the rows it paints.
    """

    NAME, REASON, FOLDER, WHEN = range(4)
    HEADERS = ("Name", "Reason", "Folder", "Failed")

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self._all: list[Problem] = []
        self._texts: list[tuple[str, str, str, str]] = []  # what each row shows, worked out once
        self._haystacks: list[str] = []
        self._shown: list[int] = []  # indexes into _all, filtered and sorted
        self._words: list[str] = []
        self._retryable_only = False
        self._sort: tuple[int, Qt.SortOrder] = (self.WHEN, Qt.SortOrder.DescendingOrder)

    # -- contents --------------------------------------------------------------------

    def set_problems(self, problems: Sequence[Problem]) -> None:
        now = datetime.now()
        self.beginResetModel()
        self._all = list(problems)
        self._texts = [
            (p.name, readable_reason(p.reason), _short_folder(p.folder), format_failed_at(p.failed_at, now))
            for p in self._all
        ]
        self._haystacks = [f"{p.name}\n{p.folder}\n{p.reason}".casefold() for p in self._all]
        self._arrange()
        self.endResetModel()

    def set_filter(self, text: str, *, retryable_only: bool = False) -> None:
        """Keep the rows whose name, folder or reason hold every word of ``text`` (any case)."""
        words = text.casefold().split()
        if (words, retryable_only) == (self._words, self._retryable_only):
            return
        self.beginResetModel()
        self._words, self._retryable_only = words, retryable_only
        self._arrange()
        self.endResetModel()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.HEADERS):
            return
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        paths = [self._all[self._shown[i.row()]].path if i.row() < len(self._shown) else "" for i in before]
        self._sort = (column, order)
        self._arrange()
        rows = {self._all[i].path: row for row, i in enumerate(self._shown)}
        self.changePersistentIndexList(
            before,
            [
                self.index(rows[path], i.column()) if path in rows else QModelIndex()
                for i, path in zip(before, paths, strict=True)
            ],
        )
        self.layoutChanged.emit()

    def _arrange(self) -> None:
        words, only = self._words, self._retryable_only
        shown = [
            i
            for i, (p, haystack) in enumerate(zip(self._all, self._haystacks, strict=True))
            if (not only or p.retryable) and all(word in haystack for word in words)
        ]
        column, order = self._sort
        if column == self.WHEN:
            shown.sort(key=lambda i: (self._all[i].failed_at, self._texts[i][0].casefold()))
        else:
            shown.sort(key=lambda i: (self._texts[i][column].casefold(), self._texts[i][0].casefold()))
        if order == Qt.SortOrder.DescendingOrder:
            shown.reverse()
        self._shown = shown

    def total(self) -> int:
        """How many problems there are, past the filter or not."""
        return len(self._all)

    def problems(self) -> list[Problem]:
        """Every problem, filtered out or not."""
        return list(self._all)

    def problem(self, row: int) -> Problem:
        """The problem shown at ``row``."""
        return self._all[self._shown[row]]

    def row_of(self, path: str) -> int | None:
        for row, i in enumerate(self._shown):
            if self._all[i].path == path:
                return row
        return None

    # -- QAbstractTableModel ---------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._shown)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._shown):
            return None
        i, column = self._shown[index.row()], index.column()
        problem = self._all[i]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._texts[i][column]
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.NAME:
                return problem.path
            if column == self.REASON:
                return f"{readable_reason(problem.reason)}\n\n{problem.hint}"
            if column == self.FOLDER:
                return problem.folder
            return datetime.fromtimestamp(problem.failed_at).strftime("%d %B %Y %H:%M") if problem.failed_at else ""
        if role == Qt.ItemDataRole.FontRole and column == self.NAME and problem.retryable:
            font = QFont()
            font.setBold(True)  # what Retry can help with stands out
            return font
        if role == Qt.ItemDataRole.UserRole:
            return problem
        return None


class _ElideRight(QStyledItemDelegate):
    """A sentence is cut at its end; names and folders (the view's default) in the middle."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideRight


# ---------------------------------------------------------------------------------------------
# The window


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


class ProblemsWindow(QWidget):
    """Every file that could not be read, with Open, Show in folder and Retry.

    ``ProblemsWindow(controller, parent=None)``: a window of its own (kept above
    ``parent``).  It reads the failures through ``controller.failures`` when it
    is shown, when indexing ends, when the library changes and when it comes
    back to the front; Retry re-indexes the selected files that can succeed
    through ``controller.index(paths, retry_failed=True)`` and shows the run's
    progress at the bottom.

    Signals: ``open_requested(str)`` for each file to open and
    ``reveal_requested(list)`` with the files whose folders to show (the main
    window answers both as its results do); ``problems_shown(int)`` after each
    refresh, with how many files are listed.
    """

    open_requested = Signal(str)
    reveal_requested = Signal(list)
    problems_shown = Signal(int)

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.controller = controller
        self._generation = 0
        self._stale = True
        self._retrying: list[str] = []  # the paths of the retry asked for here
        self._retry_started = False  # whether that retry runs now (else it waits behind another job)
        self.setWindowTitle("Problems – Shoebox")
        self.resize(980, 520)

        self.title = QLabel("Reading the library…")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.title.setFont(font)
        self.subtitle = QLabel(
            "Shoebox leaves these files out until they change. Names in bold can be retried once their cause is fixed."
        )
        self.subtitle.setWordWrap(True)
        self.subtitle.setForegroundRole(QPalette.ColorRole.PlaceholderText)

        self.filter_field = QLineEdit()
        self.filter_field.setPlaceholderText("Filter by name, folder or reason")
        self.filter_field.setClearButtonEnabled(True)
        self.filter_field.setAccessibleName("Filter problems")
        self.retryable_only = QCheckBox("Only those that can be retried")

        self.model = ProblemsModel(self)
        self.view = QTreeView()
        self.view.setModel(self.model)
        self.view.setRootIsDecorated(False)
        self.view.setUniformRowHeights(True)  # thousands of rows lay out without measuring each
        self.view.setAlternatingRowColors(True)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(ProblemsModel.WHEN, Qt.SortOrder.DescendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setAllColumnsShowFocus(True)
        self.view.setItemDelegateForColumn(ProblemsModel.REASON, _ElideRight(self.view))
        self.view.setStyleSheet("QTreeView::item { padding: 3px 0px; }")  # rows that are easy to tell apart
        header = self.view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(ProblemsModel.REASON, QHeaderView.ResizeMode.Stretch)
        for column, width in ((ProblemsModel.NAME, 190), (ProblemsModel.FOLDER, 230), (ProblemsModel.WHEN, 120)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)

        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.empty_label)

        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setMinimumHeight(self.details.fontMetrics().lineSpacing() * 3 + 4)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(260)
        self.progress_bar.setTextVisible(True)

        self.open_action = self._action("Open", self.open_selected, "Open with the default application (Enter)")
        self.reveal_action = self._action("Show in folder", self.reveal_selected, "Open the folder that holds it")
        self.retry_action = self._action(
            "Retry",
            self.retry_selected,
            "Index the selected files again. Only files whose problem can have gone away are retried: "
            "a damaged or unsupported file fails the same way until it is replaced.",
        )
        self.retry_action.setShortcut(QKeySequence("Ctrl+R"))
        for action in (self.open_action, self.reveal_action, self.retry_action):
            self.view.addAction(action)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.open_button = self._button(self.open_action)
        self.reveal_button = self._button(self.reveal_action)
        self.retry_button = self._button(self.retry_action)
        close_action = QAction("Close", self)
        close_action.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        close_action.triggered.connect(self.close)
        self.addAction(close_action)

        top = QHBoxLayout()
        top.addWidget(self.filter_field, 1)
        top.addWidget(self.retryable_only)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress_label)
        bottom.addWidget(self.progress_bar)
        bottom.addStretch(1)
        bottom.addWidget(self.open_button)
        bottom.addWidget(self.reveal_button)
        bottom.addWidget(self.retry_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        layout.setSpacing(8)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.details)
        layout.addLayout(bottom)

        self._refresh_timer = QTimer(self, singleShot=True, interval=0)  # coalesces the reasons to read again
        self._refresh_timer.timeout.connect(self.refresh)
        self.filter_field.textChanged.connect(self._filter_changed)
        self.retryable_only.toggled.connect(self._filter_changed)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.view.doubleClicked.connect(lambda _index: self.open_selected())
        controller.library_opened.connect(self._changed)
        controller.library_failed.connect(when_alive(self, self._library_failed))
        controller.library_changed.connect(self._changed)
        controller.index_finished.connect(self._index_finished)
        controller.index_failed.connect(self._index_failed)
        controller.index_started.connect(self._index_started)
        controller.index_progress.connect(self._index_progress)
        self._show_progress("")
        self._selection_changed()

    def _action(self, text: str, slot: Any, tip: str) -> QAction:
        action = QAction(text, self)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    @staticmethod
    def _button(action: QAction) -> QPushButton:
        button = QPushButton(action.text())
        button.setToolTip(action.toolTip())
        button.clicked.connect(action.trigger)
        action.enabledChanged.connect(button.setEnabled)
        return button

    # -- reading -------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the failures again (off the GUI thread); only the latest answer is shown."""
        self._refresh_timer.stop()
        if not self.controller.is_open:
            self.title.setText("The library is opening…")
            return
        self._stale = False
        self._generation += 1
        generation = self._generation

        def show(rows: list[dict]) -> None:
            if generation == self._generation:
                self.set_problems([Problem.from_row(row) for row in rows])

        def failed(message: str) -> None:
            if generation == self._generation:
                self.title.setText("The problems could not be read")
                self.details.setText(message)

        self.controller.failures(when_alive(self, show), when_alive(self, failed))

    def _library_failed(self, message: str) -> None:
        """ "The library is opening…" ends: it will not open."""
        self.title.setText("The library could not be opened")
        self.details.setText(message)

    def _changed(self, *_args: Any) -> None:
        """Something may have changed: read again now if the window is open, else when it opens."""
        self._stale = True
        if self.isVisible():
            self._refresh_timer.start()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # Back at the front: the person may have fixed a file meanwhile (replaced it, changed
        # its permissions), which only a fresh look at the disk can tell.
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow() and self.isVisible():
            self._refresh_timer.start()

    def set_problems(self, problems: Sequence[Problem]) -> None:
        """Show ``problems`` (keeps the selected files selected)."""
        selected = {p.path for p in self.selected_problems()}
        current = self.current_problem()
        self.model.set_problems(problems)
        if selected:
            self._select_paths(selected, current.path if current is not None else None)
        count = len(problems)
        retryable = sum(p.retryable for p in problems)
        if count:
            self.title.setText(f"{_plural(count, 'file')} could not be read")
            if retryable:
                self.title.setText(f"{self.title.text()} · {retryable} can be retried")
        else:
            self.title.setText("Problems")
        self.subtitle.setVisible(bool(count))
        self._update_empty()
        self._selection_changed()
        self.problems_shown.emit(count)

    def _select_paths(self, paths: set[str], current: str | None) -> None:
        selection = QItemSelection()
        last = self.model.columnCount() - 1
        start = None  # contiguous rows go in as one range: a range per row is slow for thousands
        for row in range(self.model.rowCount() + 1):
            path = self.model.problem(row).path if row < self.model.rowCount() else None
            if path is not None and path in paths:
                start = row if start is None else start
            elif start is not None:
                selection.select(self.model.index(start, 0), self.model.index(row - 1, last))
                start = None
            if path is not None and path == current:
                self.view.selectionModel().setCurrentIndex(
                    self.model.index(row, 0), QItemSelectionModel.SelectionFlag.NoUpdate
                )
        self.view.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    # -- filtering -----------------------------------------------------------------

    def _filter_changed(self, *_args: Any) -> None:
        selected = {p.path for p in self.selected_problems()}
        current = self.current_problem()
        self.model.set_filter(self.filter_field.text(), retryable_only=self.retryable_only.isChecked())
        if selected:
            self._select_paths(selected, current.path if current is not None else None)
        self._update_empty()
        self._selection_changed()

    def _update_empty(self) -> None:
        if self.model.total() == 0:
            self.empty_label.setText(EMPTY_TEXT)
        elif self.model.rowCount() == 0:
            text = self.filter_field.text().strip()
            if text:
                self.empty_label.setText(f"No problem matches “{text}”.")
            else:
                self.empty_label.setText("None of these files can be retried now.")
        self.stack.setCurrentWidget(self.view if self.model.rowCount() else self.empty_label)
        self.filter_field.setEnabled(self.model.total() > 0)
        self.retryable_only.setEnabled(self.model.total() > 0)

    # -- what is shown ---------------------------------------------------------------

    def shown_problems(self) -> list[Problem]:
        """The problems listed now, past the filter, in the order shown."""
        return [self.model.problem(row) for row in range(self.model.rowCount())]

    def selected_problems(self) -> list[Problem]:
        rows = sorted({index.row() for index in self.view.selectionModel().selectedRows()})
        return [self.model.problem(row) for row in rows]

    def current_problem(self) -> Problem | None:
        index = self.view.currentIndex()
        return index.data(Qt.ItemDataRole.UserRole) if index.isValid() else None

    def select(self, paths: Sequence[str]) -> None:
        """Select the listed rows of ``paths`` (the first becomes current)."""
        self._select_paths(set(paths), paths[0] if paths else None)

    def _selection_changed(self, *_args: Any) -> None:
        selected = self.selected_problems()
        self.open_action.setEnabled(any(p.present for p in selected))
        self.reveal_action.setEnabled(bool(selected))
        self.retry_action.setEnabled(any(p.retryable for p in selected))
        if len(selected) == 1:
            p = selected[0]
            self.details.setText(f"{_short_folder(p.path)}\n{readable_reason(p.reason)}\n{p.hint}")
        elif selected:
            retryable = sum(p.retryable for p in selected)
            can = f"{retryable} of them can be retried." if retryable else "None of them can be retried now."
            self.details.setText(f"{_plural(len(selected), 'file')} selected. {can}")
        elif self.model.rowCount():
            self.details.setText("Select a file to see where it is and what would help.")
        else:
            self.details.setText("")

    # -- actions -------------------------------------------------------------------

    def open_selected(self) -> None:
        for problem in [p for p in self.selected_problems() if p.present][:OPEN_AT_MOST]:
            self.open_requested.emit(problem.path)

    def reveal_selected(self) -> None:
        paths = [p.path for p in self.selected_problems()]
        if paths:
            self.reveal_requested.emit(paths)

    def retry_selected(self) -> None:
        """Index again the selected files that can succeed now (queued behind a running job)."""
        paths = [p.path for p in self.selected_problems() if p.retryable]
        if not paths:
            return
        self._retrying, self._retry_started = paths, False
        self.retry_action.setEnabled(False)
        self.controller.index(paths, retry_failed=True)
        if not self._retry_started:
            self._show_progress(f"Retry of {_plural(len(paths), 'file')} queued: it starts when the running job ends.")

    # -- indexing runs -------------------------------------------------------------

    def _index_started(self, paths: list) -> None:
        mine = bool(self._retrying) and not self._retry_started and list(paths) == self._retrying
        if mine:
            self._retry_started = True
        self._show_progress(f"Retrying {_plural(len(paths), 'file')}…" if mine else "Indexing…", running=True)
        self.progress_bar.setRange(0, 0)  # busy until the first count arrives

    def _index_progress(self, done: int, total: int, _message: str, _seconds_left: Any) -> None:
        if total > 0 and self.progress_bar.isVisibleTo(self):
            if self.progress_bar.maximum() != total:
                self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(min(done, total))

    def _index_finished(self, summary: Any) -> None:
        if self._retrying and self._retry_started:
            still = len(getattr(summary, "failed", None) or [])
            read = max(0, len(self._retrying) - still)
            text = f"Retried {_plural(len(self._retrying), 'file')}: {read} read now"
            if still:
                text += f", {still} failed again (see the reason listed now)"
            self._show_progress(text + ".")
            self._retrying = []
        elif self._retrying and getattr(summary, "cancelled", False):  # Cancel empties the queue: it never starts
            self._retrying = []
            self._show_progress("The retry did not start: indexing was stopped.")
        elif self._retrying:  # another job ended: the retry is next
            count = _plural(len(self._retrying), "file")
            self._show_progress(f"Retry of {count} queued: it starts when the running job ends.")
        elif not self._retrying:
            self._show_progress("")
        self._changed()

    def _index_failed(self, message: str) -> None:
        if self._retrying and self._retry_started:
            self._retrying = []
            self._show_progress(f"The retry stopped: {message}")
        elif self._retrying and not self.controller.is_queued(self._retrying):  # stopped: it never starts
            self._retrying = []
            self._show_progress("The retry did not start: indexing was stopped.")
        elif self._retrying:
            count = _plural(len(self._retrying), "file")
            self._show_progress(f"Retry of {count} queued: it starts when the running job ends.")
        else:
            self._show_progress("")
        self._changed()

    def _show_progress(self, text: str, *, running: bool = False) -> None:
        """A line at the bottom (what a retry did, or is doing), with a progress bar while a run goes."""
        self.progress_label.setText(text)
        self.progress_label.setVisible(bool(text))
        self.progress_bar.setVisible(running)
