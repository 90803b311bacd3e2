"""Challenge metrics against scikit-learn and a float64 hand transcription of CCC."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from wildaffect.labels import (
    AU_INVALID,
    AU_NAMES,
    EXPR_INVALID,
    EXPR_NAMES,
    VA_INVALID,
)
from wildaffect.metrics import (
    DEFAULT_THRESHOLD_GRID,
    AUScore,
    EXPRScore,
    VAScore,
    au_f1,
    ccc,
    expr_f1,
    multitask_score,
    search_au_thresholds,
    va_score,
)

N_AU, N_EXPR = len(AU_NAMES), len(EXPR_NAMES)
SIZES = [1, 7, 64, 501]


# --------------------------------------------------------------------------- references


def sk_au_f1(t: np.ndarray, p: np.ndarray, thr: np.ndarray) -> list[float]:
    """Per-AU sklearn F1 over the valid frames of each column (0 for an empty column)."""
    out = []
    for j in range(N_AU):
        keep = t[:, j] != AU_INVALID
        if not keep.any():
            out.append(0.0)
            continue
        out.append(f1_score(t[keep, j], p[keep, j] >= thr[j], zero_division=0))
    return out


def ccc_reference(x: list[float], y: list[float]) -> float:
    """Lin's CCC written out in plain float64 Python, population statistics."""
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    vx = math.fsum((a - mx) ** 2 for a in x) / n
    vy = math.fsum((b - my) ** 2 for b in y) / n
    cov = math.fsum((a - mx) * (b - my) for a, b in zip(x, y)) / n
    return 2 * cov / (vx + vy + (mx - my) ** 2)


def random_au(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    rates = rng.uniform(0.02, 0.6, N_AU)
    t = (rng.random((n, N_AU)) < rates).astype(np.int64)
    t[rng.random((n, N_AU)) < 0.1] = AU_INVALID
    # Probabilities correlated with the labels, quantised so that ties across frames occur.
    p = np.clip(0.35 * (t == 1) + rng.random((n, N_AU)) * 0.7, 0, 1).round(2)
    return t, p


# --------------------------------------------------------------------------- AU


@pytest.mark.parametrize("n", SIZES)
def test_au_f1_matches_sklearn(n: int) -> None:
    rng = np.random.default_rng(n)
    t, p = random_au(rng, n)
    thr = rng.uniform(0.2, 0.8, N_AU)
    for threshold in (0.5, thr):
        score = au_f1(t, p, threshold)
        ref = sk_au_f1(t, p, np.broadcast_to(threshold, (N_AU,)))
        np.testing.assert_allclose(score.per_au, ref, rtol=0, atol=1e-12)
        assert score.mean == pytest.approx(np.mean(ref), abs=1e-12)


def test_au_f1_edge_columns() -> None:
    rng = np.random.default_rng(0)
    t, p = random_au(rng, 200)
    t[:, 0] = 0  # all negative, nothing predicted -> 0 by zero_division
    p[:, 0] = 0.1
    t[:, 1] = 0  # all negative, some predicted -> 0
    t[:, 2] = AU_INVALID  # all invalid -> 0, still counts in the mean of 12
    p[:, 2] = 0.9
    t[:, 3] = 1  # all positive, all predicted -> 1
    p[:, 3] = 0.99
    score = au_f1(t, p)
    assert score.per_au[:4] == (0.0, 0.0, 0.0, 1.0)
    assert f1_score(t[:, 0], p[:, 0] >= 0.5, zero_division=0) == 0.0
    np.testing.assert_allclose(score.per_au, sk_au_f1(t, p, np.full(N_AU, 0.5)), atol=1e-12)
    assert score.mean == pytest.approx(sum(score.per_au) / N_AU)
    assert not any(math.isnan(v) for v in score.per_au)


def test_au_f1_threshold_is_inclusive() -> None:
    t = np.ones((1, N_AU), np.int64)
    assert au_f1(t, np.full((1, N_AU), 0.5)).mean == 1.0
    assert au_f1(t, np.full((1, N_AU), 0.4999)).mean == 0.0


def test_au_f1_validity_mask_equals_markers() -> None:
    rng = np.random.default_rng(1)
    t, p = random_au(rng, 300)
    valid = t != AU_INVALID
    clean = np.where(valid, t, 1)  # garbage (but legal) labels under the mask
    assert au_f1(clean, p, valid=valid) == au_f1(t, p)


def test_au_f1_as_dict_and_torch_input() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    t, p = random_au(rng, 50)
    score = au_f1(torch.from_numpy(t), torch.from_numpy(p).to(torch.bfloat16))
    assert isinstance(score, AUScore)
    d = score.as_dict()
    assert d["au_f1"] == score.mean and d["au_f1_AU12"] == score.per_au[AU_NAMES.index("AU12")]
    assert len(d) == N_AU + 1
    with pytest.raises(AttributeError):
        score.mean = 1.0  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("t_shape", "p_shape"),
    [((10, 12), (10, 11)), ((10, 12), (9, 12)), ((10,), (10,)), ((10, 12, 1), (10, 12, 1))],
)
def test_au_f1_shape_errors(t_shape: tuple, p_shape: tuple) -> None:
    with pytest.raises(ValueError, match="shape|frames"):
        au_f1(np.zeros(t_shape, np.int64), np.zeros(p_shape))


