"""Losses shared by the plugin's models: CE (full softmax), BPR and gBCE with sampled negatives.

Every loss takes the scored positions flattened: ``query`` (P, d) user states and
``targets`` (P,) positive item ids.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from recbole_pq.errors import ConfigError

LOSS_TYPES = ("CE", "BPR", "BCE", "gBCE")  # BCE: gBCE with beta = 1


def sample_negatives(shape, n_items: int, device=None, generator=None) -> torch.Tensor:
    """Uniform item ids in [1, n_items) (never the padding id 0)."""
    return torch.randint(1, n_items, shape, device=device, generator=generator)


# Above this many bytes of (P, N) probabilities the CE keeps none and recomputes each block's
# logits in the backward (one more product): memory O(block x N), for catalogues of millions.
CE_PROBS_BYTES = 2 << 30


def _probabilities_(block: torch.Tensor, log_norm: torch.Tensor | None = None) -> torch.Tensor:
    """Block of (R, N) logits -> softmax over all items but padding, in place.  With
    ``log_norm`` (R,) given, exp(logits - log_norm); without, it is computed and returned."""
    block[:, 0] = float("-inf")  # never predict padding: probability 0
    if log_norm is not None:
        return block.sub_(log_norm.unsqueeze(1)).exp_()
    row_max = block.amax(dim=1, keepdim=True)
    block.sub_(row_max).exp_()
    sums = block.sum(dim=1, keepdim=True)
    block.div_(sums)
    return (row_max + sums.log()).squeeze(1)


class _TiedSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of ``query @ table.T`` over all items but the padding id 0.

    Each block of rows' logits is written once and turned into probabilities in place
    while it is in cache (max, exp, sum, divide); the backward is two matrix products
    over them, with the target rows corrected by (P, d) terms.  ``F.cross_entropy`` on
    materialised logits passes over the (P, N) data about eight times (masking,
    log-softmax, its backward, copies): on ML-1M that was the largest part of a CPU
    training step.  When the (P, N) probabilities would exceed ``CE_PROBS_BYTES`` only
    the (P,) log-normalisers are kept and the backward recomputes each block.
    """

    @staticmethod
    def forward(ctx, query, table, targets, block_rows, keep_probs, compute_dtype):
        n_rows, n_items = query.shape[0], table.shape[0]
        # 256 rows a block keep the products efficient (measured: 44-row blocks ran bfloat16
        # products at 2/3 the speed); at most ~64 MB of float32 logits for huge catalogues.
        rows = block_rows or max(16, min(256, (16 << 20) // n_items))
        # Products in compute_dtype (bfloat16 under autocast; None: the inputs' precision),
        # everything else in float32 or better: the logits block, its max / exp / sum, the
        # log-normaliser and the loss.
        ctx.dtypes = (query.dtype, table.dtype)
        exact = torch.promote_types(query.dtype, torch.float32)  # float64 inputs stay float64
        query_c, table_c = query.to(compute_dtype or exact), table.to(compute_dtype or exact)
        query, table = query.to(exact), table.to(exact)
        low_precision = query_c.dtype != exact
        log_norm = torch.empty(n_rows, dtype=exact, device=query.device)
        # keep_probs: one (P, N) buffer, each block written at its rows, in the products' dtype
        # (the backward multiplies in it); the softmax of a block runs in ``work`` while in cache.
        block_size = min(rows, n_rows)
        probs = torch.empty(n_rows if keep_probs else block_size, n_items, dtype=query_c.dtype, device=query.device)
        work = torch.empty(block_size, n_items, dtype=exact, device=query.device) if low_precision else None
        for start in range(0, n_rows, rows):
            end = min(n_rows, start + rows)
            block = probs[start:end] if keep_probs else probs[:end - start]
            if low_precision:
                log_norm[start:end] = _low_precision_probabilities(query_c[start:end], table_c, work[:end - start], block)
            else:  # the block is computed where it is kept
                _logits(query_c[start:end], table_c, block, low_precision)
                log_norm[start:end] = _probabilities_(block)
        target_logits = (query * table[targets]).sum(dim=1)
        ctx.rows, ctx.exact = rows, exact
        ctx.save_for_backward(query_c, table_c, targets, probs if keep_probs else log_norm)
        ctx.keep_probs = keep_probs
        return (log_norm - target_logits).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        query_c, table_c, targets, saved = ctx.saved_tensors
        exact = ctx.exact
        low_precision = query_c.dtype != exact
        scale = grad_output / query_c.shape[0]
        # d loss / d logits = (probs - one_hot(targets)) * scale, never materialised.
        if ctx.keep_probs:
            grad_query = (saved @ table_c).to(exact)
            grad_table = (saved.T @ query_c).to(exact)
        else:
            grad_query = torch.empty(query_c.shape, dtype=exact, device=query_c.device)
            grad_table = torch.zeros(table_c.shape, dtype=exact, device=query_c.device)
            buffer = torch.empty(min(ctx.rows, query_c.shape[0]), table_c.shape[0], dtype=exact, device=query_c.device)
            for start in range(0, query_c.shape[0], ctx.rows):
                rows = slice(start, start + ctx.rows)
                block = buffer[:len(query_c[rows])]
                _logits(query_c[rows], table_c, block, low_precision)
                probs = _probabilities_(block, saved[rows]).to(query_c.dtype)
                grad_query[rows] = probs @ table_c
                grad_table += probs.T @ query_c[rows]
        table, query = table_c.to(exact), query_c.to(exact)
        grad_query = (grad_query - table[targets]) * scale
        grad_table = grad_table.index_add_(0, targets, query, alpha=-1) * scale
        return grad_query.to(ctx.dtypes[0]), grad_table.to(ctx.dtypes[1]), None, None, None, None


def _low_precision_probabilities(query: torch.Tensor, table: torch.Tensor, work: torch.Tensor,
                                 out: torch.Tensor) -> torch.Tensor:
    """Softmax over all items but padding of a block of low-precision logits, in three passes
    instead of eight: the (R, N) logits in the products' dtype, their log-softmax into the
    float32 ``work`` block, its exp written to ``out`` in the products' dtype.  Returns the
    (R,) float32 log-normalisers, read off column 1: logit - log_softmax (exact in log space)."""
    logits = query @ table.T
    logits[:, 0] = float("-inf")
    torch.log_softmax(logits, dim=1, dtype=work.dtype, out=work)
    torch.exp(work, out=out)
    return logits[:, 1].to(work.dtype) - work[:, 1]


def _logits(query: torch.Tensor, table: torch.Tensor, out: torch.Tensor, low_precision: bool) -> None:
    """(R, d) @ (N, d).T into the (R, N) block ``out`` (float32 or float64)."""
    if low_precision:
        out.copy_(query @ table.T)
    else:
        torch.mm(query, table.T, out=out)


def softmax_cross_entropy(query: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                          block_rows: int | None = None, keep_probs: bool | None = None) -> torch.Tensor:
    """Mean CE of (P, d) states against every row of the (N, d) item table (row 0 is padding,
    never a target nor a prediction) for (P,) target ids: equals
    ``F.cross_entropy(logits with column 0 at -inf, targets)``.  ``block_rows``: rows of
    logits per block (default: 256, fewer when a block would pass ~64 MB); ``keep_probs``: keep the (P, N) probabilities
    for the backward (default: when they fit in ``CE_PROBS_BYTES``) or recompute them.
    Under autocast (``train_precision: bf16``) the logits and gradient products run in
    autocast's dtype with float32 accumulation; the softmax and the loss stay float32."""
    if keep_probs is None:
        keep_probs = query.shape[0] * table.shape[0] * 4 <= CE_PROBS_BYTES
    device_type = query.device.type
    # Under autocast the two products run in autocast's dtype; the function itself decides
    # what stays float32, so autocast is off inside it.
    compute_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    with torch.autocast(device_type, enabled=False):
        return _TiedSoftmaxCE.apply(query, table, targets, block_rows, keep_probs, compute_dtype)


def gbce_beta(num_negatives: int, n_items: int, t: float) -> float:
    """gSASRec's calibration power: alpha = k / (|I| - 1), beta = alpha * (t * (1 - 1/alpha) + 1/alpha).

    ``n_items`` counts real items (padding excluded); t = 0 gives beta = 1 (plain BCE).
    """
    alpha = num_negatives / (n_items - 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


def sampled_logit_offset(beta: float, num_negatives: int) -> float:
    """The constant logit c that minimises gBCE (BCE: beta = 1) when every logit equals c:
    sigma(c) = beta / (beta + k), so c = log(beta / k).

    Sampled-loss models add it to their training logits.  A freshly initialised model's
    logits are ~0, far above c, and the cheapest way down is one direction shared by every
    item vector; with a tied table that direction is also in every *input*, so the encoder
    can no longer tell items apart and training stops at popularity (a 60-item cycle:
    rank of the true next item 27 of 60 with k = 20, 0 with the offset; ML-1M gBERT4Rec
    sat at popularity's NDCG@10 for 30 epochs).  Starting at the optimum removes that pull;
    a constant shift changes no ranking, so scoring never sees it."""
    return math.log(beta / num_negatives)


def gbce_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """Generalised BCE: -[beta * log sigma(s+) + sum log(1 - sigma(s-))] / (k + 1), averaged.

    (P,) positive and (P, k) negative logits.  log sigma(s) = logsigmoid(s) and
    log(1 - sigma(s)) = logsigmoid(-s): finite for any finite logit.
    """
    positive_term = beta * F.logsigmoid(pos_logits)
    negative_term = F.logsigmoid(-neg_logits).sum(dim=-1)
    return -((positive_term + negative_term) / (neg_logits.shape[-1] + 1)).mean()


def bpr_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """-log sigma(s+ - s-), averaged over positions and negatives."""
    return -F.logsigmoid(pos_logits.unsqueeze(-1) - neg_logits).mean()


# Sampled losses: "sequence" -- each training row (one user's sequence) draws k negatives
# shared by its positions; "position" -- every scored position draws its own k (the
# reference gSASRec/RecJPQ code), k times more item vectors per batch.
NEG_SAMPLING = ("sequence", "position")


def check_loss_config(loss_type: str, gbce_t: float, neg_samples: int, n_items: int | None = None,
                      neg_sampling: str = "sequence") -> None:
    """n_items (padding included) bounds neg_samples once the data set is known."""
    if neg_sampling not in NEG_SAMPLING:
        raise ConfigError(f"neg_sampling={neg_sampling!r} is not supported; use one of {list(NEG_SAMPLING)}.")
    if loss_type not in LOSS_TYPES:
        raise ConfigError(f"loss_type='{loss_type}' is not supported; use one of {list(LOSS_TYPES)}.")
    if loss_type == "gBCE" and not (0.0 <= float(gbce_t) <= 1.0):
        raise ConfigError(f"gbce_t={gbce_t} must lie in [0, 1].")
    if loss_type in ("gBCE", "BCE", "BPR"):
        real_items = "the catalogue size" if n_items is None else n_items - 1
        if not isinstance(neg_samples, int) or neg_samples < 1 or (n_items is not None and neg_samples >= n_items - 1):
            raise ConfigError(
                f"neg_samples={neg_samples} must be an integer with 1 <= neg_samples < {real_items} (catalogue size).")
