"""LISA: linear-time self-attention over codeword histograms (Wu et al., WWW'21).

Per codebook b (one attention head each), positions are represented only by their
codeword assignment a_{i,b} (one-hot, or soft probabilities).  With
Q_b = C_b Wq_b, K_b = C_b Wk_b, V_b = C_b Wv_b (all W x D) and the table
T_b = Q_b K_b^T / sqrt(D) (W x W), the attention of position i over the positions
it sees collapses onto the W codewords:

    weights_{i,b} = softmax_w( (a_{i,b} T_b)[w] + log F_{i,b}[w] )     (F = 0 -> weight 0)
    output_i      = sum_b weights_{i,b} V_b

where F_{i,b} is the codeword histogram of the visible positions: a causal prefix sum
(optionally with recency decay), or the whole sequence (bidirectional).  Cost is
O(L B W D) instead of O(L^2 D), and a user's state for online serving is the
(B, W) histogram.  The softmax is taken over (T_row + log F), never as a raw exp of
unbounded values, so it stays finite for any length and logit size.

With hard codes that are fixed (no gradient reaches the assignments) the same weights
can be taken pairwise: position i gives visible position j the logit
T_b[c_ib, c_jb] + log(weight of j in F_i), and sums V_b[c_jb].  That costs O(L^2 B D)
instead of O(L B W D), so it is the cheaper exact path when L < W (short sequences,
e.g. Amazon's, with W = 256 codewords); ``attention_context`` picks the path.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recbole_pq.items.codebooks import codeword_lookup
from recbole_pq.items.derived_cache import DerivedCache
from recbole_pq.layers.fast_blocks import speed_up_blocks

DECAY_CHUNK = 64  # positions per block of the causal prefix scan (one (c, c) product each)
# log-weight of a position another one cannot see: exp of it is 0 next to any real logit,
# and, finite, it keeps a row that sees nothing (a padding-only row) from turning NaN
INVISIBLE = -1e30


def codeword_histogram(assignments: torch.Tensor, causal: bool = True, gamma: float = 1.0) -> torch.Tensor:
    """(N, L, B, W) assignments (zero at padding) -> (N, L, B, W) histograms F.

    Causal: F_i = sum_{j<=i} gamma^(i-j) a_j; bidirectional: every F_i = sum_j a_j.
    The causal sum is a scan over blocks of positions, each block one (c, c) lower-
    triangular matrix product (torch's cumsum over a middle dimension is ~4x slower on
    the CPU, and so is its backward): inside a block the weights gamma^(i-j) with i >= j
    are <= 1, and a block's carry is multiplied by gamma^(t+1), so nothing over- or
    underflows whatever L is."""
    if not causal:
        return assignments.sum(dim=1, keepdim=True).expand_as(assignments)
    n, length = assignments.shape[:2]
    flat = assignments.reshape(n, length, -1)  # (N, L, B*W)
    blocks, carry = [], None
    for start in range(0, length, DECAY_CHUNK):
        block = flat[:, start:start + DECAY_CHUNK]
        c = block.shape[1]
        steps = torch.arange(c, device=block.device, dtype=block.dtype)
        lag = steps.unsqueeze(1) - steps.unsqueeze(0)  # i - j
        weights = torch.ones_like(lag) if gamma == 1.0 else gamma ** lag.clamp(min=0)
        within = torch.tril(weights) @ block  # (c, c) x (N, c, B*W)
        if carry is not None:
            within = within + (gamma ** (steps + 1)).view(1, c, 1) * carry.unsqueeze(1)
        blocks.append(within)
        carry = within[:, -1]
    return (blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)).view_as(assignments)


def histogram_softmax(row_logits: torch.Tensor, histogram: torch.Tensor) -> torch.Tensor:
    """softmax_w(row + log F) with F = 0 excluded; all-empty histograms give 0 weights."""
    present = histogram > 0
    logits = (row_logits + torch.log(histogram.clamp_min(torch.finfo(histogram.dtype).tiny)))
    logits = logits.masked_fill(~present, float("-inf"))
    top = logits.detach().amax(dim=-1, keepdim=True)  # a shift: no gradient through it
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    weights = torch.exp(logits - top)
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)


def pair_log_weights(present: torch.Tensor, causal: bool = True, gamma: float = 1.0,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, L) bool item positions -> (N, L, L) log of the weight position j has in
    position i's histogram: (i - j) log gamma for visible j, INVISIBLE for the rest
    (padding, and j > i when causal).  Bidirectional histograms carry no decay."""
    n, length = present.shape
    steps = torch.arange(length, device=present.device)
    lag = (steps.unsqueeze(1) - steps.unsqueeze(0)).to(dtype)
    visible = present.unsqueeze(1).expand(n, length, length)
    log_weight = torch.zeros_like(lag)
    if causal:
        visible = visible & (lag >= 0)
        if gamma != 1.0:
            log_weight = lag.clamp(min=0) * math.log(gamma)
    return log_weight.expand(n, length, length).masked_fill(~visible, INVISIBLE)


