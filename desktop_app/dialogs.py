"""Dialogs: getting the models on first run, and the settings.

* :class:`FirstRunDialog` explains that the CLIP / Whisper weights are missing and
  lets the person download them (only when they ask, with progress) or pick
  weight files they already have.
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


def _overridden(setting: str) -> str | None:
    """The environment variable that overrides ``setting`` right now, if any."""
    found = overriding_environment([setting])
    return found[0] if found else None


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
# First run


class _Progress(QObject):
    """Carries a download's progress from the worker to the GUI thread (a queued signal)."""

    changed = Signal(str, object, object, str)  # kind, done, total (bytes; may pass 2**31), message


# What each model does, as the dialogs name it.
MODEL_LABELS = {"clip": "CLIP", "text": "Text model", "whisper": "Whisper"}
MODEL_PURPOSES = {"clip": "photos", "text": "documents and recordings", "whisper": "voice recordings"}
MODEL_KINDS = ("clip", "text", "whisper")


def _import_files(settings: Settings, paths: list[str]) -> tuple[Settings, list[str], list[str]]:
    """Import weight files (worker side); returns the new settings, what was done, what failed."""
    done: list[str] = []
    failed: list[str] = []
    for path in paths:
        name = os.path.basename(path)
        try:
            settings, kind, overridden = AppController.import_model(settings, path)
        except Exception as exc:  # shown beside the file's name; the other files still go in
            failed.append(f"{name}: {describe_error(exc)}")
            continue
        note = f" ({', '.join(overridden)} is set in the environment and takes precedence)" if overridden else ""
        done.append(
            f"Imported the {MODEL_LABELS[kind]} from {name}{note}."
            if kind == "text"
            else f"Imported {MODEL_LABELS[kind]} weights from {name}{note}."
        )
    return settings, done, failed


