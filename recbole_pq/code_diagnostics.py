"""Why one code assignment beats another: how the codes use their tables, and how much of
the embedding space the reconstructed items span.

``code_usage(codes, b)``: per split, how many of the b codes are used and the entropy of
their use (1.0 = every code by as many items), and how many items share an identical code
tuple with another item (such items can never be told apart).
``effective_rank(items)``: exp of the entropy of the normalised singular values of the
(N, d) item matrix (Roy & Vetterli, 2007): d for a matrix that uses every direction
equally, 1 for a rank-one matrix.
``item_memory(model)``: the item representation's MB and its compression against dense.
"""

from __future__ import annotations

import numpy as np
import torch


def code_usage(codes: np.ndarray, b: int) -> dict:
    """(N, m) codes in [0, b) of the catalogue's items (padding row excluded by the caller)."""
    codes = np.asarray(codes)
    used, entropy = [], []
    for split in range(codes.shape[1]):
        counts = np.bincount(codes[:, split].astype(np.int64), minlength=b)
        p = counts[counts > 0] / counts.sum()
        used.append(int((counts > 0).sum()))
        entropy.append(float(-(p * np.log(p)).sum() / np.log(b)) if b > 1 else 1.0)
    _, tuple_counts = np.unique(codes, axis=0, return_counts=True)
    return {"codes_used": used, "codes_used_fraction": round(float(np.mean(used)) / b, 4),
            "code_entropy": [round(e, 4) for e in entropy], "mean_code_entropy": round(float(np.mean(entropy)), 4),
            "items_sharing_a_code_tuple": int(tuple_counts[tuple_counts > 1].sum())}


def effective_rank(items: torch.Tensor) -> float:
    """Effective rank of an (N, d) item matrix (see module doc)."""
    singular = torch.linalg.svdvals(items.detach().double())
    p = singular / singular.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def item_memory(model) -> dict:
    items = getattr(model, "items", None)
    if items is None:
        return {"item_table_mb": None, "compression": None}
    mem = items.memory_bytes()
    return {"item_table_mb": mem["compressed"] / 2**20, "compression": mem["dense"] / mem["compressed"]}


def item_table_diagnostics(items) -> dict:
    """Code usage (compressed tables) and the effective rank of the reconstructed items."""
    with torch.no_grad():
        matrix = items.reconstruct()[1:]
    out = {}
    if items.compressed:
        out.update(code_usage(items.codes[1:].cpu().numpy(), items.b))
    if matrix is not None:
        out["effective_rank"] = round(effective_rank(matrix), 2)
        out["dim"] = int(matrix.shape[1])
    return out
