"""Fused PQTopK on the CPU (numba): one pass over the codes, m lookups and adds per item,
and a running top-k, in parallel over item ranges -- also for a single user.

A batch of users shares each pass: the codes of a block of items are read once from
memory and scanned for every user while they sit in cache.  Scores use the same
float32 additions, in the same split order, as the torch scorers, so the top-k values
are identical to theirs.

``available()`` tells whether numba is installed; without it the torch path is used.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

try:
    import numba
    from numba import njit, prange
except ImportError:  # the `fast` extra is optional
    numba = None

# Item ranges are handed to threads one at a time (numba's default hands each thread an
# equal share up front): a thread whose core is busy with another process then takes fewer
# ranges instead of holding the whole scan back.  0 = numba's static split.
PARALLEL_CHUNK = 1


def _start_threads_waiting_passively() -> None:
    """Start numba's thread pool with OpenMP threads that sleep, rather than spin, between
    scans (unless the user set OMP_WAIT_POLICY).  Spinning threads on a shared machine
    compete with the one still working: one busy core made a 1M-item scan ~5x slower.
    The setting is read once, when numba's own OpenMP runtime is loaded (torch has its
    own, loaded before and not affected); it is removed again so that child processes
    (Ray workers, torch in them) keep their defaults.  Starting the pool sets the process's
    OpenMP thread count to numba's (every core): torch's count is put back, so that
    ``OMP_NUM_THREADS`` / ``torch.set_num_threads`` still decide how many threads training uses."""
    if numba is None:
        return
    import torch

    torch_threads = torch.get_num_threads()
    passive = "OMP_WAIT_POLICY" not in os.environ
    if passive:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()
    finally:
        if passive:
            del os.environ["OMP_WAIT_POLICY"]
        torch.set_num_threads(torch_threads)


_start_threads_waiting_passively()


def balanced_ranges():
    """Context for a parallel scan: ranges handed out one by one (see PARALLEL_CHUNK)."""
    return numba.parallel_chunksize(PARALLEL_CHUNK) if PARALLEL_CHUNK else contextlib.nullcontext()

BLOCK = 2048  # items per block: 2048 x m codes stay in L1/L2 while every user scans them
# Users per tile of the batched m = 8 scan: a row of 32 float32 scores is two aligned cache
# lines (two AVX-512 vectors), an (8, 256, 32) tile 256 KB, in L2 (16 and 64 were slower).
USERS_TILE = 32


def available() -> bool:
    return numba is not None


if numba is not None:

    @njit(inline="always")
    def _replace_min(values_row, ids_row, slot, score, item):
        """Put (score, item) in the slot of the current worst entry; return the new worst's
        slot: the lowest score, among equal scores the highest id (the entry that ranks
        last when equal scores are listed lower id first)."""
        values_row[slot] = score
        ids_row[slot] = item
        low = 0
        for c in range(1, values_row.shape[0]):
            if values_row[c] < values_row[low] or (values_row[c] == values_row[low] and ids_row[c] > ids_row[low]):
                low = c
        return low

    @njit(inline="always")
    def _part_bounds(p, n_parts, n_items):
        """[start, end) of the p-th of n_parts contiguous item ranges."""
        part = (n_items + n_parts - 1) // n_parts
        return p * part, min(n_items, (p + 1) * part)

    @njit(inline="always")
    def _part_range(p, n_parts, n_items, skip_padding):
        """``_part_bounds``, less item 0 (padding) when ``skip_padding``."""
        start, end = _part_bounds(p, n_parts, n_items)
        if skip_padding and start == 0:
            start = min(1, end)
        return start, end

    @njit(inline="always")
    def _fresh_thresholds(n_queries):
        """Per user, the score to beat (-inf: the slots are empty) and its slot."""
        return np.full(n_queries, -np.inf, dtype=np.float32), np.zeros(n_queries, dtype=np.int64)

    @njit(cache=True, nogil=True)
    def _empty_topk(n_parts, n_queries, k):
        """Per item range and user, k (score, id) slots: -inf scores, id -1."""
        return (np.full((n_parts, n_queries, k), -np.inf, dtype=np.float32),
                np.full((n_parts, n_queries, k), -1, dtype=np.int64))

    @njit(parallel=True, cache=True, nogil=True)
    def _scan(sub_scores, codes, k, skip_padding, n_parts):
        n_queries, m, _ = sub_scores.shape
        n_items = codes.shape[0]
        values, ids = _empty_topk(n_parts, n_queries, k)
        for p in prange(n_parts):
            start, end = _part_bounds(p, n_parts, n_items)
            threshold, slot = _fresh_thresholds(n_queries)
            for block_start in range(start, end, BLOCK):
                block_end = min(end, block_start + BLOCK)
                for q in range(n_queries):
                    table = sub_scores[q]
                    t = threshold[q]
                    for i in range(block_start, block_end):
                        s = table[0, codes[i, 0]]
                        for j in range(1, m):
                            s += table[j, codes[i, j]]
                        if s > t and not (skip_padding and i == 0):
                            slot[q] = _replace_min(values[p, q], ids[p, q], slot[q], s, i)
                            t = values[p, q, slot[q]]
                    threshold[q] = t
        return values, ids


    @njit(inline="always")
    def _rows8(tables, c, j):
        """The (Q,) score rows of splits j..j+7 for an item's codes c: tables[j + i, c[j + i]]."""
        return (tables[j, c[j]], tables[j + 1, c[j + 1]], tables[j + 2, c[j + 2]], tables[j + 3, c[j + 3]],
                tables[j + 4, c[j + 4]], tables[j + 5, c[j + 5]], tables[j + 6, c[j + 6]], tables[j + 7, c[j + 7]])

    @njit(parallel=True, cache=True, nogil=True)
    def _scan_users_inner(tables, codes, k, skip_padding, n_parts):
        """Many users: tables laid out (m, b, Q) so that, per item, each split adds one
        contiguous row of Q scores (a SIMD add across users); the item's codes are read
        once for the whole batch.  Rows are summed eight (or four, or one) at a time in
        one pass over the users, so the running sum stays in a register, and a branch-free
        pass tells whether any user's threshold is beaten before the scalar heap update;
        both loops vectorise.  Additions stay in split order: (((r0 + r1) + r2) + ...)."""
        m, _, n_queries = tables.shape
        n_items = codes.shape[0]
        values, ids = _empty_topk(n_parts, n_queries, k)
        for p in prange(n_parts):
            start, end = _part_bounds(p, n_parts, n_items)
            threshold, slot = _fresh_thresholds(n_queries)
            acc = np.empty(n_queries, dtype=np.float32)
            for i in range(start, end):
                c = codes[i]
                if m >= 8:
                    r0, r1, r2, r3, r4, r5, r6, r7 = _rows8(tables, c, 0)
                    for q in range(n_queries):
                        acc[q] = r0[q] + r1[q] + r2[q] + r3[q] + r4[q] + r5[q] + r6[q] + r7[q]
                    j = 8
                elif m >= 4:
                    r0 = tables[0, c[0]]
                    r1 = tables[1, c[1]]
                    r2 = tables[2, c[2]]
                    r3 = tables[3, c[3]]
                    for q in range(n_queries):
                        acc[q] = r0[q] + r1[q] + r2[q] + r3[q]
                    j = 4
                else:
                    r0 = tables[0, c[0]]
                    for q in range(n_queries):
                        acc[q] = r0[q]
                    j = 1
                while j + 8 <= m:
                    r0, r1, r2, r3, r4, r5, r6, r7 = _rows8(tables, c, j)
                    for q in range(n_queries):
                        acc[q] = acc[q] + r0[q] + r1[q] + r2[q] + r3[q] + r4[q] + r5[q] + r6[q] + r7[q]
                    j += 8
                while j + 4 <= m:
                    r0 = tables[j, c[j]]
                    r1 = tables[j + 1, c[j + 1]]
                    r2 = tables[j + 2, c[j + 2]]
                    r3 = tables[j + 3, c[j + 3]]
                    for q in range(n_queries):
                        acc[q] = acc[q] + r0[q] + r1[q] + r2[q] + r3[q]
                    j += 4
                while j < m:
                    r0 = tables[j, c[j]]
                    for q in range(n_queries):
                        acc[q] += r0[q]
                    j += 1
                hit = False
                for q in range(n_queries):
                    hit |= acc[q] > threshold[q]
                if hit and not (skip_padding and i == 0):
                    for q in range(n_queries):
                        if acc[q] > threshold[q]:
                            slot[q] = _replace_min(values[p, q], ids[p, q], slot[q], acc[q], i)
                            threshold[q] = values[p, q, slot[q]]
        return values, ids


    @njit(inline="always")
    def _scan_run8(tables, codes, first_item, threshold, slot, values, ids, n_users):
        """m = 8, many users: a contiguous run of items (ids first_item, ...) against (8, b, Q)
        tables, continuing each user's top-k slots (values, ids: (Q, k)), thresholds and
        worst-slot positions.  The per-item pass over the users only reads (sums the eight
        rows and compares with the thresholds), so it needs no running-sum array and the
        compiler no aliasing checks; an item that beats some user's threshold is summed
        again, in the same order, for the heap update (rare after the first items).
        Inlined into small functions of their own, so the per-item row addressing stays in
        registers and, where ``n_users`` is a constant, the users loop compiles to
        straight-line vector code (with a run-time length the compiler's vector loop plus
        remainder cost more than the additions at a few dozen users)."""
        for j in range(codes.shape[0]):
            c = codes[j]
            r0, r1, r2, r3, r4, r5, r6, r7 = _rows8(tables, c, 0)
            hit = False
            for q in range(n_users):
                hit |= (r0[q] + r1[q] + r2[q] + r3[q] + r4[q] + r5[q] + r6[q] + r7[q]) > threshold[q]
            if hit:
                for q in range(n_users):
                    s = r0[q] + r1[q] + r2[q] + r3[q] + r4[q] + r5[q] + r6[q] + r7[q]
                    if s > threshold[q]:
                        slot[q] = _replace_min(values[q], ids[q], slot[q], s, first_item + j)
                        threshold[q] = values[q, slot[q]]

    @njit(cache=True, nogil=True)
    def _scan_range_users8(tables, codes, first_item, threshold, slot, values, ids):
        """``_scan_run8`` over all Q users of (8, b, Q) tables."""
        _scan_run8(tables, codes, first_item, threshold, slot, values, ids, tables.shape[2])

    @njit(parallel=True, cache=True, nogil=True)
    def _scan_users_inner8(tables, codes, k, skip_padding, n_parts):
        """``_scan_users_inner`` for m = 8 (see ``_scan_range_users8``)."""
        n_queries = tables.shape[2]
        n_items = codes.shape[0]
        values, ids = _empty_topk(n_parts, n_queries, k)
        for p in prange(n_parts):
            start, end = _part_range(p, n_parts, n_items, skip_padding)
            threshold, slot = _fresh_thresholds(n_queries)
            _scan_range_users8(tables, codes[start:end], start, threshold, slot, values[p], ids[p])
        return values, ids


    @njit(cache=True, nogil=True)
    def _scan_range_tile8(tile, codes, first_item, threshold, slot, values, ids):
        """``_scan_run8`` over one (8, b, USERS_TILE) tile: a compile-time number of users."""
        _scan_run8(tile, codes, first_item, threshold, slot, values, ids, USERS_TILE)

    @njit(parallel=True, cache=True, nogil=True)
    def _scan_tiles8(tiles, codes, k, skip_padding, n_parts):
        """m = 8, users in tiles: (T, 8, b, USERS_TILE) tables; every item range is read in
        blocks of BLOCK items, and each block is scanned by every tile while it sits in
        cache.  Returns (n_parts, T * USERS_TILE, k) values and ids."""
        n_users = tiles.shape[0] * USERS_TILE
        n_items = codes.shape[0]
        values, ids = _empty_topk(n_parts, n_users, k)
        for p in prange(n_parts):
            start, end = _part_range(p, n_parts, n_items, skip_padding)
            threshold, slot = _fresh_thresholds(n_users)
            for first in range(start, end, BLOCK):
                run = np.ascontiguousarray(codes[first:min(end, first + BLOCK)])
                for t in range(tiles.shape[0]):
                    lo, hi = t * USERS_TILE, (t + 1) * USERS_TILE
                    _scan_range_tile8(tiles[t], run, first, threshold[lo:hi], slot[lo:hi], values[p, lo:hi],
                                      ids[p, lo:hi])
        return values, ids


    @njit(inline="always")
    def _sum8(t, c):
        """Sum of 8 lookups in a flat (8 * 256,) table for codes packed in a uint64,
        split 0 in the lowest byte (a little-endian view of a (N, 8) uint8 row);
        added in split order, as the torch scorers add."""
        return (t[c & 255] + t[256 + ((c >> 8) & 255)] + t[512 + ((c >> 16) & 255)]
                + t[768 + ((c >> 24) & 255)] + t[1024 + ((c >> 32) & 255)] + t[1280 + ((c >> 40) & 255)]
                + t[1536 + ((c >> 48) & 255)] + t[1792 + (c >> 56)])

    @njit(cache=True, nogil=True)
    def _scan_range_packed8(table, packed, first_item, values_row, ids_row):
        """One user's running top-k over a contiguous run of items (ids first_item, ...),
        continuing the (values_row, ids_row) slots.  Its own small function so the hot loop
        keeps everything in registers: indexing from 0 over a C-contiguous run lets the
        compiler drop the per-item stride multiply and negative-index fix-up."""
        slot = 0
        for c in range(1, values_row.shape[0]):
            if values_row[c] < values_row[slot] or (values_row[c] == values_row[slot] and ids_row[c] > ids_row[slot]):
                slot = c
        t = values_row[slot]
        for j in range(packed.shape[0]):
            s = _sum8(table, packed[j])
            if s > t:
                slot = _replace_min(values_row, ids_row, slot, s, first_item + j)
                t = values_row[slot]

    @njit(parallel=True, cache=True, nogil=True)
    def _scan_packed8(flat_tables, packed, k, skip_padding, n_parts):
        """m = 8, b <= 256: one 8-byte load per item instead of eight 1-byte loads."""
        n_queries = flat_tables.shape[0]
        n_items = packed.shape[0]
        values, ids = _empty_topk(n_parts, n_queries, k)
        for p in prange(n_parts):
            start, end = _part_range(p, n_parts, n_items, skip_padding)
            run = np.ascontiguousarray(packed[start:end])  # a view: typed C-contiguous
            for q in range(n_queries):
                _scan_range_packed8(flat_tables[q], run, start, values[p, q], ids[p, q])
        return values, ids


