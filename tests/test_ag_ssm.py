"""AG-SSM block and stack: streaming, causality, bidirectionality, audio guidance, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from wildaffect.models.ag_ssm import AGSSM, AGSSMBlock

D_MODEL, D_AUDIO, D_STATE, D_INNER = 12, 6, 4, 16
RTOL, ATOL = 6e-4, 2e-3


def make_block(**kwargs) -> AGSSMBlock:
    torch.manual_seed(0)
    block = AGSSMBlock(D_MODEL, D_AUDIO, d_state=D_STATE, d_inner=D_INNER, **kwargs)
    with torch.no_grad():  # a non-zero no-audio vector, as after training
        if block.audio_guided:
            block.no_audio.normal_()
    return block.eval()


def make_inputs(batch=2, length=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, D_MODEL, generator=g)
    audio = torch.randn(batch, length, D_AUDIO, generator=g)
    return x, audio


def test_shapes_state_and_init():
    block = make_block()
    x, audio = make_inputs()
    y, (tail, ssm) = block(x, audio)
    assert y.shape == x.shape
    assert tail.shape == (2, D_INNER, 3) and ssm.shape == (2, D_INNER, D_STATE)
    branch = block.forward_branch
    # S4D-real A and unit D, both excluded from weight decay.
    assert torch.equal(-torch.exp(branch.A_log[0]), -torch.arange(1.0, D_STATE + 1))
    assert torch.equal(branch.D, torch.ones(D_INNER))
    assert branch.A_log._no_weight_decay and branch.D._no_weight_decay
    # Mamba's delta init: softplus(bias) in [1e-3, 1e-1].
    dt = F.softplus(branch.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 1e-1 * 1.001
    assert branch.dt_rank == math.ceil(D_MODEL / 16)


@pytest.mark.parametrize("audio_guided", [True, False])
def test_streaming_with_carried_state_equals_one_pass(audio_guided):
    block = make_block(audio_guided=audio_guided)
    x, audio = make_inputs(length=23)
    mask = torch.rand(2, 23, generator=torch.Generator().manual_seed(2)) > 0.3
    full, (full_tail, full_ssm) = block(x, audio, mask)
    state, pieces = None, []
    for lo, hi in [(0, 2), (2, 3), (3, 11), (11, 23)]:  # pieces shorter than the conv tail too
        y, state = block(x[:, lo:hi], audio[:, lo:hi], mask[:, lo:hi], state)
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(state[0], full_tail)
    torch.testing.assert_close(state[1], full_ssm, rtol=RTOL, atol=ATOL)


def test_stack_streaming_equals_one_pass():
    torch.manual_seed(0)
    model = AGSSM(D_MODEL, D_AUDIO, n_layers=2, d_state=D_STATE, d_inner=D_INNER).eval()
    x, audio = make_inputs(length=15)
    full, _ = model(x, audio)
    first, state = model(x[:, :6], audio[:, :6])
    second, _ = model(x[:, 6:], audio[:, 6:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 1), full, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("audio_guided", [True, False])
def test_unidirectional_block_is_causal(audio_guided):
    block = make_block(audio_guided=audio_guided)
    x, audio = make_inputs(length=16)
    y, _ = block(x, audio)
    x2, audio2 = x.clone(), audio.clone()
    x2[:, 9:] += torch.randn_like(x2[:, 9:])
    audio2[:, 9:] += torch.randn_like(audio2[:, 9:])
    y2, _ = block(x2, audio2)
    torch.testing.assert_close(y2[:, :9], y[:, :9])
    assert not torch.allclose(y2[:, 9:], y[:, 9:])


def test_bidirectional_is_forward_plus_flipped_backward_branch():
    block = make_block(bidirectional=True)
    x, audio = make_inputs(length=13)
    mask = torch.ones(2, 13, dtype=torch.bool)
    mask[1, 5:] = False
    y, state = block(x, audio, mask)
    assert state is None
    x_in, z, a = block.mix_inputs(x, audio, mask)
    y_fwd, _ = block.forward_branch(x_in, z, a)
    y_bwd, _ = block.backward_branch(x_in.flip(1), z.flip(1), a.flip(1))
    expected = x + block.out_proj(y_fwd + y_bwd.flip(1))
    torch.testing.assert_close(y, expected)
    # The branches own separate parameters, and the block is no longer causal.
    assert block.backward_branch.A_log is not block.forward_branch.A_log
    x2 = x.clone()
    x2[:, -1] += torch.randn(2, D_MODEL)  # not a constant shift: LayerNorm would remove it
    y2, _ = block(x2, audio, mask)
    assert (y2[:, 0] - y[:, 0]).abs().max() > 0  # the last frame reaches the first one


def test_bidirectional_block_refuses_streaming_state():
    block = make_block(bidirectional=True)
    x, audio = make_inputs(length=4)
    _, state = make_block()(x, audio)
    with pytest.raises(ValueError, match="bidirectional"):
        block(x, audio, state=state)


def test_audio_changes_delta_and_outputs():
    block = make_block()
    x, audio = make_inputs(length=10)
    y, _ = block(x, audio)
    y2, _ = block(x, audio + torch.randn_like(audio))
    assert not torch.allclose(y, y2, atol=1e-4)
    # Delta itself (the "audio-guided temporal gate") depends on the audio.
    x_in, _, a = block.mix_inputs(x, audio, None)
    x_conv = torch.randn_like(x_in)
    delta, _, _ = block.forward_branch.selection_params(x_conv, a)
    delta2, _, _ = block.forward_branch.selection_params(x_conv, a + 1.0)
    assert not torch.allclose(delta, delta2)


def test_missing_audio_uses_learned_embedding_and_stays_finite():
    block = make_block()
    x, audio = make_inputs(length=10)
    none_mask = torch.zeros(2, 10, dtype=torch.bool)
    y_none, _ = block(x, None)
    y_masked, _ = block(x, audio, none_mask)
    y_nan_masked, _ = block(x, torch.full_like(audio, float("nan")), none_mask)
    assert torch.isfinite(y_none).all()
    torch.testing.assert_close(y_masked, y_none)
    torch.testing.assert_close(y_nan_masked, y_none)  # masked audio is never read
    y_embed, _ = block(x, block.no_audio.detach().expand(2, 10, D_AUDIO).clone())
    torch.testing.assert_close(y_embed, y_none)
    # Partial mask: only the frames without audio use the embedding.
    partial = torch.ones(2, 10, dtype=torch.bool)
    partial[:, 4:] = False
    filled = block.fill_audio(audio, partial, x)
    torch.testing.assert_close(filled[:, :4], audio[:, :4])
    torch.testing.assert_close(filled[:, 4:], block.no_audio.detach().expand(2, 6, D_AUDIO))


def test_plain_mamba_ignores_audio():
    block = make_block(audio_guided=False)
    x, audio = make_inputs(length=10)
    y_audio, _ = block(x, audio)
    y_none, _ = block(x, None)
    torch.testing.assert_close(y_audio, y_none, rtol=0, atol=0)
    assert not any("audio" in name or "gate" in name for name, _ in block.named_parameters())


@pytest.mark.parametrize("kwargs", [{}, {"bidirectional": True}, {"audio_guided": False}])
def test_every_parameter_gets_a_gradient(kwargs):
    torch.manual_seed(0)
    model = AGSSM(
        D_MODEL, D_AUDIO, n_layers=2, d_state=D_STATE, d_inner=D_INNER, dropout=0.1, **kwargs
    ).train()
    x, audio = make_inputs(length=9)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, 6:] = False  # exercise the no-audio embedding too
    y, _ = model(x, audio, mask)
    y.square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_audio_shape_mismatch_is_rejected():
    block = make_block()
    x, _ = make_inputs(length=5)
    with pytest.raises(ValueError, match="audio must be"):
        block(x, torch.randn(2, 4, D_AUDIO))


def test_bfloat16_autocast_close_to_float32():
    block = make_block(bidirectional=True)
    x, audio = make_inputs(length=12)
    y32, _ = block(x, audio)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16, _ = block(x, audio)
    assert torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("audio_guided", [True, False])
def test_padded_batch_gives_each_sequence_its_unpadded_output(audio_guided):
    """Right padding (``valid`` False) stays out of both branches' states: every real frame of a
    padded batch gets what its sequence alone gets; without ``valid`` the backward branch would
    start in the padding."""
    torch.manual_seed(0)
    stack = AGSSM(D_MODEL, D_AUDIO, 2, d_state=D_STATE, d_inner=D_INNER, bidirectional=True,
                  audio_guided=audio_guided).eval()
    x, audio = make_inputs(batch=2, length=11)
    lengths = (11, 6)
    valid = torch.arange(11)[None, :] < torch.tensor(lengths)[:, None]  # (B, L)
    padded_x = torch.where(valid[..., None], x, torch.zeros(()))
    padded_audio = torch.where(valid[..., None], audio, torch.zeros(()))
    y, _ = stack(padded_x, padded_audio, valid=valid)
    for i, n in enumerate(lengths):
        alone, _ = stack(x[i : i + 1, :n], audio[i : i + 1, :n])
        torch.testing.assert_close(y[i : i + 1, :n], alone, rtol=1e-5, atol=1e-6)
    unmasked, _ = stack(padded_x, padded_audio)
    assert (unmasked[1, :6] - y[1, :6]).abs().max() > 1e-4