class FirstRunDialog(QDialog):
    """Shown when the model weights are missing: download them, or choose files you have.

    ``FirstRunDialog(settings, parent=None, *, reason="")``: ``settings`` are the
    library's :class:`~engine.settings.Settings`; ``reason`` is the message of the
    ``models_missing`` signal.  Nothing is downloaded until the person presses
    Download; the download and imports run off the GUI thread.

    Signals: ``models_changed(object)`` with the (possibly updated) Settings after
    weights were downloaded or imported (the window then calls
    ``controller.load_models()``); ``models_listed(list)`` once the status of
    each model is known (rows of ``engine.models.list_models``);
    ``download_failed(str)`` with the message shown.

    Methods: ``download()``, ``choose_files()``, ``is_busy()``.
    """

    models_changed = Signal(object)
    models_listed = Signal(list)
    download_failed = Signal(str)

    def __init__(self, settings: Settings, parent: QWidget | None = None, *, reason: str = ""):
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Shoebox needs its models")
        self._busy = False
        self._changed = False  # weights were downloaded or imported while the dialog was open
        self._cancel = threading.Event()
        self._progress = _Progress()  # no parent: the worker may outlive the dialog
        self._progress.changed.connect(self._show_progress)

        heading = QLabel("Shoebox needs its models to find things by meaning")
        font = heading.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        heading.setFont(font)
        self.explanation = QLabel(
            "Shoebox finds photos, documents and recordings by what they mean, using models that run "
            "on this computer: CLIP understands photos, a text model understands the passages of your "
            "documents and recordings, and Whisper turns voice recordings into text. Some of their files "
            "are not on this computer yet.\n\n"
            "You can add folders meanwhile: Shoebox indexes what needs no model at once, so files are "
            "found by their names, dates and words straight away, and by their meaning once the models "
            "are here, without indexing again.\n\n"
            "You can download the models now. This fetches a few hundred megabytes once, from the "
            "publishers of the models (Hugging Face and OpenAI); your own files never leave this computer. "
            "Or, if you have the weight files already (copied from another computer, say), choose them."
        )
        self.explanation.setWordWrap(True)
        self.reason_label = _subtle(QLabel(f"Details: {reason}"))
        self.reason_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reason_label.setVisible(bool(reason))

        self.clip_box = QCheckBox(f"CLIP {settings.clip_model} ({MODEL_PURPOSES['clip']})")
        self.text_box = QCheckBox(f"Text model {settings.text_model} ({MODEL_PURPOSES['text']})")
        self.whisper_box = QCheckBox(f"Whisper {settings.whisper_model} ({MODEL_PURPOSES['whisper']})")
        self.boxes = {"clip": self.clip_box, "text": self.text_box, "whisper": self.whisper_box}
        for box in self.boxes.values():
            box.setChecked(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.hide()
        self.progress_label = _subtle(QLabel())
        self.progress_label.hide()
        self.message = InlineMessage()

        self.download_button = QPushButton("Download now")
        self.download_button.setToolTip("Connect to the internet and fetch the checked models")
        self.choose_button = QPushButton("Choose weight files…")
        self.choose_button.setToolTip("Use CLIP or Whisper .safetensors, .pt or .bin files you already have")
        self.choose_folder_button = QPushButton("Choose a model folder…")
        self.choose_folder_button.setToolTip(
            "Use a model folder you already have: a sentence-embedding text model (config.json, "
            "model.safetensors, tokenizer.json, …) or a faster-whisper model (model.bin, config.json, …)"
        )
        self.close_button = QPushButton("Later")
        self.close_button.setToolTip("Keep using keyword search; you can get the models from Settings later")

        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.choose_button)
        buttons.addWidget(self.choose_folder_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        models = QGroupBox("Models")
        models_layout = QVBoxLayout(models)
        for box in self.boxes.values():
            models_layout.addWidget(box)
        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.addWidget(heading)
        content_layout.addWidget(self.explanation)
        content_layout.addWidget(self.reason_label)
        content_layout.addWidget(models)
        content_layout.addWidget(self.progress_bar)
        content_layout.addWidget(self.progress_label)
        content_layout.addWidget(self.message)
        content_layout.addStretch(1)
        self.scroll_area = scrolling(content)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll_area, 1)
        layout.addLayout(buttons)
        self.setMinimumWidth(520)
        self.resize(fitted_size(self, content, buttons.sizeHint().height()))

        self.download_button.clicked.connect(self.download)
        self.choose_button.clicked.connect(self.choose_files)
        self.choose_folder_button.clicked.connect(self.choose_folder)
        self.close_button.clicked.connect(self._close_clicked)
        self._list_models()

    # -- status ------------------------------------------------------------------

    def _list_models(self) -> None:
        settings = self.settings

        def listed(rows: list[dict]) -> None:
            for kind, box in self.boxes.items():
                row = next((r for r in rows if r["kind"] == kind and r["selected"]), None)
                if row is None:
                    continue
                state = "already here" if row["present"] else "missing"
                box.setText(f"{MODEL_LABELS[kind]} {row['name']} ({MODEL_PURPOSES[kind]}): {state}")
                box.setToolTip(f"Weights: {row['weights']}" + (f"\n{row['path']}" if row["path"] else ""))
                box.setChecked(not row["present"])
            self.models_listed.emit(rows)

        def failed(exc: BaseException) -> None:
            self.message.show_message(f"Cannot tell which models are here: {describe_error(exc)}")

        def work() -> list[dict]:
            return AppController.list_models(settings)

        run_task(work, when_alive(self, listed), when_alive(self, failed), long=True)

    def is_busy(self) -> bool:
        return self._busy

    def _set_busy(self, busy: bool, text: str = "") -> None:
        self._busy = busy
        for widget in (self.download_button, self.choose_button, self.choose_folder_button, *self.boxes.values()):
            widget.setEnabled(not busy)
        self.close_button.setText("Stop" if busy else ("Done" if self._changed else "Later"))
        self.close_button.setEnabled(True)
        self.progress_label.setText(text)
        self.progress_label.setVisible(busy)
        self.progress_bar.setVisible(busy)

    # -- download ------------------------------------------------------------------

    def download(self) -> None:
        """Download the checked models (the person asked for it by pressing Download)."""
        kinds = [k for k, box in self.boxes.items() if box.isChecked()]
        if not kinds:
            self.message.show_message("Check the models to download first.")
            return
        if self._busy:
            return
        self.message.clear()
        self._cancel = cancel = threading.Event()
        self.progress_bar.setRange(0, 0)
        self._set_busy(True, "Connecting…")
        settings = self.settings
        progress = self._progress

        def work() -> list[Path]:
            done = []
            shown: list[Any] = [None]  # the last (kind, permille, message) sent to the GUI thread
            for kind in kinds:

                def report(received: int, total: int, message: str, kind: str = kind) -> None:
                    if cancel.is_set():  # raised inside the download, which removes its partial file
                        raise Cancelled("the download was stopped")
                    # One signal per tenth of a percent at most: a 3 GB file arrives in 3000 blocks.
                    step = (kind, int(1000 * received / total) if total else -1, message)
                    if step != shown[0]:
                        shown[0] = step
                        progress.changed.emit(kind, received, total, message)

                if cancel.is_set():
                    raise Cancelled("the download was stopped")
                progress.changed.emit(kind, 0, 0, f"downloading {MODEL_LABELS[kind]}")
                done.append(AppController.download_model(settings, kind, report))
            return done

        run_task(work, when_alive(self, self._downloaded), when_alive(self, self._download_error), long=True)

    def _show_progress(self, kind: str, received: Any, total: Any, message: str) -> None:
        if not self._busy:
            return
        if total and total > 0:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * min(received, total) / total))
            text = f"{_phase(message)}: {_megabytes(received)} of {_megabytes(total)}"
        else:
            self.progress_bar.setRange(0, 0)
            text = f"{_phase(message)}…"
        if self._cancel.is_set():
            text = "Stopping the download…"
        self.progress_label.setText(text)

    def _downloaded(self, paths: list[Path]) -> None:
        self._changed = True
        self._set_busy(False)
        self.message.show_message(
            "The models are here. Shoebox is loading them; meaning search starts in a moment.", error=False
        )
        self.models_changed.emit(self.settings)

    def _download_error(self, exc: BaseException) -> None:
        self._set_busy(False)
        if isinstance(exc, Cancelled):
            text = "The download was stopped. Nothing was kept from the unfinished file."
        else:
            text = describe_error(exc)
            if isinstance(exc, OSError):  # the engine's own errors already say what to do
                text = (
                    f"The download failed: {text}. Check that this computer is connected to the "
                    "internet, or choose weight files you have."
                )
        self.download_button.setText("Try again")
        self.message.show_message(text)
        self.download_failed.emit(text)

    # -- import ----------------------------------------------------------------------

    def choose_files(self) -> None:
        """Ask for weight files and import them into Shoebox's model cache."""
        if self._busy:
            return
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Choose CLIP or Whisper weight files", os.path.expanduser("~"), WEIGHT_FILES
        )
        if not paths:
            return
        self.import_paths(list(paths))

    def choose_folder(self) -> None:
        """Ask for a model folder (a text model, or a faster-whisper model) and import it into Shoebox's model cache."""
        if self._busy:
            return
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder", os.path.expanduser("~"))
        if not folder:
            return
        self.import_paths([folder])

    def import_paths(self, paths: list[str]) -> None:
        """Import weight files or text model folders (what the choosers picked), off the GUI thread."""
        self.message.clear()
        self.progress_bar.setRange(0, 0)
        self._set_busy(True, "Checking and copying the model…")
        settings = self.settings
        run_task(
            lambda: _import_files(settings, list(paths)),
            when_alive(self, self._imported),
            when_alive(self, self._import_error),
            long=True,
        )

    def _imported(self, result: tuple[Settings, list[str], list[str]]) -> None:
        settings, done, failed = result
        self.settings = settings
        self._changed = self._changed or bool(done)
        self._set_busy(False)
        lines = done + failed
        self.message.show_message("\n".join(lines), error=bool(failed))
        if done:
            self.models_changed.emit(settings)

    def _import_error(self, exc: BaseException) -> None:
        self._set_busy(False)
        self.message.show_message(describe_error(exc))

    # -- closing ----------------------------------------------------------------------

    def _close_clicked(self) -> None:
        if self._busy:
            self._cancel.set()
            self.progress_label.setText("Stopping the download…")
            self.close_button.setEnabled(False)
            return
        if self._changed:
            self.accept()
        else:
            self.reject()

    def reject(self) -> None:
        if self._busy:  # Escape or the window's close button while a download runs: stop it first
            self._close_clicked()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._busy:
            self._close_clicked()
            event.ignore()
            return
        super().closeEvent(event)


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
        env = _overridden("watch_folders")
        if env:
            note = _subtle(QLabel(f"{env} is set in the environment; it takes precedence over what is saved here."))
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
        env = _overridden(key)
        if env:
            note = _subtle(QLabel(f"{env} is set in the environment; it takes precedence over what is saved here."))
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