# Batch sizes where the layouts cross over (`python benchmarks/scoring.py --batches ...`
# finds them on a host): from USERS_INNER_FROM users on, reading each block of codes once for
# all users beats one scan per user; from USERS_TILES_FROM on (m = 8), a (8, b, Q) table no
# longer fits in L2 and tiles of USERS_TILE users win (a tile costs the same for 4 users as for 32).
USERS_INNER_FROM = 4
USERS_TILES_FROM = 12


def _packed8(codes: np.ndarray):
    """A (N,) uint64 view of (N, 8) uint8 codes, or None when the layout does not allow it."""
    if codes.ndim == 2 and codes.shape[1] == 8 and codes.dtype == np.uint8 and codes.flags.c_contiguous \
            and np.little_endian:
        return codes.view(np.uint64).reshape(-1)
    return None


def _user_tiles(sub_scores: np.ndarray) -> np.ndarray:
    """(Q, m, b) -> (ceil(Q / USERS_TILE), m, b, USERS_TILE) tables, 64-byte aligned so that
    every row starts a cache line; the padding users' scores are -inf, so they never
    enter a top-k (a score must be strictly above the -inf threshold)."""
    n_queries, m, b = sub_scores.shape
    n_tiles = -(-n_queries // USERS_TILE)
    padded = np.full((n_tiles * USERS_TILE, m, b), -np.inf, dtype=np.float32)
    padded[:n_queries] = sub_scores
    size = padded.size
    buffer = np.empty(size + 64 // 4, dtype=np.float32)
    offset = (-buffer.ctypes.data % 64) // 4
    tiles = buffer[offset:offset + size].reshape(n_tiles, m, b, USERS_TILE)
    tiles[...] = padded.reshape(n_tiles, USERS_TILE, m, b).transpose(0, 2, 3, 1)
    return tiles


def fused_topk(sub_scores: np.ndarray, codes: np.ndarray, k: int, skip_padding: bool = True):
    """(Q, m, b) float32 sub-item scores, (N, m) integer codes -> (values, ids) (Q, k), best first."""
    sub_scores = np.ascontiguousarray(sub_scores, dtype=np.float32)
    n_queries, m, b = sub_scores.shape
    n_parts = max(1, numba.get_num_threads() * 4)  # a few ranges per thread balance the load
    n_parts = min(n_parts, max(1, codes.shape[0] // BLOCK))
    packed = _packed8(codes) if b == 256 else None
    with balanced_ranges():
        if n_queries >= USERS_TILES_FROM and m == 8:
            values, ids = _scan_tiles8(_user_tiles(sub_scores), codes, k, skip_padding, n_parts)
            values, ids = values[:, :n_queries], ids[:, :n_queries]
        elif n_queries >= USERS_INNER_FROM:
            tables = np.ascontiguousarray(sub_scores.transpose(1, 2, 0))
            scan = _scan_users_inner8 if m == 8 else _scan_users_inner
            values, ids = scan(tables, codes, k, skip_padding, n_parts)
        elif packed is not None:
            values, ids = _scan_packed8(sub_scores.reshape(n_queries, -1), packed, k, skip_padding, n_parts)
        else:
            values, ids = _scan(sub_scores, codes, k, skip_padding, n_parts)
    values = values.transpose(1, 0, 2).reshape(n_queries, -1)
    ids = ids.transpose(1, 0, 2).reshape(n_queries, -1)
    return best_k(values, ids, k)


def best_k(values: np.ndarray, ids: np.ndarray, k: int):
    """The k best of (Q, C) candidates (several item ranges' top-k), best first, equal scores
    lower id first: the same items as one top-k over the whole catalogue."""
    order = np.lexsort((ids, -values), axis=1)[:, :k]
    rows = np.arange(len(values))[:, None]  # fancy indexing: a few us cheaper per call than take_along_axis
    return values[rows, order], ids[rows, order]
