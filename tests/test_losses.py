"""gBCE against a float64 reference, and its calibration power beta; the tied softmax CE
against torch's cross-entropy on materialised logits."""

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_pq.errors import ConfigError
from hypothesis import given, settings, strategies as st

from recbole_pq.losses import (bpr_loss, check_loss_config, gbce_beta, gbce_loss, sample_negatives,
                               sampled_logit_offset, softmax_cross_entropy)


def log_sigmoid64(s):
    """log sigmoid(s) in float64, written out: -(max(-s, 0) + log1p(exp(-|s|)))."""
    s = s.double()
    return -(torch.clamp(-s, min=0) + torch.log1p(torch.exp(-s.abs())))


def reference_gbce(pos, neg, beta):
    """From the definition: BCE with P(pos) = sigmoid(s+)^beta; 1 - sigmoid(s) = sigmoid(-s)."""
    log_p = log_sigmoid64(pos)
    log_not_n = log_sigmoid64(-neg)
    return (-(beta * log_p + log_not_n.sum(-1)) / (neg.shape[-1] + 1)).mean()


@pytest.mark.parametrize("scale", [1.0, 10.0, 30.0])
def test_gbce_matches_float64_reference(scale):
    torch.manual_seed(0)
    pos, neg = torch.randn(64) * scale, torch.randn(64, 16) * scale
    for beta in (1.0, 0.3, 0.05):
        torch.testing.assert_close(gbce_loss(pos, neg, beta).double(), reference_gbce(pos, neg, beta),
                                   rtol=1e-5, atol=1e-5)


def test_gbce_finite_and_correct_for_large_logits():
    pos = torch.tensor([60.0, -60.0, 500.0, -500.0])
    neg = torch.tensor([[60.0, -60.0], [500.0, -500.0], [-80.0, 80.0], [0.0, 1000.0]])
    loss = gbce_loss(pos, neg, 0.5)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss.double(), reference_gbce(pos, neg, 0.5), rtol=1e-6, atol=1e-6)


def test_gbce_with_t0_is_plain_bce():
    torch.manual_seed(1)
    pos, neg = torch.randn(32), torch.randn(32, 8)
    beta = gbce_beta(8, 1000, 0.0)
    assert beta == 1.0
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    torch.testing.assert_close(gbce_loss(pos, neg, beta), F.binary_cross_entropy_with_logits(logits, labels))


@pytest.mark.parametrize("beta,k", [(1.0, 1), (1.0, 20), (0.3, 256), (0.05, 4)])
def test_logit_offset_is_the_constant_that_minimises_gbce(beta, k):
    """At the offset the loss of equal logits is flat (its derivative is zero) and lowest."""
    def constant_loss(c):  # every logit equal to the 0-d tensor c
        return reference_gbce(c.reshape(1), c.expand(1, k), beta)

    best = torch.tensor(sampled_logit_offset(beta, k), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(constant_loss(best), best)
    assert abs(grad.item()) < 1e-12
    best = best.detach()
    assert all(constant_loss(best + step) > constant_loss(best) for step in (-0.5, -0.01, 0.01, 0.5))
    assert sampled_logit_offset(1.0, 1) == 0.0  # one negative, plain BCE: no shift


def test_beta_hand_values():
    # beta = alpha * (t (1 - 1/alpha) + 1/alpha) = 1 - t (1 - alpha), alpha = k / (|I| - 1)
    alpha = 256 / 3415
    assert gbce_beta(256, 3416, 0.75) == pytest.approx(1 - 0.75 * (1 - alpha))
    assert gbce_beta(256, 3416, 0.75) == pytest.approx(0.3062225, abs=1e-7)
    assert gbce_beta(256, 3416, 1.0) == pytest.approx(alpha)
    assert gbce_beta(1, 101, 0.5) == pytest.approx(0.5 + 0.5 / 100)


def test_bpr_matches_definition():
    pos, neg = torch.tensor([2.0, -1.0]), torch.tensor([[1.0, 0.0], [0.0, -3.0]])
    expected = -torch.log(torch.sigmoid(pos.unsqueeze(1) - neg)).mean()
    torch.testing.assert_close(bpr_loss(pos, neg), expected)


def test_negatives_never_padding():
    torch.manual_seed(0)
    negatives = sample_negatives((10000,), 5)
    assert negatives.min() >= 1 and negatives.max() <= 4 and len(negatives.unique()) == 4


@pytest.mark.parametrize("loss_type,t,k,match", [
    ("gBCE", 1.5, 10, "gbce_t=1.5"), ("gBCE", -0.1, 10, "gbce_t=-0.1"),
    ("gBCE", 0.5, 0, "neg_samples=0"), ("BPR", 0.5, 99, "neg_samples=99"), ("Hinge", 0.5, 10, "loss_type='Hinge'"),
])
def test_bad_loss_config(loss_type, t, k, match):
    with pytest.raises(ConfigError, match=match):
        check_loss_config(loss_type, t, k, n_items=100)


def reference_softmax_ce(query, table, targets):
    """Materialised logits, padding column at -inf, torch's cross-entropy."""
    logits = query @ table.T
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, targets)


