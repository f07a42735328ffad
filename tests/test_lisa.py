"""LISA: the linear histogram path against quadratic references, numerics, online mode."""

import copy
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import recbole_pq
from recbole_pq.errors import ConfigError
from recbole_pq.items.codebooks import CodebookQuantizer, QuantizedItemTable, codeword_lookup
from recbole_pq.layers.lisa import (CodewordHistogramAttention, LISAEncoder, attention_context, codeword_histogram,
                                   histogram_softmax)
from recbole_pq.pipeline import setup


def _visibility(lengths, L, causal):
    j = torch.arange(L)
    real = j.unsqueeze(0) < lengths.unsqueeze(1)  # (N, L)
    visible = real.unsqueeze(1).expand(-1, L, -1)
    if causal:
        visible = visible & (j.unsqueeze(1) >= j.unsqueeze(0))
    return visible  # (N, i, j)


def quadratic_hard(assignments, codebooks, attention, visible):
    """Eq. 6 with one head per codebook: full L x L softmax attention over composed codewords."""
    D = codebooks.shape[-1]
    out = 0
    for b in range(codebooks.shape[0]):
        e = assignments[:, :, b] @ codebooks[b]  # (N, L, D) each position's codeword
        q, k, v = e @ attention.query[b], e @ attention.key[b], e @ attention.value[b]
        logits = (q @ k.transpose(1, 2)) / math.sqrt(D)
        out = out + torch.softmax(logits.masked_fill(~visible, float("-inf")), dim=-1) @ v
    return out


def quadratic_mixture(assignments, codebooks, attention, visible):
    """Each key position is the mixture sum_w a_j[w] of codewords (soft assignments)."""
    scores, values = attention._compute_tables(codebooks)
    out = 0
    for b in range(codebooks.shape[0]):
        row = torch.exp(assignments[:, :, b] @ scores[b])  # (N, L, W)
        contrib = torch.einsum("niw,njw->nijw", row, assignments[:, :, b]) * visible.unsqueeze(-1)
        out = out + torch.einsum("nijw,wd->nid", contrib / contrib.sum(dim=(2, 3), keepdim=True), values[b])
    return out


@settings(max_examples=20, deadline=None)
@given(L=st.integers(1, 12), B=st.integers(1, 3), W=st.integers(2, 6), D=st.sampled_from([2, 4, 8]),
       causal=st.booleans(), soft=st.booleans(), seed=st.integers(0, 10**6))
