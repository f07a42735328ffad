"""Sub-item id assignment: each item gets m codes (one per split), each in [0, b).

``svd`` is RecJPQ's method: a truncated SVD of the binary user x item matrix of the
*training* interactions; split k takes component k's item loadings, min-max
normalised, with tiny noise so ties break, and cuts them into b equal-population
bins.  ``random`` draws uniform codes.  Both are deterministic for a seed.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from recbole_pq.errors import ConfigError

CODE_ASSIGNMENTS = ("svd", "random")


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
            loadings = vt[split].astype(np.float64)
            span = loadings.max() - loadings.min()
            normalised = (loadings - loadings.min()) / span if span > 0 else np.zeros_like(loadings)
            normalised += rng.uniform(0, 1e-6, size=n_items)
            codes[:, split] = equal_population_bins(normalised, b)
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
    if method == "svd":
        if user_ids is None or item_ids is None or n_users is None:
            raise ValueError("svd code assignment needs the training interactions")
        return svd_codes(np.asarray(user_ids), np.asarray(item_ids), n_users, n_items, m, b, seed)
    raise ConfigError(f"code_assignment='{method}' is not supported; use one of {list(CODE_ASSIGNMENTS)}.")
