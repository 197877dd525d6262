"""The main window end to end on a small real library (test-tiny models): search, drop, actions, errors.

The fixtures here (``corpus``, ``indexed``, ``window``, ``search``) are shared
with the other GUI test modules, which import them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QApplication

from desktop_app import main_window as main_window_module
from desktop_app.main_window import MainWindow
from tests.helpers import make_photo, make_text


@dataclass
class Corpus:
    root: Path
    beach: Path  # photos/2021, taken 14 Jul 2021
    forest: Path  # photos/2023, taken 1 May 2023
    city: Path  # photos/2023, taken 20 Aug 2023
    boiler: Path  # notes, dated 10 Mar 2023
    garden: Path  # notes, dated 1 Jun 2022

    def names(self, paths) -> set[str]:
        return {Path(p).name for p in paths}


def _dated(path: Path, when: datetime) -> Path:
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def corpus(tmp_path) -> Corpus:
    root = tmp_path / "files"
    return Corpus(
        root=root,
        beach=make_photo(
            root / "photos" / "2021" / "beach.jpg", 1, size=(400, 300), taken=datetime(2021, 7, 14, 10, 30)
        ),
        forest=make_photo(root / "photos" / "2023" / "forest.jpg", 2, taken=datetime(2023, 5, 1, 9, 0)),
        city=make_photo(root / "photos" / "2023" / "city.jpg", 3, taken=datetime(2023, 8, 20, 18, 45)),
        boiler=_dated(
            make_text(
                root / "notes" / "boiler.txt",
                "The boiler service is due in October. Call the plumber about the boiler pressure.",
            ),
            datetime(2023, 3, 10, 12, 0),
        ),
        garden=_dated(
            make_text(root / "notes" / "garden.md", "The tomatoes in the garden need water every morning."),
            datetime(2022, 6, 1, 8, 0),
        ),
    )


@pytest.fixture
def indexed(library, corpus):
    summary = library.index([corpus.root])
    assert summary.failed == [] and summary.added == 5
    return library


@pytest.fixture
def window(qtbot, indexed):
    w = MainWindow(library=indexed)
    # test-tiny's random weights make nothing relevant by meaning: these tests are about what the
    # window does with results, so the relevance slider is moved to the left (show everything).
    w.results.set_threshold(None)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.library_ready, timeout=10_000):
        w.show()
    yield w
    w.close()


def search(qtbot, window: MainWindow, text: str) -> int:
    """Type ``text`` and press Enter; the number of results of that search."""
    with qtbot.waitSignal(window.results_shown, timeout=10_000) as blocker:
        window.search_field.setText(text)
        qtbot.keyClick(window.search_field, Qt.Key.Key_Return)
    return blocker.args[0]


def rerun(qtbot, window: MainWindow, action) -> int:
    """Do ``action`` and wait for the results of the search it causes.

    Not of an earlier one: a search started before (after a tag change, say) may still
    answer, and is shown while it is the latest, before a debounced filter change starts its own.
    """
    before = window.controller.latest_request
    shown: list[int] = []

    def on_shown(count: int) -> None:
        if window.controller.latest_request > before:
            shown.append(count)

    window.results_shown.connect(on_shown)
    try:
        action()
        qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    finally:
        window.results_shown.disconnect(on_shown)
    return shown[-1]


@pytest.fixture
def opened(monkeypatch):
    """What the window asked the desktop to open (nothing is really opened)."""
    urls: list[QUrl] = []

    def fake_open(url: QUrl) -> bool:
        urls.append(url)
        return True

    monkeypatch.setattr(main_window_module, "open_url", fake_open)
    return urls


# -- opening ----------------------------------------------------------------------------------


def test_window_shows_before_the_library_is_open_then_counts(qtbot, indexed):
    window = MainWindow(library=indexed)
    qtbot.addWidget(window)
    window.show()
    # Nothing has run yet: the window is on screen and says what it is doing.
    assert window.controller.library is indexed
    assert window.results.empty_label.text() == "Opening the library…"
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        pass
    assert window.library_label.text() == "3 photos · 2 documents · 0 recordings"
    # With nothing typed, the window shows the library: photos by month, documents by date.
    assert window.results.browsing
    qtbot.waitUntil(lambda: len(window.results.shown_results()) == 5, timeout=10_000)
    qtbot.waitUntil(lambda: window.status_label.text() == "Ready", timeout=10_000)
    window.close()


def test_an_empty_library_says_how_to_fill_it(qtbot, library):
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    assert window.results.empty_label.text().startswith("The library is empty: drop folders here")
    assert window.results.empty_button.defaultAction() is window.add_folder_action
    assert not window.results.empty_button.isHidden()
    window.close()


# -- searching ----------------------------------------------------------------------------------


def test_typing_shows_photos_in_the_grid_and_passages_as_cards(qtbot, window, corpus):
    before = window.controller.latest_request
    with qtbot.waitSignal(window.results_shown, timeout=10_000) as blocker:
        qtbot.keyClicks(window.search_field, "boiler")  # no Enter: the pause after typing starts it
    assert blocker.args[0] == 5
    assert window.controller.latest_request == before + 1  # six keys, one search
    assert corpus.names(window.results.photo_paths()) == {"beach.jpg", "forest.jpg", "city.jpg"}
    assert window.results.passage_paths()[0] == str(corpus.boiler)  # the typed word matched it
    assert corpus.names(window.results.passage_paths()) == {"boiler.txt", "garden.md"}
    assert window.results.stack.currentIndex() == 1
    assert window.result_label.text().startswith("5 results · ")


def test_only_the_latest_request_is_shown(qtbot, window, corpus):
    search(qtbot, window, "boiler")
    stale = window.controller.latest_request - 1
    shown = window.results.shown_paths()
    garden_only = window.controller.library.search("tomatoes", k=1)
    window.controller.search_done.emit(stale, garden_only)  # an older answer arriving late
    assert window.results.shown_paths() == shown


def test_escape_clears_and_shortcuts_focus_the_field(qtbot, window):
    search(qtbot, window, "garden")
    window.results.photo_view.setFocus()
    window.focus_search_action.trigger()  # Ctrl+K / Ctrl+F
    assert window.search_field.hasFocus()
    assert [s.toString() for s in window.focus_search_action.shortcuts()] == ["Ctrl+K", "Ctrl+F"]
    qtbot.keyClick(window.search_field, Qt.Key.Key_Escape)
    assert window.search_field.text() == ""
    assert window.results.browsing  # back to the whole library


def test_dropping_an_image_on_the_field_searches_by_it(qtbot, window, corpus):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(corpus.city))])
    enter = QDragEnterEvent(
        QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    enter.ignore()
    window.search_field.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    with qtbot.waitSignal(window.results_shown, timeout=10_000):
        window.search_field.dropEvent(drop)
    assert drop.isAccepted()
    assert window.results.photo_paths()[0] == str(corpus.city)  # the same picture is the closest
    assert window.query_chip is not None and window.query_chip.text() == "image: city.jpg"
    assert window.search_field.text() == ""
    # The chip's ✕ stops searching by the picture.
    window.query_chip.close_button.click()
    assert window.query_chip is None
    assert window.results.browsing


def test_dropping_something_else_is_not_an_image_search(qtbot, window, corpus):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(corpus.boiler))])
    enter = QDragEnterEvent(
        QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    enter.ignore()
    window.search_field.dragEnterEvent(enter)
    assert not enter.isAccepted()
    before = window.controller.latest_request
    window.search_field.dropEvent(
        QDropEvent(
            QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        )
    )
    qtbot.wait(50)  # the image search would start on the next loop turn
    assert window.query_chip is None
    assert window.controller.latest_request == before


# -- actions on results -------------------------------------------------------------------------


def test_more_like_this_leaves_the_photo_out(qtbot, window, corpus):
    search(qtbot, window, "garden")
    window.results.select_paths([str(corpus.forest)])
    assert window.more_like_action.isEnabled()
    count = rerun(qtbot, window, window.more_like_action.trigger)
    assert count == 2  # the other photos: a photo is like photos, not like documents
    assert str(corpus.forest) not in window.results.shown_paths()
    assert window.results.passage_paths() == []
    assert window.query_chip.text() == "like: forest.jpg"
    assert window.search_field.text() == ""


def test_copy_path_puts_the_paths_on_the_clipboard(qtbot, window, corpus):
    search(qtbot, window, "garden")
    window.results.select_paths([str(corpus.beach)])
    window.copy_path_action.trigger()
    assert QApplication.clipboard().text() == str(corpus.beach)
    window.results.select_paths([str(corpus.beach), str(corpus.garden)])
    window.copy_path_action.trigger()
    assert QApplication.clipboard().text().splitlines() == [str(corpus.beach), str(corpus.garden)]
    # Ctrl+C is the copy action's key, and it applies only inside the results (the field keeps its own copy).
    assert window.copy_path_action.shortcut().toString() == "Ctrl+C"
    assert window.copy_path_action.shortcutContext() == Qt.ShortcutContext.WidgetWithChildrenShortcut
    assert window.copy_path_action in window.results.actions()


def test_ctrl_c_in_the_results_copies_the_path(qtbot, window, corpus):
    search(qtbot, window, "garden")
    window.activateWindow()
    qtbot.waitActive(window)
    window.results.select_paths([str(corpus.city)])
    window.results.photo_view.setFocus()
    QApplication.clipboard().clear()
    qtbot.keyClick(window.results.photo_view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == str(corpus.city)


def test_the_context_menu_offers_the_actions(qtbot, window, corpus, indexed):
    indexed.store.add_tag("winter", [indexed.store.get_file(str(corpus.city)).id])
    search(qtbot, window, "garden")
    window.results.select_paths([str(corpus.city), str(corpus.beach)])
    menu = window.context_menu()
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert texts == ["Open", "Show in folder", "Copy path", "More like this", "Add tag…", "Remove tag"]
    remove = menu.actions()[-1].menu()
    city, beach = (indexed.store.get_file(str(p)).id for p in (corpus.city, corpus.beach))
    # The selection's tags (auto-tags included) can be removed from here.
    tags = indexed.store.tags_of_files([city, beach])
    assert [a.text() for a in remove.actions()] == sorted({*tags[city], *tags[beach]}, key=str.lower)
    assert not window.more_like_action.isEnabled()  # two files: "like this" needs one
    winter = next(a for a in remove.actions() if a.text() == "winter")
    with qtbot.waitSignal(window.controller.tags_changed, timeout=10_000):
        winter.trigger()
    assert "winter" not in indexed.store.tags_of_files([city])[city]
    menu.deleteLater()


def test_enter_opens_and_space_previews(qtbot, window, corpus, opened):
    search(qtbot, window, "boiler")
    view = window.results.passage_view
    view.setFocus()
    window.results.select_paths([str(corpus.boiler)])
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert [u.toLocalFile() for u in opened] == [str(corpus.boiler)]
    window.splitter.setSizes([200, 800, 0])  # the preview is collapsed
    with qtbot.waitSignal(window.results.preview_requested, timeout=2_000):
        qtbot.keyClick(view, Qt.Key.Key_Space)
    assert window.splitter.sizes()[2] > 0
    assert window.preview.result().path == str(corpus.boiler)


def test_open_and_reveal(qtbot, window, corpus, opened):
    search(qtbot, window, "garden")
    window.results.select_paths([str(corpus.garden)])
    window.open_action.trigger()
    window.reveal_action.trigger()
    assert [u.toLocalFile() for u in opened] == [str(corpus.garden), str(corpus.garden.parent)]


def test_add_tag_to_several_results_then_filter_by_it(qtbot, window, corpus, monkeypatch):
    search(qtbot, window, "garden")
    window.results.select_paths([str(corpus.beach), str(corpus.boiler)])
    assert len(window.results.selected_results()) == 2
    window.add_tag_action.trigger()
    dialog = window.tag_dialog
    assert dialog is not None and dialog.field.text() == ""
    with qtbot.waitSignal(window.library_info_loaded, timeout=10_000):
        dialog.field.setText("holiday")
        qtbot.keyClick(dialog.field, Qt.Key.Key_Return)
    assert window.filter_panel.tag_counts()["holiday"] == 2
    count = rerun(qtbot, window, lambda: window.filter_panel.set_tag_checked("holiday"))
    assert count == 2
    assert set(window.results.shown_paths()) == {str(corpus.beach), str(corpus.boiler)}
    assert all("holiday" in r.tags for r in window.results.shown_results())

    # Removing it from both: no file carries it, so it leaves the list and the filter.
    window.results.select_paths([str(corpus.beach), str(corpus.boiler)])
    assert window.remove_tag_action.isEnabled()
    with qtbot.waitSignal(window.results_shown, timeout=10_000):
        window.remove_tag_from_selection("holiday")
    qtbot.waitUntil(lambda: "holiday" not in window.filter_panel.tag_names(), timeout=10_000)
    qtbot.waitUntil(lambda: len(window.results.shown_paths()) == 5, timeout=10_000)


# -- errors ---------------------------------------------------------------------------------------


def test_a_failing_search_shows_a_message(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.search_error, timeout=10_000) as blocker:
        window.search_by_image(str(tmp_path / "missing.jpg"))
    assert "no such image" in blocker.args[0]
    # The search's own banner says why; the window's banner is left to the library and the models.
    assert "no such image" in window.search_banner.text().lower()
    assert window.search_banner.level == "error"
    assert window.banner.text() == ""
    assert window.result_label.text() == "Search failed"
    # The picture stays the query until its chip is removed; the next good search clears the message.
    assert window.query_chip.text() == "image: missing.jpg"
    window.query_chip.close_button.click()
    assert window.search_banner.text() == ""  # no search: nothing said about one
    search(qtbot, window, "garden")
    assert window.search_banner.text() == ""


def test_library_and_model_problems_show_as_messages(qtbot, window):
    window.controller.library_failed.emit("cannot open the library at /nowhere: disk I/O error")
    assert "disk I/O error" in window.banner.text()
    window.controller.models_missing.emit("The CLIP model ViT-B-32 is not on this computer.")
    assert "disk I/O error" in window.banner.text()  # the models have a banner of their own
    assert "found by their names, dates and words" in window.models_banner.text()
    assert "shoebox" not in window.models_banner.text() and ".." not in window.models_banner.text()


# -- the panels plugged into the window --------------------------------------------------------------


def drop_on(window: MainWindow, path: Path) -> QDropEvent:
    """Drop ``path`` on the window as a file manager does; the drop event (accepted or not)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    # Qt delivers a drop to the widget that accepted the drag's entry, so the entry comes first.
    enter = QDragEnterEvent(
        QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, drop)
    return drop


