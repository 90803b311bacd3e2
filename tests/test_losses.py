"""Losses against float64 transcriptions of the papers' formulas (values and gradients)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wildaffect.errors import WildaffectError
from wildaffect.labels import AU_INVALID, EXPR_INVALID, VA_INVALID, Task
from wildaffect.losses import (
    LOSSES,
    MaskedLoss,
    asymmetric_loss,
    build_loss,
    ccc_loss,
    focal_loss,
    masked_bce_with_logits,
    masked_cross_entropy,
    masked_mse,
)
from wildaffect.metrics import ccc as ccc_metric

F64 = torch.float64


# --------------------------------------------------------------------------- references


def reduce_ref(loss: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    loss = loss * valid
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / valid.sum()


def asl_reference(x, y, valid, gamma_pos, gamma_neg, margin, clip, reduction, detach=False):
    """Ridnik et al. (2021), eqs. as written, naive float64 arithmetic."""
    p = 1 / (1 + torch.exp(-x))
    p_m = torch.clamp(p - margin, min=0)
    w_pos, w_neg = (1 - p) ** gamma_pos, p_m**gamma_neg
    if detach:
        w_pos, w_neg = w_pos.detach(), w_neg.detach()
    l_pos = w_pos * torch.log(torch.clamp(p, min=clip))
    l_neg = w_neg * torch.log(torch.clamp(1 - p_m, min=clip))
    return reduce_ref(-(y * l_pos + (1 - y) * l_neg), valid, reduction)


def focal_reference(x, y, valid, gamma, alpha, eps, reduction):
    """Lin et al. (2017) softmax focal loss, -Σ_c q_c α_c (1-p_c)^γ log p_c, naive float64."""
    n_cls = x.shape[-1]
    e = torch.exp(x - x.max(-1, keepdim=True).values.detach())
    p = e / e.sum(-1, keepdim=True)
    q = F.one_hot(torch.where(valid, y, 0), n_cls).to(F64) * (1 - eps) + eps / n_cls
    a = torch.ones(n_cls, dtype=F64) if alpha is None else alpha
    loss = -(q * a * (1 - p) ** gamma * torch.log(p)).sum(-1)
    return reduce_ref(loss, valid, reduction)


def ccc_loss_reference(x, y, valid):
    """Mean over dims of 1 - 2cov/(var_x + var_y + (mx-my)^2), population stats, float64."""
    out = []
    for d in range(x.shape[-1]):
        keep = valid[..., d]
        a, b = x[..., d][keep], y[..., d][keep]
        ma, mb = a.mean(), b.mean()
        cov = ((a - ma) * (b - mb)).mean()
        out.append(1 - 2 * cov / (((a - ma) ** 2).mean() + ((b - mb) ** 2).mean() + (ma - mb) ** 2))
    return torch.stack(out).mean()


def both_grads(fn_a, fn_b, *inputs: torch.Tensor):
    """Value and input gradient of two functions of the same leaf tensors."""
    out = []
    for fn in (fn_a, fn_b):
        leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
        value = fn(*leaves)
        (value.sum()).backward()
        out.append((value.detach(), [leaf.grad for leaf in leaves]))
    return out


def value_and_grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x.detach().clone().requires_grad_(True)
    value = fn(leaf)
    value.sum().backward()
    return value.detach(), leaf.grad


def multilabel_batch(shape, seed: int, p_invalid: float = 0.2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=F64) * 3
    y = (torch.rand(shape, generator=g) < 0.3).to(F64)
    valid = torch.rand(shape, generator=g) >= p_invalid
    return x, y, valid


# --------------------------------------------------------------------------- ASL

ASL_CONFIGS = [
    {"gamma_pos": 0.0, "gamma_neg": 4.0, "margin": 0.05},  # paper defaults
    {"gamma_pos": 1.0, "gamma_neg": 2.0, "margin": 0.2},
    {"gamma_pos": 0.5, "gamma_neg": 0.5, "margin": 0.0},  # fractional γ
    {"gamma_pos": 0.0, "gamma_neg": 4.0, "margin": 0.0},
]


@pytest.mark.parametrize(
    ("cfg", "shape", "reduction"),
    list(itertools.product(ASL_CONFIGS, [(6, 12), (2, 5, 12)], ["mean", "sum", "none"])),
)
def test_asl_matches_formula(cfg: dict, shape: tuple, reduction: str) -> None:
    x, y, valid = multilabel_batch(shape, seed=len(shape) + int(10 * cfg["margin"]))
    (va, ga), (vb, gb) = both_grads(
        lambda x_: asymmetric_loss(x_, y, valid, **cfg, reduction=reduction),
        lambda x_: asl_reference(x_, y, valid.to(F64), **cfg, clip=1e-8, reduction=reduction),
        x,
    )
    torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga[0], gb[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cfg", ASL_CONFIGS[:2])
def test_asl_disable_focal_grad(cfg: dict) -> None:
    x, y, valid = multilabel_batch((8, 12), seed=3)
    (va, ga), (vb, gb) = both_grads(
        lambda x_: asymmetric_loss(x_, y, valid, **cfg, disable_focal_grad=True),
        lambda x_: asl_reference(x_, y, valid.to(F64), **cfg, clip=1e-8, reduction="mean",
                                 detach=True),
        x,
    )
    torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga[0], gb[0], rtol=1e-9, atol=1e-12)
    full = both_grads(lambda x_: asymmetric_loss(x_, y, valid, **cfg), lambda x_: x_.sum(), x)
    assert not torch.allclose(ga[0], full[0][1][0])  # it does change the gradient


def test_asl_without_focusing_or_margin_is_bce() -> None:
    x, y, valid = multilabel_batch((4, 7, 12), seed=4)
    cfg = {"gamma_pos": 0.0, "gamma_neg": 0.0, "margin": 0.0}
    (va, ga), (vb, gb) = both_grads(
        lambda x_: asymmetric_loss(x_, y, valid, **cfg),
        lambda x_: F.binary_cross_entropy_with_logits(x_[valid], y[valid]),
        x,
    )
    torch.testing.assert_close(va, vb)
    torch.testing.assert_close(ga[0], gb[0])
    torch.testing.assert_close(va, masked_bce_with_logits(x, y, valid))


def test_asl_reads_au_invalid_markers() -> None:
    x, y, valid = multilabel_batch((5, 12), seed=5)
    marked = torch.where(valid, y, torch.full_like(y, AU_INVALID))
    torch.testing.assert_close(asymmetric_loss(x, marked), asymmetric_loss(x, y, valid))
    none = asymmetric_loss(x, marked, reduction="none")
    assert none.shape == x.shape and bool((none[~valid] == 0).all())


def test_asl_extreme_logits_keep_exact_values_without_clip() -> None:
    x = torch.tensor([[-50.0, 50.0, 50.0, -50.0]])
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    loss = asymmetric_loss(x, y, gamma_pos=0, gamma_neg=0, margin=0, clip=0, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([[50.0, 50.0, 0.0, 0.0]]))
    # With the reference clip the log saturates at -log(1e-8), as in Ridnik's code.
    clipped = asymmetric_loss(x, y, gamma_pos=0, gamma_neg=0, margin=0, reduction="none")
    torch.testing.assert_close(clipped[0, :2], torch.full((2,), -np.log(1e-8), dtype=torch.float32))
    # The margin caps a confident negative's log(1 - p_m) at log(margin) instead.
    shifted = asymmetric_loss(x, y, gamma_pos=0, gamma_neg=0, margin=0.05, reduction="none")
    torch.testing.assert_close(shifted[0, 1], torch.tensor(-np.log(0.05), dtype=torch.float32))


# --------------------------------------------------------------------------- focal / CE


def multiclass_batch(shape, n_cls: int, seed: int, p_invalid: float = 0.2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, n_cls, generator=g, dtype=F64) * 2
    y = torch.randint(0, n_cls, shape, generator=g)
    valid = torch.rand(shape, generator=g) >= p_invalid
    return x, y, valid


@pytest.mark.parametrize(
    ("gamma", "use_alpha", "eps", "shape", "reduction"),
    [
        (2.0, False, 0.0, (16,), "mean"),
        (2.0, True, 0.0, (3, 9), "sum"),
        (0.5, True, 0.1, (3, 9), "mean"),
        (3.0, False, 0.2, (2, 4, 5), "none"),
    ],
)
def test_focal_matches_formula(gamma, use_alpha, eps, shape, reduction) -> None:
    x, y, valid = multiclass_batch(shape, 8, seed=int(gamma * 10))
    alpha = torch.linspace(0.25, 1.0, 8, dtype=F64) if use_alpha else None
    (va, ga), (vb, gb) = both_grads(
        lambda x_: focal_loss(x_, y, valid, gamma=gamma, alpha=alpha, label_smoothing=eps,
                              reduction=reduction),
        lambda x_: focal_reference(x_, y, valid, gamma, alpha, eps, reduction),
        x,
    )
    torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga[0], gb[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_focal_gamma0_and_masked_ce_equal_torch_cross_entropy(eps: float) -> None:
    x, y, valid = multiclass_batch((4, 6), 8, seed=9)
    marked = torch.where(valid, y, EXPR_INVALID)
    ref = lambda x_: F.cross_entropy(
        x_.reshape(-1, 8), marked.reshape(-1), ignore_index=EXPR_INVALID, label_smoothing=eps
    )
    for ours in (
        lambda x_: focal_loss(x_, marked, gamma=0.0, label_smoothing=eps),
        lambda x_: masked_cross_entropy(x_, marked, label_smoothing=eps),
    ):
        (va, ga), (vb, gb) = both_grads(ours, ref, x)
        torch.testing.assert_close(va, vb)
        torch.testing.assert_close(ga[0], gb[0])
    # Class weights: sums agree with torch (its mean divides by the summed weights instead).
    alpha = torch.linspace(0.5, 2.0, 8, dtype=F64)
    ref_sum = F.cross_entropy(x[valid], y[valid], weight=alpha, label_smoothing=eps,
                              reduction="sum")
    torch.testing.assert_close(
        focal_loss(x, y, valid, gamma=0.0, alpha=alpha, label_smoothing=eps, reduction="sum"),
        ref_sum,
    )
    torch.testing.assert_close(
        masked_cross_entropy(x, y, valid, weight=alpha, label_smoothing=eps, reduction="sum"),
        ref_sum,
    )


def test_focal_rejects_bad_inputs() -> None:
    x, y, _ = multiclass_batch((4,), 8, seed=1)
    with pytest.raises(ValueError, match="targets of shape"):
        focal_loss(x, y[:3])
    with pytest.raises(ValueError, match="0..7"):
        focal_loss(x, torch.tensor([0, 1, 8, 2]))
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(x, y, alpha=torch.ones(7))
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(x, y, reduction="avg")


# --------------------------------------------------------------------------- BCE / MSE / CCC


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_per_au_weights_scale_each_aus_terms(reduction: str) -> None:
    """ASL and BCE with ``au_weight``: each AU's terms times its weight, the mean still over
    the valid entries (float64 reference); weights of 1 change nothing."""
    x, y, valid = multilabel_batch((3, 5, 12), seed=5)
    w = torch.linspace(0.0, 3.0, 12, dtype=F64)
    cfg = ASL_CONFIGS[0]
    (va, ga), (vb, gb) = both_grads(
        lambda x_: asymmetric_loss(x_, y, valid, **cfg, au_weight=w, reduction=reduction),
        lambda x_: reduce_ref(asl_reference(x_, y, valid.to(F64), **cfg, clip=1e-8,
                                            reduction="none") * w, valid.to(F64), reduction),
        x,
    )
    torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga[0], gb[0], rtol=1e-9, atol=1e-12)
    bce = masked_bce_with_logits(x, y, valid, au_weight=w, reduction=reduction)
    bce_ref = reduce_ref(F.binary_cross_entropy_with_logits(x, y, reduction="none") * w,
                         valid.to(F64), reduction)
    torch.testing.assert_close(bce, bce_ref)
    ones = torch.ones(12, dtype=F64)
    torch.testing.assert_close(asymmetric_loss(x, y, valid, au_weight=ones, reduction=reduction),
                               asymmetric_loss(x, y, valid, reduction=reduction))
    with pytest.raises(ValueError, match=r"au_weight: expected shape \(12,\)"):
        asymmetric_loss(x, y, valid, au_weight=torch.ones(3, dtype=F64))


def test_masked_bce_matches_torch_with_pos_weight() -> None:
    x, y, valid = multilabel_batch((3, 5, 12), seed=11)
    pw = torch.linspace(1.0, 5.0, 12, dtype=F64)
    (va, ga), (vb, gb) = both_grads(
        lambda x_: masked_bce_with_logits(x_, y, valid, pos_weight=pw),
        lambda x_: (F.binary_cross_entropy_with_logits(x_, y, pos_weight=pw, reduction="none")
                    * valid).sum() / valid.sum(),
        x,
    )
    torch.testing.assert_close(va, vb)
    torch.testing.assert_close(ga[0], gb[0])


def test_masked_mse_matches_torch() -> None:
    g = torch.Generator().manual_seed(12)
    x, y = torch.rand(6, 2, generator=g, dtype=F64), torch.rand(6, 2, generator=g, dtype=F64)
    y[0, 0] = y[3, 1] = VA_INVALID
    valid = y != VA_INVALID
    torch.testing.assert_close(masked_mse(x, y), F.mse_loss(x[valid], y[valid]))


@pytest.mark.parametrize("shape", [(64, 2), (4, 16, 2), (5, 3)])
def test_ccc_loss_matches_formula(shape: tuple) -> None:
    g = torch.Generator().manual_seed(shape[0])
    y = torch.rand(shape, generator=g, dtype=F64) * 2 - 1
    x = (0.5 * y + 0.3 * torch.randn(shape, generator=g, dtype=F64)).tanh()
    valid = torch.rand(shape, generator=g) >= 0.2
    marked = torch.where(valid, y, VA_INVALID)
    (va, ga), (vb, gb) = both_grads(
        lambda x_: ccc_loss(x_, marked, eps=0.0),
        lambda x_: ccc_loss_reference(x_, y, valid),
        x,
    )
    torch.testing.assert_close(va, vb, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga[0], gb[0], rtol=1e-9, atol=1e-12)
    # Same number as the challenge metric, dimension by dimension.
    per_dim = ccc_loss(x, marked, reduction="none")
    for d in range(shape[-1]):
        keep = valid[..., d]
        expected = 1 - ccc_metric(x[..., d][keep].numpy(), y[..., d][keep].numpy())
        assert per_dim[d].item() == pytest.approx(expected, rel=1e-6)


def test_ccc_loss_constant_batch_and_missing_dimension() -> None:
    x = torch.zeros(8, 2, requires_grad=True)
    y = torch.zeros(8, 2)
    y[:, 1] = VA_INVALID
    loss = ccc_loss(x, y)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)  # dim 0 constant: CCC 0; dim 1 not counted
    assert torch.isfinite(x.grad).all()
    assert ccc_loss(x, y, reduction="none")[1].item() == 0.0


# --------------------------------------------------------------------------- masking, all losses

LOSS_CASES = {
    "asl": (asymmetric_loss, "multilabel", {}),
    "asl_m0_frac": (asymmetric_loss, "multilabel", {"gamma_pos": 0.5, "gamma_neg": 0.5, "margin": 0}),
    "bce": (masked_bce_with_logits, "multilabel", {}),
    "focal": (focal_loss, "multiclass", {"label_smoothing": 0.1}),
    "ce": (masked_cross_entropy, "multiclass", {"label_smoothing": 0.1}),
    "ccc": (ccc_loss, "regression", {}),
    "mse": (masked_mse, "regression", {}),
}


def make_case(kind: str, dtype=F64, seed: int = 0):
    if kind == "multilabel":
        x, y, valid = multilabel_batch((3, 4, 12), seed)
    elif kind == "multiclass":
        x, y, valid = multiclass_batch((3, 4), 8, seed)
    else:
        x, y, valid = multilabel_batch((3, 4, 2), seed)
        x, y = x.tanh(), torch.rand(y.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        y = y.to(F64)
    return x.to(dtype), y.to(dtype) if y.is_floating_point() else y, valid


@pytest.mark.parametrize(("name", "reduction"), list(itertools.product(LOSS_CASES, ["mean", "sum"])))
def test_masked_entries_change_neither_value_nor_gradient(name: str, reduction: str) -> None:
    fn, kind, kw = LOSS_CASES[name]
    x, y, valid = make_case(kind)
    g = torch.Generator().manual_seed(99)
    invalid_x = ~valid if kind != "multiclass" else (~valid)[..., None].expand_as(x)
    x2 = torch.where(invalid_x, torch.randn(x.shape, generator=g, dtype=F64) * 50, x)
    y2 = torch.where(~valid, 1 - y if y.is_floating_point() else (y + 3) % 8, y)
    v1, g1 = value_and_grad(lambda x_: fn(x_, y, valid, **kw, reduction=reduction), x)
    v2, g2 = value_and_grad(lambda x_: fn(x_, y2, valid, **kw, reduction=reduction), x2)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(g1, g2)
    assert bool((g2[invalid_x] == 0).all())


@pytest.mark.parametrize("name", LOSS_CASES)
def test_nothing_valid_gives_zero_with_finite_gradient(name: str) -> None:
    fn, kind, kw = LOSS_CASES[name]
    x, y, valid = make_case(kind)
    x.requires_grad_(True)
    loss = fn(x, y, torch.zeros_like(valid), **kw)
    loss.backward()
    assert loss.item() == 0.0 and bool((x.grad == 0).all())


@pytest.mark.parametrize(
    ("name", "dtype"), list(itertools.product(LOSS_CASES, [torch.float32, torch.bfloat16]))
)
def test_extreme_logits_stay_finite(name: str, dtype: torch.dtype) -> None:
    fn, kind, kw = LOSS_CASES[name]
    x, y, valid = make_case(kind, dtype=dtype)
    signs = torch.where(torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) < 0.5,
                        -1.0, 1.0)
    x = (signs * 50).to(dtype).requires_grad_(True) if kind != "regression" else x.requires_grad_()
    for reduction in ("mean", "sum", "none"):
        x.grad = None
        loss = fn(x, y, valid, **kw, reduction=reduction)
        loss.sum().backward()
        assert loss.dtype in (dtype, torch.float32)
        assert torch.isfinite(loss).all(), (name, reduction, loss)
        assert torch.isfinite(x.grad).all(), (name, reduction)


def test_asl_extreme_logits_every_label_combination() -> None:
    """All four (label, sign) pairs at ±50 in fp32 and bf16, every focusing option."""
    for dtype, cfg in itertools.product([torch.float32, torch.bfloat16], ASL_CONFIGS):
        x = torch.tensor([-50.0, 50.0, -50.0, 50.0], dtype=dtype, requires_grad=True)
        y = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=dtype)
        for clip in (1e-8, 0.0):
            x.grad = None
            loss = asymmetric_loss(x, y, **cfg, clip=clip, reduction="sum")
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(x.grad).all(), (dtype, cfg, clip)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("fn", [asymmetric_loss, masked_bce_with_logits, ccc_loss, masked_mse])
def test_shape_mismatch_is_an_error_not_a_broadcast(fn) -> None:
    with pytest.raises(ValueError, match="differ"):
        fn(torch.zeros(4, 12), torch.zeros(4, 1, 12))
    with pytest.raises(ValueError, match="mask"):
        fn(torch.zeros(4, 12), torch.zeros(4, 12), torch.ones(4, dtype=torch.bool))


# --------------------------------------------------------------------------- factory


def test_build_loss_maps_names_and_binds_options() -> None:
    x, y, valid = multilabel_batch((4, 12), seed=21)
    asl = build_loss("au", "ASL", gamma_neg=2.0, margin=0.1)
    assert isinstance(asl, MaskedLoss)
    torch.testing.assert_close(asl(x, y, valid),
                               asymmetric_loss(x, y, valid, gamma_neg=2.0, margin=0.1))
    bce = build_loss(Task.AU, "bce", pos_weight=[2.0] * 12).to(F64)
    assert bce.pos_weight.dtype == F64
    torch.testing.assert_close(bce(x, y, valid),
                               masked_bce_with_logits(x, y, valid, pos_weight=torch.full((12,), 2.0)))
    xc, yc, vc = multiclass_batch((5,), 8, seed=22)
    focal = build_loss("EXPR", "focal", gamma=1.0, alpha=torch.ones(8))
    torch.testing.assert_close(focal(xc, yc, vc), focal_loss(xc, yc, vc, gamma=1.0))
    assert "gamma=1.0" in repr(focal)
    assert {n for table in LOSSES.values() for n in table} == {"asl", "bce", "focal", "ce", "ccc",
                                                                "mse", "vnaw", "grid", "polar"}


@pytest.mark.parametrize(
    ("task", "name", "kwargs", "match"),
    [
        ("AU", "focal", {}, "valid names: asl, bce"),
        ("VA", "l1", {}, "valid names: ccc, mse"),
        ("pose", "asl", {}, "valid tasks: AU, EXPR, VA"),
        ("EXPR", "ce", {"gama": 2}, "no option gama; valid options: weight, label_smoothing"),
    ],
)
def test_build_loss_errors_list_the_valid_choices(task, name, kwargs, match) -> None:
    with pytest.raises(WildaffectError, match=match):
        build_loss(task, name, **kwargs)
