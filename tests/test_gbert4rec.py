"""gBERT4Rec / gBERT4RecJPQ: masking, negatives, scorers and bad input."""

import pytest
import torch

import recbole_pq
from recbole_pq.errors import ConfigError
from recbole_pq.items.scoring import SCORERS, make_scorer
from recbole_pq.pipeline import setup
from recbole_pq.serving.recommender import Recommender


@pytest.fixture(scope="module")
def jpq(ml1m_slice, fast, tmp_path_factory):
    settings = {**fast, "data_path": str(ml1m_slice), "checkpoint_dir": str(tmp_path_factory.mktemp("saved")),
                "neg_samples": 32}
    config, data, model, trainer = setup("gBERT4RecJPQ", "ml-1m", config_dict=settings)
    trainer.fit(data[0], data[1], saved=False)
    return config, data, model, trainer


def test_mask_appended_after_history(jpq):
    _, _, model, _ = jpq
    L, M = 5, model.mask_token
    seq = torch.tensor([[1, 2, 0, 0, 0], [1, 2, 3, 4, 5]])
    masked, position = model.with_mask_appended(seq, torch.tensor([2, 5]))
    assert masked.tolist() == [[1, 2, M, 0, 0], [2, 3, 4, 5, M]]
    assert position.tolist() == [2, L - 1]


def test_full_training_sequence_appends_last_target(jpq):
    config, _, model, _ = jpq
    interaction = {model.ITEM_SEQ: torch.tensor([[7, 8, 0], [1, 2, 3]]),
                   model.ITEM_SEQ_LEN: torch.tensor([2, 3]),
                   model.TARGET_SEQ: torch.tensor([[8, 9, 0], [2, 3, 4]])}
    seq, lengths = model.full_training_sequence(interaction)
    assert seq.tolist() == [[7, 8, 9], [2, 3, 4]] and lengths.tolist() == [3, 3]


def test_training_masks_at_least_one_real_item_per_row(jpq):
    _, (train, _, _), model, _ = jpq
    batch = next(iter(train))
    torch.manual_seed(0)
    model.mask_ratio = 1e-9  # the draw masks nothing: the last item must be masked anyway
    try:
        states, items, masked = model.training_positions(batch)
        states, targets = states[masked], items[masked]
    finally:
        model.mask_ratio = 0.2
    seq, lengths = model.full_training_sequence(batch)
    assert states.shape[0] == len(batch) and torch.equal(targets, seq[torch.arange(len(batch)), lengths - 1])


def test_next_item_rows_hide_only_their_end_and_see_no_right_context(jpq):
    """A next-item row is one mask after a prefix: its state must equal forward()'s on that
    prefix (the test-time encoding).  With a vanishing mask_ratio the Cloze rows hide only
    their last item, the same case, so every row's one state is checked."""
    _, (train, _, _), model, _ = jpq
    batch = next(iter(train))
    seq, lengths = model.full_training_sequence(batch)
    saved = model.next_item_rows, model.mask_ratio
    model.eval()  # no dropout, so states can be compared
    torch.manual_seed(1)
    model.next_item_rows, model.mask_ratio = 0.5, 1e-9
    try:
        with torch.no_grad():
            states, items, masked = model.training_positions(batch)
            ends = masked.float().argmax(1)
            prefix = seq.masked_fill(torch.arange(seq.shape[1]) >= ends.unsqueeze(1), 0)
            expected = model.forward(prefix, ends)
    finally:
        (model.next_item_rows, model.mask_ratio), _ = saved, model.train()
    assert torch.equal(items, seq) and torch.all(masked.sum(1) == 1)
    assert 0 < (ends < lengths - 1).sum() < len(batch)  # some rows cut early, some not
    assert torch.all((ends >= 1) | (lengths == 1))
    torch.testing.assert_close(states[torch.arange(len(batch)), ends], expected, rtol=1e-5, atol=1e-5)


