"""HnswIndex against exact search, on seeded data in tmp_path (no user data)."""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.errors import Cancelled, IndexCorruptError, IndexFileError, IndexStaleError, UsageError
from engine.index import HnswIndex

DIM = 32


def clustered(n: int, dim: int = DIM, seed: int = 0, clusters: int = 40) -> np.ndarray:
    """Gaussian mixture on a low-dimensional subspace, like real embeddings."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).standard_normal((8, dim))  # shared by every call
    centers = np.random.default_rng(98).standard_normal((clusters, 8)) * 3
    latent = centers[rng.integers(0, clusters, n)] + rng.standard_normal((n, 8))
    return (latent @ basis + 0.1 * rng.standard_normal((n, dim))).astype(np.float32)


def exact(
    base: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, metric: str, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    if metric == "l2":
        d = (queries**2).sum(1)[:, None] - 2 * queries @ base.T + (base**2).sum(1)[None]
    else:
        b = base / np.linalg.norm(base, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        d = 1 - q @ b.T
    if allowed is not None:
        d = np.where(np.isin(ids, allowed)[None], d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids[order], np.take_along_axis(d, order, 1)


def recall(found, truth) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


@pytest.fixture(scope="module")
def data():
    base = clustered(4000, seed=1)
    ids = np.arange(4000, dtype=np.int64) * 3 + 1000  # store ids, not positions
    queries = clustered(100, seed=2)
    return base, ids, queries


@pytest.fixture(scope="module")
def built(data):
    """One cosine index shared by the read-only tests."""
    base, ids, _ = data
    index = HnswIndex(DIM, "cosine", M=12, ef_construction=100)
    index.add(ids, base)
    return index


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("quantize", [False, True])
def test_recall_against_exact_search(data, metric, quantize):
    base, ids, queries = data
    index = HnswIndex(DIM, metric, M=12, ef_construction=100, quantize=quantize)
    index.add(ids[:1500], base[:1500])  # two adds: growth and a second code range fit
    index.add(ids[1500:], base[1500:])
    assert len(index) == 4000
    truth, truth_d = exact(base, ids, queries, 10, metric)
    found = [index.search(q, 10, ef=64) for q in queries]
    assert recall([f for f, _ in found], truth) >= 0.95
    for (f_ids, f_d), t_d in zip(found, truth_d, strict=True):
        assert f_ids.dtype == np.int64 and f_d.dtype == np.float32
        assert np.all(np.diff(f_d) >= 0), "nearest first"
        assert f_d[0] == pytest.approx(t_d[0], rel=1e-3, abs=1e-3)  # exact distances
    batch_ids, batch_d = index.search_batch(queries, 10, ef=64, num_threads=2)
    for i, (f_ids, f_d) in enumerate(found):
        np.testing.assert_array_equal(batch_ids[i], f_ids)
        np.testing.assert_allclose(batch_d[i], f_d)


def test_levels_and_degrees(built):
    g = built._g
    n = g.n
    # mL = 1 / ln(M): a fraction of about 1/M of the nodes reach layer 1.
    frac = float((g.levels[:n] >= 1).mean())
    assert 0.5 / built.M < frac < 1.5 / built.M
    assert g.links0[:n, 0].max() <= built.M0
    assert g.links0[:n, 0].min() >= 1


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("plan", [None, "graph", "exact"])
def test_filtered_recall(data, built, fraction, plan):
    base, ids, queries = data
    rng = np.random.default_rng(int(fraction * 1000))
    allowed = ids[rng.random(ids.shape[0]) < fraction]
    truth, _ = exact(base, ids, queries, 10, "cosine", allowed)
    found = [built.search(q, 10, allowed=allowed, plan=plan)[0] for q in queries]
    assert all(len(f) == 10 for f in found), "k results whenever k items pass"
    assert all(np.isin(f, allowed).all() for f in found)
    assert recall(found, truth) >= 0.95


def test_filter_with_fewer_than_k_passing(data, built):
    _base, ids, queries = data
    allowed = np.array([ids[5], ids[17], ids[3000], 999_999_999])  # one unknown id
    for plan in (None, "graph", "scan"):
        found, dist = built.search(queries[0], 10, allowed=allowed, plan=plan)
        assert sorted(found) == sorted(allowed[:3])
        assert np.all(np.diff(dist) >= 0)
    found, _ = built.search(queries[0], 10, allowed=np.array([], dtype=np.int64))
    assert found.shape == (0,)


def test_planner_prefers_exact_for_selective_filters(built):
    assert built.prefers_exact(10) and built.prefers_exact(40)
    plans = [built.plan(n) for n in range(1, len(built) + 1, 50)]
    assert plans == sorted(plans, key=["exact", "graph"].index), "exact below one crossover, graph above it"
    big = HnswIndex(512, quantize=True)
    big._n_alive = 100_000  # the cost model only looks at sizes
    assert [big.plan(n) for n in (100, 1_000, 10_000, 50_000)] == ["exact", "exact", "scan", "graph"]
    with pytest.raises(UsageError):
        built.search(np.ones(DIM), 3, allowed=[1000], plan="fast")


def test_code_scan_plan(tmp_path):
    rng = np.random.default_rng(5)
    base = clustered(3000, dim=256, seed=5)
    ids = np.arange(3000, dtype=np.int64)
    queries = clustered(50, dim=256, seed=6)
    index = HnswIndex(256, "l2", M=8, ef_construction=64)  # 256 dims: 4-bit codes by default
    assert index.quantize
    index.add(ids, base)
    allowed = ids[rng.random(3000) < 0.3]
    truth, truth_d = exact(base, ids, queries, 10, "l2", allowed)
    for plan in ("scan", "graph", "exact"):
        found = [index.search(q, 10, allowed=allowed, plan=plan) for q in queries]
        assert recall([f for f, _ in found], truth) >= 0.95
        assert all(np.isin(f, allowed).all() and len(f) == 10 for f, _ in found)
        np.testing.assert_allclose([d[0] for _, d in found], truth_d[:, 0], rtol=1e-3, atol=1e-2)
    batch, _ = index.search_batch(queries, 10, allowed=allowed, plan="scan")
    assert recall(batch, truth) >= 0.95


def test_delete_semantics(data):
    base, ids, queries = data
    index = HnswIndex(DIM, "l2", M=12, ef_construction=100)
    index.add(ids, base)
    gone = ids[::2]
    assert index.delete(gone) == gone.shape[0]
    assert index.delete(gone[:10]) == 0  # already gone
    assert index.delete([123456789]) == 0  # unknown
    assert len(index) == ids.shape[0] - gone.shape[0]
    assert index.deleted_count == gone.shape[0]
    assert ids[0] not in index and ids[1] in index
    kept = ids[1::2]
    truth, _ = exact(base, ids, queries, 10, "l2", kept)
    found = [index.search(q, 10)[0] for q in queries]
    assert not any(np.isin(f, gone).any() for f in found)
    assert all(len(f) == 10 for f in found)
    assert recall(found, truth) >= 0.95
    batch, _ = index.search_batch(queries, 10)
    assert not np.isin(batch, gone).any()
    # Space is reclaimed by compaction; results stay the same set of items.
    index.compact()
    assert index.deleted_count == 0 and len(index) == kept.shape[0]
    assert index._g.n == kept.shape[0]
    found = [index.search(q, 10)[0] for q in queries]
    assert not any(np.isin(f, gone).any() for f in found)
    assert recall(found, truth) >= 0.95
    # A deleted id can come back with a new vector.
    index.add([ids[0]], queries[:1])
    assert index.search(queries[0], 1)[0][0] == ids[0]


def test_adding_an_existing_id_replaces_its_vector(data):
    base, ids, queries = data
    index = HnswIndex(DIM, "l2", M=12, ef_construction=100)
    index.add(ids[:500], base[:500])
    index.add(ids[:1], queries[:1])
    assert len(index) == 500
    found, dist = index.search(queries[0], 3)
    assert found[0] == ids[0] and dist[0] == pytest.approx(0.0, abs=1e-4)
    assert list(found).count(ids[0]) == 1


def test_save_load_round_trip(tmp_path, data):
    base, ids, queries = data
    index = HnswIndex(DIM, "l2", M=12, ef_construction=100, ef_search=40, quantize=True)
    index.add(ids, base)
    index.delete(ids[:100])
    path = tmp_path / "index.hnsw"
    index.save(path, generation=7)
    loaded = HnswIndex.load(path, expected_generation=7)
    assert (loaded.dim, loaded.metric, loaded.M, loaded.ef_construction, loaded.ef_search) == (DIM, "l2", 12, 100, 40)
    assert loaded.generation == 7 and len(loaded) == len(index) and loaded.quantize
    for q in queries:
        a_ids, a_d = index.search(q, 10)
        b_ids, b_d = loaded.search(q, 10)
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_array_equal(a_d, b_d)
    assert not any(os.path.basename(p).endswith(".tmp") for p in os.listdir(tmp_path))
    # The loaded index keeps working as a writer.
    loaded.add([1], queries[:1])
    assert loaded.search(queries[0], 1)[0][0] == 1


def test_empty_index_and_k_larger_than_index(tmp_path):
    index = HnswIndex(8, "cosine")
    found, dist = index.search(np.ones(8), 5)
    assert found.shape == (0,) and dist.shape == (0,)
    batch_ids, batch_d = index.search_batch(np.ones((3, 8)), 5)
    assert (batch_ids == -1).all() and np.isinf(batch_d).all()
    index.save(tmp_path / "empty.hnsw")
    assert len(HnswIndex.load(tmp_path / "empty.hnsw")) == 0
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((7, 8))
    index.add(np.arange(7), vecs)
    found, dist = index.search(vecs[2], 50)
    assert sorted(found) == list(range(7)) and found[0] == 2
    batch_ids, _ = index.search_batch(vecs[:2], 10)
    assert (batch_ids[:, 7:] == -1).all() and set(batch_ids[0, :7]) == set(range(7))


def _saved(tmp_path, data) -> bytes:
    base, ids, _ = data
    index = HnswIndex(DIM, "cosine", M=8, ef_construction=40)
    index.add(ids[:300], base[:300])
    path = tmp_path / "good.hnsw"
    index.save(path, generation=3)
    return path.read_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        "payload-bit",
        "header-bit",
        "truncated",
        "truncated-header",
        "empty",
        "garbage",
        "extra-bytes",
        "rehashed-bad-links",
    ],
)
def test_damaged_file_is_detected(tmp_path, data, damage):
    good = bytearray(_saved(tmp_path, data))
    bad = bytearray(good)
    if damage == "payload-bit":
        bad[len(bad) - 1000] ^= 0x10
    elif damage == "header-bit":
        bad[20] ^= 0x01
    elif damage == "truncated":
        bad = bad[: len(bad) - 37]
    elif damage == "truncated-header":
        bad = bad[:50]
    elif damage == "empty":
        bad = bytearray()
    elif damage == "garbage":
        bad = bytearray(np.random.default_rng(0).integers(0, 256, len(good), dtype=np.uint8).tobytes())
    elif damage == "extra-bytes":
        bad += b"\0" * 16
    elif damage == "rehashed-bad-links":
        bad = _rewrite_with_bad_link(good)
    path = tmp_path / "bad.hnsw"
    path.write_bytes(bytes(bad))
    with pytest.raises(IndexCorruptError) as info:
        HnswIndex.load(path)
    assert "rebuild" in str(info.value)


def _rewrite_with_bad_link(good: bytearray) -> bytearray:
    """A file whose checksums are right but whose graph points outside itself."""
    import hashlib
    import zlib

    from engine.index.hnsw import _HEADER, _HEADER_SIZE, _layout, _sections

    fields = list(_HEADER.unpack(bytes(good[: _HEADER.size])))
    dim, M, m0, n, u = fields[3], fields[8], fields[9], fields[12], fields[13]
    sections = _sections(n, u, dim, M, m0, bool(fields[5]), False)
    offsets, _ = _layout(sections)
    bad = bytearray(good)
    links_at = offsets[[name for name, *_ in sections].index("links0")]
    struct.pack_into("<i", bad, links_at + 4, n + 5)  # node 0, first layer-0 link
    digest = hashlib.sha256()
    for (_, shape, dtype, in_graph), offset in zip(sections, offsets, strict=True):
        if in_graph:
            digest.update(bytes(bad[offset : offset + int(np.prod(shape)) * np.dtype(dtype).itemsize]))
    fields[-2] = digest.digest()
    header = _HEADER.pack(*fields)
    assert m0 == 16
    bad[:_HEADER_SIZE] = header + struct.pack("<I", zlib.crc32(header))
    return bad


def test_a_file_with_checked_sums_and_a_link_outside_the_graph_is_refused(tmp_path, data):
    path = tmp_path / "bad.hnsw"
    path.write_bytes(bytes(_rewrite_with_bad_link(bytearray(_saved(tmp_path, data)))))
    with pytest.raises(IndexCorruptError) as info:
        HnswIndex.load(path)
    assert "link" in str(info.value) or "out of range" in str(info.value)


def test_vectors_checked_later_when_asked(tmp_path, data):
    good = _saved(tmp_path, data)
    bad = bytearray(good)
    bad[len(bad) - 1000] ^= 0x10  # inside the vectors
    path = tmp_path / "bad.hnsw"
    path.write_bytes(bytes(bad))
    with pytest.raises(IndexCorruptError):
        HnswIndex.load(path)
    opened = HnswIndex.load(path, verify=False)  # the graph is sound: it opens and searches
    assert not opened.verified and len(opened) == 300
    with pytest.raises(IndexCorruptError) as info:
        opened.verify()
    assert "rebuild" in str(info.value)
    sound = HnswIndex.load(tmp_path / "good.hnsw", verify=False)
    sound.verify()
    assert sound.verified


def test_a_mapped_file_is_never_written_by_changes_and_can_be_replaced(tmp_path, data):
    base, ids, _ = data
    path = tmp_path / "good.hnsw"
    before = _saved(tmp_path, data)
    index = HnswIndex.load(path, verify=False)
    index.delete(ids[:10])  # in place, in the mapped arrays
    index.add(ids[300:400], base[300:400])  # grows: copies into memory
    assert path.read_bytes() == before
    found, _ = index.search(base[350], 1)
    assert found[0] == ids[350]
    index.save(path, generation=4)  # over the file it was opened from
    again = HnswIndex.load(path, expected_generation=4)
    assert len(again) == 390 and again.search(base[5], 5)[0][0] != ids[5]
    assert HnswIndex.saved_node_counts(path) == (390, 10) and HnswIndex.saved_generation(path) == 4


def test_a_version_1_file_still_opens(tmp_path):
    """Files written before the memory-mapped format are read (codes computed again), not rebuilt."""
    src = Path(__file__).parents[1] / "data" / "index-v1.hnsw"
    vectors = np.random.default_rng(5).standard_normal((300, 16)).astype(np.float32)
    assert HnswIndex.saved_generation(src) == 11 and HnswIndex.saved_node_counts(src) == (298, 2)
    index = HnswIndex.load(src, expected_generation=11)
    assert index.quantize and len(index) == 298 and 1000 not in index
    hits = [int(index.search(vectors[i], 1)[0][0]) for i in range(2, 300)]
    assert np.mean(np.array(hits) == np.arange(1002, 1300)) > 0.95
    index.save(tmp_path / "v2.hnsw", generation=11)  # written back in the current format
    assert HnswIndex.load(tmp_path / "v2.hnsw").search(vectors[7], 1)[0][0] == 1007


def test_stale_and_missing_files(tmp_path, data):
    path = tmp_path / "good.hnsw"
    path.write_bytes(_saved(tmp_path, data))
    assert HnswIndex.load(path, expected_generation=3).generation == 3
    with pytest.raises(IndexStaleError):
        HnswIndex.load(path, expected_generation=4)
    base, ids, _ = data
    unstamped = HnswIndex(DIM)
    unstamped.add(ids[:10], base[:10])
    unstamped.save(tmp_path / "unstamped.hnsw")
    with pytest.raises(IndexStaleError):
        HnswIndex.load(tmp_path / "unstamped.hnsw", expected_generation=1)
    with pytest.raises(IndexFileError) as info:
        HnswIndex.load(tmp_path / "missing.hnsw")
    assert not isinstance(info.value, IndexCorruptError)


def test_failed_save_keeps_the_old_file(tmp_path, data, monkeypatch):
    path = tmp_path / "index.hnsw"
    old = _saved(tmp_path, data)
    path.write_bytes(old)
    index = HnswIndex(DIM)
    index.add([1, 2], np.ones((2, DIM)))

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(IndexFileError):
        index.save(path, generation=9)
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["good.hnsw", "index.hnsw"]
    with pytest.raises(IndexFileError):
        index.save(tmp_path / "no-such-folder" / "x.hnsw")


def test_concurrent_searches_during_adds(data):
    base, ids, queries = data
    index = HnswIndex(DIM, "cosine", M=12, ef_construction=64)
    index.add(ids[:200], base[:200])
    errors: list[BaseException] = []
    stop = threading.Event()
    seen = [0]

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                q = queries[rng.integers(len(queries))]
                found, dist = index.search(q, 10)
                assert len(found) == 10 and np.isin(found, ids).all()
                assert np.all(np.diff(dist) >= 0)
                allowed = ids[: rng.integers(200, 4000)]
                found, _ = index.search(q, 5, allowed=allowed, plan="graph")
                assert np.isin(found, allowed).all()
                b, _ = index.search_batch(queries[:4], 3, num_threads=1)
                assert np.isin(b, ids).all()
                seen[0] += 1
        except BaseException as e:  # reported to the main thread
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    try:
        for a in range(200, 4000, 300):  # many small adds: capacity grows under the readers
            index.add(ids[a : a + 300], base[a : a + 300])
        index.delete(ids[:100])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert seen[0] > 0
    truth, _ = exact(base, ids, queries, 10, "cosine", ids[100:])
    assert recall([index.search(q, 10)[0] for q in queries], truth) >= 0.95


def test_progress_and_cancel(data):
    base, ids, _ = data
    index = HnswIndex(DIM, M=8, ef_construction=32)
    calls = []
    index.add(ids, base, on_progress=lambda done, total, msg: calls.append((done, total)))
    assert calls[-1] == (4000, 4000)
    index = HnswIndex(DIM, M=8, ef_construction=32)
    with pytest.raises(Cancelled):
        index.add(ids, base, cancel_check=lambda: True)
    assert len(index) == 0


def test_bad_arguments():
    index = HnswIndex(4)
    with pytest.raises(UsageError):
        index.add([1, 2], np.ones((3, 4)))
    with pytest.raises(UsageError):
        index.add([1], np.ones((1, 5)))
    with pytest.raises(UsageError):
        index.add([1, 1], np.ones((2, 4)))
    with pytest.raises(UsageError):
        index.add([1], np.array([[1.0, np.nan, 0, 0]]))
    with pytest.raises(UsageError):
        index.search(np.ones(3), 1)
    with pytest.raises(UsageError):
        HnswIndex(4, metric="dot")
    assert len(index) == 0