def test_dropping_a_folder_on_the_window_indexes_it(qtbot, library, corpus):
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    assert window.results.empty_label.text().startswith("The library is empty: drop folders here")
    with qtbot.waitSignal(window.controller.index_finished, timeout=60_000):
        drop = drop_on(window, corpus.root)
    assert drop.isAccepted()
    assert window.indexing_dock.isVisible()  # the indexing panel showed itself for the run
    qtbot.waitUntil(lambda: window.library_label.text() == "3 photos · 2 documents · 0 recordings", timeout=10_000)
    # The library, empty before, is shown now that it has files.
    qtbot.waitUntil(lambda: window.results.browsing and len(window.results.photo_paths()) == 3, timeout=10_000)
    window.close()


def test_ask_a_question_opens_the_ask_panel(qtbot, window):
    assert window.ask_action.shortcut().toString() == "Ctrl+Shift+A"
    assert not window.ask_panel.isVisible()
    window.filter_panel.set_kinds(["document"])
    window.ask_action.trigger()
    assert window.ask_panel.isVisible()
    assert window.ask_panel.question_field.hasFocus()
    assert window.ask_panel.filters.kinds == ("document",)  # asked within the window's filters


def test_a_citation_opens_the_cited_passage_in_the_preview(qtbot, window, corpus):
    window.ask_action.trigger()
    panel = window.ask_panel
    with qtbot.waitSignal(panel.answer_shown, timeout=20_000) as answered:
        qtbot.keyClicks(panel.question_field, "When is the boiler service due?")
        qtbot.keyClick(panel.question_field, Qt.Key.Key_Return)
    answer = answered.args[0]
    assert answer.found and "October" in answer.answer
    assert panel.citation_texts()[0].startswith("[1] boiler.txt")
    with qtbot.waitSignal(window.citation_shown, timeout=10_000) as shown:
        panel.citation_labels[0].linkActivated.emit("cite:1")
    result = shown.args[0]
    assert result.path == str(corpus.boiler) and result.locator == answer.citations[0].locator
    assert window.preview.result() is result
    assert window.preview.title_label.text() == "boiler.txt"