def test_negatives_never_padding_or_mask(jpq, monkeypatch):
    _, (train, _, _), model, _ = jpq
    import recbole_pq.models.base as base

    drawn = []

    def recording(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    real = base.sample_negatives
    monkeypatch.setattr(base, "sample_negatives", recording)
    model.neg_samples = model.n_items - 2  # almost the whole catalogue: would hit 0 or the mask if allowed
    try:
        for batch in train:
            model.calculate_loss(batch)
    finally:
        model.neg_samples = 32
    drawn = torch.cat(drawn)
    assert drawn.min() >= 1 and drawn.max() <= model.n_items - 1 and model.mask_token not in drawn


def test_full_sort_topk_same_for_all_scorers(jpq):
    _, (_, _, test), model, _ = jpq
    batch = next(iter(test))[0]
    model.eval()
    results = {}
    with torch.no_grad():
        for name in SCORERS:
            model.scorer = make_scorer(name, chunk_size=333)
            results[name] = model.full_sort_topk(batch, 10)
        full = make_scorer("default").scores(model.forward(batch["item_id_list"], batch["item_length"]), model.items)
    ref_values, ref_ids = results["default"]
    for name, (values, ids) in results.items():
        torch.testing.assert_close(values, ref_values, rtol=0, atol=1e-5)
        # ids agree except among items whose scores tie (equal codes give equal scores)
        torch.testing.assert_close(torch.gather(full, 1, ids), ref_values, rtol=0, atol=1e-5)
        clear = ref_values[:, :-1] > ref_values[:, 1:] + 1e-4
        clear = torch.cat([clear[:, :1], clear[:, 1:] & clear[:, :-1]], 1)
        assert torch.equal(ids[:, :-1][clear], ref_ids[:, :-1][clear]), name


@pytest.mark.parametrize("model", ["gBERT4Rec", "gBERT4RecJPQ"])
def test_runs_end_to_end(ml1m_slice, fast_settings, model):
    result = recbole_pq.run(model, "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice),
                                                        "neg_samples": 16})
    served = Recommender.load(result["saved_model_file"])  # the run's best checkpoint serves
    assert type(served.model).__name__ == model
    assert result["best_valid_score"] == pytest.approx(result["best_valid_result"]["ndcg@10"])


@pytest.mark.parametrize("overrides,match", [
    ({"gbce_t": 1.2}, "gbce_t=1.2"), ({"gbce_t": -1}, "gbce_t=-1"),
    ({"neg_samples": 0}, "neg_samples=0"), ({"neg_samples": 10**6}, "neg_samples=1000000"),
    ({"mask_ratio": 0}, "mask_ratio=0"), ({"next_item_rows": 1.0}, r"next_item_rows=1.0 must lie in \[0, 1\)"),
])
def test_bad_config(ml1m_slice, fast_settings, overrides, match):
    with pytest.raises(ConfigError, match=match):
        setup("gBERT4RecJPQ", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice), **overrides})


def test_dense_twin_rejects_pq_scorer(ml1m_slice, fast_settings):
    with pytest.raises(ConfigError, match="scorer='pqtopk' needs compressed items, but gBERT4Rec has a dense item table"):
        setup("gBERT4Rec", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice), "scorer": "pqtopk"})


def test_each_sequence_draws_its_own_negatives(jpq, monkeypatch):
    """Negatives shared by a whole batch made gBCE training fail (NDCG@10 at chance level on
    ml-100k); every row of a batch must draw its own k."""
    _, (train, _, _), model, _ = jpq
    import recbole_pq.models.base as base

    shapes = []
    real = base.sample_negatives

    def recording(shape, *args, **kwargs):
        shapes.append(tuple(shape))
        return real(shape, *args, **kwargs)

    monkeypatch.setattr(base, "sample_negatives", recording)
    batch = next(iter(train))
    model.calculate_loss(batch)
    assert shapes == [(len(batch), model.neg_samples)]
