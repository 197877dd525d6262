"""The filter sidebar on its own, and each filter narrowing a real search in the window."""

from __future__ import annotations

from datetime import datetime

import pytest
from PySide6.QtCore import QDate, Qt

from desktop_app.filters import FilterPanel
from engine.store import Filters
from tests.gui import test_main_window as shared
from tests.gui.test_main_window import rerun, search

# The window fixtures shared with test_main_window (pytest finds fixtures by name in the module).
corpus = shared.corpus
indexed = shared.indexed
window = shared.window


@pytest.fixture
def panel(qtbot):
    widget = FilterPanel()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def changes(panel: FilterPanel) -> list[int]:
    seen: list[int] = []
    panel.changed.connect(lambda: seen.append(1))
    return seen


# -- the panel alone ------------------------------------------------------------------------------


def test_nothing_set_means_everything(panel):
    assert panel.filters() == Filters()
    assert panel.filters().empty


def test_kinds(panel):
    seen = changes(panel)
    assert [box.text() for box in panel.kind_boxes.values()] == ["Photos", "Documents", "Recordings", "Videos"]
    panel.kind_boxes["image"].setChecked(False)
    assert panel.filters().kinds == ("document", "audio", "video")
    assert len(seen) == 1
    panel.kind_boxes["audio"].setChecked(False)
    panel.kind_boxes["video"].setChecked(False)
    assert panel.filters().kinds == ("document",)
    # The last kind left cannot be unchecked: a search for nothing is never useful.
    assert not panel.kind_boxes["document"].isEnabled()
    panel.set_kinds(())
    assert panel.filters().kinds == ()
    assert all(box.isEnabled() for box in panel.kind_boxes.values())


def test_tags_merge_sources_and_keep_their_check(panel):
    panel.set_tags([("beach", "auto", 4), ("holiday", "user", 3), ("beach", "user", 1), ("drinks", "auto", 1)])
    assert panel.tag_names() == ["beach", "holiday", "drinks"]
    assert panel.tag_counts() == {"beach": 5, "holiday": 3, "drinks": 1}
    items = {
        panel.tag_list.item(r).data(Qt.ItemDataRole.UserRole + 1): panel.tag_list.item(r)
        for r in range(panel.tag_list.count())
    }
    assert items["holiday"].text() == "holiday  (3)"
    assert items["drinks"].font().italic() and not items["holiday"].font().italic()
    assert not items["beach"].font().italic()  # a name the person used is theirs
    assert "by Shoebox" in items["drinks"].toolTip()
    assert not panel.auto_legend.isHidden()

    seen = changes(panel)
    panel.set_tag_checked("holiday")
    assert panel.filters().tags == ("holiday",) and len(seen) == 1
    panel.set_tags([("holiday", "user", 4), ("beach", "auto", 4)])  # a refresh after tagging
    assert panel.checked_tags() == ["holiday"] and len(seen) == 1
    panel.set_tags([("beach", "auto", 4)])  # holiday is gone: the filter did change
    assert panel.checked_tags() == [] and len(seen) == 2


def test_tag_mode(panel):
    panel.set_tags([("a", "user", 1), ("b", "user", 1)])
    panel.set_tag_checked("a")
    panel.set_tag_checked("b")
    assert panel.filters().tags_mode == "any"
    seen = changes(panel)
    panel.tags_all.setChecked(True)
    assert panel.filters().tags_mode == "all" and len(seen) == 1


def test_no_tags_says_how_to_add_them(panel):
    panel.set_tags([])
    assert panel.tag_list.isHidden() and not panel.no_tags_label.isHidden()


def test_date_range_is_inclusive_of_both_days(panel):
    seen = changes(panel)
    panel.set_date_range(QDate(2023, 1, 1), QDate(2023, 12, 31))
    filters = panel.filters()
    assert filters.after == datetime(2023, 1, 1).timestamp()
    assert filters.before == datetime(2024, 1, 1).timestamp()
    assert len(seen) == 1
    panel.to_check.setChecked(False)
    assert panel.filters().before is None and not panel.date_to.isEnabled()
    panel.any_time_button.click()
    assert panel.filters().after is None and panel.filters().before is None
    assert len(seen) == 3


def test_editing_a_date_applies_it(panel):
    panel.from_check.setChecked(True)
    seen = changes(panel)
    panel.date_from.setDate(QDate(2020, 2, 3))
    assert panel.filters().after == datetime(2020, 2, 3).timestamp()
    assert len(seen) == 1


def test_folder(panel, tmp_path):
    panel.set_roots([str(tmp_path / "b"), str(tmp_path / "a")])
    assert panel.folder_combo.count() == 4  # All folders, a, b, Choose…
    assert panel.folder_combo.itemData(1) == str(tmp_path / "a")
    seen = changes(panel)
    panel.folder_combo.setCurrentIndex(2)
    panel.folder_combo.activated.emit(2)
    assert panel.filters().folder == str(tmp_path / "b")
    panel.set_folder(str(tmp_path / "elsewhere"))  # chosen in the folder dialog
    assert panel.filters().folder == str(tmp_path / "elsewhere")
    assert panel.folder_combo.currentData() == str(tmp_path / "elsewhere")
    panel.set_roots([str(tmp_path / "a")])  # a refresh keeps the chosen folder
    assert panel.folder_combo.currentData() == str(tmp_path / "elsewhere")
    assert len(seen) == 2
    panel.reset()
    assert panel.filters() == Filters() and len(seen) == 3


