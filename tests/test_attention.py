"""Safe softmax, the reference attention, and the fused (SDPA) multi-head attention."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wildaffect.models.layers.attention import (
    MultiHeadAttention,
    reference_attention,
    safe_softmax,
)

FP32 = {"rtol": 6e-4, "atol": 2e-5}  # same kernels family, fp32: tight
BF16 = {"rtol": 5e-2, "atol": 5e-2}  # bf16 keeps 8 bits of mantissa


def _masked_softmax_oracle(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Textbook masked softmax: exp over kept entries / their sum; 0 where a row keeps none."""
    weights = torch.exp(scores - scores.max(dim=-1, keepdim=True).values) * mask
    total = weights.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, weights / total.clamp(min=1e-30), torch.zeros_like(weights))


def test_safe_softmax_without_mask_is_softmax():
    torch.manual_seed(0)
    scores = torch.randn(3, 4, 5)
    torch.testing.assert_close(safe_softmax(scores), torch.softmax(scores, dim=-1))
    torch.testing.assert_close(safe_softmax(scores, dim=1), torch.softmax(scores, dim=1))


def test_safe_softmax_masks_and_empty_rows():
    torch.manual_seed(0)
    scores = torch.randn(4, 6, requires_grad=True)
    mask = torch.rand(4, 6) > 0.4
    mask[1] = False  # a fully masked row
    mask[2] = True
    weights = safe_softmax(scores, mask)
    torch.testing.assert_close(weights, _masked_softmax_oracle(scores.detach(), mask))
    assert torch.all(weights[~mask] == 0)
    assert torch.all(weights[1] == 0)
    row_sums = weights.sum(dim=-1)
    torch.testing.assert_close(row_sums[mask.any(dim=-1)], torch.ones(int(mask.any(-1).sum())))
    (weights * torch.randn(4, 6)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.all(scores.grad[1] == 0) and torch.all(scores.grad[~mask] == 0)


def test_safe_softmax_is_safe_for_large_scores_and_bf16():
    scores = torch.tensor([[1e30, -1e30, 3.0], [5.0, 6.0, 7.0]])
    mask = torch.tensor([[False, False, False], [True, False, True]])
    weights = safe_softmax(scores, mask)
    assert torch.isfinite(weights).all() and torch.all(weights[0] == 0)
    weights16 = safe_softmax(scores.bfloat16(), mask)
    assert torch.isfinite(weights16).all() and torch.all(weights16[0] == 0)


def test_reference_attention_is_the_formula():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 7)
    mask = torch.rand(2, 3, 5) > 0.3
    mask[0, 2] = False
    out = reference_attention(q, k, v, mask)
    for b in range(2):
        for i in range(3):
            keep = mask[b, i]
            if not keep.any():
                assert torch.all(out[b, i] == 0)
                continue
            s = (k[b, keep] @ q[b, i]) / math.sqrt(4)
            expected = torch.softmax(s, dim=0) @ v[b, keep]
            torch.testing.assert_close(out[b, i], expected)


def _mask_cases(n: int, lq: int, lk: int, heads: int) -> dict[str, torch.Tensor | None]:
    """No mask, key padding (with a sample that has no key), per-query, per-head masks."""
    padding = torch.rand(n, lk) > 0.3
    padding[0] = False
    per_query = torch.rand(n, lq, lk) > 0.5
    per_query[1, :2] = False
    per_head = torch.rand(n, heads, lq, lk) > 0.5
    per_head[1, :, 0] = False
    return {"none": None, "padding": padding, "per_query": per_query, "per_head": per_head}


def _run(module: MultiHeadAttention, query, kv, mask, impl: str):
    module.impl = impl
    module.zero_grad()
    q, x = query.clone().requires_grad_(), kv.clone().requires_grad_()
    out = module(q, x, mask)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return out.detach(), q.grad, x.grad, grads


@pytest.mark.parametrize("case", ["none", "padding", "per_query", "per_head"])
def test_sdpa_matches_reference_fp32(case):
    torch.manual_seed(0)
    module = MultiHeadAttention(d_q=12, d_kv=10, d_model=16, n_heads=4)
    query, kv = torch.randn(3, 5, 12), torch.randn(3, 7, 10)
    mask = _mask_cases(3, 5, 7, 4)[case]
    fast = _run(module, query, kv, mask, "sdpa")
    slow = _run(module, query, kv, mask, "reference")
    torch.testing.assert_close(fast[0], slow[0], **FP32)
    torch.testing.assert_close(fast[1], slow[1], **FP32)
    torch.testing.assert_close(fast[2], slow[2], **FP32)
    for name in fast[3]:
        torch.testing.assert_close(fast[3][name], slow[3][name], **FP32, msg=name)
    for result in (fast, slow):
        assert torch.isfinite(result[0]).all() and torch.isfinite(result[1]).all()


