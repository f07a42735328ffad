"""Full-catalogue scoring of user vectors against an item table (``items.table``).

Three scorers behind one interface:

- ``default``: reconstruct the (N, d) item matrix, matmul, top-k.
- ``recjpq``:  RecJPQ's loop -- per split, add the (B, m, b) table lookups into a
  (B, N) score matrix.
- ``pqtopk``:  PQTopK -- per user the m x b sub-item score table; each item's score is
  the sum of its m lookups; scanned in item chunks with a running top-k, so memory
  is O(B x chunk) when only the top-k is asked for.
- ``prune``:   RecJPQPrune -- the same scores, but only for the items met in the posting
  lists of the best sub-items, until a bound proves the top-k final (numba).

Every scorer offers ``scores(q, items) -> (B, N)`` and ``topk(q, items, k) ->
(values, ids)``; item 0 (RecBole's padding) is never recommended.  The scorers that read
the codes score an item table's dense head (``ItemCodeEmbedding.head_ids``) apart, exactly:
``scores`` overwrites the head's columns, ``topk`` merges the head's scores with the scan's
top-k of the other items' codes (``Scorer._topk_with_head``).  ``scores`` and
``topk`` of one scorer use the same arithmetic, so they rank identically.  Items with
equal scores (RecJPQ gives items with equal code tuples bit-equal scores) are listed
lower id first by every scorer, so the scorers' rankings, and the metrics computed from
them, agree.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from recbole_pq.errors import ConfigError
from recbole_pq.items.derived_cache import DerivedCache
from recbole_pq.items.kernels import prune, scan
from recbole_pq.items.table import ItemTable

PADDING_ID = 0


def check_k(k: int, n_items: int) -> None:
    """k must be a positive count of recommendable items (item 0 is padding)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ConfigError(f"top-k k={k!r} is not allowed: k must be an integer ({type(k).__name__} given), "
                          f"1 <= k <= {n_items - 1}.")
    if k < 1 or k > n_items - 1:
        raise ConfigError(f"top-k k={k} is not allowed: the catalogue has {n_items - 1} items, so 1 <= k <= {n_items - 1}.")


def _topk_without_padding(scores: torch.Tensor, k: int):
    scores[:, PADDING_ID] = float("-inf")  # scores are freshly computed: safe to edit in place
    return torch.topk(scores, k, dim=1)


def ties_by_id(values: torch.Tensor, ids: torch.Tensor):
    """(B, k) top-k rows reordered best first, equal scores lower id first."""
    return best_k_by_id(values, ids, values.shape[1])


def best_k_by_id(values: torch.Tensor, ids: torch.Tensor, k: int):
    """The k best of (B, C) candidates, best first, equal scores lower id first."""
    if values.device.type == "cpu" and not values.requires_grad:
        # numpy's lexsort on a few rows costs ~2 us against ~14 us for torch's four sorts and
        # gathers: it matters when one user's whole top-k takes 0.3 ms (scorer prune)
        v, i = scan.best_k(values.numpy(), ids.numpy(), k)
        return torch.from_numpy(v), torch.from_numpy(i)
    by_id = torch.argsort(ids, dim=1)
    values, ids = torch.gather(values, 1, by_id), torch.gather(ids, 1, by_id)
    by_value = torch.argsort(values, dim=1, descending=True, stable=True)[:, :k]
    return torch.gather(values, 1, by_value), torch.gather(ids, 1, by_value)


def drop_excluded(values: torch.Tensor, ids: torch.Tensor, exclude: torch.Tensor, k: int, rows: int = 256):
    """The first k of each (B, K) ordered row whose id is not in that row of ``exclude``
    (B, L); order kept.  Rows with fewer than k others keep excluded ids last, at -inf."""
    out_values, out_ids = [], []
    for start in range(0, len(ids), rows):  # (rows, K, L) comparisons at a time
        block_ids, block_values = ids[start:start + rows], values[start:start + rows]
        hit = (block_ids.unsqueeze(2) == exclude[start:start + rows].unsqueeze(1)).any(2)
        order = torch.argsort(hit.to(torch.int8), dim=1, stable=True)[:, :k]
        out_ids.append(torch.gather(block_ids, 1, order))
        out_values.append(torch.gather(block_values, 1, order).masked_fill(torch.gather(hit, 1, order), float("-inf")))
    return torch.cat(out_values), torch.cat(out_ids)


