"""Compiled inner loops of the HNSW index (numba).

Everything here works on plain numpy arrays so that one call from
:mod:`engine.index.hnsw` does a whole search or a whole batch of inserts, with
the GIL released (``nogil=True``) and the machine code cached on disk
(``cache=True``) so that a second start does not compile again.

Layout (owned by :class:`engine.index.hnsw.HnswIndex`, described here because
these loops depend on it):

- ``vecs``     float32 (capacity, dim): the vectors (normalized for cosine).
- ``codes``    uint8 (capacity, ceil(dim / 2)): per-dimension 4-bit codes used
               while walking the graph, two to a byte (byte j holds dimension
               j in its low nibble and dimension j + ceil(dim / 2) in its
               high nibble, so that both halves read contiguous weights), or
               shape (0, ...) when quantization is off.
- ``cnorm``    float32 (capacity,): squared norm of each decoded code (L2 only).
- ``qparams``  float32 (2, dim): per-dimension offset and step of the codes.
- ``links0``   int32 (capacity, M0 + 1): layer-0 adjacency, column 0 is the count.
- ``up_links`` int32 (rows, M + 1): adjacency of layers >= 1, column 0 is the count.
- ``up_off``   int32 (capacity,): row in ``up_links`` of a node's layer 1
               (layer l is row ``up_off + l - 1``), -1 for layer-0-only nodes.
- ``alive``    uint8 (capacity,): 1 once a node is linked and until it is deleted.
- ``state``    int64 (4,): ``state[0]`` packs the entry point and the top level
               into one word (``level << 32 | node``, -1 when empty) so that a
               reader never sees one without the other; ``state[1]`` counts the
               nodes linked into the graph.
- ``visited``  uint16 (capacity + 1,): epoch-stamped visited tags; the last
               element holds the current epoch, so the array is only cleared
               when the epoch wraps around.

Distances are squared Euclidean for L2 and ``1 - dot`` for cosine (vectors
are normalized on the way in).  With codes, the walk ranks nodes by an
approximation that drops per-query constants, and the final candidates are
re-ranked with exact float32 distances.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypedDict, cast

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

METRIC_L2 = 0
METRIC_COSINE = 1
CODE_MAX = 15  # 4-bit codes: 0..15

_EMPTY = -1  # hash slot never used
_TOMB = -2  # hash slot of a deleted label


class _JitOptions(TypedDict, total=False):
    """The keyword arguments of ``njit`` used here."""

    cache: bool
    nogil: bool
    fastmath: bool
    inline: Literal["never", "always"]


_JIT: _JitOptions = {"cache": True, "nogil": True, "fastmath": True}
_INNER: _JitOptions = {"cache": True, "nogil": True, "fastmath": True}
# Small helpers (distances, heap steps) are inlined at numba's level: calls
# between separately compiled functions pass every array as a struct and stay
# calls, which cost the walk nearly half its time.
_INLINE: _JitOptions = {"cache": True, "nogil": True, "fastmath": True, "inline": "always"}

# How much of each neighbour's row to prefetch while scanning a node's list.
_PREFETCH_BYTES = 256


def _prefetch_typer(typingctx, arr, offset):
    """Hint the CPU to fetch the cache line at byte ``offset`` of ``arr``."""
    if not isinstance(arr, types.Array) or not isinstance(offset, types.Integer):
        return None
    sig = types.void(arr, offset)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        data = builder.bitcast(ary.data, i8p)
        off = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.gep(data, [off])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


# Compiled code calls it as ``_prefetch(arr, offset)``: numba passes ``typingctx``
# itself, which numba's stubs do not express (they type the call with all three).
_prefetch = cast("Callable[[np.ndarray, int], None]", intrinsic(_prefetch_typer))


def _fetch_add_typer(typingctx, arr, index, value):
    """Atomically add ``value`` to ``arr[index]`` (an int64 array) and return the old value."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        return None
    if not isinstance(index, types.Integer) or not isinstance(value, types.Integer):
        return None
    sig = types.int64(arr, index, value)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [idx])
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return sig, codegen


# Called as ``_fetch_add(arr, index, value)`` from compiled code (see ``_prefetch``).
_fetch_add = cast("Callable[[np.ndarray, int, int], int]", intrinsic(_fetch_add_typer))


# --------------------------------------------------------------------------
# distances


@njit(**_INLINE)
def _dist_query(q, vecs, i, metric):
    """Exact distance between a prepared query and stored node ``i``."""
    dim = q.shape[0]
    acc = np.float32(0.0)
    if metric == METRIC_L2:
        for d in range(dim):
            t = q[d] - vecs[i, d]
            acc += t * t
        return acc
    for d in range(dim):
        acc += q[d] * vecs[i, d]
    return np.float32(1.0) - acc


@njit(**_INLINE)
def _dist_nodes(vecs, a, b, metric):
    """Exact distance between stored nodes ``a`` and ``b``."""
    dim = vecs.shape[1]
    acc = np.float32(0.0)
    if metric == METRIC_L2:
        for d in range(dim):
            t = vecs[a, d] - vecs[b, d]
            acc += t * t
        return acc
    for d in range(dim):
        acc += vecs[a, d] * vecs[b, d]
    return np.float32(1.0) - acc


@njit(**_INLINE)
def _dist_code(z, codes, cnorm, i, metric):
    """Approximate distance to node ``i`` from its 4-bit code (ranking only)."""
    h = codes.shape[1]
    # Two passes over the row (low nibbles, then high nibbles) with int32
    # arithmetic: this form is what LLVM turns into wide vector code.
    acc = np.float32(0.0)
    for j in range(h):
        acc += z[j] * np.float32(np.int32(codes[i, j]) & 15)
    acc2 = np.float32(0.0)
    for j in range(h):
        acc2 += z[h + j] * np.float32(np.int32(codes[i, j]) >> 4)
    acc += acc2
    if metric == METRIC_L2:
        return acc + cnorm[i]
    return acc


@njit(**_INLINE)
def _dist_walk(q, z, vecs, codes, cnorm, use_codes, i, metric):
    if use_codes:
        return _dist_code(z, codes, cnorm, i, metric)
    return _dist_query(q, vecs, i, metric)


