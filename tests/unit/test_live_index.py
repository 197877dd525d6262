"""The live HNSW index: built from the store, kept in step with it, saved and reloaded, filtered by the catalog."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import IndexCorruptError
from engine.index import HnswIndex
from engine.index.live import LINK_INLINE, LiveIndex
from engine.store import Filters, LibraryStore, NewItem

DIM = 32
KINDS = ("image", "document", "audio")
SPACE = "text"  # the items are passages; the clip space works the same way


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _add_files(store: LibraryStore, root: Path, rng: np.random.Generator, start: int, n: int) -> dict[str, np.ndarray]:
    """n files of two items each, kinds and times cycling; returns path -> its vectors."""
    added = {}
    with store.transaction():
        for f in range(start, start + n):
            path = str(root / f"folder{f % 3}" / f"file{f}.bin")
            vecs = _unit(rng, 2)
            store.add_file(
                path,
                size=1,
                mtime=1.0,
                content_hash=f"h{f}",
                kind=KINDS[f % 3],
                media_time=1_600_000_000.0 + 86400.0 * (f % 100),
                items=[NewItem("text", text=f"file {f} a"), NewItem("text", text=f"file {f} b")],
                vectors=vecs,
            )
            added[path] = vecs
    return added


@pytest.fixture
def store(tmp_path):
    store = LibraryStore(tmp_path / "lib.sqlite3")
    store.ensure_model("synthetic", "seed", DIM, space=SPACE)
    yield store
    store.close()


def _exact(store: LibraryStore, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[int]:
    ids = np.concatenate([i for i, _ in store.iter_vectors(space=SPACE)]) if allowed is None else allowed
    vecs = store.vectors(ids, space=SPACE)
    sims = vecs @ query
    return [int(ids[i]) for i in np.argsort(-sims)[:k]]


def _live(store: LibraryStore, tmp_path: Path, build: str = "now") -> LiveIndex:
    live = LiveIndex(store, tmp_path / "vectors.hnsw", min_items=100, ef_search=64, space=SPACE)
    live.open(build=build)
    return live


def test_built_index_agrees_with_exact_search(store, tmp_path):
    rng = np.random.default_rng(1)
    _add_files(store, tmp_path, rng, 0, 600)
    live = _live(store, tmp_path)
    assert live.state == "ready" and live.index is not None and len(live.index) == 1200
    found = 0
    for q in _unit(rng, 30):
        hits, plan = live.search(q, 10)
        assert plan == "graph"
        found += len({h[0] for h in hits} & set(_exact(store, q, 10)))
    assert found / 300 >= 0.95


@pytest.mark.parametrize(
    "filters",
    [
        Filters(kinds=("image",)),
        Filters(kinds=("document", "audio"), after=1_600_000_000.0 + 86400.0 * 50),
        Filters(before=1_600_000_000.0 + 86400.0 * 3),
        Filters(tags=("keep",)),
        Filters(folder="FOLDER1"),
    ],
)
def test_filtered_search_returns_k_passing_items_like_sql_says(store, tmp_path, filters):
    rng = np.random.default_rng(2)
    _add_files(store, tmp_path, rng, 0, 600)
    store.add_tag("keep", store.file_ids_under(str(tmp_path / "folder2"))[:7])
    if filters.folder:
        filters = Filters(folder=str(tmp_path / "folder1"))
    live = _live(store, tmp_path)
    allowed = live.allowed(filters)
    assert allowed is not None
    assert np.array_equal(allowed, store.allowed_item_ids(filters))  # the catalog agrees with SQL
    assert allowed.size > 0
    k = min(10, allowed.size)
    found = 0
    for q in _unit(rng, 10):
        hits, _ = live.search(q, k, allowed)
        ids = [h[0] for h in hits]
        assert len(ids) == k and set(ids) <= set(allowed.tolist())
        found += len(set(ids) & set(_exact(store, q, k, allowed)))
    assert found / (10 * k) >= 0.95


def test_new_items_are_found_at_once_and_removed_ones_never(store, tmp_path):
    rng = np.random.default_rng(3)
    _add_files(store, tmp_path, rng, 0, 300)
    live = _live(store, tmp_path)
    new = _add_files(store, tmp_path, rng, 300, 5)
    assert live.sync() == 10
    for path, vecs in new.items():
        ids = store.item_ids_of(path)
        hits, _ = live.search(vecs[0], 1)
        assert hits[0][0] == ids[0]
    gone = next(iter(new))
    gone_ids = set(store.item_ids_of(gone))
    with store.transaction():
        store.remove_file(store.get_file(gone).id)
    live.sync()
    hits, _ = live.search(new[gone][0], 50)
    assert not gone_ids & {h[0] for h in hits}
    assert live.index is not None and len(live.index) == 610 - 2


def test_a_large_batch_is_searched_exactly_until_linked_in_the_background(store, tmp_path):
    rng = np.random.default_rng(4)
    _add_files(store, tmp_path, rng, 0, 200)
    live = _live(store, tmp_path)
    new = _add_files(store, tmp_path, rng, 200, LINK_INLINE)  # 2 * LINK_INLINE items: linked in a thread
    live.sync()
    for path, vecs in list(new.items())[:20]:  # found whether linked yet or not
        hits, _ = live.search(vecs[1], 1)
        assert hits[0][0] == store.item_ids_of(path)[1]
    live.wait()
    assert live.describe()["pending"] == 0 and live.index is not None and len(live.index) == 400 + 2 * LINK_INLINE


def test_replaced_vectors_are_found_by_their_new_value(store, tmp_path):
    rng = np.random.default_rng(5)
    old = _add_files(store, tmp_path, rng, 0, 150)
    live = _live(store, tmp_path)
    path = next(iter(old))
    fresh = _unit(rng, 2)
    with store.transaction():  # the file changed: new items (maybe reusing ids) and vectors
        store.add_file(
            path,
            size=2,
            mtime=2.0,
            content_hash="new",
            kind="document",
            media_time=None,
            items=[NewItem("text", text="new a"), NewItem("text", text="new b")],
            vectors=fresh,
        )
    live.sync()
    ids = store.item_ids_of(path)
    hits, _ = live.search(fresh[0], 1)
    assert hits == [(ids[0], pytest.approx(1.0, abs=1e-4))]
    hits, _ = live.search(old[path][0], 5)
    stale = [h for h in hits if h[0] in ids and h[1] > 0.999]
    assert not stale


def test_saved_index_is_loaded_and_catches_up(store, tmp_path):
    rng = np.random.default_rng(6)
    _add_files(store, tmp_path, rng, 0, 300)
    live = _live(store, tmp_path)
    queries = _unit(rng, 5)
    before = [live.search(q, 10)[0] for q in queries]
    assert live.save_if_changed()
    assert store.item_changes(0) == []  # the log the file holds was pruned
    new = _add_files(store, tmp_path, rng, 300, 3)

    again = LiveIndex(store, tmp_path / "vectors.hnsw", min_items=100, ef_search=64, space=SPACE)
    again.open(build="never")  # the file is usable: no rebuild needed
    assert again.state == "ready" and again.index is not None and len(again.index) == 606
    path, vecs = next(iter(new.items()))
    assert again.search(vecs[0], 1)[0][0][0] == store.item_ids_of(path)[0]
    for q, old in zip(queries, before, strict=True):
        hits = again.search(q, 10)[0]
        assert [h[0] for h in hits if h[0] < 601] == [h[0] for h in old][: len([h for h in hits if h[0] < 601])]


def test_damaged_or_foreign_index_files_are_rebuilt_never_trusted(store, tmp_path):
    rng = np.random.default_rng(7)
    _add_files(store, tmp_path, rng, 0, 200)
    path = tmp_path / "vectors.hnsw"
    path.write_bytes(b"SHBXHNSW" + b"\0" * 100)
    broken = LiveIndex(store, path, min_items=100, space=SPACE)
    broken.open(build="never")
    assert broken.state == "failed" and broken.error is not None and "not built" in broken.error and not broken.usable
    rebuilt = _live(store, tmp_path)
    assert rebuilt.state == "ready" and rebuilt.index is not None and len(rebuilt.index) == 400

    # A file from another library (its log position is ahead of this one's) is refused.
    rebuilt.save_if_changed()
    other = LibraryStore(tmp_path / "other.sqlite3")
    other.ensure_model("synthetic", "seed", DIM, space=SPACE)
    _add_files(other, tmp_path / "o", rng, 0, 120)
    foreign = LiveIndex(other, path, min_items=100, space=SPACE)
    foreign.open(build="never")
    assert foreign.state == "failed"
    other.close()


def test_a_saved_index_with_damaged_vectors_is_searched_then_rebuilt_in_the_background(store, tmp_path):
    rng = np.random.default_rng(17)
    added = _add_files(store, tmp_path, rng, 0, 200)
    live = _live(store, tmp_path)
    live.save_if_changed()
    path = tmp_path / "vectors.hnsw"
    damaged = bytearray(path.read_bytes())
    damaged[-100] ^= 0x40  # inside the vectors, past the graph's checksum
    path.write_bytes(bytes(damaged))

    oneshot = LiveIndex(store, path, min_items=100, space=SPACE)
    oneshot.open(build="never")  # a one-shot search maps the file and trusts the checked graph
    assert oneshot.state == "ready" and oneshot.index is not None and not oneshot.index.verified
    app = LiveIndex(store, path, min_items=100, space=SPACE)
    app.open(build="background")  # the app checks the vectors in a thread and rebuilds
    deadline = time.monotonic() + 30
    while (app.index is None or not app.index.verified or app.state != "ready") and time.monotonic() < deadline:
        time.sleep(0.05)
        app.wait()
    assert app.state == "ready" and app.index is not None and app.index.verified and len(app.index) == 400
    first_path, vecs = next(iter(added.items()))
    assert app.search(vecs[0], 1)[0][0][0] == store.item_ids_of(first_path)[0]
    # Saving the unchecked copy would launder the damage under a fresh checksum: it is refused.
    oneshot._dirty = True
    with pytest.raises(IndexCorruptError):
        oneshot.save_if_changed()
    assert app.save_if_changed()
    assert HnswIndex.load(path).verified


def test_a_loaded_index_reads_its_catalog_only_when_a_filter_needs_it(store, tmp_path):
    rng = np.random.default_rng(18)
    _add_files(store, tmp_path, rng, 0, 200)
    _live(store, tmp_path).save_if_changed()
    again = LiveIndex(store, tmp_path / "vectors.hnsw", min_items=100, space=SPACE)
    again.open(build="never")
    query = _unit(rng, 1)[0]
    again.search(query, 5)
    assert again._catalog is None  # an unfiltered search did not read it
    new = _add_files(store, tmp_path, rng, 200, 3)  # changes before the catalog is read
    removed = store.get_file(str(tmp_path / "folder0" / "file3.bin"))  # an image
    assert removed is not None
    with store.transaction():
        store.remove_file(removed.id)
    again.sync(link="inline")
    passing = again.allowed(Filters(kinds=("image",)))
    expected = [
        i for row in store.files_under(str(tmp_path)) if row.kind == "image" for i in store.item_ids_of(row.path)
    ]
    assert passing is not None and sorted(passing.tolist()) == sorted(expected)
    new_image = next(p for p in new if p.endswith("file201.bin"))  # 201 % 3 == 0: an image
    assert set(store.item_ids_of(new_image)) <= set(passing.tolist())
    assert len(expected) == 2 * 67  # 67 images of the 200, one removed, one added


def test_an_index_behind_a_pruned_log_reloads(store, tmp_path):
    rng = np.random.default_rng(8)
    _add_files(store, tmp_path, rng, 0, 200)
    first = _live(store, tmp_path)
    second = _live(store, tmp_path)
    new = _add_files(store, tmp_path, rng, 200, 4)
    second.sync()
    second.save_if_changed()  # prunes changes ``first`` has not seen
    first.sync(link="inline")
    assert first.state == "ready" and first.index is not None and len(first.index) == 408
    path, vecs = next(iter(new.items()))
    assert first.search(vecs[0], 1)[0][0][0] == store.item_ids_of(path)[0]


def test_small_libraries_have_no_graph_and_are_searched_exactly(store, tmp_path):
    rng = np.random.default_rng(9)
    added = _add_files(store, tmp_path, rng, 0, 20)
    live = _live(store, tmp_path)
    assert live.state == "small" and live.index is None and live.usable
    query = next(iter(added.values()))[0]
    hits, plan = live.search(query, 5)
    assert plan == "matrix" and [i for i, _ in hits] == _exact(store, query, 5)
    passing = live.allowed(Filters(kinds=("audio",)))
    hits, _ = live.search(query, 5, passing)
    assert [i for i, _ in hits] == _exact(store, query, 5, passing)
    ids = [i for i, _ in hits]
    np.testing.assert_allclose(live.vectors(ids), store.vectors(ids, space=SPACE))
    _add_files(store, tmp_path, rng, 20, 10)  # still small: the matrix follows
    live.sync()
    assert live.state == "small" and live.catalog is not None and len(live.catalog) == 60
    _add_files(store, tmp_path, rng, 30, 30)  # now past min_items
    live.sync(link="inline")
    assert live.state == "ready" and live.index is not None and len(live.index) == 120
