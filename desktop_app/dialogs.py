"""Dialogs: getting the models on first run, and the settings.

* :class:`ModelSetupDialog` shows which models are here and gets one: a download
  (only when the person asks, with progress and cancel) or an import of a file or
  folder they have, with the kind and the model chosen from lists.
* :class:`SettingsDialog` edits the library's settings (written through
  :func:`engine.settings.save_settings`) and the window's own preferences
  (thumbnail size, kept in ``QSettings``).

Both run every engine call off the GUI thread and show engine errors as
sentences beside the thing they are about.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PySide6.QtCore import QObject, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from engine.errors import Cancelled
from engine.settings import Settings, save_settings

from .controller import AppController, describe_error, overriding_environment
from .indexing import FoldersPanel, when_alive
from .tasks import run_task

WEIGHT_FILES = "Model weights (*.safetensors *.pt *.bin *.pth);;All files (*)"

# The window's own preferences, kept in QSettings (not in the library's settings.json).
THUMBNAIL_SIZE_KEY = "view/thumbnail_size"
DEFAULT_THUMBNAIL_SIZE = 160
THUMBNAIL_SIZE_RANGE = (64, 512)

DEVICES = [
    ("cpu", "Processor (CPU) — works everywhere"),
    ("cuda", "NVIDIA graphics card (CUDA)"),
    ("mps", "Apple graphics (Metal, on Apple silicon Macs)"),
]


def thumbnail_size(app_settings: QSettings | None = None) -> int:
    """The thumbnail size the person chose (pixels), from ``QSettings``."""
    store = app_settings if app_settings is not None else QSettings()
    try:
        stored: Any = store.value(THUMBNAIL_SIZE_KEY, DEFAULT_THUMBNAIL_SIZE)  # whatever was saved there
        value = int(stored)
    except (TypeError, ValueError):
        return DEFAULT_THUMBNAIL_SIZE
    low, high = THUMBNAIL_SIZE_RANGE
    return min(high, max(low, value))


def _overridden(setting: str) -> bool:
    """Whether an environment variable overrides ``setting`` right now."""
    return bool(overriding_environment([setting]))


# Said beside a setting that the environment Shoebox was started from overrides.  The
# variable's name is left out: it means nothing in a window.
OVERRIDDEN_NOTE = (
    "This is also set where Shoebox was started from (in its environment), and that takes precedence "
    "over what is saved here."
)


def scrolling(content: QWidget) -> QScrollArea:
    """``content`` in a scroll area that scrolls it in a dialog shorter than it is (a small screen,
    large text) rather than squeeze its rows over each other: it is never made shorter than it needs."""
    content.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    area = QScrollArea()
    area.setWidget(content)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


def fitted_size(dialog: QDialog, content: QWidget, buttons_height: int) -> QSize:
    """As large as ``content`` wants, within the free area of the screen ``dialog`` opens on."""
    parent = dialog.parentWidget()
    screen = parent.screen() if parent is not None else dialog.screen()
    hint = content.sizeHint()
    scrollbar = dialog.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
    width = max(dialog.minimumWidth(), hint.width() + scrollbar + 24)
    height = hint.height() + buttons_height + 40
    if screen is not None:
        area = screen.availableGeometry()
        # Leave room for the window's title bar and the desktop's panels.
        width, height = min(width, area.width() - 20), min(height, area.height() - 60)
    return QSize(width, height)


class InlineMessage(QWidget):
    """A message beside a field: the style's warning (or information) icon and a sentence."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.text, 1)
        self.hide()

    def show_message(self, text: str, *, error: bool = True) -> None:
        which = QStyle.StandardPixmap.SP_MessageBoxWarning if error else QStyle.StandardPixmap.SP_MessageBoxInformation
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self.icon.setPixmap(self.style().standardIcon(which).pixmap(size, size))
        self.text.setText(text)
        self.show()
        self._fit()
        window = self.window()
        if window is not self and window.isVisible() and (layout := window.layout()) is not None:
            # A shown window keeps its size when a message appears in it: make room.
            layout.activate()
            hint = window.sizeHint()
            if hint.height() > window.height() or hint.width() > window.width():
                window.resize(max(window.width(), hint.width()), max(window.height(), hint.height()))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        # A wrapped label's height depends on its width, which a dialog's layout does not ask
        # for: without a minimum height the second line of a message would be cut off.
        width = self.text.width() if self.text.width() > 100 else 400
        self.text.setMinimumHeight(max(0, self.text.heightForWidth(width)) if self.text.text() else 0)

    def clear(self) -> None:
        self.text.clear()
        self.hide()

    def message(self) -> str:
        return self.text.text() if not self.isHidden() else ""


