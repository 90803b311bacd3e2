"""TCN and Transformer temporal layers: receptive field, causality, padding masks, gradients."""

from __future__ import annotations

import pytest
import torch

from wildaffect.models.layers.temporal import TCN, TransformerTemporal, sinusoidal_positions

D = 8


def changed_positions(model, length, position):
    """Indices of outputs that change when only input frame ``position`` changes (impulse)."""
    torch.manual_seed(1)
    x = torch.randn(1, length, D)
    x2 = x.clone()
    x2[0, position] += torch.randn(D)
    with torch.no_grad():
        diff = (model(x2) - model(x)).abs().amax(-1)[0]
    return torch.nonzero(diff > 0).flatten().tolist()


@pytest.mark.parametrize("kernel_size,dilations", [(3, (1, 2, 4)), (2, (1, 3)), (5, (1,))])
@pytest.mark.parametrize("causal", [False, True])
def test_tcn_receptive_field_matches_impulse_response(kernel_size, dilations, causal):
    torch.manual_seed(0)
    tcn = TCN(D, kernel_size=kernel_size, dilations=dilations, causal=causal).eval()
    rf = tcn.receptive_field
    assert rf == 1 + 2 * (kernel_size - 1) * sum(dilations)
    length, p = 3 * rf, rf + 2
    changed = changed_positions(tcn, length, p)
    assert len(changed) == rf  # contiguous span of exactly the receptive field
    assert changed == list(range(changed[0], changed[0] + rf))
    if causal:
        assert changed[0] == p  # nothing before the impulse moves
    else:
        # Each conv sees total//2 past and the rest future frames, so an impulse reaches back
        # (to earlier outputs) by the future part of every conv.
        totals = [(kernel_size - 1) * d for d in dilations for _ in range(2)]
        assert changed[0] == p - sum(t - t // 2 for t in totals)


def test_tcn_padding_matches_unpadded_sequence():
    torch.manual_seed(0)
    tcn = TCN(D, kernel_size=3, dilations=(1, 2)).eval()
    x = torch.randn(2, 12, D)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    garbage = x.clone()
    garbage[1, 7:] = 100.0 * torch.randn(5, D)
    with torch.no_grad():
        padded = tcn(garbage, mask)
        alone = tcn(x[1:, :7])
    torch.testing.assert_close(padded[1, :7], alone[0])
    torch.testing.assert_close(padded[0], tcn(x[:1])[0])


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_padding_does_not_change_valid_outputs(causal):
    torch.manual_seed(0)
    model = TransformerTemporal(D, n_layers=2, n_heads=2, dim_ff=16, causal=causal).eval()
    x = torch.randn(2, 10, D)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 6:] = False
    x2 = x.clone()
    x2[0, 6:] = torch.randn(4, D) * 50
    with torch.no_grad():
        y, y2 = model(x, mask), model(x2, mask)
        alone = model(x[:1, :6])
    torch.testing.assert_close(y[0, :6], y2[0, :6])
    torch.testing.assert_close(y[0, :6], alone[0], rtol=1e-5, atol=1e-5)
    assert torch.all(y[0, 6:] == 0)
    torch.testing.assert_close(y[1], y2[1])


def test_transformer_causal_and_all_padded_clip():
    torch.manual_seed(0)
    model = TransformerTemporal(D, n_layers=1, n_heads=2, dim_ff=16, causal=True).eval()
    x = torch.randn(1, 9, D)
    x2 = x.clone()
    x2[0, 5:] += torch.randn(4, D)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0, :5], model(x2)[0, :5])
        out = model(torch.randn(2, 4, D), torch.tensor([[True] * 4, [False] * 4]))
    assert torch.isfinite(out).all() and torch.all(out[1] == 0)


def test_sinusoidal_positions_formula():
    table = sinusoidal_positions(5, 6)
    pos, i = 3, 1  # dims 2 and 3 use frequency 1e4^(-2/6)
    assert table[pos, 2] == pytest.approx(torch.sin(torch.tensor(pos * 1e4 ** (-2 / 6))).item())
    assert table[pos, 3] == pytest.approx(torch.cos(torch.tensor(pos * 1e4 ** (-2 * i / 6))).item())
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd width works


@pytest.mark.parametrize(
    "model",
    [
        lambda: TCN(D, dilations=(1, 2), dropout=0.1),
        lambda: TransformerTemporal(D, n_layers=2, n_heads=2, dim_ff=16, dropout=0.1),
    ],
)
def test_every_parameter_gets_a_gradient(model):
    torch.manual_seed(0)
    net = model().train()
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    out = net(torch.randn(2, 7, D), mask)
    assert out.shape == (2, 7, D)
    out.square().mean().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_transformer_rejects_too_long_input():
    model = TransformerTemporal(D, n_layers=1, n_heads=2, max_len=4)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.randn(1, 5, D))
