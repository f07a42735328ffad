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


class _TiedSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of ``query @ table.T`` over all items but the padding id 0.

    One (P, N) buffer: the forward writes each block of rows' logits into it and turns
    them into probabilities while the block is in cache (max, exp, sum, divide in
    place); the backward reads it twice (two matrix products) and corrects the target
    rows with (P, d) terms.  ``F.cross_entropy`` on materialised logits passes over the
    (P, N) data about eight times (masking, log-softmax, its backward, copies): on
    ML-1M that was the largest part of a CPU training step.
    """

    @staticmethod
    def forward(ctx, query, table, targets, block_rows):
        n_rows, n_items = query.shape[0], table.shape[0]
        probs = torch.empty(n_rows, n_items, dtype=query.dtype, device=query.device)
        log_norm = torch.empty(n_rows, dtype=query.dtype, device=query.device)
        rows = block_rows or max(16, (1 << 20) // n_items)  # ~4 MB of float32 logits per block
        for start in range(0, n_rows, rows):
            block = probs[start:start + rows]
            torch.mm(query[start:start + rows], table.T, out=block)
            block[:, 0] = float("-inf")  # never predict padding: probability 0
            row_max = block.amax(dim=1, keepdim=True)
            block.sub_(row_max).exp_()
            sums = block.sum(dim=1, keepdim=True)
            block.div_(sums)
            log_norm[start:start + rows] = (row_max + sums.log()).squeeze(1)
        target_logits = (query * table[targets]).sum(dim=1)
        ctx.save_for_backward(query, table, targets, probs)
        return (log_norm - target_logits).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        query, table, targets, probs = ctx.saved_tensors
        scale = grad_output / query.shape[0]
        # d loss / d logits = (probs - one_hot(targets)) * scale, never materialised.
        grad_query = (probs @ table - table[targets]) * scale
        grad_table = (probs.T @ query).index_add_(0, targets, query, alpha=-1) * scale
        return grad_query, grad_table, None, None


def softmax_cross_entropy(query: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                          block_rows: int | None = None) -> torch.Tensor:
    """Mean CE of (P, d) states against every row of the (N, d) item table (row 0 is padding,
    never a target nor a prediction) for (P,) target ids: equals
    ``F.cross_entropy(logits with column 0 at -inf, targets)``.  ``block_rows``: rows of
    logits per block (default: ~4 MB of them)."""
    return _TiedSoftmaxCE.apply(query, table, targets, block_rows)


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
