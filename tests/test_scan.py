"""Selective scan: the chunked path against the sequential oracle (outputs and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wildaffect.models.layers.scan import _linear_scan, selective_scan

RTOL, ATOL = 6e-4, 2e-3  # fp32 tolerances of state-spaces/mamba's tests


def make_inputs(batch, dim, n_state, length, *, with_d, with_z, with_bias, with_h0, seed=0):
    """Random scan inputs with leaf tensors that require grad; absent optionals are None."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).requires_grad_()

    inputs = {
        "u": rnd(batch, dim, length),
        "delta": rnd(batch, dim, length, scale=0.5),
        "A": (-torch.exp(torch.randn(dim, n_state, generator=g))).requires_grad_(),
        "B": rnd(batch, n_state, length),
        "C": rnd(batch, n_state, length),
        "D": rnd(dim) if with_d else None,
        "z": rnd(batch, dim, length) if with_z else None,
        "delta_bias": rnd(dim, scale=0.5) if with_bias else None,
        "initial_state": rnd(batch, dim, n_state) if with_h0 else None,
    }
    return inputs


def run(inputs, impl, chunk_size=None):
    """Outputs and gradients of a loss touching y and the final state."""
    for t in inputs.values():
        if t is not None:
            t.grad = None
    y, h = selective_scan(**inputs, return_final_state=True, impl=impl, chunk_size=chunk_size)
    loss = (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum() + h.square().sum()
    loss.backward()
    grads = {k: t.grad.clone() for k, t in inputs.items() if t is not None}
    return y.detach(), h.detach(), grads


CASES = [
    # (batch, dim, n_state, length, chunk_size)
    (2, 3, 4, 1, None),
    (1, 4, 2, 7, 4),  # L > chunk, not a multiple
    (2, 3, 4, 5, 16),  # L < chunk
    (1, 5, 3, 33, None),  # L not a power of two, auto chunk
    (2, 2, 4, 64, 8),  # exact multiple
    (1, 3, 16, 100, 7),
]


@pytest.mark.parametrize("batch,dim,n_state,length,chunk", CASES)
@pytest.mark.parametrize(
    "optionals",
    [
        (False, False, False, False),
        (True, True, True, True),
        (True, False, True, False),
        (False, True, False, True),
    ],
)
def test_chunked_matches_reference(batch, dim, n_state, length, chunk, optionals):
    torch.manual_seed(0)
    with_d, with_z, with_bias, with_h0 = optionals
    inputs = make_inputs(
        batch,
        dim,
        n_state,
        length,
        with_d=with_d,
        with_z=with_z,
        with_bias=with_bias,
        with_h0=with_h0,
    )
    y_ref, h_ref, g_ref = run(inputs, "reference")
    y, h, g = run(inputs, "chunked", chunk)
    torch.testing.assert_close(y, y_ref, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(h, h_ref, rtol=RTOL, atol=ATOL)
    assert g.keys() == g_ref.keys()
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], rtol=RTOL, atol=ATOL, msg=name)


