"""Evaluate a training run: checkpoint -> per-video predictions -> post-processing ->
challenge metrics -> per-AU thresholds -> prediction CSVs and ABAW submission files.

Post-processing, in this order, on each video's frame sequence:

- ``smooth`` (AU probabilities and VA values): a centred moving average (``smooth_method=
  "mean"``) or moving median (``"median"``) over ``smooth`` frames. Windows shrink at the
  video's ends (a frame near the start averages only the frames that exist), so no padding
  value leaks in. Even windows reach one frame further back than forward.
- ``vote_window`` (EXPR): seed 000's sliding-window soft voting, the class probabilities
  averaged over a window centred on each frame, then argmax: the same centred mean.

AU decisions use per-AU thresholds: tuned on the validation split with
:func:`~wildaffect.metrics.search_au_thresholds` when asked (stored in ``RUN/thresholds.json``
so later evaluation and prediction use them), else that file's, else 0.5. Tuning and scoring
on the same split is optimistic; ``metrics.json`` records where the thresholds came from and
also gives the F1 at 0.5.

Long videos are predicted in overlapping windows of ``chunk_len`` frames (hop ``chunk_len/2``,
outputs averaged where windows overlap) to bound memory; a video that fits in one window is
predicted whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import AU_NAMES, EXPR_NAMES, SPLITS, VA_NAMES, Task

THRESHOLDS_FILE = "thresholds.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_DIR = "predictions"
DEFAULT_CHUNK_LEN = 4096
SMOOTH_METHODS = ("mean", "median")


# --------------------------------------------------------------------------- run folder


def find_checkpoint(run_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """The given checkpoint, else the run's best, else ``final.ckpt``, else ``last.ckpt``."""
    from wildaffect.train.run import CHECKPOINT_DIR, FINAL_CHECKPOINT

    run_dir = Path(run_dir)
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise WildaffectError(f"{path}: checkpoint not found")
        return path
    if not run_dir.is_dir():
        raise WildaffectError(f"{run_dir}: run folder not found")
    best = sorted((run_dir / CHECKPOINT_DIR).glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    for path in [*best[-1:], run_dir / FINAL_CHECKPOINT, run_dir / CHECKPOINT_DIR / "last.ckpt"]:
        if path.is_file():
            return path
    raise WildaffectError(f"{run_dir}: no checkpoint (expected checkpoints/best-*.ckpt, "
                          f"{FINAL_CHECKPOINT} or checkpoints/last.ckpt)")


def load_thresholds(run_dir: str | Path) -> np.ndarray | None:
    """(12,) per-AU thresholds stored with the run, or None."""
    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return np.array([float(data["thresholds"][name]) for name in AU_NAMES])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(path, f"not a thresholds file ({err})") from None


def save_thresholds(run_dir: str | Path, thresholds: np.ndarray, **meta: Any) -> Path:
    from wildaffect.io.atomic import atomic_write_text

    data = {"thresholds": {n: float(t) for n, t in zip(AU_NAMES, thresholds)}, **meta}
    return atomic_write_text(Path(run_dir) / THRESHOLDS_FILE, json.dumps(data, indent=2) + "\n")


# --------------------------------------------------------------------------- smoothing


def _window_bounds(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame t, the window [lo, hi) centred on t, clipped to the sequence."""
    t = np.arange(n)
    back = window // 2
    lo = np.maximum(t - back, 0)
    hi = np.minimum(t - back + window, n)
    return lo, hi


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred mean over ``window`` frames along axis 0, windows shrinking at the ends.
    x: (T, C) -> (T, C) float64. O(T C) with a cumulative sum."""
    x = np.asarray(x, np.float64)
    if window <= 1 or x.shape[0] == 0:
        return x.copy()
    lo, hi = _window_bounds(x.shape[0], window)
    csum = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    return (csum[hi] - csum[lo]) / (hi - lo).reshape(-1, *([1] * (x.ndim - 1)))


def moving_median(x: np.ndarray, window: int) -> np.ndarray:
    """Centred median over ``window`` frames along axis 0, windows shrinking at the ends.
    Vectorised: NaN-padded sliding windows and ``nanmedian``."""
    x = np.asarray(x, np.float64)
    if window <= 1 or x.shape[0] == 0:
        return x.copy()
    back = window // 2
    pad = [(back, window - 1 - back)] + [(0, 0)] * (x.ndim - 1)
    padded = np.pad(x, pad, constant_values=np.nan)
    views = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # (T, C, window)
    return np.nanmedian(views, axis=-1)


def smooth_reference(x: np.ndarray, window: int, method: str = "mean") -> np.ndarray:
    """Slow per-frame loop; the oracle of :func:`moving_average` / :func:`moving_median`."""
    x = np.asarray(x, np.float64)
    if window <= 1:
        return x.copy()
    lo, hi = _window_bounds(x.shape[0], window)
    reduce = np.mean if method == "mean" else np.median
    return np.stack([reduce(x[a:b], axis=0) for a, b in zip(lo, hi)]) if len(x) else x.copy()


def smooth(x: np.ndarray, window: int, method: str = "mean") -> np.ndarray:
    if method not in SMOOTH_METHODS:
        raise WildaffectError(f"smoothing method must be one of {', '.join(SMOOTH_METHODS)}, "
                              f"got {method!r}")
    return moving_average(x, window) if method == "mean" else moving_median(x, window)


def soft_vote(probs: np.ndarray, window: int) -> np.ndarray:
    """Seed 000's sliding-window soft voting: EXPR class probabilities (T, 8) averaged over a
    window centred on each frame (argmax afterwards gives the voted class)."""
    return moving_average(probs, window)


# --------------------------------------------------------------------------- prediction


def chunk_starts(n_frames: int, chunk_len: int) -> list[int]:
    """Window starts covering ``n_frames``: hop ``chunk_len // 2``, the last window flush with
    the end."""
    if n_frames <= chunk_len:
        return [0]
    hop = max(chunk_len // 2, 1)
    starts = list(range(0, n_frames - chunk_len, hop))
    return [*starts, n_frames - chunk_len]


def predict_video(model, item: dict[str, Any], chunk_len: int = DEFAULT_CHUNK_LEN
                  ) -> dict[Task, np.ndarray]:
    """One whole-video item (from :class:`VideoDataset`) -> {task: (T, C) float32}: AU and EXPR
    probabilities, VA values. Overlapping windows are averaged (module docstring)."""
    import torch

    from wildaffect.models.heads import to_probabilities

    keys = [k for k in ("visual", "landmarks", "face_mask", "valid_mask", "audio", "audio_mask")
            if k in item]
    n_frames = int(item["valid_mask"].shape[0])
    sums: dict[Task, np.ndarray] = {}
    counts = np.zeros((n_frames, 1))
    with torch.no_grad():
        for start in chunk_starts(n_frames, chunk_len):
            stop = min(start + chunk_len, n_frames)
            batch = {k: item[k][start:stop].unsqueeze(0) for k in keys}  # (1, L, ...)
            probs = to_probabilities(model(batch).outputs)
            for task, value in probs.items():
                value = value[0].float().cpu().numpy().astype(np.float64)  # (L, C)
                if task not in sums:
                    sums[task] = np.zeros((n_frames, value.shape[-1]))
                sums[task][start:stop] += value
            counts[start:stop] += 1
    return {task: (total / counts).astype(np.float32) for task, total in sums.items()}


# --------------------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    """What :func:`evaluate_run` computed and wrote."""

    metrics: dict[str, Any]
    thresholds: np.ndarray | None  # (12,) used for AU decisions (None without an AU head)
    threshold_source: str  # "tuned", "run" (thresholds.json), "default"
    # video -> task -> (T, C) post-processed AU probs / EXPR probs / VA values
    outputs: dict[str, dict[Task, np.ndarray]] = field(default_factory=dict)
    out_dir: Path | None = None
    checkpoint: Path | None = None
    submissions: dict[str, Path] = field(default_factory=dict)


def _check_features(dataset, model_config) -> None:
    shapes = dataset.feature_shapes()
    visual = shapes["visual"]
    want_dims = {"grid": 3, "regions": 2, "vector": 1}[model_config.visual_input]
    if len(visual) != want_dims or visual[-1] != model_config.d_visual:
        raise WildaffectError(
            f"cache {model_config.visual_encoder} features are {visual} per frame but the model "
            f"expects {model_config.visual_input} features of width {model_config.d_visual}")
    if model_config.has_audio and shapes.get("audio", (None,))[-1] != model_config.d_audio:
        raise WildaffectError(
            f"cache {model_config.audio_encoder} features are {shapes.get('audio')} per frame "
            f"but the model expects width {model_config.d_audio}")


def _sample_task(path: Path) -> Task:
    """Which task a sample file is for, from its header."""
    from wildaffect.io.submission import submission_header

    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().strip()
    except OSError as err:
        raise InputError(path, f"cannot read ({err.strerror})") from None
    for task in Task:
        if header == submission_header(task):
            return task
    raise InputError(path, f"header {header[:80]!r} is not an ABAW submission header", line=1)


def _video_table(video_outputs: dict[Task, np.ndarray], thresholds: np.ndarray | None) -> str:
    """One video's predictions as CSV text: frame, AU probabilities and decisions, EXPR
    probabilities and class, valence and arousal."""
    import pandas as pd

    from wildaffect.data.abaw import frame_names

    n = len(next(iter(video_outputs.values())))
    columns: dict[str, Any] = {"frame": frame_names(n)}
    if Task.AU in video_outputs:
        probs = video_outputs[Task.AU]
        for j, name in enumerate(AU_NAMES):
            columns[f"{name}_prob"] = np.round(probs[:, j], 5)
        for j, name in enumerate(AU_NAMES):
            columns[name] = (probs[:, j] >= thresholds[j]).astype(int)
    if Task.EXPR in video_outputs:
        probs = video_outputs[Task.EXPR]
        for j, name in enumerate(EXPR_NAMES):
            columns[f"p_{name}"] = np.round(probs[:, j], 5)
        columns["EXPR"] = probs.argmax(axis=1)
    if Task.VA in video_outputs:
        for j, name in enumerate(VA_NAMES):
            columns[name] = np.round(video_outputs[Task.VA][:, j], 5)
    return pd.DataFrame(columns).to_csv(index=False)


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path,
    cache_dir: str | Path,
    *,
    split: str = SPLITS[1],
    checkpoint: str | Path | None = None,
    tune_thresholds: bool = False,
    smooth_window: int = 0,
    smooth_method: str = "mean",
    vote_window: int = 0,
    sample: str | Path | None = None,
    out_dir: str | Path | None = None,
    chunk_len: int = DEFAULT_CHUNK_LEN,
) -> Evaluation:
    """Predict every video of ``split``, score it and write the outputs (module docstring).

    Writes ``OUT/metrics.json``, ``OUT/predictions/<video>.csv`` and
    ``OUT/predictions_<task>.txt`` (ABAW submission, in ``sample``'s order when given, else
    sorted videos and annotation frame order); ``RUN/thresholds.json`` when tuning.
    ``OUT`` defaults to ``RUN/eval/<split>``.
    """
    from wildaffect.data.dataset import VideoDataset
    from wildaffect.io.atomic import atomic_write_text
    from wildaffect.io.submission import write_submission
    from wildaffect.metrics import (
        DEFAULT_AU_THRESHOLD,
        au_f1,
        expr_f1,
        multitask_score,
        search_au_thresholds,
        va_score,
    )
    from wildaffect.train.run import load_model

    run_dir = Path(run_dir)
    if smooth_method not in SMOOTH_METHODS:
        raise WildaffectError(f"smoothing method must be one of {', '.join(SMOOTH_METHODS)}")
    if min(smooth_window, vote_window) < 0 or chunk_len < 1:
        raise WildaffectError("smooth and vote windows must be >= 0 and chunk_len >= 1")
    if tune_thresholds and split != SPLITS[1]:
        raise WildaffectError(f"thresholds are tuned on {SPLITS[1]} only, not {split}")
    ckpt = find_checkpoint(run_dir, checkpoint)
    sample_path = Path(sample) if sample is not None else None
    sample_task = _sample_task(sample_path) if sample_path is not None else None
    model = load_model(ckpt)
    cfg = model.config
    tasks = list(cfg.tasks)
    from wildaffect.streams import model_streams

    dataset = VideoDataset(cache_dir, data_dir, split, tasks, cfg.visual_encoder,
                           cfg.audio_encoder if cfg.has_audio else None,
                           model_streams(cfg, has_audio=cfg.has_audio))  # fmt: skip
    _check_features(dataset, cfg)
    out = Path(out_dir) if out_dir is not None else run_dir / "eval" / split

    outputs: dict[str, dict[Task, np.ndarray]] = {}
    labels: dict[Task, list[tuple[np.ndarray, np.ndarray]]] = {t: [] for t in tasks}
    for index in range(len(dataset)):
        item = dataset[index]
        raw = predict_video(model, item, chunk_len)
        processed = {}
        for task, value in raw.items():
            if task is Task.EXPR:
                processed[task] = soft_vote(value, vote_window).astype(np.float32)
            else:
                processed[task] = smooth(value, smooth_window, smooth_method).astype(np.float32)
        outputs[item["video"]] = processed
        for task in tasks:
            labels[task].append((item["labels"][task.value].numpy(),
                                 item["label_mask"][task.value].numpy()))

    def stacked(task: Task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pred = np.concatenate([outputs[v][task] for v in dataset.videos])
        target = np.concatenate([t for t, _ in labels[task]])
        mask = np.concatenate([m for _, m in labels[task]])
        return pred, target, mask

    metrics: dict[str, Any] = {"split": split, "checkpoint": str(ckpt), "n_videos": len(dataset),
                               "smooth": smooth_window, "smooth_method": smooth_method,
                               "vote_window": vote_window}
    thresholds, source, scores = None, "default", {}
    if Task.AU in tasks:
        pred, target, mask = stacked(Task.AU)
        if tune_thresholds:
            thresholds, source = search_au_thresholds(target, pred, valid=mask), "tuned"
            save_thresholds(run_dir, thresholds, split=split, checkpoint=str(ckpt),
                            smooth=smooth_window, smooth_method=smooth_method)
        elif (stored := load_thresholds(run_dir)) is not None:
            thresholds, source = stored, "run"
        else:
            thresholds = np.full(len(AU_NAMES), DEFAULT_AU_THRESHOLD)
        scores[Task.AU] = au = au_f1(target, pred, thresholds, valid=mask)
        metrics.update(au.as_dict())
        metrics["au_f1_at_0.5"] = au_f1(target, pred, DEFAULT_AU_THRESHOLD, valid=mask).mean
        metrics["au_thresholds"] = {n: float(t) for n, t in zip(AU_NAMES, thresholds)}
        metrics["au_threshold_source"] = source
    if Task.EXPR in tasks:
        pred, target, mask = stacked(Task.EXPR)
        scores[Task.EXPR] = expr = expr_f1(target, pred, valid=mask)
        metrics.update(expr.as_dict())
    if Task.VA in tasks:
        pred, target, mask = stacked(Task.VA)
        scores[Task.VA] = va = va_score(target, pred, valid=mask)
        metrics.update(va.as_dict())
    if len(scores) == 3:
        metrics["mtl_score"] = multitask_score(scores[Task.AU], scores[Task.EXPR], scores[Task.VA])

    # Outputs: per-video CSVs, one submission per task, metrics.json (last: marks completion).
    for video, video_outputs in outputs.items():
        atomic_write_text(out / PREDICTIONS_DIR / f"{video}.csv",
                          _video_table(video_outputs, thresholds))
    submissions = {}
    for task in tasks:
        decided = {}
        for video, video_outputs in outputs.items():
            value = video_outputs[task]
            if task is Task.AU:
                decided[video] = (value >= thresholds).astype(np.int64)
            elif task is Task.EXPR:
                decided[video] = value.argmax(axis=1)
            else:
                decided[video] = value
        path = out / f"predictions_{task.value}.txt"
        write_submission(path, task, decided,
                         sample=sample_path if sample_task is task else None)
        submissions[task.value] = path
    metrics["submissions"] = {k: str(v) for k, v in submissions.items()}
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return Evaluation(metrics=metrics, thresholds=thresholds, threshold_source=source,
                      outputs=outputs, out_dir=out, checkpoint=ckpt, submissions=submissions)


__all__ = [
    "Evaluation", "chunk_starts", "evaluate_run", "find_checkpoint", "load_thresholds",
    "moving_average", "moving_median", "predict_video", "save_thresholds", "smooth",
    "smooth_reference", "soft_vote",
]