def test_linear_path_equals_quadratic_reference(L, B, W, D, causal, soft, seed):
    torch.manual_seed(seed)
    N = 3
    codebooks = torch.randn(B, W, D, dtype=torch.float64)
    attention = CodewordHistogramAttention(B, D).double()
    lengths = torch.randint(1, L + 1, (N,))
    if soft:
        assignments = torch.softmax(torch.randn(N, L, B, W, dtype=torch.float64) * 2, dim=-1)
    else:
        assignments = F.one_hot(torch.randint(0, W, (N, L, B)), W).double()
    real = (torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)).double()
    assignments = assignments * real[..., None, None]
    visible = _visibility(lengths, L, causal)
    linear = attention(assignments, codeword_histogram(assignments, causal=causal), codebooks)
    reference = quadratic_mixture(assignments, codebooks, attention, visible)
    mask = real.bool()  # padding rows are never read
    torch.testing.assert_close(linear[mask], reference[mask], rtol=1e-9, atol=1e-9)
    if not soft:
        torch.testing.assert_close(linear[mask], quadratic_hard(assignments, codebooks, attention, visible)[mask],
                                   rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(L=st.integers(1, 10), B=st.integers(1, 3), W=st.integers(11, 14), D=st.sampled_from([2, 4]),
       causal=st.booleans(), decay=st.sampled_from([0.0, 0.3, 2.0]), seed=st.integers(0, 10**6))
def test_pairwise_path_equals_histogram_path(L, B, W, D, causal, decay, seed):
    """Fixed hard codes with L < W: attention_context takes the pairwise path, whose outputs
    at item positions and gradients (codebooks, Q/K/V maps) equal the histogram path's."""
    torch.manual_seed(seed)
    N, gamma = 3, math.exp(-decay)
    attention = CodewordHistogramAttention(B, D).double()
    codebooks = torch.randn(B, W, D, dtype=torch.float64, requires_grad=True)
    codes = torch.randint(0, W, (N, L, B))
    lengths = torch.randint(1, L + 1, (N,))
    real = (torch.arange(L).unsqueeze(0) < lengths.unsqueeze(1)).double()
    assignments = F.one_hot(codes, W).double() * real[..., None, None]
    upstream = torch.randn(N, L, D, dtype=torch.float64) * real[..., None]
    histograms, pair_log_weights = attention_context(assignments, codes, causal=causal, gamma=gamma)
    assert histograms is None and pair_log_weights.shape == (N, L, L)
    linear_histograms = codeword_histogram(assignments, causal=causal, gamma=gamma)

    def run(histograms, pair):
        for t in (codebooks, attention.query, attention.key, attention.value):
            t.grad = None
        out = attention(assignments, histograms, codebooks, codes, pair_log_weights=pair)
        assert torch.isfinite(out).all()  # padding rows too: they reach later layers
        (out * upstream).sum().backward()
        return [out.detach()[real.bool()]] + [t.grad.clone() for t in
                                              (codebooks, attention.query, attention.key, attention.value)]

    for got, expected in zip(run(None, pair_log_weights), run(linear_histograms, None)):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_attention_context_keeps_the_histogram_path_where_it_must():
    codes = torch.randint(0, 8, (2, 5, 3))
    hard = F.one_hot(codes, 8).float()
    assert attention_context(hard, codes)[0] is None  # fixed hard codes, L < W: pairwise
    assert attention_context(hard, None)[1] is None  # soft assignments: no codes
    assert attention_context(hard.requires_grad_(), codes)[1] is None  # gradient to the assignments
    long_codes = torch.randint(0, 4, (2, 5, 3))
    assert attention_context(F.one_hot(long_codes, 4).float(), long_codes)[1] is None  # L >= W
    assert attention_context(F.one_hot(long_codes, 4).float(), long_codes, path="pairwise")[0] is None
    with pytest.raises(ValueError, match="pairwise path needs hard codes"):
        attention_context(hard, None, path="pairwise")
    with pytest.raises(ValueError, match="path='fast'"):
        attention_context(hard, codes, path="fast")


@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 4), W=st.integers(2, 9), shape=st.sampled_from([(0,), (5,), (3, 4)]), seed=st.integers(0, 10**6))
def test_fixed_code_items_are_sums_of_their_codewords(B, W, shape, seed):
    """Values and codebook gradients equal the plain sum over codebooks of the chosen rows."""
    torch.manual_seed(seed)
    n_items, D = 11, 3
    codes = torch.randint(0, W, (n_items, B))
    table = QuantizedItemTable(n_items, CodebookQuantizer(B, W, D), fixed_codes=codes).double()
    ids = torch.randint(0, n_items, shape)
    upstream = torch.randn(*shape, D, dtype=torch.float64)
    books = table.quantizer.codebooks

    def run(fn):
        books.grad = None
        out = fn()
        (out * upstream).sum().backward()
        return out.detach(), books.grad.clone()

    expected = run(lambda: books[torch.arange(B), codes[ids]].sum(-2))
    for got, want in zip(run(lambda: table(ids)), expected):
        torch.testing.assert_close(got, want)


