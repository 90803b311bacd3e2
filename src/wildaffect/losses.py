"""Training losses, each with masking of invalid labels: ASL, focal, BCE, CE, CCC, MSE, and the
seed-003 siblings' V-NAW frame weighting (EXPR), VA-grid soft labels and polar VA (VA).

Shapes: class/dimension axis LAST. Multi-label and regression losses take
``logits/preds: (B, ..., C)`` with ``targets: (B, ..., C)``; multi-class losses take
``logits: (B, ..., C)`` with class ids ``targets: (B, ...)``. A ``mask`` of the targets' shape
(True = valid) may be given; without one, validity is read from the ABAW invalid markers in
``targets`` (AU_INVALID, EXPR_INVALID, VA_INVALID). Invalid entries contribute nothing to the
value or the gradient.

Reductions: ``"mean"`` divides by the number of VALID entries (so the scale depends neither on
the batch size nor on how many labels are missing; 0 when nothing is valid), ``"sum"`` sums
them, ``"none"`` returns the per-entry loss with zeros at invalid entries. The CCC loss is a
batch statistic: ``"none"`` gives one value per dimension.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wildaffect.errors import WildaffectError
from wildaffect.labels import AU_INVALID, EXPR_INVALID, VA_INVALID, Task
from wildaffect.models.va_space import GRID_SIGMA, grid_log_soft_labels, va_to_polar

REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------- helpers


def _validity(targets: Tensor, mask: Tensor | None, invalid: float) -> Tensor:
    """(same shape as targets) bool: the given mask, else ``targets != invalid``."""
    if mask is None:
        return targets != invalid
    if mask.shape != targets.shape:
        raise ValueError(f"mask: expected shape {tuple(targets.shape)}, got {tuple(mask.shape)}")
    return mask.to(torch.bool)


def _same_shape(a: Tensor, b: Tensor, a_name: str, b_name: str) -> None:
    # Torch would broadcast (B, C) against (B, 1, C) silently; a shape slip must be loud.
    if a.shape != b.shape:
        raise ValueError(f"{a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)} differ")


def _reduce(loss: Tensor, valid: Tensor, reduction: str) -> Tensor:
    """Zero the invalid entries of ``loss`` (no value, no gradient) and reduce."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    loss = torch.where(valid, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum().clamp(min=1).to(loss.dtype)


def _weighted(loss: Tensor, au_weight: Tensor | None) -> Tensor:
    """(B, ..., C) terms times a per-AU weight (C,). The mean still divides by the number of
    valid entries, so weights of 1 change nothing and a weight w counts an AU's entries w
    times (e.g. to let rare or hard AUs weigh more than the others)."""
    if au_weight is None:
        return loss
    if au_weight.shape != loss.shape[-1:]:
        raise ValueError(f"au_weight: expected shape ({loss.shape[-1]},), "
                         f"got {tuple(au_weight.shape)}")
    return loss * au_weight.to(loss)


def _safe_pow(base: Tensor, gamma: float) -> Tensor:
    """``base ** gamma`` for base >= 0 with finite gradients at base == 0 (also for gamma < 1)."""
    positive = base > 0
    safe = torch.where(positive, base, torch.ones_like(base))
    return torch.where(positive, safe.pow(gamma), torch.zeros_like(base))


# --------------------------------------------------------------------------- ASL


