"""Asking a question of the library: the answer as it streams, its sources, the matching photos.

:class:`AskPanel` is self-contained: give it the controller, put it in a splitter, a dock or
a tab, and connect ``citation_activated`` / ``photo_activated`` to the preview.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QIcon, QImage, QImageReader, QPalette, QPixmap, QTextCursor
from PySide6.QtWidgets import (
    QBoxLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QStyle,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engine.extractors.documents import page_unit

from .controller import AppController, window_text
from .indexing import when_alive
from .results import read_scaled_image
from .rich_text import MARKDOWN_FEATURES, answer_markdown, is_markdown, markdown_snippet_html
from .style import narrow_button

THUMBNAIL_SIZE = 96  # pixels, the longest side of a photo in the answer
STACK_BELOW_WIDTH = 300  # a panel narrower than this puts Ask and Stop under the question field

_MARKER = re.compile(r"\[(\d{1,3})\]")
_MARKED = re.compile(r"«([^«»]*)»")


def format_clock(seconds: float) -> str:
    """01:12 for 72 seconds; 1:02:03 past an hour."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def citation_label(citation: Any) -> str:
    """ "[1] report.pdf, page 3", "[2] memo.m4a at 01:12", "[3] beach.jpg (photo)"."""
    name = os.path.basename(citation.path) or citation.path
    locator = citation.locator or {}
    where = ""
    if citation.kind in ("audio", "video") and locator.get("start") is not None:
        where = f" at {format_clock(locator['start'])}"
    elif locator.get("page") is not None:
        where = f", {page_unit(citation.path)} {locator['page']}"
    elif citation.kind == "image":
        where = " (photo)"
    return f"[{citation.number}] {name}{where}"


def snippet_html(snippet: str) -> str:
    """A snippet with its «marked» words in bold, escaped for rich text."""
    return _MARKED.sub(lambda m: f"<b>{m.group(1)}</b>", html.escape(snippet or ""))


