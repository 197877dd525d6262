"""The filter sidebar: kinds, tags (with counts), a date range, a folder, and the dates understood from the query.

The panel holds no engine object: the window gives it the tags and folders
(fetched off the GUI thread) and reads back an :class:`engine.query.Filters`.
Every change a person makes emits :attr:`FilterPanel.changed`, once.
"""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from PySide6.QtCore import QDate, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.query import Filters, TagsMode

from .style import muted_text

KIND_LABELS = (("image", "Photos"), ("document", "Documents"), ("audio", "Recordings"), ("video", "Videos"))
_CHOOSE = "\x00choose"  # the folder box's "Choose a folder…" entry
TagRole = Qt.ItemDataRole.UserRole + 1
_OPEN = QDate(1800, 1, 1)  # a date edit at this day shows "any": that side of the range is open


class Chip(QFrame):
    """A small rounded label with a ✕ that removes it (an understood date, a query image)."""

    removed = Signal()

    def __init__(self, text: str, tooltip: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Chip")
        self.label = QLabel(text)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.close_button.setToolTip("Remove")
        self.close_button.setAccessibleName(f"Remove {text}")
        self.close_button.clicked.connect(self.removed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 1, 2, 1)
        layout.setSpacing(0)
        layout.addWidget(self.label)
        layout.addWidget(self.close_button)
        if tooltip:
            self.setToolTip(tooltip)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)

    def text(self) -> str:
        return self.label.text()


