"""Asymmetric (visual -> audio) cross-attention and modality dropout."""

from __future__ import annotations

import pytest
import torch

from wildaffect.models.layers.cross_attention import (
    AsymmetricCrossAttention,
    ModalityDropout,
    band_mask,
)

FP32 = {"rtol": 6e-4, "atol": 2e-5}


def _inputs(batch: int = 2, length: int = 12, dv: int = 10, da: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    return torch.randn(batch, length, dv), torch.randn(batch, length, da)


def test_band_mask():
    expected = torch.tensor(
        [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(band_mask(4, 1), expected)
    assert torch.equal(band_mask(3, 0), torch.eye(3, dtype=torch.bool))
    assert band_mask(3, None).all()


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
@pytest.mark.parametrize("window", [0, 2])
def test_window_is_respected(impl, window):
    visual, audio = _inputs()
    module = AsymmetricCrossAttention(10, 6, 16, n_heads=4, window=window, impl=impl).eval()
    base = module(visual, audio)
    t = 6
    outside = audio.clone()
    outside[:, : t - window] += 5 * torch.randn_like(outside[:, : t - window])
    outside[:, t + window + 1 :] += 5 * torch.randn_like(outside[:, t + window + 1 :])
    torch.testing.assert_close(module(visual, outside)[:, t], base[:, t], rtol=0, atol=1e-6)
    inside = audio.clone()
    inside[:, t + window] += 5.0  # the edge of the window is in reach
    assert not torch.allclose(module(visual, inside)[:, t], base[:, t], atol=1e-4)


def test_global_variant_sees_every_frame():
    visual, audio = _inputs()
    module = AsymmetricCrossAttention(10, 6, 16, n_heads=4, window=None).eval()
    base = module(visual, audio)
    changed = audio.clone()
    changed[:, -1] += 5.0
    assert not torch.allclose(module(visual, changed)[:, 0], base[:, 0], atol=1e-4)


@pytest.mark.parametrize("window", [None, 0, 1, 3, 20])
def test_sdpa_window_gather_matches_dense_reference(window):
    """The O(L w) gathered path against the dense (L, L) banded softmax: outputs and grads."""
    visual, audio = _inputs(length=11)
    audio_mask = torch.rand(2, 11) > 0.4
    audio_mask[1, 3:9] = False  # a gap wider than small windows: rows with no audio in reach
    visual_mask = torch.rand(2, 11) > 0.2
    module = AsymmetricCrossAttention(10, 6, 16, n_heads=2, window=window)
    results = []
    for impl in ("sdpa", "reference"):
        module.impl = impl
        module.zero_grad()
        v, a = visual.clone().requires_grad_(), audio.clone().requires_grad_()
        out = module(v, a, audio_mask, visual_mask)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads = [p.grad.clone() for p in module.parameters()]
        results.append((out.detach(), v.grad, a.grad, grads))
    (fast, slow) = results
    for got, want in zip(fast[:3], slow[:3]):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, **FP32)
    for got, want in zip(fast[3], slow[3]):
        torch.testing.assert_close(got, want, **FP32)


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
@pytest.mark.parametrize("window", [None, 2])
def test_missing_audio_gives_zeros_and_finite_grads(impl, window):
    visual, audio = _inputs()
    visual.requires_grad_()
    audio.requires_grad_()
    module = AsymmetricCrossAttention(10, 6, 16, n_heads=4, window=window, impl=impl)
    audio_mask = torch.ones(2, 12, dtype=torch.bool)
    audio_mask[0] = False  # sample 0 has no audio at all
    visual_mask = torch.ones(2, 12, dtype=torch.bool)
    visual_mask[1, 4] = False  # sample 1, frame 4: no face
    out = module(visual, audio, audio_mask, visual_mask)
    assert torch.all(out[0] == 0)
    assert torch.all(out[1, 4] == 0)
    assert torch.all(out[1, 5] != 0)
    out.square().sum().backward()
    assert torch.isfinite(visual.grad).all() and torch.isfinite(audio.grad).all()
    assert torch.all(audio.grad[0] == 0)
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


def test_rejects_unaligned_streams():
    module = AsymmetricCrossAttention(10, 6, 16, n_heads=4)
    with pytest.raises(ValueError, match="frame-aligned"):
        module(torch.randn(1, 5, 10), torch.randn(1, 6, 6))
    with pytest.raises(ValueError, match="window"):
        AsymmetricCrossAttention(10, 6, 16, window=-1)


def test_modality_dropout_never_drops_both():
    torch.manual_seed(0)
    dropout = ModalityDropout(p_visual=0.5, p_audio=0.5).train()
    visual_mask = torch.ones(4000, 3, dtype=torch.bool)
    audio_mask = torch.ones(4000, 3, dtype=torch.bool)
    new_visual, new_audio = dropout(visual_mask, audio_mask)
    dropped_visual = ~new_visual.any(dim=1)
    dropped_audio = ~new_audio.any(dim=1)
    assert not (dropped_visual & dropped_audio).any()
    assert (dropped_visual | dropped_audio).all()  # p_visual + p_audio = 1
    # whole samples are dropped, never single frames
    assert torch.equal(new_visual.all(dim=1), new_visual.any(dim=1))
    assert abs(dropped_visual.float().mean().item() - 0.5) < 0.05


def test_modality_dropout_rates_and_eval_identity():
    torch.manual_seed(0)
    dropout = ModalityDropout(p_visual=0.2, p_audio=0.1)
    masks = torch.ones(5000, 2, dtype=torch.bool), torch.ones(5000, 2, dtype=torch.bool)
    new_visual, new_audio = dropout.train()(*masks)
    assert abs((~new_visual.any(1)).float().mean().item() - 0.2) < 0.03
    assert abs((~new_audio.any(1)).float().mean().item() - 0.1) < 0.03
    same_visual, same_audio = dropout.eval()(*masks)
    assert same_visual.all() and same_audio.all()


def test_modality_dropout_keeps_the_only_modality():
    dropout = ModalityDropout(p_visual=1.0, p_audio=0.0).train()
    visual_mask = torch.tensor([[True, False, True], [True, True, True]])
    audio_mask = torch.tensor([[False, False, False], [True, False, False]])
    new_visual, new_audio = dropout(visual_mask, audio_mask)
    assert torch.equal(new_visual[0], visual_mask[0])  # sample 0 has no audio: keep its face
    assert not new_visual[1].any()
    assert torch.equal(new_audio, audio_mask)
    with pytest.raises(ValueError):
        ModalityDropout(0.7, 0.5)
