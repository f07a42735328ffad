"""Sub-item id assignment and the ItemCodeEmbedding layer."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_pq.errors import ConfigError
from recbole_pq.items.assignment import assign_codes, code_dtype, equal_population_bins, svd_codes
from recbole_pq.items.sub_item_table import ItemCodeEmbedding


def _interactions(n_users=200, n_items=300, per_user=15, seed=0):
    rng = np.random.default_rng(seed)
    popularity = rng.zipf(1.5, size=n_items).astype(float)
    p = popularity / popularity.sum()
    users = np.repeat(np.arange(1, n_users), per_user)
    items = rng.choice(np.arange(1, n_items - 20), size=len(users), p=p[1:n_items - 20] / p[1:n_items - 20].sum())
    return users, items  # items n_items-20.. never seen: they still need codes


@pytest.mark.parametrize("method", ["svd", "bpr", "random"])
def test_codes_shape_range_dtype_determinism(method):
    users, items = _interactions()
    kwargs = dict(user_ids=users, item_ids=items, n_users=200)
    codes = assign_codes(method, 300, 8, 16, seed=3, **kwargs)
    assert codes.shape == (300, 8) and codes.dtype == np.uint8
    assert codes.min() >= 0 and codes.max() < 16
    np.testing.assert_array_equal(codes, assign_codes(method, 300, 8, 16, seed=3, **kwargs))
    assert not np.array_equal(codes, assign_codes(method, 300, 8, 16, seed=4, **kwargs))


def test_svd_codes_are_balanced_per_split():
    users, items = _interactions()
    codes = svd_codes(users, items, 200, 300, 6, 16, seed=0)
    for split in range(6):
        counts = np.bincount(codes[:, split], minlength=16)
        assert counts.max() - counts.min() <= 1  # equal-population quantile bins


def test_svd_codes_follow_the_leading_component():
    # Two user groups that each like one half of the items: the first component splits them.
    users = np.repeat(np.arange(100), 20)
    items = np.tile(np.arange(1, 21), 100) + 20 * (users >= 50)
    codes = svd_codes(users, items, 100, 41, 1, 2, seed=0)[:, 0]
    assert len(set(codes[1:21])) == 1 and len(set(codes[21:41])) == 1 and codes[1] != codes[21]


def test_code_dtype_grows_with_b():
    assert code_dtype(256) == np.uint8 and code_dtype(257) == np.int16 and code_dtype(40000) == np.int32


def test_equal_population_bins():
    bins = equal_population_bins(np.linspace(0, 1, 100), 4)
    assert np.bincount(bins).tolist() == [25, 25, 25, 25]


def test_unknown_assignment():
    with pytest.raises(ConfigError, match="code_assignment='kmeans'"):
        assign_codes("kmeans", 10, 2, 4, seed=0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 60), m=st.sampled_from([1, 2, 4]), b=st.integers(2, 20), sub=st.integers(1, 4),
       seed=st.integers(0, 1000))
def test_embedding_is_concatenation_of_sub_embeddings(n, m, b, sub, seed):
    torch.manual_seed(seed)
    codes = np.random.default_rng(seed).integers(0, b, size=(n, m))
    layer = ItemCodeEmbedding(codes, b, m * sub)
    ids = torch.randint(0, n, (3, 5))
    expected = torch.stack([
        torch.stack([torch.cat([layer.sub_item_embeddings[s, codes[i, s]] for s in range(m)]) for i in row])
        for row in ids.tolist()])
    torch.testing.assert_close(layer(ids), expected, rtol=0, atol=0)
    query = torch.randn(3, m * sub)
    sub_scores = layer.sub_item_scores(query)  # (B, m, b)
    from_table = sum(sub_scores[:, s, torch.as_tensor(codes[:, s])] for s in range(m))
    torch.testing.assert_close(from_table, query @ layer.reconstruct().T, rtol=1e-5, atol=1e-5)


def test_embedding_rejects_bad_shapes():
    with pytest.raises(ValueError, match="not divisible"):
        ItemCodeEmbedding(np.zeros((5, 3), dtype=int), 4, 10)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        ItemCodeEmbedding(np.full((5, 2), 4), 4, 8)


def test_memory_report():
    layer = ItemCodeEmbedding(np.zeros((1000, 8), dtype=np.uint8), 256, 64)
    mem = layer.memory_bytes()
    assert mem["dense"] == 1000 * 64 * 4 and mem["codes"] == 8000 and mem["sub_item_tables"] == 256 * 64 * 4


def test_quotient_remainder_codes_tell_every_item_apart():
    codes = assign_codes("qr", 300, 2, 18, seed=0)
    assert codes.shape == (300, 2) and codes.max() < 18
    assert len({tuple(row) for row in codes.tolist()}) == 300
    np.testing.assert_array_equal(codes[:, 0].astype(int) * 18 + codes[:, 1], np.arange(300))
    with pytest.raises(ConfigError, match="needs pq_m=2"):
        assign_codes("qr", 300, 4, 18, seed=0)
    with pytest.raises(ConfigError, match=r"pq_b >= ceil\(sqrt\(300\)\) = 18"):
        assign_codes("qr", 300, 2, 17, seed=0)


def test_bpr_codes_follow_the_interactions():
    """Two groups of users, each taking only its own half of the items: some BPR factor
    separates the halves, so one split's codes do too (random codes do not)."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(1, 201), 10)
    items = np.where(users > 100, rng.integers(101, 201, size=len(users)), rng.integers(1, 101, size=len(users)))

    def separation(codes):
        return max(abs(codes[1:101, s].mean() - codes[101:201, s].mean()) / 4 for s in range(codes.shape[1]))

    codes = assign_codes("bpr", 201, 4, 4, seed=0, user_ids=users, item_ids=items, n_users=201)
    assert separation(codes.astype(float)) > 0.3
    assert separation(assign_codes("random", 201, 4, 4, seed=0).astype(float)) < 0.15