def _subtle(label: QLabel) -> QLabel:
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    label.setWordWrap(True)
    return label


def _line_edit(combo: QComboBox) -> QLineEdit:
    """The text field of an editable combo box."""
    edit = combo.lineEdit()
    assert edit is not None, "the combo box is not editable"
    return edit


# ---------------------------------------------------------------------------------------------
# Setting up the models


class _Progress(QObject):
    """Carries a download's progress from the worker to the GUI thread (a queued signal)."""

    changed = Signal(object, object, str)  # done, total (bytes; may pass 2**31), message


# What each model does, as the window names it.
MODEL_KINDS = ("clip", "text", "whisper")
MODEL_LABELS = {"clip": "CLIP", "text": "Text model", "whisper": "Whisper"}
KIND_LABELS = {"clip": "Photos (CLIP)", "text": "Passages (text model)", "whisper": "Speech (Whisper)"}
MODEL_PURPOSES = {
    "clip": "finds photos by what they show",
    "text": "finds passages of documents and recordings by what they mean",
    "whisper": "turns speech in recordings into text",
}
# What an import of each kind takes: a file, a folder, or either.
IMPORTS_FILE = {"clip": True, "text": False, "whisper": True}
IMPORTS_FOLDER = {"clip": False, "text": True, "whisper": True}


