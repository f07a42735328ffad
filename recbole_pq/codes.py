"""Sub-item id assignment: each item gets m codes (one per split), each in [0, b).

``svd`` is RecJPQ's method: a truncated SVD of the binary user x item matrix of the
*training* interactions; split k takes component k's item loadings, min-max
normalised, with tiny noise so ties break, and cuts them into b equal-population
bins.  ``bpr`` cuts the m item factors of a BPR matrix factorisation of the same
interactions the same way (RecJPQ's second method).  ``qr`` is quotient-remainder
(m = 2: item id // b and item id % b, b >= ceil(sqrt(N))), a cheap baseline that uses
no data.  ``random`` draws uniform codes.  All are deterministic for a seed.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import scipy.sparse as sp

from recbole_pq.errors import ConfigError

CODE_ASSIGNMENTS = ("svd", "bpr", "qr", "random")
DATA_ASSIGNMENTS = ("svd", "bpr")  # need the training interactions


def code_dtype(b: int) -> np.dtype:
    """Smallest integer type that holds codes 0..b-1 (uint8 up to b = 256)."""
    if b <= 256:
        return np.dtype(np.uint8)
    if b <= 32768:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def random_codes(n_items: int, m: int, b: int, seed: int) -> np.ndarray:
    """(n_items, m) uniform codes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, b, size=(n_items, m)).astype(code_dtype(b))


def equal_population_bins(values: np.ndarray, b: int) -> np.ndarray:
    """Codes in [0, b) such that every bin holds n/b values (+-1), by rank."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return (ranks * b // len(values)).astype(code_dtype(b))


def loadings_to_codes(loadings: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    """(n_items,) real loadings -> codes: min-max normalised, tiny noise so ties break, then
    b equal-population bins."""
    loadings = loadings.astype(np.float64)
    span = loadings.max() - loadings.min()
    normalised = (loadings - loadings.min()) / span if span > 0 else np.zeros_like(loadings)
    normalised += rng.uniform(0, 1e-6, size=len(loadings))
    return equal_population_bins(normalised, b)


def quotient_remainder_codes(n_items: int, m: int, b: int) -> np.ndarray:
    """(n_items, 2) codes (id // b, id % b): distinct for every item when b * b >= n_items."""
    minimum = math.isqrt(n_items - 1) + 1 if n_items > 1 else 1
    if m != 2:
        raise ConfigError(f"code_assignment='qr' needs pq_m=2 (quotient and remainder); got pq_m={m}.")
    if b < minimum:
        raise ConfigError(f"code_assignment='qr' needs pq_b >= ceil(sqrt({n_items})) = {minimum} so every item gets "
                          f"its own pair of codes; got pq_b={b}.")
    ids = np.arange(n_items)
    return np.stack([ids // b, ids % b], axis=1).astype(code_dtype(b))


def bpr_item_factors(user_ids: np.ndarray, item_ids: np.ndarray, n_users: int, n_items: int, dim: int,
                     seed: int, epochs: int = 20, batch_size: int = 8192, lr: float = 0.01,
                     weight_decay: float = 1e-5) -> np.ndarray:
    """(n_items, dim) item factors of BPR matrix factorisation (Rendle et al.) on the
    (user, item) training pairs: one uniformly drawn negative item per pair, Adam, seeded."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, max(64, len(user_ids) // 20))  # >= 20 steps an epoch on small data
    users = torch.as_tensor(np.asarray(user_ids), dtype=torch.long)
    items = torch.as_tensor(np.asarray(item_ids), dtype=torch.long)
    user_factors = torch.nn.Parameter(0.1 * torch.randn(n_users, dim, generator=generator))
    item_factors = torch.nn.Parameter(0.1 * torch.randn(n_items, dim, generator=generator))
    optimiser = torch.optim.Adam([user_factors, item_factors], lr=lr)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(users), generator=generator)
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                u, positive = users[rows], items[rows]
                negative = torch.randint(1, n_items, (len(rows),), generator=generator)  # id 0 is padding
                user_vec = user_factors[u]
                margin = (user_vec * (item_factors[positive] - item_factors[negative])).sum(1)
                loss = -torch.nn.functional.logsigmoid(margin).mean() + weight_decay * (
                    user_vec.pow(2).sum() + item_factors[positive].pow(2).sum() + item_factors[negative].pow(2).sum()
                ) / len(rows)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    return item_factors.detach().numpy()


def bpr_codes(user_ids: np.ndarray, item_ids: np.ndarray, n_users: int, n_items: int,
              m: int, b: int, seed: int) -> np.ndarray:
    """(n_items, m) codes: split k cuts BPR item factor k into b equal-population bins."""
    factors = bpr_item_factors(user_ids, item_ids, n_users, n_items, m, seed)
    rng = np.random.default_rng(seed)
    codes = np.empty((n_items, m), dtype=code_dtype(b))
    for split in range(m):
        codes[:, split] = loadings_to_codes(factors[:, split], b, rng)
    return codes


def svd_codes(user_ids: np.ndarray, item_ids: np.ndarray, n_users: int, n_items: int,
              m: int, b: int, seed: int) -> np.ndarray:
    """(n_items, m) codes from a truncated SVD of the binary user x item matrix."""
    from sklearn.utils.extmath import randomized_svd

    matrix = sp.csr_matrix(
        (np.ones(len(user_ids), dtype=np.float32), (user_ids, item_ids)), shape=(n_users, n_items)
    )
    matrix.data[:] = 1.0  # duplicates summed by csr: back to binary
    rng = np.random.default_rng(seed)
    n_components = min(m, min(matrix.shape) - 1)
    codes = np.empty((n_items, m), dtype=code_dtype(b))
    if n_components >= 1:
        _, _, vt = randomized_svd(matrix, n_components=n_components, random_state=seed)
        for split in range(n_components):
            codes[:, split] = loadings_to_codes(vt[split], b, rng)
    if n_components < m:
        logging.getLogger(__name__).warning(
            "svd code assignment: the %dx%d interaction matrix has only %d usable components; "
            "splits %d..%d get random codes.", n_users, n_items, n_components, n_components, m - 1)
        codes[:, n_components:] = random_codes(n_items, m - n_components, b, seed)
    return codes


def assign_codes(method: str, n_items: int, m: int, b: int, seed: int,
                 user_ids=None, item_ids=None, n_users: int | None = None) -> np.ndarray:
    """(n_items, m) codes by ``method`` (svd needs the training user/item ids)."""
    if method == "random":
        return random_codes(n_items, m, b, seed)
    if method == "qr":
        return quotient_remainder_codes(n_items, m, b)
    if method in DATA_ASSIGNMENTS:
        if user_ids is None or item_ids is None or n_users is None or len(user_ids) == 0:
            raise ConfigError(f"code_assignment='{method}' needs the training interactions, and there are none.")
        assign = svd_codes if method == "svd" else bpr_codes
        return assign(np.asarray(user_ids), np.asarray(item_ids), n_users, n_items, m, b, seed)
    raise ConfigError(f"code_assignment='{method}' is not supported; use one of {list(CODE_ASSIGNMENTS)}.")