def test_data_assignments_need_interactions():
    from recbole_pq.items.assignment import DATA_ASSIGNMENTS, assign_codes_and_tables

    assert set(DATA_ASSIGNMENTS) == {"svd", "svd_pq", "svd_opq", "bpr"}
    for method in DATA_ASSIGNMENTS:
        with pytest.raises(ConfigError, match=f"code_assignment='{method}' needs the training interactions"):
            assign_codes_and_tables(method, 300, 4, 16, seed=0, user_ids=np.array([], dtype=int),
                                    item_ids=np.array([], dtype=int), n_users=10, dim=16)


def test_code_usage_and_effective_rank():
    from recbole_pq.items.diagnostics import code_usage, effective_rank

    codes = np.array([[0, 1], [1, 1], [2, 0], [3, 0], [0, 1]])  # rows 0 and 4 identical
    usage = code_usage(codes, 4)
    assert usage["codes_used"] == [4, 2] and usage["items_sharing_a_code_tuple"] == 2
    assert usage["code_entropy"][1] == pytest.approx(-(0.4 * np.log(0.4) + 0.6 * np.log(0.6)) / np.log(4), abs=1e-4)
    assert effective_rank(torch.eye(8)) == pytest.approx(8.0)
    assert effective_rank(torch.ones(50, 8)) == pytest.approx(1.0)


def test_svd_pq_codes_are_nearest_centroids_and_deterministic():
    from recbole_pq.items.assignment import assign_codes_and_tables, pq_reconstruction, svd_item_vectors

    users, items = _interactions()
    kwargs = dict(user_ids=users, item_ids=items, n_users=200, dim=16)
    codes, tables = assign_codes_and_tables("svd_pq", 300, 4, 8, seed=1, **kwargs)
    assert codes.shape == (300, 4) and codes.dtype == np.uint8 and tables.shape == (4, 8, 4)
    again = assign_codes_and_tables("svd_pq", 300, 4, 8, seed=1, **kwargs)
    np.testing.assert_array_equal(codes, again[0])
    np.testing.assert_array_equal(tables, again[1])
    vectors = svd_item_vectors(users, items, 200, 300, 16, seed=1)
    for split in range(4):
        part = vectors[:, split * 4:(split + 1) * 4]
        distances = ((part[:, None, :] - tables[split][None]) ** 2).sum(-1)  # (N, b)
        chosen = distances[np.arange(300), codes[:, split]]
        np.testing.assert_allclose(chosen, distances.min(1), rtol=1e-4, atol=1e-5)  # each item's nearest centroid
    # the quantiser is much closer to the vectors than the same tables with random codes
    reconstruction = pq_reconstruction(codes, tables)
    shuffled = np.concatenate([tables[s][np.random.default_rng(0).integers(0, 8, 300)] for s in range(4)], axis=1)
    assert ((vectors - reconstruction) ** 2).sum() < 0.5 * ((vectors - shuffled) ** 2).sum()


def test_balanced_allocation_spreads_the_variance_over_the_splits():
    from recbole_pq.items.assignment import balanced_allocation

    variances = 2.0 ** -np.arange(16)  # SVD-like: every component half the one before
    perm = balanced_allocation(variances, 4)
    assert sorted(perm) == list(range(16))
    log_products = np.log(variances[perm]).reshape(4, 4).sum(1)
    in_order = np.log(variances).reshape(4, 4).sum(1)  # plain splits: all the variance in split 0
    assert np.ptp(log_products) < 0.25 * np.ptp(in_order)
    assert set(perm[:4]) != {0, 1, 2, 3}  # the four largest components no longer share split 0