def test_missing_models_offer_to_set_them_up(qtbot, window):
    window.controller.models_missing.emit("the CLIP weights are not on this computer")
    assert window.models_banner.level == "info"  # keyword search works meanwhile, and the banner says so
    assert window.models_banner.action_button.isVisibleTo(window.models_banner)
    assert window.models_banner.action_button.defaultAction() is window.set_up_models_action
    assert window.models_dialog is None  # opened only when the person asks
    window.controller.models_ready.emit()
    assert not window.models_banner.isVisibleTo(window)


def test_settings_always_has_a_shortcut(qtbot, window):
    assert not window.settings_action.shortcut().isEmpty()


def test_keyword_only_results_are_searched_again_once_the_models_load(qtbot, window):
    from engine.search import SearchResponse

    search(qtbot, window, "boiler")
    # What a search answers before any model loaded: the field says so, whatever the warning's words.
    window._last_response = SearchResponse(results=[], took_ms=1.0, warnings=["any wording"], keywords_only=True)
    with qtbot.waitSignal(window.results_shown, timeout=10_000):
        window.controller.models_ready.emit()
    window._last_response = SearchResponse(results=[], took_ms=1.0, warnings=["keywords only"], keywords_only=False)
    with qtbot.assertNotEmitted(window.results_shown, wait=100):
        window.controller.models_ready.emit()


