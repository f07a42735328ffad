"""Fused PQTopK on the CPU (numba): one pass over the codes, m lookups and adds per item,
and a running top-k, in parallel over item ranges -- also for a single user.

A batch of users shares each pass: the codes of a block of items are read once from
memory and scanned for every user while they sit in cache.  Scores use the same
float32 additions, in the same split order, as the torch scorers, so the top-k values
are identical to theirs.

``available()`` tells whether numba is installed; without it the torch path is used.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import njit, prange
except ImportError:  # the `fast` extra is optional
    numba = None

BLOCK = 2048  # items per block: 2048 x m codes stay in L1/L2 while every user scans them


def available() -> bool:
    return numba is not None


if numba is not None:

    @njit(inline="always")
    def _replace_min(values_row, ids_row, slot, score, item):
        """Put (score, item) in the slot of the current minimum; return the new minimum's slot."""
        values_row[slot] = score
        ids_row[slot] = item
        low = 0
        for c in range(1, values_row.shape[0]):
            if values_row[c] < values_row[low]:
                low = c
        return low

    @njit(inline="always")
    def _part_bounds(p, n_parts, n_items):
        """[start, end) of the p-th of n_parts contiguous item ranges."""
        part = (n_items + n_parts - 1) // n_parts
        return p * part, min(n_items, (p + 1) * part)

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
            threshold = np.full(n_queries, -np.inf, dtype=np.float32)
            slot = np.zeros(n_queries, dtype=np.int64)  # position of the current minimum
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


    @njit(parallel=True, cache=True, nogil=True)
    def _scan_users_inner(tables, codes, k, skip_padding, n_parts):
        """Many users: tables laid out (m, b, Q) so that, per item, each split adds one
        contiguous row of Q scores (a SIMD add across users); the item's codes are read
        once for the whole batch."""
        m, _, n_queries = tables.shape
        n_items = codes.shape[0]
        values, ids = _empty_topk(n_parts, n_queries, k)
        for p in prange(n_parts):
            start, end = _part_bounds(p, n_parts, n_items)
            threshold = np.full(n_queries, -np.inf, dtype=np.float32)
            slot = np.zeros(n_queries, dtype=np.int64)
            acc = np.empty(n_queries, dtype=np.float32)
            for i in range(start, end):
                if skip_padding and i == 0:
                    continue
                row = tables[0, codes[i, 0]]
                for q in range(n_queries):
                    acc[q] = row[q]
                for j in range(1, m):
                    row = tables[j, codes[i, j]]
                    for q in range(n_queries):
                        acc[q] += row[q]
                for q in range(n_queries):
                    if acc[q] > threshold[q]:
                        slot[q] = _replace_min(values[p, q], ids[p, q], slot[q], acc[q], i)
                        threshold[q] = values[p, q, slot[q]]
        return values, ids


    @njit(inline="always")
    def _sum8(t, c):
        """Sum of 8 lookups in a flat (8 * 256,) table for codes packed in a uint64,
        split 0 in the lowest byte (a little-endian view of a (N, 8) uint8 row);
        added in split order, as the torch scorers add."""
        return (t[c & 255] + t[256 + ((c >> 8) & 255)] + t[512 + ((c >> 16) & 255)]
                + t[768 + ((c >> 24) & 255)] + t[1024 + ((c >> 32) & 255)] + t[1280 + ((c >> 40) & 255)]
                + t[1536 + ((c >> 48) & 255)] + t[1792 + (c >> 56)])

    @njit(parallel=True, cache=True, nogil=True)
    def _scan_packed8(flat_tables, packed, k, skip_padding, n_parts):
        """m = 8, b <= 256: one 8-byte load per item instead of eight 1-byte loads."""
        n_queries = flat_tables.shape[0]
        n_items = packed.shape[0]
        values, ids = _empty_topk(n_parts, n_queries, k)
        for p in prange(n_parts):
            start, end = _part_bounds(p, n_parts, n_items)
            for q in range(n_queries):
                table = flat_tables[q]
                row_v = values[p, q]
                t = np.float32(-np.inf)
                slot = 0
                for i in range(start, end):
                    s = _sum8(table, packed[i])
                    if s > t and not (skip_padding and i == 0):
                        slot = _replace_min(row_v, ids[p, q], slot, s, i)
                        t = row_v[slot]
        return values, ids


# From this many users on, the users-inner layout is used: chosen by hand at 1M items, where
# from about 8 users on it was at least as fast as the per-user scan.
USERS_INNER_FROM = 8


def _packed8(codes: np.ndarray):
    """A (N,) uint64 view of (N, 8) uint8 codes, or None when the layout does not allow it."""
    if codes.ndim == 2 and codes.shape[1] == 8 and codes.dtype == np.uint8 and codes.flags.c_contiguous \
            and np.little_endian:
        return codes.view(np.uint64).reshape(-1)
    return None