def attention_context(assignments, codes, causal: bool = True, gamma: float = 1.0, path: str = "auto"):
    """What each position attends over: ``(histograms (N, L, B, W), None)`` for the
    histogram path, or ``(None, pair log-weights (N, L, L))`` for the pairwise one.
    ``path="auto"`` takes the cheaper exact one: pairwise when the codes are hard, no
    gradient reaches the assignments (codes fixed before training, or evaluation) and
    L < W; ``"histogram"`` / ``"pairwise"`` force one (benchmarks, tests)."""
    length, n_codewords = assignments.shape[1], assignments.shape[-1]
    pairwise_exact = codes is not None and not assignments.requires_grad
    if path not in ("auto", "histogram", "pairwise"):
        raise ValueError(f"path='{path}' is not one of 'auto', 'histogram', 'pairwise'")
    if path == "pairwise" and not pairwise_exact:
        raise ValueError("the pairwise path needs hard codes and assignments without gradient")
    if path == "pairwise" or (path == "auto" and pairwise_exact and length < n_codewords):
        present = assignments.sum(dim=(-2, -1)) > 0.5  # padding assignments are all zero
        return None, pair_log_weights(present, causal, gamma, assignments.dtype)
    return codeword_histogram(assignments, causal=causal, gamma=gamma), None


def item_positions(assignments: torch.Tensor) -> torch.Tensor:
    """(N, L, B, W) assignments -> (N, L, B, 1) floats: 1 at items, 0 at padding (whose
    assignments are all zero; one-hot or straight-through ones sum to 1 in value)."""
    return (assignments.detach().sum(-1, keepdim=True) > 0.5).to(assignments.dtype)


class CodewordHistogramAttention(nn.Module):
    """One LISA attention layer over a codebook of B x W codewords, D wide.

    ``forward(assignments (N, L, B, W), histograms (N, L, B, W)) -> (N, L, D)``.
    The (B, W, W) score tables and (B, W, D) values depend on weights only; in eval
    mode they are cached and recomputed whenever a weight changed (tensor versions
    are part of the key, so ``load_state_dict`` or an optimiser step invalidate it).
    """

    def __init__(self, n_codebooks: int, dim: int):
        super().__init__()
        self.n_codebooks, self.dim = n_codebooks, dim
        self.query = nn.Parameter(torch.empty(n_codebooks, dim, dim))
        self.key = nn.Parameter(torch.empty(n_codebooks, dim, dim))
        self.value = nn.Parameter(torch.empty(n_codebooks, dim, dim))
        for weight in (self.query, self.key, self.value):
            nn.init.normal_(weight, std=1 / math.sqrt(dim))
        self._cache = DerivedCache()

    def tables(self, codebooks: torch.Tensor):
        """(B, W, D) codewords -> score tables (B, W, W) and values (B, W, D)."""
        if self.training or torch.is_grad_enabled():
            return self._compute_tables(codebooks)
        return self._cache.get("tables", (codebooks, self.query, self.key, self.value),
                               lambda: self._compute_tables(codebooks))

    def _compute_tables(self, codebooks):
        q = torch.einsum("bwd,bde->bwe", codebooks, self.query)
        k = torch.einsum("bwd,bde->bwe", codebooks, self.key)
        v = torch.einsum("bwd,bde->bwe", codebooks, self.value)
        return q @ k.transpose(1, 2) / math.sqrt(self.dim), v

    def forward(self, assignments, histograms, codebooks, codes=None, present=None, pair_log_weights=None):
        """``codes`` (N, L, B): the hard codes when ``assignments`` are one-hot in value
        (hard, or straight-through): a_{i,b} T_b is then a row of T_b, gathered instead of
        multiplied (same values and gradients, a third of the work).  ``present``
        (N, L, B, 1): 1 where a position holds an item (``item_positions``); derived from
        the assignments when not given (an encoder passes it once for all its layers).
        ``histograms=None`` takes the pairwise path over ``pair_log_weights`` (N, L, L)
        and ``codes`` (see ``attention_context``)."""
        scores, values = self.tables(codebooks)
        if histograms is None:
            if present is None:
                present = item_positions(assignments)
            return self._pairwise(scores, values, codes, present[:, :, 0, 0], pair_log_weights)
        if codes is None:
            rows = torch.einsum("nlbw,bwv->nlbv", assignments, scores)  # a_{i,b} T_b
        else:  # padding positions have all-zero assignments: their rows stay zero
            if present is None:
                present = item_positions(assignments)
            rows = codeword_lookup(assignments, codes, scores) * present.to(scores.dtype)
        weights = histogram_softmax(rows, histograms)
        return torch.einsum("nlbw,bwd->nld", weights, values)

    @staticmethod
    def _pairwise(scores, values, codes, present, pair_log_weights):
        """(B, W, W) tables, (B, W, D) values, (N, L, B) codes, (N, L) 0/1 items,
        (N, L, L) log-weights -> (N, L, D); the weights equal the linear path's."""
        n_books, n_words = scores.shape[:2]
        book_codes = codes.permute(0, 2, 1)  # (N, B, L)
        books = torch.arange(n_books, device=codes.device).view(1, n_books, 1)
        rows = (books * n_words + book_codes) * n_words  # start of T_b[c_ib] in the flat tables
        pair_logits = scores.reshape(-1)[rows.unsqueeze(-1) + book_codes.unsqueeze(-2)]  # (N, B, i, j)
        # padding queries have all-zero assignment rows in the linear path: logits 0
        logits = pair_logits * present.to(scores.dtype)[:, None, :, None] + pair_log_weights.unsqueeze(1)
        weights = torch.softmax(logits, dim=-1)
        return (weights @ values[books, book_codes]).sum(dim=1)  # (N, B, L, L) x (N, B, L, D)


