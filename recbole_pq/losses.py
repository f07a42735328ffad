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
