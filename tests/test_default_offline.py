"""The CPU default model: HGA over the offline encoder's region tokens + its global token, and
the ``default-offline`` preset (widths of the weight-free encoders, streaming, gradients)."""

from __future__ import annotations

import pytest
import torch

from wildaffect.face.regions import DEFAULT_REGIONS
from wildaffect.labels import Task
from wildaffect.models.hga import HGA
from wildaffect.models.registry import create_model, get_config

REGIONS = {"a": (0, 1), "b": (2, 3), "c": (4,)}
D, D_OUT = 16, 8


def _hga() -> HGA:
    torch.manual_seed(0)
    return HGA(d_patch=D, d_out=D_OUT, regions=REGIONS, n_heads=2).eval()


def test_trailing_global_token_is_the_global_context_and_a_key():
    hga = _hga()
    tokens = torch.randn(2, 3, len(REGIONS) + 1, D)  # (B, T, R + 1, D)
    out = hga.forward_tokens(tokens)
    # Reference from the parts: MHCA(local queries, all R + 1 tokens), MLP([att, local, g]).
    flat = tokens.reshape(6, len(REGIONS) + 1, D)
    local, glob = flat[:, :3], flat[:, 3]
    attended = hga.cross_attention(local, flat)
    expected = hga.fuse(torch.cat([attended, local, glob[:, None].expand_as(local)], dim=-1))
    torch.testing.assert_close(out, expected.reshape(2, 3, len(REGIONS), D_OUT))
    changed = tokens.clone()
    changed[..., -1, :] += 1.0
    moved = (hga.forward_tokens(changed) - out).abs().amax(dim=-1)  # (B, T, R)
    assert (moved > 1e-4).all(), "every region token must see the global token"


def test_without_global_token_the_context_is_the_region_mean():
    hga = _hga()
    tokens = torch.randn(1, 2, len(REGIONS), D)
    flat = tokens.reshape(2, len(REGIONS), D)
    attended = hga.cross_attention(flat, flat)
    mean = flat.mean(dim=1, keepdim=True).expand_as(flat)
    expected = hga.fuse(torch.cat([attended, flat, mean], dim=-1)).reshape(1, 2, 3, D_OUT)
    torch.testing.assert_close(hga.forward_tokens(tokens), expected)


def test_no_face_frames_ignore_their_tokens_and_wrong_counts_fail():
    hga = _hga()
    tokens = torch.randn(1, 2, len(REGIONS) + 1, D)
    face_mask = torch.tensor([[True, False]])
    tokens[0, 1] = float("nan")
    out = hga.forward_tokens(tokens, face_mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 1], hga.no_face)
    with pytest.raises(ValueError, match="optionally \\+ 1 global token"):
        hga.forward_tokens(torch.randn(1, 2, len(REGIONS) + 2, D))


def test_default_offline_widths_are_the_offline_encoders():
    from wildaffect.encoders.registry import create_encoder

    cfg = get_config("default-offline")
    visual = create_encoder(cfg.visual_encoder)
    assert cfg.d_visual == visual.token_dim
    assert visual.num_tokens == len(DEFAULT_REGIONS) + 1  # regions + trailing global token
    assert cfg.d_audio == create_encoder(cfg.audio_encoder).feature_dim
    assert cfg.visual_input == "regions" and cfg.spatial == "hga"
    assert cfg.temporal == "ag_ssm" and cfg.streamable
    assert set(cfg.tasks) == {Task.AU, Task.EXPR, Task.VA}


def test_default_offline_learns_from_every_input_and_streams():
    torch.manual_seed(0)
    model = create_model(
        "default-offline", d_visual=16, d_audio=8, d_token=8, d_model=16, d_inner=8,
        d_state=4, hga_heads=2, dropout=0.0,
    )
    b, t, k = 2, 6, len(DEFAULT_REGIONS) + 1
    batch = {
        "visual": torch.randn(b, t, k, 16),
        "audio": torch.randn(b, t, 8),
        "face_mask": torch.tensor([[True] * t, [True, True, False, True, True, True]]),
    }
    model.train()
    out = model(batch).outputs
    sum(y.sum() for y in out.values()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    model.eval()
    whole = model(batch).outputs[Task.EXPR]
    first = model({key: value[:, :2] for key, value in batch.items()})
    second = model({key: value[:, 2:] for key, value in batch.items()}, state=first.state)
    chunked = torch.cat([first.outputs[Task.EXPR], second.outputs[Task.EXPR]], dim=1)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    batch["visual"][:, :, -1] += 1.0  # the global token reaches the outputs
    assert not torch.allclose(model(batch).outputs[Task.EXPR], whole)
