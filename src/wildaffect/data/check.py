"""Validate a whole ABAW tree and summarise its labels (the engine of ``wildaffect data check``).

Every annotation file is parsed; a bad file is recorded and the check goes on, so one run
lists every problem. Statistics cover the files that parsed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildaffect.data.abaw import (
    DatasetIndex,
    VideoLabels,
    frames_present,
    parse_annotation,
    scan_dataset,
)
from wildaffect.errors import InputError
from wildaffect.labels import AU_NAMES, EXPR_NAMES, VA_NAMES, Task


@dataclass
class SplitSummary:
    """Counts and label distribution of one task and split.

    ``valid_frames`` counts frame lines with at least one valid label (the frames that
    train something). ``frames_with_image`` counts frame lines whose aligned crop exists
    (None when no frames folder was given). Distribution: AU ``positive_rate`` per AU over
    its valid frames; EXPR ``count`` per class; VA ``mean``/``std`` (population) per dimension.
    """

    task: Task
    split: str
    videos: int = 0
    frames: int = 0
    valid_frames: int = 0
    frames_with_image: int | None = None

    def __post_init__(self) -> None:
        width = {Task.AU: len(AU_NAMES), Task.EXPR: len(EXPR_NAMES), Task.VA: len(VA_NAMES)}
        n = width[self.task]
        # running sums per label column: AU positives / EXPR class counts / VA sum of values
        self._total = np.zeros(n)
        self._total_sq = np.zeros(n)  # VA only
        self._count = np.zeros(n)  # valid entries per column (AU, VA)

    def add(self, labels: VideoLabels, present: np.ndarray | None) -> None:
        valid = labels.valid if labels.valid.ndim == 2 else labels.valid[:, None]  # (T, C)
        self.videos += 1
        self.frames += labels.n_frames
        self.valid_frames += int(valid.any(axis=1).sum())
        if present is not None:
            self.frames_with_image = (self.frames_with_image or 0) + int(present.sum())
        if self.task is Task.EXPR:
            self._total += np.bincount(labels.values[labels.valid], minlength=len(EXPR_NAMES))
            return
        x = np.where(valid, labels.values, 0.0).astype(np.float64)  # (T, C), invalid -> 0
        self._count += valid.sum(axis=0)
        if self.task is Task.AU:
            self._total += (x == 1).sum(axis=0)
        else:
            self._total += x.sum(axis=0)
            self._total_sq += (x * x).sum(axis=0)

    @property
    def distribution(self) -> dict[str, float | int | dict[str, float] | None]:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self._total / self._count
            std = np.sqrt(np.maximum(self._total_sq / self._count - mean * mean, 0.0))
        if self.task is Task.AU:
            return {name: _finite_or_none(rate) for name, rate in zip(AU_NAMES, mean)}
        if self.task is Task.EXPR:
            return {name: int(c) for name, c in zip(EXPR_NAMES, self._total)}
        return {
            name: {"mean": _finite_or_none(m), "std": _finite_or_none(s)}
            for name, m, s in zip(VA_NAMES, mean, std)
        }

    def to_dict(self) -> dict:
        return {
            "videos": self.videos,
            "frames": self.frames,
            "valid_frames": self.valid_frames,
            "frames_with_image": self.frames_with_image,
            "distribution": self.distribution,
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass
class CheckReport:
    """Outcome of :func:`check_dataset`."""

    index: DatasetIndex
    frames_dir: Path | None
    summaries: dict[tuple[Task, str], SplitSummary]
    failures: list[InputError]

    @property
    def n_files(self) -> int:
        return len(self.index)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        tasks: dict[str, dict] = {}
        for (task, split), summary in self.summaries.items():
            tasks.setdefault(task.value, {})[split] = summary.to_dict()
        return {
            "root": str(self.index.root),
            "layout": self.index.layout.value,
            "frames_dir": str(self.frames_dir) if self.frames_dir else None,
            "files": self.n_files,
            "failed": len(self.failures),
            "failures": [
                {"path": str(err.path), "line": err.line, "reason": err.reason}
                for err in self.failures
            ],
            "tasks": tasks,
        }


def check_dataset(
    root: str | Path, task: Task | str | None = None, frames_dir: str | Path | None = None
) -> CheckReport:
    """Parse every annotation file under ``root``; count frames, labels and (optionally) images.

    Raises :class:`~wildaffect.errors.WildaffectError` only when the tree itself is unusable
    (no layout, missing split); bad files end up in ``report.failures``.
    """
    index = scan_dataset(root, task)
    frames_dir = Path(frames_dir) if frames_dir is not None else None
    summaries: dict[tuple[Task, str], SplitSummary] = {}
    failures: list[InputError] = []
    for entry in index:
        summary = summaries.setdefault(
            (entry.task, entry.split), SplitSummary(entry.task, entry.split)
        )
        if frames_dir is not None and summary.frames_with_image is None:
            summary.frames_with_image = 0
        try:
            labels = parse_annotation(entry.path, entry.task)
        except InputError as err:
            failures.append(err)
            continue
        present = (
            frames_present(frames_dir, entry.video, labels.n_frames) if frames_dir else None
        )
        summary.add(labels, present)
    return CheckReport(index=index, frames_dir=frames_dir, summaries=summaries,
                       failures=failures)
