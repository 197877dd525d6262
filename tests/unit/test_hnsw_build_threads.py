"""Linking new items on several threads: same recall, a sound graph, readers and cancel unharmed."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.errors import Cancelled, UsageError
from engine.index import HnswIndex, hnsw
from engine.index import _kernels as K
from tests.unit.test_hnsw import DIM, clustered, exact, recall


def sound(index: HnswIndex) -> None:
    """The graph passes the file loader's structure check, and no list names its owner or a node twice."""
    g = index._g
    n = g.n
    assert K.check_structure(n, g.levels, g.up_off, g.up_used, g.links0, g.up_links, index.M, index.M0) == ""
    assert g.links0[:n, 0].min() >= 1  # every node was linked, by exactly one thread or another
    for node in range(n):
        row = g.links0[node, 1 : 1 + g.links0[node, 0]]
        assert node not in row and np.unique(row).shape[0] == row.shape[0]
    for upper in np.flatnonzero(g.levels[:n] > 0).tolist():
        for lev in range(1, int(g.levels[upper]) + 1):
            r = g.up_off[upper] + lev - 1
            row = g.up_links[r, 1 : 1 + g.up_links[r, 0]]
            assert upper not in row and np.unique(row).shape[0] == row.shape[0]
    entry = int(g.state[0])
    assert entry >> 32 == int(g.levels[:n].max()) == int(g.levels[entry & 0xFFFFFFFF])
    assert int(g.state[1]) == n


@pytest.fixture(scope="module")
def big():
    base = clustered(20000, seed=11)
    ids = np.arange(20000, dtype=np.int64) * 7 + 5
    queries = clustered(300, seed=12)
    return base, ids, queries


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_two_threads_build_as_good_a_graph(big, metric):
    base, ids, queries = big
    truth, _ = exact(base, ids, queries, 10, metric)
    graphs, recalls = {}, {}
    for threads in (1, 2, 3):
        index = HnswIndex(DIM, metric, M=12, ef_construction=100, build_threads=threads)
        index.add(ids, base)
        sound(index)
        # ef = k: a narrow beam, so that a worse graph shows as lower recall.
        recalls[threads] = recall([index.search(q, 10, ef=10)[0] for q in queries], truth)
        graphs[threads] = index._g.links0[: index.slots].copy()
    assert recalls[1] >= 0.85
    assert abs(recalls[2] - recalls[1]) <= 0.01
    # The batches were linked (another graph than one node at a time) ...
    assert not np.array_equal(graphs[1], graphs[2])
    # ... and the same way whatever the number of threads.
    np.testing.assert_array_equal(graphs[2], graphs[3])


def test_one_thread_links_one_node_at_a_time(data_small, monkeypatch):
    base, ids = data_small

    def refuse(*args):
        raise AssertionError("a one-thread build must not link in batches")

    monkeypatch.setitem(K.BATCH_SELECT, K.METRIC_COSINE, refuse)
    a = HnswIndex(DIM, build_threads=1)
    a.add(ids, base)
    b = HnswIndex(DIM, build_threads=1)
    b.add(ids, base)
    np.testing.assert_array_equal(a._g.links0, b._g.links0)


