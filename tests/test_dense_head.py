"""pq_dense_head: the most popular items own a residual vector on top of their codes; every
scorer scores them exactly, the budget rule keeps the >= 10x compression, checkpoints keep them."""

import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_pq import Recommender
from recbole_pq.errors import ConfigError
from recbole_pq.items.kernels import scan
from recbole_pq.items.scoring import SCORERS, make_scorer
from recbole_pq.items.sizing import COMPRESSION_TARGET, auto_codes_per_split, auto_dense_head, head_bytes, \
    representation_bytes
from recbole_pq.items.sub_item_table import ItemCodeEmbedding
from recbole_pq.pipeline import build_config, setup
from recbole_pq.serving.checkpoint import load_checkpoint, save_checkpoint


def table_with_head(n, m, b, head, seed, dim_per_split=4):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    layer = ItemCodeEmbedding(rng.integers(0, b, size=(n, m)), b, dim_per_split * m, init_std=1.0, head_ids=head)
    with torch.no_grad():
        layer.head_residuals.normal_()
    return layer


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 400), m=st.sampled_from([1, 2, 4, 8]), b=st.integers(2, 40), batch=st.integers(1, 5),
       head_frac=st.floats(0, 1), k_frac=st.floats(0, 1), exclude=st.booleans(), seed=st.integers(0, 10**6))
def test_every_scorer_ranks_a_table_with_a_head_as_the_reconstructed_matmul(n, m, b, batch, head_frac, k_frac,
                                                                          exclude, seed):
    rng = np.random.default_rng(seed)
    n_head = int(head_frac * (n - 1))
    head = np.sort(rng.choice(np.arange(1, n), size=n_head, replace=False))
    layer = table_with_head(n, m, b, head, seed)
    query = torch.randn(batch, layer.dim)
    k = 1 + int(k_frac * (n - 2))
    reference = (query.double() @ layer.reconstruct().double().T)
    history = torch.as_tensor(rng.integers(0, n, size=(batch, 3))) if exclude else None
    variants = [(name, "auto") for name in SCORERS] + [("pqtopk", "torch")]
    if scan.available():
        variants.append(("pqtopk", "numba"))
    with torch.no_grad():
        for name, backend in variants:
            scorer = make_scorer(name, chunk_size=17, backend=backend)
            scores = scorer.scores(query, layer)
            torch.testing.assert_close(scores.double()[:, 1:], reference[:, 1:], rtol=0, atol=1e-4)
            values, ids = scorer.topk(query, layer, k, exclude=history)
            allowed = reference.clone()
            allowed[:, 0] = float("-inf")
            if history is not None:
                allowed = allowed.scatter(1, history, float("-inf"))
            best = torch.sort(allowed, dim=1, descending=True).values[:, :k]
            real = torch.isfinite(best)  # rows whose catalogue ran out end in excluded items at -inf
            # the same scores as the reference's top-k (ids may differ only among equal scores)
            torch.testing.assert_close(values.double()[real], best[real], rtol=0, atol=1e-4)
            torch.testing.assert_close(allowed.gather(1, ids)[real], best[real], rtol=0, atol=1e-4)
            for row, row_real in zip(ids, real):
                assert len(set(row[row_real].tolist())) == int(row_real.sum()), f"{name}/{backend}: repeated id"


def test_head_items_add_their_residual_and_only_they_train_it():
    layer = table_with_head(50, 4, 8, np.array([2, 9, 31]), seed=0)
    without = ItemCodeEmbedding(layer.codes, 8, layer.dim)
    with torch.no_grad():
        without.sub_item_embeddings.copy_(layer.sub_item_embeddings)
    ids = torch.tensor([[0, 2, 3], [9, 31, 49]])
    vectors = layer(ids)
    torch.testing.assert_close(vectors[0, 1], without(ids)[0, 1] + layer.head_residuals[0])
    torch.testing.assert_close(vectors[1, :2], without(ids)[1, :2] + layer.head_residuals[1:])
    torch.testing.assert_close(vectors[:, [0, 2]][0], without(ids)[0, [0, 2]])  # not in the head
    vectors.sum().backward()
    assert layer.head_residuals.grad.abs().sum(1).gt(0).all()
    layer.head_residuals.grad = None
    layer(torch.tensor([1, 3, 49])).sum().backward()
    assert layer.head_residuals.grad.abs().sum() == 0


def test_fresh_residuals_start_at_the_codes_vectors():
    codes = np.random.default_rng(1).integers(0, 8, size=(40, 4))
    torch.manual_seed(0)
    plain = ItemCodeEmbedding(codes, 8, 16)
    torch.manual_seed(0)
    headed = ItemCodeEmbedding(codes, 8, 16, head_ids=[1, 5])
    torch.testing.assert_close(headed.reconstruct(), plain.reconstruct())


@pytest.mark.parametrize("head", [[0, 3], [3, 3], [5, 2], [1, 40]])
def test_bad_head_ids(head):
    with pytest.raises(ValueError, match="head_ids"):
        ItemCodeEmbedding(np.zeros((40, 2), dtype=np.int64), 4, 8, head_ids=head)


