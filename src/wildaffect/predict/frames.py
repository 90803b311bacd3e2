"""Frames in chunks for prediction: the face front-end's output, T frames at a time.

Each chunk also carries the time the next frame starts (``end_s`` of its last frame), so the
audio of every frame can be pooled over ``[t_i, t_{i+1})`` exactly as the training cache
does (:func:`wildaffect.io.align.frame_audio_ranges`), whatever the chunk size. The last frame
of the input lasts the median frame duration, as there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildaffect.face.align import CROP_SIZE
from wildaffect.io.align import AUDIO_HOP_S


@dataclass
class FrameChunk:
    """T consecutive frames; arrays are NaN (crops zero) where ``has_face`` is False."""

    first_index: int  # 0-based index of the chunk's first frame in the input
    times: np.ndarray  # (T,) float64 s on the frame timeline
    ends: np.ndarray  # (T,) float64 s: the next frame's time (the last: + median duration)
    has_face: np.ndarray  # (T,) bool
    landmarks68: np.ndarray  # (T, 68, 2) float32 in [0, 1] crop coordinates
    landmarks68_px: np.ndarray  # (T, 68, 2) float32 frame pixels
    blendshapes: np.ndarray  # (T, 52) float32
    pose: np.ndarray  # (T, 4, 4) float32
    bbox: np.ndarray  # (T, 4) float32 x0, y0, x1, y1 frame pixels
    crops: np.ndarray  # (T, 224, 224, 3) uint8
    audio_only: bool = False

    def __len__(self) -> int:
        return len(self.times)


class _ChunkBuilder:
    def __init__(self) -> None:
        self.rows: list = []

    def add(self, frame) -> None:
        self.rows.append(frame)

    def build(self, first_index: int, ends: np.ndarray) -> FrameChunk:
        n = len(self.rows)
        nan = np.float32(np.nan)
        chunk = FrameChunk(
            first_index=first_index,
            times=np.array([f.time_s for f in self.rows], np.float64),
            ends=ends,
            has_face=np.array([f.face is not None for f in self.rows], bool),
            landmarks68=np.full((n, 68, 2), nan, np.float32),
            landmarks68_px=np.full((n, 68, 2), nan, np.float32),
            blendshapes=np.full((n, 52), nan, np.float32),
            pose=np.full((n, 4, 4), nan, np.float32),
            bbox=np.full((n, 4), nan, np.float32),
            crops=np.zeros((n, CROP_SIZE, CROP_SIZE, 3), np.uint8),
        )
        for i, f in enumerate(self.rows):
            if f.face is None:
                continue
            chunk.landmarks68[i] = f.aligned.landmarks68_norm
            chunk.landmarks68_px[i] = f.points68_px
            chunk.blendshapes[i] = f.face.blendshapes
            chunk.pose[i] = f.face.pose
            chunk.bbox[i] = f.face.bbox
            chunk.crops[i] = f.aligned.crop
        self.rows = []
        return chunk


def iter_frame_chunks(
    path: str | Path,
    chunk_frames: int,
    face_model: str | os.PathLike[str] | None = None,
    timings: dict[str, float] | None = None,
) -> Iterator[FrameChunk]:
    """Yield the input's frames in chunks of ``chunk_frames`` (the last may be shorter).

    A chunk is released once the frame after it is decoded (its time closes the chunk's last
    interval); memory holds one chunk of crops plus the frame-duration history (8 bytes a
    frame, for the last frame's median duration).
    """
    from wildaffect.face.pipeline import iter_face_frames

    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    builder, durations = _ChunkBuilder(), []
    first_index, previous_time = 0, None
    for frame in iter_face_frames(path, face_model, timings):
        if previous_time is not None:
            durations.append(frame.time_s - previous_time)
        if len(builder.rows) == chunk_frames:
            times = [f.time_s for f in builder.rows]
            ends = np.array([*times[1:], frame.time_s], np.float64)
            yield builder.build(first_index, ends)
            first_index += chunk_frames
        builder.add(frame)
        previous_time = frame.time_s
    if builder.rows:
        times = [f.time_s for f in builder.rows]
        last = float(np.median(durations)) if durations else AUDIO_HOP_S
        yield builder.build(first_index, np.array([*times[1:], times[-1] + last], np.float64))


def audio_only_chunk(first_index: int, n_frames: int) -> FrameChunk:
    """Frames of an input without pictures: one per 20 ms audio feature, no face. Frame k is
    at ``k * AUDIO_HOP_S`` (the rule of :func:`wildaffect.io.align.audio_frame_times`)."""
    times = np.arange(first_index, first_index + n_frames, dtype=np.float64) * AUDIO_HOP_S
    nan = np.float32(np.nan)
    return FrameChunk(
        first_index=first_index,
        times=times,
        ends=times + AUDIO_HOP_S,
        has_face=np.zeros(n_frames, bool),
        landmarks68=np.full((n_frames, 68, 2), nan, np.float32),
        landmarks68_px=np.full((n_frames, 68, 2), nan, np.float32),
        blendshapes=np.full((n_frames, 52), nan, np.float32),
        pose=np.full((n_frames, 4, 4), nan, np.float32),
        bbox=np.full((n_frames, 4), nan, np.float32),
        crops=np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8),
        audio_only=True,
    )