@pytest.fixture(scope="module")
def data_small():
    base = clustered(3000, seed=21)
    return base, np.arange(3000, dtype=np.int64)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_batches_on_a_tiny_graph_with_new_top_levels(data_small, metric, monkeypatch):
    """Batches from the second node on: most of a batch's upper layers are above the graph's top."""
    base, ids = data_small
    monkeypatch.setattr(hnsw, "_PARALLEL_FROM", 1)
    index = HnswIndex(DIM, metric, M=4, ef_construction=64, build_threads=2)
    for a in range(0, 3000, 1000):
        index.add(ids[a : a + 1000], base[a : a + 1000])
    sound(index)
    assert int(index._g.levels[:3000].max()) >= 3  # M=4: tall graphs, new tops inside batches
    queries = clustered(100, seed=22)
    truth, _ = exact(base, ids, queries, 10, metric)
    assert recall([index.search(q, 10, ef=64)[0] for q in queries], truth) >= 0.9


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_deletes_and_replaced_vectors_with_two_threads(big, metric):
    base, ids, queries = big
    base, ids = base[:8000], ids[:8000]
    index = HnswIndex(DIM, metric, M=12, ef_construction=100, build_threads=2)
    index.add(ids[:6000], base[:6000])
    index.delete(ids[:1500])
    # Walks now skip deleted nodes; add new items, and replace the vectors of live ones.
    moved = ids[3000:4000]
    new_vecs = clustered(1000, seed=31)
    index.add(np.concatenate([ids[6000:], moved]), np.concatenate([base[6000:], new_vecs]))
    sound(index)
    current = base.copy()
    current[3000:4000] = new_vecs
    live = ids[1500:]
    assert sorted(index.ids().tolist()) == sorted(live.tolist())
    truth, _ = exact(current[1500:], live, queries, 10, metric)
    found = [index.search(q, 10, ef=64)[0] for q in queries]
    assert not np.isin(np.concatenate(found), ids[:1500]).any()
    assert recall(found, truth) >= 0.95


def test_progress_and_cancel_with_two_threads(big):
    base, ids, _ = big
    index = HnswIndex(DIM, M=8, ef_construction=32, build_threads=2)
    calls: list[tuple[int, int]] = []
    index.add(ids[:10000], base[:10000], on_progress=lambda done, total, msg: calls.append((done, total)))
    assert calls == [(4096, 10000), (8192, 10000), (10000, 10000)]
    sound(index)

    index = HnswIndex(DIM, M=8, ef_construction=32, build_threads=2)
    asked = [0]

    def cancel() -> bool:
        asked[0] += 1
        return asked[0] > 2  # after two chunks

    with pytest.raises(Cancelled):
        index.add(ids[:10000], base[:10000], cancel_check=cancel)
    assert len(index) == 8192  # what was linked stays, and is sound and searchable
    sound(index)
    found, _ = index.search(base[100], 1)
    assert found[0] == ids[100]


def test_readers_never_see_a_half_linked_node(big):
    base, ids, queries = big
    index = HnswIndex(DIM, "cosine", M=12, ef_construction=64, build_threads=2)
    index.add(ids[:3000], base[:3000])
    published = [3000]  # ids[:published] may be returned; raised before each add starts
    errors: list[BaseException] = []
    stop = threading.Event()
    seen = [0]

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = queries[rng.integers(len(queries))]
                found, dist = index.search(q, 10)
                allowed = ids[: rng.integers(3000, 12000)]
                f_found, _ = index.search(q, 5, allowed=allowed, plan="graph")
                b, _ = index.search_batch(queries[:4], 3, num_threads=1)
                limit = published[0]  # read after the searches: it only grows
                assert len(found) == 10 and np.isin(found, ids[:limit]).all()
                assert np.all(np.diff(dist) >= 0)
                # Each distance is that of the node's full vector: written before it was linked.
                rows = (found - 5) // 7
                want = 1 - (base[rows] @ q) / np.linalg.norm(base[rows], axis=1) / np.linalg.norm(q)
                np.testing.assert_allclose(dist, want, rtol=1e-3, atol=1e-4)
                assert np.isin(f_found, allowed).all() and np.isin(f_found, ids[:limit]).all()
                assert np.isin(b, ids[:limit]).all()
                seen[0] += 1
        except BaseException as e:  # reported to the main thread
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    try:
        for a in range(3000, 12000, 1500):  # capacity grows under the readers too
            published[0] = a + 1500
            index.add(ids[a : a + 1500], base[a : a + 1500])
        index.delete(ids[:500])
        published[0] = 13000
        index.add(ids[12000:13000], base[12000:13000])  # batches that walk around deleted nodes
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert seen[0] > 0
    sound(index)


def test_build_threads_argument():
    with pytest.raises(UsageError):
        HnswIndex(4, build_threads=-1)
    index = HnswIndex(4, build_threads=3)
    assert index.build_threads == 3
    index.add(np.arange(10), np.random.default_rng(0).standard_normal((10, 4)))
    index.delete([0])
    index.compact()
    assert index.build_threads == 3 and len(index) == 9
    assert HnswIndex(4)._build_thread_count() >= 1
