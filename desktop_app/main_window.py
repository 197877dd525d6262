"""The main window: a search field, filters on the left, results in the middle, a preview on the right.

The window appears at once.  Everything that touches the library goes
through :class:`desktop_app.controller.AppController` (searches, tags,
indexing, re-embedding, counts, thumbnails, details), so the GUI thread never
waits for the engine, and nothing heavy (torch, the models, numba) is imported
before the window is on screen.

Only the answer to the latest search request is shown: typing fast starts
several searches, and a slow early one never overwrites a newer one.

What a search produced belongs to it: its warnings (in their own banner), the
dates it understood (chips in the sidebar) and the selection among its results
go when another search starts, and each answer replaces them.  Searching the
same thing again (after a tag change, new files, the models loading) keeps the
selection and the place in the list.

With no query the window browses the library (:mod:`desktop_app.browse`):
photos by month, documents and recordings by date, a page at a time as the
lists are scrolled.  Search results grow the same way: scrolled to their end,
the search runs again for a page more and the new files are added below.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPointF, QRectF, QSettings, QSignalBlocker, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QIcon, QKeySequence, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.calibration import DEFAULT_MIN_RELEVANCE
from engine.errors import ShoeboxError
from engine.extractors import IMAGE_EXTENSIONS
from engine.extractors.documents import page_unit
from engine.query import Query
from engine.search import MEANING_PENDING, MODELS_MISSING_WARNINGS
from engine.settings import Settings

from .ask_panel import AskPanel
from .browse import LibraryBrowser
from .controller import (
    AppController,
    describe_error,
    library_location,
    model_name,
    overriding_environment,
    recorded_settings,
    window_text,
)
from .filters import Chip, FilterPanel
from .indexing import (
    IndexingPanel,
    add_folder_dialog,
    describe_reembed,
    describe_summary,
    describe_waiting,
    install_drop_indexing,
    readable_reason,
)
from .preview import PreviewPane
from .problems import ProblemsWindow
from .results import ResultsView, ThumbnailLoader
from .style import STYLE_SHEET, error_background, info_background, mix
from .tag_dialog import TagDialog

SEARCH_DELAY_MS = 250  # typing pauses this long before the search starts
ASK_PANEL_WIDTH = 360  # the ask panel's width the first time, at most (never wider than the results)
ASK_WIDTH_KEY = "window/ask_panel_width"  # where the person left the divider, in the window's QSettings
RESULT_PAGE = 60  # a search asks for this many files, and this many more each time its results are scrolled to the end
# Beside the result count while those results were found by their words and names only.
MEANING_NOTE = "More by meaning once the models have loaded…"


def open_url(url: QUrl) -> bool:
    """Hand a file or folder to the desktop (tests replace this to open nothing)."""
    return QDesktopServices.openUrl(url)


def image_paths(mime: QMimeData) -> list[str]:
    """The local image files among dropped URLs."""
    paths = []
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile():
            path = url.toLocalFile()
            if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(path)
    return paths


def app_icon() -> QIcon:
    """Shoebox's icon at every size it is drawn at (``resources/icons``, rendered from the SVG)."""
    from engine.bundled import resource_path

    icon = QIcon()
    for png in sorted(resource_path("icons").glob("shoebox-*.png")):
        size = png.stem.rpartition("-")[2]
        if size.isdigit():
            icon.addFile(str(png), QSize(int(size), int(size)))
    return icon


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _sentence(text: str) -> str:
    """The engine's lower-case message as a sentence: a capital first letter, a full stop at the end."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "…")) else text + "."


def indexing_line(paths: Sequence[str]) -> str:
    """The status line while an indexing job runs."""
    if not paths:
        return "Looking for new and changed files…"
    if len(paths) == 1:
        return f"Indexing {Path(paths[0]).name or paths[0]}…"
    return f"Indexing {_plural(len(paths), 'item')}…"


def indexing_outcome(summary: Any) -> str:
    """The status line once an indexing job ended: what it did."""
    text = describe_summary(summary)
    return text if summary.cancelled else f"Indexing finished: {text[0].lower() + text[1:]}"


class SearchField(QLineEdit):
    """The query field: drop an image on it to search by that image; Esc clears; Down goes to the results."""

    image_dropped = Signal(str)
    escape_pressed = Signal()
    down_pressed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setPlaceholderText("Search your photos, documents and recordings…  (or drop a picture here)")
        self.setClearButtonEnabled(True)
        self.setAcceptDrops(True)
        self.setMinimumHeight(max(30, self.sizeHint().height() + 6))
        self.setAccessibleName("Search")
        self._icon_action = self.addAction(self._search_icon(), QLineEdit.ActionPosition.LeadingPosition)

    def _search_icon(self) -> QIcon:
        """A magnifying glass in the palette's text colour (icon themes are missing on many systems)."""
        ratio = self.devicePixelRatioF()
        pixmap = QPixmap(int(16 * ratio), int(16 * ratio))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colour = mix(self.palette().color(QPalette.ColorRole.Text), self.palette().color(QPalette.ColorRole.Base), 0.7)
        painter.setPen(QPen(colour, 1.8))
        painter.drawEllipse(QRectF(2, 2, 8.5, 8.5))
        painter.drawLine(QPointF(9.6, 9.6), QPointF(14, 14))
        painter.end()
        return QIcon(pixmap)

    def changeEvent(self, event: Any) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            self._icon_action.setIcon(self._search_icon())

    def dragEnterEvent(self, event: Any) -> None:
        if image_paths(event.mimeData()):
            event.acceptProposedAction()
        elif event.mimeData().hasUrls():
            event.ignore()  # files and folders: the window indexes them
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: Any) -> None:
        if image_paths(event.mimeData()):
            event.acceptProposedAction()
        elif event.mimeData().hasUrls():
            event.ignore()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: Any) -> None:
        paths = image_paths(event.mimeData())
        if not paths:
            if event.mimeData().hasUrls():
                event.ignore()
            else:
                super().dropEvent(event)
            return
        event.acceptProposedAction()
        # Leave the drop handler at once (the drag source is waiting); search on the next loop turn.
        QTimer.singleShot(0, lambda: self.image_dropped.emit(paths[0]))

    def keyPressEvent(self, event: Any) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.escape_pressed.emit()
            return
        if event.key() == Qt.Key.Key_Down and not event.modifiers():
            self.down_pressed.emit()
            return
        super().keyPressEvent(event)


