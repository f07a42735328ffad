"""UniformDropout and speed_up_blocks: the same maths as RecBole's blocks, faster."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from recbole.model.layers import FeedForward, TransformerEncoder
from torch import nn

from recbole_pq.layers.fast_blocks import UniformDropout, speed_up_blocks
from recbole_pq.layers.sasrec_encoder import SASRecEncoder


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_uniform_dropout_keeps_1_minus_p_scaled(p):
    torch.manual_seed(0)
    x = torch.rand(400_000) + 0.5  # no zeros in the input, so zeros in the output are dropped
    drop = UniformDropout(p).train()
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005  # 400K draws: sd ~ 0.0008
    p = round(p * 2**15) / 2**15  # the rate is applied to within 2^-15
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    x.requires_grad_(True)
    torch.manual_seed(1)
    y = drop(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() / (1 - p))


@pytest.mark.parametrize("shape", [(7,), (3, 5, 7), (128, 2, 9, 9)])
def test_dropout_mask_bits_are_uniform_for_any_shape(shape):
    """Both 15-bit halves of each random int32 are used: every element is kept with 1 - p,
    odd sizes included, and neighbours (which share an int32) are independent."""
    from recbole_pq.layers.fast_blocks import keep_mask

    torch.manual_seed(3)
    x = torch.empty(shape)
    keeps = torch.stack([keep_mask(x, 0.3)[0] for _ in range(4000)]).float()  # (draws, *shape)
    assert keeps.shape[1:] == x.shape
    assert (keeps.mean(0) - 0.7).abs().max() < 0.04  # per element; sd ~ 0.007
    flat = keeps.flatten(1)
    if flat.shape[1] > 1:  # P(both kept) of the two halves of one int32 = 0.49
        assert abs((flat[:, 0] * flat[:, 1]).mean().item() - 0.49) < 0.04


def test_uniform_dropout_edges_and_eval():
    x = torch.randn(64, 8)
    assert torch.equal(UniformDropout(0.5).eval()(x), x)
    assert torch.equal(UniformDropout(0.0).train()(x), x)
    assert torch.equal(UniformDropout(1.0).train()(x), torch.zeros_like(x))


def test_uniform_dropout_is_reproducible_under_the_global_seed():
    x = torch.randn(1000)
    drop = UniformDropout(0.5).train()
    torch.manual_seed(7)
    first = drop(x)
    torch.manual_seed(7)
    assert torch.equal(drop(x), first)


def _config(**extra):
    return {"hidden_size": 32, "MAX_ITEM_LIST_LENGTH": 12, "n_layers": 2, "n_heads": 2, "inner_size": 64,
            "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.3, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
            **extra}


def test_encoder_blocks_are_swapped_and_compute_the_same_function():
    torch.manual_seed(0)
    fast = SASRecEncoder(_config()).eval()
    assert not any(type(m) is nn.Dropout for m in fast.modules())
    assert sorted({m.p for m in fast.modules() if isinstance(m, UniformDropout)}) == [0.3, 0.5]
    assert all(ff.intermediate_act_fn is F.gelu for ff in fast.modules() if isinstance(ff, FeedForward))

    # RecBole's own blocks with the same weights give the same states in eval mode.
    reference = TransformerEncoder(n_layers=2, n_heads=2, hidden_size=32, inner_size=64, hidden_dropout_prob=0.5,
                                   attn_dropout_prob=0.3, hidden_act="gelu", layer_norm_eps=1e-12).eval()
    reference.load_state_dict(fast.trm_encoder.state_dict())
    hidden = torch.randn(3, 12, 32)
    mask = torch.zeros(3, 1, 12, 12)
    expected = reference(hidden, mask, output_all_encoded_layers=False)[-1]
    got = fast.trm_encoder(hidden, mask, output_all_encoded_layers=False)[-1]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_other_activations_are_left_alone():
    encoder = speed_up_blocks(SASRecEncoder(_config(hidden_act="relu")))
    acts = {ff.intermediate_act_fn for ff in encoder.modules() if isinstance(ff, FeedForward)}
    assert acts == {F.relu}