@settings(max_examples=40, deadline=None)
@given(n_rows=st.integers(1, 70), n_items=st.integers(2, 300), dim=st.integers(1, 12),
       scale=st.sampled_from([0.1, 3.0, 40.0]), block_rows=st.sampled_from([None, 1, 7, 64]),
       keep_probs=st.booleans(), seed=st.integers(0, 2**16))
def test_softmax_ce_equals_reference_value_and_gradients(n_rows, n_items, dim, scale, block_rows, keep_probs, seed):
    """Float64, any shape (blocks of rows that do not divide P, N = 2 with one real item,
    logits large enough that an unstabilised exp would overflow), probabilities kept for
    the backward or recomputed there."""
    generator = torch.Generator().manual_seed(seed)
    query = (torch.randn(n_rows, dim, generator=generator, dtype=torch.float64) * scale).requires_grad_()
    table = torch.randn(n_items, dim, generator=generator, dtype=torch.float64).requires_grad_()
    targets = torch.randint(1, n_items, (n_rows,), generator=generator)
    loss = softmax_cross_entropy(query, table, targets, block_rows, keep_probs)
    grad_query, grad_table = torch.autograd.grad(2.5 * loss, (query, table))
    expected = reference_softmax_ce(query, table, targets)
    expected_query, expected_table = torch.autograd.grad(2.5 * expected, (query, table))
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad_query, expected_query, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad_table, expected_table, rtol=1e-9, atol=1e-12)
    assert grad_table[0].abs().max() == 0  # padding: never predicted, never a target


def test_softmax_ce_float32_many_blocks_matches_reference():
    """The training dtype, with several blocks of rows (N large enough for a small block)."""
    torch.manual_seed(0)
    query = torch.randn(300, 16, requires_grad=True)
    table = torch.randn(20_000, 16, requires_grad=True)
    targets = torch.randint(1, 20_000, (300,))
    loss = softmax_cross_entropy(query, table, targets)
    loss.backward()
    got = (loss.detach(), query.grad.clone(), table.grad.clone())
    query.grad = table.grad = None
    reference_softmax_ce(query, table, targets).backward()
    torch.testing.assert_close(got[0], reference_softmax_ce(query, table, targets).detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], query.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got[2], table.grad, rtol=1e-4, atol=1e-7)


