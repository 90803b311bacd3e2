"""ABAW challenge metrics: AU F1, EXPR macro F1, VA CCC, and per-AU threshold search.

Numpy in, python floats and small frozen dataclasses out (no torch import: the CLI and the
evaluation scripts import this cheaply; CPU tensors are accepted and converted).

Conventions, chosen once here and checked against scikit-learn in ``tests/test_metrics.py``:

- F1 of a class with no true and no predicted positives is **0** (scikit-learn's
  ``f1_score(..., zero_division=0)``). This includes an AU column or EXPR class with no valid
  frame at all. Means are always over all 12 AUs / all 8 classes, as the challenge defines
  them, so a missing class pulls the score down instead of silently vanishing.
- An AU is predicted active when ``prob >= threshold``.
- CCC uses population statistics (ddof=0) in float64. When either series is constant (or
  empty) the covariance is zero and the CCC is defined as **0**, never NaN: a model that
  predicts a constant scores as badly as an uncorrelated one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wildaffect.labels import (
    AU_INVALID,
    AU_NAMES,
    AU_VALUES,
    EXPR_INVALID,
    EXPR_NAMES,
    VA_INVALID,
    VA_NAMES,
)

#: Threshold used when none is tuned, and the tie-break centre of the threshold search.
DEFAULT_AU_THRESHOLD = 0.5
#: Candidate thresholds of the per-AU search: 0.05, 0.10, ..., 0.95.
DEFAULT_THRESHOLD_GRID: np.ndarray = np.round(np.linspace(0.05, 0.95, 19), 10)

N_AU = len(AU_NAMES)
N_EXPR = len(EXPR_NAMES)
N_VA = len(VA_NAMES)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AUScore:
    """Per-AU binary F1 and their mean (the challenge's P_AU)."""

    per_au: tuple[float, ...]  # (12,) in AU_NAMES order
    mean: float
    thresholds: tuple[float, ...]  # (12,) thresholds that produced the predictions

    @property
    def score(self) -> float:
        return self.mean

    def as_dict(self) -> dict[str, float]:
        out = {"au_f1": self.mean}
        out.update({f"au_f1_{name}": f for name, f in zip(AU_NAMES, self.per_au)})
        return out


@dataclass(frozen=True)
class EXPRScore:
    """Macro F1 over the 8 classes (the challenge's P_EXPR), per-class F1 and accuracy."""

    macro_f1: float
    per_class: tuple[float, ...]  # (8,) in EXPR_NAMES order
    accuracy: float

    @property
    def score(self) -> float:
        return self.macro_f1

    def as_dict(self) -> dict[str, float]:
        out = {"expr_f1": self.macro_f1, "expr_acc": self.accuracy}
        out.update({f"expr_f1_{name}": f for name, f in zip(EXPR_NAMES, self.per_class)})
        return out


@dataclass(frozen=True)
class VAScore:
    """CCC of valence and arousal and their mean (the challenge's P_VA)."""

    valence: float
    arousal: float
    mean: float

    @property
    def score(self) -> float:
        return self.mean

    def as_dict(self) -> dict[str, float]:
        return {
            "va_ccc": self.mean,
            f"va_ccc_{VA_NAMES[0]}": self.valence,
            f"va_ccc_{VA_NAMES[1]}": self.arousal,
        }


# --------------------------------------------------------------------------- helpers


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """Array-likes and CPU torch tensors (any dtype, incl. bf16) to numpy."""
    if hasattr(x, "detach"):  # a torch tensor; torch itself is not imported here
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise ValueError(f"{name}: expected a numeric array, got dtype object")
    return arr


def _check_shape(arr: np.ndarray, shape: tuple[int | None, ...], name: str) -> None:
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")


def _same_length(n: int, other: np.ndarray, name: str) -> None:
    if other.shape[0] != n:
        raise ValueError(f"{name}: has {other.shape[0]} frames, y_true has {n}")


def _f1_from_counts(tp: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (#predicted + #true), 0 where both are 0 (zero_division=0). float64."""
    tp, denom = np.asarray(tp, np.float64), np.asarray(n_pred + n_true, np.float64)
    return np.divide(2.0 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def _validity(
    y_true: np.ndarray, valid: Any | None, invalid_marker: float, name: str
) -> np.ndarray:
    """Boolean mask of the frames to score: the given mask, else ``y_true != marker``."""
    if valid is None:
        return y_true != invalid_marker
    mask = _as_numpy(valid, "valid")
    if mask.shape != y_true.shape:
        raise ValueError(f"valid: expected shape {y_true.shape} like {name}, got {mask.shape}")
    return mask.astype(bool)


def _au_inputs(
    y_true: Any, y_prob: Any, valid: Any | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (positives (N, 12) bool, probs (N, 12) float64, valid (N, 12) bool)."""
    t = _as_numpy(y_true, "y_true")
    p = _as_numpy(y_prob, "y_prob")
    _check_shape(t, (None, N_AU), "y_true")
    _check_shape(p, (None, N_AU), "y_prob")
    _same_length(t.shape[0], p, "y_prob")
    mask = _validity(t, valid, AU_INVALID, "y_true")
    legal = np.zeros(t.shape, bool)
    for value in AU_VALUES:
        legal |= t == value
    if not (legal | ~mask).all():
        bad = np.unique(t[mask & ~legal])[:5]
        raise ValueError(f"y_true: valid AU labels must be 0 or 1, found {bad.tolist()}")
    p = p.astype(np.float64, copy=False)
    if (np.isnan(p) & mask).any():
        raise ValueError("y_prob: NaN at a valid frame")
    return (t == 1) & mask, p, mask


# --------------------------------------------------------------------------- AU


def au_f1(
    y_true: Any,
    y_prob: Any,
    threshold: float | Any = DEFAULT_AU_THRESHOLD,
    valid: Any | None = None,
) -> AUScore:
    """Per-AU binary F1 with invalid frames masked per AU, and the mean over the 12 AUs.

    y_true: (N, 12) in {0, 1, AU_INVALID}; y_prob: (N, 12) probabilities (or 0/1 decisions);
    threshold: a scalar or a (12,) array (e.g. from :func:`search_au_thresholds`);
    valid: optional (N, 12) bool mask used instead of the ``AU_INVALID`` markers.
    """
    pos, p, mask = _au_inputs(y_true, y_prob, valid)
    thr = np.broadcast_to(np.asarray(threshold, np.float64), (N_AU,))
    pred = (p >= thr) & mask  # (N, 12)
    f1 = _f1_from_counts((pred & pos).sum(0), pred.sum(0), pos.sum(0))
    return AUScore(
        per_au=tuple(float(v) for v in f1),
        mean=float(f1.mean()),
        thresholds=tuple(float(v) for v in thr),
    )


def search_au_thresholds(
    y_true: Any,
    y_prob: Any,
    grid: Any = DEFAULT_THRESHOLD_GRID,
    valid: Any | None = None,
) -> np.ndarray:
    """Per-AU threshold from ``grid`` maximising that AU's F1 on validation data. -> (12,)

    Ties go to the threshold closest to 0.5 (then the lower one), so a flat F1 curve keeps
    the untuned default; an AU with no valid positive gets 0.5. No loop over the grid: each
    probability is binned once by how many grid values it reaches (``p >= g``), and the
    counts of predicted and true positives at every grid value are cumulative sums of the
    per-bin histograms, O(N log G) for all AUs together. ``tests/test_metrics.py`` checks it
    against a brute-force loop.
    """
    pos, p, mask = _au_inputs(y_true, y_prob, valid)
    grid = np.asarray(grid, np.float64).ravel()
    if grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError("grid: needs at least one finite candidate threshold")
    n_grid = grid.size
    ascending = np.argsort(grid, kind="stable")
    g_sorted = grid[ascending]

    # reach[n, j] = how many sorted grid values p[n, j] is >= to; invalid frames reach none.
    reach = np.searchsorted(g_sorted, p, side="right")  # (N, 12) in 0..G
    reach = np.where(mask, reach, 0)
    offset = np.arange(N_AU) * (n_grid + 1)  # one histogram per AU, flattened
    hist_all = np.bincount((reach + offset).ravel(), minlength=N_AU * (n_grid + 1))
    hist_pos = np.bincount((reach + offset).ravel(), weights=pos.ravel().astype(np.float64),
                           minlength=N_AU * (n_grid + 1))
    hist_all = hist_all.reshape(N_AU, n_grid + 1)
    hist_pos = hist_pos.reshape(N_AU, n_grid + 1).round().astype(np.int64)
    # Predicted positives at sorted grid value k: frames that reach more than k values.
    above_all = np.cumsum(hist_all[:, ::-1], axis=1)[:, ::-1][:, 1:]  # (12, G)
    above_pos = np.cumsum(hist_pos[:, ::-1], axis=1)[:, ::-1][:, 1:]  # (12, G)
    n_true = pos.sum(0)  # (12,)
    f1 = np.empty((N_AU, n_grid))
    f1[:, ascending] = _f1_from_counts(above_pos, above_all, n_true[:, None])  # grid order

    # Tie-break key: distance to 0.5, rounded so 0.45 and 0.55 tie exactly, then lower value.
    order = np.lexsort((grid, np.round(np.abs(grid - DEFAULT_AU_THRESHOLD), 9)))  # (G,)
    ranked = f1[:, order]  # (12, G), best tie-break first
    best = order[np.argmax(ranked == ranked.max(axis=1, keepdims=True), axis=1)]  # (12,)
    return np.where(n_true > 0, grid[best], DEFAULT_AU_THRESHOLD)


# --------------------------------------------------------------------------- EXPR


def expr_f1(y_true: Any, y_pred: Any, valid: Any | None = None) -> EXPRScore:
    """Macro F1 over ALL 8 classes (labels=range(8), zero_division=0), per-class F1, accuracy.

    y_true: (N,) class ids in 0..7 or EXPR_INVALID; y_pred: (N,) class ids or (N, 8)
    scores/probabilities (argmax is taken); valid: optional (N,) bool mask instead of markers.
    With no valid frame every number is 0.
    """
    t = _as_numpy(y_true, "y_true")
    _check_shape(t, (None,), "y_true")
    pr = _as_numpy(y_pred, "y_pred")
    if pr.ndim == 2:
        _check_shape(pr, (None, N_EXPR), "y_pred")
        _same_length(t.shape[0], pr, "y_pred")
        pr = pr.argmax(axis=1) if pr.shape[0] else np.zeros(0, np.int64)
    else:
        _check_shape(pr, (None,), "y_pred")
        _same_length(t.shape[0], pr, "y_pred")
    mask = _validity(t, valid, EXPR_INVALID, "y_true")
    t, pr = t[mask], pr[mask]
    for arr, name in ((t, "y_true"), (pr, "y_pred")):
        if arr.size and (not np.all(arr == np.round(arr)) or arr.min() < 0 or arr.max() >= N_EXPR):
            raise ValueError(f"{name}: class ids must be integers in 0..{N_EXPR - 1}")
    t, pr = t.astype(np.int64), pr.astype(np.int64)

    n_true = np.bincount(t, minlength=N_EXPR)
    n_pred = np.bincount(pr, minlength=N_EXPR)
    tp = np.bincount(t[t == pr], minlength=N_EXPR)
    f1 = _f1_from_counts(tp, n_pred, n_true)
    acc = float(tp.sum() / t.size) if t.size else 0.0
    return EXPRScore(macro_f1=float(f1.mean()), per_class=tuple(float(v) for v in f1), accuracy=acc)


# --------------------------------------------------------------------------- VA


def ccc(x: Any, y: Any) -> float:
    """Lin's concordance correlation coefficient, population statistics, float64.

    CCC = 2 cov(x, y) / (var x + var y + (mean x - mean y)^2). 0 when either series is
    constant or empty (see module docstring).
    """
    a = _as_numpy(x, "x").astype(np.float64).ravel()
    b = _as_numpy(y, "y").astype(np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"ccc: x has {a.size} values, y has {b.size}")
    if a.size == 0 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("ccc: non-finite value")
    ma, mb = a.mean(), b.mean()
    da, db = a - ma, b - mb
    cov = np.mean(da * db)
    denom = np.mean(da * da) + np.mean(db * db) + (ma - mb) ** 2
    return float(2.0 * cov / denom)


def va_score(y_true: Any, y_pred: Any, valid: Any | None = None) -> VAScore:
    """CCC of valence and of arousal (each over its own valid frames) and their mean.

    y_true, y_pred: (N, 2) in VA_NAMES order; frames whose y_true is VA_INVALID are masked
    per dimension, or pass valid: (N, 2) (or (N,) for both dimensions) bool.
    """
    t = _as_numpy(y_true, "y_true").astype(np.float64)
    pr = _as_numpy(y_pred, "y_pred").astype(np.float64)
    _check_shape(t, (None, N_VA), "y_true")
    _check_shape(pr, (None, N_VA), "y_pred")
    _same_length(t.shape[0], pr, "y_pred")
    if valid is not None:
        v = _as_numpy(valid, "valid").astype(bool)
        if v.shape == (t.shape[0],):
            valid = np.repeat(v[:, None], N_VA, axis=1)
    mask = _validity(t, valid, VA_INVALID, "y_true")
    dims = [ccc(t[mask[:, d], d], pr[mask[:, d], d]) for d in range(N_VA)]
    return VAScore(valence=dims[0], arousal=dims[1], mean=float(np.mean(dims)))


# --------------------------------------------------------------------------- multi-task


def multitask_score(au: AUScore, expr: EXPRScore, va: VAScore) -> float:
    """ABAW multi-task-learning score P = P_VA + P_EXPR + P_AU (range [-1, 3])."""
    return float(va.mean + expr.macro_f1 + au.mean)
