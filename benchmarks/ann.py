"""ANN benchmark: Shoebox's HNSW index beside hnswlib, faiss, sqlite-vec and numpy.

Run from the repository root:

    .venv/bin/python benchmarks/ann.py            # full run (about 15-20 minutes on 2 cores)
    .venv/bin/python benchmarks/ann.py --quick    # smoke run (a couple of minutes)
    .venv/bin/python benchmarks/ann.py --only threads   # build on 1 vs 2 threads only

It prints one table per dataset and writes everything to
``benchmarks/results/ann.json`` (``--out`` to change).  All queries-per-second
figures are single-threaded: "QPS" calls ``search`` once per query from
Python (what the app does), "batch QPS" hands all queries to one call with one
thread.  Every speed figure stands beside its recall@10 against exact search.
Each timing is the best of ``--repeat`` runs, because the machine may be shared.
The build-threads comparison builds the same synthetic set (``--threads-n``
vectors) with one and with ``--build-threads`` link threads, alternating, and
reports the build times, their ratio, the CPU time the builds got (a shared
machine gives fewer cores than asked for: CPU s / build s shows how many) and
recall@10 of each graph, beside the speed-up that a loop sharing nothing gets
on as many threads just before and after (the most the machine gave then).

Data: the real vectors in ``<repo>/../shared/data/ann`` (override with the
environment variable SHOEBOX_ANN_DATA; see its README.md) and a seeded
synthetic 100,000 x 512 CLIP-like set.  hnswlib, faiss, apsw and sqlite-vec
are optional: a missing library is skipped with a note.
"""

from __future__ import annotations

import os

# Single-threaded numpy (exact search and ground truth) and faiss: set before they load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import contextlib
import gc
import json
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.index import HnswIndex

try:
    import hnswlib
except ImportError:  # optional bench extra
    hnswlib = None
try:
    import faiss
except ImportError:
    faiss = None
try:
    import apsw
    import sqlite_vec
except ImportError:
    apsw = sqlite_vec = None  # type: ignore[assignment]  # optional: its benchmark is skipped

K = 10
M = 16
EF_CONSTRUCTION = 200
DATA_ENV = "SHOEBOX_ANN_DATA"


def data_dir() -> Path:
    return Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "data" / "ann")


# ---------------------------------------------------------------- datasets


@dataclass
class Dataset:
    name: str
    metric: str  # "l2" or "cosine"
    base: np.ndarray
    queries: np.ndarray
    note: str = ""
    truth: np.ndarray = field(init=False)  # exact neighbours of the queries, computed on creation
    # filtered query sets: name -> (queries, list of allowed row arrays)
    filters: dict = field(default_factory=dict)

    def __post_init__(self):
        self.base = np.ascontiguousarray(self.base, dtype=np.float32)
        self.queries = np.ascontiguousarray(self.queries, dtype=np.float32)
        if self.metric == "cosine":
            self.base /= np.linalg.norm(self.base, axis=1, keepdims=True)
            self.queries /= np.linalg.norm(self.queries, axis=1, keepdims=True)
        self.truth = exact_knn(self.base, self.queries, K, self.metric)


def exact_distances(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        return 1.0 - queries @ base.T
    return (queries**2).sum(1)[:, None] - 2.0 * queries @ base.T + (base**2).sum(1)[None]


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int, metric: str, block: int = 256) -> np.ndarray:
    out = np.empty((queries.shape[0], k), np.int64)
    for a in range(0, queries.shape[0], block):
        d = exact_distances(base, queries[a : a + block], metric)
        part = np.argpartition(d, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable")
        out[a : a + block] = np.take_along_axis(part, order, 1)
    return out


def read_fvecs(path: Path) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].view(np.float32).copy()


def load_sift(folder: Path) -> list[Dataset]:
    rows = np.loadtxt(folder / "ngt_sift-dataset-5k.tsv", dtype=np.float32)
    vecs = rows[:, :128]
    out = [
        Dataset(
            "sift5k held-out",
            "l2",
            vecs[:4500],
            vecs[4500:],
            "4,500 NGT SIFT vectors as base, the other 500 as queries",
        )
    ]
    out.append(
        Dataset(
            "sift5k + siftsmall queries",
            "l2",
            vecs,
            read_fvecs(folder / "siftsmall_query.fvecs"),
            "5,000 base, 100 texmex siftsmall queries (far from this base: a hard case)",
        )
    )
    return out


def load_sigmod(folder: Path, max_queries: int) -> Dataset:
    data = np.fromfile(folder / "sigmod24_dummy-data.bin", dtype=np.float32, offset=4).reshape(-1, 102)
    qs = np.fromfile(folder / "sigmod24_dummy-queries.bin", dtype=np.float32, offset=4).reshape(-1, 104)
    cat, ts, base = data[:, 0], data[:, 1], data[:, 2:]
    plain = qs[qs[:, 0] == 0][:max_queries, 4:]
    ds = Dataset("sigmod24", "l2", base, plain, "SIGMOD 2024 contest sample, 10,000 x 100; plain queries (type 0)")
    for qtype, name in ((1, "category = v"), (2, "timestamp in [l, r]"), (3, "category and timestamp")):
        sel = qs[qs[:, 0] == qtype][:max_queries]
        allowed = []
        for row in sel:
            ok = np.ones(base.shape[0], bool)
            if qtype in (1, 3):
                ok &= cat == row[1]
            if qtype in (2, 3):
                ok &= (ts >= row[2]) & (ts <= row[3])
            allowed.append(np.flatnonzero(ok))
        ds.filters[name] = (np.ascontiguousarray(sel[:, 4:]), allowed)
    return ds


