"""The shared pieces of the seed-003 presets against values worked out by hand: VA grid and its
soft labels, polar VA, the V-NAW frame weights, attention-statistics pooling, the GRU block,
gated / mixture-of-experts / reliability / six-path fusions."""

from __future__ import annotations

import math

import pytest
import torch

from wildaffect.losses import build_loss, ccc_loss, polar_va_loss, va_grid_loss, vnaw_loss
from wildaffect.models.heads import GridVAHead, polar_head_to_va
from wildaffect.models.layers.fusion import GatedFusion
from wildaffect.models.layers.multistream import (
    DirectedMoEFusion,
    MultiPathCrossAttention,
    ReliabilityFusion,
    directed_pairs,
)
from wildaffect.models.layers.pooling import SegmentStatsPool, attentive_statistics
from wildaffect.models.layers.temporal import GRUTemporal
from wildaffect.models.va_space import (
    GRID_DESCRIPTIONS,
    grid_centres,
    grid_soft_labels,
    polar_to_va,
    va_to_polar,
)

# -- VA grid ----------------------------------------------------------------------------------


def test_grid_centres_are_the_nine_cell_centres_row_major_from_high_arousal():
    c = grid_centres()
    assert c.shape == (9, 2) and len(GRID_DESCRIPTIONS) == 9
    third = 2 / 3
    torch.testing.assert_close(c[0], torch.tensor([-third, third]))  # negative, aroused
    torch.testing.assert_close(c[4], torch.tensor([0.0, 0.0]))  # neutral
    torch.testing.assert_close(c[8], torch.tensor([third, -third]))  # positive, calm
    assert "angry" in GRID_DESCRIPTIONS[0] and "relaxed" in GRID_DESCRIPTIONS[8]


def test_soft_labels_of_the_centre_by_hand():
    # sigma 1/3: 2 sigma^2 = 2/9; squared distances 0 (centre), 4/9 (4 sides), 8/9 (4 corners)
    q = grid_soft_labels(torch.zeros(2), sigma=1 / 3)
    z = 1 + 4 * math.exp(-2) + 4 * math.exp(-4)
    expected = [math.exp(-4), math.exp(-2), math.exp(-4), math.exp(-2), 1.0,
                math.exp(-2), math.exp(-4), math.exp(-2), math.exp(-4)]
    torch.testing.assert_close(q, torch.tensor(expected) / z)


def test_grid_loss_is_ccc_plus_kl_to_the_soft_labels():
    targets = torch.tensor([[[0.0, 0.0], [0.5, -0.2], [-0.9, 0.9]]])
    # A perfect prediction: only the CCC term (0) remains.
    assert va_grid_loss(targets, targets).item() == pytest.approx(0.0, abs=1e-6)
    preds = torch.tensor([[[0.2, 0.1], [0.4, 0.0], [-0.5, 0.6]]])
    q, p = grid_soft_labels(targets), grid_soft_labels(preds)
    kl = (q * (q / p).log()).sum(-1).mean()
    total = va_grid_loss(preds, targets, weight=2.0)
    torch.testing.assert_close(total, ccc_loss(preds, targets) + 2.0 * kl)
    # The farther region costs more than the neighbouring one (distance-aware labels).
    near = va_grid_loss(torch.tensor([[0.6, 0.0]]), torch.tensor([[0.0, 0.0]]), weight=1.0)
    far = va_grid_loss(torch.tensor([[0.6, 0.6]]), torch.tensor([[0.0, 0.0]]), weight=1.0)
    assert far > near


def test_grid_loss_skips_frames_with_an_invalid_dimension():
    targets = torch.tensor([[0.5, 0.5], [-5.0, 0.2]])  # second frame: valence invalid
    preds = torch.tensor([[0.5, 0.5], [0.9, -0.9]])
    grid_only = va_grid_loss(preds, targets) - ccc_loss(preds, targets)
    assert grid_only.item() == pytest.approx(0.0, abs=1e-6)


def test_grid_head_reads_the_region_whose_prompt_matches():
    torch.manual_seed(0)
    head = GridVAHead(4)
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(4))
        head.proj.bias.zero_()
        head.offset.weight.zero_()
        head.offset.bias.zero_()
        head.log_scale.fill_(math.log(100.0))
    prompts = torch.randn(9, 4)
    head.set_prompts(prompts)
    out = head(prompts[2][None, None])  # the frame IS region 2's prompt
    torch.testing.assert_close(out[0, 0], grid_centres()[2], atol=0.05, rtol=0)
    assert head(torch.randn(3, 5, 4) * 10).abs().max() <= 1.0


# -- polar VA ---------------------------------------------------------------------------------


