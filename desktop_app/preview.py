"""The preview pane: a large photo, a passage in context, or a recording or video that plays from the found moment.

What it shows comes from a :class:`engine.search.SearchResult`; the rest (the
full passage, the camera, the full-size picture) is read on the thread pool.
The player (QtMultimedia) is created only when a recording or video is first
previewed, the video surface (QtMultimediaWidgets) only for the first video,
and the audio output only when the person presses Play, so the window never
loads the multimedia stack, nor opens an audio device, for nothing.  Where
QtMultimedia cannot load (Linux without PulseAudio's client library), a
recording shows its transcript and a video its thumbnail and transcript, with
a line saying what playback needs.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QLoggingCategory, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QPalette, QPixmap, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStackedWidget,
    QStyle,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.extractors.documents import page_unit

from .controller import AppController
from .flow_layout import FlowLayout
from .results import read_scaled_image, read_thumbnail
from .rich_text import fill_document, is_markdown
from .style import (
    format_clock,
    format_date,
    locator_text,
    marked_terms,
    muted_text,
)
from .tasks import run_task

PREVIEW_SIDE = 1600  # the longest side a previewed photo is decoded at
PLAYING_KINDS = ("audio", "video")  # results the player plays from their second

log = logging.getLogger(__name__)


def _quiet_multimedia_probes() -> None:
    # QtMultimedia's FFmpeg backend looks for optional system libraries
    # (PipeWire, VA-API) when it loads and warns for each one that is absent;
    # to a person these say nothing, and playback works without them.  Set
    # before QtMultimedia is first imported; QT_LOGGING_RULES still overrides it.
    QLoggingCategory.setFilterRules("qt.multimedia.symbolsresolver.warning=false")


_quiet_multimedia_probes()


def playback_unavailable_text(error: str, platform: str = sys.platform) -> str:
    """What a recording's preview says when QtMultimedia cannot be imported; ``error`` is the ImportError's text."""
    if platform.startswith("linux"):
        missing = re.search(r"\b(lib[\w+-]+\.so[\w.]*)", error)
        if missing and not missing.group(1).startswith("libpulse"):
            return f"Audio playback needs a system library that is not installed ({missing.group(1)})."
        # PySide6's QtMultimedia links PulseAudio's client library, which minimal systems leave out.
        return "Audio playback needs the system's audio library (on Debian/Ubuntu: sudo apt install libpulse0)."
    return (
        "Audio playback is not available: Qt's multimedia library could not be loaded (reinstalling Shoebox may help)."
    )


@functools.cache
def qt_multimedia() -> tuple[Any, str | None]:
    """``(PySide6.QtMultimedia, None)``, imported on first use, or ``(None, what to tell the person)``."""
    try:
        return importlib.import_module("PySide6.QtMultimedia"), None
    except ImportError as exc:
        log.info("audio playback is not available: %s", exc)
        return None, playback_unavailable_text(str(exc))


@functools.cache
def qt_video_widgets() -> tuple[Any, str | None]:
    """``(PySide6.QtMultimediaWidgets, None)``, imported for the first video, or ``(None, what to tell the person)``."""
    multimedia, problem = qt_multimedia()
    if multimedia is None:
        return None, video_note(problem or "")
    try:
        return importlib.import_module("PySide6.QtMultimediaWidgets"), None
    except ImportError as exc:
        log.info("video playback is not available: %s", exc)
        return None, video_note(playback_unavailable_text(str(exc)))


def video_note(audio_note: str) -> str:
    """What a video's preview says where playback is unavailable: the recording's note, said of video."""
    return audio_note.replace("Audio playback", "Video playback", 1)


class ScaledImage(QLabel):
    """A label that shows a pixmap as large as fits its width (up to a height cap), keeping its proportions."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._pixmap = QPixmap()
        self.max_height = 600
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 120)
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def set_image(self, pixmap: QPixmap | None) -> None:
        self._pixmap = pixmap if pixmap is not None else QPixmap()
        self.updateGeometry()
        self._rescale()

    def image(self) -> QPixmap:
        return self._pixmap

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        if self._pixmap.isNull():
            return max(120, min(self.max_height, width * 3 // 4))
        return max(120, min(self.max_height, width * self._pixmap.height() // max(1, self._pixmap.width())))

    def sizeHint(self) -> QSize:
        return QSize(320, self.heightForWidth(320))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap.isNull():
            self.clear()
            return
        ratio = self.devicePixelRatioF()
        target = QSize(int(self.width() * ratio), int(self.height() * ratio))
        scaled = self._pixmap.scaled(
            target, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        scaled.setDevicePixelRatio(ratio)
        self.setPixmap(scaled)


def _text_label(selectable: bool = True, bold: bool = False) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if bold:
        font = label.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        label.setFont(font)
    return label


# Above text that was read from pixels (a photo, a scanned page): it may hold reading errors.
RECOGNISED_NOTE = "Text recognised in the picture (it may hold reading errors):"


class PreviewPane(QWidget):
    """Shows the current result; its buttons act on it (and on the rest of the selection)."""

    open_requested = Signal(str, object)  # path, page (int) or None
    loaded = Signal()  # the details (and, for a photo, the large picture) arrived
    message = Signal(str)  # a problem worth a line in the status bar

    def __init__(self, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self._controller = controller
        self._result: Any = None
        self._token = 0
        self._closed = False
        self.details: dict[str, Any] = {}
        self.player: Any = None  # QMediaPlayer, created for the first recording or video
        self.audio_output: Any = None  # QAudioOutput, created on the first Play
        self.video_widget: Any = None  # QVideoWidget, created for the first video
        self.start_ms = 0  # where the recording preview starts
        self.match_position = 0  # where in the passage's document the found words are
        self._pending_seek: int | None = None
        self._seeking = False

        # -- nothing selected
        self.empty_label = QLabel("Select a result to preview it here.")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)

        # -- shared header
        self.title_label = _text_label(bold=True)
        self.info_label = _text_label()
        self.tags_label = QLabel()
        self.tags_label.setWordWrap(True)
        self.tags_label.setTextFormat(Qt.TextFormat.RichText)

        # -- a photo
        self.image_label = ScaledImage()
        self.image_label.hide()

        # -- a passage (documents and recordings share the text view)
        self.passage_view = QTextBrowser()
        self.passage_view.setOpenLinks(False)
        self.passage_view.setMinimumHeight(60)
        self.open_page_button = QPushButton("Open document")
        self.open_page_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_FileIcon))
        self.open_page_button.clicked.connect(self._open_at_page)
        document_page = QWidget()
        document_layout = QVBoxLayout(document_page)
        document_layout.setContentsMargins(0, 0, 0, 0)
        document_layout.addWidget(self.open_page_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.document_page = document_page

        # -- a recording
        self.play_button = QToolButton()
        self.play_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.play_button.setToolTip("Play from the found moment")
        self.play_button.setAccessibleName("Play")
        self.play_button.setIconSize(QSize(22, 22))
        self.play_button.clicked.connect(self.toggle_playback)
        self.position_slider = QSlider(Qt.Orientation.Horizontal)
        self.position_slider.setRange(0, 0)
        self.position_slider.setAccessibleName("Position")
        self.position_slider.sliderMoved.connect(self._slider_moved)
        self.position_slider.sliderPressed.connect(lambda: setattr(self, "_seeking", True))
        self.position_slider.sliderReleased.connect(self._slider_released)
        self.time_label = QLabel("00:00 / 00:00")
        self.from_start_button = QPushButton("Back to the moment")
        self.from_start_button.setToolTip("Go back to where the words were found")
        self.from_start_button.clicked.connect(self.seek_to_moment)
        self.playback_note = QLabel()  # why the recording cannot be played here, where it cannot
        self.playback_note.setWordWrap(True)
        self.playback_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.playback_note.hide()
        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self.play_button)
        controls.addWidget(self.position_slider, 1)
        controls.addWidget(self.time_label)
        recording_page = QWidget()
        recording_layout = QVBoxLayout(recording_page)
        recording_layout.setContentsMargins(0, 0, 0, 0)
        recording_layout.addWidget(self.playback_note)
        recording_layout.addLayout(controls)
        recording_layout.addWidget(self.from_start_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.recording_page = recording_page

        self.kind_stack = QStackedWidget()
        self.photo_page = QWidget()  # a photo needs no controls under its caption
        for page in (self.photo_page, document_page, recording_page):
            page.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
            self.kind_stack.addWidget(page)
        self.kind_stack.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        # -- actions (the window's QActions, shown as buttons)
        # They wrap onto a second row in a narrow preview rather than lose their text.
        self.actions_box = QWidget()
        self.actions_row = FlowLayout(self.actions_box)
        self.action_buttons: list[QToolButton] = []

        body = QWidget()
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(10, 10, 10, 10)
        body_layout.setSpacing(6)
        body_layout.addWidget(self.image_label)
        self._body_layout = body_layout  # the video surface goes in above the title, when first needed
        body_layout.addWidget(self.title_label)
        body_layout.addWidget(self.info_label)
        body_layout.addWidget(self.tags_label)
        body_layout.addWidget(self.kind_stack)
        body_layout.addWidget(self.passage_view, 1)
        self.filler = QWidget()  # takes the height the content leaves: the buttons stay at the bottom
        self.filler.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        body_layout.addWidget(self.filler)  # what the passage, grown to its full height, leaves
        body_layout.addWidget(self.actions_box)
        self.body = body

        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        self.setMinimumWidth(190)  # its buttons wrap onto a second row rather than lose their text
        self._style_muted()

    # -- the window's actions ----------------------------------------------------------

    def set_actions(self, actions: Sequence[QAction]) -> None:
        """Show these actions as buttons under the preview."""
        for button in self.action_buttons:
            button.deleteLater()
        self.action_buttons = []
        for action in actions:
            button = QToolButton()
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            self.actions_row.addWidget(button)
            self.action_buttons.append(button)

    # -- showing --------------------------------------------------------------------------

    def result(self) -> Any:
        return self._result

    def show_result(self, result: Any) -> None:
        """Preview ``result`` (a SearchResult), or show the empty state for None."""
        self._token += 1
        self._result = result
        self.details = {}
        if self.player is not None and (result is None or result.kind not in PLAYING_KINDS):
            self.player.pause()
        if self.video_widget is not None and (result is None or result.kind != "video"):
            self.video_widget.hide()
        if result is None:
            self.stack.setCurrentWidget(self.empty_label)
            return
        self.stack.setCurrentWidget(self.body)
        name = Path(result.path).name
        self.title_label.setText(name)
        self.title_label.setToolTip(result.path)
        self._set_tags(result)
        if result.kind == "image":
            self._show_photo(result)
        elif result.kind == "audio":
            self._show_recording(result)
        elif result.kind == "video":
            self._show_video(result)
        else:
            self._show_document(result)
        self._fetch_details(result)

    def update_result(self, result: Any) -> None:
        """The previewed item found again (by a search run anew): show its tags as they are now.

        Nothing is loaded again and a recording keeps playing; another item is ignored.
        """
        if self._result is None or result is None or result.item_id != self._result.item_id:
            return
        self._result = result
        self._set_tags(result)

    def set_file_tags(self, file_id: int, tags: Sequence[str], auto_tags: Sequence[str]) -> None:
        """The tags of a file as they are now in the library; shown at once if it is the one previewed."""
        result = self._result
        if result is None or result.file_id != file_id:
            return
        result.tags, result.auto_tags = list(tags), list(auto_tags)
        self._set_tags(result)

    def _info(self, result: Any, extra: Sequence[str] = ()) -> None:
        parts = [p for p in (*extra,) if p]
        self.info_label.setText("  ·  ".join(parts))

    def _set_tags(self, result: Any) -> None:
        if not result.tags:
            self.tags_label.setText("")
            self.tags_label.hide()
            return
        auto = {t.lower() for t in result.auto_tags}
        shown = [f"<i>{_escape(t)}</i>" if t.lower() in auto else _escape(t) for t in result.tags]
        self.tags_label.setText("Tags: " + ", ".join(shown))
        self.tags_label.setToolTip("Tags in italic were given by Shoebox")
        self.tags_label.show()

    def _show_photo(self, result: Any) -> None:
        self.kind_stack.setCurrentWidget(self.photo_page)
        self.kind_stack.hide()
        self.passage_view.hide()
        self.filler.show()
        self.image_label.set_image(None)
        self.image_label.show()
        self._info(result, [format_date(result.media_time, with_time=True)])
        if getattr(result, "modality", "") == "ocr":  # found by the text in the picture: show it below
            self.filler.hide()
            self.passage_view.show()
            self._show_passage(result.snippet, result)
        token = self._token
        path = result.path
        run_task(
            lambda: read_scaled_image(path, PREVIEW_SIDE),
            lambda image: self._photo_loaded(token, image),
            lambda exc: self._failed(token, str(exc)),
        )

    def _photo_loaded(self, token: int, image: Any) -> None:
        if self._closed or token != self._token:
            return
        if image.isNull():
            self.image_label.setText("This picture could not be read.")
        else:
            self.image_label.set_image(QPixmap.fromImage(image))
        self._maybe_loaded()

    def _show_document(self, result: Any) -> None:
        self.kind_stack.setCurrentWidget(self.document_page)
        self._text_layout()
        page = (result.locator or {}).get("page")
        self.open_page_button.setText(f"Open at {page_unit(result.path)} {page}" if page else "Open document")
        self._info(result, [locator_text(result).capitalize(), format_date(result.media_time)])
        self._show_passage(result.snippet, result)

    def _show_recording(self, result: Any) -> None:
        self.kind_stack.setCurrentWidget(self.recording_page)
        self._text_layout()
        locator = result.locator or {}
        start = float(locator.get("start") or 0.0)
        self._info(result, [locator_text(result), format_date(result.media_time, with_time=True)])
        self._show_passage(result.snippet, result)
        self.from_start_button.setText(f"Back to {format_clock(start)}")
        if self.player is not None:
            self.playback_note.hide()  # a video's note about its picture does not apply to a recording
        self._load_recording(result.path, round(start * 1000))

    def _show_video(self, result: Any) -> None:
        """The video at the found second (paused until Play), the words heard there below it."""
        self.kind_stack.setCurrentWidget(self.recording_page)
        self._text_layout()
        start = float((result.locator or {}).get("start") or 0.0)
        self._info(result, [locator_text(result), format_date(result.media_time, with_time=True)])
        self._show_passage(result.snippet, result)
        self.from_start_button.setText(f"Back to {format_clock(start)}")
        self.play_button.setToolTip("Play from the found moment")
        surface = self._ensure_video_widget()
        if surface is not None:
            # The picture at the found second stands in until Play: a paused player may show nothing.
            surface.hide()
            self.player.setVideoOutput(surface)
        self._load_recording(result.path, round(start * 1000))
        self._show_poster(result, start)
        if surface is None:
            # Said of the video (the player's own note speaks of audio): no player, or no picture from it.
            problem = qt_video_widgets()[1]
            self.playback_note.setText(problem or "")
            self.playback_note.setVisible(bool(problem))

    def _ensure_video_widget(self) -> Any:
        """The video surface, created for the first video; None where it cannot be made."""
        player = self._ensure_player()
        widgets, _problem = qt_video_widgets()
        if player is None or widgets is None:
            return None  # no player, nothing plays; or a player without the video library: only the sound plays
        self.playback_note.hide()
        if self.video_widget is None:
            self.video_widget = widgets.QVideoWidget()
            self.video_widget.setMinimumHeight(160)
            self.video_widget.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
            self._body_layout.insertWidget(self._body_layout.indexOf(self.title_label), self.video_widget, 3)
        return self.video_widget

    def _show_poster(self, result: Any, at_s: float = 0.0) -> None:
        """The video's picture at the found second, until it plays (or where it cannot play here)."""
        self.image_label.set_image(None)
        self.image_label.show()
        token = self._token
        path = result.path
        run_task(
            lambda: read_thumbnail(path, None, PREVIEW_SIDE // 2, at_s=at_s),
            lambda image: self._poster_loaded(token, image),
            lambda exc: self._failed(token, str(exc)),
        )

    def _poster_loaded(self, token: int, image: Any) -> None:
        if self._closed or token != self._token:
            return
        if image is None or image.isNull():
            self.image_label.setText("This video's picture could not be read.")
        else:
            self.image_label.set_image(QPixmap.fromImage(image))

    def _text_layout(self) -> None:
        self.image_label.hide()
        self.image_label.set_image(None)
        self.kind_stack.show()
        self.passage_view.show()

    def _show_passage(
        self,
        text: str | None,
        result: Any,
        *,
        terms: Sequence[str] | None = None,
        focus: tuple[int, int] | None = None,
    ) -> None:
        """Show ``text`` (« » around matched words, or ``terms`` to find): Markdown rendered for a
        Markdown file, else with its line breaks; ``focus``, the span that was found inside the
        context shown, tinted and scrolled into view with its first matched word."""
        if not text:
            text = {
                "audio": "(no words were heard here)",
                "video": "(found in the picture; no words were heard here)",
            }.get(result.kind, "(no text)")
        document = self.passage_view.document()
        markdown = result.kind == "document" and is_markdown(result.path) and bool(text)
        position = fill_document(
            document, text, self.passage_view.palette(), markdown=markdown, terms=terms, focus=focus
        )
        if getattr(result, "modality", "") == "ocr":
            cursor = QTextCursor(document)
            italic = QTextCharFormat()
            italic.setFontItalic(True)
            cursor.insertText(RECOGNISED_NOTE, italic)
            cursor.insertBlock()
            position += len(RECOGNISED_NOTE) + 1
        self.match_position = position
        self._fit_passage()
        QTimer.singleShot(0, self, self.scroll_to_match)  # once the new height is laid out

    def scroll_to_match(self) -> None:
        """Scroll the passage so that the found words stand a quarter of the way down the view."""
        document = self.passage_view.document()
        cursor = QTextCursor(document)
        cursor.setPosition(max(0, min(self.match_position, document.characterCount() - 1)))
        top = self.passage_view.cursorRect(cursor).top()
        bar = self.passage_view.verticalScrollBar()
        bar.setValue(bar.value() + top - self.passage_view.viewport().height() // 4)

    def _fit_passage(self) -> None:
        """As tall as the passage (the buttons stay at the bottom); it scrolls only when long."""
        document = self.passage_view.document()
        document.setTextWidth(self.passage_view.viewport().width())
        height = int(document.size().height()) + 2 * self.passage_view.frameWidth() + 6
        self.passage_view.setMaximumHeight(max(60, height))

    # -- details from the library -------------------------------------------------------------

    def _fetch_details(self, result: Any) -> None:
        if not self._controller.is_open:
            return
        token = self._token
        self._controller.item_details(
            result.item_id,
            lambda details: self._details_loaded(token, details),
            lambda message: self._failed(token, message),
        )

    def _details_loaded(self, token: int, details: dict[str, Any]) -> None:
        if self._closed or token != self._token or self._result is None:
            return
        self.details = details
        result = self._result
        meta = details.get("meta") or {}
        if result.kind == "image":
            camera = " ".join(
                dict.fromkeys(str(meta[k]).strip() for k in ("camera_make", "camera_model") if meta.get(k))
            )
            # A model name often repeats the maker ("Canon" + "Canon EOS R6"): keep it once.
            if meta.get("camera_make") and str(meta.get("camera_model", "")).startswith(str(meta["camera_make"])):
                camera = str(meta["camera_model"])
            size = f"{meta['width']} × {meta['height']}" if meta.get("width") and meta.get("height") else ""
            self._info(result, [format_date(result.media_time, with_time=True), camera, size])
            if getattr(result, "modality", "") == "ocr" and details.get("text"):
                from engine.search import mark_terms

                self._show_passage(mark_terms(details["text"], marked_terms(result.snippet)), result)
        else:
            if details.get("text"):
                self._show_details_text(result)
            if result.kind in PLAYING_KINDS and meta.get("duration"):
                self._info(
                    result,
                    [
                        locator_text(result),
                        f"of {format_clock(meta['duration'])}",
                        format_date(result.media_time, with_time=True),
                    ],
                )
        self._maybe_loaded()

    def _show_details_text(self, result: Any) -> None:
        """The whole passage, in the paragraphs around it on its page, the snippet's words marked again."""
        context = self.details.get("context")
        terms = marked_terms(result.snippet)
        if context and context.get("text"):
            focus = (int(context["start"]), int(context["end"]))
            self._show_passage(context["text"], result, terms=terms, focus=focus)
        else:
            self._show_passage(self.details["text"], result, terms=terms)

    def _maybe_loaded(self) -> None:
        result = self._result
        if result is None or not self.details:
            return
        if result.kind == "image" and self.image_label.image().isNull() and not self.image_label.text():
            return
        self.loaded.emit()

    def _failed(self, token: int, message: str) -> None:
        if self._closed or token != self._token:
            return
        self.message.emit(f"Preview: {message}")

    def _open_at_page(self) -> None:
        if self._result is not None:
            self.open_requested.emit(self._result.path, (self._result.locator or {}).get("page"))

    # -- the recording player -------------------------------------------------------------------

    def _ensure_player(self) -> Any:
        """The player, created for the first recording; None where QtMultimedia cannot load."""
        if self.player is None:
            multimedia, problem = qt_multimedia()
            for control in (self.play_button, self.position_slider, self.from_start_button):
                control.setEnabled(multimedia is not None)
            self.playback_note.setText(problem or "")
            self.playback_note.setVisible(multimedia is None)
            if multimedia is None:
                return None
            self.player = multimedia.QMediaPlayer(self)
            self.player.mediaStatusChanged.connect(self._media_status)
            self.player.positionChanged.connect(self._position_changed)
            self.player.durationChanged.connect(self._duration_changed)
            self.player.playbackStateChanged.connect(self._playback_state)
            self.player.errorOccurred.connect(self._player_error)
        return self.player

    def _load_recording(self, path: str, start_ms: int) -> None:
        self.start_ms = start_ms
        player = self._ensure_player()
        if player is None:
            self.time_label.setText(format_clock(start_ms / 1000))  # where the words are; there is no length
            return
        url = QUrl.fromLocalFile(path)
        if player.source() == url and player.mediaStatus() not in (
            player.MediaStatus.NoMedia,
            player.MediaStatus.LoadingMedia,
            player.MediaStatus.InvalidMedia,
        ):
            player.pause()
            self._pending_seek = None
            player.setPosition(start_ms)
        else:
            player.stop()
            self._pending_seek = start_ms
            player.setSource(url)
        self.position_slider.setValue(start_ms)
        self._update_time(start_ms, player.duration())

    def _media_status(self, status: Any) -> None:
        if status == self.player.MediaStatus.LoadedMedia and self._pending_seek is not None:
            position, self._pending_seek = self._pending_seek, None
            self.player.setPosition(position)

    def toggle_playback(self) -> None:
        """Play from the found moment (the first time), or pause / resume."""
        if self.player is None or self._result is None or self._result.kind not in PLAYING_KINDS:
            return
        if self.player.playbackState() == self.player.PlaybackState.PlayingState:
            self.player.pause()
            return
        if self.audio_output is None:
            self.audio_output = qt_multimedia()[0].QAudioOutput(self)
            self.player.setAudioOutput(self.audio_output)
        self.player.play()

    def seek_to_moment(self) -> None:
        if self.player is not None:
            self.player.setPosition(self.start_ms)

    def _slider_moved(self, value: int) -> None:
        self._update_time(value, self.player.duration() if self.player is not None else 0)

    def _slider_released(self) -> None:
        self._seeking = False
        if self.player is not None:
            self.player.setPosition(self.position_slider.value())

    def _position_changed(self, position: int) -> None:
        if not self._seeking:
            self.position_slider.setValue(position)
        self._update_time(position, self.player.duration())

    def _duration_changed(self, duration: int) -> None:
        self.position_slider.setRange(0, max(0, duration))
        self._update_time(self.player.position(), duration)

    def _playback_state(self, state: Any) -> None:
        playing = state == self.player.PlaybackState.PlayingState
        if playing and self.video_widget is not None and self._result is not None and self._result.kind == "video":
            self.image_label.hide()  # the picture stood in for the player until now
            self.video_widget.show()
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))
        self.play_button.setAccessibleName("Pause" if playing else "Play")
        self.play_button.setToolTip("Pause" if playing else "Play")

    def _player_error(self, _error: Any, text: str) -> None:
        what = "video" if self._result is not None and self._result.kind == "video" else "recording"
        self.message.emit(f"Cannot play this {what}: {text}")

    def _update_time(self, position: int, duration: int) -> None:
        self.time_label.setText(f"{format_clock(position / 1000)} / {format_clock(max(0, duration) / 1000)}")

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        # The picture may take most of the height, never so much that its caption is pushed away.
        self.image_label.max_height = max(160, int(self.height() * 0.62))
        self.image_label.updateGeometry()
        if self.passage_view.isVisibleTo(self):
            self._fit_passage()
            self.scroll_to_match()

    # -- keys, palette, closing -------------------------------------------------------------------

    def _style_muted(self) -> None:
        palette = self.info_label.palette()
        palette.setColor(QPalette.ColorRole.WindowText, muted_text(self.palette()))
        self.info_label.setPalette(palette)
        self.empty_label.setPalette(palette)

    def changeEvent(self, event: Any) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            self._style_muted()
            if self._result is not None and self._result.kind != "image":
                if self.details.get("text"):
                    self._show_details_text(self._result)
                else:
                    self._show_passage(self._result.snippet, self._result)

    def shutdown(self) -> None:
        """Stop playing and let go of the file (the window is closing)."""
        self._closed = True
        self._token += 1
        if self.player is not None:
            self.player.stop()
            self.player.setSource(QUrl())


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)
