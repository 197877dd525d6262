"""Browsing the library with no query, and results that grow a page at a time as they are scrolled.

The library here is written straight into the store (a few hundred photos and
some notes over two years, no pixels to read), so that paging has pages to turn.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from PySide6.QtCore import QDate, QPoint, Qt

from desktop_app.browse import PAGE_SIZE
from desktop_app.main_window import MainWindow
from desktop_app.results import HeaderRole, MonthHeader, month_of
from engine.store import NewItem

PHOTOS = 330
BEACH = 62  # photos tagged "beach", named beach_…


def _month_time(n: int) -> float:
    """Photo n: spread over the 18 months from July 2023 to December 2024, a few hours apart."""
    month = n % 18
    year, month = 2023 + (month + 6) // 12, (month + 6) % 12 + 1
    return datetime(year, month, 1 + (n // 18) % 27, 8 + n % 10).timestamp()


@pytest.fixture
def timeline(library, tmp_path):
    store = library.store
    root = tmp_path / "files"
    store.add_root(str(root))
    with store.transaction():
        for n in range(PHOTOS):
            name = f"beach_{n:03}.jpg" if n < BEACH else f"IMG_{n:04}.jpg"
            store.add_file(
                str(root / "photos" / name),
                size=100,
                mtime=1.0,
                content_hash=f"photo{n}",
                kind="image",
                media_time=_month_time(n),
                items=[NewItem("image")],
            )
        for n in range(30):
            store.add_file(
                str(root / "notes" / f"note_{n:02}.txt"),
                size=100,
                mtime=1.0,
                content_hash=f"note{n}",
                kind="document",
                media_time=datetime(2024, 1 + n % 12, 3).timestamp(),
                items=[NewItem("text", text=f"Note number {n} about the shopping list.")],
            )
    ids = [r[0] for r in store._query("SELECT id FROM files WHERE path LIKE '%beach_%'")]
    store.add_tag("beach", ids)
    return library


@pytest.fixture
def window(qtbot, timeline):
    w = MainWindow(library=timeline)
    w.results.set_threshold(None)
    w.resize(1280, 800)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.library_ready, timeout=10_000):
        w.show()
    qtbot.waitUntil(lambda: _photos(w) >= PAGE_SIZE and bool(w.results.months()), timeout=10_000)
    yield w
    w.close()


def _photos(window: MainWindow) -> int:
    return len(window.results.photo_model.results())


def _scroll_to_end(qtbot, view) -> None:
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5_000)
    bar.setValue(bar.maximum())


def test_with_no_query_the_window_browses_photos_by_month_newest_first(qtbot, window):
    results = window.results
    assert results.browsing and not results.showing_empty()
    model = results.photo_model
    # The first page only: the library is not read whole.
    assert _photos(window) == PAGE_SIZE
    shown = model.results()
    assert [month_of(r) for r in shown] == sorted((month_of(r) for r in shown), reverse=True)
    times = [r.media_time for r in shown]
    assert times == sorted(times, reverse=True)
    # Each month starts with its title, which says how many photos it has in all.
    headers = model.headers()
    assert [h.key for h in headers] == sorted({month_of(r) for r in shown}, reverse=True)
    assert headers[0].key == (2024, 12) and headers[0].label == "December 2024  ·  18 photos"
    first = model.data(model.index(0), HeaderRole)
    assert isinstance(first, MonthHeader) and model.result(0) is None
    # A title row spans the grid: the first photo of a month starts a new row below it.
    view = results.photo_view
    title = view.visualRect(model.index(0))
    photo = view.visualRect(model.index(1))
    assert title.width() >= 3 * photo.width() and photo.top() >= title.bottom()
    # The jump list: the years, and the months with their counts.
    top = results.month_list.topLevelItem(0)
    assert top.text(0) == "2024" and top.child(0).text(0) == "December · 18"
    assert results.month_list.topLevelItem(1).text(0) == "2023"
    # Documents come newest first too, in their own section.
    notes = results.passage_model.results()
    assert len(notes) == 30 and notes[0].media_time.startswith("2024-12")


def test_jumping_to_a_month_scrolls_there_loading_what_comes_before(qtbot, window):
    results = window.results
    assert results.photo_model.header_row(2023, 7) < 0  # not loaded yet: the oldest month
    results.jump_to_month(2023, 7)
    qtbot.waitUntil(lambda: results.photo_model.header_row(2023, 7) >= 0, timeout=10_000)
    row = results.photo_model.header_row(2023, 7)
    view = results.photo_view

    def at_top() -> bool:
        index = view.indexAt(QPoint(10, 10))
        return index.isValid() and index.row() == row

    qtbot.waitUntil(at_top, timeout=5_000)
    # A month already loaded: clicking it in the list scrolls straight to it.
    year = results.month_list.topLevelItem(0)
    november = year.child(1)
    assert november.text(0).startswith("November")
    with qtbot.waitSignal(results.month_shown, timeout=5_000) as shown:
        results.month_list.itemClicked.emit(november, 0)
    assert shown.args == [2024, 11]
    assert view.indexAt(QPoint(10, 10)).row() == results.photo_model.header_row(2024, 11)


def test_a_far_jump_loads_a_page_at_a_time(qtbot, window, monkeypatch):
    # Every photo newer than the month comes first, but never in one request: a jump far back in
    # a large library goes a page at a time, the window answering between them.
    results, browser = window.results, window.browser
    browser.page_size, browser.jump_page = 40, 60
    asked: list[int] = []
    browse = window.controller.browse

    def counting(filters, cursor, limit, done, failed):
        asked.append(limit)
        return browse(filters, cursor, limit, done, failed)

    monkeypatch.setattr(window.controller, "browse", counting)
    assert results.photo_model.header_row(2023, 7) < 0
    results.jump_to_month(2023, 7)
    qtbot.waitUntil(lambda: results.photo_model.header_row(2023, 7) >= 0, timeout=20_000)
    assert len(asked) >= 2 and max(asked) <= 60
    qtbot.waitUntil(
        lambda: results.photo_view.indexAt(QPoint(10, 10)).row() == results.photo_model.header_row(2023, 7),
        timeout=5_000,
    )


def test_scrolling_to_the_end_fetches_the_next_page_until_all_are_there(qtbot, window):
    results = window.results
    with qtbot.waitSignal(window.browse_page_shown, timeout=10_000) as page:
        _scroll_to_end(qtbot, results.photo_view)
    assert page.args == ["photos", PHOTOS - PAGE_SIZE]
    qtbot.waitUntil(lambda: _photos(window) == PHOTOS, timeout=5_000)
    paths = [r.path for r in results.photo_model.results()]
    assert len(set(paths)) == PHOTOS  # no file twice
    assert not results.photo_model.canFetchMore()
    # Each month has one title, even where a page ended inside it.
    keys = [h.key for h in results.photo_model.headers()]
    assert len(keys) == len(set(keys)) == 18


def test_filters_apply_to_browsing(qtbot, window):
    panel = window.filter_panel
    with qtbot.waitSignal(window.browse_page_shown, timeout=10_000):
        panel.set_tag_checked("beach")
    qtbot.waitUntil(lambda: _photos(window) == BEACH and bool(window.results.months()), timeout=10_000)
    assert window.results.browsing
    assert all("beach" in r.tags for r in window.results.photo_model.results())
    assert window.results.passage_model.results() == []  # no note has the tag
    assert sum(n for _, _, n in window.results.months()) == BEACH
    panel.set_tag_checked("beach", False)
    with qtbot.waitSignal(window.browse_page_shown, timeout=10_000):
        panel.set_date_range(QDate(2024, 3, 1), QDate(2024, 3, 31))
    qtbot.waitUntil(lambda: 0 < _photos(window) < PAGE_SIZE, timeout=10_000)
    assert {month_of(r) for r in window.results.photo_model.results()} == {(2024, 3)}
    qtbot.waitUntil(lambda: len(window.results.passage_model.results()) == 3, timeout=10_000)
    with qtbot.waitSignal(window.browse_page_shown, timeout=10_000):
        panel.set_kinds(["document"])
    qtbot.waitUntil(lambda: _photos(window) == 0, timeout=10_000)
    assert not window.results.photo_section.isVisibleTo(window.results)


def test_a_search_with_a_tag_filter_shows_every_match_after_scrolling(qtbot, window):
    from tests.gui.test_main_window import rerun, search

    window.search_field.setText("beach")
    count = rerun(qtbot, window, lambda: window.filter_panel.set_tag_checked("beach"))
    assert not window.results.browsing
    assert count == window.result_page == 60  # the first page
    assert window.results.photo_model.canFetchMore()
    first = window.results.photo_paths()
    count = rerun(qtbot, window, lambda: _scroll_to_end(qtbot, window.results.photo_view))
    assert count == BEACH
    paths = window.results.photo_paths()
    assert paths[:60] == first  # what was shown stays in its place
    assert len(set(paths)) == BEACH and all("beach_" in p for p in paths)
    assert not window.results.photo_model.canFetchMore()
    # A new search starts again from one page.
    assert search(qtbot, window, "beach_001") >= 1


def test_typing_searches_and_clearing_the_field_browses_again(qtbot, window):
    from tests.gui.test_main_window import search

    search(qtbot, window, "shopping")
    assert not window.results.browsing
    assert not window.results.month_list.isVisible()
    assert window.results.relevance_slider.isVisible()
    with qtbot.waitSignal(window.browse_page_shown, timeout=10_000):
        window.search_field.clear()
    assert window.results.browsing and window.results.month_list.isVisible()
    assert not window.results.relevance_slider.isVisible()
    qtbot.waitUntil(lambda: _photos(window) == PAGE_SIZE, timeout=10_000)
    # Esc does the same.
    search(qtbot, window, "shopping")
    with qtbot.waitSignal(window.browse_page_shown, timeout=10_000):
        qtbot.keyClick(window.search_field, Qt.Key.Key_Escape)
    assert window.results.browsing


def test_the_arrow_keys_move_between_photos_over_the_month_titles(qtbot, window):
    results = window.results
    view, model = results.photo_view, results.photo_model
    window.search_field.setFocus()
    qtbot.keyClick(window.search_field, Qt.Key.Key_Down)  # to the results: the first photo, not a title
    assert view.hasFocus() and model.result(view.currentIndex().row()) is not None
    passed = set()
    for _ in range(12):
        qtbot.keyClick(view, Qt.Key.Key_Down)
        current = model.result(view.currentIndex().row())
        assert current is not None
        assert results.current_result() is current
        passed.add(month_of(current))
    assert len(passed) > 1  # the moves crossed at least one month's title