def test_opq_rotation_is_orthogonal_and_lowers_the_quantisation_error():
    from recbole_pq.items.assignment import opq_rotation, pq_reconstruction, product_quantise

    rng = np.random.default_rng(0)
    # correlated vectors whose variance falls off fast, as SVD item vectors do
    vectors = (rng.normal(size=(2000, 16)) * 2.0 ** -np.arange(16) / 2) @ np.linalg.qr(rng.normal(size=(16, 16)))[0]
    vectors = (vectors @ np.linalg.svd(vectors, full_matrices=False)[2].T).astype(np.float32)  # principal axes
    rotation = opq_rotation(vectors, 4, 16, seed=3)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(16), atol=1e-5)
    np.testing.assert_array_equal(rotation, opq_rotation(vectors, 4, 16, seed=3))  # deterministic

    def error(x):
        codes, centroids = product_quantise(x, 4, 16, seed=3)
        return float(((x - pq_reconstruction(codes, centroids)) ** 2).sum())

    assert error(vectors @ rotation) < 0.8 * error(vectors)


def test_svd_opq_gives_codes_and_tables_of_the_rotated_vectors():
    from recbole_pq.items.assignment import assign_codes_and_tables

    users, items = _interactions()
    kwargs = dict(user_ids=users, item_ids=items, n_users=200, dim=16)
    codes, tables = assign_codes_and_tables("svd_opq", 300, 4, 8, seed=1, **kwargs)
    plain_codes, _ = assign_codes_and_tables("svd_pq", 300, 4, 8, seed=1, **kwargs)
    assert codes.shape == (300, 4) and codes.dtype == np.uint8 and tables.shape == (4, 8, 4)
    assert codes.max() < 8 and not np.array_equal(codes, plain_codes)
    again = assign_codes_and_tables("svd_opq", 300, 4, 8, seed=1, **kwargs)
    np.testing.assert_array_equal(codes, again[0])
    np.testing.assert_array_equal(tables, again[1])


@pytest.mark.parametrize("method", ["svd_pq", "svd_opq"])
def test_pq_tables_start_the_item_table_at_the_pq_reconstruction(ml1m_slice, fast_settings, method):
    from recbole_pq.data.seq2seq import training_user_item
    from recbole_pq.items.assignment import assign_codes_and_tables, pq_reconstruction
    from recbole_pq.pipeline import setup

    config, (train, _, _), model, _ = setup("SASRecJPQ", "ml-1m", config_dict={
        **fast_settings, "data_path": str(ml1m_slice), "code_assignment": method})
    users, items = training_user_item(train._dataset, config)
    codes, tables = assign_codes_and_tables(method, model.items.n_items, 4, 16, seed=config["seed"], user_ids=users,
                                            item_ids=items, n_users=train._dataset.user_num, dim=16)
    np.testing.assert_array_equal(model.items.codes.numpy(), codes)
    pq = torch.as_tensor(pq_reconstruction(codes, tables))
    scale = config["initializer_range"] / torch.as_tensor(tables).std()
    with torch.no_grad():
        torch.testing.assert_close(model.items.reconstruct(), pq * scale, rtol=1e-5, atol=1e-7)


def test_ndcg_by_popularity_agrees_with_the_evaluator(ml1m_slice, fast_settings):
    """The cold/rest split's overall NDCG@10 equals RecBole's test NDCG@10, and the cold
    share holds the least popular targets."""
    from recbole_pq.data.seq2seq import training_user_item
    from recbole_pq.items.diagnostics import ndcg_by_popularity
    from recbole_pq.pipeline import setup

    config, (train, valid, test), model, trainer = setup("SASRecJPQ", "ml-1m", config_dict={
        **fast_settings, "data_path": str(ml1m_slice)})
    trainer.fit(train, valid, saved=False)
    result = trainer.evaluate(test, load_best_model=False)
    split = ndcg_by_popularity(model, test, training_user_item(train._dataset, config))
    assert split["ndcg@10_all"] == pytest.approx(float(result["ndcg@10"]), abs=1e-4)
    cold, rest = split["ndcg@10_cold"], split["ndcg@10_rest"]
    assert 0 <= cold <= 1 and 0 <= rest <= 1
    mixed = 0.2 * cold + 0.8 * rest
    assert mixed == pytest.approx(split["ndcg@10_all"], abs=0.02)
