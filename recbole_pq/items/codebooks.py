"""LightRec-style codebooks: items as sums of B codewords (one per codebook, residual).

Codebook b picks, for the residual r_b of an item vector x, the codeword c maximising
the bilinear similarity r_b . M_b . c; the next codebook quantises r_b - c.  In
training the choice is a softmax with temperature ``tau`` and a straight-through
hard one-hot (forward hard, gradient soft); in evaluation it is hard.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_pq.items.derived_cache import DerivedCache


class CodebookQuantizer(nn.Module):
    """B codebooks of W codewords, D wide: ``codebooks`` (B, W, D), ``bilinear`` (B, D, D)."""

    def __init__(self, n_codebooks: int, n_codewords: int, dim: int, tau: float = 1.0, init_std: float = 0.02):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"temperature tau={tau} must be > 0")
        self.n_codebooks, self.n_codewords, self.dim, self.tau = n_codebooks, n_codewords, dim, tau
        self.codebooks = nn.Parameter(torch.randn(n_codebooks, n_codewords, dim) * init_std)
        self.bilinear = nn.Parameter(torch.eye(dim).repeat(n_codebooks, 1, 1))

    def assign(self, x: torch.Tensor, soft: bool = False, with_assignments: bool = True):
        """(..., D) vectors -> (assignments (..., B, W), codes (..., B), quantised (..., D)).

        Assignments are one-hot at evaluation; in training they are straight-through
        one-hot, or with ``soft`` the softmax probabilities themselves (always).
        ``with_assignments=False`` returns None for them (callers that need only the
        quantised vectors: an (N, B, W) tensor less)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"vectors of width {x.shape[-1]} do not match the codebook width D={self.dim}")
        residual = x
        assignments, codes, quantised = [], [], torch.zeros_like(x)
        for b in range(self.n_codebooks):
            similarity = (residual @ self.bilinear[b]) @ self.codebooks[b].T  # (..., W)
            code = similarity.argmax(dim=-1)
            if self.tau != 1.0:  # (..., W) passes saved at the default temperature
                similarity = similarity / self.tau
            hard = F.one_hot(code, self.n_codewords).to(x.dtype) if with_assignments and not soft else None
            if soft:
                assignment = torch.softmax(similarity, dim=-1)
                chosen = assignment @ self.codebooks[b]
            elif self.training:
                probs = torch.softmax(similarity, dim=-1)
                chosen = codeword_lookup(probs, code, self.codebooks[b])
                assignment = None if hard is None else hard + probs - probs.detach()
            else:
                chosen = self.codebooks[b][code]
                assignment = hard
            quantised = quantised + chosen
            residual = residual - chosen
            assignments.append(assignment)
            codes.append(code)
        stacked = torch.stack(assignments, dim=-2) if with_assignments else None
        return stacked, torch.stack(codes, dim=-1), quantised


class StraightThroughLookup(torch.autograd.Function):
    """``weights @ table`` where ``weights`` hold the one-hot of ``code`` in value (hard or
    straight-through ``one_hot + probs - probs.detach()``), without the (..., W) x (W, D)
    products: the forward value is a gather of the chosen rows; the gradient reaches
    ``weights`` as ``grad @ table.T`` (the straight-through estimator) and ``table``
    through the chosen rows only (a scatter-add, which is what one-hot weights give).

    Shapes: table (W, D) with code (...,) and weights (..., W) -> (..., D); or one table
    per codebook, (B, W, D) with code (..., B) and weights (..., B, W) -> (..., B, D)."""

    @staticmethod
    def forward(ctx, weights, code, table):
        n_rows = table.shape[-2]
        index = code if table.dim() == 2 else code + n_rows * torch.arange(table.shape[0], device=code.device)
        ctx.save_for_backward(index, table)
        return table.reshape(-1, table.shape[-1])[index]

    @staticmethod
    def backward(ctx, grad):
        index, table = ctx.saved_tensors
        grad_weights = grad_table = None
        if ctx.needs_input_grad[0]:
            grad_weights = grad @ table.T if table.dim() == 2 else torch.einsum("...bd,bwd->...bw", grad, table)
        if ctx.needs_input_grad[2]:
            width = table.shape[-1]
            grad_table = torch.zeros_like(table).view(-1, width).index_add_(
                0, index.reshape(-1), grad.reshape(-1, width)).view_as(table)
        return grad_weights, None, grad_table