class ModelSetupDialog(QDialog):
    """Sets up the models: shows which are here, downloads one, or imports a file or folder.

    ``ModelSetupDialog(settings, parent=None, *, reason="", downloader=None)``:
    ``settings`` are the library's :class:`~engine.settings.Settings`; ``reason`` is
    why the models could not load (the ``models_missing`` signal's message);
    ``downloader`` is where downloads come from (an
    ``engine.models.management.Downloader``; None: the models' publishers).

    The person chooses what a model is for (photos, passages, speech) and its name
    from the lists of names Shoebox knows, then **Download** (only when pressed,
    with progress and **Cancel**), **Import a file…** or **Import a folder…**.  The
    file or folder is checked against the chosen kind and model before it is kept,
    and the reason is shown when it does not fit.  Every engine call runs off the GUI
    thread; nothing here names a command or an environment variable.

    Signals: ``models_changed(object)`` with the saved Settings after a model was
    downloaded or imported (the window then loads the models again);
    ``models_listed(list)`` once the status of each model is known (rows of
    ``engine.models.list_models``); ``choices_loaded()`` once the lists of names
    are filled; ``message_shown(str, bool)`` with each outcome shown (text, whether
    it is a problem).

    Methods: ``choose(kind, name)``, ``download()``, ``cancel()``, ``import_path(path)``,
    ``is_busy()``, ``status_text(kind)``.
    """

    models_changed = Signal(object)
    models_listed = Signal(list)
    choices_loaded = Signal()
    message_shown = Signal(str, bool)

    def __init__(self, settings: Settings, parent: QWidget | None = None, *, reason: str = "", downloader: Any = None):
        super().__init__(parent)
        self.settings = settings
        self.downloader = downloader
        self.setWindowTitle("Set up the models")
        self._busy = False
        self._cancel = threading.Event()
        self._choices: dict[str, list[tuple[str, str | None, str]]] = {}
        self._progress = _Progress()  # no parent: the worker may outlive the dialog
        self._progress.changed.connect(self._show_progress)

        heading = QLabel("Find photos, documents and recordings by what they mean")
        font = heading.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        heading.setFont(font)
        self.explanation = QLabel(
            "Shoebox uses three models that run on this computer. Download them once (a few hundred "
            "megabytes, from the models' publishers; your own files never leave this computer), or import "
            "model files you already have, copied from another computer say. Until then, files are found "
            "by their names, dates and words."
        )
        self.explanation.setWordWrap(True)
        self.reason_label = _subtle(QLabel(reason))
        self.reason_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reason_label.hide()  # shown once the list says whether it adds anything

        status_box = QGroupBox("On this computer")
        status_form = QFormLayout(status_box)
        self.status_labels: dict[str, QLabel] = {}
        for kind in MODEL_KINDS:
            label = QLabel("Looking…")
            label.setWordWrap(True)
            self.status_labels[kind] = label
            status_form.addRow(f"{KIND_LABELS[kind]}:", label)

        self.kind_box = QComboBox()
        for kind in MODEL_KINDS:
            self.kind_box.addItem(KIND_LABELS[kind], kind)
        self.kind_box.setToolTip("What the model is for")
        self.name_box = QComboBox()
        self.name_box.setMinimumContentsLength(28)
        self.name_box.setToolTip("The model, from the names Shoebox knows for this kind")
        self.purpose_label = _subtle(QLabel())
        self.download_note = _subtle(QLabel())
        self.download_note.hide()
        self.download_button = QPushButton("Download")
        self.download_button.setToolTip("Connect to the internet and fetch this model once")
        self.import_file_button = QPushButton("Import a file…")
        self.import_file_button.setToolTip("Use a weights file you already have (.safetensors, .pt, .bin, .pth)")
        self.import_folder_button = QPushButton("Import a folder…")
        self.import_folder_button.setToolTip("Use a model folder you already have")
        actions = QHBoxLayout()
        actions.addWidget(self.download_button)
        actions.addWidget(self.import_file_button)
        actions.addWidget(self.import_folder_button)
        actions.addStretch(1)

        get_box = QGroupBox("Get a model")
        get_form = QFormLayout(get_box)
        get_form.addRow("For:", self.kind_box)
        get_form.addRow("Model:", self.name_box)
        get_form.addRow("", self.purpose_label)
        get_form.addRow("", self.download_note)
        get_form.addRow(actions)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.progress_label = _subtle(QLabel())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download; nothing of it is kept")
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.cancel_button)
        self.progress_box = QWidget()
        progress_column = QVBoxLayout(self.progress_box)
        progress_column.setContentsMargins(0, 0, 0, 0)
        progress_column.addLayout(progress_row)
        progress_column.addWidget(self.progress_label)
        self.progress_box.hide()
        self.message = InlineMessage()

        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Keyword search keeps working; File ▸ Set up models… opens this again")
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.close_button)

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.addWidget(heading)
        content_layout.addWidget(self.explanation)
        content_layout.addWidget(self.reason_label)
        content_layout.addWidget(status_box)
        content_layout.addWidget(get_box)
        content_layout.addWidget(self.progress_box)
        content_layout.addWidget(self.message)
        content_layout.addStretch(1)
        # A small screen or large text scrolls the dialog rather than squeezing its rows.
        self.scroll_area = scrolling(content)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll_area, 1)
        layout.addLayout(bottom)
        self.setMinimumWidth(560)
        self.resize(fitted_size(self, content, bottom.sizeHint().height()))

        self.kind_box.currentIndexChanged.connect(self._kind_chosen)
        self.name_box.currentIndexChanged.connect(self._name_chosen)
        self.download_button.clicked.connect(self.download)
        self.import_file_button.clicked.connect(self.choose_file)
        self.import_folder_button.clicked.connect(self.choose_folder)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self._set_busy(False)
        self._kind_chosen()
        self._list_models()
        self._load_choices()

    # -- what is here, and what can be had -----------------------------------------------

    def _list_models(self) -> None:
        settings = self.settings

        def listed(rows: list[dict]) -> None:
            selected = [r for r in rows if r["selected"]]
            # Why the models did not load says more than the list only when every model is here
            # (one is damaged, say); a model that is not here is said in its own line.
            self.reason_label.setVisible(bool(self.reason_label.text()) and all(r["present"] for r in selected))
            for kind, label in self.status_labels.items():
                row = next((r for r in rows if r["kind"] == kind and r["selected"]), None)
                if row is None:
                    label.setText("Not set up")
                    continue
                name = row["name"].removeprefix("folder:")
                state = "ready" if row["present"] else "not on this computer"
                label.setText(f"{name}: {state}")
                label.setToolTip(row["path"] or "")
            self.models_listed.emit(rows)

        def failed(exc: BaseException) -> None:
            self._show(f"Cannot tell which models are here: {describe_error(exc)}", error=True)

        run_task(
            lambda: AppController.list_models(settings), when_alive(self, listed), when_alive(self, failed), long=True
        )

    def _load_choices(self) -> None:
        settings = self.settings

        def loaded(choices: dict[str, list[tuple[str, str | None, str]]]) -> None:
            self._choices = choices
            self._kind_chosen()
            self.choices_loaded.emit()

        def failed(exc: BaseException) -> None:
            self._show(f"Cannot list the models Shoebox knows: {describe_error(exc)}", error=True)

        run_task(
            lambda: AppController.model_choices(settings), when_alive(self, loaded), when_alive(self, failed), long=True
        )

    def _configured(self, kind: str) -> str:
        return {
            "clip": self.settings.clip_model,
            "text": self.settings.text_model,
            "whisper": self.settings.whisper_model,
        }[kind]

    def kind(self) -> str:
        """The kind chosen now: ``"clip"``, ``"text"`` or ``"whisper"``."""
        return str(self.kind_box.currentData())

    def name(self) -> str:
        """The model name chosen now (empty while the names load)."""
        return self.name_box.currentText()

    def _kind_chosen(self) -> None:
        kind = self.kind()
        self.purpose_label.setText(f"This model {MODEL_PURPOSES[kind]}.")
        self.name_box.blockSignals(True)
        self.name_box.clear()
        for name, download, why_not in self._choices.get(kind, []):
            self.name_box.addItem(name, (download, why_not))
        configured = self.name_box.findText(self._configured(kind))
        self.name_box.setCurrentIndex(max(0, configured))
        self.name_box.blockSignals(False)
        self._name_chosen()

    def _name_chosen(self) -> None:
        data = self.name_box.currentData()
        why_not = data[1] if data else ""
        self.download_note.setText(f"{why_not} Import a copy you have instead." if why_not else "")
        self.download_note.setVisible(bool(why_not))
        self._update_buttons()

    def choose(self, kind: str, name: str) -> None:
        """Choose ``kind`` and model ``name`` in the lists (as the person would)."""
        self.kind_box.setCurrentIndex(self.kind_box.findData(kind))
        index = self.name_box.findText(name)
        if index < 0:
            raise ValueError(f"{name!r} is not in the list of {kind} models")
        self.name_box.setCurrentIndex(index)

    def status_text(self, kind: str) -> str:
        """What the dialog says about the ``kind`` model now ("base: ready")."""
        return self.status_labels[kind].text()

    def is_busy(self) -> bool:
        return self._busy

    def _update_buttons(self) -> None:
        kind = self.kind()
        data = self.name_box.currentData()
        loaded = data is not None
        for widget in (self.kind_box, self.name_box):
            widget.setEnabled(not self._busy)
        self.download_button.setEnabled(not self._busy and loaded and data[0] is not None)
        self.import_file_button.setEnabled(not self._busy and loaded and IMPORTS_FILE[kind])
        self.import_folder_button.setEnabled(not self._busy and loaded and IMPORTS_FOLDER[kind])

    def _set_busy(self, busy: bool, text: str = "", *, cancellable: bool = False) -> None:
        self._busy = busy
        self._update_buttons()
        self.progress_label.setText(text)
        self.progress_box.setVisible(busy)
        self.cancel_button.setVisible(cancellable)
        self.cancel_button.setEnabled(True)

    def _show(self, text: str, *, error: bool) -> None:
        self.message.show_message(text, error=error)
        self.message_shown.emit(text, error)

    # -- download --------------------------------------------------------------------------

    def download(self) -> None:
        """Download the chosen model (the person asked for it by pressing Download)."""
        data = self.name_box.currentData()
        if self._busy or not data or data[0] is None:
            return
        kind, name, what = self.kind(), data[0], self.name()
        self.message.clear()
        self._cancel = cancel = threading.Event()
        self.progress_bar.setRange(0, 0)
        self._set_busy(True, f"Connecting to download {MODEL_LABELS[kind]} {what}…", cancellable=True)
        settings, progress, downloader = self.settings, self._progress, self.downloader
        shown: list[Any] = [None]  # the last (permille, message) sent to the GUI thread

        def report(received: int, total: int, message: str) -> None:
            if cancel.is_set() and not (total and received >= total):  # the download removes its partial files
                raise Cancelled("the download was stopped")
            # One signal per tenth of a percent at most: a 3 GB file arrives in 3000 blocks.
            step = (int(1000 * received / total) if total else -1, message)
            if step != shown[0]:
                shown[0] = step
                progress.changed.emit(received, total, message)

        def work() -> tuple[Settings, list[str]]:
            return AppController.download_model(settings, kind, name, report, downloader)

        def done(result: tuple[Settings, list[str]]) -> None:
            self.settings, overridden = result
            self._set_busy(False)
            self._show(
                f"{MODEL_LABELS[kind]} {what} is downloaded. Shoebox is loading it now.{_overridden_note(overridden)}",
                error=False,
            )
            self._after_change()

        run_task(work, when_alive(self, done), when_alive(self, self._download_error), long=True)

    def cancel(self) -> None:
        """Stop the download under way; what was partly fetched is removed."""
        if self._busy:
            self._cancel.set()
            self.progress_label.setText("Stopping the download…")
            self.cancel_button.setEnabled(False)

    def _show_progress(self, received: Any, total: Any, message: str) -> None:
        if not self._busy or self._cancel.is_set():
            return
        if total and total > 0:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * min(received, total) / total))
            text = f"{_phase(message)}: {_megabytes(received)} of {_megabytes(total)}"
        else:
            self.progress_bar.setRange(0, 0)
            text = f"{_phase(message)}…"
        self.progress_label.setText(text)

    def _download_error(self, exc: BaseException) -> None:
        self._set_busy(False)
        if isinstance(exc, Cancelled):
            text = "The download was stopped. Nothing of it was kept."
        else:
            text = describe_error(exc)
            if isinstance(exc, OSError):  # the engine's own errors already say what to do
                text = (
                    f"The download failed: {text}. Check that this computer is connected to the "
                    "internet, or import a model file you have."
                )
        self._show(text, error=not isinstance(exc, Cancelled))

    # -- import ------------------------------------------------------------------------------

    def choose_file(self) -> None:
        """Ask for a weights file and import it as the chosen model."""
        if self._busy:
            return
        path, _ = QFileDialog.getOpenFileName(
            self,
            f"Choose the {MODEL_LABELS[self.kind()]} {self.name()} weights file",
            os.path.expanduser("~"),
            WEIGHT_FILES,
        )
        if path:
            self.import_path(path)

    def choose_folder(self) -> None:
        """Ask for a model folder and import it as the chosen model."""
        if self._busy:
            return
        folder = QFileDialog.getExistingDirectory(
            self, f"Choose the {MODEL_LABELS[self.kind()]} {self.name()} model folder", os.path.expanduser("~")
        )
        if folder:
            self.import_path(folder)

    def import_path(self, path: str) -> None:
        """Check ``path`` against the chosen kind and model and copy it into Shoebox's model cache, off the GUI thread."""
        if self._busy or not self.name():
            return
        kind, name, settings = self.kind(), self.name(), self.settings
        shown_name = os.path.basename(path.rstrip("/\\")) or path
        self.message.clear()
        self.progress_bar.setRange(0, 0)
        self._set_busy(True, f"Checking {shown_name} and copying it…")

        def done(result: tuple[Settings, str, list[str]]) -> None:
            self.settings, _kind, overridden = result
            self._set_busy(False)
            self._show(
                f"Imported {MODEL_LABELS[kind]} {name} from {shown_name}. Shoebox is loading it now."
                f"{_overridden_note(overridden)}",
                error=False,
            )
            self._after_change()

        def failed(exc: BaseException) -> None:
            self._set_busy(False)
            self._show(f"{shown_name} was not imported: {describe_error(exc)}", error=True)

        run_task(
            lambda: AppController.import_model(settings, path, kind, name),
            when_alive(self, done),
            when_alive(self, failed),
            long=True,
        )

    def _after_change(self) -> None:
        self.models_changed.emit(self.settings)
        self._list_models()

    # -- closing ------------------------------------------------------------------------------

    def reject(self) -> None:
        if self._busy:  # Escape while a download runs: stop it first
            self.cancel()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._busy:
            self.cancel()
            event.ignore()
            return
        super().closeEvent(event)


