"""Why one code assignment beats another: how the codes use their tables, and how much of
the embedding space the reconstructed items span.

``code_usage(codes, b)``: per split, how many of the b codes are used and the entropy of
their use (1.0 = every code by as many items), and how many items share an identical code
tuple with another item (such items can never be told apart).
``effective_rank(items)``: exp of the entropy of the normalised singular values of the
(N, d) item matrix (Roy & Vetterli, 2007): d for a matrix that uses every direction
equally, 1 for a rank-one matrix.
``item_memory(model)``: the item representation's MB and its compression against dense.
``ndcg_by_popularity(...)``: test NDCG@k on the least popular 20% of test targets vs the rest.
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
    out["effective_rank"] = round(effective_rank(matrix), 2)
    out["dim"] = int(matrix.shape[1])
    return out


@torch.no_grad()
def ndcg_by_popularity(model, test_data, train_user_item, k: int = 10, cold_share: float = 0.2) -> dict:
    """Test NDCG@k split by how popular each test case's target item is in training: the
    ``cold_share`` of test cases whose targets are least popular ("cold") vs the rest.
    Sharing sub-item embeddings is supposed to help the long tail; this shows whether it does,
    for dense and compressed models alike.  ``train_user_item``: (user ids, item ids) of the
    training interactions (``data.training_user_item``)."""
    counts = np.bincount(np.asarray(train_user_item[1]), minlength=model.n_items)
    model.eval()
    gains, popularity = [], []
    for interaction, _, _, positive_i in test_data:
        _, top = model.full_sort_topk(interaction, k)
        hit = top.cpu() == positive_i.unsqueeze(1)  # (B, k): one positive per sequential test case
        rank = hit.float().argmax(1)
        gains.append(torch.where(hit.any(1), 1.0 / torch.log2(rank.double() + 2), torch.zeros(len(hit), dtype=torch.double)))
        popularity.append(torch.as_tensor(counts[positive_i.numpy()]))
    gains, popularity = torch.cat(gains).numpy(), torch.cat(popularity).numpy()
    order = np.argsort(popularity, kind="stable")  # least popular first
    n_cold = max(1, int(round(cold_share * len(order))))
    cold, rest = order[:n_cold], order[n_cold:]
    return {f"ndcg@{k}_cold": round(float(gains[cold].mean()), 5),
            f"ndcg@{k}_rest": round(float(gains[rest].mean()), 5) if len(rest) else None,
            f"ndcg@{k}_all": round(float(gains.mean()), 5), "cold_share": cold_share,
            "cold_max_train_count": int(popularity[cold].max())}
