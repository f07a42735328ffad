"""The three scorers return the same top-k as a float64 reference on random models."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_pq.errors import ConfigError
from recbole_pq.items.kernels import prune, scan
from recbole_pq.items.scoring import SCORERS, make_scorer
from recbole_pq.items.sub_item_table import ItemCodeEmbedding


def _reference_topk(query, layer, k):
    scores = query.double() @ layer.reconstruct().double().T
    scores[:, 0] = float("-inf")
    return scores, torch.topk(scores, k, dim=1)


def assert_same_topk(values, ids, reference_scores, ref_values, tol=1e-4):
    """Same ids as the reference, except where reference scores tie within float error."""
    torch.testing.assert_close(values.double(), ref_values, rtol=0, atol=tol)
    got = torch.gather(reference_scores, 1, ids)  # reference score of each returned id
    torch.testing.assert_close(got, ref_values, rtol=0, atol=tol)
    assert (ids != 0).all()
    for row in ids:
        assert len(set(row.tolist())) == len(row)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300), m=st.sampled_from([1, 2, 4, 8]), b=st.integers(2, 64),
       batch=st.integers(1, 6), k_frac=st.floats(0, 1), chunk=st.integers(1, 97), seed=st.integers(0, 10**6))
def test_scorers_agree_with_reference(n, m, b, batch, k_frac, chunk, seed):
    torch.manual_seed(seed)
    codes = np.random.default_rng(seed).integers(0, b, size=(n + 1, m))
    layer = ItemCodeEmbedding(codes, b, 8 * m, init_std=1.0)
    query = torch.randn(batch, 8 * m)
    k = 1 + int(k_frac * (n - 1))
    ref_scores, (ref_values, ref_ids) = _reference_topk(query, layer, k)
    variants = [(name, "auto") for name in SCORERS] + [("pqtopk", "torch")]
    if scan.available():
        variants.append(("pqtopk", "numba"))
    for name, backend in variants:
        values, ids = make_scorer(name, chunk_size=chunk, backend=backend).topk(query, layer, k)
        assert values.shape == ids.shape == (batch, k)
        assert_same_topk(values, ids, ref_scores, ref_values)
        full = make_scorer(name, chunk_size=chunk).scores(query, layer)
        torch.testing.assert_close(full.double()[:, 1:], ref_scores[:, 1:], rtol=0, atol=1e-4)


@pytest.mark.skipif(not scan.available(), reason="numba not installed")
@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 20000), m=st.sampled_from([8, 8, 3, 4, 12, 16, 17]), b=st.sampled_from([256, 256, 37, 1024, 32768]),
       batch=st.one_of(st.integers(1, 9), st.sampled_from([12, 32, 33, 70])), k=st.integers(1, 60),
       seed=st.integers(0, 10**6))
def test_fused_kernel_values_identical_to_torch_pqtopk(n, m, b, batch, k, seed):
    """Same float32 additions in the same order: identical top-k values, over many blocks,
    for every kernel (per-user, users-inner and user tiles -- one, several and a padded
    last tile -- m = 8 and the general sums of 8, 4 and 1 rows)."""
    k = min(k, n - 1) if n > 1 else 1
    rng = np.random.default_rng(seed)
    layer = ItemCodeEmbedding(rng.integers(0, b, size=(n, m)), b, 4 * m, init_std=1.0)
    query = torch.randn(batch, 4 * m)
    with torch.no_grad():
        fused = make_scorer("pqtopk", backend="numba").topk(query, layer, k)
        reference = make_scorer("pqtopk", backend="torch", chunk_size=777).topk(query, layer, k)
    torch.testing.assert_close(fused[0], reference[0], rtol=0, atol=0)
    full = make_scorer("pqtopk").scores(query, layer)
    torch.testing.assert_close(torch.gather(full, 1, fused[1]), fused[0], rtol=0, atol=0)
    assert (fused[1] != 0).all()


def test_pqtopk_scores_and_topk_rank_identically():
    torch.manual_seed(0)
    layer = ItemCodeEmbedding(np.random.default_rng(0).integers(0, 16, size=(1001, 4)), 16, 16, init_std=1.0)
    query = torch.randn(5, 16)
    scorer = make_scorer("pqtopk", chunk_size=128)
    values, ids = scorer.topk(query, layer, 50)
    full = scorer.scores(query, layer)
    full[:, 0] = float("-inf")
    torch.testing.assert_close(torch.gather(full, 1, ids), values, rtol=0, atol=0)


@pytest.mark.parametrize("k", [0, -1, 10])
def test_k_must_fit_catalogue(k):
    layer = ItemCodeEmbedding(np.zeros((10, 2), dtype=np.uint8), 4, 8)
    for name in SCORERS:
        with pytest.raises(ConfigError, match=f"k={k}"):
            make_scorer(name).topk(torch.randn(1, 8), layer, k)


def test_unknown_scorer_and_backend():
    with pytest.raises(ConfigError, match="scorer='faster'"):
        make_scorer("faster")
    with pytest.raises(ConfigError, match="pq_backend='gpu'"):
        make_scorer("pqtopk", backend="gpu")


@pytest.mark.skipif(not scan.available(), reason="numba not installed")
@settings(max_examples=15, deadline=None)
@given(n=st.integers(300, 30000), b=st.sampled_from([64, 256]), batch=st.integers(1, 4), k=st.integers(1, 50),
       skew=st.floats(0.0, 5.0), seed=st.integers(0, 10**6))
def test_prune_is_exact(n, b, batch, k, skew, seed):
    """Same top-k as the fused scan, on flat (falls back) and skewed (prunes) tables; b = 256
    takes the packed 8-byte code path."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    layer = ItemCodeEmbedding(rng.integers(0, b, size=(n, 8)), b, 32, init_std=0.1)
    with torch.no_grad():
        layer.sub_item_embeddings[:, :4] += skew * torch.randn(8, 4, 4)  # a few strong sub-items
    query = torch.randn(batch, 32)
    with torch.no_grad():
        pruned = make_scorer("prune").topk(query, layer, k)
        fused = make_scorer("pqtopk", backend="numba").topk(query, layer, k)
    torch.testing.assert_close(pruned[0], fused[0], rtol=0, atol=0)
    torch.testing.assert_close(pruned[1], fused[1], rtol=0, atol=0)  # equal scores: lower id first in both
    full = make_scorer("pqtopk").scores(query, layer)
    torch.testing.assert_close(torch.gather(full, 1, pruned[1]), pruned[0], rtol=0, atol=0)