def test_reference_matches_hand_computation():
    """One channel, one state, no softplus: h_t = exp(d A) h + d B u, y = C h + D u."""
    u = torch.tensor([[[1.0, 2.0, -1.0]]])
    delta = torch.tensor([[[0.5, 1.0, 2.0]]])
    A = torch.tensor([[-1.0]])
    B = torch.tensor([[[1.0, 0.5, 2.0]]])
    C = torch.tensor([[[2.0, 1.0, -1.0]]])
    D = torch.tensor([0.5])
    h, expected = 0.0, []
    for t in range(3):
        d = delta[0, 0, t].item()
        h = torch.exp(torch.tensor(d * -1.0)).item() * h + d * B[0, 0, t].item() * u[0, 0, t].item()
        expected.append(C[0, 0, t].item() * h + 0.5 * u[0, 0, t].item())
    for impl in ("reference", "chunked"):
        y = selective_scan(u, delta, A, B, C, D, delta_softplus=False, impl=impl)
        torch.testing.assert_close(y, torch.tensor([[expected]]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_split_with_carried_state_equals_one_pass(impl):
    torch.manual_seed(1)
    inputs = make_inputs(2, 4, 8, 50, with_d=True, with_z=True, with_bias=True, with_h0=True)
    full, final = selective_scan(**inputs, return_final_state=True, impl=impl)
    state, pieces = inputs["initial_state"], []
    for lo, hi in [(0, 1), (1, 17), (17, 18), (18, 50)]:
        part = {
            k: v for k, v in inputs.items() if k not in ("A", "D", "delta_bias", "initial_state")
        }
        part = {k: v[..., lo:hi] for k, v in part.items()}
        y, state = selective_scan(
            **part,
            A=inputs["A"],
            D=inputs["D"],
            delta_bias=inputs["delta_bias"],
            initial_state=state,
            return_final_state=True,
            impl=impl,
        )
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, -1), full, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(state, final, rtol=RTOL, atol=ATOL)


def test_long_sequence_is_finite_and_matches_reference():
    """Strong decay over a long sequence: a cumsum/exp(-cumsum) trick would overflow here."""
    torch.manual_seed(2)
    inputs = make_inputs(1, 2, 4, 3000, with_d=False, with_z=False, with_bias=False, with_h0=False)
    with torch.no_grad():
        inputs["delta"].add_(3.0)  # softplus(~3) * |A| up to ~10 per step: products hit 0
    y_ref = selective_scan(**inputs, impl="reference")
    y = selective_scan(**inputs, impl="chunked")
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, y_ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("reverse", [False, True])
def test_linear_scan_both_directions(reverse):
    torch.manual_seed(3)
    a, b, h0 = torch.rand(23, 5), torch.randn(23, 5), torch.randn(5)
    expected, h = torch.empty(23, 5), h0
    for t in range(22, -1, -1) if reverse else range(23):
        h = a[t] * h + b[t]
        expected[t] = h
    for chunk in (1, 4, 5, 23, 64):
        torch.testing.assert_close(_linear_scan(a, b, h0, chunk, reverse=reverse), expected)


def test_bfloat16_inputs_close_to_fp32():
    torch.manual_seed(4)
    inputs = make_inputs(1, 4, 4, 40, with_d=True, with_z=True, with_bias=True, with_h0=False)
    inputs = {k: None if v is None else v.detach() for k, v in inputs.items()}
    y32 = selective_scan(**inputs, impl="reference")
    bf = {k: v if v is None or k == "A" else v.bfloat16() for k, v in inputs.items()}
    y16 = selective_scan(**bf, impl="chunked")
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), y32, rtol=5e-2, atol=1e-1)


def test_softplus_and_bias_applied():
    """delta_bias and softplus must match doing them by hand."""
    torch.manual_seed(5)
    inputs = make_inputs(1, 3, 2, 9, with_d=False, with_z=False, with_bias=True, with_h0=False)
    inputs = {k: None if v is None else v.detach() for k, v in inputs.items()}
    manual = dict(
        inputs, delta=F.softplus(inputs["delta"] + inputs["delta_bias"][:, None]), delta_bias=None
    )
    y = selective_scan(**inputs, impl="chunked")
    y_manual = selective_scan(**manual, delta_softplus=False, impl="reference")
    torch.testing.assert_close(y, y_manual, rtol=1e-5, atol=1e-5)


def test_bad_shapes_and_impl_are_rejected():
    inputs = make_inputs(1, 3, 2, 5, with_d=False, with_z=False, with_bias=False, with_h0=False)
    with pytest.raises(ValueError, match="B must have shape"):
        selective_scan(**dict(inputs, B=torch.randn(1, 3, 5)))
    with pytest.raises(ValueError, match="impl must be one of"):
        selective_scan(**inputs, impl="fast")
    with pytest.raises(RuntimeError, match="mamba_ssm"):
        selective_scan(**inputs, impl="cuda")  # CPU tensors: the CUDA kernel cannot run


def test_chunked_autograd_saves_no_per_step_state():
    """The chunked path keeps only inputs and block-boundary states for backward, not the
    (B, D, L, N) hidden states that plain autograd through a scan would store."""
    torch.manual_seed(6)
    batch, dim, n_state, length = 1, 8, 16, 512
    inputs = make_inputs(
        batch, dim, n_state, length, with_d=True, with_z=True, with_bias=True, with_h0=False
    )
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        selective_scan(**inputs, impl="chunked", chunk_size=64).sum().backward()
    assert sum(saved) < batch * dim * n_state * length  # 65536