def _overridden_note(overridden: list[str]) -> str:
    # An environment variable named in the settings wins over them; its name means nothing here.
    if not overridden:
        return ""
    return " A setting made where Shoebox was started from still names another model, and takes precedence."


def _phase(message: str) -> str:
    message = (message or "downloading").strip()
    return message[0].upper() + message[1:]


def _megabytes(n: Any) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} kB"


# ---------------------------------------------------------------------------------------------
# Settings


class _PathField(QWidget):
    """A path in a line edit with a Browse… button."""

    def __init__(self, value: str, caption: str, parent: QWidget | None = None, *, folder_caption: str = ""):
        super().__init__(parent)
        self.caption = caption
        self.folder_caption = folder_caption
        self.edit = QLineEdit(value)
        self.edit.setPlaceholderText("None: use Shoebox's model cache")
        self.edit.setClearButtonEnabled(True)
        self.browse = QPushButton("Browse…")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse)
        self.browse.clicked.connect(self._browse)
        self.browse_folder: QPushButton | None = None
        if folder_caption:  # the weights may also be a model folder
            self.browse_folder = QPushButton("Folder…")
            self.browse_folder.setToolTip(folder_caption)
            layout.addWidget(self.browse_folder)
            self.browse_folder.clicked.connect(self._browse_folder)

    def _browse_folder(self) -> None:
        start = self.edit.text() or os.path.expanduser("~")
        path = QFileDialog.getExistingDirectory(self, self.folder_caption, start)
        if path:
            self.edit.setText(path)

    def _browse(self) -> None:
        start = os.path.dirname(self.edit.text()) or os.path.expanduser("~")
        path, _ = QFileDialog.getOpenFileName(self, self.caption, start, WEIGHT_FILES)
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()


