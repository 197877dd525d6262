"""HNSW graph index over the store's vectors, with filters, deletes and a file format.

The graph is a derived acceleration structure: SQLite (sqlite-vec) holds the
vectors; this index answers "the k nearest items" in well under a millisecond
and is rebuilt from the store whenever its file is missing, damaged or stale.

Design in one paragraph: nodes live in flat numpy arrays (see
:mod:`engine.index._kernels` for the layout); layer 0 is a ``(capacity, 2M+1)``
int32 table, the upper layers a separate table addressed through a per-node
row offset.  Each search is one numba call (greedy descent + layer-0 beam
search + exact re-rank) that releases the GIL.  When quantization is on, the
walk reads 4-bit per-dimension codes (an eighth of the memory traffic of
float32, for an eighth more memory) and the final ``ef`` candidates are
re-ranked with the float32 vectors, so returned distances are exact.  A single writer (add, delete, compact) runs at
a time under a lock; readers take no lock: a new node becomes reachable only
after all its own links are written, and capacity growth builds new arrays
and publishes them with one attribute assignment, so a running search keeps
a consistent snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import mmap
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from engine.errors import Cancelled, IndexCorruptError, IndexFileError, IndexStaleError, UsageError

from . import _kernels as K

__all__ = ["HnswIndex", "warm_up"]

_METRICS = {"l2": K.METRIC_L2, "cosine": K.METRIC_COSINE}
_METRIC_NAMES = {v: k for k, v in _METRICS.items()}

_MAGIC = b"SHBXHNSW"
_VERSION = 2
# magic, version, header size, dim, metric, quantize, has generation, reserved,
# M, M0, ef_construction, ef_search, slots, upper rows, linked nodes, seed,
# entry word, generation, payload size, payload sha256
_HEADER_V1 = struct.Struct("<8sIIIBBBBIIIIQQQQqqQ32s")
_HEADER_V1_SIZE = _HEADER_V1.size + 4  # + crc32 of the header fields
# Version 2 keeps the same fields, the payload sha256 split in two: the graph
# section (ids, levels, liveness, links, code ranges), checked whenever the file
# is opened, and the data section (codes and vectors), checked by
# :meth:`HnswIndex.verify`.  Every array starts on a 64-byte boundary so that
# the file can be memory-mapped and used in place: opening it reads the graph
# section only, and a search pages in the few vectors it touches.
_HEADER = struct.Struct("<8sIIIBBBBIIIIQQQQqqQ32s32s")
_HEADER_SIZE = _HEADER.size + 4
_ALIGN = 64
_PAYLOAD_START = -(-_HEADER_SIZE // _ALIGN) * _ALIGN
# Map saved files instead of reading them, where a mapped file may still be
# replaced by the next save (POSIX renames over an open file; Windows does not).
_MAP_FILES = os.name != "nt"
_MAX_LEVEL = 31
# Inserts are linked in chunks so that progress, cancel and readers' view of
# ``n_slots`` advance during a large add.
_CHUNK = 4096
# With several build threads, nodes are linked in batches (see the "building in
# batches" notes in _kernels): each node of a batch searches the graph as it was
# before the batch, so the graph is first grown one node at a time to this size,
# where a batch is a small share of it.  A batch is at least _BATCH nodes (and 16
# a thread), so that every thread count up to 8 builds the same graph.
_PARALLEL_FROM = 2048
_BATCH = 128
# Default cap on build threads: beyond it memory bandwidth, not cores, limits.
_MAX_BUILD_THREADS = 8


class _Graph:
    """One consistent set of arrays; replaced as a whole, never resized in place."""

    __slots__ = (
        "alive",
        "cap",
        "cnorm",
        "codes",
        "hkeys",
        "hused",
        "hvals",
        "labels",
        "levels",
        "links0",
        "n",
        "qparams",
        "state",
        "up_links",
        "up_off",
        "up_used",
        "vecs",
    )

    def __init__(self, dim: int, M: int, M0: int, cap: int, up_cap: int, quantize: bool, hash_cap: int, l2: bool):
        self.cap = cap
        self.n = 0
        self.up_used = 0
        self.vecs = np.zeros((cap, dim), np.float32)
        self.codes = np.zeros((cap if quantize else 0, (dim + 1) // 2), np.uint8)
        self.cnorm = np.zeros(cap if quantize and l2 else 0, np.float32)
        self.qparams = np.zeros((2, dim), np.float32)
        self.qparams[1] = 1.0
        self.labels = np.zeros(cap, np.int64)
        self.levels = np.zeros(cap, np.int8)
        self.alive = np.zeros(cap, np.uint8)
        self.links0 = np.zeros((cap, M0 + 1), np.int32)
        self.up_links = np.zeros((up_cap, M + 1), np.int32)
        self.up_off = np.full(cap, -1, np.int32)
        self.state = np.array([-1, 0, 0, 0], np.int64)
        self.hkeys = np.zeros(hash_cap, np.int64)
        self.hvals = np.full(hash_cap, -1, np.int32)
        self.hused = 0

    def copy_into(self, other: _Graph) -> None:
        """Copy the first ``n`` nodes (and everything shared) into a larger graph."""
        n, u = self.n, self.up_used
        other.n, other.up_used = n, u
        other.vecs[:n] = self.vecs[:n]
        if self.codes.shape[0]:
            other.codes[:n] = self.codes[:n]
        if self.cnorm.shape[0]:
            other.cnorm[:n] = self.cnorm[:n]
        other.qparams[:] = self.qparams
        other.labels[:n] = self.labels[:n]
        other.levels[:n] = self.levels[:n]
        other.alive[:n] = self.alive[:n]
        other.links0[:n] = self.links0[:n]
        other.up_links[:u] = self.up_links[:u]
        other.up_off[:n] = self.up_off[:n]
        other.state[:] = self.state
        if other.hkeys.shape[0] == self.hkeys.shape[0]:
            other.hkeys[:] = self.hkeys
            other.hvals[:] = self.hvals
            other.hused = self.hused

    @property
    def nbytes(self) -> int:
        return sum(
            getattr(self, a).nbytes
            for a in (
                "vecs",
                "codes",
                "cnorm",
                "qparams",
                "labels",
                "levels",
                "alive",
                "links0",
                "up_links",
                "up_off",
                "state",
                "hkeys",
                "hvals",
            )
        )


def _hash_cap_for(n: int) -> int:
    """Smallest power of two keeping the id table at most three quarters full."""
    return 1 << max(4, math.ceil(math.log2(max(n / 0.75, 16))))


class HnswIndex:
    """Hierarchical navigable small-world graph over (item id, vector) pairs.

    ``HnswIndex(dim, metric="cosine", M=16, ef_construction=200)``

    Args:
        dim: vector dimension.
        metric: ``"cosine"`` (vectors are normalized on the way in; distance is
            ``1 - cosine similarity``) or ``"l2"`` (squared Euclidean distance).
        M: links per node on the upper layers (``2 * M`` on layer 0).
        ef_construction: beam width while inserting; larger builds slower and better.
        ef_search: default beam width of :meth:`search` (raised to ``k`` when smaller).
        quantize: walk the graph over 4-bit per-dimension codes and re-rank
            with the exact float32 vectors.  ``None`` (the default) turns it on
            for dimensions of 256 and more, where memory traffic dominates.
        seed: seed of the level generator; the same inserts give the same graph
            (for a given number of build threads: one thread, or several).
        build_threads: threads that link new items in :meth:`add`.  ``None``
            or 0 (the default) picks the cores this process may use, at most
            8; 1 links one item after another.  Several threads link batches
            of items together once the graph holds a few thousand; the
            recall is the same.  The attribute of that name may be changed
            between adds.

    Raises:
        UsageError: a parameter is out of range or the metric is unknown.

    Thread safety: any number of threads may search while one thread adds,
    deletes or compacts (writers are serialized by an internal lock).
    """

    def __init__(
        self,
        dim: int,
        metric: str = "cosine",
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        quantize: bool | None = None,
        seed: int = 100,
        build_threads: int | None = None,
    ):
        if metric not in _METRICS:
            raise UsageError(f"unknown metric {metric!r}; use 'cosine' or 'l2'")
        if not 1 <= int(dim) <= 65536:
            raise UsageError(f"vector dimension must be between 1 and 65536, not {dim}")
        if not 2 <= int(M) <= 256:
            raise UsageError(f"M must be between 2 and 256, not {M}")
        if int(ef_construction) < 1 or int(ef_search) < 1:
            raise UsageError("ef_construction and ef_search must be at least 1")
        if build_threads is not None and int(build_threads) < 0:
            raise UsageError(f"build_threads must be 0 (all cores) or more, not {build_threads}")
        self.dim = int(dim)
        self.metric = metric
        self.M = int(M)
        self.M0 = 2 * self.M
        self.ef_construction = int(ef_construction)
        self.ef_search = int(ef_search)
        self.quantize = bool(self.dim >= 256 if quantize is None else quantize)
        self.seed = int(seed)
        self.build_threads = int(build_threads or 0)
        self.generation: int | None = None
        self._metric_code = _METRICS[metric]
        self._search_fn = K.SEARCH[self._metric_code, self.quantize]
        self._mult = 1.0 / math.log(self.M)
        self._rng = np.random.default_rng(self.seed)
        self._lock = threading.Lock()
        self._g = self._new_graph(0, 0, 16)
        self._scratch_pool: list[list[np.ndarray]] = []
        self._trained = False
        # (arrays, sha256, path) of a file opened without checking its vectors; see verify().
        self._unverified: tuple[list[np.ndarray], bytes, Path] | None = None
        self._damage = ""  # why verify() failed, once it has
        self._n_alive = 0
        self._n_deleted = 0

    # ------------------------------------------------------------------ info

    def __len__(self) -> int:
        """Number of searchable (added and not deleted) items."""
        return self._n_alive

    def __contains__(self, item_id: int) -> bool:
        g = self._g
        return K.hash_lookup(g.hkeys, g.hvals, np.int64(item_id)) >= 0

    def __repr__(self) -> str:
        return (
            f"HnswIndex(dim={self.dim}, metric={self.metric!r}, M={self.M}, "
            f"ef_construction={self.ef_construction}, items={len(self)}, deleted={self._n_deleted})"
        )

    @property
    def deleted_count(self) -> int:
        """Deleted items whose nodes still occupy the graph (reclaimed by :meth:`compact`)."""
        return self._n_deleted

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (vectors, codes, graph, id table)."""
        return self._g.nbytes

    def get_vectors(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """``(found, vectors)``: which of ``ids`` are searchable, and their stored (normalized) vectors."""
        g = self._g
        keys = np.asarray(ids, dtype=np.int64).ravel()
        nodes = np.array([K.hash_lookup(g.hkeys, g.hvals, k) for k in keys], np.int64)
        found = nodes >= 0
        if found.any():
            found[found] = g.alive[nodes[found]] != 0
        return found, g.vecs[nodes[found]].copy()

    def ids(self) -> np.ndarray:
        """Item ids currently searchable, as int64, in insertion order."""
        g = self._g
        n = g.n
        return g.labels[:n][g.alive[:n] != 0].copy()

    @property
    def slots(self) -> int:
        """Node slots in use: searchable items plus deleted ones not yet reclaimed."""
        return self._g.n

    def live_nodes(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(nodes, ids, vectors)`` of the searchable items whose nodes sit at slots ``start`` to ``stop``.

        A consistent copy, taken under the writer lock.  Nodes keep their slot
        until :meth:`compact`, and new items always take slots after
        :attr:`slots`, so a caller rebuilding the graph elsewhere can find what
        was added since a copy (``live_nodes(old_slots)``) and what was deleted
        since (:meth:`still_alive`).  ``stop`` defaults to :attr:`slots`.
        """
        self.verify()  # a rebuilt graph must not carry vectors of a damaged file
        with self._lock:
            g = self._g
            n = g.n if stop is None else min(int(stop), g.n)
            nodes = start + np.flatnonzero(g.alive[start:n])
            return nodes.astype(np.int64), g.labels[nodes].copy(), g.vecs[nodes].copy()

    def still_alive(self, nodes: np.ndarray) -> np.ndarray:
        """Which of ``nodes`` (from :meth:`live_nodes`) are still searchable: a boolean array.

        A node that was deleted, or whose id was added again with a new vector,
        is not (its id now lives at a later slot, if anywhere).
        """
        with self._lock:
            return self._g.alive[np.asarray(nodes, np.int64)] != 0

    # ------------------------------------------------------------------ writing

    def add(
        self,
        ids,
        vectors,
        on_progress: Callable[[int, int, str], None] | None = None,
        cancel_check: Callable[[], bool] | None = None,
    ) -> int:
        """Insert items; an id already present is replaced by its new vector.

        Args:
            ids: int64 item ids from the store, shape (n,).
            vectors: shape (n, dim) (or (dim,) with one id); any real dtype.
            on_progress: called as ``on_progress(done, total, message)`` between chunks.
            cancel_check: returns True to stop; items linked so far stay in the index.

        Returns:
            The number of items inserted.

        Raises:
            UsageError: shapes disagree, an id repeats within the call, or a
                vector holds NaN or infinity.
            Cancelled: ``cancel_check`` asked to stop (what was linked stays).
        """
        ids, vectors = self._check_batch(ids, vectors)
        total = ids.shape[0]
        if total == 0:
            return 0
        # Validate (and find the code ranges) chunk by chunk, so that a large
        # add never holds a second full copy of its vectors.
        lo = np.full(self.dim, np.inf, np.float32)
        hi = np.full(self.dim, -np.inf, np.float32)
        for a in range(0, total, _CHUNK):
            v = self._prepared(vectors[a : a + _CHUNK])
            np.minimum(lo, v.min(axis=0), out=lo)
            np.maximum(hi, v.max(axis=0), out=hi)
        done = 0
        with self._lock:
            u = 1.0 - self._rng.random(total)
            levels = np.minimum((-np.log(u) * self._mult).astype(np.int64), _MAX_LEVEL)
            self._prepare_codes(lo, hi)
            self._reserve(total, int(levels.sum()))
            linker = _Linker(self._build_thread_count(), self._g.cap)  # the writer's own, dropped after
            try:
                while done < total:
                    if cancel_check is not None and cancel_check():
                        raise Cancelled(f"index build cancelled after {done} of {total} items")
                    stop = min(total, done + _CHUNK)
                    self._insert_chunk(ids[done:stop], self._prepared(vectors[done:stop]), levels[done:stop], linker)
                    done = stop
                    if on_progress is not None:
                        on_progress(done, total, "linking vectors into the index")
            finally:
                linker.close()
        return total

    def _build_thread_count(self) -> int:
        if self.build_threads > 0:
            return self.build_threads
        # Imported here: the model package costs a fifth of a second to import,
        # which a process that only searches a loaded index need not pay.
        from engine.models.runtime import available_cores

        return min(available_cores(), _MAX_BUILD_THREADS)

    def delete(self, ids) -> int:
        """Remove items from search results at once.

        Their nodes stay in the graph as waypoints until :meth:`compact`.
        Unknown ids are ignored.  Returns how many items were deleted.
        """
        keys = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).ravel())
        if keys.size == 0:
            return 0
        with self._lock:
            g = self._g
            nodes = np.empty(keys.shape[0], np.int32)
            K.hash_delete_many(g.hkeys, g.hvals, keys, nodes)
            hit = nodes[nodes >= 0]
            g.alive[hit] = 0
            self._n_alive -= hit.shape[0]
            self._n_deleted += hit.shape[0]
            return int(hit.shape[0])

    def compact(self) -> None:
        """Rebuild the graph from the items not deleted, reclaiming their space.

        Searches keep running on the old graph until the new one is published.
        """
        self.verify()
        with self._lock:
            g = self._g
            n = g.n
            keep = np.flatnonzero(g.alive[:n])
            fresh = HnswIndex(
                self.dim,
                self.metric,
                self.M,
                self.ef_construction,
                self.ef_search,
                self.quantize,
                self.seed,
                build_threads=self.build_threads,
            )
            if keep.size:
                fresh.add(g.labels[keep], g.vecs[keep])
            self._g = fresh._g
            self._trained = fresh._trained
            self._rng = fresh._rng
            self._n_alive = fresh._n_alive
            self._n_deleted = 0

    def _check_batch(self, ids, vectors) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids)
        if ids.ndim == 0:
            ids = ids.reshape(1)
        if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
            raise UsageError("ids must be a one-dimensional array of integers")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors)
        if vectors.ndim == 1 and ids.shape[0] == 1:
            vectors = vectors.reshape(1, -1)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or vectors.shape[0] != ids.shape[0]:
            raise UsageError(
                f"expected {ids.shape[0]} vectors of dimension {self.dim}, got an array of shape {vectors.shape}"
            )
        if not (np.issubdtype(vectors.dtype, np.floating) or np.issubdtype(vectors.dtype, np.integer)):
            raise UsageError(f"vectors must be numbers, not {vectors.dtype}")
        if np.unique(ids).shape[0] != ids.shape[0]:
            raise UsageError("an id appears twice in one add() call")
        return ids, vectors

    def _prepared(self, chunk: np.ndarray) -> np.ndarray:
        """A float32 copy of ``chunk``, checked finite and normalized for cosine."""
        v = np.array(chunk, dtype=np.float32, order="C", copy=True)
        if not np.isfinite(v).all():
            raise UsageError("vectors contain NaN or infinity; check the encoder output")
        if self._metric_code == K.METRIC_COSINE:
            norms = np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
            np.divide(v, norms, out=v, where=norms > 0)
        return v

    def _prepare_codes(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Fit or widen the per-dimension code ranges to cover [lo, hi]."""
        if not self.quantize:
            return
        g = self._g
        if self._trained:
            cur_lo = g.qparams[0]
            cur_hi = cur_lo + K.CODE_MAX * g.qparams[1]
            if np.all(lo >= cur_lo) and np.all(hi <= cur_hi):
                return
            lo = np.minimum(lo, cur_lo)
            hi = np.maximum(hi, cur_hi)
        # A margin so that later, slightly wider data rarely forces a re-encode
        # (which copies the arrays once).
        span = hi - lo
        span = np.where(span > 0, span, np.maximum(np.abs(hi), 1e-3))
        lo = lo - 0.05 * span
        hi = hi + 0.05 * span
        qp = np.stack([lo, (hi - lo) / K.CODE_MAX]).astype(np.float32)
        self._publish_grown(g.cap, g.up_links.shape[0], g.hkeys.shape[0], qparams=qp)
        self._trained = True

    def _new_graph(self, cap: int, up_cap: int, hash_cap: int) -> _Graph:
        return _Graph(self.dim, self.M, self.M0, cap, up_cap, self.quantize, hash_cap, self._metric_code == K.METRIC_L2)

    def _reserve(self, extra: int, extra_rows: int) -> None:
        """Make room for ``extra`` more nodes, ``extra_rows`` upper-layer rows and their ids.

        Growth is geometric (x1.5) so that many small adds copy the arrays
        only a logarithmic number of times; one large add allocates exactly.
        """
        g = self._g
        need = g.n + extra
        up_need = g.up_used + extra_rows
        h_need = _hash_cap_for(g.hused + extra)
        if need <= g.cap and up_need <= g.up_links.shape[0] and h_need <= g.hkeys.shape[0]:
            return
        cap = max(need, g.cap + g.cap // 2) if need > g.cap else g.cap
        up_cap = g.up_links.shape[0]
        if up_need > up_cap:
            up_cap = max(up_need, up_cap + up_cap // 2)
        self._publish_grown(cap, up_cap, max(h_need, g.hkeys.shape[0]))

    def _publish_grown(self, cap: int, up_cap: int, hash_cap: int, qparams: np.ndarray | None = None) -> None:
        old = self._g
        new = self._new_graph(cap, up_cap, hash_cap)
        old.copy_into(new)
        if qparams is not None:
            new.qparams[:] = qparams
            K.encode_rows(new.vecs, new.codes, new.cnorm, new.qparams, 0, new.n, self._metric_code)
        if new.hkeys.shape[0] != old.hkeys.shape[0]:
            n = old.n
            live = np.flatnonzero(old.alive[:n]).astype(np.int32)
            replaced = np.empty(live.shape[0], np.int32)
            new.hused = K.hash_insert_many(new.hkeys, new.hvals, old.labels[live], live, replaced)
        self._g = new  # one assignment: readers see the old or the new arrays, never a mix

    def _insert_chunk(self, ids: np.ndarray, vecs: np.ndarray, levels: np.ndarray, linker: _Linker) -> None:
        """Write one chunk's rows and link them (room was reserved by :meth:`_reserve`)."""
        g = self._g
        cnt = ids.shape[0]
        rows_needed = int(levels.sum())
        assert g.n + cnt <= g.cap and g.up_used + rows_needed <= g.up_links.shape[0]
        assert linker.cap >= g.cap
        # An id that is already present: retire its old node first, so the id
        # is never returned twice.
        old_nodes = np.empty(cnt, np.int32)
        K.hash_delete_many(g.hkeys, g.hvals, ids, old_nodes)
        old_hit = old_nodes[old_nodes >= 0]
        g.alive[old_hit] = 0
        self._n_alive -= old_hit.shape[0]
        self._n_deleted += old_hit.shape[0]

        start, stop = g.n, g.n + cnt
        g.vecs[start:stop] = vecs
        g.labels[start:stop] = ids
        g.levels[start:stop] = levels
        offs = np.full(cnt, -1, np.int32)
        has_up = levels > 0
        offs[has_up] = g.up_used + (np.cumsum(levels) - levels)[has_up]
        g.up_off[start:stop] = offs
        if self.quantize:
            K.encode_rows(g.vecs, g.codes, g.cnorm, g.qparams, start, stop, self._metric_code)
        g.up_used += rows_needed
        one_by_one = stop
        if linker.threads > 1:
            # Small graphs grow one node at a time (a batch would be a large share of them).
            one_by_one = min(stop, start + max(0, _PARALLEL_FROM - int(g.state[1])))
        if one_by_one > start:
            K.INSERT[self._metric_code](
                start,
                one_by_one,
                g.levels,
                g.vecs,
                self.M,
                self.M0,
                self.ef_construction,
                self._n_deleted > 0,
                g.alive,
                g.links0,
                g.up_links,
                g.up_off,
                g.state,
                linker.visited[0],
            )
        batch = max(_BATCH, 16 * linker.threads)
        for a in range(one_by_one, stop, batch):
            self._link_batch(g, a, min(stop, a + batch), linker)
        g.n = stop
        nodes = np.arange(start, stop, dtype=np.int32)
        replaced = np.empty(cnt, np.int32)
        g.hused += K.hash_insert_many(g.hkeys, g.hvals, ids, nodes, replaced)
        self._n_alive += cnt

    def _link_batch(self, g: _Graph, start: int, stop: int, linker: _Linker) -> None:
        """Link nodes [start, stop) together on the linker's threads (the three steps in _kernels)."""
        levels = g.levels
        depth = int(levels[start:stop].max()) + 1
        sel = np.zeros((stop - start, depth, self.M), np.int32)
        nsel = np.zeros((stop - start, depth), np.int32)
        packed = int(g.state[0])
        has_deleted = self._n_deleted > 0
        parts = linker.threads
        select = K.BATCH_SELECT[self._metric_code]
        backlink = K.BATCH_BACKLINK[self._metric_code]

        taken = np.zeros(1, np.int64)  # the batch's next node, for the threads to take

        def choose(part: int) -> None:
            select(
                taken,
                start,
                stop,
                levels,
                g.vecs,
                self.M,
                self.ef_construction,
                has_deleted,
                g.alive,
                g.links0,
                g.up_links,
                g.up_off,
                packed,
                linker.visited[part],
                linker.cd[part],
                linker.ci[part],
                sel,
                nsel,
            )

        def link_back(part: int) -> None:
            backlink(
                part, parts, start, stop, levels, g.vecs, self.M, self.M0, g.links0, g.up_links, g.up_off, sel, nsel
            )

        linker.run(choose)
        linker.run(link_back)
        K.publish_batch(start, stop, levels, g.alive, g.state)

    # ------------------------------------------------------------------ searching

    def _query(self, query) -> np.ndarray:
        q = np.asarray(query, dtype=np.float32)
        if q.shape != (self.dim,):
            q = q.reshape(-1)
            if q.shape[0] != self.dim:
                raise UsageError(f"query has dimension {q.shape[0]}, the index {self.dim}")
        if not q.flags.c_contiguous:
            q = np.ascontiguousarray(q)
        return q

    def _scratch(self, cap: int, heap: bool) -> list[np.ndarray]:
        """A reader's private [visited tags, candidate distances, candidate nodes].

        The candidate heap (8 bytes a node) is only needed by searches with a
        filter or with deleted nodes; plain searches use a small sorted pool.
        """
        try:
            s = self._scratch_pool.pop()
        except IndexError:
            s = [_NO_TAGS, _NO_F32, _NO_I32]
        if s[0].shape[0] < cap + 1:
            s[0] = np.zeros(cap + 1, np.uint16)
        if heap and s[1].shape[0] < cap + 1:
            s[1] = np.empty(cap + 1, np.float32)
            s[2] = np.empty(cap + 1, np.int32)
        return s

    def plan(self, n_allowed: int, k: int = 10, ef: int | None = None) -> str:
        """How :meth:`search` answers a filter passing ``n_allowed`` items.

        Returns one of:

        - ``"exact"``: exact scan of the passing vectors (few pass);
        - ``"scan"``: scan of the passing items' 4-bit codes, exact re-rank
          of the best ``ef`` (many pass, but too few for a good walk; only
          with ``quantize``);
        - ``"graph"``: filtered graph walk (most pass).

        Cost model in units of one graph node visit of a cache-resident
        index, fitted on ``benchmarks/ann.py`` (M=16, 2 cores): a plain walk
        visits about ``12 * ef + 100`` nodes, a filtered one ``1/s`` times as
        many when a fraction ``s`` passes (at most every node); an exact
        distance costs ``0.4 + 0.0012 * dim`` visits, a code distance half a
        visit.  Reads that outgrow the caches (graph or gathered vectors over
        8 MB) cost up to 2.5-3 times more.  Exact is kept while it costs under
        three times the code scan, since it is exact.
        """
        n = max(self._n_alive, 1)
        n_allowed = min(int(n_allowed), n)
        k = max(int(k), 1)
        if n_allowed <= 4 * k:
            return "exact"
        ef = max(int(ef or self.ef_search), k)
        walk_bytes = (self.dim + 1) // 2 if self.quantize else 4 * self.dim
        visit = _cache_factor(n * (walk_bytes + 4 * (self.M0 + 1)), 2.5)
        exact_unit = 0.4 + 0.0012 * self.dim
        costs = {
            "exact": n_allowed * exact_unit * _cache_factor(n_allowed * 4 * self.dim, 3.0),
            "graph": min(float(n), (12.0 * ef + 100.0) * n / n_allowed) * visit,
        }
        if self.quantize:
            costs["scan"] = n_allowed * 0.5 + 2.0 * ef * exact_unit * visit
            if costs["exact"] <= 3.0 * costs["scan"]:
                del costs["scan"]
        return min(costs, key=costs.__getitem__)

    def prefers_exact(self, n_allowed: int, k: int = 10, ef: int | None = None) -> bool:
        """Whether exact search over the ``n_allowed`` passing ids is the best plan.

        For a query planner deciding before it calls :meth:`search` (which
        follows :meth:`plan` by itself).
        """
        return self.plan(n_allowed, k, ef) == "exact"

    def _filter(self, g: _Graph, allowed) -> tuple[np.ndarray, np.ndarray]:
        keys = np.ascontiguousarray(np.asarray(allowed, dtype=np.int64).ravel())
        return K.build_filter(keys, g.hkeys, g.hvals, g.alive, g.cap)

    def search(
        self, query, k: int = 10, ef: int | None = None, allowed=None, plan: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest items to ``query``.

        Args:
            query: vector of shape (dim,).
            k: how many results.
            ef: beam width (default ``ef_search``; raised to ``k`` when smaller).
            allowed: optional array of item ids; only those are returned.  The
                walk passes through other nodes but never returns them.
            plan: with ``allowed``, force ``"exact"``, ``"scan"`` or ``"graph"``
                (see :meth:`plan`, which decides when this is None).

        Returns:
            ``(ids, distances)``: int64 and float32 arrays, nearest first, of
            length ``min(k, number of eligible items)``.  Distances are
            ``1 - cosine similarity`` or squared Euclidean.

        Raises:
            UsageError: the query has the wrong dimension or the plan is unknown.
        """
        q = self._query(query)
        g = self._g
        ef = self.ef_search if ef is None else int(ef)
        k = max(int(k), 0)
        if allowed is None:
            mask = _NO_MASK
        else:
            mask, nodes = self._filter(g, allowed)
            how = self._plan_for(nodes.shape[0], k, ef, plan)
            if how == "exact":
                return K.exact_search(q, k, self._metric_code, g.vecs, g.labels, nodes)
            if how == "scan":
                return K.scan_search(q, k, ef, self._metric_code, g.qparams, g.vecs, g.codes, g.cnorm, g.labels, nodes)
        deleted = self._n_deleted > 0
        out_ids = np.empty((1, k), np.int64)
        out_d = np.empty((1, k), np.float32)
        s = self._scratch(g.cap, deleted or allowed is not None)
        try:
            got = self._search_fn(
                q[None],
                k,
                ef,
                g.qparams,
                g.vecs,
                g.codes,
                g.cnorm,
                g.labels,
                g.alive,
                mask,
                deleted,
                g.links0,
                g.up_links,
                g.up_off,
                g.state,
                s[0],
                s[1],
                s[2],
                g.n,
                out_ids,
                out_d,
            )
        finally:
            self._scratch_pool.append(s)
        if got == k:
            return out_ids[0], out_d[0]
        return out_ids[0, :got], out_d[0, :got]

    def _plan_for(self, n_allowed: int, k: int, ef: int, plan: str | None) -> str:
        if plan is None:
            plan = self.plan(n_allowed, k, ef)
        elif plan not in ("exact", "scan", "graph"):
            raise UsageError(f"unknown search plan {plan!r}; use 'exact', 'scan' or 'graph'")
        if plan == "scan" and not self.quantize:
            plan = "exact"  # no codes to scan
        if n_allowed <= k:
            plan = "exact"  # every passing item is a result
        return plan

    def search_batch(
        self,
        queries,
        k: int = 10,
        ef: int | None = None,
        allowed=None,
        plan: str | None = None,
        num_threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` for each row of ``queries`` (shape (nq, dim)), in threads.

        Returns ``(ids, distances)`` of shape (nq, k); rows with fewer than k
        eligible items are padded with id -1 and distance inf.  ``allowed``
        applies to every row.  ``num_threads`` defaults to the number of CPUs.
        """
        Q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32))
        if Q.ndim != 2 or Q.shape[1] != self.dim:
            raise UsageError(f"queries must have shape (n, {self.dim}), not {Q.shape}")
        nq, k = Q.shape[0], max(int(k), 0)
        out_ids = np.full((nq, k), -1, np.int64)
        out_d = np.full((nq, k), np.inf, np.float32)
        g = self._g
        ef = self.ef_search if ef is None else int(ef)
        how = "graph"
        mask, nodes = _NO_MASK, None
        if allowed is not None:
            mask, nodes = self._filter(g, allowed)
            how = self._plan_for(nodes.shape[0], k, ef, plan)
        deleted = self._n_deleted > 0
        threads = max(1, min(num_threads or os.cpu_count() or 1, (nq + 15) // 16))
        bounds = np.linspace(0, nq, threads + 1).astype(int)

        def run(part: int) -> None:
            a, b = bounds[part], bounds[part + 1]
            if how != "graph":
                for r in range(a, b):
                    if how == "exact":
                        ids, d = K.exact_search(Q[r], k, self._metric_code, g.vecs, g.labels, nodes)
                    else:
                        ids, d = K.scan_search(
                            Q[r], k, ef, self._metric_code, g.qparams, g.vecs, g.codes, g.cnorm, g.labels, nodes
                        )
                    out_ids[r, : ids.shape[0]] = ids
                    out_d[r, : ids.shape[0]] = d
                return
            s = self._scratch(g.cap, deleted or nodes is not None)
            try:
                self._search_fn(
                    Q[a:b],
                    k,
                    ef,
                    g.qparams,
                    g.vecs,
                    g.codes,
                    g.cnorm,
                    g.labels,
                    g.alive,
                    mask,
                    deleted,
                    g.links0,
                    g.up_links,
                    g.up_off,
                    g.state,
                    s[0],
                    s[1],
                    s[2],
                    g.n,
                    out_ids[a:b],
                    out_d[a:b],
                )
            finally:
                self._scratch_pool.append(s)

        if threads == 1:
            run(0)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, range(threads)))
        return out_ids, out_d

    # ------------------------------------------------------------------ files

    def save(self, path, generation: int | None = None) -> None:
        """Write the index to ``path`` atomically (temp file, fsync, rename).

        Args:
            path: destination file; its folder must exist.
            generation: the store generation the index reflects; :meth:`load`
                compares it with ``expected_generation``.

        Raises:
            IndexFileError: the file cannot be written (the old file, if any, is untouched).
            IndexCorruptError: the index was opened from a file whose vectors are damaged
                (see :meth:`verify`); it must be rebuilt, not saved.
        """
        path = Path(path)
        self.verify()  # never write vectors read from a damaged file under a fresh checksum
        with self._lock:
            g = self._g
            n, u = g.n, g.up_used
            sections = _sections(n, u, self.dim, self.M, self.M0, self.quantize, self._metric_code == K.METRIC_L2)
            offsets, end = _layout(sections)
            arrays: dict[str, np.ndarray] = {
                "labels": g.labels[:n],
                "levels": g.levels[:n],
                "alive": g.alive[:n],
                "up_off": g.up_off[:n],
                "links0": g.links0[:n],
                "up_links": g.up_links[:u],
                "qparams": g.qparams,
                "codes": g.codes[:n],
                "cnorm": g.cnorm[:n],
                "vecs": g.vecs[:n],
            }
            graph_digest, data_digest = hashlib.sha256(), hashlib.sha256()
            parts = []
            for name, _, _, in_graph in sections:
                part = _raw(arrays[name])
                (graph_digest if in_graph else data_digest).update(part)
                parts.append(part)
            gen = self.generation if generation is None else int(generation)
            fields = _HEADER.pack(
                _MAGIC,
                _VERSION,
                _HEADER_SIZE,
                self.dim,
                self._metric_code,
                int(self.quantize),
                int(gen is not None),
                0,
                self.M,
                self.M0,
                self.ef_construction,
                self.ef_search,
                n,
                u,
                int(g.state[1]),
                self.seed,
                int(g.state[0]),
                int(gen or 0),
                end - _PAYLOAD_START,
                graph_digest.digest(),
                data_digest.digest(),
            )
            header = fields + struct.pack("<I", zlib.crc32(fields))
            tmp = None
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                with os.fdopen(fd, "wb") as f:
                    f.write(header)
                    at = len(header)
                    for part, offset in zip(parts, offsets, strict=True):
                        f.write(b"\0" * (offset - at))
                        f.write(part)
                        at = offset + part.nbytes
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                tmp = None
                _fsync_dir(path.parent)
            except OSError as e:
                raise IndexFileError(f"cannot write the index file {path}: {e.strerror or e}") from e
            finally:
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
            self.generation = gen

    @classmethod
    def load(cls, path, expected_generation: int | None = None, *, verify: bool = True) -> HnswIndex:
        """Open an index written by :meth:`save`.

        The file is memory-mapped (copy-on-write: changes stay in memory, the
        file is only ever replaced by :meth:`save`), so opening reads the graph
        section and a search pages in only the vectors it touches.

        Args:
            path: the index file.
            expected_generation: when given, the file must have been saved
                with this store generation.
            verify: check the vectors' checksum now.  With ``False`` only the
                graph is checked (its checksum and structure, so a damaged file
                can never make a search read outside the index), and
                :meth:`verify` checks the vectors later, e.g. in the background.

        Returns:
            The index, ready to search and to take more items.

        Raises:
            IndexFileError: the file is missing or unreadable.
            IndexCorruptError: truncated, damaged, or not an index file.
            IndexStaleError: built from another generation of the store.
            (Either way: rebuild the index from the store.)
        """
        path = Path(path)
        try:
            f = open(path, "rb")  # noqa: SIM115 (closed by "with f" below; opened apart to tell open from read errors)
        except OSError as e:
            raise IndexFileError(f"cannot open the index file {path}: {e.strerror or e}; rebuild it") from e
        with f:
            try:
                return cls._read(f, path, expected_generation, verify)
            except (OSError, ValueError) as e:  # ValueError: mmap of a file that changed size under us
                why = e.strerror if isinstance(e, OSError) and e.strerror else e
                raise IndexFileError(f"cannot read the index file {path}: {why}; rebuild it") from e

    def verify(self) -> None:
        """Check the vectors' checksum of a file opened with ``load(verify=False)``; a no-op otherwise.

        Thread-safe and safe to run while the index is searched or changed (it
        reads the file's own arrays, which changes never overwrite).

        Raises:
            IndexCorruptError: the vectors or codes are not those the file was saved with.
        """
        pending = self._unverified
        if pending is not None:
            arrays, expected, path = pending
            digest = hashlib.sha256()
            for a in arrays:
                digest.update(_raw(a))  # hashlib releases the GIL on large buffers
            if digest.digest() != expected:
                self._damage = f"the index file {path} is damaged (checksum mismatch); rebuild it from the library"
            self._unverified = None
        if self._damage:
            raise IndexCorruptError(self._damage)

    @property
    def verified(self) -> bool:
        """False while the vectors of a file opened with ``load(verify=False)`` are not checked yet, or damaged."""
        return self._unverified is None and not self._damage

    @staticmethod
    def _header(head: bytes) -> tuple | None:
        """The header fields of either file version, or None when ``head`` is not a sound header."""
        if len(head) < 12 or head[:8] != _MAGIC:
            return None
        version = struct.unpack("<I", head[8:12])[0]
        fmt = _HEADER if version == _VERSION else _HEADER_V1 if version == 1 else None
        if fmt is None or len(head) < fmt.size + 4:
            return None
        fields = head[: fmt.size]
        if struct.unpack("<I", head[fmt.size : fmt.size + 4])[0] != zlib.crc32(fields):
            return None
        return fmt.unpack(fields)

    @staticmethod
    def saved_generation(path) -> int | None:
        """The generation stamped in the header of the index file at ``path``; None when unreadable or unstamped.

        Reads only the header: cheap enough to ask before deciding whether the
        change log the file still needs may be pruned.
        """
        try:
            with open(path, "rb") as f:
                head = f.read(_PAYLOAD_START)
        except OSError:
            return None
        unpacked = HnswIndex._header(head)
        if unpacked is None:
            return None
        has_gen, gen = unpacked[6], unpacked[17]
        return int(gen) if has_gen else None

    @staticmethod
    def saved_node_counts(path) -> tuple[int, int] | None:
        """``(live, dead)`` nodes of the index file at ``path``; None when unreadable.

        Reads the header and the one-byte-per-node liveness column only (not
        the graph or the vectors, and without checking their checksum): cheap
        enough for a status report on a library whose index is not loaded.
        """
        try:
            with open(path, "rb") as f:
                head = f.read(_PAYLOAD_START)
                unpacked = HnswIndex._header(head)
                if unpacked is None:
                    return None
                version, dim, metric, quantize, M, M0, n, u = (unpacked[i] for i in (1, 3, 4, 5, 8, 9, 12, 13))
                if version == 1:
                    at = _HEADER_V1_SIZE + n * (8 + 1)  # past the labels (int64) and levels (int8)
                else:
                    sections = _sections(n, u, dim, M, M0, bool(quantize), metric == K.METRIC_L2)
                    at = _layout(sections)[0][2]
                f.seek(at)
                alive = np.frombuffer(f.read(n), np.uint8)
        except OSError:
            return None
        if alive.shape[0] != n:
            return None
        live = int(np.count_nonzero(alive))
        return live, n - live

    @classmethod
    def _read(cls, f, path: Path, expected_generation: int | None, verify: bool) -> HnswIndex:
        def corrupt(why: str) -> IndexCorruptError:
            return IndexCorruptError(f"the index file {path} is damaged ({why}); rebuild it from the library")

        file_size = os.fstat(f.fileno()).st_size
        head = f.read(_PAYLOAD_START)
        if len(head) < 12 or head[:8] != _MAGIC:
            raise corrupt("not a Shoebox HNSW file" if head[:8] != _MAGIC else "truncated header")
        version = struct.unpack("<I", head[8:12])[0]
        if version not in (1, _VERSION):
            raise corrupt(f"format version {version}, this Shoebox reads versions 1 and {_VERSION}")
        unpacked = cls._header(head)
        if unpacked is None:
            raise corrupt("truncated header" if len(head) < _HEADER_V1_SIZE else "header checksum mismatch")
        (
            _,
            version,
            header_size,
            dim,
            metric,
            quantize,
            has_gen,
            _,
            M,
            M0,
            efc,
            efs,
            n,
            u,
            linked,
            seed,
            entry,
            gen,
        ) = unpacked[:18]
        if header_size != (_HEADER_SIZE if version == _VERSION else _HEADER_V1_SIZE):
            raise corrupt("bad header size")
        if expected_generation is not None and (not has_gen or gen != int(expected_generation)):
            found = gen if has_gen else "none"
            raise IndexStaleError(
                f"the index file {path} was built from library generation {found}, "
                f"the library is at {expected_generation}; rebuild it"
            )
        if metric not in _METRIC_NAMES or M0 != 2 * M or not 2 <= M <= 256 or not 1 <= dim <= 65536:
            raise corrupt("bad parameters")
        index = cls(dim, _METRIC_NAMES[metric], M, efc, efs, bool(quantize), seed)
        if version == 1:
            f.seek(_HEADER_V1_SIZE)
            g = index._read_v1_payload(f, file_size, n, u, unpacked[18], unpacked[19], corrupt)
        else:
            g = index._map_v2_payload(
                f, path, file_size, n, u, unpacked[18], unpacked[19], unpacked[20], verify, corrupt
            )
        why = K.check_structure(n, g.levels, g.up_off, u, g.links0, g.up_links, M, M0)
        if why:
            raise corrupt(why)
        if n:
            top = entry >> 32
            ep = entry & 0xFFFFFFFF
            if entry < 0 or ep >= n or top != int(g.levels[:n].max()) or g.levels[ep] != top or linked != n:
                raise corrupt("bad entry point")
        elif entry != -1:
            raise corrupt("bad entry point")
        g.n, g.up_used = n, u
        g.state[0], g.state[1] = entry, linked
        live = np.flatnonzero(g.alive[:n]).astype(np.int32)
        replaced = np.empty(live.shape[0], np.int32)
        g.hused = K.hash_insert_many(g.hkeys, g.hvals, g.labels[live], live, replaced)
        if (replaced >= 0).any():
            raise corrupt("an item id appears twice")
        if quantize and n:
            if not (g.qparams[1] > 0).all():
                raise corrupt("bad code ranges")
            if version == 1:  # version 2 files carry the codes
                K.encode_rows(g.vecs, g.codes, g.cnorm, g.qparams, 0, n, metric)
        index._g = g
        index._trained = bool(quantize and n)
        index._n_alive = int(live.shape[0])
        index._n_deleted = n - index._n_alive
        index._rng = np.random.default_rng([seed, n])
        index.generation = gen if has_gen else None
        return index

    def _read_v1_payload(self, f, file_size: int, n: int, u: int, size: int, sha: bytes, corrupt) -> _Graph:
        """Version 1: one checksum over the payload, read into memory; the codes are computed again."""
        shapes: list[tuple[tuple[int, ...], type[np.generic]]] = [
            ((n,), np.int64),
            ((n,), np.int8),
            ((n,), np.uint8),
            ((n,), np.int32),
            ((n, self.M0 + 1), np.int32),
            ((u, self.M + 1), np.int32),
        ]
        if self.quantize:
            shapes.append(((2, self.dim), np.float32))
        shapes.append(((n, self.dim), np.float32))
        expect = sum(int(np.prod(s)) * np.dtype(t).itemsize for s, t in shapes)
        if expect != size or file_size != _HEADER_V1_SIZE + size:
            raise corrupt("truncated" if file_size < _HEADER_V1_SIZE + expect else "wrong size")
        g = self._new_graph(n, u, _hash_cap_for(n))
        dests: list[np.ndarray] = [g.labels, g.levels, g.alive, g.up_off, g.links0, g.up_links]
        if self.quantize:
            dests.append(g.qparams)
        dests.append(g.vecs)
        digest = hashlib.sha256()
        for dest in dests:
            view = _raw(dest)
            if dest.size and f.readinto(view) != dest.nbytes:
                raise corrupt("truncated")
            digest.update(view)
        if digest.digest() != sha:
            raise corrupt("checksum mismatch")
        return g

    def _map_v2_payload(
        self,
        f,
        path: Path,
        file_size: int,
        n: int,
        u: int,
        size: int,
        graph_sha: bytes,
        data_sha: bytes,
        verify,
        corrupt,
    ) -> _Graph:
        """Version 2: the arrays are views of the mapped file (or of one read, where files are not mapped)."""
        l2 = self._metric_code == K.METRIC_L2
        sections = _sections(n, u, self.dim, self.M, self.M0, self.quantize, l2)
        offsets, end = _layout(sections)
        if size != end - _PAYLOAD_START or file_size != end:
            raise corrupt("truncated" if file_size < end else "wrong size")
        buffer: mmap.mmap | bytearray
        if _MAP_FILES:
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        else:
            buffer = bytearray(end)
            f.seek(0)
            if f.readinto(buffer) != end:
                raise corrupt("truncated")
        views: dict[str, np.ndarray] = {}
        graph_digest = hashlib.sha256()
        data: list[np.ndarray] = []
        for (name, shape, dtype, in_graph), offset in zip(sections, offsets, strict=True):
            count = math.prod(shape)
            a = np.frombuffer(buffer, dtype, count=count, offset=offset) if count else np.zeros(count, dtype)
            views[name] = a.reshape(shape)
            if in_graph:
                graph_digest.update(_raw(a))
            else:
                data.append(a)
        if graph_digest.digest() != graph_sha:
            raise corrupt("checksum mismatch")
        g = _Graph.__new__(_Graph)
        g.cap, g.n, g.up_used = n, n, u
        for name in ("labels", "levels", "alive", "up_off", "links0", "up_links", "vecs"):
            setattr(g, name, views[name])
        g.qparams = views["qparams"] if self.quantize else np.array([np.zeros(self.dim), np.ones(self.dim)], np.float32)
        g.codes = views["codes"] if self.quantize else np.zeros((0, (self.dim + 1) // 2), np.uint8)
        g.cnorm = views["cnorm"] if self.quantize and l2 else np.zeros(0, np.float32)
        g.state = np.array([-1, 0, 0, 0], np.int64)
        hash_cap = _hash_cap_for(n)
        g.hkeys = np.zeros(hash_cap, np.int64)
        g.hvals = np.full(hash_cap, -1, np.int32)
        g.hused = 0
        self._unverified = (data, data_sha, path)
        if verify:
            try:
                self.verify()
            except IndexCorruptError:
                raise corrupt("checksum mismatch") from None
        return g


def warm_up() -> None:
    """Load the compiled kernels a search and an insert use, on a throwaway index.

    numba's first call in a process sets up its type registries (a few hundred
    milliseconds of work holding the interpreter lock) and each kernel's machine
    code is read from its cache on first use.  The app calls this from its
    start-up worker, so neither happens inside the first search.
    """
    rng = np.random.default_rng(0)
    for quantize in (False, True):
        index = HnswIndex(8, "cosine", M=4, ef_construction=8, quantize=quantize)
        index.add(np.arange(8), rng.standard_normal((8, 8)))
        index.search(np.ones(8), 2)
        index.search(np.ones(8), 2, allowed=np.arange(4))


class _Linker:
    """The threads and per-thread scratch arrays that one :meth:`HnswIndex.add` links with.

    The calling thread is one of them; ``threads - 1`` more wait in a pool.
    """

    def __init__(self, threads: int, cap: int):
        self.threads = max(1, int(threads))
        self.cap = cap
        self.visited = [np.zeros(cap + 1, np.uint16) for _ in range(self.threads)]
        # Candidate heaps of the walks with deleted nodes or on upper layers
        # (a node enters at most once, so one slot a node is enough).
        self.cd = [np.empty(cap + 1, np.float32) for _ in range(self.threads)] if self.threads > 1 else []
        self.ci = [np.empty(cap + 1, np.int32) for _ in range(self.threads)] if self.threads > 1 else []
        self._pool = (
            ThreadPoolExecutor(self.threads - 1, thread_name_prefix="shoebox-index-link") if self.threads > 1 else None
        )

    def run(self, work: Callable[[int], None]) -> None:
        """Call ``work(part)`` for each part 0 .. threads - 1 at once; return when all are done."""
        if self._pool is None:
            work(0)
            return
        futures = [self._pool.submit(work, part) for part in range(1, self.threads)]
        try:
            work(0)
        finally:
            wait(futures)
        for f in futures:
            f.result()  # raises what a worker raised

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _cache_factor(working_set: float, worst: float) -> float:
    """1 for reads that stay in cache (up to 8 MB), rising to ``worst`` at 32 MB and beyond."""
    return 1.0 + (worst - 1.0) * min(1.0, max(0.0, (working_set - 8e6) / 24e6))


def _raw(a: np.ndarray) -> memoryview:
    """The bytes of an array (empty arrays included) without copying a contiguous one."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8).data


def _sections(
    n: int, u: int, dim: int, M: int, M0: int, quantize: bool, l2: bool
) -> list[tuple[str, tuple[int, ...], type[np.generic], bool]]:
    """The arrays of a version 2 file in order: name, shape, dtype, and whether the graph checksum covers it."""
    out: list[tuple[str, tuple[int, ...], type[np.generic], bool]] = [
        ("labels", (n,), np.int64, True),
        ("levels", (n,), np.int8, True),
        ("alive", (n,), np.uint8, True),
        ("up_off", (n,), np.int32, True),
        ("links0", (n, M0 + 1), np.int32, True),
        ("up_links", (u, M + 1), np.int32, True),
    ]
    if quantize:
        out.append(("qparams", (2, dim), np.float32, True))
        out.append(("codes", (n, (dim + 1) // 2), np.uint8, False))
        if l2:
            out.append(("cnorm", (n,), np.float32, False))
    out.append(("vecs", (n, dim), np.float32, False))
    return out


def _layout(sections: list[tuple[str, tuple[int, ...], type[np.generic], bool]]) -> tuple[list[int], int]:
    """Each section's offset in the file (64-byte aligned, after the header) and the file's size."""
    offsets = []
    at = _PAYLOAD_START
    for _, shape, dtype, _ in sections:
        at = -(-at // _ALIGN) * _ALIGN
        offsets.append(at)
        at += math.prod(shape) * np.dtype(dtype).itemsize
    return offsets, at


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_NO_MASK = np.zeros(0, np.uint8)
_NO_TAGS = np.zeros(0, np.uint16)
_NO_F32 = np.zeros(1, np.float32)
_NO_I32 = np.zeros(1, np.int32)