@pytest.mark.skipif(not scan.available(), reason="numba not installed")
@settings(max_examples=20, deadline=None)
@given(n=st.integers(50, 30000), b=st.integers(2, 4), m=st.sampled_from([2, 8]), batch=st.sampled_from([3, 6, 40]),
       k=st.integers(1, 40), budget=st.sampled_from([0.002, 1.0]), seed=st.integers(0, 10**6))
def test_prune_and_scan_keep_the_lowest_ids_among_equal_scores(n, b, m, batch, k, budget, seed):
    """Few distinct code tuples: many items share their score exactly, so which of them make the
    top-k is decided by id alone; pruning (which meets items out of id order) and the parallel
    scan (whose item ranges' lists are merged; with 40 users, m = 8: user tiles) must both keep
    the lowest ids."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    k = min(k, n - 1)
    layer = ItemCodeEmbedding(rng.integers(0, b, size=(n, m)), b, 4 * m, init_std=1.0)
    query = torch.randn(batch, 4 * m)
    with torch.no_grad():
        scorer = make_scorer("prune")
        scorer.budget = budget
        pruned = scorer.topk(query, layer, k)
        fused = make_scorer("pqtopk", backend="numba").topk(query, layer, k)
        full = make_scorer("pqtopk").scores(query, layer)
    full[:, 0] = float("-inf")
    order = np.lexsort((np.arange(n)[None, :].repeat(batch, 0), -full.numpy()), axis=1)[:, :k]
    for values, ids in (pruned, fused):
        np.testing.assert_array_equal(ids.numpy(), order)
        torch.testing.assert_close(values, torch.gather(full, 1, ids), rtol=0, atol=0)


@pytest.mark.skipif(not scan.available(), reason="numba not installed")
def test_prune_scores_few_items_on_skewed_tables_and_backs_off_on_flat_ones():
    rng = np.random.default_rng(0)
    layer = ItemCodeEmbedding(rng.integers(0, 256, size=(100000, 8)), 256, 64, init_std=1.0)
    scorer = make_scorer("prune")
    scorer.budget = 0.05
    skipped = scorer.SKIPPED
    with torch.no_grad():
        reference = make_scorer("pqtopk", backend="numba")
        for expected in ([-1, -1, -1], [skipped, -1, -1], [skipped, skipped, -1], [skipped] * 3, [skipped, -1, -1]):
            query = torch.randn(3, 64)  # flat random tables: every attempt gives up, skips double
            values, ids = scorer.topk(query, layer, 10)
            assert scorer.last_scored.tolist() == expected
            torch.testing.assert_close(ids, reference.topk(query, layer, 10)[1], rtol=0, atol=0)
        layer.sub_item_embeddings.mul_(0.05)
        layer.sub_item_embeddings[:, :3] += 3 * torch.randn(8, 3, 8)
        scorer._skip_left = 0
        for _ in range(2):  # these tables need ~2-8 % of the items; a user who prunes resets the back-off
            query = torch.randn(3, 64)
            values, ids = scorer.topk(query, layer, 10)
            assert ((scorer.last_scored > 0) & (scorer.last_scored < 0.05 * 100000)).all()
            torch.testing.assert_close(ids, reference.topk(query, layer, 10)[1], rtol=0, atol=0)
        assert scorer._skip == 0


@pytest.mark.skipif(not scan.available(), reason="numba not installed")
def test_prune_looks_past_a_flat_step():
    """Split 0's bound falls a little, then a lot; split 1's falls steadily, each step a bit
    more than split 0's first.  Taking the largest next drop walks split 1 (five lists, 40
    scorings); the steepest drop over a few lists takes split 0's first two (16)."""
    b = 8
    codes = np.array([(i // b, i % b) for i in range(b * b)], dtype=np.uint8)
    split0 = np.array([10, 9.95] + [-10] * 6, dtype=np.float32)
    split1 = (1 - 0.1 * np.arange(b)).astype(np.float32)
    sub_scores = np.stack([split0, split1])[None]
    postings = prune.posting_lists(codes, b, 1)
    reference = scan.fused_topk(sub_scores, codes, 8)
    scorings = {}
    for lookahead in (1, 32):
        values, ids, scored = prune.pruned_topk(sub_scores, codes, 8, postings, budget_fraction=1.0,
                                                     lookahead=lookahead)
        np.testing.assert_array_equal(ids, reference[1])
        np.testing.assert_array_equal(values, reference[0])
        scorings[lookahead] = int(scored[0])
    assert scorings == {1: 40, 32: 16}


@pytest.mark.skipif(not scan.available(), reason="numba not installed")
@settings(max_examples=15, deadline=None)
@given(n=st.integers(100, 20000), n_parts=st.integers(1, 5), k=st.integers(1, 30), lookahead=st.sampled_from([1, 4, 32]),
       skew=st.floats(0.5, 5.0), seed=st.integers(0, 10**6))
def test_prune_is_exact_with_item_ranges_sharing_thresholds(n, n_parts, k, lookahead, skew, seed):
    """Ranges stop and skip at the best k-th score any range has reached (read while the
    others run): still the scan's top-k, equal scores lower id first."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 16, size=(n, 4)).astype(np.uint8)
    sub_scores = rng.standard_normal((3, 4, 16)).astype(np.float32)
    sub_scores[:, :, :2] += skew  # a few strong sub-items: pruning stops early
    sub_scores = np.round(sub_scores, 1)  # many equal scores
    k = min(k, n - 1)
    postings = prune.posting_lists(codes, 16, n_parts)
    values, ids, _ = prune.pruned_topk(sub_scores, codes, k, postings, budget_fraction=1.0, lookahead=lookahead)
    reference = scan.fused_topk(sub_scores, codes, k)
    np.testing.assert_array_equal(ids, reference[1])
    np.testing.assert_array_equal(values, reference[0])


def test_best_k_merges_candidate_lists_lower_id_first_among_equal_scores():
    # two item ranges' top-3 lists, equal scores stored out of id order inside each list
    values = np.array([[2.0, 5.0, 2.0, 5.0, 2.0, 1.0]], dtype=np.float32)
    ids = np.array([[7, 9, 3, 12, 11, 20]])
    best_values, best_ids = scan.best_k(values, ids, 4)
    np.testing.assert_array_equal(best_ids, [[9, 12, 3, 7]])
    np.testing.assert_array_equal(best_values, [[5.0, 5.0, 2.0, 2.0]])


@pytest.mark.parametrize("n_parts", [1, 2, 3])
def test_posting_lists_group_each_ranges_items_by_code(n_parts):
    codes = np.array([[2, 0], [0, 1], [2, 1], [1, 0], [0, 0]], dtype=np.uint8)
    items, item_codes, offsets = prune.posting_lists(codes, 3, n_parts)
    part = -(-len(codes) // n_parts)
    for p in range(n_parts):
        in_range = (np.arange(len(codes)) >= p * part) & (np.arange(len(codes)) < (p + 1) * part)
        for split in range(2):
            for code in range(3):
                lo, hi = offsets[p, split, code], offsets[p, split, code + 1]
                group = items[split, lo:hi]
                assert sorted(group.tolist()) == np.flatnonzero(in_range & (codes[:, split] == code)).tolist()
                np.testing.assert_array_equal(item_codes[split, lo:hi], codes[group])


@pytest.mark.parametrize("k", [2, 8, 20])
@pytest.mark.parametrize("m, batch", [(2, 4), (8, 6), (8, 40)])  # (8, 40): two user tiles, the second padded
def test_equal_scores_are_listed_lower_id_first_by_every_scorer(k, m, batch):
    """Items i and i + 20 share their codes, hence their scores: every scorer lists each
    such pair lower id first, so rankings (and metrics) agree exactly across scorers."""
    torch.manual_seed(1)
    codes = np.stack([(np.arange(41) * (2 * s + 1)) % 20 for s in range(m)], axis=1)
    layer = ItemCodeEmbedding(codes, 20, 8 * m, init_std=1.0)
    query = torch.randn(batch, 8 * m)
    expected = None
    variants = [(name, "auto") for name in SCORERS] + [("pqtopk", "torch")]
    for name, backend in variants:
        with torch.no_grad():
            values, ids = make_scorer(name, chunk_size=7, backend=backend).topk(query, layer, k)
        pairs = ids.view(batch, k // 2, 2)
        assert (pairs[..., 0] + 20 == pairs[..., 1]).all(), (name, ids)
        if expected is None:
            expected = ids
        assert torch.equal(ids, expected), name


@pytest.mark.skipif(not scan.available(), reason="numba not installed")
@pytest.mark.parametrize("batch", [1, 3, 40])
def test_ranges_handed_out_one_by_one_give_the_static_split_result(batch, monkeypatch):
    rng = np.random.default_rng(batch)
    codes = rng.integers(0, 256, size=(50_000, 8)).astype(np.uint8)
    sub_scores = rng.standard_normal((batch, 8, 256)).astype(np.float32)
    balanced = scan.fused_topk(sub_scores, codes, 10)
    monkeypatch.setattr(scan, "PARALLEL_CHUNK", 0)
    static = scan.fused_topk(sub_scores, codes, 10)
    assert np.array_equal(balanced[0], static[0]) and np.array_equal(balanced[1], static[1])


def test_passive_wait_setting_does_not_leak_to_child_processes():
    import os
    import subprocess
    import sys

    code = ("import os; import recbole_pq.items.kernels.scan as k; k._start_threads_waiting_passively(); "
            "print('OMP_WAIT_POLICY' in os.environ)")
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_numba_thread_pool_leaves_torch_thread_count_alone():
    """Starting numba's OpenMP pool (on import) set the process's OpenMP thread count to every
    core: training run with OMP_NUM_THREADS=1 then ran two threads, one of them spinning."""
    import os
    import subprocess
    import sys

    pytest.importorskip("numba")
    code = ("import numpy as np, torch, recbole_pq\n"
            "from recbole_pq.items.scoring import make_scorer\n"
            "from recbole_pq.items.sub_item_table import ItemCodeEmbedding\n"
            "items = ItemCodeEmbedding(np.random.randint(0, 256, (50000, 8)).astype(np.uint8), 256, 64)\n"
            "make_scorer('pqtopk', 16384, 'numba').topk(torch.randn(4, 64), items, 10)\n"
            "print(torch.get_num_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "1"
