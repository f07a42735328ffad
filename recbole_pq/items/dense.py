"""A plain (N, d) item table with the same interface as ItemCodeEmbedding (for dense twins)."""

from __future__ import annotations

import torch
from torch import nn


class DenseItemEmbedding(nn.Module):
    """(N, d) float32 item embeddings; scored by the ``default`` scorer only (an ``ItemTable``)."""

    compressed = False

    def __init__(self, n_items: int, dim: int, init_std: float = 0.02):
        super().__init__()
        self.n_items, self.dim = n_items, dim
        self.weight = nn.Parameter(torch.randn(n_items, dim) * init_std)

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) item ids -> (..., d)."""
        return self.weight[item_ids]

    def reconstruct(self) -> torch.Tensor:
        return self.weight

    def memory_bytes(self) -> dict[str, int]:
        dense = self.weight.numel() * 4
        return {"dense": dense, "codes": 0, "sub_item_tables": 0, "compressed": dense}  # stored as is