def test_decayed_histogram_equals_direct_sum():
    torch.manual_seed(0)
    a = torch.rand(2, 150, 2, 3, dtype=torch.float64)  # 150 > one scan block
    gamma = 0.9
    lag = torch.arange(150).unsqueeze(1) - torch.arange(150).unsqueeze(0)
    weights = torch.where(lag >= 0, gamma ** lag.clamp(min=0).double(), torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(codeword_histogram(a, gamma=gamma), torch.einsum("ij,njbw->nibw", weights, a))


def test_finite_at_64k_positions_and_huge_logits():
    torch.manual_seed(0)
    L, B, W, D = 65536, 2, 4, 8
    attention = CodewordHistogramAttention(B, D)
    with torch.no_grad():
        attention.query.mul_(1e3)  # logits of order 1e5: a raw exp would overflow
        codebooks = torch.randn(B, W, D) * 10
        assignments = F.one_hot(torch.randint(0, W, (1, L, B)), W).float()
        for gamma in (1.0, 0.999):
            out = attention(assignments, codeword_histogram(assignments, gamma=gamma), codebooks)
            assert torch.isfinite(out).all()


def test_empty_histogram_gives_zero_weights_not_nan():
    weights = histogram_softmax(torch.tensor([[1e30, -1e30, 0.0]]), torch.zeros(1, 3))
    assert torch.equal(weights, torch.zeros(1, 3))


def test_soft_histograms_sum_to_position_counts():
    quantizer = CodebookQuantizer(3, 5, 8)
    assignments = quantizer.assign(torch.randn(2, 7, 8), soft=True)[0]
    counts = codeword_histogram(assignments).sum(-1)  # (N, L, B)
    expected = torch.arange(1, 8, dtype=torch.float32).view(1, 7, 1).expand(2, 7, 3)
    torch.testing.assert_close(counts, expected)


def test_codes_hard_at_eval_straight_through_in_training():
    quantizer = CodebookQuantizer(2, 6, 4)
    x = torch.randn(10, 4, requires_grad=True)
    quantizer.eval()
    hard = quantizer.assign(x)[0]
    assert set(hard.unique().tolist()) <= {0.0, 1.0} and torch.all(hard.sum(-1) == 1)
    quantizer.train()
    st_assign, _, quantised = quantizer.assign(x)
    torch.testing.assert_close(st_assign, hard)  # forward value is the hard choice ...
    quantised.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # ... gradient flows through the softmax


def _straight_through(logits, codes):
    probs = torch.softmax(logits, dim=-1)
    return F.one_hot(codes, logits.shape[-1]).to(logits.dtype) + probs - probs.detach()


@settings(max_examples=15, deadline=None)
@given(B=st.integers(0, 3), W=st.integers(2, 7), D=st.integers(1, 5), seed=st.integers(0, 10**6))
def test_codeword_lookup_equals_one_hot_product(B, W, D, seed):
    """Values and gradients (weights and table) equal those of the (..., W) x (W, D) product;
    B = 0: one (W, D) table, else one table per codebook."""
    torch.manual_seed(seed)
    table_shape = (W, D) if B == 0 else (B, W, D)
    logits = torch.randn(4, 3, *(() if B == 0 else (B,)), W, dtype=torch.float64, requires_grad=True)
    codes = logits.detach().argmax(-1)
    table = torch.randn(table_shape, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(4, 3, *(() if B == 0 else (B,)), D, dtype=torch.float64)

    def grads(fn):
        logits.grad = table.grad = None
        out = fn(_straight_through(logits, codes))
        (out * upstream).sum().backward()
        return out.detach(), logits.grad.clone(), table.grad.clone()

    product = (lambda w: w @ table) if B == 0 else (lambda w: torch.einsum("...bw,bwd->...bd", w, table))
    for got, expected in zip(grads(lambda w: codeword_lookup(w, codes, table)), grads(product)):
        torch.testing.assert_close(got, expected)


def test_attention_gathers_rows_with_codes_like_the_product():
    """Hard (straight-through) assignments with zeroed padding: the codes path gives the
    einsum path's outputs and gradients (assignments, codebooks, Q/K/V maps)."""
    torch.manual_seed(3)
    N, L, B, W, D = 3, 9, 2, 6, 4
    attention = CodewordHistogramAttention(B, D).double()
    codebooks = torch.randn(B, W, D, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(N, L, B, W, dtype=torch.float64, requires_grad=True)
    codes = logits.detach().argmax(-1)
    present = (torch.arange(L).unsqueeze(0) < torch.tensor([[9], [4], [1]])).to(torch.float64)
    upstream = torch.randn(N, L, D, dtype=torch.float64)

    def run(with_codes):
        for t in (logits, codebooks, attention.query, attention.key, attention.value):
            t.grad = None
        assignments = _straight_through(logits, codes) * present[..., None, None]
        out = attention(assignments, codeword_histogram(assignments), codebooks, codes if with_codes else None)
        (out * upstream * present[..., None]).sum().backward()
        return [out.detach() * present[..., None]] + [t.grad.clone() for t in
                                                      (logits, codebooks, attention.query, attention.key, attention.value)]

    for got, expected in zip(run(True), run(False)):
        torch.testing.assert_close(got, expected)


def test_two_layer_encoder_with_codes_equals_the_product_path():
    """The padding mask the encoder derives once serves every layer: with n_layers = 2 the
    codes path gives the einsum path's outputs and gradients at every position, padding
    included (whose rows must stay zero in both)."""
    torch.manual_seed(4)
    N, L, B, W, D = 3, 7, 2, 5, 4
    config = {"hidden_size": D, "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.0, "MAX_ITEM_LIST_LENGTH": L,
              "n_layers": 2, "inner_size": 8, "hidden_act": "gelu"}
    encoder = LISAEncoder(config, n_codebooks=B).double()
    codebooks = torch.randn(B, W, D, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(N, L, B, W, dtype=torch.float64, requires_grad=True)
    item_emb = torch.randn(N, L, D, dtype=torch.float64)
    codes = logits.detach().argmax(-1)
    present = (torch.arange(L).unsqueeze(0) < torch.tensor([[7], [3], [1]])).to(torch.float64)
    upstream = torch.randn(N, L, D, dtype=torch.float64)

    def run(with_codes):
        encoder.zero_grad()
        logits.grad = codebooks.grad = None
        assignments = _straight_through(logits, codes) * present[..., None, None]
        out = encoder(item_emb, assignments, codeword_histogram(assignments), codebooks,
                      codes=codes if with_codes else None)
        (out * upstream).sum().backward()
        return [out.detach(), logits.grad.clone(), codebooks.grad.clone()] + \
            [encoder.attention[layer].query.grad.clone() for layer in range(2)]

    for got, expected in zip(run(True), run(False)):
        torch.testing.assert_close(got, expected)


def test_codebook_width_must_match():
    with pytest.raises(ValueError, match="width 6 do not match the codebook width D=4"):
        CodebookQuantizer(2, 3, 4).assign(torch.randn(5, 6))


@pytest.fixture(scope="module", params=["base", "soft", "mini", "base-learned", "mini-learned"])
def lisa(request, ml1m_slice, fast, tmp_path_factory):
    variant, _, codes = request.param.partition("-")
    settings = {**fast, "data_path": str(ml1m_slice), "checkpoint_dir": str(tmp_path_factory.mktemp("saved")),
                "lisa_variant": variant, "lisa_codes": codes or "svd", "lisa_B": 4, "lisa_W": 16, "lisa_seq_B": 2,
                "lisa_seq_W": 8, "MAX_ITEM_LIST_LENGTH": 10, "lisa_decay": 0.05,
                "scorer": "default" if variant == "soft" else "pqtopk"}
    config, data, model, trainer = setup("SASRecLISA", "ml-1m", config_dict=settings)
    trainer.fit(data[0], data[1], saved=True)
    model.eval()
    return config, data, model, trainer


def test_online_step_equals_recomputation(lisa):
    config, _, model, _ = lisa
    torch.manual_seed(1)
    history = torch.randint(1, model.n_items, (25,))  # longer than MAX_ITEM_LIST_LENGTH = 10
    state = model.init_state(history[:3])
    for t in range(3, 25):
        state, (values, ids) = model.step(state, int(history[t]))
        with torch.no_grad():
            full = model.encode(history[: t + 1].unsqueeze(0), torch.tensor([t + 1]))[:, -1]
            expected = model.scorer.topk(full, model.items, 10)
        torch.testing.assert_close(model.state_output(state), full, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(values, expected[0], rtol=1e-5, atol=1e-5)
    assert state.histogram.shape == (model.encoder.attention[0].n_codebooks, model.seq_quantizer.n_codewords)


def test_fixed_codes_are_assigned_before_training_and_kept(lisa):
    """svd / random item codes: the buffer equals the assignment from the training data
    after fit (never trained), and a training-mode item vector is the sum of its codewords,
    as at evaluation; learned codes come from the item vectors instead."""
    from recbole_pq.items.sub_item_table import codes_for_dataset

    config, (train, _, _), model, _ = lisa
    if model.variant == "soft":
        pytest.skip("soft has no item codebooks")
    items = model.items
    if config["lisa_codes"] == "learned":
        assert items.learned and not hasattr(items, "fixed_codes")
        return
    expected = codes_for_dataset(config["lisa_codes"], config["lisa_B"], config["lisa_W"], config, train._dataset)
    assert not items.learned and not hasattr(items, "vectors") and "items.fixed_codes" in model.state_dict()
    assert torch.equal(items.codes, torch.as_tensor(expected).to(items.codes.dtype))
    ids = torch.arange(1, 20)
    model.train()
    try:
        with torch.no_grad():
            training = items(ids)
    finally:
        model.eval()
    books = items.quantizer.codebooks
    by_hand = sum(books[b, items.codes[ids, b].long()] for b in range(items.m))
    torch.testing.assert_close(training, by_hand)
    torch.testing.assert_close(items(ids), by_hand)


def test_positions_beyond_the_table_are_clamped(lisa):
    _, _, model, _ = lisa
    L = model.encoder.max_len
    assert model.encoder.positions(L + 5, "cpu").tolist() == list(range(L)) + [L - 1] * 5


def test_tables_not_stale_after_load_state_dict(lisa):
    config, (train, _, test), model, _ = lisa
    batch = next(iter(test))[0]
    with torch.no_grad():
        before = model.full_sort_predict(batch)  # fills the eval caches
        saved = {k: v.clone() for k, v in model.state_dict().items()}
        changed = {k: (v + 0.05 * torch.randn_like(v)) if v.is_floating_point() else v for k, v in saved.items()}
        model.load_state_dict(changed)
        after = model.full_sort_predict(batch)
        fresh = type(model)(config, train._dataset)
        fresh.load_state_dict(changed)
        fresh.eval()
        torch.testing.assert_close(after, fresh.full_sort_predict(batch))
        assert not torch.allclose(before, after)
        model.load_state_dict(saved)
        torch.testing.assert_close(model.full_sort_predict(batch), before)


def test_tables_follow_a_model_moved_after_evaluation(lisa):
    """``.double()`` (like ``.to(device)``) gives the same Parameters new data: the eval caches
    (LISA score tables, reconstructed items) must not serve the float32 values of before."""
    _, (_, _, test), model, _ = lisa
    batch = next(iter(test))[0]
    moved, reference = copy.deepcopy(model).eval(), copy.deepcopy(model).eval().double()
    with torch.no_grad():
        moved.full_sort_predict(batch)  # fills the eval caches in float32
        moved.double()
        torch.testing.assert_close(moved.full_sort_predict(batch), reference.full_sort_predict(batch))


def test_caches_never_pickled(lisa):
    _, (_, _, test), model, _ = lisa
    with torch.no_grad():
        model.full_sort_predict(next(iter(test))[0])
    clone = pickle.loads(pickle.dumps(model))
    assert any(len(getattr(m, "_cache", ())) for m in model.modules())  # the original has caches
    assert all(len(getattr(m, "_cache", ())) == 0 for m in clone.modules())


def test_evaluator_topk_equals_stock_scores_lower_id_first(lisa):
    """The top-k evaluator ranks what full_sort_predict scores, ties lower id first.  (Fixed
    codes tie: on this 60-user slice items unseen in training share svd codes, so the
    stock path's torch.topk, whose tie order is arbitrary, is not the reference.)"""
    config, (_, _, test), model, trainer = lisa
    k = trainer.max_k
    for interaction, _, _, _ in test:
        with torch.no_grad():
            scores = model.full_sort_predict(interaction).view(interaction.length, -1)
            values, ids = model.full_sort_topk(interaction, k)
        scores[:, 0] = -torch.inf  # padding
        expected = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        assert torch.equal(ids, expected)
        torch.testing.assert_close(values, scores.gather(1, expected))


@pytest.mark.parametrize("variant", ["base", "soft", "mini"])
def test_variants_run_with_uni100_protocol(ml1m_slice, fast_settings, variant):
    """Each variant trains under LISA's protocol (100 sampled negatives): its loss falls, and
    the evaluation reports that protocol's metrics."""
    from recbole_pq.pipeline import setup

    config, (train, valid, test), _, trainer = setup(
        "SASRecLISA", "ml-1m", config_file_list=["properties/protocol/uni100.yaml"],
        config_dict={**fast_settings, "data_path": str(ml1m_slice), "lisa_variant": variant, "epochs": 3,
                     "train_batch_size": 8, "lisa_W": 16, "lisa_seq_W": 8, "loss_type": "BCE", "neg_samples": 16,
                     "scorer": "default" if variant == "soft" else "pqtopk"})
    trainer.fit(train, valid, saved=False)
    losses = [trainer.train_loss_dict[epoch] for epoch in range(3)]
    assert losses[2] < losses[0], losses
    result = trainer.evaluate(test, load_best_model=False)
    assert set(result) == {"hit@5", "hit@10", "ndcg@5", "ndcg@10"}
    assert result["hit@10"] >= result["hit@5"] and result["ndcg@10"] >= result["ndcg@5"]


@pytest.mark.parametrize("overrides,match", [
    ({"lisa_variant": "tiny"}, "lisa_variant='tiny'"),
    ({"lisa_W": 65536, "lisa_B": 64}, r"LISA histograms need about .* GiB .*B=64 x W=65536"),
    ({"lisa_variant": "soft", "scorer": "pqtopk"}, "needs compressed items, but lisa_variant=soft scores full item embeddings"),
    ({"lisa_decay": -1.0}, "lisa_decay=-1.0"),
    ({"lisa_codes": "kmeans"}, r"lisa_codes='kmeans' is not supported; use one of \['learned', 'svd', 'svd_pq', 'svd_opq', 'bpr', 'qr', 'random'\]"),
    ({"lisa_W": 1}, "lisa_B/lisa_W=8/1"),
])
def test_bad_lisa_config(ml1m_slice, fast_settings, overrides, match):
    with pytest.raises(ConfigError, match=match):
        setup("SASRecLISA", "ml-1m", config_dict={**fast_settings, "data_path": str(ml1m_slice), **overrides})


def test_lisa_codes_benchmark_measures_churn_and_collapse(tmp_path):
    """benchmarks/lisa_codes.py: code_stats by hand, then a short real run on ml-100k in
    which learned codes move and svd codes, assigned before training, never do."""
    import json
    import sys

    sys.path.insert(0, str(recbole_pq.data.paths.PROJECT_ROOT))
    from benchmarks.lisa_codes import code_stats, main

    before = torch.tensor([[0, 1], [0, 2], [1, 2], [0, 0]])
    after = torch.tensor([[0, 1], [0, 3], [1, 2], [2, 0]])
    assert code_stats(after, before) == {"changed_share": 0.5, "top_codeword_share": 0.5}
    assert code_stats(before, None) == {"changed_share": None, "top_codeword_share": 0.75}

    out = tmp_path / "lisa_codes.json"
    main(["--epochs", "2", "--codes", "learned", "svd", "--max-seq-length", "20", "--json", str(out)])
    rows = {(r["lisa_codes"], r["epoch"]): r for r in json.loads(out.read_text())}
    assert set(rows) == {("learned", 1), ("learned", 2), ("svd", 1), ("svd", 2)}
    assert rows[("svd", 2)]["changed_share"] == 0.0 and rows[("learned", 2)]["changed_share"] > 0.1
    assert all(0 <= r["valid_ndcg@10"] <= r["valid_hit@10"] <= 1 for r in rows.values())
