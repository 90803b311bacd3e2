"""Timings of the challenge metrics and the losses (not a test: prints a table, writes JSON).

    python benchmarks/bench_metrics_losses.py [--frames 200000] [--out PATH]

- per-AU threshold search (one sort per AU) vs a plain loop over the grid, at Aff-Wild2
  validation scale (a few hundred thousand frames);
- au_f1 / expr_f1 / va_score on the same frames, sklearn's f1_score for scale;
- ASL vs masked BCE vs focal forward+backward on a training batch (16 clips x 256 frames).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score

from wildaffect.losses import asymmetric_loss, focal_loss, masked_bce_with_logits
from wildaffect.metrics import (
    DEFAULT_THRESHOLD_GRID,
    au_f1,
    expr_f1,
    search_au_thresholds,
    va_score,
)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def grid_loop_thresholds(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The slow way: recount TP/FP/FN at every grid value (ties ignored; timing only)."""
    valid = t >= 0
    out = np.empty(t.shape[1])
    for j in range(t.shape[1]):
        f1s = []
        for g in DEFAULT_THRESHOLD_GRID:
            pred, pos = (p[:, j] >= g) & valid[:, j], t[:, j] == 1
            tp = (pred & pos).sum()
            f1s.append(2 * tp / max(pred.sum() + pos.sum(), 1))
        out[j] = DEFAULT_THRESHOLD_GRID[int(np.argmax(f1s))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/metrics_losses.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    n = args.frames
    t = (rng.random((n, 12)) < 0.2).astype(np.int64)
    t[rng.random((n, 12)) < 0.05] = -1
    p = np.clip(0.3 * (t == 1) + 0.7 * rng.random((n, 12)), 0, 1)
    e_t, e_p = rng.integers(0, 8, n), rng.random((n, 8))
    va_t = rng.uniform(-1, 1, (n, 2))

    rows: list[tuple[str, float]] = [
        ("search_au_thresholds (histogram)", best_of(lambda: search_au_thresholds(t, p))),
        ("threshold grid loop (reference)", best_of(lambda: grid_loop_thresholds(t, p), 1)),
        ("au_f1", best_of(lambda: au_f1(t, p))),
        ("sklearn f1_score, 12 AU columns", best_of(
            lambda: [f1_score(t[t[:, j] >= 0, j], p[t[:, j] >= 0, j] >= 0.5) for j in range(12)],
            1)),
        ("expr_f1 (probabilities)", best_of(lambda: expr_f1(e_t, e_p))),
        ("va_score", best_of(lambda: va_score(va_t, va_t * 0.5))),
    ]

    torch.manual_seed(0)
    logits = torch.randn(16, 256, 12, requires_grad=True)
    labels = (torch.rand(16, 256, 12) < 0.2).float()
    x8, y8 = torch.randn(16, 256, 8, requires_grad=True), torch.randint(0, 8, (16, 256))

    def fwd_bwd(fn: Callable[[], torch.Tensor], x: torch.Tensor) -> None:
        x.grad = None
        fn().backward()

    rows += [
        ("ASL fwd+bwd (16x256x12)", best_of(lambda: fwd_bwd(
            lambda: asymmetric_loss(logits, labels), logits), 5)),
        ("masked BCE fwd+bwd (16x256x12)", best_of(lambda: fwd_bwd(
            lambda: masked_bce_with_logits(logits, labels), logits), 5)),
        ("focal fwd+bwd (16x256x8)", best_of(lambda: fwd_bwd(
            lambda: focal_loss(x8, y8), x8), 5)),
    ]

    width = max(len(name) for name, _ in rows)
    print(f"{'what':<{width}}  ms   (frames={n}, 2 threads)")
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:8.2f}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"frames": n, "ms": dict(rows)}
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, suffix=".tmp") as f:
        json.dump(payload, f, indent=2)
    os.replace(f.name, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
