"""The item-table interface every model's ``items`` follows, and the scorers rely on.

Three tables implement it: ``DenseItemEmbedding`` (an (N, d) float32 table, scored by
matmul only), ``ItemCodeEmbedding`` (RecJPQ: (N, m) codes + m sub-item tables of b rows)
and ``QuantizedItemTable`` (LISA: items as sums of m codewords out of b per codebook; LISA's
config calls them B and W).  ``compressed`` says which part of the interface a table has:
only compressed tables have codes, and only they can be scored by the PQ scorers.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class ItemTable(Protocol):
    compressed: bool  # True: codes, m, b and sub_item_scores below exist
    n_items: int  # rows, the padding id 0 included
    dim: int

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) item ids -> (..., d) item vectors."""

    def reconstruct(self) -> torch.Tensor:
        """(N, d) every item's vector (cached in evaluation by the compressed tables)."""

    def memory_bytes(self) -> dict[str, int]:
        """Serving bytes: {"dense": N x d float32, "codes", "sub_item_tables", "compressed": what is stored}."""


class CompressedItemTable(ItemTable, Protocol):
    codes: torch.Tensor  # (N, m) integer codes in [0, b)
    m: int  # splits (codebooks)
    b: int  # codes per split (codewords per codebook)

    def sub_item_scores(self, query: torch.Tensor) -> torch.Tensor:
        """(Q, d) user vectors -> (Q, m, b): the user's score for every sub-item."""