def fused_topk(sub_scores: np.ndarray, codes: np.ndarray, k: int, skip_padding: bool = True):
    """(Q, m, b) float32 sub-item scores, (N, m) integer codes -> (values, ids) (Q, k), best first."""
    sub_scores = np.ascontiguousarray(sub_scores, dtype=np.float32)
    n_parts = max(1, numba.get_num_threads() * 4)  # a few ranges per thread balance the load
    n_parts = min(n_parts, max(1, codes.shape[0] // BLOCK))
    packed = _packed8(codes) if sub_scores.shape[2] == 256 else None
    if sub_scores.shape[0] >= USERS_INNER_FROM:
        tables = np.ascontiguousarray(sub_scores.transpose(1, 2, 0))
        values, ids = _scan_users_inner(tables, codes, k, skip_padding, n_parts)
    elif packed is not None:
        values, ids = _scan_packed8(sub_scores.reshape(sub_scores.shape[0], -1), packed, k, skip_padding, n_parts)
    else:
        values, ids = _scan(sub_scores, codes, k, skip_padding, n_parts)
    values = values.transpose(1, 0, 2).reshape(sub_scores.shape[0], -1)
    ids = ids.transpose(1, 0, 2).reshape(sub_scores.shape[0], -1)
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(values, order, 1), np.take_along_axis(ids, order, 1)


if numba is not None:

    @njit(parallel=True, cache=True, nogil=True)
    def _xor_reduce(words, n_parts):
        acc = np.zeros(n_parts, dtype=np.uint64)
        for p in prange(n_parts):
            start, end = _part_bounds(p, n_parts, words.shape[0])
            x = np.uint64(0)
            for i in range(start, end):
                x ^= words[i]
            acc[p] = x
        return acc


def read_bandwidth_gbs(n_bytes: int = 2 << 30, repeats: int = 5) -> float:
    """Measured ceiling: GB/s of one parallel pass that only reads (XOR-reduces) memory."""
    import time

    words = np.ones(n_bytes // 8, dtype=np.uint64)
    n_parts = numba.get_num_threads() * 4
    _xor_reduce(words, n_parts)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _xor_reduce(words, n_parts)
        best = min(best, time.perf_counter() - start)
    return words.nbytes / best / 1e9


# -- safe dynamic pruning (RecJPQPrune) ------------------------------------------------------

def posting_lists(codes: np.ndarray, b: int):
    """Per split, the items grouped by sub-id: (m, N) item ids and (m, b + 1) offsets, so the
    items whose split-s code is c are ``items[s, offsets[s, c]:offsets[s, c + 1]]``."""
    n, m = codes.shape
    dtype = np.int32 if n < 2**31 else np.int64
    items = np.empty((m, n), dtype=dtype)
    offsets = np.zeros((m, b + 1), dtype=np.int64)
    for s in range(m):
        column = codes[:, s]
        items[s] = np.argsort(column, kind="stable")
        offsets[s, 1:] = np.cumsum(np.bincount(column, minlength=b))
    return items, offsets


if numba is not None:

    @njit(cache=True, nogil=True)
    def _prune_one(table, order, codes, items, offsets, k, skip_padding, budget, values, ids, scored, stamp):
        """One user.  ``order[s]``: split s's sub-ids by descending score.  Takes posting lists
        in that order (the split whose bound drops most first), fully scores each new item,
        and stops once no unscored item can beat the k-th score: sigma <= theta, where sigma
        sums each split's best unprocessed sub-item score.  Returns the number of items
        scored, or -1 when more than ``budget`` were needed (the caller then scans)."""
        m, b = table.shape
        pointer = np.zeros(m, dtype=np.int64)
        threshold = np.float32(-np.inf)
        slot = 0
        n_scored = 0
        while True:
            sigma = np.float32(0.0)
            for s in range(m):
                sigma += table[s, order[s, pointer[s]]]
            if sigma <= threshold:
                return n_scored
            best_split, best_drop = -1, np.float32(-1.0)
            for s in range(m):
                here = table[s, order[s, pointer[s]]]
                nxt = table[s, order[s, pointer[s] + 1]] if pointer[s] + 1 < b else np.float32(-np.inf)
                drop = here - nxt
                if best_split < 0 or drop > best_drop:
                    best_split, best_drop = s, drop
            s = best_split
            code = order[s, pointer[s]]
            for position in range(offsets[s, code], offsets[s, code + 1]):
                item = items[s, position]
                if scored[item] == stamp or (skip_padding and item == 0):
                    continue
                scored[item] = stamp
                n_scored += 1
                score = table[0, codes[item, 0]]
                for j in range(1, m):
                    score += table[j, codes[item, j]]
                if score > threshold:
                    slot = _replace_min(values, ids, slot, score, item)
                    threshold = values[slot]
            if n_scored > budget:
                return -1
            pointer[s] += 1
            if pointer[s] == b:  # every item has this split's code among the processed ones
                return n_scored


def pruned_topk(sub_scores: np.ndarray, codes: np.ndarray, k: int, postings, skip_padding: bool = True,
                budget_fraction: float = 0.05):
    """Exact top-k by safe dynamic pruning; users for whom pruning would score more than
    ``budget_fraction`` of the catalogue fall back to the fused scan.  Returns (values,
    ids, items scored per user (-1: fell back))."""
    sub_scores = np.ascontiguousarray(sub_scores, dtype=np.float32)
    items, offsets = postings
    n_queries, n_items = sub_scores.shape[0], codes.shape[0]
    order = np.ascontiguousarray(np.argsort(-sub_scores, axis=2, kind="stable"))
    values = np.full((n_queries, k), -np.inf, dtype=np.float32)
    ids = np.full((n_queries, k), -1, dtype=np.int64)
    scored = np.zeros(n_items, dtype=np.int32)
    counts = np.empty(n_queries, dtype=np.int64)
    budget = max(k, int(budget_fraction * n_items))
    fallback = []
    for q in range(n_queries):
        counts[q] = _prune_one(sub_scores[q], order[q], codes, items, offsets, k, skip_padding, budget,
                               values[q], ids[q], scored, q + 1)
        if counts[q] < 0:
            fallback.append(q)
    if fallback:
        values[fallback], ids[fallback] = fused_topk(sub_scores[fallback], codes, k, skip_padding)
    sort = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(values, sort, 1), np.take_along_axis(ids, sort, 1), counts
