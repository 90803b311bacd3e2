"""Statistics of the training set the recipe needs before fitting: input mean/std for a model
built with ``input_norm`` and EXPR class weights.

Both are taken from the training split only (never validation), over the frames the model
really learns from: input statistics over the valid frames *with a face* (no-face frames carry
zeroed features, see :mod:`wildaffect.data.dataset`), audio over the frames of videos that
have an audio track; class counts over the valid EXPR labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildaffect.labels import EXPR_NAMES, Task

#: Frames read at once while accumulating (bounds memory on long videos).
CHUNK_FRAMES = 4096


@dataclass
class RunningMoments:
    """Per-feature mean and population std of many ``(N, *shape)`` chunks, in float64."""

    total: np.ndarray | None = None
    total_sq: np.ndarray | None = None
    count: int = 0

    def add(self, x: np.ndarray) -> None:
        """x: (N, *shape) rows to include."""
        x = np.asarray(x, np.float64)
        if self.total is None:
            self.total, self.total_sq = np.zeros(x.shape[1:]), np.zeros(x.shape[1:])
        self.total += x.sum(axis=0)
        self.total_sq += np.square(x).sum(axis=0)
        self.count += x.shape[0]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) float32; raises when nothing was added."""
        if not self.count:
            raise ValueError("no frames to take statistics over")
        mean = self.total / self.count
        var = np.maximum(self.total_sq / self.count - np.square(mean), 0.0)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def input_stats(dataset) -> dict[str, np.ndarray]:
    """``{"visual_mean", "visual_std"[, "audio_mean", "audio_std"]}`` of a training dataset
    (:class:`~wildaffect.data.dataset.ClipDataset`), each of the per-frame feature shape.

    Visual: frames with a face and finite features (the dataset zeroes the others); audio:
    every frame of the videos with an audio track. Each frame counts once, whatever the clip
    overlap.
    """
    cache, reader = dataset.cache, dataset._reader
    visual, audio = RunningMoments(), RunningMoments()
    for source in dataset.sources:
        features = cache.read_features(reader.visual_encoder, source.video, mmap=True)
        has_face = cache.read_array(source.video, "has_face", mmap=True)
        for start in range(0, source.n_frames, CHUNK_FRAMES):
            chunk = np.asarray(features[start:start + CHUNK_FRAMES], np.float32)  # (N, ...)
            face = np.asarray(has_face[start:start + CHUNK_FRAMES], bool)
            keep = face & np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
            visual.add(chunk[keep])
        if source.audio_video is not None and not cache.read_meta(source.video).get(
            "audio_missing", False
        ):
            sound = cache.read_features(reader.audio_encoder, source.audio_video, mmap=True)
            for start in range(0, source.n_frames, CHUNK_FRAMES):
                audio.add(np.asarray(sound[start:min(start + CHUNK_FRAMES, source.n_frames)]))
    mean, std = visual.result()
    stats = {"visual_mean": mean, "visual_std": std}
    if reader.audio_encoder is not None:
        stats["audio_mean"], stats["audio_std"] = audio.result()
    return stats


def expr_class_counts(dataset, unit: str = "frame") -> np.ndarray:
    """(8,) valid EXPR labels per class over the dataset's videos: each frame once
    (``unit="frame"``), or each video once, split over its frames' classes (``"video"``)."""
    counts = np.zeros(len(EXPR_NAMES), np.float64 if unit == "video" else np.int64)
    for source in dataset.sources:
        labels = source.labels.get(Task.EXPR)
        if labels is None or not labels.valid.any():
            continue
        video = np.bincount(labels.values[labels.valid], minlength=len(EXPR_NAMES))
        counts += video / video.sum() if unit == "video" else video
    return counts


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """``(n_max / n_c) ** power`` per class, normalised to mean 1 over the present classes;
    a class absent from training gets 0 (nothing to learn it from). power 1 = fully balanced,
    0.5 = square-root, 0 = all ones."""
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    if not present.any():
        raise ValueError("no labels to weight classes by")
    weights = np.where(present, (counts.max() / np.maximum(counts, 1)) ** power, 0.0)
    return (weights / weights[present].mean()).astype(np.float32)
