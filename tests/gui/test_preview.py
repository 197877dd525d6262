"""The preview pane: a photo with its camera, a PDF passage that opens at its page, a recording at its second."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QUrl
from PySide6.QtGui import QImage

from desktop_app.controller import AppController
from desktop_app.main_window import MainWindow
from desktop_app.preview import PreviewPane, playback_unavailable_text, qt_multimedia
from engine.search import SearchResult
from tests.gui import test_main_window as shared
from tests.gui.test_main_window import search
from tests.helpers import make_photo, make_text, make_tone

# The window fixtures shared with test_main_window (pytest finds fixtures by name in the module).
opened = shared.opened


def make_pdf(path: Path, pages: list[str]) -> Path:
    """A small valid PDF with one line of Helvetica text per page."""
    objects: list[bytes] = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    pages_id = 1 + 2 * len(pages) + 1
    page_ids = []
    for n in range(len(pages)):
        objects.append(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 1 0 R >> >> >>" % (pages_id, 2 + n)
        )
        page_ids.append(len(objects))
    objects.append(
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p in page_ids) + b"] /Count %d >>" % len(page_ids)
    )
    objects.append(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, len(objects), xref)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def make_camera_photo(path: Path) -> Path:
    make_photo(path, 11, size=(640, 480))
    with Image.open(path) as image:
        exif = image.getexif()
        pixels = image.copy()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "Canon EOS R6"  # Model
    exif.get_ifd(0x8769)[0x9003] = "2022:12:24 17:05:00"  # DateTimeOriginal
    pixels.save(path, exif=exif)
    return path


@pytest.fixture
def pane(qtbot):
    widget = PreviewPane(AppController())  # no library: what a result carries is shown
    qtbot.addWidget(widget)
    widget.resize(360, 600)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.fixture
def playback():
    """QtMultimedia, for the tests of real playback."""
    multimedia, problem = qt_multimedia()
    if multimedia is None:
        # Not data that could be copied into the repository: a library of the system.
        pytest.skip(f"QtMultimedia cannot be loaded on this machine: {problem}")
    return multimedia


@pytest.fixture
def no_multimedia(monkeypatch):
    """QtMultimedia fails to import, as it does on Linux without libpulse0."""
    monkeypatch.setitem(sys.modules, "PySide6.QtMultimedia", None)
    qt_multimedia.cache_clear()
    yield
    qt_multimedia.cache_clear()  # the next test imports the real module again


def recording_result(path: Path, start: float = 1.5, end: float = 2.5, snippet: str = "call the «plumber»"):
    return SearchResult(
        path=str(path),
        kind="audio",
        score=1.0,
        locator={"start": start, "end": end},
        snippet=snippet,
        media_time="2024-02-03T10:00:00",
        tags=[],
        item_id=1,
        file_id=1,
        similarity=0.3,
    )


@pytest.fixture
def media_window(qtbot, library, tmp_path):
    root = tmp_path / "media"
    make_camera_photo(root / "party.jpg")
    make_pdf(
        root / "manual.pdf",
        ["The first page is about apples and pears.", "The second page explains the boiler pressure valve."],
    )
    make_tone(root / "memo.wav", seconds=2.0)
    make_text(root / "list.txt", "Buy bread and milk.")
    summary = library.index([root])
    assert summary.failed == []
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    yield window, root
    window.close()


def select(qtbot, window: MainWindow, path: Path) -> None:
    with qtbot.waitSignal(window.preview.loaded, timeout=10_000):
        window.results.select_paths([str(path)])
    assert window.preview.result().path == str(path)


def test_a_photo_shows_large_with_date_camera_and_tags(qtbot, media_window):
    window, root = media_window
    search(qtbot, window, "party")
    window.controller.library.store.add_tag(
        "xmas", [window.controller.library.store.get_file(str(root / "party.jpg")).id]
    )
    search(qtbot, window, "party")
    select(qtbot, window, root / "party.jpg")
    preview = window.preview
    assert preview.title_label.text() == "party.jpg"
    image = preview.image_label.image()
    assert (image.width(), image.height()) == (640, 480)  # the picture itself, not the thumbnail
    info = preview.info_label.text()
    assert "24 Dec 2022, 17:05" in info and "Canon EOS R6" in info and "640 × 480" in info
    assert "Canon Canon" not in info
    assert "xmas" in preview.tags_label.text()
    assert preview.passage_view.isHidden() and not preview.image_label.isHidden()
    assert [b.defaultAction() for b in preview.action_buttons] == [
        window.open_action,
        window.reveal_action,
        window.more_like_action,
        window.add_tag_action,
    ]
    assert all(b.isEnabled() for b in preview.action_buttons)


def test_a_pdf_passage_opens_at_its_page(qtbot, media_window, opened):
    window, root = media_window
    search(qtbot, window, "boiler")
    passage = next(r for r in window.results.shown_results() if r.locator.get("page") == 2)
    assert passage.path == str(root / "manual.pdf")
    with qtbot.waitSignal(window.preview.loaded, timeout=10_000):
        window.results.select_items([passage.item_id], passage.item_id)
    preview = window.preview
    assert preview.open_page_button.text() == "Open at page 2"
    text = preview.passage_view.toPlainText()
    assert "boiler pressure valve" in text and "«" not in text and "»" not in text
    assert "font-weight:600" in preview.passage_view.toHtml()  # the searched word stands out
    assert "Page 2" in preview.info_label.text()
    preview.open_page_button.click()
    assert opened == [QUrl.fromLocalFile(str(root / "manual.pdf"))]
    assert "page 2" in window.statusBar().currentMessage()


def test_a_recording_plays_from_the_found_second(qtbot, pane, tmp_path, playback):
    QMediaPlayer = playback.QMediaPlayer

    tone = make_tone(tmp_path / "memo.wav", seconds=3.0)
    assert pane.player is None  # nothing multimedia exists until a recording is shown
    pane.show_result(recording_result(tone))
    player = pane.player
    assert player is not None and player.source() == QUrl.fromLocalFile(str(tone))
    assert pane.play_button.isEnabled() and pane.position_slider.isEnabled()
    assert pane.playback_note.isHidden()
    assert pane.start_ms == 1500
    qtbot.waitUntil(lambda: player.mediaStatus() == QMediaPlayer.MediaStatus.LoadedMedia, timeout=10_000)
    qtbot.waitUntil(lambda: player.position() == 1500, timeout=5_000)
    assert pane.audio_output is None  # no audio device is opened before Play
    assert pane.info_label.text().startswith("00:01–00:03")
    assert pane.passage_view.toPlainText() == "call the plumber"
    assert pane.time_label.text() == "00:01 / 00:03"
    assert pane.position_slider.maximum() == 3000
    # Previewing another moment of the same recording moves there without reloading.
    pane.show_result(
        SearchResult(
            path=str(tone),
            kind="audio",
            score=1.0,
            locator={"start": 0.5, "end": 1.0},
            snippet="hello",
            media_time=None,
            tags=[],
            item_id=2,
            file_id=1,
        )
    )
    qtbot.waitUntil(lambda: player.position() == 500, timeout=5_000)
    # A document next: the player stops playing and the pane shows the passage.
    pane.show_result(
        SearchResult(
            path=str(tmp_path / "a.txt"),
            kind="document",
            score=1.0,
            locator={},
            snippet="text",
            media_time=None,
            tags=[],
            item_id=3,
            file_id=2,
        )
    )
    assert player.playbackState() != QMediaPlayer.PlaybackState.PlayingState
    assert pane.open_page_button.text() == "Open document"


def test_a_recording_result_in_the_window_gets_a_player(qtbot, media_window, playback):
    window, root = media_window
    search(qtbot, window, "memo")
    recording = next(r for r in window.results.shown_results() if r.kind == "audio")
    with qtbot.waitSignal(window.preview.loaded, timeout=10_000):
        window.results.select_items([recording.item_id], recording.item_id)
    assert window.preview.player.source() == QUrl.fromLocalFile(str(root / "memo.wav"))
    assert window.preview.start_ms == round(recording.locator["start"] * 1000)
    assert not window.preview.recording_page.isHidden()


def test_without_qt_multimedia_a_recording_shows_its_words_and_what_playback_needs(
    qtbot, pane, tmp_path, no_multimedia, caplog
):
    tone = make_tone(tmp_path / "memo.wav", seconds=3.0)
    with caplog.at_level(logging.INFO, logger="desktop_app.preview"):
        pane.show_result(recording_result(tone))
    assert pane.player is None
    note = pane.playback_note.text()
    assert note == playback_unavailable_text("import of PySide6.QtMultimedia halted; None in sys.modules")
    assert note.startswith("Audio playback") and "Error" not in note and "Traceback" not in note
    assert pane.playback_note.isVisibleTo(pane)
    assert not pane.play_button.isEnabled()
    assert not pane.position_slider.isEnabled() and not pane.from_start_button.isEnabled()
    # Everything else is shown as with a player.
    assert pane.passage_view.toPlainText() == "call the plumber"
    assert pane.info_label.text().startswith("00:01–00:03")
    assert pane.time_label.text() == "00:01"
    [record] = [r for r in caplog.records if r.name == "desktop_app.preview"]
    assert record.levelno == logging.INFO and "PySide6.QtMultimedia" in record.getMessage()
    pane.toggle_playback()  # a click that reaches it anyway does nothing
    pane.seek_to_moment()
    assert pane.player is None
    # The next recording says the same, without trying the import again.
    pane.show_result(recording_result(tone, start=0.5, end=1.0, snippet="hello"))
    assert pane.playback_note.text() == note and not pane.play_button.isEnabled()
    assert pane.time_label.text() == "00:00"
    assert len([r for r in caplog.records if r.name == "desktop_app.preview"]) == 1


def test_without_qt_multimedia_a_recording_in_the_window_shows_its_transcript(qtbot, media_window, no_multimedia):
    window, _root = media_window
    search(qtbot, window, "memo")
    recording = next(r for r in window.results.shown_results() if r.kind == "audio")
    with qtbot.waitSignal(window.preview.loaded, timeout=10_000):
        window.results.select_items([recording.item_id], recording.item_id)
    preview = window.preview
    assert preview.title_label.text() == "memo.wav"
    assert preview.player is None and not preview.play_button.isEnabled()
    assert preview.playback_note.isVisibleTo(preview) and preview.playback_note.text().startswith("Audio playback")
    assert preview.passage_view.isVisibleTo(preview) and preview.passage_view.toPlainText()


@pytest.mark.parametrize(
    ("platform", "error", "expected"),
    [
        ("linux", "libpulse.so.0: cannot open shared object file: No such file or directory",
         "Audio playback needs the system's audio library (on Debian/Ubuntu: sudo apt install libpulse0)."),
        ("linux", "libpulse-mainloop-glib.so.0: cannot open shared object file",
         "Audio playback needs the system's audio library (on Debian/Ubuntu: sudo apt install libpulse0)."),
        ("linux", "libva.so.2: cannot open shared object file: No such file or directory",
         "Audio playback needs a system library that is not installed (libva.so.2)."),
        ("darwin", "dlopen(QtMultimedia.abi3.so, 2): Library not loaded",
         "Audio playback is not available: Qt's multimedia library could not be loaded (reinstalling Shoebox may help)."),
        ("win32", "DLL load failed while importing QtMultimedia",
         "Audio playback is not available: Qt's multimedia library could not be loaded (reinstalling Shoebox may help)."),
    ],
)  # fmt: skip
def test_what_playback_needs_is_said_in_words_for_each_system(platform, error, expected):
    assert playback_unavailable_text(error, platform) == expected


def test_an_iphone_heic_shows_upright_like_the_same_picture_as_jpeg(qtbot, pane, tmp_path):
    # Qt reads the JPEG and turns it itself; the HEIC goes through pillow-heif.
    pictures = {}
    for name in ("IMG_0051.HEIC", "IMG_0051.jpg"):
        path = make_photo(tmp_path / name, 9, size=(400, 300), orientation=6)
        pane.show_result(photo_result(path))  # no library here: wait for the picture, not the details
        qtbot.waitUntil(lambda: not pane.image_label.image().isNull(), timeout=10_000)
        pictures[name] = pane.image_label.image().toImage().convertToFormat(QImage.Format.Format_RGB888)
    heic, jpeg = pictures["IMG_0051.HEIC"], pictures["IMG_0051.jpg"]
    assert (heic.width(), heic.height()) == (jpeg.width(), jpeg.height()) == (300, 400)
    # The same pixels up to the two codecs' losses (large on this noise), and far from the
    # picture mirrored or turned the other way.
    a, b = rgb_array(heic), rgb_array(jpeg)
    same = np.abs(a - b).mean()
    assert same < 20
    assert same * 2 < min(np.abs(a - b[::-1, ::-1]).mean(), np.abs(a - b[:, ::-1]).mean())


def photo_result(path: Path) -> SearchResult:
    return SearchResult(
        path=str(path),
        kind="image",
        score=1.0,
        locator={},
        snippet=None,
        media_time=datetime(2024, 5, 3).isoformat(),
        tags=[],
        item_id=1,
        file_id=1,
    )


def rgb_array(image: QImage) -> np.ndarray:
    stride = image.bytesPerLine()
    raw = np.frombuffer(image.constBits(), np.uint8, count=stride * image.height()).reshape(image.height(), stride)
    return raw[:, : 3 * image.width()].reshape(image.height(), image.width(), 3).astype(np.int16)


def test_nothing_selected_shows_the_empty_state(pane):
    pane.show_result(None)
    assert pane.stack.currentWidget() is pane.empty_label


def test_a_missing_picture_says_so(qtbot, pane, tmp_path):
    gone = SearchResult(
        path=str(tmp_path / "gone.jpg"),
        kind="image",
        score=1.0,
        locator={},
        snippet=None,
        media_time=datetime(2020, 1, 1).isoformat(),
        tags=[],
        item_id=1,
        file_id=1,
    )
    pane.show_result(gone)
    qtbot.waitUntil(lambda: pane.image_label.text() == "This picture could not be read.", timeout=5_000)
    assert pane.info_label.text() == "1 Jan 2020, 00:00"


def test_a_photo_found_by_its_text_shows_the_text_marked_as_recognised(qtbot, pane, tmp_path):
    from desktop_app.preview import RECOGNISED_NOTE

    path = make_photo(tmp_path / "receipt.jpg", 4, size=(400, 300))
    result = photo_result(path)
    result.modality, result.snippet = "ocr", "Harbourside «Dental» Clinic, total 120"
    pane.show_result(result)
    qtbot.waitUntil(lambda: not pane.image_label.image().isNull(), timeout=10_000)
    assert pane.image_label.isVisible() and pane.passage_view.isVisible()
    text = pane.passage_view.toPlainText()
    assert text.startswith(RECOGNISED_NOTE) and "Harbourside Dental Clinic, total 120" in text
    # A photo found by what it shows has no text below it.
    pane.show_result(photo_result(path))
    assert not pane.passage_view.isVisible()