def test_softmax_ce_recomputes_when_probabilities_would_not_fit(monkeypatch):
    """Over the memory bound nothing of size (P, N) is kept for the backward."""
    import recbole_pq.losses as losses

    monkeypatch.setattr(losses, "CE_PROBS_BYTES", 1000)
    query = torch.randn(40, 8, requires_grad=True)
    table = torch.randn(500, 8, requires_grad=True)
    targets = torch.randint(1, 500, (40,))
    loss = softmax_cross_entropy(query, table, targets)
    saved = loss.grad_fn.saved_tensors
    assert max(t.numel() for t in saved) < 40 * 500
    loss.backward()
    expected_query, expected_table = torch.autograd.grad(reference_softmax_ce(query, table, targets), (query, table))
    torch.testing.assert_close(query.grad, expected_query, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(table.grad, expected_table, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("neg_sampling", ["sequence", "position"])
def test_sampled_loss_per_sequence_or_per_position_equals_a_reference(ml1m_slice, fast_settings, neg_sampling):
    """neg_sampling: sequence -- one set of k negatives per row, shared by its positions;
    position -- k for every position.  The model's gBCE equals the loss written out by hand
    from the same random draws."""
    from recbole_pq.pipeline import setup

    config, (train, _, _), model, _ = setup("SASRecJPQ", "ml-1m", config_dict={
        **fast_settings, "data_path": str(ml1m_slice), "loss_type": "gBCE", "neg_samples": 5,
        "neg_sampling": neg_sampling})
    model.eval()  # no dropout: the states are the same in both computations
    batch = next(iter(train))
    with torch.no_grad():
        states, targets, mask = model.training_positions(batch)
        torch.manual_seed(7)
        loss = model.loss_from_positions(states, targets, mask)
        torch.manual_seed(7)
        query, positives = states[mask], targets[mask]
        rows = query.shape[0] if neg_sampling == "position" else states.shape[0]
        negatives = sample_negatives((rows, 5), model.n_items)
        if neg_sampling == "sequence":  # each position takes its row's negatives
            negatives = negatives.unsqueeze(1).expand(-1, states.shape[1], -1)[mask]
        neg_logits = torch.einsum("pd,pkd->pk", query, model.items(negatives))
        pos_logits = (query * model.items(positives)).sum(-1)
        beta = gbce_beta(5, model.n_items - 1, config["gbce_t"])
        offset = sampled_logit_offset(beta, 5)  # the training logits' constant shift
        expected = gbce_loss(pos_logits + offset, neg_logits + offset, beta)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match=r"neg_sampling='batch' is not supported"):
        check_loss_config("gBCE", 0.75, 5, neg_sampling="batch")


@pytest.fixture(scope="module")
def cycle_data(tmp_path_factory):
    """data_path of ``cycle``: 300 users, each walking 25 steps round a ring of 60 items from a
    random start, so the next item is always the current one + 1 and every item is equally popular."""
    import random

    root = tmp_path_factory.mktemp("cycle")
    rng = random.Random(0)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(300):
        start = rng.randrange(60)
        lines += [f"u{user}\ti{(start + step) % 60}\t{step}" for step in range(25)]
    (root / "cycle").mkdir()
    (root / "cycle" / "cycle.inter").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("model_name,loss_type", [("DenseSASRec", "gBCE"), ("DenseSASRec", "BCE"),
                                                  ("SASRecJPQ", "gBCE")])
def test_sampled_losses_with_a_tied_table_learn_a_deterministic_sequence(cycle_data, fast_settings, model_name,
                                                                         loss_type):
    """Regression: with k = 20 negatives and a tied item table, (g)BCE training used to collapse to equal
    logits for every item (valid NDCG@10 0.19-0.28 here, chance level) while BPR and CE learnt the ring;
    the logit offset (``sampled_logit_offset``) fixed it."""
    from recbole_pq.pipeline import setup

    settings = {**fast_settings, "data_path": str(cycle_data), "loss_type": loss_type, "neg_samples": 20,
                "epochs": 30, "hidden_size": 32, "inner_size": 64, "MAX_ITEM_LIST_LENGTH": 30,
                "eval_exclude_history": True, "eval_step": 30, "pq_m": 8, "pq_b": 60, "seed": 0}
    _, (train, valid, _), _, trainer = setup(model_name, "cycle", config_dict=settings)
    trainer.fit(train, valid, saved=False)
    assert trainer.evaluate(valid, load_best_model=False)["ndcg@10"] > 0.9
