"""unique_codes: svd_pq / svd_opq ties broken so every item has its own code tuple."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_pq.items.assignment import break_code_ties, pq_reconstruction, product_quantise


def reference_break(codes, vectors, centroids):
    """Brute force: ids in order, each tied item takes its cheapest single-split change to an unused tuple;
    stops at the first item that has none (the kernel then changes two splits at random): (codes, rows valid)."""
    n, m = codes.shape
    b, sub = centroids.shape[1:]
    out = codes.copy()
    first = {}
    for item in range(n):
        first.setdefault(tuple(codes[item]), item)
    seen = set(first)  # the first holder of each tuple keeps it
    for item in range(n):
        if first[tuple(codes[item])] == item:
            continue
        moves = []
        for split in range(m):
            x = vectors[item, split * sub:(split + 1) * sub].astype(np.float64)
            here = ((x - centroids[split, codes[item, split]]) ** 2).sum()
            for code in range(b):
                moves.append((((x - centroids[split, code]) ** 2).sum() - here, split * b + code, split, code))
        moves.sort(key=lambda move: (move[0], move[1]))
        for _, _, split, code in moves:
            candidate = out[item].copy()
            candidate[split] = code
            if tuple(candidate) not in seen:
                out[item] = candidate
                break
        else:
            return out, item
        seen.add(tuple(out[item]))
    return out, n


def clustered(n, dim, clusters, seed):
    """Points on a few exact locations (so many share a tuple) plus some zero vectors."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, clusters, n)]
    vectors[rng.random(n) < 0.3] = 0.0  # never-seen items: all-zero SVD vectors
    return vectors + (rng.random((n, 1)) < 0.5) * rng.normal(scale=1e-3, size=(n, dim)).astype(np.float32)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 80), m=st.sampled_from([1, 2, 4]), b=st.integers(4, 12), clusters=st.integers(1, 6),
       seed=st.integers(0, 10_000))
def test_ties_broken_as_the_brute_force_reference(n, m, b, clusters, seed):
    vectors = clustered(n, 4 * m, clusters, seed)
    codes, centroids = product_quantise(vectors, m, b, seed)
    broken = break_code_ties(codes, vectors, centroids)
    if b ** m < n:  # not enough tuples: left alone
        np.testing.assert_array_equal(broken, codes)
        return
    assert broken.dtype == codes.dtype
    assert len(np.unique(broken, axis=0)) == n
    expected, valid = reference_break(codes, vectors, centroids)
    np.testing.assert_array_equal(broken[:valid], expected[:valid])


def test_a_large_group_of_zero_vectors_spreads_over_the_cheapest_moves():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    vectors[1000:] = 0.0  # 2,000 items never seen in training: one shared tuple
    codes, centroids = product_quantise(vectors, 4, 64, seed=0)
    assert len(np.unique(codes, axis=0)) < 1100
    broken = break_code_ties(codes, vectors, centroids)
    assert len(np.unique(broken, axis=0)) == 3000
    changed = (broken != codes).sum(1)
    assert changed.max() == 2  # 2,000 tied items need more than the 4 x 63 single-split changes
    first_of_each = np.unique(codes, axis=0, return_index=True)[1]
    np.testing.assert_array_equal(broken[first_of_each], codes[first_of_each])  # the lowest id keeps its tuple
    # the 1,999 moved zero vectors took every single-split change, then the cheapest pairs of them
    zero_code = codes[1000]
    singles = [((centroids[s, j] ** 2).sum() - (centroids[s, zero_code[s]] ** 2).sum(), s)
               for s in range(4) for j in range(64) if j != zero_code[s]]
    pairs = [a + c for (a, s), (c, t) in itertools.combinations(singles, 2) if s != t]
    cheapest = np.concatenate([[cost for cost, _ in singles], np.sort(pairs)[:1999 - len(singles)]])
    error = ((pq_reconstruction(broken, centroids)[1000:] ** 2).sum(1) -
             (pq_reconstruction(codes, centroids)[1000:] ** 2).sum(1))
    np.testing.assert_allclose(error.sum(), cheapest.sum(), rtol=1e-4)
    np.testing.assert_array_equal(broken, break_code_ties(codes, vectors, centroids))  # deterministic


def test_too_few_tuples_leaves_the_codes_alone(caplog):
    vectors = np.zeros((20, 2), dtype=np.float32)
    codes, centroids = product_quantise(vectors, 1, 4, seed=0)
    broken = break_code_ties(codes, vectors, centroids)
    np.testing.assert_array_equal(broken, codes)
    assert "cannot all have their own tuple" in caplog.text


@pytest.mark.parametrize("method", ["svd_pq", "svd_opq"])
def test_unique_codes_key_reaches_the_assignment(ml1m_slice, fast_settings, method):
    from recbole_pq.pipeline import setup

    settings_ = {**fast_settings, "data_path": str(ml1m_slice), "code_assignment": method}
    _, _, plain, _ = setup("SASRecJPQ", "ml-1m", config_dict={**settings_, "unique_codes": False})
    _, _, unique, _ = setup("SASRecJPQ", "ml-1m", config_dict={**settings_, "unique_codes": True})
    plain_codes, unique_codes = plain.items.codes.numpy(), unique.items.codes.numpy()
    assert len(np.unique(unique_codes, axis=0)) == len(unique_codes)
    assert len(np.unique(plain_codes, axis=0)) < len(plain_codes)  # the slice has ties to break
    kept = np.unique(plain_codes, axis=0, return_index=True)[1]
    np.testing.assert_array_equal(unique_codes[kept], plain_codes[kept])


def test_unique_codes_must_be_a_boolean(ml1m_slice, fast_settings):
    from recbole_pq.errors import ConfigError
    from recbole_pq.pipeline import setup

    with pytest.raises(ConfigError, match="unique_codes='yes' must be true or false"):
        setup("SASRecJPQ", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice),
                                                 "code_assignment": "svd_pq", "unique_codes": "yes"})
