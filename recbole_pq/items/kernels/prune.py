"""Exact top-k by safe dynamic pruning (RecJPQPrune) on the CPU (numba).

Per split, items are grouped by sub-id into posting lists; a user's lists are taken in
order of falling sub-item score, and the sum of the splits' next scores bounds every item
not yet scored.  Once the k-th best score reaches that bound, no unscored item can enter
the top-k: the result is the scan's, with a fraction of the items scored.  Users for whom
pruning would score too much fall back to the fused scan (``scan.fused_topk``).
"""

from __future__ import annotations

import numpy as np

from recbole_pq.items.kernels.scan import _packed8, _replace_min, _sum8, balanced_ranges, best_k, fused_topk, numba

if numba is not None:
    from numba import njit, prange

# Posting lists a split looks ahead to find its steepest bound drop per item scored.  Offline
# on ML-1M SASRecJPQ tables with 1M uniform codes (16 users, k = 10): the largest-next-drop
# order scored a median 37% of the items, 32 lists of lookahead 26%, the fewest lists
# that prove the top-k (a dynamic programme given the final k-th score) 26%.
PRUNE_LOOKAHEAD = 32


def posting_lists(codes: np.ndarray, b: int, n_parts: int = 1):
    """Posting lists of ``n_parts`` contiguous item ranges (one pruning thread each): per
    split, every range's items grouped by sub-id.  Returns (m, N) item ids, (m, N, m) their
    codes in the same order, and (n_parts, m, b + 1) offsets: the items of range p whose
    split-s code is c are ``items[s, offsets[p, s, c]:offsets[p, s, c + 1]]``, their codes
    ``item_codes[s, ...]`` at the same positions.  Copying the codes into each split's order
    (m times the code table) makes scoring a posting list a sequential read instead of one
    random access per item."""
    n, m = codes.shape
    dtype = np.int32 if n < 2**31 else np.int64
    items = np.empty((m, n), dtype=dtype)
    item_codes = np.empty((m, n, m), dtype=codes.dtype)
    offsets = np.zeros((n_parts, m, b + 1), dtype=np.int64)
    part = -(-n // n_parts)
    for p in range(n_parts):
        start, end = min(n, p * part), min(n, (p + 1) * part)
        for s in range(m):
            column = codes[start:end, s]
            items[s, start:end] = start + np.argsort(column, kind="stable")
            offsets[p, s] = start
            offsets[p, s, 1:] += np.cumsum(np.bincount(column, minlength=b))
    for s in range(m):
        item_codes[s] = codes[items[s]]
    return items, item_codes, offsets


if numba is not None:

    @njit(cache=True, nogil=True)
    def _first_reaching8(flat_table, run, threshold):
        """Index of the first item of ``run`` (packed m = 8 codes) whose score is at least
        ``threshold`` (len(run) when none): the hot loop of scoring a posting list, on its
        own so that it compiles to a tight loop (see ``_scan_range_packed8``)."""
        for j in range(run.shape[0]):
            if _sum8(flat_table, run[j]) >= threshold:
                return j
        return run.shape[0]

    @njit(cache=True, nogil=True)
    def _steepest_slope(bounds, sizes, p, lookahead):
        """How fast split s's bound falls per item scored if its next 1..``lookahead``
        posting lists are taken: max over j of (bounds[p] - bounds[p + j]) / (items in lists
        p .. p + j - 1).  ``bounds``: the split's sub-item scores, descending; ``sizes``: its
        lists' lengths in the same order.  Never plans to take the split's last list (that
        would score every item: a scan); -1 when nothing is left to plan."""
        here = bounds[p]
        best = np.float32(-1.0)
        items = 0
        for q in range(p + 1, min(bounds.shape[0] - 1, p + lookahead) + 1):
            items += sizes[q - 1]
            slope = (here - bounds[q]) / np.float32(items + 1)  # +1: empty lists are nearly free, not infinitely good
            if slope > best:
                best = slope
        return best

    @njit(cache=True, nogil=True)
    def _prune_one(table, order, items, item_codes, item_codes_packed, offsets, k, skip_padding, budget,
                   values, ids, shared, part, lookahead):
        """One user, one item range.  ``order[s]``: split s's sub-ids by descending score,
        ``bounds[s]`` (computed here) those scores.  Takes posting lists split by split, each time from the
        split whose bound sigma (the sum over splits of the best unprocessed sub-item score)
        falls fastest per item scored over the next few lists (the steepest segment: the
        lower convex hull of the bound against the items scored, which comes within a few
        lists of the fewest items that prove the top-k; one list's largest drop misses dips
        behind a flat step), scores every item in them, and stops once no unscored item can
        reach the k-th score.  ``shared[part]`` publishes this range's k-th score to the
        other ranges' calls, which stop or skip at the highest of them: an item below
        another range's k-th score has k better items there (reading a stale, lower value is
        only less pruning).  An item met again is scored again: cheaper than remembering, and
        it cannot enter the top-k twice.  Returns the number of scorings, or -1 when more
        than ``budget`` were needed (the caller then scans)."""
        m, b = table.shape
        packed = item_codes_packed.shape[1] == item_codes.shape[1]
        flat_table = table.reshape(-1)
        pointer = np.zeros(m, dtype=np.int64)
        sizes = np.empty((m, b), dtype=np.int64)
        bounds = np.empty((m, b), dtype=np.float32)
        for s in range(m):
            for c in range(b):
                sizes[s, c] = offsets[s, order[s, c] + 1] - offsets[s, order[s, c]]
                bounds[s, c] = table[s, order[s, c]]
        slopes = np.empty(m, dtype=np.float32)
        for s in range(m):
            slopes[s] = _steepest_slope(bounds[s], sizes[s], 0, lookahead)
        threshold = np.float32(-np.inf)
        slot = 0
        n_scored = 0
        while True:
            sigma = np.float32(0.0)
            for s in range(m):
                sigma += bounds[s, pointer[s]]
            bar = threshold
            for r in range(shared.shape[0]):
                bar = max(bar, shared[r])
            if sigma < bar:  # equal scores may still rank higher (lower id): go on
                return n_scored
            s = 0
            for t in range(1, m):
                if slopes[t] > slopes[s]:
                    s = t
            if slopes[s] < 0:  # only last lists left: take one (every item is then scored)
                for t in range(m):
                    if pointer[t] < pointer[s]:
                        s = t
            code = order[s, pointer[s]]
            lo, hi = offsets[s, code], offsets[s, code + 1]
            position = lo
            while position < hi:
                if packed:  # m = 8, b = 256: one 8-byte load per item, skip to the next candidate
                    position += _first_reaching8(flat_table, np.ascontiguousarray(item_codes_packed[s, position:hi]),
                                                 bar)
                    if position >= hi:
                        break
                    score = _sum8(flat_table, item_codes_packed[s, position])
                else:
                    c = item_codes[s, position]
                    score = table[0, c[0]]
                    for j in range(1, m):
                        score += table[j, c[j]]
                position += 1
                if score < bar:
                    continue
                item = items[s, position - 1]
                if score == threshold and item > ids[slot]:
                    continue
                if skip_padding and item == 0:
                    continue
                known = False
                for r in range(k):
                    if ids[r] == item:
                        known = True
                if not known:
                    slot = _replace_min(values, ids, slot, score, item)
                    threshold = values[slot]
                    if threshold > bar:
                        bar = threshold
            shared[part] = threshold
            n_scored += hi - lo
            if n_scored > budget:
                return -1
            pointer[s] += 1
            if pointer[s] == b:  # every item has this split's code among the processed ones
                return n_scored
            slopes[s] = _steepest_slope(bounds[s], sizes[s], pointer[s], lookahead)

    @njit(parallel=True, cache=True, nogil=True)
    def _prune_users(sub_scores, order, items, item_codes, item_codes_packed, offsets, k, skip_padding,
                     budget_fraction, lookahead):
        """Every (user, item range) pair in parallel, each with its own top-k: (Q, P, k)
        values and ids, and (Q,) scorings per user (-1: a range gave up)."""
        n_queries, n_parts = sub_scores.shape[0], offsets.shape[0]
        values = np.full((n_queries, n_parts, k), -np.inf, dtype=np.float32)
        ids = np.full((n_queries, n_parts, k), -1, dtype=np.int64)
        counts = np.empty((n_queries, n_parts), dtype=np.int64)
        shared = np.full((n_queries, n_parts), -np.inf, dtype=np.float32)
        for job in prange(n_queries * n_parts):
            q, p = job // n_parts, job % n_parts
            range_items = offsets[p, 0, -1] - offsets[p, 0, 0]
            budget = max(k, int(budget_fraction * range_items))
            counts[q, p] = _prune_one(sub_scores[q], order[q], items, item_codes, item_codes_packed, offsets[p], k,
                                      skip_padding, budget, values[q, p], ids[q, p], shared[q], p, lookahead)
        scored = np.zeros(n_queries, dtype=np.int64)
        for q in range(n_queries):
            for p in range(n_parts):
                scored[q] = -1 if counts[q, p] < 0 or scored[q] < 0 else scored[q] + counts[q, p]
        return values, ids, scored


def pruned_topk(sub_scores: np.ndarray, codes: np.ndarray, k: int, postings, skip_padding: bool = True,
                budget_fraction: float = 0.05, lookahead: int = PRUNE_LOOKAHEAD):
    """Exact top-k by safe dynamic pruning, users and item ranges in parallel; users for whom
    pruning would score more than ``budget_fraction`` of the catalogue (in any range) fall
    back to the fused scan.  Returns (values, ids, scorings per user (-1: fell back))."""
    sub_scores = np.ascontiguousarray(sub_scores, dtype=np.float32)
    items, item_codes, offsets = postings
    # quicksort: half the time of a stable sort here; the order of equal scores only changes
    # which of two equally good lists is taken first
    order = np.argsort(-sub_scores, axis=2)
    m, n = item_codes.shape[:2]
    packed = _packed8(item_codes.reshape(m * n, -1)) if sub_scores.shape[2] == 256 else None
    packed = packed.reshape(m, n) if packed is not None else np.empty((m, 0), dtype=np.uint64)
    with balanced_ranges():
        values, ids, scored = _prune_users(sub_scores, order, items, item_codes, packed, offsets, k, skip_padding,
                                           budget_fraction, lookahead)
    n_queries = sub_scores.shape[0]
    values, ids = best_k(values.reshape(n_queries, -1), ids.reshape(n_queries, -1), k)
    fallback = np.flatnonzero(scored < 0)
    if fallback.size:
        values[fallback], ids[fallback] = fused_topk(sub_scores[fallback], codes, k, skip_padding)
    return values, ids, scored