def has_head(items) -> bool:
    """Whether an item table has a dense head (items with their own residual vector)."""
    return bool(getattr(items, "n_head", 0))


def head_candidates(head_scores: torch.Tensor, head: torch.Tensor, k: int):
    """(B, c) scores and ids of the head items that can be in a row's top-k: every item at
    least as good as the row's k-th best head score (ties included), so c is about k, not H,
    and the merge sorts few candidates."""
    if head_scores.shape[1] <= k:
        return head_scores, head.expand(len(head_scores), -1)
    kth = torch.topk(head_scores, k, dim=1).values[:, -1:]
    count = int((head_scores >= kth).sum(1).max())
    values, positions = torch.topk(head_scores, count, dim=1)
    return values, head[positions]


class Scorer:
    """Interface: all-item scores and top-k for (B, d) queries."""

    name = "abstract"
    # True: the scores come from the codes (sub_item_scores), which leave out a dense head's
    # residuals, so the head is scored apart (head_scores)
    reads_codes = False

    def scores(self, query: torch.Tensor, items: ItemTable) -> torch.Tensor:
        """(B, N) scores of every item (column 0, padding, included)."""
        scores = self._scores(query, items)
        if self.reads_codes and has_head(items):
            scores[:, items.head_ids.long()] = items.head_scores(query).to(scores.dtype)
        return scores

    def _scores(self, query, items):
        raise NotImplementedError

    def topk(self, query: torch.Tensor, items: ItemTable, k: int, exclude: torch.Tensor | None = None):
        """(values, ids), both (B, k), best first (ties: lower id first), padding excluded.

        ``exclude``: (B, L) item ids (0: none) that a row must not recommend, e.g. the
        user's history.  The scorer is asked for k + L items and the excluded ones are
        dropped; a row whose catalogue runs out ends with its excluded items at -inf."""
        check_k(k, items.n_items)
        if exclude is not None and exclude.numel():
            wide = min(k + int((exclude > 0).sum(1).max()), items.n_items - 1)
            return drop_excluded(*self.topk(query, items, wide), exclude, k)
        if self.reads_codes and has_head(items):
            return self._topk_with_head(query, items, k)
        values, ids = self._topk(query, items, k)
        return (values, ids) if self._ordered(query) else ties_by_id(values, ids)

    def _topk_with_head(self, query, items, k):
        """Top-k of an item table with a dense head: the scan's top-k of the items outside
        the head (``items.tail_items()``: their own codes, so no head item takes a place),
        merged with the head items that can make the top-k by their exact scores."""
        tail = items.tail_items()
        k_tail = min(k, tail.n_items - 1)  # the tail's position 0 is the padding id
        if k_tail > 0:
            values, positions = self._topk(query, tail, k_tail)
            ids = tail.item_ids(positions)
        else:  # every item is in the head
            values = torch.empty(len(query), 0, dtype=query.dtype, device=query.device)
            ids = torch.empty(len(query), 0, dtype=torch.long, device=query.device)
        head_values, head_ids = head_candidates(items.head_scores(query).to(values.dtype), items.head_ids.long(), k)
        return best_k_by_id(torch.cat([values, head_values], dim=1), torch.cat([ids, head_ids.to(ids.dtype)], dim=1), k)

    def _ordered(self, query) -> bool:
        """Whether ``_topk``'s rows are already best first, equal scores lower id first."""
        return False

    def _topk(self, query, items, k):
        """(values, ids) of the top-k by ``_scores`` (the codes alone where ``reads_codes``)."""
        return _topk_without_padding(self._scores(query, items), k)


class DefaultScorer(Scorer):
    name = "default"

    def _scores(self, query, items):
        return query @ items.reconstruct().T