class SettingsDialog(QDialog):
    """The settings: library folders, models, device, local LLM, thumbnails, theme.

    ``SettingsDialog(settings, parent=None, *, controller=None, app_settings=None)``.
    ``settings`` are the library's :class:`~engine.settings.Settings`; with a
    ``controller`` the library's folders are listed and can be added or removed;
    ``app_settings`` is the ``QSettings`` that keeps the window's own preferences
    (the thumbnail size; the application's default ``QSettings()`` when None).

    Save validates every field (a URL must be http(s), a weights file must exist)
    and shows problems beside the field; when all is well it writes the changes
    through :func:`engine.settings.save_settings` and emits
    ``settings_changed(Settings)``.  Changing the device takes effect when the
    models are loaded again; a CLIP or text model other than the one that built
    the library is followed by the window's offer to re-embed the library (or
    to go back to the recorded model).

    Methods: ``values()``, ``validate()`` (field → message), ``save()`` (True when saved).
    """

    settings_changed = Signal(object)

    def __init__(
        self,
        settings: Settings,
        parent: QWidget | None = None,
        *,
        controller: AppController | None = None,
        app_settings: QSettings | None = None,
    ):
        super().__init__(parent)
        self.settings = settings
        self.app_settings = app_settings if app_settings is not None else QSettings()
        self.setWindowTitle("Shoebox settings")
        self._clip_names: set[str] = set()
        self._whisper_names: set[str] = set()
        self.errors: dict[str, InlineMessage] = {}
        self.notes: dict[str, QLabel] = {}

        # Library folders
        folders_box = QGroupBox("Library folders")
        folders_layout = QVBoxLayout(folders_box)
        if controller is not None:
            self.folders: FoldersPanel | None = FoldersPanel(controller, removable=True)
            folders_layout.addWidget(self.folders)
        else:
            self.folders = None
            folders_layout.addWidget(_subtle(QLabel("The folders are listed here once the library is open.")))
        self.watch_folders = QCheckBox("Watch these folders while Shoebox runs, and index what changes in them")
        self.watch_folders.setChecked(settings.watch_folders)
        self.watch_folders.setToolTip(
            "New, changed, moved and deleted files are found within seconds.\n"
            "Without it, File ▸ Rescan folders (F5) finds them."
        )
        folders_layout.addWidget(self.watch_folders)
        if _overridden("watch_folders"):
            note = _subtle(QLabel(OVERRIDDEN_NOTE))
            self.notes["watch_folders"] = note
            folders_layout.addWidget(note)

        # Models
        self.clip_model = QComboBox()
        self.clip_model.setEditable(True)
        self.clip_model.addItem(settings.clip_model)
        self.clip_model.setCurrentText(settings.clip_model)
        self.clip_weights = _PathField(settings.clip_weights, "Choose a CLIP weights file")
        self.whisper_model = QComboBox()
        self.whisper_model.setEditable(True)
        self.whisper_model.addItem(settings.whisper_model)
        self.whisper_model.setCurrentText(settings.whisper_model)
        self.whisper_weights = _PathField(
            settings.whisper_weights,
            "Choose a Whisper weights file (.pt)",
            folder_caption="Choose a faster-whisper (CTranslate2) model folder: model.bin, config.json, …",
        )
        self.text_model = QComboBox()
        self.text_model.setEditable(True)
        self.text_model.setToolTip("A sentence-embedding model's name, or a folder that holds one")
        self.text_model.addItem(settings.text_model)
        self.text_model.setCurrentText(settings.text_model)
        self.text_folder_button = QPushButton("Folder…")
        self.text_folder_button.setToolTip("Use a model folder on this computer")
        self.text_folder_button.clicked.connect(self._choose_text_folder)
        text_row = QWidget()
        text_layout = QHBoxLayout(text_row)
        text_layout.setContentsMargins(0, 0, 0, 0)
        text_layout.addWidget(self.text_model, 1)
        text_layout.addWidget(self.text_folder_button)
        self.text_note = _subtle(
            QLabel(
                "After saving, Shoebox offers to embed the passages of your documents and recordings again with "
                "this model (recordings are not transcribed again), or to go back to the model the library was "
                "built with. Search keeps working with the old model until the new one is ready."
            )
        )
        self.text_note.hide()
        self.min_relevance = QDoubleSpinBox()
        self.min_relevance.setRange(0.0, 0.95)
        self.min_relevance.setSingleStep(0.05)
        self.min_relevance.setDecimals(2)
        self.min_relevance.setValue(settings.min_relevance)
        self.min_relevance.setToolTip(
            "Where the relevance slider starts. Relevance is calibrated for each model: at 0.25 a result\n"
            "near the top has about one chance in four of being what you asked for. Results that contain\n"
            "the words you typed, or are named as you typed, are always shown. 0 shows every result."
        )
        self.device = QComboBox()
        for value, label in DEVICES:
            self.device.addItem(label, value)
        if self.device.findData(settings.device) < 0:
            self.device.addItem(settings.device, settings.device)
        self.device.setCurrentIndex(self.device.findData(settings.device))
        self.reencode_note = _subtle(
            QLabel(
                "After saving, Shoebox offers to read your photos again with this model, or to go back to the "
                "model the library was built with. Search keeps working with the old model until the new one "
                "is ready."
            )
        )
        self.reencode_note.hide()

        models_box = QGroupBox("Models")
        models_form = QFormLayout(models_box)
        self._row(models_form, "CLIP model:", self.clip_model, "clip_model")
        self._row(models_form, "CLIP weights file:", self.clip_weights, "clip_weights")
        models_form.addRow("", self.reencode_note)
        self._row(models_form, "Whisper model:", self.whisper_model, "whisper_model")
        self._row(models_form, "Whisper weights file:", self.whisper_weights, "whisper_weights")
        self._row(models_form, "Text model:", text_row, "text_model")
        models_form.addRow("", self.text_note)
        self._row(models_form, "Run the models on:", self.device, "device")
        self._row(models_form, "Hide results less relevant than:", self.min_relevance, "min_relevance")

        # LLM
        self.llm_url = QLineEdit(settings.llm_url)
        self.llm_url.setPlaceholderText("http://localhost:11434/v1 (Ollama), http://127.0.0.1:8080 (llama.cpp)")
        self.llm_url.setClearButtonEnabled(True)
        self.llm_model = QLineEdit(settings.llm_model)
        self.llm_model.setPlaceholderText("e.g. llama3.2 (leave empty for llama.cpp)")
        llm_box = QGroupBox("Answers written by a local language model (optional)")
        llm_form = QFormLayout(llm_box)
        llm_form.addRow(
            _subtle(
                QLabel(
                    "Without one, answers are made of sentences from your files. The address must be a server "
                    "on this computer or your network that speaks the OpenAI chat-completions protocol."
                )
            )
        )
        self._row(llm_form, "Server address:", self.llm_url, "llm_url")
        self._row(llm_form, "Model name:", self.llm_model, "llm_model")

        # Appearance
        self.thumbnail_size = QSpinBox()
        self.thumbnail_size.setRange(*THUMBNAIL_SIZE_RANGE)
        self.thumbnail_size.setSingleStep(16)
        self.thumbnail_size.setSuffix(" px")
        self.thumbnail_size.setValue(thumbnail_size(self.app_settings))
        self.theme_label = _subtle(
            QLabel(
                "Shoebox follows your system's appearance: light or dark mode and the accent colour come "
                "from your operating system's settings, and change with them."
            )
        )
        look_box = QGroupBox("Appearance")
        look_form = QFormLayout(look_box)
        look_form.addRow("Thumbnail size:", self.thumbnail_size)
        look_form.addRow("Theme:", self.theme_label)

        self.general_error = InlineMessage()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)

        # The groups scroll in a dialog shorter than they are (a small screen, large text):
        # every row keeps the height it needs instead of being squeezed over its neighbours.
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.addWidget(folders_box, 1)
        content_layout.addWidget(models_box)
        content_layout.addWidget(llm_box)
        content_layout.addWidget(look_box)
        self.scroll_area = scrolling(content)
        self.content = content
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll_area, 1)
        layout.addWidget(self.general_error)
        layout.addWidget(self.buttons)
        scrollbar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        self.setMinimumWidth(min(560, content.minimumSizeHint().width() + scrollbar + 24))
        self.resize(fitted_size(self, content, self.buttons.sizeHint().height()))

        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        for edit in (_line_edit(self.clip_model), self.clip_weights.edit, _line_edit(self.text_model)):
            edit.textChanged.connect(self._update_reencode_note)
        for key, edit in (
            ("llm_url", self.llm_url),
            ("clip_weights", self.clip_weights.edit),
            ("whisper_weights", self.whisper_weights.edit),
            ("clip_model", _line_edit(self.clip_model)),
            ("whisper_model", _line_edit(self.whisper_model)),
            ("text_model", _line_edit(self.text_model)),
        ):
            edit.textChanged.connect(lambda _text, key=key: self.errors[key].clear())
        self._load_names()

    def _row(self, form: QFormLayout, label: str, field: QWidget, key: str) -> None:
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(field)
        self.errors[key] = InlineMessage()
        column.addWidget(self.errors[key])
        if _overridden(key):
            note = _subtle(QLabel(OVERRIDDEN_NOTE))
            self.notes[key] = note
            column.addWidget(note)
        form.addRow(label, box)

    def _load_names(self) -> None:
        settings = self.settings

        def work() -> tuple[list[str], list[str], list[str]]:
            return AppController.model_names(settings)

        def loaded(names: tuple[list[str], list[str], list[str]]) -> None:
            clip, whisper, text = names
            self._clip_names, self._whisper_names = set(clip), set(whisper)
            for combo, values in ((self.clip_model, clip), (self.whisper_model, whisper), (self.text_model, text)):
                current = combo.currentText()
                combo.blockSignals(True)
                combo.clear()
                combo.addItems(values)
                combo.blockSignals(False)
                combo.setCurrentText(current)

        def failed(exc: BaseException) -> None:
            self.general_error.show_message(f"Cannot list the models Shoebox knows: {describe_error(exc)}")

        run_task(work, when_alive(self, loaded), when_alive(self, failed))

    def _update_reencode_note(self) -> None:
        changed = (
            self.clip_model.currentText().strip() != self.settings.clip_model
            or self.clip_weights.text() != self.settings.clip_weights
        )
        self.reencode_note.setVisible(changed)
        self.text_note.setVisible(self.text_model.currentText().strip() != self.settings.text_model)

    def _choose_text_folder(self) -> None:
        start = self.text_model.currentText().strip()
        start = start if os.path.isdir(os.path.expanduser(start)) else os.path.expanduser("~")
        folder = QFileDialog.getExistingDirectory(self, "Choose a text model folder", start)
        if folder:
            self.text_model.setCurrentText(folder)

    # -- values ------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The library settings as the fields say now (names as in :class:`Settings`)."""
        return {
            "clip_model": self.clip_model.currentText().strip(),
            "clip_weights": self.clip_weights.text(),
            "whisper_model": self.whisper_model.currentText().strip(),
            "whisper_weights": self.whisper_weights.text(),
            "text_model": self.text_model.currentText().strip(),
            "min_relevance": round(self.min_relevance.value(), 2),
            "device": self.device.currentData(),
            "llm_url": self.llm_url.text().strip(),
            "llm_model": self.llm_model.text().strip(),
            "watch_folders": self.watch_folders.isChecked(),
        }

    def validate(self) -> dict[str, str]:
        """A message for each field that cannot be saved as it is."""
        values = self.values()
        problems: dict[str, str] = {}
        url = values["llm_url"]
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems["llm_url"] = (
                    "Enter an address that starts with http:// or https://, for example http://localhost:11434/v1."
                )
        for key in ("clip_weights", "whisper_weights"):
            raw = values[key]
            if not raw:
                continue
            path = Path(raw).expanduser()
            if path.is_dir() and key == "whisper_weights":
                if not ((path / "model.bin").is_file() and (path / "config.json").is_file()):
                    problems[key] = (
                        "This folder holds no faster-whisper model (model.bin and config.json); "
                        "choose such a folder or a Whisper .pt file."
                    )
            elif path.is_dir():
                problems[key] = "This is a folder; choose the weights file inside it."
            elif not path.is_file():
                problems[key] = "There is no file at this path."
        if not values["clip_model"]:
            problems["clip_model"] = "Enter the name of a CLIP model, for example ViT-B-32."
        elif self._clip_names and values["clip_model"] not in self._clip_names:
            problems["clip_model"] = (
                f"Shoebox does not know a CLIP model called {values['clip_model']}; pick one from the list."
            )
        text = values["text_model"]
        if not text:
            problems["text_model"] = "Enter a text model's name, for example intfloat/multilingual-e5-small."
        elif (os.sep in text or text.startswith(("~", "."))) and not Path(text).expanduser().is_dir():
            problems["text_model"] = "There is no folder at this path; choose the folder that holds the model."
        if not values["whisper_model"]:
            problems["whisper_model"] = "Enter the name of a Whisper model, for example base."
        elif (
            self._whisper_names and values["whisper_model"] not in self._whisper_names and not values["whisper_weights"]
        ):
            problems["whisper_model"] = (
                f"There is no Whisper model called {values['whisper_model']}; "
                "pick one from the list, or choose its weights file."
            )
        return problems

    def save(self) -> bool:
        """Validate, write the changes and emit ``settings_changed``; False when a field needs fixing."""
        for message in self.errors.values():
            message.clear()
        self.general_error.clear()
        problems = self.validate()
        if problems:
            for key, text in problems.items():
                self.errors[key].show_message(text)
            return False
        changes = {k: v for k, v in self.values().items() if getattr(self.settings, k) != v}
        try:
            new = save_settings(self.settings, **changes) if changes else self.settings
        except (OSError, ValueError) as exc:
            self.general_error.show_message(f"Cannot save the settings: {describe_error(exc)}")
            return False
        self.app_settings.setValue(THUMBNAIL_SIZE_KEY, self.thumbnail_size.value())
        self.app_settings.sync()
        self.settings = new
        self.settings_changed.emit(new)
        self.accept()
        return True