@settings(max_examples=200, deadline=None)
@given(n_items=st.integers(3, 10**9), dim=st.sampled_from([16, 32, 64, 128, 256]), m=st.sampled_from([1, 2, 4, 8]))
def test_auto_head_fills_the_budget_and_no_more(n_items, dim, m):
    b = auto_codes_per_split(n_items, dim, m)
    n_head = auto_dense_head(n_items, dim, m, b)
    assert 0 <= n_head <= n_items - 1
    dense = n_items * dim * 4
    if n_head:
        assert (representation_bytes(n_items, dim, m, b) + head_bytes(n_head, dim)) * COMPRESSION_TARGET <= dense
    if n_head < n_items - 1:  # one more head item would break the budget
        assert (representation_bytes(n_items, dim, m, b) + head_bytes(n_head + 1, dim)) * COMPRESSION_TARGET > dense


def test_auto_head_examples():
    assert auto_dense_head(1683, 64, 8, 256) == 0  # ml-100k, ML-1M: codes and tables use the budget
    assert auto_dense_head(3417, 64, 8, 256) == 0
    assert auto_dense_head(23_716, 64, 8, 512) == 371  # Amazon Video Games with pq_b auto
    assert auto_dense_head(23_716, 64, 8, 256) == 1353


def test_memory_counts_the_head():
    layer = ItemCodeEmbedding(np.zeros((1000, 8), dtype=np.int64), 256, 64, head_ids=np.arange(1, 101))
    mem = layer.memory_bytes()
    assert mem["dense_head"] == 100 * (64 * 4 + 4) == head_bytes(100, 64)
    assert mem["compressed"] == mem["codes"] + mem["sub_item_tables"] + mem["dense_head"]


@pytest.mark.parametrize("value", [-1, 1.5, "many", True])
def test_bad_head_values_name_the_key(value):
    with pytest.raises(ConfigError, match="pq_dense_head"):
        build_config("SASRecJPQ", "ml-100k", config_dict={"pq_dense_head": value})


def test_head_larger_than_the_catalogue(ml1m_slice, fast_settings):
    with pytest.raises(ConfigError, match=r"pq_dense_head=100000 must be an integer in \[0, \d+\]"):
        setup("SASRecJPQ", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice), "pq_dense_head": 10**5})


@pytest.fixture(scope="module")
def headed(ml1m_slice, fast, tmp_path_factory):
    settings_ = {**fast, "data_path": str(ml1m_slice), "pq_dense_head": 12, "state": "INFO",
                 "checkpoint_dir": str(tmp_path_factory.mktemp("saved"))}
    config, data, model, trainer = setup("SASRecJPQ", "ml-1m", config_dict=settings_)
    trainer.fit(data[0], data[1], saved=True)
    trainer.evaluate(data[2], load_best_model=True)
    return config, data, model, trainer.saved_model_file


def test_head_is_the_most_popular_training_items(headed):
    from recbole_pq.data.seq2seq import training_user_item

    config, data, model, _ = headed
    counts = np.bincount(training_user_item(data[0]._dataset, config)[1], minlength=model.n_items)
    head = model.items.head_ids.long().numpy()
    assert len(head) == 12 and (np.diff(head) > 0).all()
    others = np.setdiff1d(np.arange(1, model.n_items), head)
    assert counts[head].min() >= counts[others].max()
    assert model.items.head_residuals.abs().sum() > 0  # trained


def test_checkpoint_with_a_head_serves_the_evaluators_topk(headed):
    config, data, model, checkpoint = headed
    interaction = next(iter(data[2]))[0]
    model.eval()
    with torch.no_grad():
        expected = model.full_sort_topk(interaction, 10)[1]
        recommender = Recommender.load(checkpoint)
        torch.testing.assert_close(recommender.model.items.head_ids, model.items.head_ids)
        served = recommender.model.full_sort_topk(interaction, 10)[1]
    assert torch.equal(served, expected)


def test_auto_head_is_resolved_and_logged(ml1m_slice, fast_settings, caplog):
    settings_ = {**fast_settings, "data_path": str(ml1m_slice), "pq_dense_head": "auto", "pq_b": 16,
                 "hidden_size": 64, "pq_m": 8, "state": "INFO"}
    with caplog.at_level(logging.INFO):
        config, _, model, _ = setup("SASRecJPQ", "ml-1m", config_dict=settings_)
    n_items = model.n_items
    assert config["pq_dense_head"] == model.items.n_head == auto_dense_head(n_items, 64, 8, 16) > 0
    assert f"pq_dense_head={model.items.n_head}" in caplog.text and "dense head of" in caplog.text
    mem = model.items.memory_bytes()
    assert mem["dense"] / mem["compressed"] >= COMPRESSION_TARGET


