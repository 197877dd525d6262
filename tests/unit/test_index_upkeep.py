"""Index upkeep: deleted nodes are compacted away in the background, searches meanwhile stay right, files stay small."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import engine.index.live as live_module
from engine.index.hnsw import HnswIndex
from engine.index.live import LiveIndex
from engine.store import LibraryStore, NewItem
from tests.helpers import make_photo
from tests.unit.test_live_index import SPACE, _add_files, _exact, _unit
from tests.unit.test_live_index import store as store  # the same synthetic store fixture


def _live(store: LibraryStore, tmp_path: Path) -> LiveIndex:
    live = LiveIndex(store, tmp_path / "vectors.hnsw", min_items=100, ef_search=64, space=SPACE)
    live.open(build="now")
    return live


def _replace_files(store: LibraryStore, root: Path, rng: np.random.Generator, files: range) -> dict[str, np.ndarray]:
    """The files changed: new items and vectors for each (their old items are deleted)."""
    changed = {}
    with store.transaction():
        for f in files:
            path = str(root / f"folder{f % 3}" / f"file{f}.bin")
            vecs = _unit(rng, 2)
            store.add_file(
                path,
                size=2,
                mtime=float(rng.integers(2, 10**9)),
                content_hash=f"h{f}-{rng.integers(10**9)}",
                kind="document",
                media_time=None,
                items=[NewItem("text", text=f"file {f} a"), NewItem("text", text=f"file {f} b")],
                vectors=vecs,
            )
            changed[path] = vecs
    return changed


def _recall(live: LiveIndex, store: LibraryStore, queries: np.ndarray, k: int = 10) -> float:
    found = 0
    for q in queries:
        hits, _ = live.search(q, k)
        found += len({h[0] for h in hits} & set(_exact(store, q, k)))
    return found / (k * len(queries))


def _stored_ids(store: LibraryStore) -> set[int]:
    return {int(i) for ids, _ in store.iter_vectors(space=SPACE) for i in ids}


class Hold:
    """A compaction hook that stops the compaction at ``stage`` (once) until released."""

    def __init__(self, stage: str, until: threading.Event | None = None):
        self.stage = stage
        self.reached = threading.Event()
        self.release = until or threading.Event()
        self.done = False

    def __call__(self, stage: str) -> None:
        if stage == self.stage and not self.done:
            self.done = True
            self.reached.set()
            assert self.release.wait(60), "the test never released the compaction"


def test_dead_nodes_past_the_fraction_trigger_a_background_compaction(store, tmp_path):
    rng = np.random.default_rng(11)
    _add_files(store, tmp_path, rng, 0, 300)
    live = _live(store, tmp_path)
    _replace_files(store, tmp_path, rng, range(50))  # 100 dead of 700 nodes: 14 %
    live.sync(link="inline")
    live.wait_compaction()
    state = live.describe()
    assert (state["live"], state["dead"], state["compacting"]) == (600, 100, False)
    assert not live.needs_compaction()

    _replace_files(store, tmp_path, rng, range(50, 80))  # 160 of 760: past 20 %
    live.sync(link="inline")
    live.wait_compaction()
    state = live.describe()
    assert (state["live"], state["dead"]) == (600, 0)
    assert live.index is not None and set(live.index.ids().tolist()) == _stored_ids(store)
    assert _recall(live, store, _unit(rng, 20)) >= 0.95
    assert live.save_if_changed()  # the compacted graph changed the file
    assert HnswIndex.saved_node_counts(live.path) == (600, 0)
    live.close()


def test_searches_during_a_compaction_agree_with_exact_search(store, tmp_path):
    rng = np.random.default_rng(12)
    kept = list(_add_files(store, tmp_path, rng, 0, 300).items())[150:160]
    live = _live(store, tmp_path)
    hold = Hold("built")
    live.compaction_hook = hold
    _replace_files(store, tmp_path, rng, range(150))
    live.sync(link="inline")  # 300 dead of 1500: starts compacting
    assert hold.reached.wait(60)
    old = live.index
    assert live.describe()["compacting"]
    queries = _unit(rng, 20)
    assert _recall(live, store, queries) >= 0.95  # served by the old graph meanwhile
    for path, vecs in kept:
        assert live.search(vecs[0], 1)[0][0][0] == store.item_ids_of(path)[0]
    hold.release.set()
    live.wait_compaction()
    assert live.index is not old and live.index is not None and live.index.deleted_count == 0
    assert _recall(live, store, queries) >= 0.95
    live.close()


def test_changes_made_during_a_compaction_are_not_lost(store, tmp_path):
    rng = np.random.default_rng(13)
    _add_files(store, tmp_path, rng, 0, 300)
    live = _live(store, tmp_path)
    hold = Hold("built")
    live.compaction_hook = hold
    _replace_files(store, tmp_path, rng, range(150))
    live.sync(link="inline")
    assert hold.reached.wait(60)
    old = live.index

    # While the new graph waits to replace the old one: files removed, changed and added,
    # a few linked at once and a large batch linked in the background.
    removed = [str(tmp_path / f"folder{f % 3}" / f"file{f}.bin") for f in (0, 7, 200, 201)]
    removed_ids = {i for p in removed for i in store.item_ids_of(p)}
    with store.transaction():
        for path in removed:
            store.remove_file(store.get_file(path).id)
    changed = _replace_files(store, tmp_path, rng, range(250, 260))
    few = _add_files(store, tmp_path, rng, 300, 5)
    live.sync()
    many = _add_files(store, tmp_path, rng, 305, live_module.LINK_INLINE)  # more than the lock's catch-up
    live.sync()
    live.wait()  # linked into the old graph
    assert live.index is old

    hold.release.set()
    live.wait_compaction()
    assert live.index is not old and live.index is not None
    assert set(live.index.ids().tolist()) | set(live._pending[0].tolist()) == _stored_ids(store)
    for gone in removed_ids:
        assert gone not in live.index
    for files in (changed, few, many):
        for path, vecs in list(files.items())[:10]:
            ids = store.item_ids_of(path)
            hits, _ = live.search(vecs[1], 1)
            assert hits == [(ids[1], pytest.approx(1.0, abs=1e-4))]
    assert _recall(live, store, _unit(rng, 20)) >= 0.95
    live.close()


def test_closing_during_a_compaction_stops_it_cleanly(store, tmp_path):
    rng = np.random.default_rng(14)
    _add_files(store, tmp_path, rng, 0, 300)
    live = _live(store, tmp_path)
    hold = Hold("built", until=live._compact_cancel)  # released by close() itself
    live.compaction_hook = hold
    _replace_files(store, tmp_path, rng, range(150))
    live.sync(link="inline")
    assert hold.reached.wait(60)
    old = live.index

    live.close()  # stops the compaction; saving compacts in this thread instead
    assert live._compactor is not None and not live._compactor.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("shoebox-index")]
    assert live.index is not old and live.index is not None and live.index.deleted_count == 0
    assert HnswIndex.saved_node_counts(live.path) == (600, 0)
    again = LiveIndex(store, live.path, min_items=100, ef_search=64, space=SPACE)
    again.open(build="never")
    assert again.state == "ready" and again.index is not None and len(again.index) == 600
    assert _recall(again, store, _unit(rng, 10)) >= 0.95
    again.close()


def test_closing_without_saving_leaves_the_old_graph(store, tmp_path):
    rng = np.random.default_rng(15)
    _add_files(store, tmp_path, rng, 0, 300)
    live = _live(store, tmp_path)
    live.compaction_hook = hold = Hold("copied", until=live._compact_cancel)
    _replace_files(store, tmp_path, rng, range(150))
    live.sync(link="inline")
    assert hold.reached.wait(60)
    old = live.index
    live.close(save=False)
    assert (
        live.index is old and live._compactor is not None and not live._compactor.is_alive() and not live.path.exists()
    )


def test_a_failed_compaction_is_logged_and_the_old_graph_keeps_working(store, tmp_path, caplog):
    rng = np.random.default_rng(16)
    _add_files(store, tmp_path, rng, 0, 300)
    live = _live(store, tmp_path)

    def fail(stage: str) -> None:
        if stage == "built":
            raise MemoryError("no room for a second graph")

    live.compaction_hook = fail
    _replace_files(store, tmp_path, rng, range(150))
    old = live.index  # sync changes it in place
    with caplog.at_level(logging.ERROR, logger="engine.index.live"):
        live.sync(link="inline")
        live.wait_compaction()
    assert "compacting the text vector index failed" in caplog.text
    assert "no room for a second graph" in caplog.text
    assert live.state == "ready" and live.index is not None and live.index.deleted_count == 300
    assert live.index is old and set(live.index.ids().tolist()) == _stored_ids(store)
    assert _recall(live, store, _unit(rng, 10)) >= 0.95
    assert not live.needs_compaction()  # not tried again on every sync
    live.close(save=False)


def test_a_saved_file_over_the_threshold_is_compacted_on_load_and_saving_compacts(store, tmp_path, monkeypatch):
    rng = np.random.default_rng(17)
    _add_files(store, tmp_path, rng, 0, 300)
    fresh_path = tmp_path / "fresh.hnsw"
    monkeypatch.setattr(live_module, "COMPACT_DEAD_FRACTION", 2.0)  # never: write a file full of dead nodes
    live = _live(store, tmp_path)
    for start in range(0, 300, 100):
        _replace_files(store, tmp_path, rng, range(start, start + 100))
        live.sync(link="inline")
    assert live.save_if_changed()
    assert HnswIndex.saved_node_counts(live.path) == (600, 600)
    live.close()

    monkeypatch.setattr(live_module, "COMPACT_DEAD_FRACTION", 0.2)
    loaded = LiveIndex(store, live.path, min_items=100, ef_search=64, space=SPACE)
    loaded.open(build="never")
    loaded.wait_compaction()
    assert loaded.describe()["dead"] == 0 and loaded.index is not None and len(loaded.index) == 600
    assert loaded.save_if_changed()
    built = LiveIndex(store, fresh_path, min_items=100, ef_search=64, space=SPACE)
    built.open(build="now")  # no file there: built afresh from the store
    assert built.save_if_changed(prune=False)
    assert loaded.path.stat().st_size <= 1.05 * fresh_path.stat().st_size
    loaded.close()

    # Saving a graph over the threshold compacts it first, in the caller's thread.
    monkeypatch.setattr(live_module, "COMPACT_DEAD_FRACTION", 2.0)
    again = LiveIndex(store, live.path, min_items=100, ef_search=64, space=SPACE)
    again.open(build="never")
    _replace_files(store, tmp_path, rng, range(200))
    again.sync(link="inline")
    monkeypatch.setattr(live_module, "COMPACT_DEAD_FRACTION", 0.2)
    assert again.describe()["dead"] == 400
    assert again.save_if_changed()
    assert HnswIndex.saved_node_counts(again.path) == (600, 0)
    again.close()


def test_ten_reindexes_of_a_changing_folder_keep_the_file_near_a_fresh_builds_size(
    library, tmp_path, tiny_clip, tiny_whisper, tiny_text, capsys
):
    from engine.cli import main
    from engine.library import Library
    from engine.settings import load_settings
    from tests.conftest import TINY_ENV

    library.graph_min_items = 10
    library.reconfigure(dataclasses.replace(library.settings, autotags=False))  # tags are beside the point here
    root = tmp_path / "photos"
    for n in range(16):
        make_photo(root / f"p{n:02}.jpg", n, size=(32, 24))
    assert library.index([root]).failed == []
    for round_ in range(10):
        edited = [root / f"p{(round_ * 4 + n) % 16:02}.jpg" for n in range(4)]  # a quarter of the photos
        for n, photo in enumerate(edited):
            make_photo(photo, 1000 * (round_ + 1) + n, size=(32, 24))
            os.utime(photo, (1e9 + 100 * round_ + n,) * 2)
        (root / f"q{round_}.jpg").unlink(missing_ok=True)  # last round's new photo goes, a new one comes
        make_photo(root / f"q{round_ + 1}.jpg", 77_000 + round_, size=(32, 24))
        if round_ in (3, 7):
            assert library.reembed(space="clip").failed == []
        else:
            assert library.index([root]).failed == []
    assert library.vector_index("clip").needs_compaction() is False
    status = library.index_status()["clip"]
    assert status["live"] == 17 and status["dead"] <= 0.2 * (status["live"] + status["dead"])
    path = library.index_path("clip")  # a re-embed writes its vectors, and their graph, anew
    library.close()
    assert [p.name for p in library.settings.home.glob("*.hnsw")] == [path.name]  # no old graph left behind

    settings = load_settings(home=tmp_path / "fresh", env=dict(TINY_ENV), autotags=False)
    with Library(settings, clip=tiny_clip, whisper=tiny_whisper, text_model=tiny_text, graph_min_items=10) as fresh:
        assert fresh.index([root]).failed == []
        fresh_size = fresh.index_path("clip").stat().st_size
    assert path.stat().st_size <= 1.5 * fresh_size

    assert main(["--home", str(library.settings.home), "status", "--json"]) == 0
    index = json.loads(capsys.readouterr().out)["vector_index"]
    assert index["state"] == "not loaded" and index["live"] == 17 and index["file_bytes"] == path.stat().st_size
    assert main(["--home", str(library.settings.home), "status"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("index"))
    assert f"photos 17 live + {index['dead']} dead nodes" in line and "passages no graph file" in line