def test_polar_conversions_by_hand():
    angle, intensity = va_to_polar(torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.6, -0.8]]))
    torch.testing.assert_close(angle, torch.tensor([math.pi / 2, math.pi, math.atan2(-0.8, 0.6)]))
    torch.testing.assert_close(intensity, torch.tensor([1.0, 1.0, 1.0]))
    va = polar_to_va(torch.tensor([math.pi / 4]), torch.tensor([math.sqrt(2.0)]))
    torch.testing.assert_close(va, torch.tensor([[1.0, 1.0]]))
    # Head: raw (0, 0) = angle 0, intensity sqrt(2) * sigmoid(0) = 0.7071.
    torch.testing.assert_close(polar_head_to_va(torch.zeros(2)),
                               torch.tensor([math.sqrt(2) / 2, 0.0]))


def test_polar_loss_terms_by_hand():
    preds = torch.tensor([[1.0, 0.0], [0.0, 0.5]])
    targets = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # frame 1: same intensity, 90 degrees apart -> 0 + 1 * (1 - 0) = 1
    # frame 2: same angle, intensity 0.5 vs 1 -> 0.25 + 0 = 0.25
    extra = polar_va_loss(preds, targets, weight=1.0) - ccc_loss(preds, targets)
    assert extra.item() == pytest.approx((1.0 + 0.25) / 2, abs=1e-5)
    origin = torch.zeros(1, 2, requires_grad=True)  # no NaN gradient at the neutral point
    polar_va_loss(origin, torch.tensor([[0.3, 0.4]])).backward()
    assert torch.isfinite(origin.grad).all()


# -- V-NAW ------------------------------------------------------------------------------------


def test_vnaw_weights_frames_by_a_gaussian_of_their_margin():
    logits = torch.tensor([[[2.0, 0.0], [2.0, 0.0]]])  # one clip, two frames
    targets = torch.tensor([[0, 1]])  # frame 2's label disagrees by a margin of 2
    ce = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(2))]
    w = [1.0, math.exp(-2.0)]  # sigma 1: exp(-m^2 / 2)
    w = [x * 2 / sum(w) for x in w]  # mean 1 over the clip's valid frames
    expected = (w[0] * ce[0] + w[1] * ce[1]) / 2
    assert vnaw_loss(logits, targets, sigma=1.0).item() == pytest.approx(expected, rel=1e-5)
    # A very wide Gaussian weights every frame alike: plain cross-entropy.
    plain = sum(ce) / 2
    assert vnaw_loss(logits, targets, sigma=1e4).item() == pytest.approx(plain, rel=1e-5)


def test_vnaw_ignores_invalid_frames_and_weights_each_clip_separately():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 3.0]], [[1.0, 0.0], [1.0, 0.0]]])
    targets = torch.tensor([[0, -1], [0, 0]])  # -1 = EXPR_INVALID
    loss = build_loss("EXPR", "vnaw", sigma=0.5)(logits, targets)
    ce0 = math.log(1 + math.exp(-2))
    ce1 = math.log(1 + math.exp(-1))
    # clip 1: one valid frame, weight 1; clip 2: equal margins, weights 1
    assert loss.item() == pytest.approx((ce0 + 2 * ce1) / 3, rel=1e-5)
    focal = build_loss("EXPR", "vnaw", base="focal", gamma=0.0)(logits, targets)
    assert focal.item() == pytest.approx(loss.item(), rel=1e-5)  # focal with gamma 0 is CE


# -- pooling, GRU, fusion ---------------------------------------------------------------------


def test_attentive_statistics_by_hand():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    mean, std = attentive_statistics(x, torch.zeros(1, 3), mask)  # uniform over valid frames
    assert mean.item() == pytest.approx(2.0) and std.item() == pytest.approx(1.0, abs=1e-4)
    mean, std = attentive_statistics(x, torch.tensor([[0.0, math.log(3.0), 0.0]]), mask)
    # alpha = (1/4, 3/4): mean 2.5, variance 1/4 + 27/4 - 6.25 = 0.75
    assert mean.item() == pytest.approx(2.5)
    assert std.item() == pytest.approx(math.sqrt(0.75), abs=1e-4)
    mean, std = attentive_statistics(x, torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool))
    assert mean.abs().sum() == 0 and std.abs().sum() == 0


