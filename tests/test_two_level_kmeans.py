"""pq_kmeans: k-means in two levels (coarse cells, then each cell's own centroids) for large b."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_pq.errors import ConfigError
from recbole_pq.items import assignment
from recbole_pq.items.assignment import cell_shares, flat_kmeans, kmeans, two_level_kmeans


@settings(max_examples=60, deadline=None)
@given(population=st.lists(st.integers(0, 50), min_size=1, max_size=20), data=st.data())
def test_cell_shares_sum_to_total_within_one_and_the_population(population, data):
    population = np.array(population)
    if population.sum() == 0 or (population > 0).sum() > population.sum():
        return
    total = data.draw(st.integers((population > 0).sum(), population.sum()))
    weights = np.array(data.draw(st.lists(st.floats(0, 100), min_size=len(population), max_size=len(population))))
    shares = cell_shares(weights, population, total)
    assert shares.sum() == total
    assert (shares[population == 0] == 0).all()
    assert ((shares[population > 0] >= 1) & (shares[population > 0] <= population[population > 0])).all()


def test_cell_shares_follow_the_weights():
    shares = cell_shares(np.array([1.0, 3.0, 0.0, 4.0]), np.array([100, 100, 100, 100]), 80)
    np.testing.assert_array_equal(shares, [10, 30, 1, 39])  # the zero-error cell still gets one centroid


def vg_like(n, dim, seed):
    """Heavy-tailed vectors, 30% of them exactly zero (items never seen in training)."""
    rng = np.random.default_rng(seed)
    points = (rng.normal(size=(n, dim)) * rng.gamma(1.0, size=(n, 1))).astype(np.float32)
    points[rng.random(n) < 0.3] = 0.0
    return points


def test_two_level_codes_are_nearest_within_their_cell_and_beat_flat_on_duplicated_points():
    points = vg_like(6000, 4, seed=0)
    centroids, codes = two_level_kmeans(points, 144, seed=1)
    assert centroids.shape == (144, 4) and codes.min() >= 0 and codes.max() < 144
    assert len(np.unique(codes)) == 144  # every centroid holds points
    again = two_level_kmeans(points, 144, seed=1)
    np.testing.assert_array_equal(codes, again[1])
    np.testing.assert_array_equal(centroids, again[0])
    zero = np.flatnonzero((points == 0).all(1))
    assert len(np.unique(codes[zero])) == 1  # the identical points share one centroid, not many
    error = ((points - centroids[codes]) ** 2).sum()
    flat_centroids, flat_codes = flat_kmeans(points, 144, seed=1)
    assert error < ((points - flat_centroids[flat_codes]) ** 2).sum()
    # the nearest centroid overall is at most a little closer than the cell's (an approximation, not exact)
    nearest = ((points[:, None] - centroids[None]) ** 2).sum(-1).min(1)
    assert error <= 1.2 * nearest.sum()


def test_auto_switches_to_two_levels_above_the_distance_budget_or_the_catalogue_size(monkeypatch):
    points = vg_like(3000, 4, seed=2)
    flat = kmeans(points, 64, seed=3)
    np.testing.assert_array_equal(flat[1], flat_kmeans(points, 64, seed=3)[1])  # 3,000 x 64 is below the budget
    monkeypatch.setattr(assignment, "FLAT_KMEANS_ENTRIES", 1000)
    np.testing.assert_array_equal(kmeans(points, 64, seed=3)[1], two_level_kmeans(points, 64, seed=3)[1])
    monkeypatch.setattr(assignment, "FLAT_KMEANS_ENTRIES", 10**9)
    np.testing.assert_array_equal(kmeans(points, 64, seed=3)[1], flat[1])
    monkeypatch.setattr(assignment, "TWO_LEVEL_MIN_POINTS", 3000)  # a catalogue this large: two levels
    np.testing.assert_array_equal(kmeans(points, 64, seed=3)[1], two_level_kmeans(points, 64, seed=3)[1])
    np.testing.assert_array_equal(kmeans(points, 64, seed=3, quantiser="flat")[1], flat[1])
    with pytest.raises(ConfigError, match=r"pq_kmeans='lloyd' is not supported; use one of \['auto', 'flat', 'two_level'\]"):
        kmeans(points, 64, seed=3, quantiser="lloyd")


def test_pq_kmeans_key_reaches_the_assignment(ml1m_slice, fast_settings):
    from recbole_pq.data.seq2seq import training_user_item
    from recbole_pq.items.assignment import assign_codes_and_tables
    from recbole_pq.pipeline import setup

    config, (train, _, _), model, _ = setup("SASRecJPQ", "ml-1m", config_dict={
        **fast_settings, "data_path": str(ml1m_slice), "code_assignment": "svd_pq", "pq_kmeans": "two_level"})
    users, items = training_user_item(train._dataset, config)
    kwargs = dict(user_ids=users, item_ids=items, n_users=train._dataset.user_num, dim=16)
    two_level = assign_codes_and_tables("svd_pq", model.items.n_items, 4, 16, config["seed"], quantiser="two_level",
                                        **kwargs)[0]
    flat = assign_codes_and_tables("svd_pq", model.items.n_items, 4, 16, config["seed"], quantiser="flat", **kwargs)[0]
    np.testing.assert_array_equal(model.items.codes.numpy(), two_level)
    assert not np.array_equal(two_level, flat)
    with pytest.raises(ConfigError, match="pq_kmeans='fast' is not supported"):
        setup("SASRecJPQ", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice), "pq_kmeans": "fast"})