codeword_lookup = StraightThroughLookup.apply


class QuantizedItemTable(nn.Module):
    """Items as sums of B codewords, one per codebook of a CodebookQuantizer.

    Learned codes (``fixed_codes=None``): each item has a learned vector E (N, D) whose
    hard codes the quantizer picks; in training an item's vector is its straight-through
    composed codewords (gradients reach E, the codebooks and the bilinear maps).
    Fixed codes (an (N, B) array assigned before training, e.g. by ``codes.svd_codes``):
    a buffer, never trained, so only the codewords learn; there is no E and the
    quantizer's bilinear maps are unused (frozen).

    Evaluation: items are stored as hard ``codes`` (N, B) + codebooks only, so the
    scorers see the same interface as ItemCodeEmbedding and PQTopK costs B lookups and
    adds per item.  Learned eval-time codes are derived data, cached and recomputed
    whenever a weight changed.  A compressed ``ItemTable`` (``recbole_pq.items.table``).
    """

    compressed = True

    def __init__(self, n_items: int, quantizer: CodebookQuantizer, init_std: float = 0.02, fixed_codes=None):
        super().__init__()
        self.n_items, self.quantizer = n_items, quantizer
        self.dim, self.m, self.b = quantizer.dim, quantizer.n_codebooks, quantizer.n_codewords
        self.learned = fixed_codes is None
        if self.learned:
            self.vectors = nn.Parameter(torch.randn(n_items, quantizer.dim) * init_std)
        else:
            fixed = torch.as_tensor(fixed_codes)
            if fixed.shape != (n_items, self.m) or int(fixed.min()) < 0 or int(fixed.max()) >= self.b:
                raise ValueError(f"fixed codes must be ({n_items}, {self.m}) in [0, {self.b}), got shape "
                                 f"{tuple(fixed.shape)} in [{int(fixed.min())}, {int(fixed.max())}]")
            self.register_buffer("fixed_codes", fixed.to(torch.uint8 if self.b <= 256 else torch.int32))
            quantizer.bilinear.requires_grad_(False)
        self._cache = DerivedCache()

    @property
    def codes(self) -> torch.Tensor:
        """(N, B) hard codes of every item under the current weights."""
        if not self.learned:
            return self.fixed_codes

        def compute():
            with torch.no_grad():
                _, codes, _ = self.quantizer.assign(self.vectors.detach(), with_assignments=False)
            return codes.to(torch.uint8 if self.b <= 256 else torch.int32)

        return self._cache.get("codes", (self.vectors, self.quantizer.codebooks, self.quantizer.bilinear), compute)

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) ids -> (..., D) composed codewords (straight-through in training)."""
        if self.training and self.learned:
            return self.quantizer.assign(self.vectors[item_ids], with_assignments=False)[2]
        codes = self.codes[item_ids].long()
        # one bag of m rows per item in the flat (B W, D) codewords: the sum without an
        # (..., B, D) gather, and its backward without that gather's scatter (4-9x faster)
        rows = codes + self.b * torch.arange(self.m, device=codes.device)
        flat = self.quantizer.codebooks.reshape(self.m * self.b, self.dim)
        return F.embedding_bag(rows.reshape(-1, self.m), flat, mode="sum").reshape(*codes.shape[:-1], self.dim)

    def reconstruct(self) -> torch.Tensor:
        return self(torch.arange(self.n_items, device=self.quantizer.codebooks.device))

    def sub_item_scores(self, query: torch.Tensor) -> torch.Tensor:
        """(Q, D) -> (Q, B, W): query . codeword for every codebook and codeword."""
        return torch.einsum("qd,cwd->qcw", query, self.quantizer.codebooks)

    def memory_bytes(self) -> dict[str, int]:
        """Serving memory (codes + codebooks) vs a dense float32 table."""
        dense = self.n_items * self.dim * 4
        codes = self.n_items * self.m * (1 if self.b <= 256 else 4)
        tables = self.quantizer.codebooks.numel() * 4
        return {"dense": dense, "codes": codes, "sub_item_tables": tables, "compressed": codes + tables}
