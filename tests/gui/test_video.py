"""Videos in the window: a card with the thumbnail and the second it opens at, a player there, the Videos filter."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QImage

from desktop_app.controller import AppController
from desktop_app.filters import FilterPanel
from desktop_app.main_window import MainWindow
from desktop_app.preview import PreviewPane, qt_multimedia, qt_video_widgets
from desktop_app.results import ResultsView, ThumbnailLoader, card_place_text, read_thumbnail, result_tooltip
from engine.search import SearchResult
from tests.gui.test_preview import no_multimedia, playback, recording_result  # noqa: F401  (fixtures)
from tests.helpers import make_tone
from tests.media import make_video

GREEN, BLUE = (20, 200, 40), (20, 40, 230)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Green for 3 s, then blue; a sentence spoken at 0.5 s and one at 4 s."""
    return make_video(
        tmp_path_factory.mktemp("videos") / "garden party.mp4",
        [(GREEN, 3.0), (BLUE, 4.0)],
        speech=[(0.5, "the roses are in bloom"), (4.0, "we lit the barbecue")],
        created=datetime(2023, 6, 17, 15, 0, tzinfo=timezone.utc),
    )


def video_result(path: Path, start: float, end: float | None = None, snippet: str | None = None, item_id: int = 7):
    locator: dict[str, float] = {"start": start}
    if end is not None:
        locator["end"] = end
    return SearchResult(
        path=str(path),
        kind="video",
        score=1.0,
        locator=locator,
        snippet=snippet,
        media_time="2023-06-17T17:00:00",
        tags=[],
        item_id=item_id,
        file_id=3,
        similarity=0.3,
    )


def mean_colour(image: QImage) -> tuple[int, int, int]:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    stride = image.bytesPerLine()
    raw = np.frombuffer(image.constBits(), np.uint8, count=stride * image.height()).reshape(image.height(), stride)
    pixels = raw[:, : 3 * image.width()].reshape(-1, 3)
    return tuple(int(v) for v in pixels.mean(axis=0))  # type: ignore[return-value]


def near(colour: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 25) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


@pytest.fixture
def pane(qtbot):
    widget = PreviewPane(AppController())  # no library: what a result carries is shown
    qtbot.addWidget(widget)
    widget.resize(420, 700)
    widget.show()
    yield widget
    widget.shutdown()


# -- the preview ---------------------------------------------------------------------------------------------


def test_a_video_plays_in_the_preview_from_the_found_second(qtbot, pane, clip, tmp_path, playback):  # noqa: F811
    QMediaPlayer = playback.QMediaPlayer
    assert pane.player is None and pane.video_widget is None  # nothing multimedia before a video is shown
    pane.show_result(video_result(clip, 4.0, 6.0, "we lit the «barbecue»"))
    player = pane.player
    assert player is not None and player.source() == QUrl.fromLocalFile(str(clip))
    widgets, problem = qt_video_widgets()
    assert widgets is not None and problem is None
    assert isinstance(pane.video_widget, widgets.QVideoWidget)
    assert player.videoOutput() is pane.video_widget
    # Until Play, the picture at the found second stands in for the player (a paused player may show nothing).
    assert not pane.video_widget.isVisibleTo(pane) and pane.image_label.isVisibleTo(pane)
    qtbot.waitUntil(lambda: not pane.image_label.image().isNull(), timeout=10_000)
    assert near(mean_colour(pane.image_label.image().toImage()), BLUE)  # 4 s is in the blue scene
    assert pane.start_ms == 4000
    qtbot.waitUntil(lambda: player.mediaStatus() == QMediaPlayer.MediaStatus.LoadedMedia, timeout=10_000)
    qtbot.waitUntil(lambda: player.position() == 4000, timeout=5_000)
    assert player.playbackState() != QMediaPlayer.PlaybackState.PlayingState  # it waits for Play
    assert pane.audio_output is None  # no audio device opened before Play
    assert pane.passage_view.toPlainText() == "we lit the barbecue"  # the transcript below the picture
    assert pane.info_label.text().startswith("00:04–00:06")
    assert pane.from_start_button.text() == "Back to 00:04"
    assert pane.position_slider.maximum() == 7000 and pane.time_label.text() == "00:04 / 00:07"
    assert pane.play_button.isEnabled() and pane.playback_note.isHidden()
    # Playing, the player shows the picture and the still goes (the state change as Qt reports it).
    pane._playback_state(QMediaPlayer.PlaybackState.PlayingState)
    assert pane.video_widget.isVisibleTo(pane) and pane.image_label.isHidden()

    # A frame found by its picture: no words there, the same video moves to that second without reloading.
    pane.show_result(video_result(clip, 1.0, item_id=8))
    qtbot.waitUntil(lambda: player.position() == 1000, timeout=5_000)
    assert "found in the picture" in pane.passage_view.toPlainText()

    # A recording next: the picture goes away; the player now plays the recording.
    tone = make_tone(tmp_path / "memo.wav", seconds=3.0)
    pane.show_result(recording_result(tone))
    assert pane.video_widget.isHidden() and player.source() == QUrl.fromLocalFile(str(tone))


