"""The results view: the photo grid, passage cards, marks, the relevance slider, selection, thumbnails."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPalette

from desktop_app.controller import AppController
from desktop_app.results import (
    CardDelegate,
    ExtraRole,
    ResultsView,
    ThumbnailLoader,
    read_thumbnail,
    result_tooltip,
)
from desktop_app.style import format_clock, has_marks, locator_text, marked_html, marked_terms
from engine.ingest import thumbnail_path
from engine.search import SearchResult
from tests.gui import test_main_window as shared
from tests.gui.test_main_window import search
from tests.helpers import make_photo

# The window fixtures shared with test_main_window (pytest finds fixtures by name in the module).
corpus = shared.corpus
indexed = shared.indexed
window = shared.window


def result(
    item_id: int, path: str, kind: str, similarity: float | None, snippet: str | None = None, **kw
) -> SearchResult:
    return SearchResult(
        path=path,
        kind=kind,
        score=1.0 / item_id,
        locator=kw.pop("locator", {}),
        snippet=snippet,
        media_time=kw.pop("media_time", "2023-05-01T09:00:00"),
        tags=kw.pop("tags", []),
        item_id=item_id,
        file_id=item_id,
        similarity=similarity,
        **kw,
    )


SAMPLE = [
    result(1, "/pics/beach.jpg", "image", 0.31, relevance=0.9),
    result(
        2,
        "/notes/boiler.txt",
        "document",
        0.12,
        "The «boiler» service is due",
        locator={"page": 2},
        relevance=0.1,
        matched=["boiler"],
    ),
    result(3, "/pics/forest.jpg", "image", 0.22, relevance=0.45),
    result(
        4, "/voice/memo.wav", "audio", 0.18, "call the plumber", locator={"start": 65.2, "end": 71.0}, relevance=0.3
    ),
    result(5, "/notes/garden.md", "document", 0.10, "tomatoes need water", relevance=0.05),
]


@pytest.fixture
def view(qtbot):
    loader = ThumbnailLoader(AppController())  # no library: placeholders only
    widget = ResultsView(loader)
    qtbot.addWidget(widget)
    widget.resize(700, 600)
    widget.show()
    yield widget
    loader.close()


def test_photos_go_to_the_grid_and_the_rest_to_cards(view):
    view.set_results(SAMPLE)
    assert view.photo_paths() == ["/pics/beach.jpg", "/pics/forest.jpg"]
    assert view.passage_paths() == ["/notes/boiler.txt", "/voice/memo.wav", "/notes/garden.md"]
    assert view.photo_view.viewMode() == view.photo_view.ViewMode.IconMode
    assert view.photo_view.selectionMode() == view.photo_view.SelectionMode.ExtendedSelection
    assert view.passage_view.selectionMode() == view.passage_view.SelectionMode.ExtendedSelection
    assert view.count_label.text() == "5 results"
    assert view.photo_title.text() == "Photos · 2"
    assert view.passage_title.text() == "Documents and recordings · 3"


def test_a_list_without_photos_hides_the_grid(view):
    view.set_results([SAMPLE[1], SAMPLE[4]])
    assert view.photo_section.isHidden()
    assert not view.passage_section.isHidden()


def test_cards_render_marks_as_bold_never_as_guillemets(view):
    palette = view.palette()
    html = marked_html("The «boiler» service & «pressure»", palette)
    assert "«" not in html and "»" not in html
    assert "font-weight:600" in html and ">boiler</span>" in html and "&amp;" in html
    assert marked_html("a stray « mark", palette) == "a stray  mark"
    delegate = view.passage_view.itemDelegate()
    assert isinstance(delegate, CardDelegate)
    doc = delegate._document(SAMPLE[1], palette, view.font(), 400)
    assert doc.toPlainText() == "The boiler service is due"
    # The matched word sits on a tint derived from the palette, so dark themes work too.
    highlight = palette.color(QPalette.ColorRole.Highlight)
    assert highlight.name() not in html
    assert has_marks(SAMPLE[1].snippet) and not has_marks(SAMPLE[4].snippet)
    assert marked_terms("«Boiler» and «boiler» and «pressure»") == ["Boiler", "pressure"]


def test_cards_and_cells_say_where_and_when(view):
    assert locator_text(SAMPLE[1]) == "page 2"
    assert locator_text(SAMPLE[3]) == "01:05–01:11"
    assert locator_text(SAMPLE[0]) == ""
    assert format_clock(3725) == "1:02:05"
    tip = result_tooltip(SAMPLE[3])
    assert "memo.wav" in tip and "01:05–01:11" in tip and "Relevance 0.30 (similarity 0.180)" in tip
    assert "Matched your words: boiler" in result_tooltip(SAMPLE[1])
    view.set_results(SAMPLE)
    index = view.passage_model.index(0)
    assert index.data(Qt.ItemDataRole.ToolTipRole) == result_tooltip(SAMPLE[1])
    # Cards grow with their text; photo cells are all one size.
    size = view.passage_view.itemDelegate().sizeHint(_option(view), index)
    assert size.height() > 40
    grid = view.photo_view.gridSize()
    assert grid.height() == 177 and 168 <= grid.width() < 2 * 168  # columns spread to fill the width
    view.set_thumbnail_size(240)  # chosen in the settings
    grid = view.photo_view.gridSize()
    assert grid.height() == 245 and 256 <= grid.width() < 2 * 256


def _option(view):
    from PySide6.QtWidgets import QStyleOptionViewItem

    option = QStyleOptionViewItem()
    option.initFrom(view.passage_view)
    return option


def test_the_relevance_slider_hides_low_relevance_but_keeps_word_matches(view):
    view.set_results(SAMPLE)
    assert view.threshold() is None
    view.relevance_slider.setValue(50)  # an even chance, among the nearest items
    assert view.threshold() == pytest.approx(0.5)
    assert view.shown_paths() == ["/pics/beach.jpg", "/notes/boiler.txt"]  # boiler: its word matched
    assert view.count_label.text() == "2 results (3 weaker results hidden)"
    assert view.threshold_label.text() == "≥ 0.50"
    assert not view.show_hidden_button.isHidden()
    view.set_threshold(0.25)
    assert view.shown_paths() == ["/pics/beach.jpg", "/pics/forest.jpg", "/notes/boiler.txt", "/voice/memo.wav"]
    view.relevance_slider.setValue(0)
    assert len(view.shown_paths()) == 5
    assert view.threshold_label.text() == "all" and view.show_hidden_button.isHidden()


def test_when_nothing_is_relevant_enough_the_view_says_so_and_offers_the_rest(qtbot, view):
    weak = [r for r in SAMPLE if not r.matched]
    view.set_threshold(0.95)
    view.set_results(weak)
    assert view.shown_paths() == []
    assert view.count_label.text() == "Nothing matched closely (4 weaker results hidden)"
    qtbot.mouseClick(view.show_hidden_button, Qt.MouseButton.LeftButton)
    assert len(view.shown_paths()) == 4 and view.threshold() is None


def test_the_slider_is_off_when_similarity_is_unknown(view):
    keyword_only = [result(1, "/a.txt", "document", None, "«a»"), result(2, "/b.txt", "document", None, "b")]
    view.set_results(keyword_only)
    assert not view.relevance_slider.isEnabled()
    view.relevance_slider.setValue(80)
    assert len(view.shown_paths()) == 2


def test_a_card_opens_its_files_other_passages(qtbot, view):
    more = [
        {
            "item_id": 21,
            "locator": {"page": 5},
            "snippet": "the «boiler» pressure",
            "score": 0.6,
            "relevance": 0.2,
            "similarity": 0.1,
        },
        {
            "item_id": 22,
            "locator": {"page": 7},
            "snippet": "«boiler» warranty",
            "score": 0.5,
            "relevance": None,
            "similarity": None,
        },
    ]
    card = result(
        2,
        "/notes/boiler.txt",
        "document",
        0.12,
        "The «boiler» service is due",
        locator={"page": 2},
        relevance=0.1,
        matched=["boiler"],
        more=more,
    )
    view.set_results([card, SAMPLE[4]])
    delegate = view.passage_view.itemDelegate()
    option = _option(view)
    option.rect = view.passage_view.visualRect(view.passage_model.index(0))
    footer = delegate.footer_rect(option.rect, view.passage_model.index(0), option.font)
    assert footer.isValid() and delegate._footer(view.passage_model.index(0)) == "▸ 2 more passages in this file"
    # A click on the line opens them below the card, indented; a second click closes them.
    qtbot.mouseClick(view.passage_view.viewport(), Qt.MouseButton.LeftButton, pos=footer.center())
    assert view.passage_model.rowCount() == 4
    assert [r.item_id for r in view.passage_model.shown_rows()] == [2, 21, 22, 5]
    assert view.passage_model.index(1).data(ExtraRole) and not view.passage_model.index(0).data(ExtraRole)
    assert locator_text(view.passage_model.result(1)) == "page 5"
    assert view.passage_paths() == ["/notes/boiler.txt", "/notes/garden.md"]  # still one card per file
    assert delegate._footer(view.passage_model.index(0)) == "▾ Hide 2 more passages"
    qtbot.mouseClick(view.passage_view.viewport(), Qt.MouseButton.LeftButton, pos=footer.center())
    assert [r.item_id for r in view.passage_model.shown_rows()] == [2, 5]
    # From the keyboard: Right opens, Left closes.
    view.passage_view.setFocus()
    view.passage_view.setCurrentIndex(view.passage_model.index(0))
    qtbot.keyClick(view.passage_view, Qt.Key.Key_Right)
    assert view.passage_model.rowCount() == 4
    qtbot.keyClick(view.passage_view, Qt.Key.Key_Left)
    assert view.passage_model.rowCount() == 2
    # A card of a file with no other passage has no such line.
    assert delegate._footer(view.passage_model.index(1)) == ""


def test_selection_spans_both_lists_and_survives_a_refresh(qtbot, view):
    view.set_results(SAMPLE)
    with qtbot.waitSignal(view.current_changed) as blocker:
        view.select_paths(["/pics/forest.jpg", "/voice/memo.wav"])
    assert blocker.args[0].path == "/pics/forest.jpg"
    assert [r.path for r in view.selected_results()] == ["/pics/forest.jpg", "/voice/memo.wav"]
    # The same items in a new answer (after tagging, say) stay selected.
    view.set_results(list(reversed(SAMPLE)))
    assert {r.path for r in view.selected_results()} == {"/pics/forest.jpg", "/voice/memo.wav"}
    assert view.current_result().path == "/pics/forest.jpg"
    # Gone from the answer: the preview is told there is no current result.
    with qtbot.waitSignal(view.current_changed) as blocker:
        view.set_results([SAMPLE[0]])
    assert blocker.args[0] is None
    assert view.action_targets() == []


def test_clicking_in_one_list_clears_the_other(qtbot, view):
    view.set_results(SAMPLE)
    view.select_paths(["/pics/beach.jpg"])
    rect = view.passage_view.visualRect(view.passage_model.index(1))
    qtbot.mouseClick(view.passage_view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert [r.path for r in view.selected_results()] == ["/voice/memo.wav"]
    assert view.current_result().path == "/voice/memo.wav"


def test_keys_open_and_preview(qtbot, view):
    view.set_results(SAMPLE)
    view.select_paths(["/notes/garden.md"])
    view.passage_view.setFocus()
    with qtbot.waitSignal(view.open_requested) as opened:
        qtbot.keyClick(view.passage_view, Qt.Key.Key_Return)
    assert opened.args[0].path == "/notes/garden.md"
    with qtbot.waitSignal(view.preview_requested) as previewed:
        qtbot.keyClick(view.passage_view, Qt.Key.Key_Space)
    assert previewed.args[0].path == "/notes/garden.md"


def test_dragging_results_out_gives_file_urls(view):
    view.set_results(SAMPLE)
    model = view.photo_model
    data = model.mimeData([model.index(0), model.index(1)])
    assert [u.toLocalFile() for u in data.urls()] == ["/pics/beach.jpg", "/pics/forest.jpg"]


def test_empty_states(view):
    view.show_empty("No results.")
    assert view.showing_empty()
    assert view.empty_label.text() == "No results."
    assert view.shown_paths() == []


# -- thumbnails from the library ---------------------------------------------------------------


def test_thumbnails_are_the_saved_ones_read_off_the_gui_thread(qtbot, library, tmp_path):
    big = make_photo(tmp_path / "files" / "big.jpg", 7, size=(1200, 900))
    library.index([tmp_path / "files"])
    row = library.store.get_file(str(big))
    saved = thumbnail_path(library.settings.thumbnails_dir, row.content_hash)
    assert saved.is_file()
    controller = AppController(library=library)
    loaded: list[dict[int, QImage | None]] = []
    controller.load_thumbnails({row.id: str(big)}, read_thumbnail, loaded.append, pytest.fail)
    qtbot.waitUntil(lambda: bool(loaded), timeout=5_000)
    image = loaded[0][row.id]
    assert image is not None and image.size() == QImage(str(saved)).size() == QSize(320, 240)

    # Without a saved thumbnail the original is decoded at thumbnail size.
    saved.unlink()
    image = read_thumbnail(str(big), None)
    assert image is not None and image.size() == QSize(320, 240)
    assert read_thumbnail(str(tmp_path / "gone.jpg"), None) is None

    loader = ThumbnailLoader(controller)
    assert loader.pixmap(row.id, str(big)) is None  # asked for: loading in the background
    with qtbot.waitSignal(loader.ready, timeout=5_000) as blocker:
        pass
    assert blocker.args == [row.id]
    pixmap = loader.pixmap(row.id, str(big))
    assert pixmap is not None and pixmap.width() == 320
    # A file that cannot be read gives a placeholder, once.
    assert loader.pixmap(9999, str(tmp_path / "gone.jpg")) is None
    with qtbot.waitSignal(loader.ready, timeout=5_000):
        pass
    pixmap = loader.pixmap(9999, str(tmp_path / "gone.jpg"))
    assert pixmap is not None and pixmap.isNull()
    assert loader.loading() == 0
    loader.close()


def test_the_window_grid_paints_thumbnails(qtbot, window, corpus):
    search(qtbot, window, "garden")
    model = window.results.photo_model
    qtbot.waitUntil(
        lambda: all(model.index(r).data(Qt.ItemDataRole.DecorationRole) is not None for r in range(model.rowCount())),
        timeout=5_000,
    )
    first = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert not first.isNull() and max(first.width(), first.height()) <= 320
    image = window.results.photo_view.viewport().grab().toImage()
    assert not image.isNull()
    assert Path(model.result(0).path).name in {"beach.jpg", "forest.jpg", "city.jpg"}


def test_a_heic_thumbnail_without_a_saved_one_is_decoded_upright(tmp_path):
    # Qt has no HEIC reader here: the original is decoded through the engine, turned once.
    heic = make_photo(tmp_path / "IMG_0050.HEIC", 8, size=(1200, 900), orientation=6)
    image = read_thumbnail(str(heic), None)
    assert image is not None and image.size() == QSize(240, 320)