def _read_thumbnail(path: str, saved: Path | None, size: int) -> QImage | None:
    """The photo at most ``size`` pixels wide and high, from the thumbnail saved at index time when
    there is one (runs off the GUI thread: QImage, never QPixmap, is safe there)."""
    reader = QImageReader(str(saved) if saved is not None else path)
    reader.setAutoTransform(True)
    full = reader.size()
    if full.isValid() and full.width() > 0 and full.height() > 0:
        reader.setScaledSize(full.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull() and saved is None:
        image = read_scaled_image(path, size)  # what Qt cannot decode (HEIC), through the engine
    return None if image.isNull() else image


class AskPanel(QWidget):
    """A question field, the answer as it streams, its sources and the matching photos.

    ``AskPanel(controller, parent=None, *, thumbnail_size=96)``.

    Enter (or Ask) sends the question through ``controller.ask``; the answer's
    pieces (``ask_token``) appear as they come and ``ask_done`` replaces them
    with the final text, whose ``[n]`` markers link to the sources listed below
    it.  Only the latest question's answer is shown.  Stop calls
    ``controller.cancel_ask``.  Set ``filters`` (an ``engine.query.Filters``) to
    ask within the window's current filters.

    Signals: ``citation_activated(path, kind, locator)`` when a source is clicked
    (locator: ``{"page", ...}`` or ``{"start", "end"}`` seconds, to open the
    preview at the right place); ``photo_activated(path)`` when a photo is
    clicked; ``answer_shown(object)`` once a final ``Answer`` is on screen;
    ``photos_shown(int)`` once its photos' thumbnails are loaded (how many);
    ``failed(str)`` when the question could not be answered.

    Methods: ``ask(question=None)``, ``stop()``, ``clear()``; ``citation_texts()``
    lists the sources shown.
    """

    citation_activated = Signal(str, str, object)
    photo_activated = Signal(str)
    answer_shown = Signal(object)
    photos_shown = Signal(int)
    failed = Signal(str)

    def __init__(
        self, controller: AppController, parent: QWidget | None = None, *, thumbnail_size: int = THUMBNAIL_SIZE
    ):
        super().__init__(parent)
        self.controller = controller
        self.filters: Any = None
        self.thumbnail_size = thumbnail_size
        self.answer: Any = None
        self._request: int | None = None
        self._starting = False  # inside controller.ask(), before its request number is known
        self._ended_early = False
        self._streamed = False
        self._citations: dict[int, Any] = {}

        self.question_field = QLineEdit()
        self.question_field.setPlaceholderText("Ask about your files, e.g. When is the boiler service due?")
        self.question_field.setClearButtonEnabled(True)
        self.ask_button = QPushButton("Ask")
        self.ask_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop answering")
        self.stop_button.setEnabled(False)

        self.answer_view = QTextBrowser()
        self.answer_view.setOpenLinks(False)
        self.answer_view.setOpenExternalLinks(False)
        self.answer_view.setPlaceholderText("The answer appears here, with the files it comes from.")
        self.answer_view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        self.status_label = QLabel()
        self.status_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.status_label.setWordWrap(True)
        self.warnings_label = QLabel()
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setTextFormat(Qt.TextFormat.PlainText)
        self.warnings_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        small = self.warnings_label.font()
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.9))
        self.warnings_label.setFont(small)
        self.warnings_label.hide()

        self.sources_title = QLabel("Sources")
        bold = self.sources_title.font()
        bold.setBold(True)
        self.sources_title.setFont(bold)
        self._sources = QWidget()
        self._sources.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self._sources_layout = QVBoxLayout(self._sources)
        self._sources_layout.setContentsMargins(0, 0, 0, 0)
        self._sources_layout.setSpacing(6)
        self.citation_labels: list[QLabel] = []

        self.photos_title = QLabel("Photos")
        self.photos_title.setFont(bold)
        self.photos = QListWidget()
        self.photos.setViewMode(QListView.ViewMode.IconMode)
        self.photos.setFlow(QListView.Flow.LeftToRight)
        self.photos.setWrapping(False)
        self.photos.setMovement(QListView.Movement.Static)
        self.photos.setIconSize(QSize(thumbnail_size, thumbnail_size))
        line = self.photos.fontMetrics().height()
        self.photos.setGridSize(QSize(thumbnail_size + 24, thumbnail_size + line + 12))
        self.photos.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        scrollbar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        self.photos.setFixedHeight(self.photos.gridSize().height() + 2 * self.photos.frameWidth() + scrollbar + 4)
        self.photos.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)

        for button in (self.ask_button, self.stop_button):
            narrow_button(button)
        # Beside the field in a wide panel, under it in a narrow one (see resizeEvent).
        buttons = QHBoxLayout()
        buttons.addWidget(self.ask_button)
        buttons.addWidget(self.stop_button)
        field_row = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        field_row.addWidget(self.question_field, 1)
        field_row.addLayout(buttons)
        self._field_row = field_row
        layout = QVBoxLayout(self)
        layout.addLayout(field_row)
        layout.addWidget(self.answer_view, 3)
        layout.addWidget(self.warnings_label)
        layout.addWidget(self.status_label)
        layout.addSpacing(4)
        layout.addWidget(self.sources_title)
        layout.addWidget(self._sources)
        layout.addSpacing(4)
        layout.addWidget(self.photos_title)
        layout.addWidget(self.photos)
        layout.addStretch(1)  # a short answer leaves the space below the photos, not inside its box
        self.answer_view.document().contentsChanged.connect(self._fit_answer)
        self._show_sources([])
        self._show_photos([])

        self.question_field.returnPressed.connect(self.ask)
        self.ask_button.clicked.connect(lambda: self.ask())
        self.stop_button.clicked.connect(self.stop)
        self.answer_view.anchorClicked.connect(self._anchor_clicked)
        self.photos.itemActivated.connect(self._photo_item)  # Enter, and a click where the style says so
        if not self.style().styleHint(QStyle.StyleHint.SH_ItemView_ActivateItemOnSingleClick, None, self.photos):
            self.photos.itemClicked.connect(self._photo_item)
        controller.ask_token.connect(self._token)
        controller.ask_done.connect(self._done)
        controller.ask_failed.connect(self._failed)

    # -- actions -----------------------------------------------------------

    def ask(self, question: str | None = None) -> None:
        """Ask ``question`` (or what is in the field); the previous question's answer is dropped."""
        if question is not None:
            self.question_field.setText(question)
        text = self.question_field.text().strip()
        if not text:
            self.status_label.setText("Type a question first.")
            return
        self.clear()
        self.status_label.setText("Looking through your files…")
        self.stop_button.setEnabled(True)
        # A failure may be reported before ask() returns (no library yet): accept it meanwhile.
        self._starting = True
        self._ended_early = False
        try:
            request = self.controller.ask(text, filters=self.filters)
        finally:
            self._starting = False
        self._request = None if self._ended_early else request

    def stop(self) -> None:
        """Stop the answer being written; what has appeared stays."""
        if self._request is None:
            return
        self.controller.cancel_ask()
        self._request = None
        self.stop_button.setEnabled(False)
        self.status_label.setText("Stopped.")

    def _fit_answer(self) -> None:
        """The answer box as tall as its text (from three lines up to most of the panel)."""
        view = self.answer_view
        line = view.fontMetrics().lineSpacing()
        wanted = int(view.document().size().height()) + 2 * view.frameWidth() + 8
        view.setMaximumHeight(max(3 * line, min(wanted, max(self.height() * 2 // 3, 6 * line))))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        narrow = self.width() < STACK_BELOW_WIDTH
        self._field_row.setDirection(QBoxLayout.Direction.TopToBottom if narrow else QBoxLayout.Direction.LeftToRight)
        self._fit_answer()

    def clear(self) -> None:
        """Empty the panel; an answer still being written is stopped."""
        if self._request is not None:
            self.controller.cancel_ask()
        self.answer = None
        self._request = None
        self._streamed = False
        self.answer_view.clear()
        self.warnings_label.hide()
        self.warnings_label.clear()
        self.status_label.clear()
        self._show_sources([])
        self._show_photos([])

    def citation_texts(self) -> list[str]:
        """The sources listed, as their link text ("[1] report.pdf, page 3")."""
        return [label.property("citation_text") for label in self.citation_labels]

    # -- controller signals ----------------------------------------------------

    def _mine(self, request: int) -> bool:
        return request == self._request or (self._starting and self._request is None)

    def _token(self, request: int, text: str) -> None:
        if not self._mine(request):
            return
        if not self._streamed:
            self._streamed = True
            self.status_label.setText("Writing the answer…")
        cursor = self.answer_view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.answer_view.setTextCursor(cursor)
        self.answer_view.ensureCursorVisible()

    def _done(self, request: int, answer: Any) -> None:
        if not self._mine(request):
            return
        self._request = None
        self._ended_early = self._starting
        self.answer = answer
        self.stop_button.setEnabled(False)
        self._citations = {c.number: c for c in answer.citations}
        if answer.found:
            # Markdown rendered (what a language model writes, and notes quoted): "# Club meeting [1]"
            # reads as a heading, its [1] still a link to the source.
            self.answer_view.document().setMarkdown(
                answer_markdown(answer.answer, list(self._citations)), MARKDOWN_FEATURES
            )
            who = "written by your local language model" if answer.mode == "llm" else "sentences taken from your files"
            took = "under 0.1 s" if answer.took_ms < 100 else f"{answer.took_ms / 1000:.1f} s"
            self.status_label.setText(f"Answered in {took}: {who}.")
        else:
            self.answer_view.setPlainText(answer.answer)
            self.status_label.setText("Try other words, or add the folder that holds the answer to the library.")
        # The engine's warnings may end with advice for its command line (a variable to set).
        warnings = [text for text in (window_text(w, fallback="") for w in answer.warnings) if text]
        if warnings:
            self.warnings_label.setText("\n".join(_sentence(w) for w in warnings))
            self.warnings_label.show()
        self._show_sources(answer.citations)
        self._show_photos([p.path for p in answer.photos])
        self.answer_shown.emit(answer)

    def _failed(self, request: int, message: str) -> None:
        if not self._mine(request):
            return
        self._request = None
        self._ended_early = self._starting
        self.stop_button.setEnabled(False)
        self.answer_view.setPlainText(f"Shoebox could not answer: {message}")
        self.status_label.clear()
        self.failed.emit(message)

    # -- sources and photos --------------------------------------------------

    def _show_sources(self, citations: Sequence[Any]) -> None:
        for label in self.citation_labels:
            self._sources_layout.removeWidget(label)
            label.deleteLater()
        self.citation_labels = []
        for citation in citations:
            text = citation_label(citation)
            label = QLabel()
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setWordWrap(True)
            label.setTextInteractionFlags(
                Qt.TextInteractionFlag.LinksAccessibleByMouse | Qt.TextInteractionFlag.LinksAccessibleByKeyboard
            )
            link = f'<a href="cite:{citation.number}">{html.escape(text)}</a>'
            if citation.snippet and is_markdown(citation.path):
                # A note's passage reads as text: "# Club meeting" as "Club meeting", **bold** as bold.
                label.setText(link + markdown_snippet_html(citation.snippet))
            else:
                snippet = snippet_html(citation.snippet)
                label.setText(link + (f"<br>{snippet}" if snippet else ""))
            label.setToolTip(citation.path)
            label.setProperty("citation_text", text)
            label.linkActivated.connect(lambda href: self._anchor_clicked(QUrl(href)))
            self._sources_layout.addWidget(label)
            self.citation_labels.append(label)
        self.sources_title.setVisible(bool(citations))
        self._sources.setVisible(bool(citations))

    def _anchor_clicked(self, url: QUrl) -> None:
        if url.scheme() != "cite":
            return
        try:
            number = int(url.path())
        except ValueError:
            return
        citation = self._citations.get(number)
        if citation is not None:
            self.citation_activated.emit(citation.path, citation.kind, dict(citation.locator or {}))

    def _show_photos(self, paths: list[str]) -> None:
        self.photos.clear()
        self.photos_title.setVisible(bool(paths))
        self.photos.setVisible(bool(paths))
        if not paths:
            return
        blank = QPixmap(self.thumbnail_size, self.thumbnail_size)
        blank.fill(self.palette().color(QPalette.ColorRole.Base))
        for path in paths:
            item = QListWidgetItem(QIcon(blank), os.path.basename(path))
            item.setToolTip(path)
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.photos.addItem(item)
        answer = self.answer
        size = self.thumbnail_size

        def show(images: dict[int, QImage | None]) -> None:
            if self.answer is not answer:
                return  # another question was asked meanwhile
            for row, image in images.items():
                item = self.photos.item(row)
                if item is None or image is None:
                    continue
                item.setIcon(QIcon(QPixmap.fromImage(image)))
            self.photos_shown.emit(sum(image is not None for image in images.values()))

        def failed(message: str) -> None:
            self.status_label.setText(f"{self.status_label.text()} (No photo previews: {message})")

        self.controller.load_thumbnails(
            dict(enumerate(paths)),
            lambda path, saved: _read_thumbnail(path, saved, size),
            when_alive(self, show),
            when_alive(self, failed),
        )

    def _photo_item(self, item: QListWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        if path:
            self.photo_activated.emit(path)

    def photo_paths(self) -> list[str]:
        """The photos shown, in order."""
        return [self.photos.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.photos.count())]


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