def test_back_to_the_moment_returns_to_the_found_second(qtbot, pane, clip, playback):  # noqa: F811
    # Play itself needs an audio server (none where the tests run); moving about does not.
    QMediaPlayer = playback.QMediaPlayer
    pane.show_result(video_result(clip, 2.0, 3.0, "roses"))
    player = pane.player
    qtbot.waitUntil(lambda: player.mediaStatus() == QMediaPlayer.MediaStatus.LoadedMedia, timeout=10_000)
    qtbot.waitUntil(lambda: player.position() == 2000, timeout=5_000)
    player.setPosition(5500)
    qtbot.waitUntil(lambda: player.position() == 5500, timeout=5_000)
    pane.seek_to_moment()
    qtbot.waitUntil(lambda: player.position() == 2000, timeout=5_000)


def test_without_qt_multimedia_a_video_shows_its_picture_words_and_what_playback_needs(
    qtbot,
    pane,
    clip,
    no_multimedia,  # noqa: F811
):
    qt_video_widgets.cache_clear()
    try:
        pane.show_result(video_result(clip, 4.0, 6.0, "we lit the «barbecue»"))
        assert pane.player is None and pane.video_widget is None
        note = pane.playback_note.text()
        assert note.startswith("Video playback") and "Traceback" not in note
        assert pane.playback_note.isVisibleTo(pane) and not pane.play_button.isEnabled()
        assert pane.passage_view.toPlainText() == "we lit the barbecue"
        # The picture instead of the player: the video's picture at the found second.
        qtbot.waitUntil(lambda: not pane.image_label.image().isNull(), timeout=10_000)
        assert near(mean_colour(pane.image_label.image().toImage()), BLUE)
    finally:
        qt_video_widgets.cache_clear()


# -- the results list ----------------------------------------------------------------------------------------


def test_a_video_card_says_video_and_the_second_it_opens_at(qtbot, clip):
    loader = ThumbnailLoader(AppController())
    view = ResultsView(loader)
    qtbot.addWidget(view)
    view.resize(700, 600)
    view.show()
    document = SearchResult(
        path="/notes/party.txt",
        kind="document",
        score=0.5,
        locator={"page": 1},
        snippet="party plans",
        media_time=None,
        tags=[],
        item_id=1,
        file_id=1,
    )
    frame = video_result(clip, 83.0)
    view.set_results([video_result(clip, 4.0, 6.0, "we lit the «barbecue»"), document])
    assert view.photo_section.isHidden()  # videos are cards, not photos in the grid
    assert view.passage_paths() == [str(clip), "/notes/party.txt"]
    assert view.passage_title.text() == "Documents, recordings and videos · 2"
    assert card_place_text(frame) == "Video · 01:23"
    assert card_place_text(video_result(clip, 4.0, 6.0)) == "Video · 00:04"
    tooltip = result_tooltip(video_result(clip, 4.0, 6.0))
    assert "00:04–00:06" in tooltip and "Filmed 17 Jun 2023, 17:00" in tooltip
    assert not view.passage_view.viewport().grab().toImage().isNull()  # the card paints
    loader.close()