def synthetic(n: int, nq: int, dim: int = 512, seed: int = 2024, clusters: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """CLIP-like vectors: a shared mean direction, 1,000 clusters, a power-law
    spectrum in a random rotation (low effective rank), normalized."""
    rng = np.random.default_rng(seed)
    rot = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    spec = (np.arange(1, dim + 1) ** -0.5).astype(np.float32)
    spec /= np.sqrt((spec**2).sum())
    mean = rng.standard_normal(dim).astype(np.float32)
    mean /= np.linalg.norm(mean)
    centers = mean + (rng.standard_normal((clusters, dim)).astype(np.float32) * spec) @ rot
    out = np.empty((n + nq, dim), np.float32)
    labels = rng.integers(0, clusters, n + nq)
    for a in range(0, n + nq, 20000):
        b = min(n + nq, a + 20000)
        noise = (rng.standard_normal((b - a, dim)).astype(np.float32) * spec) @ rot
        out[a:b] = centers[labels[a:b]] + noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out[:n], out[n:]


def load_synthetic(n: int, nq: int, nfq: int) -> Dataset:
    base, queries = synthetic(n, nq)
    ds = Dataset(
        f"synthetic {n // 1000}k x 512",
        "cosine",
        base,
        queries,
        "seeded gaussian mixture shaped like CLIP embeddings (seed 2024)",
    )
    rng = np.random.default_rng(7)
    for frac in (0.01, 0.1, 0.5):
        rows = np.flatnonzero(rng.random(n) < frac)
        ds.filters[f"{frac:.0%} pass"] = (queries[:nfq], [rows] * nfq)
    return ds


# ---------------------------------------------------------------- measuring


def recall_at_k(found, truth) -> float:
    hits = 0
    for f, t in zip(found, truth, strict=True):
        hits += len(set(np.asarray(f)[:K].tolist()) & set(t[:K].tolist()))
    return hits / (K * len(truth))


def best_qps(run, n: int, repeat: int):
    """Best of ``repeat`` timed runs; returns (result of the last run, queries per second)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t)
    return result, n / best


def search_each(index, queries, **kwargs) -> list:
    """One ``search`` call per query from Python (what the app does); the ids each one found."""
    return [index.search(q, K, **kwargs)[0] for q in queries]


def search_each_filtered(index, queries, allowed_rows, **kwargs) -> list:
    """``search_each`` with each query's own allowed ids."""
    return [index.search(q, K, allowed=a, **kwargs)[0] for q, a in zip(queries, allowed_rows, strict=True)]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_LOAD_SNIPPETS = {
    "ours": "from engine.index import HnswIndex as H\nload = lambda path: H.load(path)",
    "hnswlib": "import hnswlib\ndef load(path):\n    i = hnswlib.Index(SPACE, DIM)\n    i.load_index(path)\n    return i",
    "faiss": "import faiss\nload = lambda path: faiss.read_index(path)",
}


def loaded_bytes(kind: str, path: str, warm_path: str, dim: int, metric: str) -> int | None:
    """Resident memory an index takes once loaded in a fresh process (no build leftovers).

    Every library is measured the same way: the resident-set growth while
    loading its saved file, in a process that first loaded a tiny index of
    the same kind (``warm_path``), so that code, compiled kernels and library
    start-up are not counted, and nothing freed is there to be reused.
    """
    space = {"l2": "l2", "cosine": "cosine"}[metric]
    code = (
        textwrap.dedent(f"""
        import gc, os, sys
        sys.path.insert(0, {str(REPO)!r})
        PATH, WARM, DIM, SPACE = {path!r}, {warm_path!r}, {dim}, {space!r}
        def rss():
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    """)
        + _LOAD_SNIPPETS[kind]
        + textwrap.dedent("""
        warm = load(WARM)
        gc.collect(); before = rss()
        index = load(PATH)
        gc.collect(); print(rss() - before)
    """)
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        return int(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def tiny_copy(ds: Dataset, build, save, path: Path) -> str:
    """Save a 200-vector index of the same kind, to warm a process before measuring memory."""
    small = build(ds.base[:200])
    save(small, str(path))
    return str(path)


# ---------------------------------------------------------------- methods


def row(ds: Dataset, method: str, params: str, build_s, bpv, rec, qps, qps_batch=None, **extra) -> dict:
    r = {
        "dataset": ds.name,
        "method": method,
        "params": params,
        "build_s": build_s,
        "bytes_per_vector": bpv,
        "recall_at_10": rec,
        "qps": qps,
        "qps_batch": qps_batch,
    }
    r.update(extra)
    return r


def bench_ours(ds: Dataset, efs, repeat, tmp: Path, rows: list, profile: dict) -> HnswIndex:
    n = ds.base.shape[0]
    ids = np.arange(n, dtype=np.int64)
    index = HnswIndex(ds.base.shape[1], ds.metric, M=M, ef_construction=EF_CONSTRUCTION, build_threads=1)
    t = time.perf_counter()
    index.add(ids, ds.base)
    build = time.perf_counter() - t
    path = str(tmp / "ours.hnsw")
    index.save(path)

    def build_ours(x):
        small = HnswIndex(x.shape[1], ds.metric, M=M, ef_construction=EF_CONSTRUCTION, build_threads=1)
        small.add(np.arange(x.shape[0]), x)
        return small

    warm = tiny_copy(ds, build_ours, lambda i, p: i.save(p), tmp / "ours-tiny.hnsw")
    bpv = loaded_bytes("ours", path, warm, ds.base.shape[1], ds.metric)
    bpv = bpv / n if bpv else index.nbytes / n
    variants = [("ours", index, bpv)]
    if index.quantize:  # same graph without the codes: what quantization buys
        variants.append(("ours (float32 walk)", _float32_walk(index), bpv - (index.dim + 1) // 2))
    for method, idx, bpv in variants:
        idx.search(ds.queries[0], K)  # load the compiled kernels before timing
        idx.search_batch(ds.queries[:2], K, num_threads=1)
        for ef in efs:
            res, qps = best_qps(partial(search_each, idx, ds.queries, ef=ef), len(ds.queries), repeat)
            _, qps_b = best_qps(partial(idx.search_batch, ds.queries, K, ef=ef, num_threads=1), len(ds.queries), repeat)
            rows.append(
                row(
                    ds,
                    method,
                    f"ef={ef}",
                    round(build, 2),
                    round(bpv),
                    recall_at_k(res, ds.truth),
                    round(qps),
                    round(qps_b),
                    quantized=bool(idx.quantize),
                )
            )
    profile[ds.name] = profile_ours(index, ds)
    return index


def _float32_walk(index: HnswIndex) -> HnswIndex:
    """The same graph walked over the float32 vectors (benchmark-only view, for the profile)."""
    import copy

    view = copy.copy(index)
    g = copy.copy(index._g)
    g.codes = np.zeros((0, index.dim), np.uint8)
    g.cnorm = np.zeros(0, np.float32)
    view._g = g
    view._scratch_pool = []
    view.quantize = False
    from engine.index import _kernels

    view._search_fn = _kernels.SEARCH[index._metric_code, False]
    return view


def profile_ours(index: HnswIndex, ds: Dataset, ef: int = 64) -> dict:
    """Where a query's time goes: Python call overhead, nodes visited, kernel time."""
    q = ds.queries[0]
    index.search(q, 0)
    t = time.perf_counter()
    for _ in range(2000):
        index.search(q, 0)  # empty result: argument checks + one kernel call, no walk
    overhead_us = (time.perf_counter() - t) / 2000 * 1e6
    visited = []
    for q in ds.queries[:200]:
        index.search(q, K, ef=ef)
        tags = index._scratch_pool[-1][0]
        visited.append(int((tags[:-1] == tags[-1]).sum()))
    _, qps_b = best_qps(lambda: index.search_batch(ds.queries, K, ef=ef, num_threads=1), len(ds.queries), 3)
    kernel_us = 1e6 / qps_b
    row_bytes = (index.dim + 1) // 2 if index.quantize else 4 * index.dim
    return {
        "ef": ef,
        "python_call_us": round(overhead_us, 2),
        "kernel_us_per_query": round(kernel_us, 1),
        "nodes_visited_per_query": round(float(np.mean(visited)), 1),
        "ns_per_visited_node": round(kernel_us * 1000 / max(np.mean(visited), 1), 1),
        "walk_bytes_per_node": row_bytes,
        "walk_vectors": "4-bit codes" if index.quantize else "float32",
    }


def bench_hnswlib(ds: Dataset, efs, repeat, tmp: Path, rows: list):
    if hnswlib is None:
        return None
    n, dim = ds.base.shape
    p = hnswlib.Index(space="l2" if ds.metric == "l2" else "cosine", dim=dim)
    p.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
    p.set_num_threads(1)
    t = time.perf_counter()
    p.add_items(ds.base, np.arange(n))
    build = time.perf_counter() - t
    path = str(tmp / "hnswlib.bin")
    p.save_index(path)

    def build_hnswlib(x):
        small = hnswlib.Index(space="l2" if ds.metric == "l2" else "cosine", dim=dim)
        small.init_index(max_elements=x.shape[0], M=M, ef_construction=EF_CONSTRUCTION)
        small.add_items(x)
        return small

    warm = tiny_copy(ds, build_hnswlib, lambda i, p: i.save_index(p), tmp / "hnswlib-tiny.bin")
    bpv = (loaded_bytes("hnswlib", path, warm, dim, ds.metric) or 0) / n
    for ef in efs:
        p.set_ef(ef)
        res, qps = best_qps(lambda: [p.knn_query(q, K)[0][0] for q in ds.queries], len(ds.queries), repeat)
        _, qps_b = best_qps(lambda: p.knn_query(ds.queries, K, num_threads=1), len(ds.queries), repeat)
        rows.append(
            row(
                ds,
                "hnswlib",
                f"ef={ef}",
                round(build, 2),
                round(bpv),
                recall_at_k(res, ds.truth),
                round(qps),
                round(qps_b),
            )
        )
    return p


def _faiss_metric(ds: Dataset):
    return faiss.METRIC_L2 if ds.metric == "l2" else faiss.METRIC_INNER_PRODUCT


def bench_faiss_hnsw(ds: Dataset, efs, repeat, tmp: Path, rows: list):
    if faiss is None:
        return None
    n, dim = ds.base.shape
    index = faiss.IndexHNSWFlat(dim, M, _faiss_metric(ds))
    index.hnsw.efConstruction = EF_CONSTRUCTION
    t = time.perf_counter()
    index.add(ds.base)
    build = time.perf_counter() - t
    path = str(tmp / "faiss_hnsw.index")
    faiss.write_index(index, path)
    bpv = (loaded_bytes("faiss", path, _faiss_warm(ds, tmp), dim, ds.metric) or 0) / n
    for ef in efs:
        index.hnsw.efSearch = ef
        res, qps = best_qps(lambda: [index.search(q[None], K)[1][0] for q in ds.queries], len(ds.queries), repeat)
        _, qps_b = best_qps(lambda: index.search(ds.queries, K), len(ds.queries), repeat)
        rows.append(
            row(
                ds,
                "faiss HNSWFlat",
                f"ef={ef}",
                round(build, 2),
                round(bpv),
                recall_at_k(res, ds.truth),
                round(qps),
                round(qps_b),
            )
        )
    return index


def _faiss_search_each(index, queries) -> list:
    """One faiss ``search`` call per query; the ids each one found."""
    return [index.search(q[None], K)[1][0] for q in queries]


def _faiss_warm(ds: Dataset, tmp: Path) -> str:
    """A tiny faiss index file: loading it first starts faiss up in the measuring process."""

    def build(x):
        small = faiss.IndexHNSWFlat(x.shape[1], M, _faiss_metric(ds))
        small.add(x)
        return small

    return tiny_copy(ds, build, faiss.write_index, tmp / "faiss-tiny.index")


def bench_faiss_ivf(ds: Dataset, nlists, nprobes, repeat, tmp: Path, rows: list):
    if faiss is None:
        return
    n, dim = ds.base.shape
    for nlist in nlists:
        quantizer = faiss.IndexFlat(dim, _faiss_metric(ds))
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, _faiss_metric(ds))
        t = time.perf_counter()
        index.train(ds.base)
        index.add(ds.base)
        build = time.perf_counter() - t
        path = str(tmp / "faiss_ivf.index")
        faiss.write_index(index, path)
        bpv = (loaded_bytes("faiss", path, _faiss_warm(ds, tmp), dim, ds.metric) or 0) / n
        for nprobe in [p for p in nprobes if p <= nlist]:
            index.nprobe = nprobe
            res, qps = best_qps(partial(_faiss_search_each, index, ds.queries), len(ds.queries), repeat)
            _, qps_b = best_qps(partial(index.search, ds.queries, K), len(ds.queries), repeat)
            rows.append(
                row(
                    ds,
                    "faiss IVFFlat",
                    f"nlist={nlist} nprobe={nprobe}",
                    round(build, 2),
                    round(bpv),
                    recall_at_k(res, ds.truth),
                    round(qps),
                    round(qps_b),
                )
            )
        del index, quantizer
        gc.collect()


def _pragma_int(conn, name: str) -> int:
    value = conn.execute(f"pragma {name}").fetchall()[0][0]
    assert isinstance(value, int), value
    return value


def bench_sqlite_vec(ds: Dataset, max_queries: int, tmp: Path, rows: list):
    if apsw is None:
        return
    n, dim = ds.base.shape
    path = tmp / "vec.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = apsw.Connection(str(path))
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.execute("pragma journal_mode=wal")
    metric = "cosine" if ds.metric == "cosine" else "l2"
    conn.execute(f"create virtual table vecs using vec0(embedding float[{dim}] distance_metric={metric})")
    t = time.perf_counter()
    with conn:
        conn.executemany(
            "insert into vecs(rowid, embedding) values (?, ?)", ((i, ds.base[i].tobytes()) for i in range(n))
        )
    build = time.perf_counter() - t
    pages = _pragma_int(conn, "page_count") * _pragma_int(conn, "page_size")
    queries = ds.queries[:max_queries]
    sql = "select rowid from vecs where embedding match ? and k = ? order by distance"

    def run():
        return [[r[0] for r in conn.execute(sql, (q.tobytes(), K))] for q in queries]

    run()
    res, qps = best_qps(run, len(queries), 1)
    rows.append(
        row(
            ds,
            "sqlite-vec vec0 (exact)",
            f"{len(queries)} queries",
            round(build, 2),
            round(pages / n),
            recall_at_k(res, ds.truth[: len(queries)]),
            round(qps, 1),
        )
    )
    conn.close()


def bench_numpy(ds: Dataset, repeat: int, rows: list):
    base = ds.base
    sq = (base**2).sum(1) if ds.metric == "l2" else None

    def one(q):
        d = -(base @ q) if sq is None else sq - 2.0 * (base @ q)
        part = np.argpartition(d, K)[:K]
        return part[np.argsort(d[part])]

    res, qps = best_qps(lambda: [one(q) for q in ds.queries], len(ds.queries), repeat)
    _, qps_b = best_qps(lambda: exact_knn(base, ds.queries, K, ds.metric), len(ds.queries), repeat)
    bpv = base.nbytes / base.shape[0] + (8 if sq is not None else 0)
    rows.append(row(ds, "numpy exact", "", 0.0, round(bpv), recall_at_k(res, ds.truth), round(qps, 1), round(qps_b, 1)))


# ---------------------------------------------------------------- filtered


def bench_filtered(ds: Dataset, index: HnswIndex, fh, p, efs, repeat: int, rows: list, with_hnswlib: bool):
    for fname, (queries, allowed_rows) in ds.filters.items():
        _bench_filter(ds, fname, queries, allowed_rows, index, fh, p, efs, repeat, rows, with_hnswlib)


def _bench_filter(ds: Dataset, fname, queries, allowed_rows, index: HnswIndex, fh, p, efs, repeat, rows, with_hnswlib):
    """Every method on one filter of ``ds.filters``: each query with its own allowed rows."""
    base = ds.base
    nq = len(queries)
    truth = []
    for q, rows_ok in zip(queries, allowed_rows, strict=True):
        if rows_ok.shape[0] == 0:
            truth.append(np.empty(0, np.int64))
            continue
        d = exact_distances(base[rows_ok], q[None], ds.metric)[0]
        truth.append(rows_ok[np.argsort(d, kind="stable")[:K]])
    passing = np.array([r.shape[0] for r in allowed_rows])
    info = {
        "filter": fname,
        "queries": nq,
        "mean_pass_fraction": float(passing.mean() / base.shape[0]),
        "queries_with_fewer_than_k_passing": int((passing < K).sum()),
    }

    def frow(method, params, res, qps, **extra):
        rec, full = _filtered_recall(res, truth)
        rows.append(
            dict(
                dataset=ds.name,
                method=method,
                params=params,
                recall_at_10=rec,
                full_k=full,
                qps=round(qps, 1),
                **info,
                **extra,
            )
        )

    plans = [("ours (planner)", None), ("ours (graph walk)", "graph")]
    if index.quantize:
        plans.append(("ours (code scan + re-rank)", "scan"))
    for ef in efs:
        for method, plan in plans:
            res, qps = best_qps(
                partial(search_each_filtered, index, queries, allowed_rows, ef=ef, plan=plan), nq, repeat
            )
            chosen: dict[str, int] = {}
            if plan is None:
                for a in allowed_rows:
                    p_ = index.plan(a.shape[0], K, ef)
                    chosen[p_] = chosen.get(p_, 0) + 1
            frow(method, f"ef={ef}", res, qps, plans_chosen=chosen)
    res, qps = best_qps(partial(search_each_filtered, index, queries, allowed_rows, plan="exact"), nq, repeat)
    frow("ours (exact over passing ids)", "", res, qps)

    def numpy_exact():
        out = []
        for q, a in zip(queries, allowed_rows, strict=True):
            d = exact_distances(base[a], q[None], ds.metric)[0]
            kk = min(K, d.shape[0])
            part = np.argpartition(d, kk - 1)[:kk] if kk else np.empty(0, np.int64)
            out.append(a[part[np.argsort(d[part])]])
        return out

    res, qps = best_qps(numpy_exact, nq, repeat)
    frow("numpy exact over passing rows", "", res, qps)
    if fh is not None:

        def faiss_run(ef):
            out = []
            for q, a in zip(queries, allowed_rows, strict=True):
                params = faiss.SearchParametersHNSW(sel=faiss.IDSelectorBatch(a.astype(np.int64)), efSearch=ef)
                labels = fh.search(q[None], K, params=params)[1][0]
                out.append(labels[labels >= 0])
            return out

        for ef in efs:
            res, qps = best_qps(partial(faiss_run, ef), nq, repeat)
            frow("faiss HNSWFlat + IDSelectorBatch", f"ef={ef}", res, qps)
    if p is not None and with_hnswlib:

        def hnswlib_run():
            out = []
            for q, a in zip(queries, allowed_rows, strict=True):
                ok = np.zeros(base.shape[0], bool)
                ok[a] = True
                try:
                    out.append(p.knn_query(q, K, filter=partial(_passes, ok))[0][0])
                except RuntimeError:  # fewer than k found: hnswlib refuses to answer
                    out.append(np.empty(0, np.int64))
            return out

        for ef in efs:
            p.set_ef(ef)
            res, qps = best_qps(hnswlib_run, nq, 1)
            frow("hnswlib + Python filter", f"ef={ef}", res, qps)


def _passes(ok, i) -> bool:
    """hnswlib's filter: whether row ``i`` passes."""
    return bool(ok[i])


def _filtered_recall(found, truth) -> tuple[float, float]:
    hits = total = full = 0
    for f, t in zip(found, truth, strict=True):
        f = np.asarray(f)
        hits += len(set(f[:K].tolist()) & set(t.tolist()))
        total += len(t)
        full += len(f) >= len(t)
    return (hits / total if total else 1.0), full / max(len(truth), 1)


# ---------------------------------------------------------------- cold start


_COLD = textwrap.dedent("""
    import sys, time
    t0 = time.perf_counter()
    sys.path.insert(0, REPO)
    import numpy as np
    from engine.index import HnswIndex
    t1 = time.perf_counter()
    index = HnswIndex.load(PATH)
    t2 = time.perf_counter()
    index.search(np.asarray(QUERY, dtype=np.float32), 10)
    t3 = time.perf_counter()
    index.search(np.asarray(QUERY, dtype=np.float32), 10)
    t4 = time.perf_counter()
    print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
""")


def cold_start(ds: Dataset, tmp: Path, with_uncached: bool) -> list[dict]:
    index = HnswIndex(ds.base.shape[1], ds.metric, M=M, ef_construction=EF_CONSTRUCTION, build_threads=1)
    index.add(np.arange(ds.base.shape[0]), ds.base)
    path = str(tmp / "cold.hnsw")
    index.save(path)
    code = f"REPO, PATH, QUERY = {str(REPO)!r}, {path!r}, {ds.queries[0].tolist()!r}\n" + _COLD
    out: list[dict[str, Any]] = []
    cache = tempfile.mkdtemp(prefix="numba-cache-", dir=tmp)
    runs = [("empty numba cache (compiles)", True), ("warm numba cache", False)]
    for label, cold in runs:
        if cold and not with_uncached:
            # Warm the private cache without reporting a cold figure (--quick).
            subprocess.run(
                [sys.executable, "-c", code],
                env={**os.environ, "NUMBA_CACHE_DIR": cache},
                capture_output=True,
                timeout=900,
            )
            continue
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "NUMBA_CACHE_DIR": cache},
            capture_output=True,
            text=True,
            timeout=900,
        )
        wall = time.perf_counter() - t
        try:
            imp, load, first, second = (float(x) for x in proc.stdout.split())
        except ValueError:
            out.append({"case": label, "error": proc.stderr[-2000:]})
            continue
        out.append(
            {
                "case": label,
                "dataset": ds.name,
                "import_s": round(imp, 3),
                "load_s": round(load, 3),
                "first_query_s": round(first, 4),
                "second_query_ms": round(second * 1000, 3),
                "process_wall_s": round(wall, 2),
            }
        )
    return out


def parallel_headroom(threads: int, seconds: float = 0.5) -> float:
    """Speed-up of ``threads`` threads over one on work that shares nothing (a compiled loop without
    memory traffic or locks): the most any code can gain on this machine at the moment."""
    from concurrent.futures import ThreadPoolExecutor

    from numba import njit

    @njit(nogil=True, cache=False)
    def spin(n):
        acc = 0.0
        for i in range(n):
            acc += np.sqrt(i + acc * 1e-9)
        return acc

    spin(10)
    n = 1_000_000
    while True:  # about ``seconds`` of work for one thread
        t = time.perf_counter()
        spin(n)
        if time.perf_counter() - t > seconds / threads / 4:
            break
        n *= 2
    work = [n] * threads
    t = time.perf_counter()
    for w in work:
        spin(w)
    one = time.perf_counter() - t
    with ThreadPoolExecutor(threads) as pool:
        t = time.perf_counter()
        list(pool.map(spin, work))
        many = time.perf_counter() - t
    return one / many


def bench_build_threads(ds: Dataset, threads: int, repeat: int, rows: list) -> dict:
    """Build ``ds`` with one and with ``threads`` link threads, alternating; best of ``repeat`` each."""
    before = parallel_headroom(threads)
    n = ds.base.shape[0]
    ids = np.arange(n, dtype=np.int64)
    counts = (1, threads)
    warm = ds.base[: min(n, 3000)]
    for t in counts:  # compile (or load) the kernels of both paths before timing
        HnswIndex(ds.base.shape[1], ds.metric, M=M, ef_construction=EF_CONSTRUCTION, build_threads=t).add(
            np.arange(warm.shape[0]), warm
        )
    best: dict[int, tuple[float, float]] = {t: (float("inf"), 0.0) for t in counts}
    built: dict[int, HnswIndex] = {}
    for _ in range(repeat):
        for t in counts:
            index = HnswIndex(ds.base.shape[1], ds.metric, M=M, ef_construction=EF_CONSTRUCTION, build_threads=t)
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            index.add(ids, ds.base)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if wall < best[t][0]:
                best[t] = (wall, cpu)
            built[t] = index  # the graph is the same each time
    out: dict[str, Any] = {"dataset": ds.name, "n": n, "threads": threads, "repeat": repeat, "builds": []}
    for t in counts:
        index = built[t]
        rec = recall_at_k(search_each(index, ds.queries, ef=64), ds.truth)
        wall, cpu = best[t]
        out["builds"].append(
            {
                "build_threads": t,
                "build_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "cores_used": round(cpu / wall, 2),
                "recall_at_10": rec,
            }
        )
        label = "ours, 1 build thread" if t == 1 else f"ours, {t} build threads"
        rows.append(
            row(
                ds,
                label,
                "ef=64",
                round(wall, 2),
                round(index.nbytes / n),
                rec,
                None,
                build_threads=t,
                build_cpu_s=round(cpu, 2),
                quantized=bool(index.quantize),
            )
        )
    out["speedup"] = round(best[1][0] / best[threads][0], 3)
    out["headroom"] = [round(before, 2), round(parallel_headroom(threads), 2)]
    out["recall_difference"] = round(out["builds"][1]["recall_at_10"] - out["builds"][0]["recall_at_10"], 4)
    return out


def print_build_threads(result: dict) -> None:
    print(f"\n## build threads: {result['dataset']} ({result['n']:,} vectors), best of {result['repeat']} builds each")
    print(f"{'build threads':>14}{'build s':>10}{'CPU s':>10}{'cores used':>12}{'recall@10':>11}")
    for b in result["builds"]:
        print(
            f"{b['build_threads']:>14}{b['build_s']:>10.2f}{b['cpu_s']:>10.2f}{b['cores_used']:>12.2f}"
            f"{b['recall_at_10']:>11.4f}"
        )
    print(
        f"speed-up {result['speedup']:.2f}x on {result['threads']} threads, "
        f"recall@10 difference {result['recall_difference']:+.4f}; "
        "a loop that shares nothing gained {:.2f}x before the builds and {:.2f}x after".format(*result["headroom"])
    )


# ---------------------------------------------------------------- output


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = None
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("numpy", "numba", "llvmlite", "hnswlib", "faiss-cpu", "sqlite-vec", "apsw"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1) if mem else None,
        "os": platform.platform(),
        "versions": versions,
    }


def fmt(v, width=9) -> str:
    if v is None:
        return "-".rjust(width)
    if isinstance(v, float):
        if v < 10:
            return f"{v:.3f}".rjust(width)
        return f"{v:,.0f}".rjust(width)
    if isinstance(v, int):
        return f"{v:,}".rjust(width)
    return str(v).rjust(width)


def print_rows(ds: Dataset, rows: list[dict]) -> None:
    print(
        f"\n## {ds.name}: {ds.base.shape[0]:,} x {ds.base.shape[1]} ({ds.metric}), "
        f"{ds.queries.shape[0]} queries -- {ds.note}"
    )
    print(f"{'method':<26}{'params':<22}{'build s':>9}{'B/vec':>9}{'recall@10':>10}{'QPS':>9}{'batch QPS':>11}")
    for r in rows:
        if r["dataset"] != ds.name or "filter" in r:
            continue
        print(
            f"{r['method']:<26}{r['params']:<22}{fmt(r['build_s'])}{fmt(r['bytes_per_vector'])}"
            f"{r['recall_at_10']:>10.4f}{fmt(r['qps'])}{fmt(r['qps_batch'], 11)}"
        )


def print_filtered(ds: Dataset, rows: list[dict]) -> None:
    frows = [r for r in rows if r["dataset"] == ds.name and "filter" in r]
    if not frows:
        return
    print(f"\n## {ds.name}: filtered queries (k=10; full k = share of queries answered with min(k, passing) ids)")
    print(
        f"{'filter':<24}{'pass':>7}  {'method':<34}{'params':>7}{'recall@10':>10}{'full k':>8}{'QPS':>9}  plans chosen"
    )
    for r in frows:
        chosen = ", ".join(f"{k} {v}" for k, v in sorted(r.get("plans_chosen", {}).items()))
        print(
            f"{r['filter']:<24}{r['mean_pass_fraction']:>7.2%}  {r['method']:<34}{r['params']:>7}"
            f"{r['recall_at_10']:>10.4f}{r['full_k']:>8.2f}{fmt(r['qps'])}  {chosen}"
        )


def markdown(result: dict) -> str:
    """The tables of a result file as Markdown (for docs/ann.md)."""
    out = []
    for name, info in result["datasets"].items():
        out.append(f"\n### {name}: {info['n']:,} x {info['dim']} ({info['metric']}), {info['queries']} queries\n")
        out.append("| method | params | build s | bytes/vector | recall@10 | QPS | batch QPS |")
        out.append("|---|---|---:|---:|---:|---:|---:|")
        for r in result["rows"]:
            if r["dataset"] != name or "filter" in r:
                continue
            build = r["build_s"]
            build = f"{build:.2f}" if build < 10 else f"{build:.0f}"
            batch = "" if r["qps_batch"] is None else f"{r['qps_batch']:,.0f}"
            qps = "" if r["qps"] is None else f"{r['qps']:,.0f}"
            out.append(
                f"| {r['method']} | {r['params']} | {build} | {r['bytes_per_vector']:,} | "
                f"{r['recall_at_10']:.4f} | {qps} | {batch} |"
            )
        frows = [r for r in result["rows"] if r["dataset"] == name and "filter" in r]
        if frows:
            out.append(
                f"\n**{name}, filtered** (k = 10; *full k*: share of queries answered with min(k, passing) ids)\n"
            )
            out.append("| filter | passing | method | params | recall@10 | full k | QPS | plans chosen |")
            out.append("|---|---:|---|---|---:|---:|---:|---|")
            for r in frows:
                chosen = ", ".join(f"{k} {v}" for k, v in sorted(r.get("plans_chosen", {}).items()))
                out.append(
                    f"| {r['filter']} | {r['mean_pass_fraction']:.2%} | {r['method']} | {r['params']} | "
                    f"{r['recall_at_10']:.4f} | {r['full_k']:.2f} | {r['qps']:,.0f} | {chosen} |"
                )
    bt = result.get("build_threads")
    if bt:
        out.append(f"\n### Build threads: {bt['dataset']}, best of {bt['repeat']} builds each\n")
        out.append("| build threads | build s | CPU s | cores used | recall@10 |")
        out.append("|---:|---:|---:|---:|---:|")
        out.extend(
            f"| {b['build_threads']} | {b['build_s']:.2f} | {b['cpu_s']:.2f} | {b['cores_used']:.2f} | "
            f"{b['recall_at_10']:.4f} |"
            for b in bt["builds"]
        )
        out.append(
            f"\nSpeed-up on {bt['threads']} threads: {bt['speedup']:.2f}x (a loop that shares nothing: "
            "{:.2f}x before the builds, {:.2f}x after)".format(*bt["headroom"])
        )
    if result.get("cold_start"):
        out.append("\n### Cold start (first query in a fresh process)\n")
        out.append("| numba cache | import s | index load s | first query s | second query ms | process wall s |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for c in result["cold_start"]:
            if "error" in c:
                out.append(f"| {c['case']} | failed | | | | |")
                continue
            out.append(
                f"| {c['case']} | {c['import_s']} | {c['load_s']} | {c['first_query_s']} | "
                f"{c['second_query_ms']} | {c['process_wall_s']} |"
            )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small synthetic set and fewer settings (smoke run)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ann.json"), help="JSON output path")
    ap.add_argument(
        "--data", default=None, help=f"folder of the real vectors (default: ${DATA_ENV} or <repo>/../shared/data/ann)"
    )
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per figure, best kept (default 3)")
    ap.add_argument("--only", default=None, help="comma-separated subset: sift,sigmod,synthetic,threads,cold")
    ap.add_argument(
        "--threads-n",
        type=int,
        default=None,
        help="vectors of the build-threads comparison (default 50,000; 10,000 with --quick)",
    )
    ap.add_argument("--build-threads", type=int, default=2, help="link threads compared with one (default 2)")
    ap.add_argument(
        "--markdown",
        metavar="JSON",
        default=None,
        help="print the tables of an earlier result file as Markdown and exit",
    )
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    if args.data:
        os.environ[DATA_ENV] = args.data
    quick = args.quick
    repeat = args.repeat or (2 if quick else 3)
    only = set(args.only.split(",")) if args.only else {"sift", "sigmod", "synthetic", "threads", "cold"}
    if faiss is not None:
        faiss.omp_set_num_threads(1)
    efs = [16, 32, 64, 128] if quick else [10, 16, 32, 64, 128, 256]
    started = time.time()
    t_start = time.perf_counter()
    notes = []
    for lib, mod in (("hnswlib", hnswlib), ("faiss", faiss), ("apsw/sqlite-vec", apsw)):
        if mod is None:
            notes.append(f"{lib} not installed: skipped (pip install -e '.[bench]')")
            print(notes[-1])
    folder = data_dir()
    datasets: list[Dataset] = []
    if "sift" in only or "sigmod" in only:
        if not folder.is_dir():
            notes.append(f"real vectors not found in {folder}: set {DATA_ENV}")
            print(notes[-1])
        else:
            if "sift" in only:
                datasets += load_sift(folder)
            if "sigmod" in only:
                datasets.append(load_sigmod(folder, 300 if quick else 1000))
    if "synthetic" in only:
        n, nq = (10_000, 200) if quick else (100_000, 1000)
        t = time.perf_counter()
        datasets.append(load_synthetic(n, nq, 100 if quick else 300))
        print(f"synthetic set and its ground truth: {time.perf_counter() - t:.1f} s")

    rows: list[dict] = []
    profile: dict = {}
    cold: list[dict] = []
    threads_result: dict | None = None
    if "threads" in only:
        n_t = args.threads_n or (10_000 if quick else 50_000)
        t = time.perf_counter()
        base, queries = synthetic(n_t, 200 if quick else 500, seed=2025)
        ds_t = Dataset(
            f"synthetic {n_t // 1000}k x 512 (build threads)",
            "cosine",
            base,
            queries,
            "seeded gaussian mixture shaped like CLIP embeddings (seed 2025)",
        )
        threads_result = bench_build_threads(ds_t, args.build_threads, repeat, rows)
        datasets.append(ds_t)
        print_rows(ds_t, rows)
        print_build_threads(threads_result)
        print(f"[build threads: {time.perf_counter() - t:.0f} s]")
    with tempfile.TemporaryDirectory(prefix="shoebox-ann-") as tmpname:
        tmp = Path(tmpname)
        for ds in datasets:
            if threads_result is not None and ds.name == threads_result["dataset"]:
                continue  # measured above
            t = time.perf_counter()
            n = ds.base.shape[0]
            index = bench_ours(ds, efs, repeat, tmp, rows, profile)
            p = bench_hnswlib(ds, efs, repeat, tmp, rows)
            fh = bench_faiss_hnsw(ds, efs, repeat, tmp, rows)
            root = max(8, int(np.sqrt(n)))
            nlists = [root, 4 * root] if not quick else [root]
            bench_faiss_ivf(ds, nlists, [1, 2, 4, 8, 16, 32, 64], repeat, tmp, rows)
            bench_sqlite_vec(ds, 20 if n > 20000 else 100, tmp, rows)
            bench_numpy(ds, repeat if n <= 20000 else 1, rows)
            if ds.filters:
                bench_filtered(
                    ds, index, fh, p, [64, 128] if not quick else [64], repeat, rows, with_hnswlib=n <= 20000
                )
            print_rows(ds, rows)
            print_filtered(ds, rows)
            print(f"(ours at ef=64: {profile[ds.name]})")
            print(f"[{ds.name}: {time.perf_counter() - t:.0f} s]")
            del index, p, fh
            gc.collect()
        others = [d for d in datasets if threads_result is None or d.name != threads_result["dataset"]]
        if "cold" in only and others:
            cold = cold_start(others[0], tmp, with_uncached=not quick)
            print("\n## cold start: first query in a fresh process (sift5k index)")
            for c in cold:
                print("  ", c)

    result = {
        "machine": machine(),
        "command": " ".join([".venv/bin/python", "benchmarks/ann.py", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "wall_s": round(time.perf_counter() - t_start, 1),
        "quick": quick,
        "k": K,
        "M": M,
        "ef_construction": EF_CONSTRUCTION,
        "repeat": repeat,
        "notes": notes,
        "datasets": {
            d.name: {
                "n": d.base.shape[0],
                "dim": d.base.shape[1],
                "metric": d.metric,
                "queries": d.queries.shape[0],
                "note": d.note,
            }
            for d in datasets
        },
        "rows": rows,
        "profile": profile,
        "build_threads": threads_result,
        "cold_start": cold,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    print(f"\nwrote {out} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