def test_au_f1_rejects_bad_labels_and_mask() -> None:
    t = np.zeros((4, N_AU), np.int64)
    t[0, 0] = 2
    with pytest.raises(ValueError, match="0 or 1"):
        au_f1(t, np.zeros((4, N_AU)))
    with pytest.raises(ValueError, match="valid"):
        au_f1(np.zeros((4, N_AU)), np.zeros((4, N_AU)), valid=np.ones((4,), bool))


# --------------------------------------------------------------------------- thresholds


def brute_force_thresholds(t: np.ndarray, p: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Loop over AUs and grid values counting TP/FP/FN frame by frame in Python integers;
    ties -> closest to 0.5, then lower. (F1 itself is checked against sklearn above.)"""
    out = np.full(N_AU, 0.5)
    for j in range(N_AU):
        labels = [int(v) for v in t[:, j] if v != AU_INVALID]
        probs = [float(v) for v, lab in zip(p[:, j], t[:, j]) if lab != AU_INVALID]
        if 1 not in labels:
            continue
        best, best_key = None, None
        for g in grid:
            tp = fp = fn = 0
            for lab, prob in zip(labels, probs):
                hit = prob >= g
                tp += hit and lab == 1
                fp += hit and lab == 0
                fn += (not hit) and lab == 1
            f = 2 * tp / (2 * tp + fp + fn)
            key = (-f, round(abs(g - 0.5), 9), g)
            if best_key is None or key < best_key:
                best, best_key = g, key
        out[j] = best
    return out


@pytest.mark.parametrize("n", SIZES)
def test_threshold_search_matches_brute_force(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    t, p = random_au(rng, n)
    t[:, 5] = 0  # all-negative column -> 0.5
    t[:, 6] = AU_INVALID  # all-invalid column -> 0.5
    got = search_au_thresholds(t, p)
    np.testing.assert_array_equal(got, brute_force_thresholds(t, p, DEFAULT_THRESHOLD_GRID))
    assert got[5] == got[6] == 0.5
    # The tuned thresholds are at least as good as 0.5 on the data they were tuned on.
    assert au_f1(t, p, got).mean >= au_f1(t, p, 0.5).mean - 1e-12


def test_threshold_search_custom_grid_and_ties() -> None:
    rng = np.random.default_rng(7)
    t, p = random_au(rng, 120)
    t[:, 0] = 0  # no positive: 0.5 even though the grid lacks it
    grid = np.array([0.1, 0.3, 0.45, 0.55, 0.7])
    got = search_au_thresholds(t, p, grid=grid)
    np.testing.assert_array_equal(got, brute_force_thresholds(t, p, grid))
    assert got[0] == 0.5
    shuffled = grid[[3, 0, 4, 2, 1]]  # the grid need not be sorted
    np.testing.assert_array_equal(
        search_au_thresholds(t, p, grid=shuffled), search_au_thresholds(t, p, grid=grid)
    )
    # Perfectly separable: every threshold in [0.3, 0.7] reaches F1 = 1 -> the tie picks 0.45.
    t2 = np.zeros((4, N_AU), np.int64)
    t2[:2] = 1
    p2 = np.array([[0.9], [0.8], [0.2], [0.1]]).repeat(N_AU, axis=1)
    np.testing.assert_array_equal(search_au_thresholds(t2, p2, grid=grid), 0.45)


# --------------------------------------------------------------------------- EXPR


@pytest.mark.parametrize("n", SIZES)
def test_expr_f1_matches_sklearn(n: int) -> None:
    rng = np.random.default_rng(200 + n)
    t = rng.integers(0, N_EXPR, n)
    t[rng.random(n) < 0.15] = EXPR_INVALID
    probs = rng.random((n, N_EXPR))
    probs[np.arange(n), np.clip(t, 0, None)] += rng.random(n)  # some skill
    keep = t != EXPR_INVALID
    pred = probs.argmax(1)
    for y_pred in (pred, probs):
        s = expr_f1(t, y_pred)
        if keep.any():
            ref = f1_score(t[keep], pred[keep], labels=range(N_EXPR), average=None,
                           zero_division=0)
            np.testing.assert_allclose(s.per_class, ref, atol=1e-12)
            assert s.macro_f1 == pytest.approx(
                f1_score(t[keep], pred[keep], labels=range(N_EXPR), average="macro",
                         zero_division=0), abs=1e-12)
            assert s.accuracy == pytest.approx(accuracy_score(t[keep], pred[keep]), abs=1e-12)
        else:
            assert s == EXPRScore(0.0, (0.0,) * N_EXPR, 0.0)


def test_expr_f1_absent_classes_count_in_macro() -> None:
    t = np.array([0, 0, 4, 4, EXPR_INVALID])
    pred = np.array([0, 4, 4, 4, 1])  # class 1 predicted only on the invalid frame
    s = expr_f1(t, pred)
    ref = f1_score(t[:4], pred[:4], labels=range(N_EXPR), average="macro", zero_division=0)
    assert s.macro_f1 == pytest.approx(ref)
    assert s.per_class[1] == 0.0 and s.macro_f1 == pytest.approx(sum(s.per_class) / N_EXPR)
    assert s.as_dict()["expr_f1_Happiness"] == s.per_class[4]
    assert expr_f1(t, pred, valid=t != EXPR_INVALID) == s


def test_expr_f1_real_labels(shared_data) -> None:
    """Real crowd labels of faces-expression/ against a noisy copy of themselves."""
    labels = pd.read_csv(shared_data / "faces-expression" / "labels.csv")
    t = labels["expression"].map({name: i for i, name in enumerate(EXPR_NAMES)}).to_numpy()
    assert not np.isnan(t).any() and len(t) > 3000
    t = t.astype(np.int64)
    rng = np.random.default_rng(3)
    pred = np.where(rng.random(len(t)) < 0.3, rng.integers(0, N_EXPR, len(t)), t)
    s = expr_f1(t, pred)
    ref = f1_score(t, pred, labels=range(N_EXPR), average=None, zero_division=0)
    np.testing.assert_allclose(s.per_class, ref, atol=1e-12)
    assert 0.5 < s.accuracy < 1.0


@pytest.mark.parametrize(
    ("t", "p", "match"),
    [
        (np.zeros(5), np.zeros(4), "frames"),
        (np.zeros(5), np.zeros((5, 7)), "shape"),
        (np.zeros((5, 1)), np.zeros(5), "shape"),
        (np.array([0, 8]), np.array([0, 1]), "0..7"),
        (np.array([0, 1]), np.array([0, -1]), "0..7"),
        (np.array([0, 1]), np.array([0.5, 1.0]), "integers"),
    ],
)
def test_expr_f1_errors(t: np.ndarray, p: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        expr_f1(t, p)


# --------------------------------------------------------------------------- VA


@pytest.mark.parametrize("n", [2, 3, 50, 1000])
def test_ccc_matches_hand_transcription(n: int) -> None:
    rng = np.random.default_rng(300 + n)
    x = rng.uniform(-1, 1, n)
    y = 0.6 * x + 0.3 + rng.normal(0, 0.3, n)
    assert ccc(x, y) == pytest.approx(ccc_reference(list(x), list(y)), rel=1e-12, abs=1e-14)
    assert ccc(x, x) == pytest.approx(1.0)
    xc = x - x.mean()
    assert ccc(xc, -xc) == pytest.approx(-1.0)  # perfect discordance needs equal means
    # float32 input is computed in float64
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    ref32 = ccc_reference([float(v) for v in x32], [float(v) for v in y32])
    assert ccc(x32, y32) == pytest.approx(ref32, rel=1e-12, abs=1e-14)


def test_ccc_degenerate_cases_are_zero_not_nan() -> None:
    x = np.linspace(-1, 1, 9)
    assert ccc(x, np.full(9, 0.3)) == 0.0
    assert ccc(np.full(9, 0.3), np.full(9, 0.3)) == 0.0
    assert ccc([0.2], [0.2]) == 0.0  # single frame
    assert ccc([], []) == 0.0
    with pytest.raises(ValueError, match="ccc"):
        ccc(x, x[:-1])


@pytest.mark.parametrize("n", SIZES)
def test_va_score_masks_per_dimension(n: int) -> None:
    rng = np.random.default_rng(400 + n)
    t = rng.uniform(-1, 1, (n, 2))
    pr = np.clip(t + rng.normal(0, 0.4, (n, 2)), -1, 1)
    t[rng.random(n) < 0.2, 0] = VA_INVALID
    t[rng.random(n) < 0.1, 1] = VA_INVALID
    s = va_score(t, pr)
    refs = []
    for d in range(2):
        keep = t[:, d] != VA_INVALID
        x, y = list(t[keep, d]), list(pr[keep, d])
        refs.append(0.0 if len(x) < 2 else ccc_reference(x, y))
    assert (s.valence, s.arousal) == pytest.approx(refs, rel=1e-12, abs=1e-14)
    assert s.mean == pytest.approx(sum(refs) / 2)
    assert va_score(np.where(t == VA_INVALID, 0.0, t), pr, valid=t != VA_INVALID) == s


def test_va_score_constant_prediction_invalid_dimension_and_frame_mask() -> None:
    rng = np.random.default_rng(5)
    t = rng.uniform(-1, 1, (40, 2))
    pr = np.column_stack([np.zeros(40), t[:, 1]])
    s = va_score(t, pr)
    assert s.valence == 0.0 and s.arousal == pytest.approx(1.0)
    t[:, 1] = VA_INVALID
    s = va_score(t, pr)
    assert s == VAScore(0.0, 0.0, 0.0)
    frames = np.arange(40) < 20
    t2 = rng.uniform(-1, 1, (40, 2))
    s2 = va_score(t2, t2 * 0.5, valid=frames)
    assert s2.valence == pytest.approx(ccc_reference(list(t2[:20, 0]), list(t2[:20, 0] * 0.5)))
    assert set(s2.as_dict()) == {"va_ccc", "va_ccc_valence", "va_ccc_arousal"}


@pytest.mark.parametrize(
    ("t_shape", "p_shape"), [((5, 2), (5, 1)), ((5, 2), (4, 2)), ((5,), (5,)), ((5, 3), (5, 3))]
)
def test_va_score_shape_errors(t_shape: tuple, p_shape: tuple) -> None:
    with pytest.raises(ValueError, match="shape|frames"):
        va_score(np.zeros(t_shape), np.zeros(p_shape))


# --------------------------------------------------------------------------- multi-task


def test_multitask_score_is_the_sum_of_the_three() -> None:
    rng = np.random.default_rng(6)
    t, p = random_au(rng, 80)
    t[0] = 1  # every AU has a positive, so a perfect prediction scores 1
    au = au_f1(t, p)
    e_t = rng.integers(0, N_EXPR, 80)
    ex = expr_f1(e_t, rng.integers(0, N_EXPR, 80))
    va_t = rng.uniform(-1, 1, (80, 2))
    va = va_score(va_t, va_t + rng.normal(0, 0.3, (80, 2)))
    assert multitask_score(au, ex, va) == pytest.approx(
        (va.valence + va.arousal) / 2 + ex.macro_f1 + au.mean
    )
    perfect = multitask_score(au_f1(t, t == 1), expr_f1(e_t, e_t), va_score(va_t, va_t))
    assert perfect == pytest.approx(3.0)


def test_metrics_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, wildaffect.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
