"""What the window shows is true of now: a search's warnings, dates and selection go with it,
tags show as soon as they change, status lines end with their work, the tag box starts empty,
and a search by a picture stays on pictures."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from desktop_app.main_window import MainWindow
from engine.ingest import IndexSummary
from tests.gui import test_main_window as shared
from tests.gui.test_main_window import drop_on, rerun, search
from tests.helpers import make_photo, make_text

# The window fixtures shared with test_main_window (pytest finds fixtures by name in the module).
corpus = shared.corpus
indexed = shared.indexed
window = shared.window


def app_banner_text(window: MainWindow) -> str:
    return window.banner.text()


# -- 1. banners and chips belong to the search that produced them -------------------------------------


def test_a_search_warning_goes_when_another_search_starts(qtbot, window):
    # Nothing is from 2019: the words are searched at any time, and the search says so.
    search(qtbot, window, "boiler 2019")
    assert window.search_banner.text().startswith("Nothing from 2019; showing results from any time")
    # Another search: the warning goes as soon as it starts, not when (or if) it answers.
    window.search_field.setText("garden")
    window.run_search()
    assert window.search_banner.text() == ""
    qtbot.waitSignal(window.results_shown, timeout=10_000).wait()
    assert window.search_banner.text() == ""
    # The same warning again, then the query cleared: gone too.
    search(qtbot, window, "boiler 2019")
    assert window.search_banner.text() != ""
    qtbot.keyClick(window.search_field, Qt.Key.Key_Escape)
    assert window.search_banner.text() == ""
    search(qtbot, window, "boiler 2019")
    window.search_field.clear()  # the field's own clear button
    assert window.search_banner.text() == ""


def test_an_answer_without_warnings_takes_the_last_ones_away(qtbot, window):
    search(qtbot, window, "boiler 2019")
    assert window.search_banner.text() != ""
    search(qtbot, window, "boiler")  # answered with no warning
    assert window.search_banner.text() == ""


def test_a_search_leaves_the_windows_own_banners_alone(qtbot, window):
    window.controller.models_missing.emit("the CLIP weights are not on this computer")
    offer = window.models_banner.text()
    assert "models are set up" in offer
    window._show_error("The folder /photos could not be watched.")
    failure = app_banner_text(window)
    search(qtbot, window, "boiler 2019")
    # A search's warning covers neither the set-up offer nor the window's own message...
    assert (window.models_banner.text(), app_banner_text(window)) == (offer, failure)
    assert window.search_banner.text() != ""
    search(qtbot, window, "garden")
    # ...and another search takes neither away.
    assert (window.models_banner.text(), app_banner_text(window)) == (offer, failure)
    assert window.search_banner.text() == ""


def test_date_chips_go_with_their_search(qtbot, window):
    search(qtbot, window, "notes from 2023")
    assert [chip.text() for chip in window.filter_panel.date_chips] == ["2023"]
    window.search_field.setText("garden")
    window.run_search()
    assert window.filter_panel.date_chips == [] and window.filter_panel.understood_box.isHidden()
    qtbot.waitSignal(window.results_shown, timeout=10_000).wait()
    assert window.filter_panel.date_chips == []
    search(qtbot, window, "notes from 2023")
    assert window.filter_panel.date_chips
    qtbot.keyClick(window.search_field, Qt.Key.Key_Escape)
    assert window.filter_panel.date_chips == [] and window.filter_panel.understood_box.isHidden()
    # Emptied by the field's own clear button (or erased): gone at once, before any search.
    search(qtbot, window, "notes from 2023")
    assert window.filter_panel.date_chips
    window.search_field.clear()
    assert window.filter_panel.date_chips == []


def test_the_same_search_again_keeps_its_chips(qtbot, window, indexed, corpus):
    search(qtbot, window, "notes from 2023")
    # Files change and the search runs again by itself: it is still the search the chips are about.
    rerun(qtbot, window, window.controller.library_changed.emit)
    assert [chip.text() for chip in window.filter_panel.date_chips] == ["2023"]


# -- 2. a new search shows its top, with nothing selected ----------------------------------------------


@pytest.fixture
def many_notes(library, tmp_path):
    root = tmp_path / "many"
    for n in range(40):
        make_text(root / f"note{n:02}.txt", f"Note {n} about the garden: water the tomatoes and the basil.")
    for n in range(3):
        make_photo(root / f"photo{n}.jpg", 50 + n)
    summary = library.index([root])
    assert summary.failed == []
    return library


@pytest.fixture
def long_window(qtbot, many_notes):
    w = MainWindow(library=many_notes)
    w.results.set_threshold(None)
    w.resize(1000, 640)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.library_ready, timeout=10_000):
        w.show()
    yield w
    w.close()


def test_a_new_search_shows_the_top_with_nothing_selected(qtbot, long_window):
    window = long_window
    assert search(qtbot, window, "garden") > 20
    view = window.results.passage_view
    last = window.results.passage_model.results()[-1]
    window.results.select_items([last.item_id], last.item_id)
    assert view.verticalScrollBar().value() > 0  # the list scrolled down to it
    assert window.preview.result() is not None
    search(qtbot, window, "tomatoes")
    assert window.results.selected_results() == []
    assert window.results.current_result() is None
    assert view.verticalScrollBar().value() == 0
    assert window.results.photo_view.verticalScrollBar().value() == 0
    assert window.preview.result() is None and window.preview.stack.currentWidget() is window.preview.empty_label
    assert not window.more_like_action.isEnabled()  # nothing to act on


def test_the_same_search_found_again_keeps_the_selection(qtbot, long_window):
    window = long_window
    search(qtbot, window, "garden")
    last = window.results.passage_model.results()[-1]
    window.results.select_items([last.item_id], last.item_id)
    rerun(qtbot, window, window.controller.library_changed.emit)
    assert [r.item_id for r in window.results.selected_results()] == [last.item_id]
    assert window.results.passage_view.verticalScrollBar().value() > 0


def test_a_new_search_clears_a_cited_passage_from_the_preview(qtbot, window, corpus):
    search(qtbot, window, "garden")
    cited = window.controller.library.search("boiler", k=1).results[0]
    window.preview.show_result(cited)  # as an answer's citation shows it: not one of the results
    search(qtbot, window, "tomatoes")
    assert window.preview.result() is None


# -- 3. tag changes show in the preview at once ----------------------------------------------------------


def preview_tags(window: MainWindow) -> str:
    label = window.preview.tags_label
    return label.text() if not label.isHidden() else ""


def test_adding_and_removing_a_tag_shows_in_the_preview(qtbot, window, corpus):
    search(qtbot, window, "garden")
    window.results.select_paths([str(corpus.garden)])
    assert window.preview.result().path == str(corpus.garden)
    assert "holiday" not in preview_tags(window)
    # Added with the preview's own button.
    button = next(b for b in window.preview.action_buttons if b.defaultAction() is window.add_tag_action)
    button.click()
    dialog = window.tag_dialog
    dialog.field.setText("holiday")
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: "holiday" in preview_tags(window), timeout=10_000)
    assert window.remove_tag_action.isEnabled()
    # Removed from the context menu.
    menu = window.context_menu()
    remove = next(a for a in menu.actions() if a.text() == "Remove tag").menu()
    holiday = next(a for a in remove.actions() if a.text() == "holiday")
    holiday.trigger()
    qtbot.waitUntil(lambda: "holiday" not in preview_tags(window), timeout=10_000)
    menu.deleteLater()


def test_a_tag_shows_in_the_preview_before_the_search_runs_again(qtbot, window, corpus):
    search(qtbot, window, "garden")
    window.results.select_paths([str(corpus.garden)])
    previewed = window.preview.result()
    window._refresh.timeout.disconnect()  # the search does not run again: the tags are read by themselves
    try:
        with qtbot.waitSignal(window.controller.tags_changed, timeout=10_000):
            window.add_tag_to_selection("receipts")
        qtbot.waitUntil(lambda: "receipts" in preview_tags(window), timeout=10_000)
        assert window.preview.result() is previewed  # the same preview: nothing was loaded again
        assert "receipts" in window.results.current_result().tags
    finally:
        window._refresh.timeout.connect(window.run_search)


# -- 4. status lines end when their work ends ------------------------------------------------------------


def test_the_status_line_of_a_dropped_folder_ends_with_its_indexing(qtbot, window, tmp_path):
    folder = tmp_path / "more"
    make_photo(folder / "harbour.jpg", 77)
    lines: list[str] = []
    window.controller.status.connect(lines.append)
    window.controller.index_started.connect(lambda _paths: lines.append(window.status_label.text()))
    with qtbot.waitSignal(window.controller.index_finished, timeout=60_000):
        drop_on(window, folder)
    assert "Indexing more…" in lines  # said while it ran
    assert window.status_label.text() == "Indexing finished: added 1"
    assert not window.status_label.text().endswith("…")
    assert "…" not in window.statusBar().currentMessage()


def test_a_queued_job_s_line_ends_when_it_starts_or_is_stopped(qtbot, window, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    make_photo(first / "a.jpg", 81)
    make_photo(second / "b.jpg", 82)
    c = window.controller
    finished: list[IndexSummary] = []
    c.index_finished.connect(finished.append)
    c.index([str(first)])
    c.index([str(second)])
    assert window.status_label.text() == "Queued 1 item(s) for indexing"
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=60_000)
    assert window.status_label.text() == "Indexing finished: added 1"

    c.index([str(first)])
    c.index([str(second)])
    c.cancel_indexing()  # the queued one never starts
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=60_000)
    assert not window.status_label.text().startswith("Queued")
    assert not window.status_label.text().endswith("…")


def test_failed_and_re_embedding_jobs_end_their_lines(qtbot, window):
    c = window.controller
    c.index_started.emit(["/nowhere/photos"])
    assert window.status_label.text() == "Indexing photos…"
    c.index_failed.emit("the disk is full")
    assert window.status_label.text() == "Indexing stopped: the disk is full"
    c.reembed_started.emit("the photos with CLIP ViT-B-16")
    assert window.status_label.text() == "Re-embedding the photos with CLIP ViT-B-16…"
    c.reembed_failed.emit("out of memory")
    assert window.status_label.text() == "Re-embedding failed: out of memory"
    c.reembed_started.emit("the photos with CLIP ViT-B-16")
    c.reembed_finished.emit(IndexSummary(cancelled=True))
    assert window.status_label.text().startswith("Stopped. Nothing changed")


def test_waiting_for_a_library_that_does_not_open_ends(qtbot, window):
    window._search_when_open = True
    window.result_label.setText("Waiting for the library…")
    window.controller.library_failed.emit("cannot open the library at /nowhere: disk I/O error")
    assert window.result_label.text() == ""
    assert window.meaning_note.isHidden()


# -- 5. the Add-tag box starts empty ---------------------------------------------------------------------


def test_the_add_tag_box_starts_empty_and_enter_on_it_does_nothing(qtbot, window, corpus, indexed):
    indexed.store.add_tag("winter", [indexed.store.get_file(str(corpus.city)).id])
    with qtbot.waitSignal(window.library_info_loaded, timeout=10_000):
        window._refresh_library_info()
    assert "winter" in window.filter_panel.tag_names()
    search(qtbot, window, "garden")
    window.results.select_paths([str(corpus.beach)])
    window.add_tag_action.trigger()
    dialog = window.tag_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.field.text() == ""
    assert not dialog.ok_button.isEnabled()
    # The library's tags are offered as you type, not written in the box.
    completer = dialog.field.completer()
    assert "winter" in completer.model().stringList()
    with qtbot.assertNotEmitted(window.controller.tags_changed, wait=300):
        qtbot.keyClick(dialog.field, Qt.Key.Key_Return)
    assert dialog.isVisible()  # still asking
    beach = indexed.store.get_file(str(corpus.beach)).id
    assert "winter" not in indexed.store.tags_of_files([beach]).get(beach, [])
    with qtbot.waitSignal(window.controller.tags_changed, timeout=10_000):
        dialog.field.setText("  ")
        qtbot.keyClick(dialog.field, Qt.Key.Key_Return)  # blanks are no tag either
        assert dialog.isVisible()
        dialog.field.setText("summer")
        qtbot.keyClick(dialog.field, Qt.Key.Key_Return)
    assert "summer" in indexed.store.tags_of_files([beach])[beach]
    qtbot.waitUntil(lambda: window.tag_dialog is None, timeout=5_000)  # closed and forgotten


# -- 6. a search by a picture stays on pictures ------------------------------------------------------------


@pytest.fixture
def photo_stored_after_a_passage(indexed, corpus):
    """The forest photo's picture stored after a passage of text, as a video transcribed before CLIP came."""
    from engine.store import NewItem

    store = indexed.store
    row = store.get_file(str(corpus.forest))
    (picture,) = store.item_ids_of(str(corpus.forest))
    vector = store.vectors([picture], space="clip")
    text = "The boiler service is due in October. Call the plumber about the boiler pressure."
    passage = indexed.text_model.encode_passages([text])
    with store.transaction():
        store.replace_items(row.id, [NewItem("ocr", text=text, char_start=0, char_end=len(text))], {"text": passage})
        store.replace_items(row.id, [NewItem("image")], {"clip": vector}, modalities=["image"])
    return corpus.forest