def test_segment_pool_gives_each_frame_its_segment_descriptor():
    torch.manual_seed(0)
    pool = SegmentStatsPool(4, segment_len=3)
    x = torch.randn(2, 7, 4)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 3:6] = False  # second segment of sample 1 has no audio
    out, out_mask = pool(x, mask)
    assert out.shape == (2, 7, 4)
    torch.testing.assert_close(out[:, 0], out[:, 2])  # same segment, same descriptor
    assert not torch.allclose(out[0, 0], out[0, 3])
    assert out_mask[1, 3:6].logical_not().all() and out[1, 3:6].abs().sum() == 0
    x2 = x.clone()
    x2[0, 4] += 1.0  # only segment 2 of sample 0 changes
    out2, _ = pool(x2, mask)
    torch.testing.assert_close(out2[0, :3], out[0, :3])
    assert not torch.allclose(out2[0, 3:6], out[0, 3:6])


def test_gru_step_by_hand_and_padding_invariance():
    gru = GRUTemporal(1, bidirectional=False)
    with torch.no_grad():
        for p in gru.parameters():
            p.zero_()
        gru.gru.weight_ih_l0.copy_(torch.tensor([[0.0], [0.0], [1.0]]))  # r, z, n input weights
        gru.proj.weight.fill_(1.0)
    # h0 = 0; r = z = sigmoid(0) = 0.5; n = tanh(x + r * 0) = tanh(x); h1 = (1 - z) n = tanh(x)/2
    x = torch.tensor([[[0.8]]])
    h, _ = gru.gru(x)
    assert h.item() == pytest.approx(math.tanh(0.8) / 2, abs=1e-6)
    torch.manual_seed(0)
    bi = GRUTemporal(4, bidirectional=True).eval()
    seq = torch.randn(1, 5, 4)
    padded = torch.cat([seq, torch.randn(1, 3, 4)], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    torch.testing.assert_close(bi(padded, mask)[:, :5], bi(seq), rtol=1e-5, atol=1e-5)
    assert bi(padded, mask)[:, 5:].abs().sum() == 0


def test_gated_fusion_by_hand():
    fusion = GatedFusion(3)
    x, y = torch.ones(1, 2, 3), torch.full((1, 2, 3), 3.0)
    with torch.no_grad():
        fusion.gate.weight.zero_()
        fusion.gate.bias.zero_()
    torch.testing.assert_close(fusion(x, y), torch.full((1, 2, 3), 2.0))  # g = 1/2
    with torch.no_grad():
        fusion.gate.bias.fill_(50.0)
    torch.testing.assert_close(fusion(x, y), x)  # g = 1: all x


def _streams(names, b=2, t=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.randn(b, t, d, generator=g), torch.ones(b, t, dtype=torch.bool))
            for n in names}


def test_moe_experts_and_missing_streams():
    torch.manual_seed(0)
    names = ("visual", "audio", "behaviour")
    assert len(directed_pairs(names)) == 6
    moe = DirectedMoEFusion(8, names, n_heads=2, window=2).eval()
    streams = _streams(names)
    out = moe(streams)
    assert out.shape == (2, 6, 8) and torch.isfinite(out).all()
    # Without audio or behaviour, only the visual "self" expert is available: output = visual.
    alone = dict(streams)
    for n in ("audio", "behaviour"):
        x, m = streams[n]
        alone[n] = (torch.full_like(x, float("nan")), torch.zeros_like(m))
    torch.testing.assert_close(moe(alone), streams["visual"][0])


def test_reliability_zero_gives_the_visual_frames():
    torch.manual_seed(0)
    fusion = ReliabilityFusion(8, ("audio",), n_heads=2, window=2).eval()
    streams = _streams(("visual", "audio"))
    with torch.no_grad():
        fusion.reliability["audio"].bias.fill_(-100.0)  # the audio is never trusted
    expected = torch.nn.functional.layer_norm(streams["visual"][0], (8,))
    torch.testing.assert_close(fusion(streams), expected, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        fusion.reliability["audio"].bias.fill_(0.0)
    zero_vad = fusion(streams, {"audio": torch.zeros(2, 6)})
    full_vad = fusion(streams, {"audio": torch.ones(2, 6)})
    assert not torch.allclose(zero_vad, full_vad)  # the VAD probability is read
    assert fusion.last_reliability["audio"].shape == (2, 6)


def test_maven_has_six_paths_and_survives_a_missing_transcript():
    torch.manual_seed(0)
    names = ("visual", "audio", "text")
    maven = MultiPathCrossAttention(8, names, n_heads=2).eval()
    assert len(maven.paths) == 6
    streams = _streams(names)
    streams["text"] = (torch.zeros(2, 6, 8), torch.zeros(2, 6, dtype=torch.bool))
    out = maven(streams)
    assert torch.isfinite(out).all()
    streams["audio"] = (streams["audio"][0] + 1.0, streams["audio"][1])
    assert not torch.allclose(maven(streams), out)
