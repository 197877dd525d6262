"""Browsing the library in time order: keyset pages over the store, filters in SQL, month counts."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from engine.errors import UsageError
from engine.query import Filters, TagsMode
from engine.search import browse
from engine.store import LibraryStore, NewItem
from tests.postgres import STORES, store_of_kind


def _file(store, path, kind, media_time, text=None):
    modality = "image" if kind == "image" else "text"
    return store.add_file(
        path,
        size=10,
        mtime=1.0,
        content_hash=path,
        kind=kind,
        media_time=media_time,
        items=[NewItem(modality, text=text if modality == "text" else None)],
    )


def _fill(s):
    """60 photos and 20 notes over two years, some sharing a time, three with no time, a few tagged."""
    rng = random.Random(7)
    with s.transaction():
        for n in range(60):
            # Every fifth photo shares its time with the one before: ties are ordered by id.
            when = datetime(2022 + n % 2, 1 + n % 12, 1 + rng.randrange(27), 12).timestamp()
            _file(s, f"/lib/photos/{n % 3}/p{n:03}.jpg", "image", None if n in (5, 17, 40) else when)
        for n in range(20):
            _file(s, f"/lib/notes/n{n:02}.txt", "document", datetime(2023, 1 + n % 12, 2).timestamp(), f"note {n}")
    s.add_tag("beach", [r[0] for r in s._query("SELECT id FROM files WHERE path LIKE '%/p00%'")])
    return s


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    """The browsing library (see _fill) on each store."""
    s = _fill(store_of_kind(request, request.param, tmp_path))
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path):
    """The browsing library in SQLite, whose query plans a test reads."""
    s = _fill(LibraryStore(tmp_path / "lib.sqlite3"))
    yield s
    s.close()


def _expected(store, where="TRUE"):
    rows = store._query(f"SELECT f.id, f.media_time FROM files f WHERE {where}")
    timed = sorted((r for r in rows if r[1] is not None), key=lambda r: (-r[1], -r[0]))
    untimed = sorted((r for r in rows if r[1] is None), key=lambda r: -r[0])
    return [r[0] for r in timed + untimed]


def _all_pages(store, filters, limit):
    seen, after, pages = [], None, 0
    while True:
        rows = store.browse_files(filters, after, limit)
        pages += 1
        seen += [file_id for file_id, _ in rows]
        if len(rows) < limit:
            return seen, pages
        after = (rows[-1][1], rows[-1][0])


@pytest.mark.parametrize("limit", [1, 7, 17, 80, 500])
def test_pages_hold_every_file_once_newest_first_untimed_last(store, limit):
    seen, pages = _all_pages(store, Filters(), limit)
    assert seen == _expected(store)
    assert len(seen) == len(set(seen)) == 80
    assert pages == 80 // limit + 1


def test_ties_in_time_are_ordered_by_id_across_a_page_boundary(tmp_path):
    with LibraryStore(tmp_path / "t.sqlite3") as s:
        with s.transaction():
            ids = [_file(s, f"/x/{n}.jpg", "image", 1_700_000_000.0) for n in range(5)]
        first = s.browse_files(Filters(), None, 2)
        second = s.browse_files(Filters(), (first[-1][1], first[-1][0]), 2)
        third = s.browse_files(Filters(), (second[-1][1], second[-1][0]), 2)
        assert [r[0] for r in first + second + third] == sorted(ids, reverse=True)


def test_filters_apply_to_browsing(store):
    photos, _ = _all_pages(store, Filters(kinds=("image",)), 25)
    assert photos == _expected(store, "kind = 'image'")
    folder, _ = _all_pages(store, Filters(folder="/lib/photos/1"), 10)
    assert folder == _expected(store, "path LIKE '/lib/photos/1/%'") and len(folder) == 20
    after, before = datetime(2023, 1, 1).timestamp(), datetime(2023, 7, 1).timestamp()
    dated, _ = _all_pages(store, Filters(after=after, before=before), 10)
    assert dated == _expected(store, f"media_time >= {after} AND media_time < {before}")
    tagged, _ = _all_pages(store, Filters(tags=("beach",), tags_mode=TagsMode.ALL), 3)
    assert tagged == _expected(store, "path LIKE '%/p00%'") and len(tagged) == 10


def test_a_page_starts_from_the_index_not_an_offset(sqlite_store):
    store = sqlite_store
    where, params = store._filter_sql(Filters(), in_time_order=True)
    plan = store._query(
        f"EXPLAIN QUERY PLAN SELECT f.id, f.media_time FROM files f WHERE {where} AND f.media_time IS NOT NULL "
        "AND (f.media_time, f.id) < (?, ?) ORDER BY f.media_time DESC, f.id DESC LIMIT ?",
        [*params, 1e9, 10, 200],
    )
    details = " ".join(str(row[-1]) for row in plan)
    assert "files_time" in details and "TEMP B-TREE" not in details, details
    where, params = store._filter_sql(Filters(kinds=("image",)), in_time_order=True)
    plan = store._query(
        f"EXPLAIN QUERY PLAN SELECT f.id FROM files f WHERE {where} AND f.media_time IS NOT NULL "
        "ORDER BY f.media_time DESC, f.id DESC LIMIT 200",
        params,
    )
    details = " ".join(str(row[-1]) for row in plan)
    assert "files_kind_time" in details and "TEMP B-TREE" not in details, details


def test_months_count_the_files_of_each_month_newest_first(store):
    months = store.browse_months(Filters(kinds=("image",)))
    assert months == sorted(months, reverse=True)
    expected: dict[tuple[int, int], int] = {}
    for (t,) in store._query("SELECT media_time FROM files WHERE kind = 'image' AND media_time IS NOT NULL"):
        moment = datetime.fromtimestamp(t)
        expected[(moment.year, moment.month)] = expected.get((moment.year, moment.month), 0) + 1
    assert {(y, m): n for y, m, n in months} == expected
    assert sum(n for _, _, n in months) == 57


def test_browse_gives_results_with_their_first_item_and_where_to_go_on(store):
    page = browse(store, Filters(kinds=("document",)), None, 15)
    assert len(page.results) == 15 and page.next is not None
    assert all(r.kind == "document" and r.snippet and r.snippet.startswith("note") for r in page.results)
    rest = browse(store, Filters(kinds=("document",)), page.next, 15)
    assert len(rest.results) == 5 and rest.next is None
    paths = [r.path for r in page.results + rest.results]
    assert len(set(paths)) == 20
    times = [r.media_time or "" for r in page.results + rest.results]
    assert times == sorted(times, reverse=True)
    tagged = browse(store, Filters(tags=("beach",)), None, 50).results
    assert all(r.tags == ["beach"] for r in tagged) and len(tagged) == 10
    with pytest.raises(UsageError):
        browse(store, Filters(), None, 0)