class MessageBanner(QFrame):
    """A one-line message above the results (errors, warnings, offers), closable."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.level = "info"
        self.setAutoFillBackground(True)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.icon = QLabel()
        self.action_button = QToolButton()
        self.action_button.hide()
        self.second_button = QToolButton()
        self.second_button.hide()
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        text_column = QVBoxLayout()
        text_column.addWidget(self.label)
        # An offer of two choices puts its buttons under the text, which then has the width
        # to read as a sentence; a single action sits beside it.
        self._choices = QHBoxLayout()
        self._choices.setContentsMargins(0, 2, 0, 0)
        self._choices.addStretch(1)
        text_column.addLayout(self._choices)
        layout.addLayout(text_column, 1)
        self._beside = QHBoxLayout()
        layout.addLayout(self._beside)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self._place_buttons(under=False)
        self.hide()

    def _place_buttons(self, *, under: bool) -> None:
        for button in (self.action_button, self.second_button):
            self._choices.removeWidget(button)
            self._beside.removeWidget(button)
        if under:
            self._choices.insertWidget(0, self.action_button)
            self._choices.insertWidget(1, self.second_button)
        else:
            self._beside.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignTop)
            self._beside.addWidget(self.second_button, 0, Qt.AlignmentFlag.AlignTop)

    def show_message(
        self, text: str, level: str = "error", action: QAction | None = None, second: QAction | None = None
    ) -> None:
        """Show ``text``; ``action`` becomes a button beside it, or, with ``second``, both go under it."""
        self.level = level
        self.label.setText(text)
        self._place_buttons(under=second is not None)
        for button, act in ((self.action_button, action), (self.second_button, second)):
            if act is not None:
                button.setDefaultAction(act)
            button.setVisible(act is not None)
        icon = (
            QStyle.StandardPixmap.SP_MessageBoxWarning
            if level == "error"
            else QStyle.StandardPixmap.SP_MessageBoxInformation
        )
        self.icon.setPixmap(self.style().standardIcon(icon).pixmap(18, 18))
        self._colour()
        self.show()

    def text(self) -> str:
        parent = self.parentWidget()
        shown = self.isVisibleTo(parent) if parent is not None else self.isVisible()  # as isVisibleTo(nullptr) is
        return self.label.text() if shown else ""

    def _colour(self) -> None:
        palette = self.palette()
        base = QApplication.palette(self)
        colour = error_background(base) if self.level == "error" else info_background(base)
        palette.setColor(QPalette.ColorRole.Window, colour)
        self.setPalette(palette)


class MainWindow(QMainWindow):
    """Shows at once; the library opens and every search runs on worker threads."""

    library_ready = Signal()  # the library is open and its counts are shown (once)
    library_info_loaded = Signal()  # counts, tags and folders refreshed (every time)
    results_shown = Signal(int)  # the latest search's answer is on screen: how many results it had
    browse_page_shown = Signal(str, int)  # browsing: a page of a section arrived ("photos"/"passages"), files in it
    search_error = Signal(str)  # the latest search failed: the message shown
    citation_shown = Signal(object)  # the SearchResult of a citation now in the preview

    def __init__(self, settings: Settings | None = None, library: Any = None, app_settings: QSettings | None = None):
        """``library``: an open :class:`engine.library.Library` for the controller (tests, scripts), or None.

        ``app_settings``: the ``QSettings`` that keep the window's own state (where the ask panel's
        divider was left); None keeps it for this window only.
        """
        super().__init__()
        self.app_settings = app_settings
        self._remembered_ask_width = 0
        self.setWindowTitle("Shoebox")
        self.setWindowIcon(app_icon())
        self.resize(1240, 780)
        self.setStyleSheet(STYLE_SHEET)
        self.controller = AppController(settings, library)
        self.result_page = RESULT_PAGE
        self._result_k = RESULT_PAGE  # how many files the current search asks for (grows a page at a time)
        self._appending = False  # the search in flight asks for a page more of the results shown
        self.browser = LibraryBrowser(self.controller, parent=self)
        self._closed = False
        self._request = 0  # the search request whose answer may be shown
        self._searched_text = ""  # the query text of that request (date chips point into it)
        self._query_image: str | None = None
        self._query_like: tuple[int, str] | None = None  # item id, path
        self._last_response: Any = None
        self._request_key: Any = None  # what the latest request searched for (see _query_key)
        self._shown_key: Any = None  # what the results on screen were found for
        self.tag_dialog: TagDialog | None = None
        self._library_items: int | None = None  # None until the counts are known
        self._ready_announced = False
        self._search_when_open = False
        self._models_missing = ""  # why the models could not load (shown in the set-up dialog)
        self._offering_reembed = False  # the banner asks whether to re-embed or go back
        self._search_after_choice = False  # a search was refused until the models agree
        self._offer_preface: tuple[str, str] | None = None  # (words, level) said before the offer is made again
        # The set-up dialog opens only when the person asks (the models banner's button or
        # File ▸ Set up models…); never by itself, where it would take the keys typed meanwhile.
        self.models_dialog: Any = None
        self.storage_dialog: Any = None  # File ▸ Library storage…, while it is open
        # Where a download in the set-up dialog comes from (an engine Downloader; None: the publishers).
        self.model_downloader: Any = None

        self.thumbnails = ThumbnailLoader(self.controller, parent=self)
        self._build_widgets()
        self._build_actions()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        self._install_panels()
        self._update_actions()
        self._show_idle()
        # The library opens after the window is on screen.
        QTimer.singleShot(0, self._open)

    # -- building ------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.search_field = SearchField()
        self.query_chip: Chip | None = None
        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(10, 8, 10, 6)
        top_layout.setSpacing(8)
        top_layout.addWidget(self.search_field, 1)
        self._top_layout = top_layout

        self.banner = MessageBanner()  # the app's messages: the library, the models, actions that failed
        self.search_banner = MessageBanner()  # the latest search's own warnings, or why it failed
        # Says the models are not set up yet; apart from the other two.
        self.models_banner = MessageBanner()
        self.models_banner.setObjectName("ModelsBanner")
        self.filter_panel = FilterPanel()
        self.results = ResultsView(self.thumbnails)
        self.results.shown_changed.connect(self._threshold_moved)
        self.results.more_wanted.connect(self._more_wanted)
        self.results.photos_needed.connect(lambda count: self.browser.fetch("photos", at_least=count))
        configured = self.controller.settings
        self.results.set_threshold(configured.min_relevance if configured is not None else DEFAULT_MIN_RELEVANCE)
        self.preview = PreviewPane(self.controller)

        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        centre_layout.addWidget(self.models_banner)
        centre_layout.addWidget(self.banner)
        centre_layout.addWidget(self.search_banner)
        centre_layout.addWidget(self.results, 1)

        # The ask panel sits beside the results and shares their width: the person drags the
        # divider between them, and where they leave it is remembered.
        self.ask_panel = AskPanel(self.controller)
        self.ask_box = QWidget()
        self.ask_box.setObjectName("AskBox")
        ask_title = QLabel("Ask a question")
        ask_title.setObjectName("SectionTitle")
        self.ask_close_button = QToolButton()
        self.ask_close_button.setText("✕")
        self.ask_close_button.setAutoRaise(True)
        self.ask_close_button.setToolTip("Close the ask panel")
        self.ask_close_button.setAccessibleName("Close the ask panel")
        self.ask_close_button.clicked.connect(self.close_ask_panel)
        ask_header = QHBoxLayout()
        ask_header.setContentsMargins(9, 6, 4, 0)
        ask_header.addWidget(ask_title, 1)
        ask_header.addWidget(self.ask_close_button)
        ask_layout = QVBoxLayout(self.ask_box)
        ask_layout.setContentsMargins(0, 0, 0, 0)
        ask_layout.setSpacing(0)
        ask_layout.addLayout(ask_header)
        ask_layout.addWidget(self.ask_panel, 1)
        self.work_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.results_area = centre
        self.work_splitter.addWidget(centre)
        self.work_splitter.addWidget(self.ask_box)
        self.work_splitter.setStretchFactor(0, 1)
        self.work_splitter.setStretchFactor(1, 0)
        self.work_splitter.setChildrenCollapsible(False)
        self.work_splitter.splitterMoved.connect(self._ask_divider_moved)
        self.ask_box.hide()

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.filter_panel)
        self.splitter.addWidget(self.work_splitter)
        self.splitter.addWidget(self.preview)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([230, 650, 360])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(top)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self._debounce = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._debounce.timeout.connect(self.run_search)
        self._refresh = QTimer(self, singleShot=True, interval=0)  # coalesces filter changes and refreshes
        self._refresh.timeout.connect(self.run_search)
        self._info_timer = QTimer(self, singleShot=True, interval=0)  # coalesces counts and tags refreshes
        self._info_timer.timeout.connect(self._refresh_library_info)

    def _action(
        self,
        text: str,
        slot: Any,
        shortcut: str | QKeySequence.StandardKey | None = None,
        icon: QStyle.StandardPixmap | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _build_actions(self) -> None:
        # Actions on results: in the menus, the context menu and under the preview.
        self.open_action = self._action(
            "Open",
            self.open_selected,
            None,
            QStyle.StandardPixmap.SP_DialogOpenButton,
            "Open with the default application (Enter)",
        )
        self.reveal_action = self._action(
            "Show in folder",
            self.reveal_selected,
            None,
            QStyle.StandardPixmap.SP_DirOpenIcon,
            "Open the folder that holds it",
        )
        self.copy_path_action = self._action(
            "Copy path", self.copy_selected_paths, QKeySequence.StandardKey.Copy, None, "Copy the file's path (Ctrl+C)"
        )
        # Ctrl+C copies paths only while the results have focus; elsewhere it copies text as usual.
        self.copy_path_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.results.addAction(self.copy_path_action)
        self.more_like_action = self._action(
            "More like this", self.more_like_this, "Ctrl+M", None, "Find things similar to this one"
        )
        self.add_tag_action = self._action(
            "Add tag…", self.add_tag_to_selection, "Ctrl+T", None, "Tag the selected files"
        )
        self.remove_tag_action = self._action(
            "Remove tag…", self.remove_tag_from_selection, None, None, "Remove a tag from the selected files"
        )
        self.result_actions = [
            self.open_action,
            self.reveal_action,
            self.copy_path_action,
            self.more_like_action,
            self.add_tag_action,
            self.remove_tag_action,
        ]
        self.preview.set_actions([self.open_action, self.reveal_action, self.more_like_action, self.add_tag_action])

        # Window actions; the panels of desktop_app.indexing / ask_panel / dialogs plug into these.
        self.rescan_action = self._action(
            "Rescan folders",
            self.controller.rescan,
            QKeySequence.StandardKey.Refresh,
            QStyle.StandardPixmap.SP_BrowserReload,
            "Find new, changed, moved and deleted files in the library's folders",
        )
        self.add_folder_action = self._action(
            "Add folder…",
            self._on_add_folder,
            QKeySequence.StandardKey.Open,
            QStyle.StandardPixmap.SP_DirIcon,
            "Index a folder",
        )
        self.settings_action = self._action("Settings…", self._on_settings, QKeySequence.StandardKey.Preferences)
        if self.settings_action.shortcut().isEmpty():  # Linux desktops define no Preferences key
            self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.storage_action = self._action(
            "Library storage…",
            self.show_storage_dialog,
            "Ctrl+Shift+L",
            None,
            "Keep the library on this computer, or on a PostgreSQL server that several computers share",
        )
        self.ask_action = self._action(
            "Ask a question", self._on_ask, "Ctrl+Shift+A", None, "Ask a question about your documents and recordings"
        )
        self.quit_action = self._action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.focus_search_action = self._action("Search", self.focus_search, None)
        self.focus_search_action.setShortcuts([QKeySequence("Ctrl+K"), QKeySequence("Ctrl+F")])
        self.clear_filters_action = self._action("Clear filters", self.filter_panel.reset, None)
        self.addAction(self.focus_search_action)

    def _build_menus(self) -> None:
        menu_bar = self.menuBar()
        file_menu = menu_bar.addMenu("&File")
        self.file_menu = file_menu
        file_menu.addAction(self.add_folder_action)
        file_menu.addAction(self.rescan_action)
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addAction(self.storage_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menu_bar.addMenu("&Edit")
        edit_menu.addAction(self.focus_search_action)
        edit_menu.addAction(self.clear_filters_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.copy_path_action)
        edit_menu.addAction(self.add_tag_action)
        edit_menu.addAction(self.remove_tag_action)
        result_menu = menu_bar.addMenu("&Result")
        result_menu.addAction(self.open_action)
        result_menu.addAction(self.reveal_action)
        result_menu.addAction(self.more_like_action)
        self.view_menu = menu_bar.addMenu("&View")
        self.view_menu.addAction(self.ask_action)
        help_menu = menu_bar.addMenu("&Help")
        help_menu.addAction(self._action("About Shoebox", self._about))

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_label = QLabel("Starting…")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.result_label = QLabel("")
        self.result_label.setTextFormat(Qt.TextFormat.PlainText)
        self.library_label = QLabel("")
        self.library_label.setTextFormat(Qt.TextFormat.PlainText)
        # "24 failed" is a link to View ▸ Problems.
        self.failed_label = QLabel("")
        self.failed_label.setTextFormat(Qt.TextFormat.RichText)
        self.failed_label.setToolTip("Show the files that could not be read (Ctrl+Shift+P)")
        self.failed_label.linkActivated.connect(lambda _link: self.show_problems())
        self.failed_label.hide()
        # Said quietly while the results shown were found by their words and names only, the models
        # still loading: the search runs again by meaning once they have loaded.
        self.meaning_note = QLabel(MEANING_NOTE)
        self.meaning_note.setTextFormat(Qt.TextFormat.PlainText)
        self.meaning_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.meaning_note.hide()
        for label in (self.status_label, self.meaning_note, self.result_label, self.library_label):
            label.setContentsMargins(6, 0, 10, 0)
        bar.addWidget(self.status_label, 1)
        bar.addPermanentWidget(self.meaning_note)
        bar.addPermanentWidget(self.result_label)
        bar.addPermanentWidget(self.library_label)
        bar.addPermanentWidget(self.failed_label)
        self.failed_label.setContentsMargins(0, 0, 10, 0)

    def _connect(self) -> None:
        self.search_field.textChanged.connect(self._text_edited)
        self.search_field.returnPressed.connect(self.run_search)
        self.search_field.image_dropped.connect(self.search_by_image)
        self.search_field.escape_pressed.connect(self.clear_search)
        self.search_field.down_pressed.connect(self._focus_results)
        self.filter_panel.changed.connect(self._refresh.start)
        self.browser.page_ready.connect(self._browse_page)
        self.browser.months_ready.connect(lambda months: self._guard(self.results.set_months, months))
        self.browser.failed.connect(lambda message: self._guard(self._show_error, message))
        self.filter_panel.date_phrase_removed.connect(self.remove_date_phrase)
        self.results.current_changed.connect(self._current_changed)
        self.results.current_updated.connect(self.preview.update_result)
        self.results.selection_changed.connect(self._update_actions)
        self.results.open_requested.connect(lambda result: self.open_results([result]))
        self.results.preview_requested.connect(self._preview_requested)
        self.results.context_menu_requested.connect(self._context_menu)
        self.preview.open_requested.connect(self.open_file)
        self.preview.message.connect(lambda text: self.statusBar().showMessage(text, 8000))

        c = self.controller
        c.status.connect(self._status)
        c.library_opened.connect(self._library_opened)
        c.library_switched.connect(self._library_switched)
        c.library_failed.connect(self._library_failed)
        c.models_ready.connect(self._models_ready)
        c.models_missing.connect(self._on_models_missing)
        c.search_done.connect(self._search_done)
        c.search_failed.connect(self._search_failed)
        c.search_needs_model_choice.connect(self._search_needs_model_choice)
        c.model_changes_found.connect(self._model_changes_found)
        c.reembed_started.connect(self._reembed_started)
        c.reembed_finished.connect(self._reembed_finished)
        c.reembed_failed.connect(self._reembed_failed)
        c.library_changed.connect(self._library_changed)
        c.tags_changed.connect(self._tags_changed)
        c.index_finished.connect(lambda _summary: self._guard(self.thumbnails.clear))
        # A status line for a job lasts as long as the job: its end (finished, stopped or
        # failed) replaces it.
        c.index_started.connect(lambda paths: self._status(indexing_line(paths)))
        c.index_finished.connect(lambda summary: self._status(indexing_outcome(summary)))
        c.index_failed.connect(lambda message: self._status(f"Indexing stopped: {message}"))
        c.reembed_started.connect(lambda what: self._status(f"Re-embedding {what}…"))
        c.reembed_finished.connect(lambda summary: self._status(describe_reembed(summary)))
        c.reembed_failed.connect(lambda message: self._status(f"Re-embedding failed: {message}"))
        c.folders_updated.connect(lambda _summary: self._guard(self.thumbnails.clear))  # a photo may have changed

    # -- hooks for the other panels ----------------------------------------------------------

    def _install_panels(self) -> None:
        """The indexing panel (a bottom dock that shows itself while indexing), the ask panel's
        connections and indexing by dropping files and folders on the window."""
        self.indexing_panel = IndexingPanel(self.controller)
        self.indexing_dock = QDockWidget("Indexing", self)
        self.indexing_dock.setObjectName("IndexingDock")
        self.indexing_dock.setWidget(self.indexing_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.indexing_dock)
        self.indexing_dock.hide()
        self.indexing_panel.visibility_wanted.connect(lambda wanted: self._guard(self.indexing_dock.setVisible, wanted))

        self.ask_panel.citation_activated.connect(self.show_citation)
        self.ask_panel.photo_activated.connect(lambda path: self.open_file(path))
        self.filter_panel.changed.connect(lambda: setattr(self.ask_panel, "filters", self.filter_panel.filters()))

        # What is dropped is indexed, or queued, at once: the status line follows the job itself.
        self.drop_indexer = install_drop_indexing(self, self.controller)

        self.view_menu.addAction(self.indexing_dock.toggleViewAction())

        # Every file that could not be read, at any time (the indexing panel shows only the last run's).
        self.problems_window = ProblemsWindow(self.controller, self)
        self.problems_window.open_requested.connect(self.open_file)
        self.problems_window.reveal_requested.connect(self.reveal_paths)
        self.problems_action = self._action(
            "Problems",
            self.show_problems,
            "Ctrl+Shift+P",
            None,
            "The files that could not be read, why, and which can be retried",
        )
        self.view_menu.addAction(self.problems_action)
        self.set_up_models_action = self._action(
            "Set up models…",
            self.show_models_dialog,
            None,
            None,
            "Download the models that find things by meaning, or import model files you have",
        )
        self.file_menu.insertAction(self.settings_action, self.set_up_models_action)
        self.reembed_action = self._action(
            "Re-embed the library",
            self.reembed_library,
            None,
            None,
            "Encode your files again with the new model; search keeps working with the old one meanwhile",
        )
        self.restore_models_action = self._action(
            "Go back to the old model",
            self.restore_recorded_models,
            None,
            None,
            "Put back in the settings the model the library was built with",
        )

    def show_citation(self, path: str, _kind: str, locator: dict) -> None:
        """An answer's citation: the cited passage in the preview, at its page or second."""

        def shown(result: Any) -> None:
            self._guard(self.preview.show_result, result)
            self._guard(self.citation_shown.emit, result)

        self.controller.find_result(
            path, locator or {}, shown, lambda message: self._guard(self.banner.show_message, message, "error")
        )

    def _on_add_folder(self) -> None:
        """File ▸ Add folder…: choose a folder and index it (the indexing panel shows the progress)."""
        add_folder_dialog(self, self.controller)  # the status line follows the job it starts or queues

    def _on_settings(self) -> None:
        """File ▸ Settings…: the library's settings and the window's preferences."""
        settings = self.controller.settings
        if settings is None:
            self.statusBar().showMessage("The library is still opening; try again in a moment.", 5000)
            return
        from .dialogs import SettingsDialog, thumbnail_size

        dialog = SettingsDialog(settings, self, controller=self.controller)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def saved(new_settings: Any) -> None:
            self._guard(self.results.set_thumbnail_size, thumbnail_size())
            if new_settings.min_relevance != settings.min_relevance:
                self._guard(self.results.set_threshold, new_settings.min_relevance)
            self._guard(self.controller.apply_settings, new_settings)
            self._guard(self.statusBar().showMessage, "Settings saved.", 5000)

        dialog.settings_changed.connect(saved)
        dialog.open()

    def show_storage_dialog(self) -> None:
        """File ▸ Library storage… (Ctrl+Shift+L): keep the library on this computer or on a PostgreSQL server."""
        settings = self.controller.settings
        if settings is None or not self.controller.is_open:
            self.statusBar().showMessage("The library is still opening; try again in a moment.", 5000)
            return
        if self.storage_dialog is not None:
            self.storage_dialog.raise_()
            self.storage_dialog.activateWindow()
            return
        from .store_dialog import StoreSettingsDialog

        dialog = StoreSettingsDialog(settings, self.controller, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.storage_dialog = dialog
        dialog.destroyed.connect(lambda *_: setattr(self, "storage_dialog", None))
        dialog.store_changed.connect(
            lambda new_settings: self._guard(
                self.statusBar().showMessage, f"The library is now kept at {library_location(new_settings)}.", 8000
            )
        )
        dialog.open()

    def show_problems(self) -> None:
        """View ▸ Problems (Ctrl+Shift+P, or the status bar's "N failed"): the files that could not be read."""
        if self.problems_window.isVisible():  # open behind the main window: bring it to the front
            self.problems_window.raise_()
        self.problems_window.show()
        self.problems_window.activateWindow()

    def _on_ask(self) -> None:
        """View ▸ Ask a question (Ctrl+Shift+A): the ask panel, with the question field focused."""
        self.ask_panel.filters = self.filter_panel.filters()
        if self.ask_box.isHidden():
            self._show_ask_panel()
        self.ask_panel.question_field.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def ask_panel_open(self) -> bool:
        return not self.ask_box.isHidden()

    def close_ask_panel(self) -> None:
        """The ask panel's ✕: the results take its width back (the answer stays for next time)."""
        self.ask_box.hide()

    def _show_ask_panel(self) -> None:
        """Open the ask panel beside the results: as wide as it was left, else at most as wide as they are."""
        results_min = self.results_area.minimumSizeHint().width()
        ask_min = max(self.ask_box.minimumSizeHint().width(), self.ask_box.minimumWidth())
        handle = self.work_splitter.handleWidth()
        available = self.work_splitter.width() - handle
        if available < 2 * max(results_min, ask_min):
            # A narrow window: the sidebar and the preview give what they can spare first.
            sizes = self.splitter.sizes()
            spare_filters = max(0, sizes[0] - self.filter_panel.minimumWidth())
            spare_preview = max(0, sizes[2] - self.preview.minimumWidth())
            sizes = [sizes[0] - spare_filters, sizes[1] + spare_filters + spare_preview, sizes[2] - spare_preview]
            self.splitter.setSizes(sizes)
            available = sizes[1] - handle
        wanted = self._ask_width() or min(ASK_PANEL_WIDTH, available // 2)
        ask = max(ask_min, min(wanted, available - results_min))
        self.ask_box.show()
        self.work_splitter.setSizes([available - ask, ask])

    def _ask_width(self) -> int:
        """The ask panel's width as the person left it (0: never moved)."""
        if self._remembered_ask_width:
            return self._remembered_ask_width
        if self.app_settings is None:
            return 0
        try:
            return max(0, int(str(self.app_settings.value(ASK_WIDTH_KEY, 0) or 0)))
        except (TypeError, ValueError):  # a hand-edited or foreign settings file: use the default
            return 0

    def _ask_divider_moved(self, _position: int, _index: int) -> None:
        if self.ask_box.isHidden():
            return
        width = self.work_splitter.sizes()[1]
        self._remembered_ask_width = width
        if self.app_settings is not None:
            self.app_settings.setValue(ASK_WIDTH_KEY, width)

    def _on_models_missing(self, message: str) -> None:
        """A model is missing: keyword search still works; a banner offers to set the models up.

        The banner takes no keyboard focus and opens nothing by itself: what the person
        types goes on into the field they are typing in.
        """
        self._models_missing = message
        self.meaning_note.hide()  # no meaning results are on their way
        self._show_models_banner()
        if self.models_dialog is not None:
            self.models_dialog.reason_label.setText(message)

    def _show_models_banner(self) -> None:
        self.models_banner.show_message(
            "Photos and passages are found by meaning once the models are set up. Until then, files are "
            "found by their names, dates and words.",
            "info",
            self.set_up_models_action,
        )

    def show_models_dialog(self) -> None:
        """File ▸ Set up models… (and the models banner's button): which models are here; download or import one."""
        settings = self.controller.settings
        if settings is None:
            self.statusBar().showMessage("The library is still opening; try again in a moment.", 5000)
            return
        if self.models_dialog is not None:
            self.models_dialog.show()
            self.models_dialog.raise_()
            self.models_dialog.activateWindow()
            return
        from .dialogs import ModelSetupDialog

        dialog = ModelSetupDialog(settings, self, reason=self._models_missing, downloader=self.model_downloader)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.models_dialog = dialog
        dialog.destroyed.connect(lambda *_: setattr(self, "models_dialog", None))
        dialog.models_changed.connect(lambda new_settings: self._guard(self.controller.apply_settings, new_settings))
        dialog.show()  # not modal: the window goes on working while a model downloads

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> None:
        if not self._closed:
            self.controller.open()

    def _guard(self, fn: Any, *args: Any) -> Any:
        """Run a GUI update unless the window has closed (late task results are dropped)."""
        if self._closed:
            return None
        return fn(*args)

    def _status(self, text: str) -> None:
        if not self._closed:
            self.status_label.setText(text)

    def _library_opened(self) -> None:
        if self._closed:
            return
        self._refresh_library_info()
        if self._search_when_open or self.search_field.text().strip():
            self._search_when_open = False
            self.run_search()

    def _library_switched(self) -> None:
        """The library moved to another store: what is shown came from the old one; the new one's follows."""
        if self._closed:
            return
        self.thumbnails.clear()
        self.preview.show_result(None)
        self._library_items = None
        self._last_response = None
        self._shown_key = None
        self.results.show_empty("Opening the library…", None)
        self.result_label.setText("")
        self.browser.stop()

    def _library_failed(self, message: str) -> None:
        if self._closed:
            return
        self.banner.show_message(message, "error")
        self.status_label.setText("The library could not be opened")
        self.meaning_note.hide()  # no meaning results are on their way
        if self._search_when_open:  # "Waiting for the library…": it will not open
            self._search_when_open = False
            self.result_label.setText("")

    def _models_ready(self) -> None:
        if self._closed:
            return
        self._models_missing = ""
        self.models_banner.hide()  # the models are set up: nothing more to say about them
        if self.models_dialog is not None:
            self.models_dialog.reason_label.hide()
        response = self._last_response
        if response is not None and (response.keywords_only or response.meaning_pending):
            self.run_search()  # the first results were keyword matches; now meaning works too

    def _refresh_library_info(self) -> None:
        if self._closed or not self.controller.is_open:
            return
        self.controller.library_info(
            lambda stats, tags: self._guard(self._library_info, stats, tags),
            lambda message: self._guard(self._show_error, message),
        )

    def _library_info(self, stats: dict, tags: list) -> None:
        files = stats["files"]
        parts = [
            _plural(files.get("image", 0), "photo"),
            _plural(files.get("document", 0), "document"),
            _plural(files.get("audio", 0), "recording"),
        ]
        if files.get("video"):  # a library from before videos were read has no such count
            parts.append(_plural(files["video"], "video"))
        failed = int(stats.get("failed") or 0)
        self.failed_label.setText(f'<a href="problems">{failed} failed</a>' if failed else "")
        self.failed_label.setVisible(bool(failed))
        tips = [f"Library: {stats['library']}", *describe_waiting(stats.get("waiting") or {})]
        ocr = stats.get("ocr") or {}
        if ocr and not ocr.get("available"):
            parts.append("text in pictures not read")
            tips.append(readable_reason(ocr.get("reason") or ""))
        self.library_label.setText(" · ".join(parts))
        self.library_label.setToolTip("\n".join(tips))
        self.filter_panel.set_tags(tags)
        self.filter_panel.set_roots(stats.get("roots") or [])
        self._library_items = stats["items"]
        if self._is_idle() and not self.results.browsing:
            self._show_idle()
        self.library_info_loaded.emit()
        if not self._ready_announced:
            self._ready_announced = True
            self.library_ready.emit()

    def _library_changed(self) -> None:
        if self._closed:
            return
        self._info_timer.start()
        if not self._is_idle() or self._browsing_at_top():
            self._refresh.start()  # new files or tags may change what the search finds, or what is newest

    def _tags_changed(self) -> None:
        if self._closed:
            return
        self._info_timer.start()  # tag counts
        self._show_current_tags()
        if not self._is_idle() or self._browsing_at_top() or self.filter_panel.filters().tags:
            self._refresh.start()

    def _show_current_tags(self) -> None:
        """Read again the tags of the files on screen and in the preview, and show them at once.

        The search that runs again after a tag change shows them too, but it may take a
        while, and a passage cited by an answer in the preview is not among its results.
        """
        shown = [*self.results.all_results(), *self.results.shown_results()]
        if self.preview.result() is not None:
            shown.append(self.preview.result())
        file_ids = sorted({r.file_id for r in shown})
        if not file_ids or not self.controller.is_open:
            return

        def read(tags: dict[int, tuple[list[str], list[str]]]) -> None:
            if self._closed:
                return
            for result in [*self.results.all_results(), *self.results.shown_results()]:
                if result.file_id in tags:
                    result.tags, result.auto_tags = (list(t) for t in tags[result.file_id])
            current = self.preview.result()
            if current is not None and current.file_id in tags:
                self.preview.set_file_tags(current.file_id, *tags[current.file_id])
            self.results.photo_view.viewport().update()
            self.results.passage_view.viewport().update()
            self._update_actions()

        self.controller.file_tags(file_ids, read, lambda message: self._guard(self._status, message))

    # -- searching -------------------------------------------------------------------------------

    def focus_search(self) -> None:
        self.search_field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_field.selectAll()

    def _text_edited(self, text: str) -> None:
        if not text.strip():
            self._clear_search_notes()  # the words they were about are gone (the field's ✕, or erased)
        self._debounce.start()

    def _is_idle(self) -> bool:
        """No query: the window browses the library (within the filters)."""
        return not self.search_field.text().strip() and self._query_image is None and self._query_like is None

    def _browsing_at_top(self) -> bool:
        """Browsing, and the lists are where they start (a refresh then moves nothing the person looks at)."""
        results = self.results
        return (
            results.browsing
            and results.photo_view.verticalScrollBar().value() == 0
            and results.passage_view.verticalScrollBar().value() == 0
        )

    def _show_idle(self) -> None:
        """Browse the library; until it is open (or while it is empty) say so instead."""
        action = None
        if self._library_items is not None and self._library_items > 0 and self.controller.is_open:
            self.browse()
            return
        self.browser.stop()
        if self._library_items == 0:
            message = "The library is empty: drop folders here, or add one."
            action = self.add_folder_action
        else:
            message = "Opening the library…"
        self.results.show_empty(message, action)
        self.result_label.setText("")

    def browse(self) -> None:
        """Show the library in time order within the filters, the first page of each section now."""
        filters = self.filter_panel.filters()
        photos, passages = self.browser.start(filters)
        title = "Your library, newest first" if filters.empty else "What passes the filters, newest first"
        self.results.start_browsing(photos, passages, title)
        self.result_label.setText("")
        if not (photos or passages):
            self.results.show_empty("Nothing in the library passes these filters.")

    def _browse_page(self, section: str, results: list, more: bool) -> None:
        if self._closed or not self.results.browsing:
            return
        self.results.add_page(section, results, more)
        if all(self.browser.finished(s) for s in ("photos", "passages")) and not self.results.shown_results():
            hint = " Try fewer filters." if not self.filter_panel.filters().empty else ""
            self.results.show_empty(f"Nothing in the library passes these filters.{hint}")
        self.browse_page_shown.emit(section, len(results))

    def _more_wanted(self, section: str) -> None:
        """A list was scrolled to its end: the next page of the library, or of the search results."""
        if self._closed:
            return
        if self.results.browsing:
            self.browser.fetch(section)
        elif self._last_response is not None and not self._appending:
            self._appending = True
            self._result_k += self.result_page
            self._start_search()

    def run_search(self) -> None:
        """Search now for the field's text, the query image and the filters (only this answer is shown)."""
        self._debounce.stop()
        self._refresh.stop()
        if self._closed:
            return
        text = self.search_field.text().strip()
        self._appending = False
        if self._is_idle():
            self._request = -1  # an answer still on its way is no longer wanted
            self._request_key = self._shown_key = None
            self._searched_text = ""
            self._last_response = None
            self.meaning_note.hide()
            self._clear_search_notes()
            self._show_idle()
            return
        key = self._query_key()
        if key != self._shown_key:
            # Another search: what the last one said (its warnings, its dates) is not true of this one.
            self._clear_search_notes()
        if key != self._request_key:
            self._result_k = self.result_page  # a new search starts with one page; the same one again keeps its pages
        self._request_key = key
        self.browser.stop()
        if not self.controller.is_open:
            self._search_when_open = True
            self.result_label.setText("Waiting for the library…")
            return
        self._searched_text = text
        self.result_label.setText("Searching…")
        self._start_search()

    def _start_search(self) -> None:
        self._request = self.controller.search(
            Query(
                text=self._searched_text,
                image=self._query_image,
                like=self._query_like[0] if self._query_like else None,
                filters=self.filter_panel.filters(),
                k=self._result_k,
            )
        )

    def _query_key(self) -> tuple:
        """What is searched for: the words, the picture or example, and the filters (not how many)."""
        like = self._query_like[0] if self._query_like else None
        return (self.search_field.text().strip(), self._query_image, like, self.filter_panel.filters())

    def _clear_search_notes(self) -> None:
        """Take away what the last search said: its warnings and the dates it understood."""
        self.search_banner.hide()
        self.filter_panel.set_understood_dates([])

    def _search_done(self, request: int, response: Any) -> None:
        if self._closed or request != self._request:
            return  # an older query: a newer one is on its way
        self._last_response = response
        fresh = self._request_key != self._shown_key
        self._shown_key = self._request_key
        # This answer's warnings replace the last one's. That meaning follows is said quietly
        # beside the count, not in the banner.
        warnings = [w for w in response.warnings if w != MEANING_PENDING]
        # A model that is not set up is the models banner's to say, in the window's words.
        about_models = [w for w in warnings if w.startswith(MODELS_MISSING_WARNINGS)]
        warnings = [window_text(w) for w in warnings if not w.startswith(MODELS_MISSING_WARNINGS)]
        if about_models and not self.controller.models_loading and not self.controller.models_loaded:
            self._show_models_banner()
        if warnings:
            self.search_banner.show_message(_sentence("; ".join(warnings)), "info")
        else:
            self.search_banner.hide()
        self.meaning_note.setVisible(response.meaning_pending and self.controller.models_loading)
        self.filter_panel.set_understood_dates(response.dates)
        if fresh and self.preview.result() is not None and self.results.current_result() is None:
            self.preview.show_result(None)  # a cited passage shown before this search: not one of its results
        appending, self._appending = self._appending, False
        more = len(response.results) >= self._result_k  # a full page: more may follow
        if appending and not self.results.showing_empty():
            self.results.append_results(response.results, more=more)
        elif response.results:
            # Another search starts at its top with nothing selected; the same search found
            # again keeps the selection and the place in the list.
            self.results.set_results(response.results, fresh=fresh, more=more)
        else:
            hint = " Try fewer filters or other words." if not self.filter_panel.filters().empty else ""
            what = f"“{self._searched_text}”" if self._searched_text else "that"
            self.results.show_empty(f"Nothing matched {what}.{hint}")
        self._update_actions()  # the results' tags may have changed ("Remove tag")
        count = self._shown_count()
        self.result_label.setText(f"{_plural(count, 'result')} · {response.took_ms:.0f} ms")
        self.results_shown.emit(count)
        if response.meaning_pending and not self.controller.models_loading:
            self.run_search()  # the models finished loading (or failed) while this search ran

    def _shown_count(self) -> int:
        """How many results are on screen (past the relevance slider), one per file."""
        return len(self.results.photo_paths()) + len(self.results.passage_paths())

    def _threshold_moved(self, _shown: int) -> None:
        response = self._last_response
        if response is not None and response.results and not self.results.showing_empty():
            self.result_label.setText(f"{_plural(self._shown_count(), 'result')} · {response.took_ms:.0f} ms")

    def _search_failed(self, request: int, message: str) -> None:
        if self._closed or request != self._request:
            return
        self._appending = False
        self._last_response = None
        self._shown_key = self._request_key
        self.meaning_note.hide()
        self.filter_panel.set_understood_dates([])
        self.results.show_empty("The search did not run: see the message above.")
        self.search_banner.show_message(_sentence(message), "error")
        self.result_label.setText("Search failed")
        self.search_error.emit(message)

    def _show_error(self, message: str) -> None:
        self.banner.show_message(message, "error")

    # -- a new model: re-embed, or go back ------------------------------------------------------

    def _model_changes_found(self, changes: list) -> None:
        """The configured models differ from those that built the library: offer the choice (non-modal)."""
        if self._closed:
            return
        if not changes:
            if self._offering_reembed:
                self._offering_reembed = False
                self.banner.hide()
            self._search_again_after_choice()
            return
        if self.controller.reembedding:
            return  # the choice was made; the indexing panel shows the progress
        self._offering_reembed = True
        text, level = self.model_change_offer(changes), "info"
        if self._offer_preface is not None:  # asked again after a stop or a failure: say what happened first
            (outcome, level), self._offer_preface = self._offer_preface, None
            text = f"{outcome} {text}"
        self.banner.show_message(text, level, self.reembed_action, self.restore_models_action)
        old = " and ".join(model_name(c.space, c.recorded) for c in changes)
        self.restore_models_action.setToolTip(f"Put {old} back in the settings; the library stays as it is")

    @staticmethod
    def model_change_offer(changes: Sequence[Any]) -> str:
        """The banner's words for :class:`engine.library.ModelChange` values."""
        built = " and ".join(model_name(c.space, c.recorded) for c in changes)
        now = " and ".join(model_name(c.space, c.configured) for c in changes)
        new = "the new models" if len(changes) > 1 else "the new model"
        return (
            f"Your library was built with {built}; the settings now name {now}. "
            f"Re-embed the library with {new}? Search keeps working meanwhile."
        )

    def _search_needs_model_choice(self, request: int) -> None:
        if self._closed or request != self._request:
            return
        self._last_response = None
        self._shown_key = self._request_key
        self._search_after_choice = True
        self._clear_search_notes()
        self.results.show_empty(
            "Searching waits for your choice above: re-embed the library with the new model, or go back to the old one."
        )
        self.result_label.setText("")

    def _search_again_after_choice(self) -> None:
        if self._search_after_choice:
            self._search_after_choice = False
            if not self._is_idle():
                self.run_search()

    def reembed_library(self) -> None:
        """The offer's Re-embed: encode the library with the configured models (progress in the indexing panel)."""
        self._offering_reembed = False
        self.banner.hide()
        self.controller.reembed()

    def restore_recorded_models(self) -> None:
        """The offer's Go back: the settings name the models that built the library again."""
        changes = self.controller.model_changes()
        settings = self.controller.settings
        keys = list(recorded_settings(settings, changes)) if settings is not None else []
        overridden = overriding_environment(keys)
        try:
            self.controller.restore_recorded_models()
        except (OSError, ValueError, ShoeboxError) as exc:
            self.banner.show_message(f"Cannot change the settings back: {describe_error(exc)}", "error")
            return
        self._offering_reembed = False
        self.banner.hide()
        old = " and ".join(model_name(c.space, c.recorded) for c in changes)
        if overridden:  # used now, but the environment names the new model again at the next start
            self.banner.show_message(
                f"The settings name {old} again, but Shoebox was started with the new model set in its "
                "environment, which will name the new model again when Shoebox next starts.",
                "info",
            )
        self.statusBar().showMessage(f"The settings name {old} again; the library is as it was.", 8000)

    def _reembed_started(self, _what: str) -> None:
        if self._closed:
            return
        self.indexing_dock.show()
        self._search_again_after_choice()  # searches use the old vectors until the new ones are ready

    def _reembed_finished(self, summary: Any) -> None:
        if self._closed:
            return
        if summary.cancelled:
            outcome = "Re-embedding stopped. Nothing changed: searches keep using the model the library was built with."
            self._offer_preface = (outcome, "info")  # the offer, asked again, starts with it
            self.banner.show_message(outcome, "info")
            return
        self._offer_preface = None
        self.thumbnails.clear()
        self.banner.show_message("The library is re-embedded: searches now use the new model.", "info")
        if not self._is_idle():
            self._refresh.start()  # the same words may find other things with the new model

    def _reembed_failed(self, message: str) -> None:
        if self._closed:
            return
        outcome = (
            f"Re-embedding failed: {message.rstrip('. ')}. Searches keep using the model the library was built with."
        )
        self._offer_preface = (outcome, "error")
        self.banner.show_message(outcome, "error")

    def search_by_image(self, path: str) -> None:
        """Search by a picture (dropped on the field); its name shows as a removable chip."""
        self._query_image = str(path)
        self._query_like = None
        self._set_query_chip(f"image: {Path(path).name}", f"Searching by the picture {path}")
        self.run_search()

    def more_like_this(self, result: Any = None) -> None:
        """Search for things like ``result`` (default: the current result); the typed text is cleared."""
        if result is None:
            targets = self.results.action_targets()
            result = self.results.current_result() or (targets[0] if targets else None)
        if result is None:
            return
        self._query_like = (result.item_id, result.path)
        self._query_image = None
        with QSignalBlocker(self.search_field):
            self.search_field.clear()
        self._set_query_chip(f"like: {Path(result.path).name}", f"Showing things like {result.path}")
        self.run_search()

    def _set_query_chip(self, text: str | None, tooltip: str = "") -> None:
        if self.query_chip is not None:
            self.query_chip.hide()
            self.query_chip.deleteLater()
            self.query_chip = None
        if text:
            self.query_chip = Chip(text, tooltip)
            self.query_chip.removed.connect(self.clear_query_context)
            self._top_layout.insertWidget(0, self.query_chip)

    def clear_query_context(self) -> None:
        """Stop searching by a picture or "more like this" (the chip's ✕)."""
        self._query_image = None
        self._query_like = None
        self._set_query_chip(None)
        self.run_search()

    def clear_search(self) -> None:
        """Esc: empty the field and drop the picture; the filters stay."""
        self._query_image = None
        self._query_like = None
        self._set_query_chip(None)
        with QSignalBlocker(self.search_field):
            self.search_field.clear()
        self.run_search()

    def remove_date_phrase(self, phrase: dict) -> None:
        """A date chip's ✕: take its words out of the query and search again."""
        text = self._searched_text
        start, end = int(phrase.get("start", -1)), int(phrase.get("end", -1))
        if self.search_field.text().strip() != text or not (0 <= start < end <= len(text)):
            # The field changed since: remove the words themselves, if they are still there.
            text = self.search_field.text().strip()
            start = text.find(phrase.get("text", "")) if phrase.get("text") else -1
            if start < 0:
                return
            end = start + len(phrase["text"])
        remaining = " ".join((text[:start] + " " + text[end:]).split())
        with QSignalBlocker(self.search_field):
            self.search_field.setText(remaining)
        self.run_search()

    # -- the results ----------------------------------------------------------------------------------

    def _current_changed(self, result: Any) -> None:
        self.preview.show_result(result)
        self._update_actions()

    def _update_actions(self) -> None:
        targets = self.results.action_targets()
        for action in self.result_actions:
            action.setEnabled(bool(targets))
        self.more_like_action.setEnabled(len({t.file_id for t in targets}) == 1)
        self.remove_tag_action.setEnabled(any(t.tags for t in targets))

    def _focus_results(self) -> None:
        for view, model in (
            (self.results.photo_view, self.results.photo_model),
            (self.results.passage_view, self.results.passage_model),
        ):
            first = next((row for row in range(model.rowCount()) if model.result(row) is not None), -1)
            if first >= 0:
                view.setFocus(Qt.FocusReason.OtherFocusReason)
                if not view.currentIndex().isValid():
                    view.setCurrentIndex(model.index(first))
                return

    def _preview_requested(self, result: Any) -> None:
        sizes = self.splitter.sizes()
        if sizes[2] == 0:  # the preview was collapsed: open it again
            self.splitter.setSizes([sizes[0], max(200, sizes[1] - 360), 360])
        if self.preview.result() is not result:
            self.preview.show_result(result)
        elif result.kind in ("audio", "video"):
            self.preview.toggle_playback()

    def context_menu(self) -> QMenu | None:
        """The menu for the selected results (None when nothing is selected)."""
        targets = self.results.action_targets()
        if not targets:
            return None
        menu = QMenu(self)
        menu.addAction(self.open_action)
        menu.addAction(self.reveal_action)
        menu.addAction(self.copy_path_action)
        menu.addAction(self.more_like_action)
        menu.addSeparator()
        menu.addAction(self.add_tag_action)
        tags = sorted({t for r in targets for t in r.tags}, key=str.lower)
        remove = menu.addMenu("Remove tag")
        remove.setEnabled(bool(tags))
        for tag in tags:
            remove.addAction(tag, partial(self.remove_tag_from_selection, tag))
        return menu

    def _context_menu(self, position: Any) -> None:
        menu = self.context_menu()
        if menu is not None:
            menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            menu.popup(position)

    def open_file(self, path: str, page: int | None = None) -> bool:
        """Open a file with the desktop's default application."""
        if not open_url(QUrl.fromLocalFile(path)):
            self.banner.show_message(f"No application could open {Path(path).name}.", "error")
            return False
        where = f": the passage is on {page_unit(path)} {page}" if page else ""
        self.statusBar().showMessage(f"Opened {Path(path).name}{where}", 8000)
        return True

    def open_results(self, results: Sequence[Any]) -> None:
        paths = list(dict.fromkeys(r.path for r in results))
        for path in paths[:10]:  # a stray Enter on a large selection must not open a hundred windows
            result = next(r for r in results if r.path == path)
            self.open_file(path, (result.locator or {}).get("page"))

    def open_selected(self) -> None:
        self.open_results(self.results.action_targets())

    def reveal_selected(self) -> None:
        self.reveal_paths([r.path for r in self.results.action_targets()])

    def reveal_paths(self, paths: Sequence[str]) -> None:
        """Open the folders that hold ``paths`` (at most five) in the file manager."""
        folders = list(dict.fromkeys(os.path.dirname(path) for path in paths))
        for folder in folders[:5]:
            if not open_url(QUrl.fromLocalFile(folder)):
                self.banner.show_message(f"Could not open the folder {folder}.", "error")

    def copy_selected_paths(self) -> None:
        paths = list(dict.fromkeys(r.path for r in self.results.action_targets()))
        if not paths:
            return
        QApplication.clipboard().setText("\n".join(paths))
        self.statusBar().showMessage("Copied " + (paths[0] if len(paths) == 1 else f"{len(paths)} paths"), 4000)

    def _target_file_ids(self) -> list[int]:
        return sorted({r.file_id for r in self.results.action_targets()})

    def add_tag_to_selection(self, tag: str | None = None) -> None:
        """Tag every selected file (asks for the tag, in an empty box, when none is given)."""
        file_ids = self._target_file_ids()
        if not file_ids:
            return
        if tag is None:
            if self.tag_dialog is not None:
                self.tag_dialog.close()
            dialog = TagDialog(f"Tag {_plural(len(file_ids), 'file')} with:", self.filter_panel.tag_names(), self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.tag_chosen.connect(lambda chosen: self._guard(self._add_tag, chosen, file_ids))
            dialog.destroyed.connect(lambda _obj=None, d=dialog: self._forget_tag_dialog(d))
            self.tag_dialog = dialog
            dialog.open()
            return
        self._add_tag(tag, file_ids)

    def _forget_tag_dialog(self, dialog: TagDialog) -> None:
        if self.tag_dialog is dialog:
            self.tag_dialog = None

    def _add_tag(self, tag: str, file_ids: list[int]) -> None:
        tag = tag.strip()
        if not tag:
            return
        said = f"Tagged {_plural(len(file_ids), 'file')} “{tag}”"
        self.controller.add_tag(tag, file_ids, lambda: self._guard(self.statusBar().showMessage, said, 4000))

    def remove_tag_from_selection(self, tag: str | None = None) -> None:
        """Remove a tag from every selected file (asks which when none is given)."""
        targets = self.results.action_targets()
        file_ids = self._target_file_ids()
        if not file_ids:
            return
        if tag is None:
            tags = sorted({t for r in targets for t in r.tags}, key=str.lower)
            if not tags:
                self.statusBar().showMessage("The selected files have no tags.", 4000)
                return
            tag, ok = QInputDialog.getItem(self, "Remove tag", "Remove the tag:", tags, 0, False)
            if not ok:
                return
        said = f"Removed “{tag}” from {_plural(len(file_ids), 'file')}"
        self.controller.remove_tag(tag, file_ids, lambda: self._guard(self.statusBar().showMessage, said, 4000))

    def _about(self) -> None:
        """The About box (kept as ``about_dialog``): icon, version, what Shoebox does, its licence, the library."""
        from html import escape

        from engine.bundled import version
        from engine.settings import default_home

        settings = self.controller.settings
        home = settings.home if settings is not None else os.environ.get("SHOEBOX_HOME") or default_home()
        library = os.path.abspath(os.path.expanduser(str(home)))
        box = QMessageBox(self)
        box.setWindowTitle("About Shoebox")
        box.setIconPixmap(app_icon().pixmap(96, 96))
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(
            f"<h3>Shoebox {escape(version())}</h3>"
            "<p>Finds things in your own photos, documents and recordings by what they mean."
            " Everything stays on this computer.</p>"
            "<p>Free software under the MIT licence.</p>"
            f"<p>Your library is in<br><code>{escape(library)}</code></p>"
        )
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setStandardButtons(QMessageBox.StandardButton.Close)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.about_dialog = box
        box.open()

    # -- closing ---------------------------------------------------------------------------------------

    def closeEvent(self, event: Any) -> None:
        if not self._closed:
            self._closed = True
            self._debounce.stop()
            self._refresh.stop()
            self._info_timer.stop()
            self.preview.shutdown()
            self.thumbnails.close()
            if self.models_dialog is not None:
                self.models_dialog.cancel()  # a download stops rather than hold the closing window up
            self.controller.shutdown()
        super().closeEvent(event)