def _title(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("SectionTitle")
    return label


def _day_start(day: QDate) -> float:
    return datetime.combine(cast(date, day.toPython()), time()).timestamp()  # typed as object in PySide6's stubs


class FilterPanel(QWidget):
    """Kinds, tags, dates and folder; ``filters()`` is what they add up to."""

    changed = Signal()
    date_phrase_removed = Signal(dict)  # one of SearchResponse.dates
    tags_loaded = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._tag_rows: list[tuple[str, int, int]] = []  # name, user count, auto count

        # -- dates understood from the query (shown only when there are some)
        self.understood_box = QWidget()
        understood_layout = QVBoxLayout(self.understood_box)
        understood_layout.setContentsMargins(0, 0, 0, 0)
        understood_layout.addWidget(_title("Dates in your search"))
        self.date_chips_area = QWidget()
        self._date_chips_layout = QVBoxLayout(self.date_chips_area)
        self._date_chips_layout.setContentsMargins(0, 0, 0, 0)
        self._date_chips_layout.setSpacing(4)
        understood_layout.addWidget(self.date_chips_area)
        self.understood_box.hide()
        self.date_chips: list[Chip] = []

        # -- kinds
        self.kind_boxes: dict[str, QCheckBox] = {}
        kinds = QVBoxLayout()
        kinds.setSpacing(2)
        for kind, label in KIND_LABELS:
            box = QCheckBox(label)
            box.setChecked(True)
            box.toggled.connect(self._kind_toggled)
            self.kind_boxes[kind] = box
            kinds.addWidget(box)

        # -- tags
        self.tag_list = QListWidget()
        self.tag_list.setObjectName("TagList")
        self.tag_list.setMinimumHeight(90)
        self.tag_list.setUniformItemSizes(True)
        self.tag_list.itemChanged.connect(self._tag_item_changed)
        self.no_tags_label = QLabel("No tags yet. Select results and choose “Add tag…”.")
        self.no_tags_label.setWordWrap(True)
        self.tags_any = QRadioButton("any")
        self.tags_all = QRadioButton("all")
        self.tags_any.setChecked(True)
        self.tags_any.setToolTip("Show files that carry at least one of the checked tags")
        self.tags_all.setToolTip("Show only files that carry every checked tag")
        self._mode_group = QButtonGroup(self)
        self._mode_group.addButton(self.tags_any)
        self._mode_group.addButton(self.tags_all)
        self.tags_all.toggled.connect(self._tag_mode_toggled)
        mode_row = QHBoxLayout()
        mode_row.addWidget(QLabel("Match"))
        mode_row.addWidget(self.tags_any)
        mode_row.addWidget(self.tags_all)
        mode_row.addStretch(1)
        self.auto_legend = QLabel("<i>Italic</i>: tags Shoebox gave")
        self.auto_legend.setToolTip("Auto-tags are suggested by the image model; tags you add are in plain type.")

        # -- dates
        today = QDate.currentDate()
        self.from_check = QCheckBox("From")
        self.to_check = QCheckBox("To")
        self.date_from = QDateEdit()
        self.date_to = QDateEdit()
        # An unchecked side shows "any" (the edit's minimum date stands for "open"); checking it
        # brings back the last day chosen there.
        self._chosen = {self.date_from: QDate(today.year(), 1, 1), self.date_to: today}
        for check, edit in ((self.from_check, self.date_from), (self.to_check, self.date_to)):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("d MMM yyyy")
            edit.setMinimumDate(_OPEN)
            edit.setSpecialValueText("any")
            edit.setDate(_OPEN)
            edit.setEnabled(False)
            check.toggled.connect(lambda on, e=edit: self._side_toggled(e, on))
            edit.dateChanged.connect(lambda day, e=edit: self._day_edited(e, day))
        self.any_time_button = QPushButton("Any time")
        self.any_time_button.setToolTip("Clear the date range")
        self.any_time_button.clicked.connect(self.clear_dates)
        dates = QGridLayout()
        dates.setContentsMargins(0, 0, 0, 0)
        dates.addWidget(self.from_check, 0, 0)
        dates.addWidget(self.date_from, 0, 1)
        dates.addWidget(self.to_check, 1, 0)
        dates.addWidget(self.date_to, 1, 1)
        dates.addWidget(self.any_time_button, 2, 1, Qt.AlignmentFlag.AlignLeft)
        dates.setColumnStretch(1, 1)

        # -- folder
        self.folder_combo = QComboBox()
        self.folder_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        # A path is long and its end is what tells folders apart: each shows its own name,
        # the whole path in its tooltip (and the box's tooltip names the one chosen).
        self.folder_combo.setMinimumContentsLength(8)
        self.folder_combo.addItem("All folders", None)
        self.folder_combo.addItem("Choose a folder…", _CHOOSE)
        self.folder_combo.activated.connect(self._folder_activated)
        self._folder: str | None = None

        self.reset_button = QPushButton("Clear filters")
        self.reset_button.clicked.connect(self.reset)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(self.understood_box)
        layout.addWidget(_title("Show"))
        layout.addLayout(kinds)
        layout.addSpacing(6)
        layout.addWidget(_title("Tags"))
        layout.addWidget(self.tag_list)
        layout.addWidget(self.no_tags_label)
        layout.addLayout(mode_row)
        layout.addWidget(self.auto_legend)
        layout.addSpacing(6)
        layout.addWidget(_title("When"))
        layout.addLayout(dates)
        layout.addSpacing(6)
        layout.addWidget(_title("Folder"))
        layout.addWidget(self.folder_combo)
        layout.addSpacing(6)
        layout.addWidget(self.reset_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        self._update_tag_hint()
        self._style_legend()

        scroll = QScrollArea()
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        # As narrow as its contents allow (the date boxes set it), so that an 800-pixel window
        # leaves room for the results, the answers and the preview; the scroll bar's room is kept.
        scrollbar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        self.setMinimumWidth(body.minimumSizeHint().width() + scrollbar)

    # -- reading --------------------------------------------------------------

    def filters(self) -> Filters:
        kinds = tuple(kind for kind, _ in KIND_LABELS if self.kind_boxes[kind].isChecked())
        if len(kinds) == len(KIND_LABELS):
            kinds = ()
        after = _day_start(self.date_from.date()) if self.from_check.isChecked() else None
        before = _day_start(self.date_to.date().addDays(1)) if self.to_check.isChecked() else None
        return Filters(
            kinds=kinds,
            tags=tuple(self.checked_tags()),
            tags_mode=TagsMode.ALL if self.tags_all.isChecked() else TagsMode.ANY,
            after=after,
            before=before,
            folder=self._folder,
        )

    def checked_tags(self) -> list[str]:
        names = []
        for row in range(self.tag_list.count()):
            item = self.tag_list.item(row)
            if item.checkState() == Qt.CheckState.Checked:
                names.append(item.data(TagRole))
        return names

    def tag_names(self) -> list[str]:
        return [name for name, _, _ in self._tag_rows]

    def tag_counts(self) -> dict[str, int]:
        return {name: user + auto for name, user, auto in self._tag_rows}

    # -- setting from code (tests and the window) ------------------------------

    def set_kinds(self, kinds: tuple[str, ...] | list[str]) -> None:
        """Show only these kinds (empty: all); one ``changed``."""
        wanted = set(kinds) or {k for k, _ in KIND_LABELS}
        with _Blocked(self.kind_boxes.values()):
            for kind, box in self.kind_boxes.items():
                box.setChecked(kind in wanted)
        self._kind_toggled()

    def set_tag_checked(self, name: str, checked: bool = True) -> None:
        for row in range(self.tag_list.count()):
            item = self.tag_list.item(row)
            if item.data(TagRole).lower() == name.lower():
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
                return
        raise KeyError(f"no tag {name!r} in the list")

    def set_date_range(self, start: QDate | None, end: QDate | None) -> None:
        """Limit to [start, end] (days, inclusive); None leaves that side open.  One ``changed``."""
        with _Blocked([self.from_check, self.to_check, self.date_from, self.date_to]):
            for check, edit, day in ((self.from_check, self.date_from, start), (self.to_check, self.date_to, end)):
                if day is not None:
                    self._chosen[edit] = day
                check.setChecked(day is not None)
                self._show_side(edit, day is not None)
        self.changed.emit()

    def clear_dates(self) -> None:
        if self.from_check.isChecked() or self.to_check.isChecked():
            self.set_date_range(None, None)

    def set_folder(self, folder: str | None) -> None:
        """Limit to files inside ``folder`` (None: everywhere).  One ``changed`` when it differs."""
        folder = os.path.abspath(folder) if folder else None
        if folder is not None and self.folder_combo.findData(folder) < 0:
            self.folder_combo.insertItem(self.folder_combo.count() - 1, folder_label(folder), folder)
            self.folder_combo.setItemData(self.folder_combo.count() - 2, folder, Qt.ItemDataRole.ToolTipRole)
            self._label_folders()
        with QSignalBlocker(self.folder_combo):
            self.folder_combo.setCurrentIndex(self.folder_combo.findData(folder) if folder else 0)
        self._folder_tooltip(folder)
        if folder != self._folder:
            self._folder = folder
            self.changed.emit()

    def reset(self) -> None:
        """Every filter back to "everything"; one ``changed`` if anything was set."""
        before = self.filters()
        with _Blocked(
            [
                *self.kind_boxes.values(),
                self.tag_list,
                self.tags_all,
                self.tags_any,
                self.from_check,
                self.to_check,
                self.folder_combo,
            ]
        ):
            for box in self.kind_boxes.values():
                box.setChecked(True)
                box.setEnabled(True)
            for row in range(self.tag_list.count()):
                self.tag_list.item(row).setCheckState(Qt.CheckState.Unchecked)
            self.tags_any.setChecked(True)
            self.from_check.setChecked(False)
            self.to_check.setChecked(False)
            self._show_side(self.date_from, False)
            self._show_side(self.date_to, False)
            self.folder_combo.setCurrentIndex(0)
            self._folder = None
        self._folder_tooltip(None)
        if self.filters() != before:
            self.changed.emit()

    # -- data from the library ---------------------------------------------------

    def set_tags(self, rows: list[tuple[str, str, int]]) -> None:
        """Show ``store.tags()`` rows; a name used both ways is one entry.  Checked tags stay checked."""
        merged: dict[str, list[Any]] = {}
        for name, source, count in rows:
            entry = merged.setdefault(name.lower(), [name, 0, 0])
            if source == "user":
                entry[0] = name
                entry[1] += count
            else:
                entry[2] += count
        self._tag_rows = sorted(
            ((n, u, a) for n, u, a in merged.values()), key=lambda r: (-(r[1] + r[2]), r[0].lower())
        )
        checked = {name.lower() for name in self.checked_tags()}
        muted = muted_text(self.palette())
        with QSignalBlocker(self.tag_list):
            self.tag_list.clear()
            for name, user, auto in self._tag_rows:
                item = QListWidgetItem(f"{name}  ({user + auto})")
                item.setData(TagRole, name)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if name.lower() in checked else Qt.CheckState.Unchecked)
                if user == 0:
                    font = QFont(self.tag_list.font())
                    font.setItalic(True)
                    item.setFont(font)
                    item.setForeground(muted)
                    item.setToolTip(f"“{name}”: given by Shoebox to {auto} photo(s)")
                elif auto:
                    item.setToolTip(f"“{name}”: {user} tagged by you, {auto} by Shoebox")
                else:
                    item.setToolTip(f"“{name}”: {user} file(s) tagged by you")
                self.tag_list.addItem(item)
        self._update_tag_hint()
        shown = max(3, min(12, self.tag_list.count()))
        self.tag_list.setFixedHeight(
            shown * self.tag_list.sizeHintForRow(0) + 2 * self.tag_list.frameWidth() + 4
            if self.tag_list.count()
            else 90
        )
        lost = checked - {name.lower() for name, _, _ in self._tag_rows}
        self.tags_loaded.emit()
        if lost:  # a checked tag no file carries any more: the filter did change
            self.changed.emit()

    def set_roots(self, roots: list[str]) -> None:
        """The library's folders, offered in the folder box (the chosen one stays)."""
        with QSignalBlocker(self.folder_combo):
            while self.folder_combo.count() > 2:
                self.folder_combo.removeItem(1)
            for root in sorted({*roots, *([self._folder] if self._folder else [])}):
                index = self.folder_combo.count() - 1
                self.folder_combo.insertItem(index, folder_label(root), root)
                self.folder_combo.setItemData(index, root, Qt.ItemDataRole.ToolTipRole)
            self._label_folders()
            self.folder_combo.setCurrentIndex(self.folder_combo.findData(self._folder) if self._folder else 0)
        self._folder_tooltip(self._folder)

    def _label_folders(self) -> None:
        """Folders of the same name are told apart by their parent ("Photos — 2023")."""
        paths = [self.folder_combo.itemData(i) for i in range(1, self.folder_combo.count() - 1)]
        names = [folder_label(p) for p in paths]
        for offset, (path, name) in enumerate(zip(paths, names, strict=True)):
            label = name if names.count(name) == 1 else folder_label(path, with_parent=True)
            self.folder_combo.setItemText(offset + 1, label)

    def _folder_tooltip(self, folder: str | None) -> None:
        self.folder_combo.setToolTip(folder or "Search every folder of the library")

    def set_understood_dates(self, dates: list[dict]) -> None:
        """Chips for the date phrases the last search understood (removing one emits date_phrase_removed)."""
        for chip in self.date_chips:
            chip.deleteLater()
        self.date_chips = []
        for phrase in dates:
            chip = Chip(phrase.get("label") or phrase.get("text") or "", _range_tooltip(phrase))
            chip.removed.connect(lambda p=dict(phrase): self.date_phrase_removed.emit(p))
            self._date_chips_layout.addWidget(chip, 0, Qt.AlignmentFlag.AlignLeft)
            self.date_chips.append(chip)
        self.understood_box.setVisible(bool(dates))

    # -- reacting -----------------------------------------------------------------

    def _kind_toggled(self, _checked: bool = False) -> None:
        checked = [box for box in self.kind_boxes.values() if box.isChecked()]
        # The last checked kind cannot be unchecked: "nothing" is never a useful search.
        for box in self.kind_boxes.values():
            box.setEnabled(not (len(checked) == 1 and box is checked[0]))
        self.changed.emit()

    def _tag_item_changed(self, _item: QListWidgetItem) -> None:
        self.changed.emit()

    def _tag_mode_toggled(self, _checked: bool) -> None:
        if len(self.checked_tags()) > 1:
            self.changed.emit()

    def _show_side(self, edit: QDateEdit, on: bool) -> None:
        with QSignalBlocker(edit):
            edit.setDate(self._chosen[edit] if on else _OPEN)
        edit.setEnabled(on)

    def _side_toggled(self, edit: QDateEdit, on: bool) -> None:
        self._show_side(edit, on)
        self.changed.emit()

    def _day_edited(self, edit: QDateEdit, day: QDate) -> None:
        if not edit.isEnabled() or day == _OPEN:
            return
        self._chosen[edit] = day
        self.changed.emit()

    def _folder_activated(self, index: int) -> None:
        data = self.folder_combo.itemData(index)
        if data == _CHOOSE:
            chosen = QFileDialog.getExistingDirectory(self, "Search in folder", self._folder or os.path.expanduser("~"))
            self.set_folder(chosen or self._folder)
            if not chosen:  # cancelled: show the folder that is still in effect
                with QSignalBlocker(self.folder_combo):
                    self.folder_combo.setCurrentIndex(self.folder_combo.findData(self._folder) if self._folder else 0)
            return
        self.set_folder(data)

    def _update_tag_hint(self) -> None:
        has_tags = bool(self._tag_rows)
        self.tag_list.setVisible(has_tags)
        self.no_tags_label.setVisible(not has_tags)
        self.tags_any.setEnabled(has_tags)
        self.tags_all.setEnabled(has_tags)
        self.auto_legend.setVisible(any(user == 0 for _, user, _ in self._tag_rows))

    def _style_legend(self) -> None:
        palette = self.auto_legend.palette()
        palette.setColor(QPalette.ColorRole.WindowText, muted_text(self.palette()))
        self.auto_legend.setPalette(palette)
        self.no_tags_label.setPalette(palette)

    def changeEvent(self, event: Any) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            self._style_legend()


def folder_label(path: str, *, with_parent: bool = False) -> str:
    """What the folder box shows for ``path``: the folder's own name ("Pictures"), with its parent's
    when asked ("2023 — Photos"); the root of a drive, which has no name, as its path."""
    path = os.path.normpath(path)
    name = os.path.basename(path)
    if not name:
        return path
    parent = os.path.basename(os.path.dirname(path))
    return f"{name} — {parent}" if with_parent and parent else name


def _range_tooltip(phrase: dict) -> str:
    after, before = phrase.get("after"), phrase.get("before")
    parts = []
    if after:
        parts.append(f"from {after[:10]}")
    if before:
        last = datetime.fromisoformat(before) - timedelta(seconds=1)
        parts.append(f"to {last:%Y-%m-%d}")
    span = " ".join(parts) or "any time"
    return f"“{phrase.get('text', '')}” was read as a date ({span}). Remove to search these words instead."


class _Blocked:
    """Block the signals of several widgets for a ``with`` block."""

    def __init__(self, widgets: Any):
        self._widgets = list(widgets)
        self._blockers: list[QSignalBlocker] = []

    def __enter__(self) -> None:
        self._blockers = [QSignalBlocker(w) for w in self._widgets]

    def __exit__(self, *exc: object) -> None:
        for blocker in self._blockers:
            blocker.unblock()
        self._blockers = []
