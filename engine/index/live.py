"""The HNSW index kept in step with the store, and the item catalog that filters are evaluated on.

SQLite is the source of truth; this is derived state.  A :class:`LiveIndex`

* loads the index file saved beside the database, checks it was built from
  this library's item log (the file is stamped with the log position it holds)
  and catches up with the changes made since, from the store's ``items_log``;
* rebuilds from the stored vectors when the file is missing, damaged, from
  another model, or older than the part of the log still kept;
* follows indexing as it happens: removals take effect at once, new vectors
  are searched exactly until they are linked into the graph (in the
  background for large batches), so a search never misses a committed item;
* compacts the graph in the background once deleted nodes (left by removed
  and replaced vectors) make up ``COMPACT_DEAD_FRACTION`` of it, and before
  saving, so neither memory nor the file grows with the number of re-indexes;
* keeps a columnar catalog of every item (file id, kind, media time) in numpy,
  so the planner counts and lists the items passing a filter in a millisecond
  instead of a SQL scan.

Spaces smaller than ``min_items`` (``engine.library.GRAPH_MIN_ITEMS`` in
the app) do not get a graph at all: their vectors are held in one matrix and
searched exactly, which is as fast and always exact (a filtered search would
otherwise read the passing items' vectors from SQLite every time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from engine.errors import Cancelled, IndexFileError
from engine.store import KINDS, Filters, LibraryStore

from .hnsw import HnswIndex
from .state import IndexState

log = logging.getLogger(__name__)

# Pending vectors up to this many are linked inside the call that found them;
# more go to a background thread while searches cover them exactly.
LINK_INLINE = 512
LINK_STEP = 32  # vectors linked per lock hold in the background, so a sync never waits long
_NO_PENDING = (np.empty(0, np.int64), np.empty((0, 0), np.float32))
# Compact once deleted nodes make up this share of the graph's nodes.  Each
# removed or replaced vector leaves its node behind as a waypoint: it costs
# memory, file size and search time, and many of them crowd a search's beam so
# that recall drops at a fixed ef.  A compaction links every live item again, so
# compacting at a share f costs (1 - f) / f insertions per deleted node (4 at
# 20 %: cheap next to the indexing that deleted it) and keeps the graph, and the
# file saved from it, within 1 / (1 - f) = 1.25 x of a fresh build.
COMPACT_DEAD_FRACTION = 0.2
# What changed while a compaction was linking is applied to the new graph
# outside the lock until at most this many new vectors are left; those few are
# linked under it, just before the new graph replaces the old one, so the lock
# is held no longer than the background linker holds it.
COMPACT_CATCH_UP_LOCKED = LINK_STEP


class GraphParams(TypedDict):
    """How a graph is built and searched: :class:`HnswIndex`'s keyword arguments."""

    M: int
    ef_construction: int
    ef_search: int


@dataclass(frozen=True)
class Catalog:
    """Every item's file, kind code (index into KINDS) and media time, sorted by item id."""

    ids: np.ndarray
    file_ids: np.ndarray
    kinds: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def empty(cls) -> Catalog:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0, np.float64))

    def without(self, removed: np.ndarray) -> Catalog:
        if removed.size == 0 or len(self) == 0:
            return self
        keep = ~np.isin(self.ids, removed)
        return Catalog(self.ids[keep], self.file_ids[keep], self.kinds[keep], self.times[keep])

    def plus(self, rows: tuple[np.ndarray, ...]) -> Catalog:
        if rows[0].size == 0:
            return self
        base = self.without(rows[0])
        ids = np.concatenate([base.ids, rows[0]])
        order = np.argsort(ids, kind="stable")
        return Catalog(
            ids[order],
            np.concatenate([base.file_ids, rows[1]])[order],
            np.concatenate([base.kinds, rows[2]])[order],
            np.concatenate([base.times, rows[3]])[order],
        )

    def mask(self, filters: Filters, store: LibraryStore) -> np.ndarray:
        """Which items pass ``filters`` (a boolean array aligned with ``ids``)."""
        mask = np.ones(len(self), bool)
        if filters.kinds:
            codes = [KINDS.index(k) for k in filters.kinds if k in KINDS]
            mask &= np.isin(self.kinds, np.array(codes, np.int8))
        with np.errstate(invalid="ignore"):  # unknown times (NaN) pass no time bound, as in SQL
            if filters.after is not None:
                mask &= self.times >= filters.after
            if filters.before is not None:
                mask &= self.times < filters.before
        if filters.tags:
            mask &= self._files_mask(store.file_ids_with_tags(filters.tags, filters.tags_mode))
        if filters.folder:
            mask &= self._files_mask(np.array(store.file_ids_under(filters.folder), np.int64))
        return mask

    def _files_mask(self, file_ids: np.ndarray) -> np.ndarray:
        if file_ids.size == 0 or len(self) == 0:
            return np.zeros(len(self), bool)
        top = int(max(file_ids.max(), self.file_ids.max())) + 1
        table = np.zeros(top, bool)
        table[file_ids] = True
        return table[self.file_ids]