class LISAEncoder(nn.Module):
    """SASRec's layout with LISA attention: positions + LayerNorm + dropout, then per
    layer LISA attention -> dense -> dropout -> residual LayerNorm -> RecBole's FeedForward.

    Attention reads only codeword assignments and histograms, so a position's output
    is a function of its input vector, its assignment and its histogram -- which is
    what makes the constant-time online step possible.  Positions beyond the table
    are clamped to the last one (sequences longer than MAX_ITEM_LIST_LENGTH, online).
    """

    def __init__(self, config, n_codebooks: int):
        super().__init__()
        from recbole.model.layers import FeedForward

        dim, eps, dropout = config["hidden_size"], config["layer_norm_eps"], config["hidden_dropout_prob"]
        self.max_len = config["MAX_ITEM_LIST_LENGTH"]
        self.position_embedding = nn.Embedding(self.max_len, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.attention = nn.ModuleList(CodewordHistogramAttention(n_codebooks, dim) for _ in range(config["n_layers"]))
        self.attention_out = nn.ModuleList(nn.Linear(dim, dim) for _ in range(config["n_layers"]))
        self.attention_norm = nn.ModuleList(nn.LayerNorm(dim, eps=eps) for _ in range(config["n_layers"]))
        self.feed_forward = nn.ModuleList(
            FeedForward(dim, config["inner_size"], dropout, config["hidden_act"], eps) for _ in range(config["n_layers"]))
        speed_up_blocks(self)

    def positions(self, length: int, device) -> torch.Tensor:
        return torch.arange(length, device=device).clamp(max=self.max_len - 1)

    def forward(self, item_emb, assignments, histograms, codebooks, positions=None, codes=None, pair_log_weights=None):
        """(N, L, D), (N, L, B, W) x2, (B, W, D)[, (L,) positions, (N, L, B) hard codes] -> (N, L, D).
        ``histograms=None`` with ``pair_log_weights`` (N, L, L): the pairwise path
        (``attention_context``)."""
        if positions is None:
            positions = self.positions(item_emb.shape[1], item_emb.device)
        hidden = self.dropout(self.LayerNorm(item_emb + self.position_embedding(positions)))
        present = None if codes is None else item_positions(assignments)
        for attention, out, norm, ffn in zip(self.attention, self.attention_out, self.attention_norm, self.feed_forward):
            attended = self.dropout(out(attention(assignments, histograms, codebooks, codes, present, pair_log_weights)))
            hidden = ffn(norm(hidden + attended))
        return hidden
