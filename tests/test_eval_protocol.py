"""eval_exclude_history: ranking without the user's input history, for every scorer,
the top-k evaluator, RecBole's stock evaluator and the Recommender."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from recbole.trainer import Trainer

from recbole_pq.errors import ConfigError
from recbole_pq.items.scoring import SCORERS, make_scorer
from recbole_pq.items.sub_item_table import ItemCodeEmbedding
from recbole_pq.pipeline import build_config, setup


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 200), m=st.sampled_from([1, 2, 4]), b=st.integers(2, 32), batch=st.integers(1, 5),
       history=st.integers(0, 30), k_frac=st.floats(0, 1), seed=st.integers(0, 10**6))
def test_topk_without_history_equals_masked_dense_reference(n, m, b, batch, history, k_frac, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    layer = ItemCodeEmbedding(rng.integers(0, b, size=(n + 1, m)), b, 8 * m, init_std=1.0)
    query = torch.randn(batch, 8 * m)
    exclude = torch.from_numpy(rng.integers(0, n + 1, size=(batch, history)))  # 0: padding, repeats allowed
    k = 1 + int(k_frac * (n - 1))
    reference = query.double() @ layer.reconstruct().double().T
    reference[:, 0] = float("-inf")
    reference.scatter_(1, exclude, float("-inf"))
    for name in SCORERS:
        values, ids = make_scorer(name).topk(query, layer, k, exclude=exclude)
        assert values.shape == ids.shape == (batch, k)
        for row in range(batch):
            allowed = int(torch.isfinite(reference[row]).sum())
            got = ids[row, :min(k, allowed)].tolist()
            assert not set(got) & set(exclude[row].tolist()), name  # excluded items never ranked
            assert len(set(got)) == len(got) and 0 not in got
            expected = torch.topk(reference[row], min(k, allowed)).values
            torch.testing.assert_close(values[row, :len(got)].double(), expected, rtol=0, atol=1e-4)
            torch.testing.assert_close(reference[row, got], expected, rtol=0, atol=1e-4)
            assert torch.isinf(values[row, len(got):]).all()  # catalogue ran out: -inf fillers


@pytest.mark.parametrize("model_name", ["DenseSASRec", "SASRecJPQ"])
def test_evaluators_without_history_agree_and_never_rank_a_history_item(model_name, fast_settings):
    keys = {**fast_settings, "eval_exclude_history": True, "pq_m": 8, "pq_b": 64, "metrics": ["NDCG", "Hit"]}
    _, (train, _, test), model, trainer = setup(model_name, "ml-100k", config_dict=keys)
    trainer.fit(train, saved=False)
    topk_result = trainer.evaluate(test, load_best_model=False)
    stock_result = Trainer.evaluate(trainer, test, load_best_model=False)  # masked (B, N) scores
    assert topk_result == stock_result
    model.eval()
    with torch.no_grad():
        batch = next(iter(test))[0]
        _, ids = model.full_sort_topk(batch, 10)
        history = batch[model.ITEM_SEQ]
        assert not (ids.unsqueeze(2) == history.unsqueeze(1)).any()
        model.eval_exclude_history = False
        _, kept = model.full_sort_topk(batch, 10)
        assert (kept.unsqueeze(2) == history.unsqueeze(1)).any()  # RecBole's protocol ranks them


def test_exclude_history_must_be_a_bool():
    with pytest.raises(ConfigError, match="eval_exclude_history='yes' must be true or false"):
        build_config("SASRecJPQ", "ml-100k", config_dict={"eval_exclude_history": "yes"})
