"""Build tiny ABAW / Aff-Wild2 trees on disk for tests (and for anyone needing a dataset).

``build_abaw_tree(root)`` writes annotation files for all three tasks and both splits in the
6th-ABAW ("challenge") or older ("legacy") layout, with some invalid rows and a
``_left``/``_right`` pair, and optionally ``cropped_aligned/`` JPEGs with some frames missing.
It returns an :class:`AbawTree` holding the exact labels written, so tests compare against
them instead of re-parsing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wildaffect.data.abaw import (
    ANNOTATION_SUFFIX,
    LEGACY_ANNOTATIONS_DIR,
    format_annotation,
    n_value_columns,
)
from wildaffect.labels import (
    AU_INVALID,
    CROPPED_DIR,
    EXPR_INVALID,
    EXPR_NAMES,
    FRAME_NAME_FORMAT,
    SPLITS,
    TASK_SPECS,
    VA_INVALID,
    Task,
)

#: Default videos per split: one single-person video per split plus a two-person pair.
DEFAULT_VIDEOS: dict[str, tuple[str, ...]] = {
    SPLITS[0]: ("1-30-1280x720", "2-30-640x360_left", "2-30-640x360_right"),
    SPLITS[1]: ("3-25-1920x1080",),
}


@dataclass
class AbawTree:
    """What :func:`build_abaw_tree` wrote.

    ``labels[(task, split, video)] = (values, valid)`` in the shapes ``VideoLabels`` uses
    (AU (T, 12) float32, EXPR (T,) int64, VA (T, 2) float32, invalid markers kept).
    ``frames_present[video]`` is a (T,) bool array when JPEGs were written.
    """

    root: Path
    layout: str
    frames_dir: Path | None
    n_frames: dict[str, int]
    labels: dict[tuple[Task, str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    paths: dict[tuple[Task, str, str], Path] = field(default_factory=dict)
    frames_present: dict[str, np.ndarray] = field(default_factory=dict)

    def videos(self, task: Task, split: str) -> list[str]:
        return sorted(v for (t, s, v) in self.labels if t is task and s == split)


def task_dir(root: Path, task: Task, layout: str) -> Path:
    """Folder that holds ``Train_Set/`` and ``Validation_Set/`` for ``task``."""
    spec = TASK_SPECS[task]
    if layout == "challenge":
        return root / spec.challenge_dir
    if layout == "legacy":
        return root / LEGACY_ANNOTATIONS_DIR / spec.legacy_dir
    raise ValueError(f"layout must be 'challenge' or 'legacy', got {layout!r}")


def random_labels(
    task: Task, n_frames: int, rng: np.random.Generator, invalid_rate: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Random labels of one video with whole invalid rows (at least one when T >= 3)."""
    invalid_rows = rng.random(n_frames) < invalid_rate
    if n_frames >= 3 and not invalid_rows.any():
        invalid_rows[rng.integers(1, n_frames - 1)] = True
    if task is Task.EXPR:
        values = rng.integers(0, len(EXPR_NAMES), n_frames).astype(np.int64)
        values[invalid_rows] = EXPR_INVALID
        return values, values != EXPR_INVALID
    n_columns = n_value_columns(task)
    if task is Task.AU:
        values = rng.integers(0, 2, (n_frames, n_columns)).astype(np.float32)
        values[invalid_rows] = AU_INVALID
    else:  # VA: 3 decimals, so the float32 written and read back are the same number
        values = np.round(rng.uniform(-1, 1, (n_frames, n_columns)), 3).astype(np.float32)
        values[invalid_rows] = VA_INVALID
    return values, values != np.float32(TASK_SPECS[task].invalid)


def write_jpeg(path: Path, rng: np.random.Generator, size: int = 8) -> None:
    """A tiny random RGB JPEG."""
    from PIL import Image

    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
    path.write_bytes(buffer.getvalue())


def build_abaw_tree(
    root: str | Path,
    layout: str = "challenge",
    videos: Mapping[str, Sequence[str]] | None = None,
    n_frames: int | Mapping[str, int] = 12,
    seed: int = 0,
    tasks: Iterable[Task] = tuple(Task),
    with_frames: bool = False,
    missing_frame_rate: float = 0.2,
    invalid_rate: float = 0.1,
    line_ending: str = "\n",
    image_size: int = 8,
) -> AbawTree:
    """Write a tiny ABAW tree under ``root`` and return what was written.

    ``videos`` maps split -> video names (default :data:`DEFAULT_VIDEOS`); ``n_frames`` is one
    count for all videos or a per-video mapping (a video keeps its count across tasks, as in
    Aff-Wild2). With ``with_frames`` each video gets ``cropped_aligned/<video>/%05d.jpg``
    with about ``missing_frame_rate`` of the frames left out (never the first one).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    videos = DEFAULT_VIDEOS if videos is None else videos
    all_videos = [v for split in SPLITS for v in videos.get(split, ())]
    counts = {
        v: (n_frames if isinstance(n_frames, int) else int(n_frames[v])) for v in all_videos
    }
    tree = AbawTree(
        root=root, layout=layout, frames_dir=root / CROPPED_DIR if with_frames else None,
        n_frames=counts,
    )
    for task in tasks:
        for split in SPLITS:
            folder = task_dir(root, task, layout) / split
            folder.mkdir(parents=True, exist_ok=True)
            for video in videos.get(split, ()):
                values, valid = random_labels(task, counts[video], rng, invalid_rate)
                path = folder / f"{video}{ANNOTATION_SUFFIX}"
                path.write_bytes(format_annotation(task, values, line_ending).encode("utf-8"))
                tree.labels[(task, split, video)] = (values, valid)
                tree.paths[(task, split, video)] = path
    if with_frames:
        for video in all_videos:
            present = rng.random(counts[video]) >= missing_frame_rate
            present[0] = True
            video_dir = root / CROPPED_DIR / video
            video_dir.mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(present):
                write_jpeg(video_dir / FRAME_NAME_FORMAT.format(i + 1), rng, image_size)
            tree.frames_present[video] = present
    return tree