def asymmetric_loss(
    logits: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    margin: float = 0.05,
    clip: float = 1e-8,
    disable_focal_grad: bool = False,
    au_weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Asymmetric Loss (Ridnik et al., ICCV 2021), the AU loss of seed 002 §4.2.

    p = sigmoid(logit); L+ = (1-p)^γ+ · log p; p_m = max(p - m, 0); L- = p_m^γ- · log(1 - p_m);
    loss = -(y L+ + (1-y) L-), summed/averaged over valid entries.

    logits, targets: (B, ..., C), targets in {0, 1} (soft targets work too) or AU_INVALID.
    ``clip`` lower-bounds the probabilities inside the logs, as in the reference code (whose
    own name for it is ``eps``; its ``clip`` is our ``margin``); 0 disables it. Logs are
    computed with logsigmoid / from sigmoid(-x) so that no branch loses precision at large
    |logit|. ``disable_focal_grad`` treats the focusing weights as constants (the ASL
    authors' training script does; it is cheaper). The default False differentiates the
    loss exactly as written, like Lin et al.'s focal loss, and is what the gradient parity
    test checks. ``au_weight`` (C,) scales each AU's terms (:func:`_weighted`).
    """
    _same_shape(logits, targets, "logits", "targets")
    valid = _validity(targets, mask, AU_INVALID)
    y = torch.where(valid, targets, torch.zeros_like(targets)).to(logits.dtype)

    log_p = F.logsigmoid(logits)  # log p
    if margin > 0:
        one_minus_pm = (torch.sigmoid(-logits) + margin).clamp(max=1.0)  # 1 - p_m >= margin
        log_1m_pm = torch.log(one_minus_pm)
        p_m = (torch.sigmoid(logits) - margin).clamp(min=0.0)
    else:
        log_1m_pm = F.logsigmoid(-logits)  # log(1 - p), exact for large logits
        p_m = torch.sigmoid(logits)
    if clip > 0:
        log_p = log_p.clamp(min=math.log(clip))
        log_1m_pm = log_1m_pm.clamp(min=math.log(clip))

    with torch.set_grad_enabled(torch.is_grad_enabled() and not disable_focal_grad):
        # (1-p)^γ+ = exp(γ+ · log(1-p)): finite gradient even where 1-p underflows.
        w_pos = torch.exp(gamma_pos * F.logsigmoid(-logits)) if gamma_pos else None
        w_neg = _safe_pow(p_m, gamma_neg) if gamma_neg else None

    loss_pos = log_p if w_pos is None else w_pos * log_p
    loss_neg = log_1m_pm if w_neg is None else w_neg * log_1m_pm
    loss = -(y * loss_pos + (1 - y) * loss_neg)
    return _reduce(_weighted(loss, au_weight), valid, reduction)


# --------------------------------------------------------------------------- focal


def focal_loss(
    logits: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Multi-class softmax focal loss (Lin et al. 2017), the EXPR loss of seed 000.

    FL = -α_y (1 - p_y)^γ log p_y. With label smoothing ε the one-hot target becomes
    q = (1-ε)·onehot + ε/C (torch's convention) and FL = -Σ_c q_c α_c (1 - p_c)^γ log p_c,
    so γ = 0 is exactly ``F.cross_entropy(weight=α, label_smoothing=ε)`` (summed; our mean
    is over valid frames, not torch's α-weighted mean).

    logits: (B, ..., C); targets: (B, ...) class ids or EXPR_INVALID; alpha: (C,) or None.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} need targets of shape {tuple(logits.shape[:-1])}, "
            f"got {tuple(targets.shape)}"
        )
    n_cls = logits.shape[-1]
    valid = _validity(targets, mask, EXPR_INVALID)
    y = torch.where(valid, targets, torch.zeros_like(targets)).long()
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if bool(((y < 0) | (y >= n_cls)).any()):
        raise ValueError(f"targets: valid class ids must be in 0..{n_cls - 1}")

    log_p = F.log_softmax(logits, dim=-1)  # (B, ..., C)
    q = F.one_hot(y, n_cls).to(log_p.dtype) * (1 - label_smoothing) + label_smoothing / n_cls
    terms = -q * log_p
    if gamma:
        one_minus_p = -torch.expm1(log_p)  # 1 - p_c, accurate when p_c -> 1
        terms = _safe_pow(one_minus_p.clamp(min=0.0), gamma) * terms
    if alpha is not None:
        if alpha.shape != (n_cls,):
            raise ValueError(f"alpha: expected shape ({n_cls},), got {tuple(alpha.shape)}")
        terms = alpha.to(terms) * terms
    return _reduce(terms.sum(-1), valid, reduction)


# --------------------------------------------------------------------------- torch's own, masked


def masked_bce_with_logits(
    logits: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    pos_weight: Tensor | None = None,
    au_weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``F.binary_cross_entropy_with_logits`` over valid entries only. (B, ..., C).
    ``au_weight`` (C,) scales each AU's terms (:func:`_weighted`)."""
    _same_shape(logits, targets, "logits", "targets")
    valid = _validity(targets, mask, AU_INVALID)
    y = torch.where(valid, targets, torch.zeros_like(targets)).to(logits.dtype)
    pw = None if pos_weight is None else pos_weight.to(logits)
    loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none")
    return _reduce(_weighted(loss, au_weight), valid, reduction)


def masked_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """``F.cross_entropy`` (class axis last) over valid frames only.

    logits: (B, ..., C); targets: (B, ...) class ids or EXPR_INVALID. With ``weight`` the
    mean is over valid frames (torch's own mean would divide by the summed weights).
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} need targets of shape {tuple(logits.shape[:-1])}, "
            f"got {tuple(targets.shape)}"
        )
    valid = _validity(targets, mask, EXPR_INVALID)
    y = torch.where(valid, targets, torch.zeros_like(targets)).long()
    w = None if weight is None else weight.to(logits)
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        y.reshape(-1),
        weight=w,
        label_smoothing=label_smoothing,
        reduction="none",
    ).reshape(y.shape)
    return _reduce(loss, valid, reduction)


def masked_mse(
    preds: Tensor, targets: Tensor, mask: Tensor | None = None, *, reduction: str = "mean"
) -> Tensor:
    """``F.mse_loss`` over valid entries. preds, targets: (B, ..., D), VA_INVALID masked."""
    _same_shape(preds, targets, "preds", "targets")
    valid = _validity(targets, mask, VA_INVALID)
    y = torch.where(valid, targets, torch.zeros_like(targets)).to(preds.dtype)
    return _reduce(F.mse_loss(preds, y, reduction="none"), valid, reduction)


# --------------------------------------------------------------------------- CCC


def ccc_loss(
    preds: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> Tensor:
    """1 - CCC per dimension over all valid entries of the batch, population statistics.

    preds, targets: (B, ..., D); VA_INVALID masked per dimension. ``eps`` in the denominator
    keeps a constant batch finite. Statistics are taken in float32 at least (bf16 sums over
    a batch are too coarse). "mean"/"sum" are over the dimensions with a valid entry;
    "none" returns (D,) (0 for a dimension without one).
    """
    _same_shape(preds, targets, "preds", "targets")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    valid = _validity(targets, mask, VA_INVALID)
    dtype = torch.promote_types(preds.dtype, torch.float32)
    x = preds.reshape(-1, preds.shape[-1]).to(dtype)  # (M, D)
    v = valid.reshape(-1, preds.shape[-1])
    w = v.to(dtype)
    y = torch.where(v, targets.reshape(-1, preds.shape[-1]).to(dtype), torch.zeros((), dtype=dtype))
    x = torch.where(v, x, torch.zeros((), dtype=dtype))

    n = w.sum(0)  # (D,)
    n_safe = n.clamp(min=1)
    mx, my = x.sum(0) / n_safe, y.sum(0) / n_safe
    dx, dy = (x - mx) * w, (y - my) * w
    var_x, var_y = (dx * dx).sum(0) / n_safe, (dy * dy).sum(0) / n_safe
    cov = (dx * dy).sum(0) / n_safe
    ccc = 2 * cov / (var_x + var_y + (mx - my) ** 2 + eps)
    has = n > 0
    per_dim = torch.where(has, 1 - ccc, torch.zeros_like(ccc))  # (D,)
    if reduction == "none":
        return per_dim
    total = per_dim.sum()
    return total if reduction == "sum" else total / has.sum().clamp(min=1).to(dtype)


# --------------------------------------------------------------------------- seed 003 siblings


def vnaw_loss(
    logits: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    sigma: float = 1.0,
    base: str = "ce",
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Video-based noise-aware adaptive weighting of the frames in a clip (seed 003 ¶5, V-NAW).

    Seed: "V-NAW [...] adaptively assigns importance to each frame in a clip to address label
    ambiguity". Each frame's loss (``base``: "ce" or "focal") is weighted by a Gaussian of its
    margin ``m = max_c z_c - z_y`` (0 when the label is the predicted class, large when the
    model confidently disagrees with the label, the signature of an ambiguous or noisy label):
    ``w = exp(-m^2 / (2 sigma^2))``, treated as a constant and rescaled to mean 1 over the valid
    frames of each clip, so a clip's total weight is unchanged and only its frames compete.

    logits: (B, L, C) clips (or (L, C): one clip); targets: (B, L) class ids or EXPR_INVALID.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    bases = {"ce": masked_cross_entropy, "focal": focal_loss}
    if base not in bases:
        raise ValueError(f"base must be one of {', '.join(bases)}, got {base!r}")
    options: dict[str, Any] = {"label_smoothing": label_smoothing}
    if base == "focal":
        options.update(gamma=gamma, alpha=alpha)
    else:
        options["weight"] = alpha
    per_frame = bases[base](logits, targets, mask, reduction="none", **options)  # (B, L)
    valid = _validity(targets, mask, EXPR_INVALID)
    clips = per_frame.reshape(-1, per_frame.shape[-1]) if per_frame.dim() > 1 else per_frame[None]
    valid2 = valid.reshape(clips.shape)
    with torch.no_grad():
        y = torch.where(valid, targets, torch.zeros_like(targets)).long()
        target_logit = logits.gather(-1, y[..., None])[..., 0]
        margin = (logits.amax(-1) - target_logit).reshape(clips.shape)  # (N, L) >= 0
        w = torch.exp(-(margin.float() ** 2) / (2 * sigma**2)) * valid2
        n_valid = valid2.sum(-1, keepdim=True).to(w.dtype)  # (N, 1)
        w = w * n_valid / w.sum(-1, keepdim=True).clamp(min=1e-12)  # mean 1 per clip
    weighted = (w.to(clips.dtype) * clips).reshape(per_frame.shape)
    return _reduce(weighted, valid, reduction)


def _frame_validity(targets: Tensor, mask: Tensor | None) -> Tensor:
    """(B, ..., D) -> (B, ...) True where every dimension of the frame is valid."""
    return _validity(targets, mask, VA_INVALID).all(dim=-1)


def _ccc_plus(
    preds: Tensor, targets: Tensor, mask: Tensor | None, term: Tensor, frames: Tensor,
    weight: float, reduction: str,
) -> Tensor:
    """CCC loss plus ``weight`` times the per-frame ``term`` reduced over the valid frames."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum' for this VA loss, got {reduction!r}")
    return ccc_loss(preds, targets, mask, reduction=reduction) + weight * _reduce(
        term, frames, reduction
    )


def va_grid_loss(
    preds: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    sigma: float = GRID_SIGMA,
    weight: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """CCC + distance-aware soft-label loss on the 3x3 VA grid (seed 003 ¶1).

    The true (v, a) gives Gaussian soft labels ``q`` over the nine region centres; the
    predicted (v, a) gives the same kernel distribution ``p``; the added term is
    ``KL(q || p)`` per frame (0 for a perfect prediction), so a prediction is pulled towards
    the right region with a penalty growing with the distance between regions rather than a
    hard region class. preds, targets: (B, ..., 2); a frame counts where both are valid.
    """
    _same_shape(preds, targets, "preds", "targets")
    frames = _frame_validity(targets, mask)
    y = torch.where(frames[..., None], targets, torch.zeros_like(targets)).to(preds.dtype)
    log_q = grid_log_soft_labels(y, sigma)
    log_p = grid_log_soft_labels(preds, sigma)
    kl = (log_q.exp() * (log_q - log_p)).sum(-1)  # (B, ...)
    return _ccc_plus(preds, targets, mask, kl, frames, weight, reduction)


def polar_va_loss(
    preds: Tensor,
    targets: Tensor,
    mask: Tensor | None = None,
    *,
    weight: float = 1.0,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    """CCC + a loss on VA in polar form (seed 003 ¶8, MAVEN): angle and intensity.

    Per frame ``(rho_p - rho_t)^2 + rho_t (1 - cos(theta_p - theta_t))``: the intensity error
    plus the angular error, weighted by the true intensity because the angle of a neutral
    (rho = 0) label is undefined. ``cos`` of the angle difference is computed from the dot
    product, so there is no atan2 wrap-around and no NaN gradient at the origin.
    """
    _same_shape(preds, targets, "preds", "targets")
    frames = _frame_validity(targets, mask)
    y = torch.where(frames[..., None], targets, torch.zeros_like(targets)).to(preds.dtype)
    _, rho_t = va_to_polar(y)
    rho_p = torch.sqrt((preds**2).sum(-1) + eps**2)  # differentiable at 0
    cos_diff = (preds * y).sum(-1) / (rho_p * rho_t).clamp(min=eps)
    term = (rho_p - rho_t) ** 2 + rho_t * (1 - cos_diff)
    return _ccc_plus(preds, targets, mask, term, frames, weight, reduction)


# --------------------------------------------------------------------------- modules + factory


class MaskedLoss(nn.Module):
    """A loss function bound to its keyword arguments; tensors (weights) move with ``.to()``.

    ``forward(inputs, targets, mask=None)``.
    """

    def __init__(self, fn: Callable[..., Tensor], **kwargs: Any):
        super().__init__()
        self.fn = fn
        self.kwargs = {}
        for key, value in kwargs.items():
            if isinstance(value, (list, tuple)):
                value = torch.tensor(value, dtype=torch.float32)
            if isinstance(value, Tensor):
                self.register_buffer(key, value.float())
            else:
                self.kwargs[key] = value

    def forward(self, inputs: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
        buffers = dict(self.named_buffers(recurse=False))
        return self.fn(inputs, targets, mask, **self.kwargs, **buffers)

    def extra_repr(self) -> str:
        return f"{self.fn.__name__}, " + ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())


#: Config names per task -> loss function. The first name of each task is its default.
LOSSES: dict[Task, dict[str, Callable[..., Tensor]]] = {
    Task.AU: {"asl": asymmetric_loss, "bce": masked_bce_with_logits},
    Task.EXPR: {"focal": focal_loss, "ce": masked_cross_entropy, "vnaw": vnaw_loss},
    Task.VA: {"ccc": ccc_loss, "mse": masked_mse, "grid": va_grid_loss, "polar": polar_va_loss},
}


def build_loss(task: Task | str, name: str, **kwargs: Any) -> MaskedLoss:
    """The loss called ``name`` for ``task`` (a config entry), bound to ``kwargs``.

    E.g. ``build_loss("AU", "asl", gamma_neg=4, margin=0.05)``,
    ``build_loss("EXPR", "focal", alpha=[1.0] * 8)``. Lists become tensors (buffers).
    """
    try:
        task = task if isinstance(task, Task) else Task(str(task).upper())
    except ValueError:
        valid = ", ".join(t.value for t in Task)
        raise WildaffectError(f"unknown task {task!r}; valid tasks: {valid}") from None
    table = LOSSES[task]
    key = name.lower()
    if key not in table:
        raise WildaffectError(
            f"unknown loss {name!r} for task {task.value}; valid names: {', '.join(table)}"
        )
    fn = table[key]
    options = [p for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(kwargs) - {p.name for p in options})
    if unknown:
        raise WildaffectError(
            f"loss {key!r} has no option {', '.join(unknown)}; "
            f"valid options: {', '.join(p.name for p in options)}"
        )
    return MaskedLoss(fn, **kwargs)