@pytest.mark.parametrize("case", ["none", "per_query"])
def test_sdpa_matches_reference_bf16_autocast(case):
    torch.manual_seed(0)
    module = MultiHeadAttention(d_q=16, d_kv=16, d_model=16, n_heads=2)
    query, kv = torch.randn(2, 6, 16), torch.randn(2, 9, 16)
    mask = _mask_cases(2, 6, 9, 2)[case]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = _run(module, query, kv, mask, "sdpa")
        slow = _run(module, query, kv, mask, "reference")
    assert fast[0].dtype == torch.bfloat16
    torch.testing.assert_close(fast[0].float(), slow[0].float(), **BF16)
    torch.testing.assert_close(fast[1].float(), slow[1].float(), **BF16)
    torch.testing.assert_close(fast[2].float(), slow[2].float(), **BF16)
    for result in (fast, slow):
        assert torch.isfinite(result[0].float()).all() and torch.isfinite(result[2]).all()


@pytest.mark.parametrize("impl", ["sdpa", "reference"])
def test_query_without_keys_gives_exact_zeros_and_finite_grads(impl):
    torch.manual_seed(0)
    module = MultiHeadAttention(8, 8, 8, 2, impl=impl)
    query = torch.randn(2, 3, 8, requires_grad=True)
    kv = torch.randn(2, 4, 8, requires_grad=True)
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[0] = False  # sample 0: no key at all
    mask[1, 1] = False  # sample 1, query 1: no key
    out = module(query, kv, mask)
    assert torch.all(out[0] == 0) and torch.all(out[1, 1] == 0)
    assert torch.all(out[1, 0] != 0)
    out.sum().backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(kv.grad).all()
    assert torch.all(query.grad[0] == 0) and torch.all(kv.grad[0] == 0)
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


def test_matches_torch_multihead_attention():
    """Independent oracle: torch.nn.MultiheadAttention with the same weights."""
    torch.manual_seed(0)
    d, d_kv, heads = 16, 6, 4
    ours = MultiHeadAttention(d, d_kv, d, heads)
    theirs = nn.MultiheadAttention(d, heads, kdim=d_kv, vdim=d_kv, batch_first=True)
    with torch.no_grad():
        theirs.q_proj_weight.copy_(ours.q_proj.weight)
        theirs.k_proj_weight.copy_(ours.k_proj.weight)
        theirs.v_proj_weight.copy_(ours.v_proj.weight)
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)
    query, kv = torch.randn(2, 5, d), torch.randn(2, 7, d_kv)
    keep = torch.rand(2, 7) > 0.3
    keep[:, 0] = True  # torch's module gives NaN for rows without keys: avoid them here
    expected, _ = theirs(query, kv, kv, key_padding_mask=~keep)
    for impl in ("sdpa", "reference"):
        ours.impl = impl
        torch.testing.assert_close(ours(query, kv, keep), expected, **FP32)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(8, 8, 10, 4)
    with pytest.raises(ValueError, match="impl"):
        MultiHeadAttention(8, 8, 8, 2, impl="flash")  # type: ignore[arg-type]
    module = MultiHeadAttention(8, 8, 8, 2)
    with pytest.raises(TypeError, match="bool"):
        module(torch.randn(1, 2, 8), torch.randn(1, 3, 8), torch.ones(1, 3))


def test_dropout_only_in_training():
    torch.manual_seed(0)
    module = MultiHeadAttention(8, 8, 8, 2, dropout=0.5).eval()
    query, kv = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    torch.testing.assert_close(module(query, kv), module(query, kv))
    module.train()
    assert not torch.allclose(module(query, kv), module(query, kv))


def _nan_prone_sdpa(q, k, v, attn_mask=None, dropout_p=0.0):
    """Older / CUDA SDPA backends: -inf masking, so rows without keys come out NaN."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def test_empty_rows_are_safe_even_on_a_nan_returning_backend(monkeypatch):
    """torch 2.13 on CPU already returns 0 for fully masked rows; torch>=2.2 elsewhere may not."""
    from wildaffect.models.layers import attention

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", _nan_prone_sdpa)
    torch.manual_seed(0)
    module = MultiHeadAttention(8, 8, 8, 2)
    query = torch.randn(2, 3, 8, requires_grad=True)
    kv = torch.randn(2, 4, 8, requires_grad=True)
    mask = torch.rand(2, 3, 4) > 0.3
    mask[0, 1] = False
    keys = torch.randn(2, 2, 4, 4)
    raw = _nan_prone_sdpa(torch.randn(2, 2, 3, 4), keys, keys, attn_mask=mask[:, None])
    assert torch.isnan(raw[0, :, 1]).all()  # the emulation really is NaN-prone
    out = module(query, kv, mask)
    assert torch.isfinite(out).all() and torch.all(out[0, 1] == 0)
    out.sum().backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(kv.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())
    module.impl = "reference"
    torch.testing.assert_close(out, module(query, kv, mask), **FP32)
