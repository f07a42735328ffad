"""Faster drop-in element-wise ops for RecBole's Transformer blocks on the CPU.

RecBole's blocks spend much of a CPU training step in two element-wise ops (profiled on
Video Games, DenseSASRec, 2 cores: ~30% of an epoch):

- ``nn.Dropout``: torch's CPU dropout draws a Bernoulli mask, ~6x slower than random
  integer bits.  ``UniformDropout`` draws 15 random bits per element (two elements per
  ``random_`` int32, from the same global generator, so seeded runs stay reproducible)
  and keeps an element when they are >= round(p * 2^15), scaled by 1 / (1 - p'): the
  distribution of ``nn.Dropout`` with p rounded to a multiple of 2^-15.
- RecBole's ``gelu`` is five autograd ops in Python (``x * 0.5 * (1 + erf(x / sqrt 2))``);
  ``torch.nn.functional.gelu`` computes the same exact (erf) GELU in one kernel.

``speed_up_blocks(module)`` swaps both inside a module built from RecBole's layers (our
encoders call it on themselves); RecBole's classes are not patched, so RecBole's own
models keep their behaviour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


DROP_BITS = 15  # random bits per element: p is applied to within 2^-15


def keep_mask(like: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """(bool mask shaped like ``like``, each True with probability 1 - p'; p') where p' is p
    rounded to a multiple of 2^-15.  ``random_`` fills an int32 with 31 random bits: its two
    int16 halves, masked to 15 bits, serve two elements."""
    n = like.numel()
    bits = torch.empty((n + 1) // 2, dtype=torch.int32, device=like.device).random_()
    halves = bits.view(torch.int16)[:n].view(like.shape) & (2**DROP_BITS - 1)
    threshold = round(p * 2**DROP_BITS)
    return halves >= threshold, threshold / 2**DROP_BITS


class UniformDropout(nn.Dropout):
    """``nn.Dropout`` with the keep mask drawn from random integer bits (see module doc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        keep, p = keep_mask(x, self.p)
        return x * keep * (1.0 / (1.0 - p))


def speed_up_blocks(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` under ``module`` by ``UniformDropout`` (same p) and
    RecBole's Python gelu in its FeedForward blocks by ``F.gelu``; returns ``module``."""
    from recbole.model.layers import FeedForward

    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, UniformDropout(child.p))
        if isinstance(parent, FeedForward) and getattr(parent.intermediate_act_fn, "__func__", None) is FeedForward.gelu:
            parent.intermediate_act_fn = F.gelu
    return module
