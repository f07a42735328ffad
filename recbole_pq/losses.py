"""Losses shared by the plugin's models: CE (full softmax), BPR and gBCE with sampled negatives.

Every loss takes the scored positions flattened: ``query`` (P, d) user states and
``targets`` (P,) positive item ids.
"""

from __future__ import annotations

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
    def forward(ctx, query, table, targets, block_rows, keep_probs):
        n_rows, n_items = query.shape[0], table.shape[0]
        rows = block_rows or max(16, (1 << 20) // n_items)  # ~4 MB of float32 logits per block
        log_norm = torch.empty(n_rows, dtype=query.dtype, device=query.device)
        # keep_probs: one (P, N) buffer, each block written at its rows; else one block reused.
        probs = torch.empty(n_rows if keep_probs else min(rows, n_rows), n_items, dtype=query.dtype, device=query.device)
        for start in range(0, n_rows, rows):
            block = probs[start:start + rows] if keep_probs else probs[:min(rows, n_rows - start)]
            log_norm[start:start + rows] = _probabilities_(torch.mm(query[start:start + rows], table.T, out=block))
        target_logits = (query * table[targets]).sum(dim=1)
        ctx.rows = rows
        ctx.save_for_backward(query, table, targets, probs if keep_probs else log_norm)
        ctx.keep_probs = keep_probs
        return (log_norm - target_logits).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        query, table, targets, saved = ctx.saved_tensors
        scale = grad_output / query.shape[0]
        # d loss / d logits = (probs - one_hot(targets)) * scale, never materialised.
        if ctx.keep_probs:
            grad_query = saved @ table
            grad_table = saved.T @ query
        else:
            grad_query = torch.empty_like(query)
            grad_table = torch.zeros_like(table)
            buffer = torch.empty(min(ctx.rows, query.shape[0]), table.shape[0], dtype=query.dtype, device=query.device)
            for start in range(0, query.shape[0], ctx.rows):
                rows = slice(start, start + ctx.rows)
                block = buffer[:len(query[rows])]
                _probabilities_(torch.mm(query[rows], table.T, out=block), saved[rows])
                torch.mm(block, table, out=grad_query[rows])
                grad_table.addmm_(block.T, query[rows])
        grad_query = (grad_query - table[targets]) * scale
        grad_table = grad_table.index_add_(0, targets, query, alpha=-1) * scale
        return grad_query, grad_table, None, None, None


def softmax_cross_entropy(query: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                          block_rows: int | None = None, keep_probs: bool | None = None) -> torch.Tensor:
    """Mean CE of (P, d) states against every row of the (N, d) item table (row 0 is padding,
    never a target nor a prediction) for (P,) target ids: equals
    ``F.cross_entropy(logits with column 0 at -inf, targets)``.  ``block_rows``: rows of
    logits per block (default: ~4 MB of them); ``keep_probs``: keep the (P, N) probabilities
    for the backward (default: when they fit in ``CE_PROBS_BYTES``) or recompute them."""
    if keep_probs is None:
        keep_probs = query.shape[0] * table.shape[0] * query.element_size() <= CE_PROBS_BYTES
    return _TiedSoftmaxCE.apply(query, table, targets, block_rows, keep_probs)


def gbce_beta(num_negatives: int, n_items: int, t: float) -> float:
    """gSASRec's calibration power: alpha = k / (|I| - 1), beta = alpha * (t * (1 - 1/alpha) + 1/alpha).

    ``n_items`` counts real items (padding excluded); t = 0 gives beta = 1 (plain BCE).
    """
    alpha = num_negatives / (n_items - 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


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


def check_loss_config(loss_type: str, gbce_t: float, neg_samples: int, n_items: int | None = None) -> None:
    """n_items (padding included) bounds neg_samples once the data set is known."""
    if loss_type not in LOSS_TYPES:
        raise ConfigError(f"loss_type='{loss_type}' is not supported; use one of {list(LOSS_TYPES)}.")
    if loss_type == "gBCE" and not (0.0 <= float(gbce_t) <= 1.0):
        raise ConfigError(f"gbce_t={gbce_t} must lie in [0, 1].")
    if loss_type in ("gBCE", "BCE", "BPR"):
        real_items = "the catalogue size" if n_items is None else n_items - 1
        if not isinstance(neg_samples, int) or neg_samples < 1 or (n_items is not None and neg_samples >= n_items - 1):
            raise ConfigError(
                f"neg_samples={neg_samples} must be an integer with 1 <= neg_samples < {real_items} (catalogue size).")