def test_understood_dates_become_removable_chips(qtbot, panel):
    phrase = {
        "text": "from 2023",
        "start": 6,
        "end": 15,
        "after": "2023-01-01T00:00:00",
        "before": "2024-01-01T00:00:00",
        "label": "2023",
    }
    panel.set_understood_dates([phrase])
    assert [chip.text() for chip in panel.date_chips] == ["2023"]
    assert not panel.understood_box.isHidden()
    assert "2023-01-01" in panel.date_chips[0].toolTip() and "2023-12-31" in panel.date_chips[0].toolTip()
    with qtbot.waitSignal(panel.date_phrase_removed) as blocker:
        panel.date_chips[0].close_button.click()
    assert blocker.args[0] == phrase
    panel.set_understood_dates([])
    assert panel.understood_box.isHidden()


# -- each filter narrows a real search ------------------------------------------------------------


def test_kind_filter(qtbot, window, corpus):
    assert search(qtbot, window, "notes") == 5
    rerun(qtbot, window, lambda: window.filter_panel.kind_boxes["image"].setChecked(False))
    assert set(window.results.shown_paths()) == {str(corpus.boiler), str(corpus.garden)}
    rerun(qtbot, window, lambda: window.filter_panel.set_kinds(["image"]))
    assert set(window.results.shown_paths()) == {str(corpus.beach), str(corpus.forest), str(corpus.city)}


def test_tag_filter_any_and_all(qtbot, window, corpus, indexed):
    store = indexed.store
    store.add_tag("trip", [store.get_file(str(corpus.beach)).id, store.get_file(str(corpus.boiler)).id])
    store.add_tag("family", [store.get_file(str(corpus.beach)).id, store.get_file(str(corpus.forest)).id])
    with qtbot.waitSignal(window.library_info_loaded, timeout=10_000):
        window.controller.tags_changed.emit()
        window.controller.library_changed.emit()
    assert {"trip", "family"} <= set(window.filter_panel.tag_names())
    search(qtbot, window, "notes")
    rerun(qtbot, window, lambda: window.filter_panel.set_tag_checked("trip"))
    assert set(window.results.shown_paths()) == {str(corpus.beach), str(corpus.boiler)}
    rerun(qtbot, window, lambda: window.filter_panel.set_tag_checked("family"))
    assert set(window.results.shown_paths()) == {str(corpus.beach), str(corpus.boiler), str(corpus.forest)}
    rerun(qtbot, window, lambda: window.filter_panel.tags_all.setChecked(True))
    assert window.results.shown_paths() == [str(corpus.beach)]


def test_date_filter(qtbot, window, corpus):
    search(qtbot, window, "notes")
    rerun(qtbot, window, lambda: window.filter_panel.set_date_range(QDate(2023, 1, 1), QDate(2023, 12, 31)))
    assert set(window.results.shown_paths()) == {str(corpus.forest), str(corpus.city), str(corpus.boiler)}
    rerun(qtbot, window, lambda: window.filter_panel.set_date_range(None, QDate(2022, 12, 31)))
    assert set(window.results.shown_paths()) == {str(corpus.beach), str(corpus.garden)}


def test_folder_filter(qtbot, window, corpus):
    roots = [window.filter_panel.folder_combo.itemData(i) for i in range(window.filter_panel.folder_combo.count())]
    assert str(corpus.root) in roots  # the library's folders are offered
    search(qtbot, window, "notes")
    rerun(qtbot, window, lambda: window.filter_panel.set_folder(str(corpus.root / "photos" / "2023")))
    assert set(window.results.shown_paths()) == {str(corpus.forest), str(corpus.city)}


def test_filters_alone_browse_the_library(qtbot, window, corpus):
    with qtbot.waitSignal(window.browse_page_shown, timeout=10_000):
        window.filter_panel.set_kinds(["document"])
    assert window.results.browsing
    qtbot.waitUntil(lambda: len(window.results.shown_paths()) == 2, timeout=5_000)
    assert window.results.shown_paths() == [str(corpus.boiler), str(corpus.garden)]  # newest first
    window.filter_panel.reset()
    qtbot.waitUntil(lambda: len(window.results.shown_paths()) == 5, timeout=5_000)
    assert window.results.browsing


def test_a_date_in_the_query_shows_a_chip_and_removing_it_widens_the_search(qtbot, window, corpus):
    search(qtbot, window, "notes from 2023")
    assert [chip.text() for chip in window.filter_panel.date_chips] == ["2023"]
    assert set(window.results.shown_paths()) == {str(corpus.forest), str(corpus.city), str(corpus.boiler)}
    with qtbot.waitSignal(window.results_shown, timeout=10_000) as blocker:
        window.filter_panel.date_chips[0].close_button.click()
    assert window.search_field.text() == "notes"
    assert blocker.args[0] == 5
    assert window.filter_panel.date_chips == []
    assert window.filter_panel.understood_box.isHidden()


def test_the_folder_box_names_each_folder_by_its_own_name(panel, tmp_path):
    photos = tmp_path / "2023" / "Photos"
    other = tmp_path / "2024" / "Photos"
    music = tmp_path / "a long way down" / "in nested folders" / "Music"
    panel.set_roots([str(photos), str(music)])
    labels = [panel.folder_combo.itemText(i) for i in range(panel.folder_combo.count())]
    assert labels == ["All folders", "Photos", "Music", "Choose a folder…"]
    assert panel.folder_combo.itemData(2, Qt.ItemDataRole.ToolTipRole) == str(music)
    # Two folders of one name are told apart by their parents.
    panel.set_folder(str(other))
    labels = [panel.folder_combo.itemText(i) for i in range(1, panel.folder_combo.count() - 1)]
    assert sorted(labels) == ["Music", "Photos — 2023", "Photos — 2024"]
    assert panel.folder_combo.currentText() == "Photos — 2024"
    assert panel.folder_combo.toolTip() == str(other)
    panel.reset()
    assert panel.folder_combo.currentText() == "All folders"
    assert panel.folder_combo.toolTip() == "Search every folder of the library"
