"""PQTopK sharded over Ray actors: exactly the single-process top-k, never a partial one."""

import numpy as np
import pytest
import torch

from recbole_pq.errors import ConfigError
from recbole_pq.items.scoring import make_scorer
from recbole_pq.items.sub_item_table import ItemCodeEmbedding
from recbole_pq.serving.sharded import ShardedScorer, ShardError, shard_bounds

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from recbole_pq.serving.sharded import init_ray

    init_ray()
    yield
    ray.shutdown()


def test_shard_bounds_cover_every_item_once():
    for n, s in [(10, 3), (5001, 2), (7, 7), (1000, 4)]:
        bounds = shard_bounds(n, s)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:]))


@pytest.fixture(scope="module")
def two_shards(local_ray, items_module, tmp_path_factory):
    """One 2-shard scorer for the tests below (actors take seconds to start)."""
    sharded = ShardedScorer(items_module, 2, shard_dir=tmp_path_factory.mktemp("shards"))
    yield sharded
    sharded.close()


@pytest.fixture(scope="module")
def items_module():
    torch.manual_seed(0)
    codes = np.random.default_rng(0).integers(0, 32, size=(5001, 4))
    return ItemCodeEmbedding(codes, 32, 16, init_std=1.0)


def assert_same_as_single_process(sharded, items, k):
    query = torch.randn(3, 16)
    with torch.no_grad():
        got = sharded.topk(query, items, k)
        expected = make_scorer("pqtopk").topk(query, items, k)
    assert torch.equal(got[1], expected[1])
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    assert (got[1] != 0).all()
    return got


@pytest.mark.parametrize("k", [1, 10, 300])
def test_two_shards_equal_single_process(two_shards, items_module, k):
    assert_same_as_single_process(two_shards, items_module, k)


def test_three_shards_equal_single_process(local_ray, items_module, tmp_path):
    sharded = ShardedScorer(items_module, 3, shard_dir=tmp_path)
    try:
        assert_same_as_single_process(sharded, items_module, 200)
    finally:
        sharded.close()


def test_shards_hold_the_tail_of_a_table_with_a_dense_head(local_ray, tmp_path):
    torch.manual_seed(1)
    codes = np.random.default_rng(1).integers(0, 32, size=(3001, 4))
    items = ItemCodeEmbedding(codes, 32, 16, init_std=1.0, head_ids=np.arange(5, 3001, 37))
    with torch.no_grad():
        items.head_residuals.normal_(0.0, 3.0)  # head items in every top-k
    sharded = ShardedScorer(items, 2, shard_dir=tmp_path)
    try:
        assert np.load(tmp_path / "codes.npy").shape == (3001 - items.n_head, 4)
        values, ids = assert_same_as_single_process(sharded, items, 50)
        assert torch.isin(ids, items.head_ids.long()).any() and not torch.isin(ids, items.head_ids.long()).all()
    finally:
        sharded.close()


def test_restarted_shard_answers_the_next_query(two_shards, items_module):
    ray.kill(two_shards.pool.actors[0], no_restart=False)  # Ray restarts it (max_restarts=1)
    assert_same_as_single_process(two_shards, items_module, 10)


def test_killed_shard_mid_query_raises_not_partial(two_shards, items_module):
    """Runs after the other two-shard tests: it kills shard 1 for good."""
    with torch.no_grad():
        tables = items_module.sub_item_scores(torch.randn(2, 16)).numpy()
    replies = two_shards.pool.submit(tables, 10, delay_s=3.0)
    ray.kill(two_shards.pool.actors[1], no_restart=True)
    with pytest.raises(ShardError, match="shard 1 of 2.*no partial top-k"):
        two_shards.pool.collect(replies, 10)
    with pytest.raises(ShardError, match="shard 1 of 2"):  # and every later query, too
        two_shards.topk(torch.randn(1, 16), items_module, 10)


def test_bad_sharding(local_ray, items_module, tmp_path):
    with pytest.raises(ConfigError, match="shards=0"):
        ShardedScorer(items_module, 0, shard_dir=tmp_path)
    with pytest.raises(ConfigError, match="shards=9999"):
        ShardedScorer(items_module, 9999, shard_dir=tmp_path)

    from recbole_pq.items.dense import DenseItemEmbedding

    with pytest.raises(ConfigError, match="dense item table"):
        ShardedScorer(DenseItemEmbedding(10, 8), 2, shard_dir=tmp_path)


def test_recommender_with_shards_equals_single_process(local_ray, ml1m_slice, fast, tmp_path_factory):
    from recbole_pq import Recommender
    from tests.test_recommender import evaluator_view, train

    data, model, checkpoint = train("SASRecJPQ", ml1m_slice, fast, tmp_path_factory)
    histories, _ = evaluator_view(data, model)
    single = Recommender.load(checkpoint).recommend(histories, k=10)
    sharded = Recommender.load(checkpoint, shards=2, shard_dir=str(tmp_path_factory.mktemp("shards")))
    assert sharded.recommend(histories, k=10) == single
    sharded.model.scorer.close()