def test_a_video_card_shows_its_thumbnail(qtbot, library, clip):
    loader = ThumbnailLoader(AppController(library=library))  # the video is not in the library: no saved thumbnail
    view = ResultsView(loader)
    qtbot.addWidget(view)
    view.resize(700, 600)
    view.show()
    view.set_results([video_result(clip, 4.0, 6.0, "barbecue")])
    model = view.passage_model
    assert model.index(0).data(Qt.ItemDataRole.DecorationRole) is None  # asked for: loading
    qtbot.waitUntil(lambda: model.index(0).data(Qt.ItemDataRole.DecorationRole) is not None, timeout=10_000)
    pixmap = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert not pixmap.isNull() and pixmap.size() == QSize(320, 240)
    assert near(mean_colour(pixmap.toImage()), GREEN)  # the first frame
    view.passage_view.viewport().grab()  # painting the card with its picture
    loader.close()


def test_a_saved_video_thumbnail_is_used_before_the_video_is_decoded(tmp_path, clip):
    saved = tmp_path / "thumb.jpg"
    Image.new("RGB", (320, 180), BLUE).save(saved)
    image = read_thumbnail(str(clip), saved)
    assert image is not None and image.size() == QSize(320, 180) and near(mean_colour(image), BLUE)
    image = read_thumbnail(str(clip), None)
    assert image is not None and near(mean_colour(image), GREEN)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 50)
    assert read_thumbnail(str(broken), None) is None


# -- the filter and the counts -------------------------------------------------------------------------------


def test_the_videos_filter(qtbot):
    panel = FilterPanel()
    qtbot.addWidget(panel)
    assert panel.kind_boxes["video"].text() == "Videos"
    panel.set_kinds(["video"])
    assert panel.filters().kinds == ("video",)
    assert not panel.kind_boxes["video"].isEnabled()  # the last kind left stays
    panel.set_kinds(["image", "video"])
    assert panel.filters().kinds == ("image", "video")


@pytest.fixture
def window(qtbot, library):
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    yield window
    window.close()


def test_a_video_result_selected_in_the_window_plays_in_its_preview(qtbot, window, clip, playback):  # noqa: F811
    found = video_result(clip, 4.0, 6.0, "we lit the «barbecue»")
    window.results.set_results([found])
    window.results.select_items([found.item_id], found.item_id)
    preview = window.preview
    assert preview.result() is found
    assert preview.player.source() == QUrl.fromLocalFile(str(clip)) and preview.start_ms == 4000
    assert preview.player.videoOutput() is preview.video_widget and not preview.recording_page.isHidden()
    assert preview.image_label.isVisibleTo(preview)  # the picture at 4 s until Play


def test_the_library_counts_name_videos_when_there_are_some(window):
    stats = {"files": {"image": 2, "document": 1, "audio": 0, "video": 3}, "library": "x", "items": 6}
    window._library_info(stats, [])
    assert window.library_label.text() == "2 photos · 1 document · 0 recordings · 3 videos"
    # A library from before videos were read has no count for them.
    window._library_info({"files": {"image": 1, "document": 0, "audio": 0}, "library": "x", "items": 1}, [])
    assert window.library_label.text() == "1 photo · 0 documents · 0 recordings"


def test_qt_multimedia_is_what_the_video_surface_needs():
    multimedia, _problem = qt_multimedia()
    widgets, _ = qt_video_widgets()
    assert (multimedia is None) == (widgets is None)