def test_more_like_this_on_a_photo_finds_only_photos(qtbot, indexed, corpus, photo_stored_after_a_passage):
    w = MainWindow(library=indexed)
    w.results.set_threshold(None)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.library_ready, timeout=10_000):
        w.show()
    try:
        search(qtbot, w, "forest")
        w.results.select_paths([str(corpus.forest)])
        count = rerun(qtbot, w, w.more_like_action.trigger)
        assert count == 2
        assert w.results.passage_paths() == []  # no document or recording is "like" a photo
        assert set(w.results.photo_paths()) == {str(corpus.beach), str(corpus.city)}
    finally:
        w.close()


def test_a_picture_dropped_as_the_query_finds_only_photos(qtbot, window, corpus):
    window.search_field.setText("boiler")  # words beside a picture narrow it; they add no documents
    with qtbot.waitSignal(window.results_shown, timeout=10_000):
        window.search_by_image(str(corpus.city))
    assert window.results.passage_paths() == []
    assert window.results.photo_paths() and window.results.photo_paths()[0] == str(corpus.city)


def test_the_library_is_opening_ends_when_it_cannot_open(qtbot):
    from desktop_app.controller import AppController
    from desktop_app.indexing import FoldersPanel
    from desktop_app.problems import ProblemsWindow

    controller = AppController()
    problems = ProblemsWindow(controller)
    folders = FoldersPanel(controller)
    qtbot.addWidget(problems)
    qtbot.addWidget(folders)
    problems.refresh()
    assert problems.title.text() == "The library is opening…"
    assert folders.note.text() == "The library is opening…"
    controller.library_failed.emit("cannot open the library at /nowhere: disk I/O error")
    assert problems.title.text() == "The library could not be opened"
    assert folders.note.text() == "The library could not be opened: cannot open the library at /nowhere: disk I/O error"


def test_a_queued_retry_s_line_ends_when_the_job_before_it_fails(qtbot, window):
    problems = window.problems_window
    c = window.controller
    problems._retrying, problems._retry_started = ["/photos/a.jpg"], False
    c._queue.append((["/photos/a.jpg"], True))  # still waiting behind the job that failed: it starts next
    c.index_failed.emit("the disk is full")
    assert problems.progress_label.text() == "Retry of 1 file queued: it starts when the running job ends."
    c._queue.clear()  # Cancel emptied the queue: it never starts
    c.index_failed.emit("the disk is full")
    assert problems.progress_label.text() == "The retry did not start: indexing was stopped."
    assert problems._retrying == []