def test_results_waiting_for_meaning_are_searched_again_once_the_models_load(qtbot, window):
    from engine.search import MEANING_PENDING, SearchResponse

    qtbot.waitUntil(lambda: not window.controller.models_loading, timeout=60_000)
    search(qtbot, window, "boiler")
    pending = SearchResponse(results=[], took_ms=1.0, warnings=[MEANING_PENDING], meaning_pending=True)
    window._last_response = pending
    with qtbot.waitSignal(window.results_shown, timeout=10_000):
        window.controller.models_ready.emit()
    assert not window._last_response.meaning_pending
    # An answer that was waiting for meaning, arriving after the models loaded, is searched again at once.
    shown: list[int] = []
    window.results_shown.connect(shown.append)
    window._search_done(window._request, pending)
    assert window._last_response is pending and len(shown) == 1
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=10_000)
    assert not window._last_response.meaning_pending and window.meaning_note.isHidden()


def test_file_rescan_finds_what_changed_in_the_library_folders(qtbot, window, corpus):
    assert window.rescan_action in window.menuBar().actions()[0].menu().actions()
    assert window.rescan_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Refresh)
    make_text(corpus.root / "notes" / "dentist.txt", "The dentist appointment is on Tuesday.")
    c = window.controller
    with qtbot.waitSignal(c.index_finished, timeout=60_000) as finished:
        with qtbot.waitSignal(c.index_started, timeout=5_000) as started:
            window.rescan_action.trigger()
        assert started.args == [[]]
        assert window.indexing_panel.title.text() == "Rescanning every folder"
    assert (finished.args[0].added, finished.args[0].unchanged) == (1, 5)
    search(qtbot, window, "dentist")
    assert str(corpus.root / "notes" / "dentist.txt") in window.results.passage_paths()