class LiveIndex:
    """HNSW + catalog over the vectors of one space of ``store`` (``"clip"`` or ``"text"``), saved at ``path``.

    ``state`` is an :class:`IndexState`; ``error`` says why when it is ``FAILED``.
    """

    def __init__(
        self,
        store: LibraryStore,
        path: str | Path,
        *,
        min_items: int,
        space: str = "clip",
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
    ):
        self.store = store
        self.path = Path(path)
        self.space = space
        self.table = store.vector_table(space)  # the vectors it follows; a re-embed switches to another table
        self.min_items = int(min_items)
        self.params: GraphParams = {"M": M, "ef_construction": ef_construction, "ef_search": ef_search}
        self.state = IndexState.CLOSED
        self.error: str | None = None
        self.index: HnswIndex | None = None
        self._catalog: Catalog | None = None
        # A loaded graph reads its catalog from the store on first use (a filter,
        # a change to apply), so that a search without filters never waits for it.
        self._catalog_deferred = False
        self._position = 0  # log position the catalog and index reflect
        # Committed vectors not yet linked into the graph, as one (ids, vectors)
        # tuple so that a search reads a consistent pair without a lock.
        self._pending: tuple[np.ndarray, np.ndarray] = _NO_PENDING
        # A small space: every (id, vector), sorted by id, searched exactly.
        self._small: tuple[np.ndarray, np.ndarray] = _NO_PENDING
        self._lock = threading.RLock()  # one writer: sync, build, save
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()
        self._dirty = False  # changed since loaded or saved
        self._compactor: threading.Thread | None = None
        self._compact_cancel = threading.Event()  # set by close(); never cleared
        self._compact_failed: HnswIndex | None = None  # the graph a compaction failed on: not tried again
        # Called with "copied" and "built" as a compaction passes those points
        # (outside the lock); tests hold a compaction there.
        self.compaction_hook: Callable[[str], None] | None = None

    # ------------------------------------------------------------- lifecycle

    @property
    def catalog(self) -> Catalog | None:
        """Every item's file, kind and time (read from the store on first use after a load)."""
        catalog = self._catalog
        if catalog is None and self._catalog_deferred:
            with self._lock:
                if self._catalog is None and self._catalog_deferred:
                    self._catalog = Catalog(*self.store.item_catalog(space=self.space))
                    self._catalog_deferred = False
                catalog = self._catalog
        return catalog

    @catalog.setter
    def catalog(self, value: Catalog | None) -> None:
        self._catalog = value
        self._catalog_deferred = False

    @property
    def position(self) -> int:
        return self._position

    @property
    def usable(self) -> bool:
        """Whether searches go through this index: its graph, or a small space's matrix (else the caller searches)."""
        return (self.state == IndexState.READY and self.index is not None) or (
            self.state == IndexState.SMALL and self.catalog is not None
        )

    def open(self, *, build: str = "background", on_progress: Callable[[int, int, str], None] | None = None) -> None:
        """Load the saved index and catch up; rebuild it when unusable.

        ``build`` says what to do when the file cannot be used: ``"background"``
        (a thread; exact search meanwhile), ``"now"`` (in this call) or
        ``"never"`` (stay on exact search).
        """
        with self._lock:
            dim = self.store.space_dim(self.space)
            n = self.store.count_items(self.space)
            if dim is None or n < self.min_items:
                self._become_small()
                return
            try:
                self._load(dim)
            except IndexFileError as exc:
                log.info("rebuilding the vector index: %s", exc)
                self.index = None
                self._start_build(build, str(exc), on_progress)
                return
            self.state = IndexState.READY
            self.error = None
            if build != "never":  # a one-shot search never rebuilds, so it does not read every vector to check them
                self._verify_in_background()
        self.sync()
        self._compact_in_background()  # a saved file over the threshold (sync starts one only after changes)

    def close(self, *, save: bool = True, prune: bool = True) -> None:
        """Stop background work (a build, linking, a compaction); save the index if it changed.

        See :meth:`save_if_changed` for ``prune``.  A compaction that was
        stopped leaves the old graph in place; saving then compacts it first
        when it is over the threshold.
        """
        self._cancel.set()
        self._compact_cancel.set()
        for worker in (self._worker, self._compactor):
            if worker is not None:
                worker.join()
        if save:
            self.save_if_changed(prune=prune)

    def _become_small(self) -> None:
        self.state = IndexState.SMALL
        self.index = None
        self._pending = _NO_PENDING
        self._position = self.store.items_version()
        dim = self.store.space_dim(self.space)
        if dim is None:
            self.catalog = None
            self._small = _NO_PENDING
            return
        catalog = Catalog(*self.store.item_catalog(space=self.space))
        parts = list(self.store.iter_vectors(4096, space=self.space))
        ids = np.concatenate([i for i, _ in parts]) if parts else np.empty(0, np.int64)
        vecs = np.concatenate([v for _, v in parts]) if parts else np.empty((0, dim), np.float32)
        keep = np.isin(ids, catalog.ids)  # a vector without its item (mid-change elsewhere) is not findable
        self._small = (ids[keep], vecs[keep])
        self.catalog = catalog

    def _load(self, dim: int) -> None:
        # The vectors' checksum is checked in the background (see open), so that
        # opening a large library maps the file and reads only its graph.
        index = HnswIndex.load(self.path, verify=False)
        position = index.generation
        if index.dim != dim:
            raise IndexFileError(f"the index file holds {index.dim}-dimensional vectors, the library {dim}")
        if position is None or position < self.store.items_log_start() or position > self.store.items_version():
            raise IndexFileError("the index file is older than the library's change log (or from another library)")
        self._catalog = None
        self._catalog_deferred = True
        self.index = index
        self._position = position
        self._pending = _NO_PENDING
        self._dirty = False
        # Items the file does not know are linked by the catch-up below; the
        # catalog, when it is read, holds every item, so filters are right meanwhile.

    def _verify_in_background(self) -> None:
        """Check the loaded file's vectors in a thread; a damaged file is rebuilt from the store."""
        index = self.index
        if index is None or index.verified:
            return

        def run() -> None:
            try:
                index.verify()
            except IndexFileError as exc:
                log.warning("rebuilding the vector index: %s", exc)
                with self._lock:
                    if self.index is not index or self.state != IndexState.READY:
                        return  # replaced meanwhile (rebuilt, compacted, closed)
                    self.index = None
                    self._pending = _NO_PENDING
                    self._dirty = False
                    self._start_build("background", str(exc), None)

        threading.Thread(target=run, name="shoebox-index-verify", daemon=True).start()

    def _start_build(self, build: str, why: str, on_progress) -> None:
        if build == "never":
            self.state = IndexState.FAILED
            self.error = f"the vector index is not built ({why}); searching exactly"
            self.catalog = None
            return
        self.state = IndexState.BUILDING
        self.error = None
        if build == "now":
            self._build(on_progress)
            return
        self._cancel.clear()
        self._worker = threading.Thread(target=self._build_in_background, name="shoebox-index-build", daemon=True)
        self._worker.start()

    def _build_in_background(self) -> None:
        try:
            self._build(None)
        except Cancelled:
            self.state = IndexState.FAILED
            self.error = "building the vector index was stopped"
        except Exception as exc:  # a thread must report, not die silently
            log.exception("building the vector index failed")
            self.state = IndexState.FAILED
            self.error = f"building the vector index failed: {exc}"

    def _build(self, on_progress) -> None:
        """Build the graph from every stored vector, then catch up with what changed meanwhile."""
        dim = self.store.space_dim(self.space)
        if dim is None:
            with self._lock:
                self._become_small()
            return
        start = self.store.items_version()
        catalog = Catalog(*self.store.item_catalog(space=self.space))
        index = HnswIndex(dim, "cosine", **self.params)
        total = len(catalog)
        done = 0
        for ids, vecs in self.store.iter_vectors(4096, space=self.space):
            if self._cancel.is_set():
                raise Cancelled("building the vector index was stopped")
            index.add(ids, vecs, cancel_check=self._cancel.is_set)
            done += len(ids)
            if on_progress is not None:
                on_progress(min(done, total), total, "building the vector index")
        index.generation = start
        with self._lock:
            self.index = index
            self.catalog = catalog
            self._position = start
            self._pending = _NO_PENDING
            self._dirty = True
            self.state = IndexState.READY
            self.error = None
        self.sync(link="inline")

    # ------------------------------------------------------------- following the store

    def sync(self, *, link: str = "auto") -> int:
        """Apply the store's item changes since the last call; returns how many were applied.

        ``link``: ``"auto"`` links a few new vectors at once and many in the
        background, ``"inline"`` links all of them before returning.
        """
        with self._lock:
            if self.state in (IndexState.CLOSED, IndexState.FAILED):
                return 0
            version = self.store.items_version()
            if version == self._position:
                if link == "inline" and self.index is not None:
                    self._link_pending()
                return 0
            if self.state == IndexState.SMALL:
                if (
                    self.store.count_items(self.space) >= self.min_items
                    and self.store.space_dim(self.space) is not None
                ):
                    self.state = IndexState.CLOSED
                    self.open(build="background" if link == "auto" else "now")
                else:
                    self._become_small()  # a few thousand vectors: read again
                return 0
            if self.state == IndexState.BUILDING:
                return 0  # the build catches up when it finishes
            if self._position < self.store.items_log_start():
                # Another process pruned changes this index has not seen.
                self.state = IndexState.CLOSED
                self.open(build="background" if link == "auto" else "now")
                return 0
            applied = 0
            while True:
                changes = self.store.item_changes(self._position)
                if not changes:
                    break
                last: dict[int, int] = {item_id: op for _, item_id, op in changes}  # an item's last change wins
                self._position = changes[-1][0]
                applied += len(changes)
                removed = np.array([i for i, op in last.items() if op == 0], np.int64)
                added = np.array([i for i, op in last.items() if op == 1], np.int64)
                self._apply(removed, added)
            self._dirty = self._dirty or applied > 0
            if link == "inline" or self._pending[0].size <= LINK_INLINE:
                self._link_pending()
            else:
                self._link_in_background()
            self._compact_in_background()
            return applied

    def _apply(self, removed: np.ndarray, added: np.ndarray) -> None:
        assert self.index is not None and (self._catalog is not None or self._catalog_deferred)
        # An id may be removed and added again in one stretch of the log; only
        # its last state is applied, and what exists now decides.
        pending_ids, pending_vecs = self._pending
        if removed.size:
            self.index.delete(removed)
            if self._catalog is not None:  # a deferred catalog is read later, as the store is then
                self.catalog = self._catalog.without(removed)
            if pending_ids.size:
                keep = ~np.isin(pending_ids, removed)
                pending_ids, pending_vecs = pending_ids[keep], pending_vecs[keep]
        if added.size:
            rows = self.store.item_catalog(added, space=self.space)
            present = rows[0]
            if self._catalog is not None:
                self.catalog = self._catalog.plus(rows)
            if present.size:
                vecs = self.store.vectors(present, space=self.space)
                if pending_ids.size:
                    keep = ~np.isin(pending_ids, present)
                    pending_ids = np.concatenate([pending_ids[keep], present])
                    pending_vecs = np.concatenate([pending_vecs[keep], vecs])
                else:
                    pending_ids, pending_vecs = present, vecs
        self._pending = (pending_ids, pending_vecs)
        if added.size:
            # A replaced vector must not be found under its old value meanwhile
            # (the pending copy is searched until it is linked again).
            self.index.delete(added)

    def _link_some(self, n: int) -> bool:
        """Link up to ``n`` pending vectors; False when none were left."""
        assert self.index is not None
        ids, vecs = self._pending
        if not ids.size:
            return False
        self.index.add(ids[:n], vecs[:n])  # linked before it leaves pending: always findable
        self._pending = (ids[n:], vecs[n:])
        return True

    def _link_pending(self) -> None:
        while self._link_some(4096):
            pass

    def _link_in_background(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return

        def run() -> None:
            try:
                while not self._cancel.is_set():
                    with self._lock:
                        if self.index is None or not self._link_some(LINK_STEP):
                            return
            except Exception as exc:  # a thread must report, not die silently
                log.exception("linking new vectors into the index failed")
                self.state = IndexState.FAILED
                self.error = f"updating the vector index failed: {exc}"

        self._cancel.clear()
        self._worker = threading.Thread(target=run, name="shoebox-index-link", daemon=True)
        self._worker.start()

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Hold the index still: no sync, link, build swap or compaction changes it inside the block.

        A search pins every space's index, opens a store snapshot, and syncs the
        indexes to exactly that snapshot, so the graph and the rows it reads agree.
        """
        with self._lock:
            yield

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background build or linking to finish (tests, the CLI before saving)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # ------------------------------------------------------------- saving

    def save_if_changed(self, *, prune: bool = True) -> bool:
        """Write the index file (atomically) when it changed; prune the log it now holds unless told not to.

        Where several spaces share the store's change log, the caller prunes
        only what every saved index holds (``prune=False`` here).  A graph over
        ``COMPACT_DEAD_FRACTION`` is compacted first (waiting for a background
        compaction that is running), so the file stays proportional to the live
        items.  Not to be called with the lock held.
        """
        self._compact_before_saving()
        with self._lock:
            if not self.usable or not self._dirty:
                return False
            self._link_pending()
            assert self.index is not None
            self.index.save(self.path, generation=self._position)
            self._dirty = False
            position = self._position
        if prune:
            self.store.prune_items_log(position)
        return True

    # ------------------------------------------------------------- compaction

    def needs_compaction(self) -> bool:
        """Whether deleted nodes make up ``COMPACT_DEAD_FRACTION`` or more of the graph."""
        index = self.index
        if index is None or self.state != IndexState.READY or index is self._compact_failed:
            return False
        dead = index.deleted_count
        return dead > 0 and dead >= COMPACT_DEAD_FRACTION * index.slots

    def compact(self, *, cancel_check: Callable[[], bool] | None = None) -> bool:
        """Rebuild the graph from its live items without holding up searches; True when it was replaced.

        The live nodes' ids and vectors are copied under the lock and linked
        into a new graph outside it; searches use the old graph meanwhile.
        Whatever changed in the old graph since the copy (items deleted or
        replaced by :meth:`sync`, vectors linked from the pending batch) is
        found by node slot, which a graph never reuses, and applied to the new
        graph, the last few under the lock just before the new graph replaces
        the old one.  Vectors still pending stay pending, searched exactly.
        Nothing depends on the store's change log, so pruning it is safe
        meanwhile.  False when there is no graph, or when it was replaced
        (reloaded or rebuilt) while compacting: the copy is dropped.

        Raises:
            Cancelled: ``cancel_check`` asked to stop; the old graph stays.
            Exception: whatever failed; the old graph stays and is not
                compacted again (the next load or build starts afresh).
        """
        stop = cancel_check or (lambda: False)
        with self._lock:
            old = self.index
            if old is None or self.state != IndexState.READY:
                return False
            mark = old.slots
            nodes, ids, vecs = old.live_nodes(0, mark)
        try:
            self._compaction_point("copied")
            fresh = HnswIndex(
                old.dim,
                old.metric,
                old.M,
                old.ef_construction,
                old.ef_search,
                old.quantize,
                old.seed,
                build_threads=old.build_threads,
            )
            if ids.size:
                fresh.add(ids, vecs, cancel_check=stop)
            del vecs
            self._compaction_point("built")
            rounds = 0
            while True:
                if stop():
                    raise Cancelled("compacting the vector index was stopped")
                with self._lock:
                    if self.index is not old or self.state != IndexState.READY:
                        log.info("the vector index was replaced while it was compacted; the compacted copy is dropped")
                        return False
                    end = old.slots
                    alive = old.still_alive(nodes)
                    new_nodes, new_ids, new_vecs = old.live_nodes(mark, end)
                    # Few enough (or linking keeps outrunning the catch-up): finish under the lock.
                    if new_ids.size <= COMPACT_CATCH_UP_LOCKED or rounds == 3:
                        _catch_up(fresh, ids[~alive], new_ids, new_vecs)
                        fresh.generation = old.generation
                        self.index = fresh  # one assignment: a search has read the old graph or reads this one
                        self._dirty = True
                        log.info(
                            "compacted the %s vector index: %d live items, %d deleted nodes reclaimed",
                            self.space,
                            len(fresh),
                            old.deleted_count,
                        )
                        return True
                # Many vectors were linked meanwhile: link them outside the lock, then look again.
                _catch_up(fresh, ids[~alive], new_ids, new_vecs)
                nodes = np.concatenate([nodes[alive], new_nodes])
                ids = np.concatenate([ids[alive], new_ids])
                mark = end
                rounds += 1
        except Cancelled:
            raise
        except Exception:
            self._compact_failed = old
            raise

    def _compaction_point(self, stage: str) -> None:
        hook = self.compaction_hook
        if hook is not None:
            hook(stage)

    def _compact_in_background(self) -> None:
        """Start a compaction thread when the graph is over the threshold and none is running."""
        if self._compact_cancel.is_set() or not self.needs_compaction():
            return
        running = self._compactor
        if running is not None and running.is_alive():
            return

        def run() -> None:
            try:
                self.compact(cancel_check=self._compact_cancel.is_set)
            except Cancelled:
                log.info("compacting the %s vector index was stopped", self.space)
            except Exception:  # a thread must report, not die silently; the old graph keeps working
                log.exception("compacting the %s vector index failed; the old graph stays in use", self.space)

        self._compactor = threading.Thread(target=run, name="shoebox-index-compact", daemon=True)
        self._compactor.start()

    def wait_compaction(self, timeout: float | None = None) -> None:
        """Wait for a background compaction to finish (tests, benchmarks)."""
        running = self._compactor
        if running is not None:
            running.join(timeout)

    def _compact_before_saving(self) -> None:
        if not (self._dirty and self.needs_compaction()):
            return
        running = self._compactor
        if running is not None and running.is_alive():
            running.join()  # it is doing what saving needs
        if not self.needs_compaction():
            return
        try:
            self.compact()
        except Exception:  # the graph is derived: save it as it is rather than not at all
            log.exception("compacting the %s vector index before saving failed; saving it as it is", self.space)

    # ------------------------------------------------------------- searching

    def allowed(self, filters: Filters) -> np.ndarray | None:
        """Item ids passing ``filters`` from the catalog; None when unfiltered or no catalog."""
        if filters.empty:
            return None  # before the catalog: an unfiltered search never reads it
        catalog = self.catalog
        if catalog is None:
            return None
        return catalog.ids[catalog.mask(filters, self.store)]

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[list[tuple[int, float]], str]:
        """(item id, cosine similarity) pairs best first, and the plan used ("graph", "scan", "exact").

        Vectors committed but not yet linked are searched exactly and merged.  A small space
        is searched exactly over its matrix (plan ``"matrix"``).
        """
        index = self.index
        if index is None:
            return self._search_small(query, k, allowed), "matrix"
        pending_ids, pending_vecs = self._pending
        ef = max(index.ef_search, k)
        if allowed is None:
            if len(index) <= 4 * ef:
                ids, dists = index.search(query, k, ef=ef, allowed=index.ids(), plan="exact")
                plan = "exact"
            else:
                ids, dists = index.search(query, k, ef=ef)
                plan = "graph"
        else:
            plan = index.plan(allowed.shape[0], k, ef)
            ids, dists = index.search(query, k, ef=ef, allowed=allowed, plan=plan)
        hits = [(int(i), 1.0 - float(d)) for i, d in zip(ids, dists, strict=True)]
        if pending_ids.size:
            if allowed is not None:
                keep = np.isin(pending_ids, allowed)
                pending_ids, pending_vecs = pending_ids[keep], pending_vecs[keep]
            if pending_ids.size:
                sims = pending_vecs @ np.asarray(query, np.float32)
                top = np.argsort(-sims)[:k]
                hits += [(int(pending_ids[i]), float(sims[i])) for i in top]
                seen: dict[int, float] = {}
                for item_id, sim in hits:
                    seen[item_id] = max(sim, seen.get(item_id, -2.0))
                hits = sorted(seen.items(), key=lambda kv: -kv[1])[:k]
        return hits, plan

    def _search_small(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> list[tuple[int, float]]:
        ids, vecs = self._small
        if allowed is not None:
            rows = np.flatnonzero(np.isin(ids, allowed))
            ids, vecs = ids[rows], vecs[rows]
        if not ids.size or k <= 0:
            return []
        sims = vecs @ np.asarray(query, np.float32)
        k = min(k, ids.size)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(ids[i]), float(sims[i])) for i in top]

    def vectors(self, item_ids: list[int]) -> np.ndarray:
        """Vectors of ``item_ids`` from memory (the graph, the pending batch or a small space's matrix), else the store."""
        if self.index is None and self.state == IndexState.SMALL:
            ids, vecs = self._small
            pos = np.searchsorted(ids, np.asarray(item_ids, np.int64)) if ids.size else np.zeros(len(item_ids), int)
            found = (
                (pos < ids.size) & (ids[np.minimum(pos, max(ids.size - 1, 0))] == np.asarray(item_ids))
                if ids.size
                else np.zeros(len(item_ids), bool)
            )
            if found.all():
                return vecs[pos]
            raise KeyError(item_ids[int(np.flatnonzero(~found)[0])])
        out = np.empty((len(item_ids), self.index.dim if self.index is not None else 0), np.float32)
        todo = np.ones(len(item_ids), bool)
        if self.index is not None and item_ids:
            found, vecs = self.index.get_vectors(item_ids)
            out[found] = vecs
            todo &= ~found
        pending_ids, pending_vecs = self._pending
        if todo.any() and pending_ids.size:
            where = {int(i): n for n, i in enumerate(pending_ids)}
            for row in np.flatnonzero(todo):
                n = where.get(int(item_ids[row]))
                if n is not None:
                    out[row] = pending_vecs[n]
                    todo[row] = False
        if todo.any():
            out[todo] = self.store.vectors([item_ids[i] for i in np.flatnonzero(todo)], space=self.space)
        return out

    def describe(self) -> dict[str, Any]:
        """For ``shoebox status``: state, items in the graph, pending, file.

        ``live`` and ``dead`` count the graph's nodes (``dead``: deleted items
        not yet compacted away; a small space has none), ``file_bytes`` is the
        saved file's size (None when there is none) and ``compacting`` says
        whether a compaction is running.
        """
        index = self.index
        live = len(index) if index is not None else (int(self._small[0].size) if self.state == IndexState.SMALL else 0)
        try:
            file_bytes: int | None = self.path.stat().st_size
        except OSError:
            file_bytes = None
        compactor = self._compactor
        return {
            "space": self.space,
            "state": self.state.value,
            "error": self.error,
            "items": len(index) if index is not None else 0,
            "pending": int(self._pending[0].size),
            "file": str(self.path),
            "position": self._position,
            "live": live,
            "dead": index.deleted_count if index is not None else 0,
            "file_bytes": file_bytes,
            "compacting": compactor is not None and compactor.is_alive(),
        }


def _catch_up(fresh: HnswIndex, gone: np.ndarray, new_ids: np.ndarray, new_vecs: np.ndarray) -> None:
    """Apply to a compacted copy what changed in the old graph: ``gone`` deleted, then the new vectors linked."""
    fresh.delete(gone)  # first: a replaced item's id is in both
    if new_ids.size:
        fresh.add(new_ids, new_vecs)