def test_checkpoints_from_before_the_head_still_load(headed, ml1m_slice, fast, tmp_path):
    settings_ = {**fast, "data_path": str(ml1m_slice), "checkpoint_dir": str(tmp_path / "saved"), "pq_dense_head": 0}
    _, data, model, trainer = setup("SASRecJPQ", "ml-1m", config_dict=settings_)
    trainer.fit(data[0], data[1], saved=True)
    state = load_checkpoint(trainer.saved_model_file)
    state["config"].pop("pq_dense_head", None)
    for key in ("items.head_ids", "items.head_residuals"):
        state["state_dict"].pop(key)
    old = tmp_path / "old.pth"
    save_checkpoint(state, old)
    loaded = Recommender.load(old).model
    assert loaded.items.n_head == 0
    torch.testing.assert_close(loaded.items.reconstruct(), model.items.reconstruct())


def test_gbert4recjpq_takes_a_head_too(ml1m_slice, fast_settings):
    settings_ = {**fast_settings, "data_path": str(ml1m_slice), "pq_dense_head": 6}
    _, data, model, trainer = setup("gBERT4RecJPQ", "ml-1m", config_dict=settings_)
    trainer.fit(data[0], data[1], saved=False)
    assert model.items.n_head == 6 and model.items.head_residuals.abs().sum() > 0
    interaction = next(iter(data[2]))[0]
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)  # pqtopk's scores, head columns overwritten
        values, ids = model.full_sort_topk(interaction, 10)
        query = model.forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    reference = query.double() @ model.items.reconstruct().double().T
    torch.testing.assert_close(scores.double()[:, 1:], reference[:, 1:], rtol=0, atol=1e-4)
    reference[:, 0] = float("-inf")
    torch.testing.assert_close(values.double(), torch.topk(reference, 10).values, rtol=0, atol=1e-4)


def test_head_candidates_keep_every_item_tied_with_the_kth():
    from recbole_pq.items.scoring import head_candidates

    scores = torch.tensor([[3.0, 1.0, 3.0, 2.0, 3.0], [5.0, 4.0, 0.0, 0.0, 1.0]])
    head = torch.tensor([2, 4, 6, 8, 10])
    values, ids = head_candidates(scores, head, 2)
    assert sorted(ids[0].tolist()) == [2, 6, 10]  # three items tie at the 2nd best score
    assert set(ids[1].tolist()) >= {2, 4} and len(ids[1]) == 3  # padded to the widest row with lower scores
    torch.testing.assert_close(values[1, :2], torch.tensor([5.0, 4.0]))


def test_defaults_benchmark_measures_the_heads_scan(headed):
    import sys

    from recbole_pq.data.paths import PROJECT_ROOT

    sys.path.insert(0, str(PROJECT_ROOT))  # the checkout's benchmarks/, as tests/test_harness.py
    from benchmarks.defaults import head_scan

    _, data, model, _ = headed
    measured = head_scan(model, data[2], k=5)
    assert measured["batches"] >= 1 and measured["k"] == 5
    assert measured["ms_per_user_with_head"] > 0 and measured["ms_per_user_scan_only"] > 0


def test_both_auto_keep_one_byte_codes_and_give_the_head_the_rest(caplog):
    from recbole_pq.items.sizing import resolve_codebook_sizes, starvation_warnings

    config = {"hidden_size": 64, "code_assignment": "svd_pq", "pq_m": 8, "pq_b": "auto", "pq_dense_head": "auto"}
    assert resolve_codebook_sizes(config, 23_716) == (8, 256) and config["pq_dense_head"] == 1353
    config = {"hidden_size": 64, "code_assignment": "svd_pq", "pq_m": 8, "pq_b": "auto", "pq_dense_head": 0}
    assert resolve_codebook_sizes(config, 23_716) == (8, 512)  # no head: b takes the budget, as before
    config = {"hidden_size": 64, "code_assignment": "svd_pq", "pq_m": 8, "pq_b": "auto", "pq_dense_head": "auto"}
    assert resolve_codebook_sizes(config, 1683) == (8, 256) and config["pq_dense_head"] == 0  # ml-100k: unchanged
    # many items per sub-item id: a warning without a head (naming the head), none with one
    [crowded] = starvation_warnings(23_716, 64, 8, 256)
    assert "pq_dense_head=auto" in crowded
    assert starvation_warnings(23_716, 64, 8, 256, n_head=1353) == []


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), head_frac=st.floats(0, 1), seed=st.integers(0, 10**6))
def test_tail_items_are_the_others_in_id_order(n, head_frac, seed):
    rng = np.random.default_rng(seed)
    head = np.sort(rng.choice(np.arange(1, n), size=int(head_frac * (n - 1)), replace=False))
    layer = ItemCodeEmbedding(rng.integers(0, 5, size=(n, 3)), 5, 6, head_ids=head)
    tail = layer.tail_items()
    expected = np.setdiff1d(np.arange(n), head)
    ids = tail.item_ids(torch.arange(tail.n_items))
    np.testing.assert_array_equal(ids.numpy(), expected)
    assert torch.equal(tail.codes, layer.codes[torch.as_tensor(expected)])
    assert layer.tail_items() is tail  # cached while codes and head stay


def test_sasrecjpq_defaults_to_the_auto_head_and_gbert4recjpq_to_none():
    assert build_config("SASRecJPQ", "ml-100k")["pq_dense_head"] == "auto"
    assert build_config("gBERT4RecJPQ", "ml-100k")["pq_dense_head"] == 0  # not measured with a head