class RecJPQScorer(Scorer):
    name = "recjpq"
    reads_codes = True
    index_chunk = 1 << 22  # items whose codes are widened to int64 at a time (not all N at once)

    def _scores(self, query, items):
        sub_scores = items.sub_item_scores(query)  # (B, m, b)
        scores = torch.zeros(query.shape[0], items.n_items, dtype=sub_scores.dtype, device=query.device)
        for split in range(items.m):
            for start in range(0, items.n_items, self.index_chunk):
                end = min(items.n_items, start + self.index_chunk)
                scores[:, start:end] += sub_scores[:, split, items.codes[start:end, split].long()]
        return scores


def pq_chunk_scores(sub_scores: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """(B, m, b) sub-item scores, (c, m) codes of a chunk -> (B, c) item scores."""
    codes = codes.long()
    total = sub_scores[:, 0, codes[:, 0]]
    for split in range(1, codes.shape[1]):
        total = total + sub_scores[:, split, codes[:, split]]
    return total


class PQTopKScorer(Scorer):
    """PQTopK.  ``backend``: ``numba`` (fused one-pass kernel, see kernels.scan), ``torch``
    (chunked tensor code, always available) or ``auto`` (numba when installed and the
    tensors are on the CPU)."""

    name = "pqtopk"
    reads_codes = True

    def __init__(self, chunk_size: int = 16384, backend: str = "auto"):
        if chunk_size < 1:
            raise ConfigError(f"pq_chunk_size={chunk_size} must be >= 1.")
        if backend not in PQ_BACKENDS:
            raise ConfigError(f"pq_backend='{backend}' is not supported; use one of {list(PQ_BACKENDS)}.")
        if backend == "numba" and not scan.available():
            raise ConfigError("pq_backend='numba' needs numba: pip install -e '.[fast]' (or use pq_backend=auto).")
        self.chunk_size, self.backend = chunk_size, backend

    def _use_fused(self, query) -> bool:
        return self.backend != "torch" and scan.available() and query.device.type == "cpu"

    def _scores(self, query, items):
        sub_scores = items.sub_item_scores(query)
        return torch.cat(
            [pq_chunk_scores(sub_scores, items.codes[s:s + self.chunk_size])
             for s in range(0, items.n_items, self.chunk_size)], dim=1)

    def _ordered(self, query) -> bool:
        return self._use_fused(query)  # the numba kernels end in scan.best_k

    def _topk(self, query, items, k):
        sub_scores = items.sub_item_scores(query)  # (B, m, b)
        return topk_from_sub_scores(sub_scores, items.codes, k, self.chunk_size,
                                    use_fused=self._use_fused(query))


def topk_from_sub_scores(sub_scores: torch.Tensor, codes: torch.Tensor, k: int, chunk_size: int = 16384,
                         use_fused: bool | None = None, skip_padding: bool = True):
    """PQTopK's scan: (B, m, b) sub-item scores and (N, m) codes -> (values, ids) (B, k).

    ``skip_padding``: never return id 0 (False for a shard whose first id is a real item).
    ``use_fused``: the numba kernel (default: when installed and on CPU), else torch chunks."""
    if use_fused is None:
        use_fused = scan.available() and sub_scores.device.type == "cpu"
    if use_fused:
        values, ids = scan.fused_topk(sub_scores.detach().numpy(), np.asarray(codes), k, skip_padding)
        return torch.from_numpy(values), torch.from_numpy(ids)
    codes = torch.as_tensor(codes)
    best_values = best_ids = None
    for start in range(0, codes.shape[0], chunk_size):
        chunk = pq_chunk_scores(sub_scores, codes[start:start + chunk_size])
        if start == 0 and skip_padding:
            chunk[:, PADDING_ID] = float("-inf")
        chunk_ids = torch.arange(start, start + chunk.shape[1], device=sub_scores.device).expand_as(chunk)
        if best_values is not None:
            chunk = torch.cat([best_values, chunk], dim=1)
            chunk_ids = torch.cat([best_ids, chunk_ids], dim=1)
        keep = min(k, chunk.shape[1])
        best_values, pos = torch.topk(chunk, keep, dim=1)
        best_ids = torch.gather(chunk_ids, 1, pos)
    return best_values, best_ids


class PruneScorer(PQTopKScorer):
    """Safe dynamic pruning (RecJPQPrune): posting lists per (split, sub-id), taken in
    descending sub-item score; stops when no unscored item can beat the k-th score.
    Exact.  A user whose tables are too flat to prune (more than ``budget`` of the catalogue
    would be scored) gets the fused scan instead, and the next users scan at once (1, 2, 4,
    ... up to ``MAX_SKIP`` while users keep giving up; reset by a user who prunes), so on
    tables that cannot be pruned the wasted attempts fade out.  Posting lists are built
    once per code table and cached."""

    name = "prune"

    # Share of the catalogue pruning may score before it gives up and scans: a pruned item
    # costs more than a scanned one (random access to its posting list), so pruning only
    # wins while it scores well under the whole catalogue, and a give-up is paid once per
    # back-off step (costs per item: docs/PERFORMANCE.md, prune section).
    DEFAULT_BUDGET = 0.4
    MAX_SKIP = 64
    SKIPPED = -2  # ``last_scored`` of a user scanned without trying (back-off)

    def __init__(self, chunk_size: int = 16384, budget: float = DEFAULT_BUDGET):
        if not scan.available():
            raise ConfigError("scorer='prune' needs numba: pip install -e '.[fast]' (or use scorer=pqtopk).")
        super().__init__(chunk_size, backend="numba")
        self.budget = budget
        self._postings = DerivedCache()
        self._skip = 0  # users to scan after the next give-up
        self._skip_left = 0  # users still to scan without trying
        self.last_scored = None  # per user in the last call: items scored, -1 gave up, -2 skipped

    def postings(self, items):
        """(codes as numpy, posting lists) of ``items``, built once per code table."""
        # one item range per thread, so that a single user's pruning runs in parallel too
        codes = items.codes
        parts = max(1, min(scan.numba.get_num_threads(), codes.shape[0] // scan.BLOCK))
        return self._postings.get(parts, (codes,), lambda: (
            codes.numpy(), prune.posting_lists(codes.numpy(), items.b, parts)))

    def _topk(self, query, items, k):
        if query.device.type != "cpu":
            return super()._topk(query, items, k)
        sub_scores = items.sub_item_scores(query).detach().numpy()
        codes, postings = self.postings(items)
        n_skipped = min(self._skip_left, len(sub_scores))
        self._skip_left -= n_skipped
        values = np.empty((len(sub_scores), k), dtype=np.float32)
        ids = np.empty((len(sub_scores), k), dtype=np.int64)
        scored = np.full(len(sub_scores), self.SKIPPED, dtype=np.int64)
        if n_skipped:
            values[:n_skipped], ids[:n_skipped] = scan.fused_topk(sub_scores[:n_skipped], codes, k)
        if n_skipped < len(sub_scores):
            values[n_skipped:], ids[n_skipped:], scored[n_skipped:] = prune.pruned_topk(
                sub_scores[n_skipped:], codes, k, postings, budget_fraction=self.budget)
            if (scored[n_skipped:] < 0).any():
                self._skip = min(self.MAX_SKIP, max(1, 2 * self._skip))
                self._skip_left = self._skip
            else:
                self._skip = 0
        self.last_scored = scored
        return torch.from_numpy(values), torch.from_numpy(ids)


SCORERS = ("default", "recjpq", "pqtopk", "prune")
# Config values of ``scorer``: the scorers, plus ``auto`` (resolved by the model: pqtopk for
# compressed items, default for dense ones).
SCORER_CHOICES = ("auto", *SCORERS)
PQ_BACKENDS = ("auto", "numba", "torch")


def make_scorer(name: str, chunk_size: int = 16384, backend: str = "auto") -> Scorer:
    """The scorer called ``name`` (config key ``scorer``)."""
    if name == "default":
        return DefaultScorer()
    if name == "recjpq":
        return RecJPQScorer()
    if name == "pqtopk":
        return PQTopKScorer(chunk_size, backend)
    if name == "prune":
        return PruneScorer(chunk_size)
    raise ConfigError(f"scorer='{name}' is not supported; use one of {list(SCORER_CHOICES)}.")