@njit(**_JIT)
def prepare_query(query, qparams, metric, use_codes):
    """Return (q, z): the query as stored vectors are (normalized for cosine)
    and its transform for code distances (empty without codes)."""
    dim = query.shape[0]
    q = np.empty(dim, np.float32)
    if metric == METRIC_COSINE:
        nrm = np.float32(0.0)
        for d in range(dim):
            nrm += query[d] * query[d]
        nrm = np.float32(np.sqrt(nrm))
        if nrm > 0:
            for d in range(dim):
                q[d] = query[d] / nrm
        else:
            for d in range(dim):
                q[d] = 0
    else:
        for d in range(dim):
            q[d] = query[d]
    if not use_codes:
        return q, np.empty(0, np.float32)
    z = np.zeros(2 * ((dim + 1) // 2), np.float32)  # padded to the nibble pairs
    if metric == METRIC_L2:
        # sum_d (y_d - a_d - b_d c_d)^2 = const - 2 sum_d (y_d - a_d) b_d c_d + |b c|^2
        for d in range(dim):
            z[d] = np.float32(-2.0) * (q[d] - qparams[0, d]) * qparams[1, d]
    else:
        # 1 - sum_d y_d (a_d + b_d c_d) = const - sum_d y_d b_d c_d
        for d in range(dim):
            z[d] = -q[d] * qparams[1, d]
    return q, z


@njit(**_JIT)
def encode_rows(vecs, codes, cnorm, qparams, start, stop, metric):
    """Write the 4-bit codes (and their squared norms for L2) of rows [start, stop)."""
    dim = vecs.shape[1]
    h = codes.shape[1]
    for i in range(start, stop):
        acc = np.float32(0.0)
        for j in range(h):
            codes[i, j] = 0
        for d in range(dim):
            c = np.floor((vecs[i, d] - qparams[0, d]) / qparams[1, d] + np.float32(0.5))
            if c < 0:
                c = 0
            elif c > CODE_MAX:
                c = CODE_MAX
            if d < h:
                codes[i, d] |= np.uint8(c)
            else:
                codes[i, d - h] |= np.uint8(c) << np.uint8(4)
            dec = np.float32(c) * qparams[1, d]
            acc += dec * dec
        if metric == METRIC_L2:
            cnorm[i] = acc


# --------------------------------------------------------------------------
# heaps over parallel (distance, node) arrays


@njit(**_INLINE)
def _min_push(hd, hi, n, d, i):
    j = n
    while j > 0:
        p = (j - 1) >> 1
        if hd[p] <= d:
            break
        hd[j] = hd[p]
        hi[j] = hi[p]
        j = p
    hd[j] = d
    hi[j] = i


@njit(**_INLINE)
def _min_pop(hd, hi, n):
    """Remove the smallest of ``n`` entries (the caller decrements ``n``)."""
    n -= 1
    d = hd[n]
    i = hi[n]
    j = 0
    while True:
        c = 2 * j + 1
        if c >= n:
            break
        if c + 1 < n and hd[c + 1] < hd[c]:
            c += 1
        if hd[c] >= d:
            break
        hd[j] = hd[c]
        hi[j] = hi[c]
        j = c
    hd[j] = d
    hi[j] = i


@njit(**_INLINE)
def _max_push(hd, hi, n, d, i):
    j = n
    while j > 0:
        p = (j - 1) >> 1
        if hd[p] >= d:
            break
        hd[j] = hd[p]
        hi[j] = hi[p]
        j = p
    hd[j] = d
    hi[j] = i


@njit(**_INLINE)
def _max_sift_down(hd, hi, n, d, i):
    """Put (d, i) at the root of a max-heap of ``n`` entries and restore order."""
    j = 0
    while True:
        c = 2 * j + 1
        if c >= n:
            break
        if c + 1 < n and hd[c + 1] > hd[c]:
            c += 1
        if hd[c] <= d:
            break
        hd[j] = hd[c]
        hi[j] = hi[c]
        j = c
    hd[j] = d
    hi[j] = i


# --------------------------------------------------------------------------
# graph walking


@njit(**_JIT)
def next_tag(visited):
    """Advance the epoch stored in the last element; clear on wrap-around."""
    last = visited.shape[0] - 1
    tag = np.int64(visited[last]) + 1
    if tag >= 65535:
        visited[:] = 0
        tag = 1
    visited[last] = tag
    return np.uint16(tag)


@njit(**_JIT)
def _greedy(q, z, vecs, codes, cnorm, use_codes, metric, up_links, up_off, cur, dcur, top, bottom):
    """Greedy descent through layers top..bottom+1 (exclusive of ``bottom``)."""
    for level in range(top, bottom, -1):
        changed = True
        while changed:
            changed = False
            row = up_off[cur] + level - 1
            cnt = up_links[row, 0]
            for j in range(1, cnt + 1):
                nb = up_links[row, j]
                d = _dist_walk(q, z, vecs, codes, cnorm, use_codes, nb, metric)
                if d < dcur:
                    dcur = d
                    cur = nb
                    changed = True
    return cur, dcur


@njit(**_INNER)
def _search_layer(
    q,
    z,
    vecs,
    codes,
    cnorm,
    use_codes,
    metric,
    links0,
    up_links,
    up_off,
    level,
    alive,
    mask,
    entry,
    dentry,
    ef,
    visited,
    tag,
    cd,
    ci,
):
    """Beam search of one layer from ``entry``.

    Every node is walked through; only eligible nodes (alive, and in ``mask``
    when it is not empty) enter the result.  The walk stops when the nearest
    unexpanded candidate is farther than the worst of ``ef`` results, so with a
    selective filter it walks as far as it takes to find ``ef`` eligible nodes.
    ``cd``/``ci`` hold the candidate heap; each node enters it at most once,
    so ``visited``'s length is enough.  Returns (dists, nodes, count) as an
    unsorted max-heap.
    """
    use_mask = mask.shape[0] > 0
    rowbytes = codes.shape[1] if use_codes else vecs.shape[1] * 4
    pbytes = min(rowbytes, _PREFETCH_BYTES)
    rd = np.empty(ef, np.float32)
    ri = np.empty(ef, np.int32)
    width = links0.shape[1] if level == 0 else up_links.shape[1]
    lbytes = links0.shape[1] * 4
    buf = np.empty(width, np.int32)
    nc = 0
    nr = 0
    visited[entry] = tag
    _min_push(cd, ci, nc, dentry, entry)
    nc += 1
    if alive[entry] != 0 and (not use_mask or mask[entry] != 0):
        _max_push(rd, ri, nr, dentry, entry)
        nr += 1
    inf = np.float32(np.inf)
    lower = rd[0] if nr == ef else inf
    while nc > 0:
        dc = cd[0]
        c = ci[0]
        if dc > lower:
            break
        _min_pop(cd, ci, nc)
        nc -= 1
        if level == 0 and nc > 0:
            # The next candidate's list is read on the next turn: fetch it now.
            nxt = np.int64(ci[0]) * lbytes
            _prefetch(links0, nxt)
            _prefetch(links0, nxt + 64)
            _prefetch(links0, nxt + lbytes - 4)
        if level == 0:
            cnt = links0[c, 0]
        else:
            row = up_off[c] + level - 1
            cnt = up_links[row, 0]
        m = 0
        for j in range(1, cnt + 1):
            if level == 0:
                nb = links0[c, j]
            else:
                nb = up_links[row, j]
            if visited[nb] != tag:
                visited[nb] = tag
                buf[m] = nb
                m += 1
                base = np.int64(nb) * rowbytes
                for off in range(0, pbytes, 64):
                    if use_codes:
                        _prefetch(codes, base + off)
                    else:
                        _prefetch(vecs, base + off)
        for t in range(m):
            nb = buf[t]
            d = _dist_walk(q, z, vecs, codes, cnorm, use_codes, nb, metric)
            if d < lower:
                _min_push(cd, ci, nc, d, nb)
                nc += 1
                if alive[nb] != 0 and (not use_mask or mask[nb] != 0):
                    if nr < ef:
                        _max_push(rd, ri, nr, d, nb)
                        nr += 1
                    else:
                        _max_sift_down(rd, ri, nr, d, nb)
                    if nr == ef:
                        lower = rd[0]
    return rd, ri, nr


@njit(**_INLINE)
def _sort_key(d, fbuf, ubuf, node):
    """(distance, node) as one uint64 that sorts like the pair: the float's bits
    made monotonic in the high half, ``node << 1`` in the low half (bit 0 is
    the "expanded" flag)."""
    fbuf[0] = d
    u = np.uint64(ubuf[0])
    if u & np.uint64(0x80000000):
        u = (~u) & np.uint64(0xFFFFFFFF)
    else:
        u = u | np.uint64(0x80000000)
    return (u << np.uint64(32)) | np.uint64(np.int64(node) << 1)


@njit(**_INNER)
def _search_pool(q, z, vecs, codes, cnorm, use_codes, metric, links0, entry, dentry, ef, visited, tag):
    """Layer-0 beam search over a sorted pool, for searches without filter or deletes.

    Equivalent to the two-heap search of the HNSW paper when every node is
    eligible (a candidate that falls out of the best ``ef`` can never be
    expanded before the search stops), but one sorted array of packed keys
    with an "expanded" bit replaces both heaps: insertion is a short
    predictable shift instead of two sift operations with unpredictable
    branches.  Returns (dists, nodes, count) sorted ascending.
    """
    rowbytes = codes.shape[1] if use_codes else vecs.shape[1] * 4
    pbytes = min(rowbytes, _PREFETCH_BYTES)
    lbytes = links0.shape[1] * 4
    keys = np.empty(ef + 1, np.uint64)
    fbuf = np.empty(1, np.float32)
    ubuf = fbuf.view(np.uint32)
    buf = np.empty(links0.shape[1], np.int32)
    one = np.uint64(1)
    low = np.uint64(0xFFFFFFFF)
    visited[entry] = tag
    keys[0] = _sort_key(dentry, fbuf, ubuf, entry)
    size = 1
    k = 0
    while k < size:
        keys[k] |= one
        c = np.int64((keys[k] & low) >> one)
        cnt = links0[c, 0]
        m = 0
        for j in range(1, cnt + 1):
            nb = links0[c, j]
            if visited[nb] != tag:
                visited[nb] = tag
                buf[m] = nb
                m += 1
                base = np.int64(nb) * rowbytes
                for off in range(0, pbytes, 64):
                    if use_codes:
                        _prefetch(codes, base + off)
                    else:
                        _prefetch(vecs, base + off)
        nk = size
        for t in range(m):
            nb = buf[t]
            d = _dist_walk(q, z, vecs, codes, cnorm, use_codes, nb, metric)
            key = _sort_key(d, fbuf, ubuf, nb)
            if size == ef:
                if key >= keys[size - 1]:
                    continue
                s = size - 1
            else:
                s = size
                size += 1
            while s > 0 and keys[s - 1] > key:
                keys[s] = keys[s - 1]
                s -= 1
            keys[s] = key
            if s < nk:
                nk = s
        if nk <= k:
            k = nk
        else:
            k += 1
        while k < size and (keys[k] & one) != 0:
            k += 1
        if k < size:
            # The next node to expand: fetch its list while this turn ends.
            nxt = np.int64((keys[k] & low) >> one) * lbytes
            _prefetch(links0, nxt)
            _prefetch(links0, nxt + 64)
            _prefetch(links0, nxt + lbytes - 4)
    nodes = np.empty(size, np.int32)
    dist = np.empty(size, np.float32)
    for t in range(size):
        nodes[t] = np.int32((keys[t] & low) >> one)
        u = keys[t] >> np.uint64(32)
        if u & np.uint64(0x80000000):
            u = u & np.uint64(0x7FFFFFFF)
        else:
            u = (~u) & low
        ubuf[0] = np.uint32(u)
        dist[t] = fbuf[0]
    return dist, nodes, size


@njit(**_INNER)
def _topk_exact(q, vecs, metric, nodes, n, k):
    """Exact top-k among ``nodes[:n]``; returns (dists, nodes) sorted ascending."""
    kk = min(k, n)
    hd = np.empty(max(kk, 1), np.float32)
    hi = np.empty(max(kk, 1), np.int32)
    nh = 0
    for t in range(n):
        i = nodes[t]
        d = _dist_query(q, vecs, i, metric)
        if nh < kk:
            _max_push(hd, hi, nh, d, i)
            nh += 1
        elif d < hd[0]:
            _max_sift_down(hd, hi, nh, d, i)
    order = np.argsort(hd[:nh], kind="mergesort")
    return hd[:nh][order], hi[:nh][order]


@njit(**_INNER)
def _eligible_nodes(alive, mask, n_slots):
    use_mask = mask.shape[0] > 0
    out = np.empty(n_slots, np.int32)
    m = 0
    for i in range(n_slots):
        if alive[i] != 0 and (not use_mask or mask[i] != 0):
            out[m] = i
            m += 1
    return out, m


@njit(**_INNER)
def _search_impl(
    query,
    k,
    ef,
    use_codes,
    metric,
    qparams,
    vecs,
    codes,
    cnorm,
    alive,
    mask,
    has_deleted,
    links0,
    up_links,
    up_off,
    state,
    visited,
    cd,
    ci,
    n_slots,
):
    """Whole query: greedy descent, layer-0 beam, exact re-rank.

    ``use_codes`` and ``metric`` arrive as compile-time constants (see
    :func:`_search_core`), so each case gets its own machine code with the
    per-node branches folded away.  Without filter or deletes the layer-0
    walk is :func:`_search_pool`, otherwise :func:`_search_layer`.  Returns
    (dists, nodes) sorted ascending, at most k of them.  When the walk finds
    fewer than k eligible nodes, an exact scan over every eligible node
    decides, so k results come back whenever k eligible nodes exist.
    """
    q, z = prepare_query(query, qparams, metric, use_codes)
    packed = state[0]
    if packed < 0 or k <= 0:
        return np.empty(0, np.float32), np.empty(0, np.int32)
    ep = np.int32(packed & 0xFFFFFFFF)
    top = np.int64(packed >> 32)
    dcur = _dist_walk(q, z, vecs, codes, cnorm, use_codes, ep, metric)
    cur, dcur = _greedy(q, z, vecs, codes, cnorm, use_codes, metric, up_links, up_off, ep, dcur, top, 0)
    ef = max(ef, k)
    nr = 0
    if mask.shape[0] == 0 and not has_deleted:
        rd, ri, n = _search_pool(
            q, z, vecs, codes, cnorm, use_codes, metric, links0, cur, dcur, ef, visited, next_tag(visited)
        )
        # Skip nodes a concurrent writer has not published or has just deleted.
        for t in range(n):
            if alive[ri[t]] != 0:
                rd[nr] = rd[t]
                ri[nr] = ri[t]
                nr += 1
        if not use_codes and nr >= k:
            return rd[:k].copy(), ri[:k].copy()
    if nr < k and cd.shape[0] > n_slots:  # (the caller passes a small cd when it expects the pool)
        rd, ri, nr = _search_layer(
            q,
            z,
            vecs,
            codes,
            cnorm,
            use_codes,
            metric,
            links0,
            up_links,
            up_off,
            0,
            alive,
            mask,
            cur,
            dcur,
            ef,
            visited,
            next_tag(visited),
            cd,
            ci,
        )
    if nr < k:
        nodes, m = _eligible_nodes(alive, mask, n_slots)
        if m > nr:
            return _topk_exact(q, vecs, metric, nodes, m, k)
    if use_codes:
        for t in range(nr):
            rd[t] = _dist_query(q, vecs, ri[t], metric)
    order = np.argsort(rd[:nr])
    kk = min(k, nr)
    od = np.empty(kk, np.float32)
    oi = np.empty(kk, np.int32)
    for t in range(kk):
        od[t] = rd[order[t]]
        oi[t] = ri[order[t]]
    return od, oi


@njit(**_INNER)
def _search_rows(
    queries,
    k,
    ef,
    use_codes,
    metric,
    qparams,
    vecs,
    codes,
    cnorm,
    labels,
    alive,
    mask,
    has_deleted,
    links0,
    up_links,
    up_off,
    state,
    visited,
    cd,
    ci,
    n_slots,
    out_labels,
    out_dists,
):
    """Each row of ``queries`` into out_labels/out_dists, nearest first, padded
    with -1 / inf.  Returns how many results the last row got."""
    got = 0
    for r in range(queries.shape[0]):
        od, oi = _search_impl(
            queries[r],
            k,
            ef,
            use_codes,
            metric,
            qparams,
            vecs,
            codes,
            cnorm,
            alive,
            mask,
            has_deleted,
            links0,
            up_links,
            up_off,
            state,
            visited,
            cd,
            ci,
            n_slots,
        )
        got = oi.shape[0]
        for t in range(k):
            if t < got:
                out_labels[r, t] = labels[oi[t]]
                out_dists[r, t] = od[t]
            else:
                out_labels[r, t] = -1
                out_dists[r, t] = np.inf
    return got


# One entry point per (metric, codes) case, so that a process compiles (or
# loads from the cache) only the case its index uses.


@njit(**_JIT)
def search_l2(
    queries,
    k,
    ef,
    qparams,
    vecs,
    codes,
    cnorm,
    labels,
    alive,
    mask,
    has_deleted,
    links0,
    up_links,
    up_off,
    state,
    visited,
    cd,
    ci,
    n_slots,
    out_labels,
    out_dists,
):
    """Search rows of ``queries``: L2, walking float32 vectors (see :func:`_search_rows`)."""
    return _search_rows(
        queries,
        k,
        ef,
        False,
        METRIC_L2,
        qparams,
        vecs,
        codes,
        cnorm,
        labels,
        alive,
        mask,
        has_deleted,
        links0,
        up_links,
        up_off,
        state,
        visited,
        cd,
        ci,
        n_slots,
        out_labels,
        out_dists,
    )


@njit(**_JIT)
def search_cosine(
    queries,
    k,
    ef,
    qparams,
    vecs,
    codes,
    cnorm,
    labels,
    alive,
    mask,
    has_deleted,
    links0,
    up_links,
    up_off,
    state,
    visited,
    cd,
    ci,
    n_slots,
    out_labels,
    out_dists,
):
    """Search rows of ``queries``: cosine, walking float32 vectors."""
    return _search_rows(
        queries,
        k,
        ef,
        False,
        METRIC_COSINE,
        qparams,
        vecs,
        codes,
        cnorm,
        labels,
        alive,
        mask,
        has_deleted,
        links0,
        up_links,
        up_off,
        state,
        visited,
        cd,
        ci,
        n_slots,
        out_labels,
        out_dists,
    )


@njit(**_JIT)
def search_l2_codes(
    queries,
    k,
    ef,
    qparams,
    vecs,
    codes,
    cnorm,
    labels,
    alive,
    mask,
    has_deleted,
    links0,
    up_links,
    up_off,
    state,
    visited,
    cd,
    ci,
    n_slots,
    out_labels,
    out_dists,
):
    """Search rows of ``queries``: L2, walking 4-bit codes, exact re-rank."""
    return _search_rows(
        queries,
        k,
        ef,
        True,
        METRIC_L2,
        qparams,
        vecs,
        codes,
        cnorm,
        labels,
        alive,
        mask,
        has_deleted,
        links0,
        up_links,
        up_off,
        state,
        visited,
        cd,
        ci,
        n_slots,
        out_labels,
        out_dists,
    )


@njit(**_JIT)
def search_cosine_codes(
    queries,
    k,
    ef,
    qparams,
    vecs,
    codes,
    cnorm,
    labels,
    alive,
    mask,
    has_deleted,
    links0,
    up_links,
    up_off,
    state,
    visited,
    cd,
    ci,
    n_slots,
    out_labels,
    out_dists,
):
    """Search rows of ``queries``: cosine, walking 4-bit codes, exact re-rank."""
    return _search_rows(
        queries,
        k,
        ef,
        True,
        METRIC_COSINE,
        qparams,
        vecs,
        codes,
        cnorm,
        labels,
        alive,
        mask,
        has_deleted,
        links0,
        up_links,
        up_off,
        state,
        visited,
        cd,
        ci,
        n_slots,
        out_labels,
        out_dists,
    )


SEARCH = {
    (METRIC_L2, False): search_l2,
    (METRIC_COSINE, False): search_cosine,
    (METRIC_L2, True): search_l2_codes,
    (METRIC_COSINE, True): search_cosine_codes,
}


@njit(**_JIT)
def exact_search(query, k, metric, vecs, labels, nodes):
    """Exact k nearest among ``nodes``; returns (labels, dists), nearest first."""
    q, _ = prepare_query(query, np.empty((2, 0), np.float32), metric, False)
    od, oi = _topk_exact(q, vecs, metric, nodes, nodes.shape[0], k)
    out = np.empty(oi.shape[0], np.int64)
    for t in range(oi.shape[0]):
        out[t] = labels[oi[t]]
    return out, od


@njit(**_JIT)
def scan_search(query, k, r, metric, qparams, vecs, codes, cnorm, labels, nodes):
    """Top-k among ``nodes`` by a scan of their 4-bit codes, exact re-rank of the best ``r``.

    For filters that pass too many items for an exact scan to be cheap and too
    few for a graph walk: reading a 4-bit code costs an eighth of a float32
    row, and the re-rank makes the returned distances exact.  Returns
    (labels, dists), nearest first.
    """
    q, z = prepare_query(query, qparams, metric, True)
    n = nodes.shape[0]
    rr = min(max(r, k), n)
    hd = np.empty(max(rr, 1), np.float32)
    hi = np.empty(max(rr, 1), np.int32)
    nh = 0
    rowbytes = codes.shape[1]
    for t in range(n):
        if t + 8 < n:
            base = np.int64(nodes[t + 8]) * rowbytes
            for off in range(0, min(rowbytes, _PREFETCH_BYTES), 64):
                _prefetch(codes, base + off)
        i = nodes[t]
        d = _dist_code(z, codes, cnorm, i, metric)
        if nh < rr:
            _max_push(hd, hi, nh, d, i)
            nh += 1
        elif d < hd[0]:
            _max_sift_down(hd, hi, nh, d, i)
    od, oi = _topk_exact(q, vecs, metric, hi, nh, k)
    out = np.empty(oi.shape[0], np.int64)
    for t in range(oi.shape[0]):
        out[t] = labels[oi[t]]
    return out, od


# --------------------------------------------------------------------------
# building


@njit(**_INNER)
def _select_heuristic(vecs, metric, cand_d, cand_i, n, mmax, out):
    """The neighbour-selection heuristic of the HNSW paper (algorithm 4).

    ``cand_*[:n]`` are sorted nearest first.  A candidate is kept only when it
    is closer to the base than to every neighbour kept so far, which spreads
    the links over directions instead of crowding one cluster.  With fewer
    than ``mmax`` candidates all are kept (as hnswlib does).  Returns how many
    were written to ``out``.
    """
    if n <= mmax:
        for t in range(n):
            out[t] = cand_i[t]
        return n
    m = 0
    for t in range(n):
        if m >= mmax:
            break
        e = cand_i[t]
        de = cand_d[t]
        good = True
        for s in range(m):
            if _dist_nodes(vecs, e, out[s], metric) < de:
                good = False
                break
        if good:
            out[m] = e
            m += 1
    return m


@njit(**_INNER)
def _shrink_link(vecs, metric, links, row, owner, new, mmax, sd, si, sel):
    """Add ``new`` to the full list ``links[row]`` of node ``owner`` by
    re-running the heuristic over the old list plus ``new``.

    Entries are written before the count, so a concurrent reader sees a list
    whose every entry is a linked node (old or new), never garbage.
    """
    cnt = links[row, 0]
    for j in range(cnt):
        nb = links[row, j + 1]
        si[j] = nb
        sd[j] = _dist_nodes(vecs, owner, nb, metric)
    si[cnt] = new
    sd[cnt] = _dist_nodes(vecs, owner, new, metric)
    n = cnt + 1
    order = np.argsort(sd[:n])
    od = np.empty(n, np.float32)
    oi = np.empty(n, np.int32)
    for t in range(n):
        od[t] = sd[order[t]]
        oi[t] = si[order[t]]
    m = _select_heuristic(vecs, metric, od, oi, n, mmax, sel)
    for j in range(m):
        links[row, j + 1] = sel[j]
    links[row, 0] = m


@njit(**_INNER)
def _layer_candidates(
    q, vecs, metric, links0, up_links, up_off, lev, alive, has_deleted, cur, dcur, ef_construction, visited, cd, ci
):
    """A new node's candidates on layer ``lev``: a beam search of width ``ef_construction``
    from ``cur``, as ``(distances, nodes, count)`` nearest first (float32 vectors, no codes).

    Layer 0 of a graph without deleted nodes takes the sorted pool; otherwise the layer
    search skips the dead, and when everything reachable is dead the entry is the one candidate.
    """
    dim = vecs.shape[1]
    empty_codes = np.empty((0, dim), np.uint8)
    empty_f = np.empty(0, np.float32)
    empty_mask = np.empty(0, np.uint8)
    tag = next_tag(visited)
    if lev == 0 and not has_deleted:
        return _search_pool(
            q, empty_f, vecs, empty_codes, empty_f, False, metric, links0, cur, dcur, ef_construction, visited, tag
        )
    rd, ri, nr = _search_layer(
        q,
        empty_f,
        vecs,
        empty_codes,
        empty_f,
        False,
        metric,
        links0,
        up_links,
        up_off,
        lev,
        alive,
        empty_mask,
        cur,
        dcur,
        ef_construction,
        visited,
        tag,
        cd,
        ci,
    )
    if nr == 0:
        # Everything reachable is deleted: link to the entry anyway.
        rd[0] = dcur
        ri[0] = cur
        nr = 1
    order = np.argsort(rd[:nr])
    od = np.empty(nr, np.float32)
    oi = np.empty(nr, np.int32)
    for t in range(nr):
        od[t] = rd[order[t]]
        oi[t] = ri[order[t]]
    return od, oi, nr


@njit(**_JIT)
def insert_l2(
    start, stop, levels, vecs, M, M0, ef_construction, has_deleted, alive, links0, up_links, up_off, state, visited
):
    """Link nodes [start, stop) into an L2 graph (see :func:`_insert_impl`)."""
    _insert_impl(
        start,
        stop,
        levels,
        vecs,
        METRIC_L2,
        M,
        M0,
        ef_construction,
        has_deleted,
        alive,
        links0,
        up_links,
        up_off,
        state,
        visited,
    )


@njit(**_JIT)
def insert_cosine(
    start, stop, levels, vecs, M, M0, ef_construction, has_deleted, alive, links0, up_links, up_off, state, visited
):
    """Link nodes [start, stop) into a cosine graph (see :func:`_insert_impl`)."""
    _insert_impl(
        start,
        stop,
        levels,
        vecs,
        METRIC_COSINE,
        M,
        M0,
        ef_construction,
        has_deleted,
        alive,
        links0,
        up_links,
        up_off,
        state,
        visited,
    )


INSERT = {METRIC_L2: insert_l2, METRIC_COSINE: insert_cosine}


@njit(**_INNER)
def _insert_impl(
    start,
    stop,
    levels,
    vecs,
    metric,
    M,
    M0,
    ef_construction,
    has_deleted,
    alive,
    links0,
    up_links,
    up_off,
    state,
    visited,
):
    """Link nodes [start, stop) into the graph, one after another.

    Their vectors, levels and ``up_off`` rows are already written.  For each
    node: greedy descent to its top level, a beam search of width
    ``ef_construction`` on each of its layers, its own links chosen by the
    heuristic (at most M per layer), and only then the back links, the alive
    flag and, for a new top level, the entry point: a reader cannot reach a
    node before all of its own links exist.
    """
    dim = vecs.shape[1]
    empty_codes = np.empty((0, dim), np.uint8)
    empty_f = np.empty(0, np.float32)
    sel = np.empty((32, M0 + 1), np.int32)
    nsel = np.zeros(32, np.int64)
    sd = np.empty(M0 + 2, np.float32)
    si = np.empty(M0 + 2, np.int32)
    tmp = np.empty(M0 + 1, np.int32)
    cd = np.empty(visited.shape[0], np.float32)
    ci = np.empty(visited.shape[0], np.int32)
    for node in range(start, stop):
        level = np.int64(levels[node])
        packed = state[0]
        if packed < 0:
            links0[node, 0] = 0
            for lev in range(1, level + 1):
                up_links[up_off[node] + lev - 1, 0] = 0
            alive[node] = 1
            state[1] += 1
            state[0] = (level << 32) | node
            continue
        ep = np.int32(packed & 0xFFFFFFFF)
        top = np.int64(packed >> 32)
        q = vecs[node]
        dcur = _dist_query(q, vecs, ep, metric)
        cur, dcur = _greedy(
            q, empty_f, vecs, empty_codes, empty_f, False, metric, up_links, up_off, ep, dcur, top, level
        )
        for lev in range(min(level, top), -1, -1):
            od, oi, nr = _layer_candidates(
                q,
                vecs,
                metric,
                links0,
                up_links,
                up_off,
                lev,
                alive,
                has_deleted,
                cur,
                dcur,
                ef_construction,
                visited,
                cd,
                ci,
            )
            m = _select_heuristic(vecs, metric, od, oi, nr, M, tmp)
            for j in range(m):
                sel[lev, j] = tmp[j]
            nsel[lev] = m
            if lev == 0:
                for j in range(m):
                    links0[node, j + 1] = tmp[j]
                links0[node, 0] = m
            else:
                row = up_off[node] + lev - 1
                for j in range(m):
                    up_links[row, j + 1] = tmp[j]
                up_links[row, 0] = m
            cur = oi[0]
            dcur = od[0]
        for lev in range(top + 1, level + 1):
            up_links[up_off[node] + lev - 1, 0] = 0
        # Publish: back links, then alive, then (maybe) the entry point.
        for lev in range(min(level, top), -1, -1):
            for j in range(nsel[lev]):
                nb = sel[lev, j]
                if lev == 0:
                    cnt = links0[nb, 0]
                    if cnt < M0:
                        links0[nb, cnt + 1] = node
                        links0[nb, 0] = cnt + 1
                    else:
                        _shrink_link(vecs, metric, links0, nb, nb, node, M0, sd, si, tmp)
                else:
                    row = up_off[nb] + lev - 1
                    cnt = up_links[row, 0]
                    if cnt < M:
                        up_links[row, cnt + 1] = node
                        up_links[row, 0] = cnt + 1
                    else:
                        _shrink_link(vecs, metric, up_links, row, nb, node, M, sd, si, tmp)
        alive[node] = 1
        state[1] += 1
        if level > top:
            state[0] = (level << 32) | node


# --------------------------------------------------------------------------
# building in batches, on several threads
#
# A batch of nodes [start, stop) is linked in three steps.  Step one
# (:func:`batch_select_l2` / ``_cosine``) runs on several threads at once,
# each taking the next node not yet taken: it searches the graph as it was before
# the batch (nobody writes it meanwhile), adds the batch's earlier nodes as
# candidates (they were invisible to the search), chooses the node's links
# with the heuristic and writes its own rows.  Nothing reaches a batch node
# yet, so those rows are private.  Step two (:func:`batch_backlink_l2` /
# ``_cosine``) adds the back links, again on several threads: each takes the
# neighbours ``nb`` with ``nb % parts == part``, so no two threads write one
# list, and each list receives its new entries in batch order, whatever the
# number of threads.  Step three (:func:`publish_batch`) sets the alive
# flags, the count and the entry point.  A node is thus reachable only after
# its own links exist, as in :func:`_insert_impl`.


@njit(**_INNER)
def _batch_select_impl(
    taken,
    start,
    stop,
    levels,
    vecs,
    metric,
    M,
    ef_construction,
    has_deleted,
    alive,
    links0,
    up_links,
    up_off,
    packed,
    visited,
    cd,
    ci,
    sel,
    nsel,
):
    """Step one for the nodes of [start, stop) that this thread takes.

    The threads share ``taken`` (int64, one element, 0 at first) and each
    takes the next node from it with an atomic add, so that a thread the
    system holds back delays the batch by one node, not by its share.  What
    a node gets does not depend on the thread.  ``packed`` is the entry word
    of the graph before the batch (not empty).  ``sel[b, lev, :nsel[b, lev]]``
    receives the links chosen for node ``start + b`` on layer ``lev``, which
    are also written to its own rows.
    """
    dim = vecs.shape[1]
    empty_codes = np.empty((0, dim), np.uint8)
    empty_f = np.empty(0, np.float32)
    nb_max = stop - start
    md = np.empty(nb_max, np.float32)
    cand_d = np.empty(ef_construction + nb_max + 1, np.float32)
    cand_i = np.empty(ef_construction + nb_max + 1, np.int32)
    tmp = np.empty(max(M, 1) + 1, np.int32)
    ep = np.int32(packed & 0xFFFFFFFF)
    top = np.int64(packed >> 32)
    while True:
        b = _fetch_add(taken, 0, 1)
        if b >= nb_max:
            break
        node = start + b
        level = np.int64(levels[node])
        q = vecs[node]
        # The batch's earlier nodes, nearest first.
        nm = b
        for t in range(nm):
            md[t] = _dist_query(q, vecs, start + t, metric)
        morder = np.argsort(md[:nm])
        mates_d = np.empty(nm, np.float32)
        mates_i = np.empty(nm, np.int32)
        for t in range(nm):
            mates_d[t] = md[morder[t]]
            mates_i[t] = start + morder[t]
        dcur = _dist_query(q, vecs, ep, metric)
        cur, dcur = _greedy(
            q, empty_f, vecs, empty_codes, empty_f, False, metric, up_links, up_off, ep, dcur, top, level
        )
        for lev in range(level, -1, -1):
            nr = 0
            od = empty_f
            oi = np.empty(0, np.int32)
            if lev <= top:
                od, oi, nr = _layer_candidates(
                    q,
                    vecs,
                    metric,
                    links0,
                    up_links,
                    up_off,
                    lev,
                    alive,
                    has_deleted,
                    cur,
                    dcur,
                    ef_construction,
                    visited,
                    cd,
                    ci,
                )
            # Merge the search's candidates with the earlier batch nodes on this
            # layer, as far as a search of the grown graph would have reached:
            # not past the farthest of a full beam.
            reach = od[nr - 1] if nr >= ef_construction else np.float32(np.inf)
            n = 0
            s = 0
            for t in range(nm):
                if mates_d[t] > reach:
                    break
                if levels[mates_i[t]] < lev:
                    continue
                while s < nr and od[s] <= mates_d[t]:
                    cand_d[n] = od[s]
                    cand_i[n] = oi[s]
                    n += 1
                    s += 1
                cand_d[n] = mates_d[t]
                cand_i[n] = mates_i[t]
                n += 1
            while s < nr:
                cand_d[n] = od[s]
                cand_i[n] = oi[s]
                n += 1
                s += 1
            m = _select_heuristic(vecs, metric, cand_d, cand_i, n, M, tmp)
            for j in range(m):
                sel[b, lev, j] = tmp[j]
            nsel[b, lev] = m
            if lev == 0:
                for j in range(m):
                    links0[node, j + 1] = tmp[j]
                links0[node, 0] = m
            else:
                row = up_off[node] + lev - 1
                for j in range(m):
                    up_links[row, j + 1] = tmp[j]
                up_links[row, 0] = m
            if nr > 0:
                cur = oi[0]
                dcur = od[0]


@njit(**_JIT)
def batch_select_l2(
    taken,
    start,
    stop,
    levels,
    vecs,
    M,
    ef_construction,
    has_deleted,
    alive,
    links0,
    up_links,
    up_off,
    packed,
    visited,
    cd,
    ci,
    sel,
    nsel,
):
    """Step one of a batch in an L2 graph (see :func:`_batch_select_impl`)."""
    _batch_select_impl(
        taken,
        start,
        stop,
        levels,
        vecs,
        METRIC_L2,
        M,
        ef_construction,
        has_deleted,
        alive,
        links0,
        up_links,
        up_off,
        packed,
        visited,
        cd,
        ci,
        sel,
        nsel,
    )


@njit(**_JIT)
def batch_select_cosine(
    taken,
    start,
    stop,
    levels,
    vecs,
    M,
    ef_construction,
    has_deleted,
    alive,
    links0,
    up_links,
    up_off,
    packed,
    visited,
    cd,
    ci,
    sel,
    nsel,
):
    """Step one of a batch in a cosine graph (see :func:`_batch_select_impl`)."""
    _batch_select_impl(
        taken,
        start,
        stop,
        levels,
        vecs,
        METRIC_COSINE,
        M,
        ef_construction,
        has_deleted,
        alive,
        links0,
        up_links,
        up_off,
        packed,
        visited,
        cd,
        ci,
        sel,
        nsel,
    )


@njit(**_INNER)
def _batch_backlink_impl(part, parts, start, stop, levels, vecs, metric, M, M0, links0, up_links, up_off, sel, nsel):
    """Step two: the back links to the neighbours ``nb`` with ``nb % parts == part``, in batch order."""
    sd = np.empty(M0 + 2, np.float32)
    si = np.empty(M0 + 2, np.int32)
    tmp = np.empty(M0 + 1, np.int32)
    for node in range(start, stop):
        b = node - start
        for lev in range(np.int64(levels[node]), -1, -1):
            for j in range(nsel[b, lev]):
                nb = sel[b, lev, j]
                if nb % parts != part:
                    continue
                if lev == 0:
                    cnt = links0[nb, 0]
                    if cnt < M0:
                        links0[nb, cnt + 1] = node
                        links0[nb, 0] = cnt + 1
                    else:
                        _shrink_link(vecs, metric, links0, nb, nb, node, M0, sd, si, tmp)
                else:
                    row = up_off[nb] + lev - 1
                    cnt = up_links[row, 0]
                    if cnt < M:
                        up_links[row, cnt + 1] = node
                        up_links[row, 0] = cnt + 1
                    else:
                        _shrink_link(vecs, metric, up_links, row, nb, node, M, sd, si, tmp)


@njit(**_JIT)
def batch_backlink_l2(part, parts, start, stop, levels, vecs, M, M0, links0, up_links, up_off, sel, nsel):
    """Step two of a batch in an L2 graph (see :func:`_batch_backlink_impl`)."""
    _batch_backlink_impl(part, parts, start, stop, levels, vecs, METRIC_L2, M, M0, links0, up_links, up_off, sel, nsel)


@njit(**_JIT)
def batch_backlink_cosine(part, parts, start, stop, levels, vecs, M, M0, links0, up_links, up_off, sel, nsel):
    """Step two of a batch in a cosine graph (see :func:`_batch_backlink_impl`)."""
    _batch_backlink_impl(
        part, parts, start, stop, levels, vecs, METRIC_COSINE, M, M0, links0, up_links, up_off, sel, nsel
    )


@njit(**_JIT)
def publish_batch(start, stop, levels, alive, state):
    """Step three: mark the batch's nodes linked, in order; a new top level moves the entry point."""
    for node in range(start, stop):
        alive[node] = 1
        state[1] += 1
        level = np.int64(levels[node])
        if level > np.int64(state[0] >> 32):
            state[0] = (level << 32) | node


BATCH_SELECT = {METRIC_L2: batch_select_l2, METRIC_COSINE: batch_select_cosine}
BATCH_BACKLINK = {METRIC_L2: batch_backlink_l2, METRIC_COSINE: batch_backlink_cosine}


# --------------------------------------------------------------------------
# label -> node hash table (open addressing, linear probing)


@njit(**_INLINE)
def _hslot(key, mask):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64((h >> np.uint64(29)) & np.uint64(mask))


@njit(**_INLINE)
def hash_lookup(hkeys, hvals, key):
    mask = hkeys.shape[0] - 1
    s = _hslot(key, mask)
    while True:
        v = hvals[s]
        if v == _EMPTY:
            return -1
        if hkeys[s] == key:
            return v if v >= 0 else -1
        s = (s + 1) & mask


@njit(**_JIT)
def hash_insert_many(hkeys, hvals, keys, nodes, replaced):
    """Map keys[t] -> nodes[t]; replaced[t] gets the node it displaced or -1.
    Returns how many new slots were taken."""
    mask = hkeys.shape[0] - 1
    used = 0
    for t in range(keys.shape[0]):
        key = keys[t]
        s = _hslot(key, mask)
        replaced[t] = -1
        while True:
            v = hvals[s]
            if v == _EMPTY:
                hkeys[s] = key
                hvals[s] = nodes[t]
                used += 1
                break
            if hkeys[s] == key:
                if v >= 0:
                    replaced[t] = v
                hvals[s] = nodes[t]
                break
            s = (s + 1) & mask
    return used


@njit(**_JIT)
def hash_delete_many(hkeys, hvals, keys, out_nodes):
    """Tombstone each key; out_nodes[t] gets its node or -1 if absent."""
    mask = hkeys.shape[0] - 1
    for t in range(keys.shape[0]):
        key = keys[t]
        s = _hslot(key, mask)
        out_nodes[t] = -1
        while True:
            v = hvals[s]
            if v == _EMPTY:
                break
            if hkeys[s] == key:
                if v >= 0:
                    out_nodes[t] = v
                    hvals[s] = _TOMB
                break
            s = (s + 1) & mask


@njit(**_JIT)
def build_filter(allowed, hkeys, hvals, alive, cap):
    """Turn allowed labels into (mask uint8[cap], nodes int32[m]) of alive nodes."""
    mask = np.zeros(cap, np.uint8)
    nodes = np.empty(allowed.shape[0], np.int32)
    m = 0
    for t in range(allowed.shape[0]):
        v = hash_lookup(hkeys, hvals, allowed[t])
        if v >= 0 and v < cap and alive[v] != 0 and mask[v] == 0:
            mask[v] = 1
            nodes[m] = v
            m += 1
    return mask, nodes[:m]


# --------------------------------------------------------------------------
# checks of a loaded file


@njit(**_JIT)
def check_structure(n, levels, up_off, n_up, links0, up_links, M, M0):
    """Return an empty string when the graph arrays are consistent, else the reason."""
    next_row = 0
    for i in range(n):
        lv = levels[i]
        if lv < 0 or lv > 31:
            return "bad level"
        cnt = links0[i, 0]
        if cnt < 0 or cnt > M0:
            return "bad layer-0 link count"
        for j in range(1, cnt + 1):
            nb = links0[i, j]
            if nb < 0 or nb >= n:
                return "layer-0 link out of range"
        if lv == 0:
            if up_off[i] != -1:
                return "upper-layer row for a layer-0 node"
            continue
        if up_off[i] != next_row:
            return "upper-layer rows out of order"
        next_row += lv
        if next_row > n_up:
            return "upper-layer rows out of range"
        for lev in range(lv):
            row = up_off[i] + lev
            cnt = up_links[row, 0]
            if cnt < 0 or cnt > M:
                return "bad upper link count"
            for j in range(1, cnt + 1):
                nb = up_links[row, j]
                if nb < 0 or nb >= n or levels[nb] < lev + 1:
                    return "upper link out of range"
    if next_row != n_up:
        return "unused upper-layer rows"
    return ""
