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
    """Collects what a chunk needs from each frame, dropping the decoded picture at once
    (holding 256 full frames would cost 50-170 MiB more for nothing)."""

    def __init__(self, chunk_frames: int) -> None:
        self.capacity = chunk_frames
        self._reset()

    def _reset(self) -> None:
        n, nan = self.capacity, np.float32(np.nan)
        self.times: list[float] = []
        self.has_face = np.zeros(n, bool)
        self.landmarks68 = np.full((n, 68, 2), nan, np.float32)
        self.landmarks68_px = np.full((n, 68, 2), nan, np.float32)
        self.blendshapes = np.full((n, 52), nan, np.float32)
        self.pose = np.full((n, 4, 4), nan, np.float32)
        self.bbox = np.full((n, 4), nan, np.float32)
        self.crops = np.zeros((n, CROP_SIZE, CROP_SIZE, 3), np.uint8)

    def __len__(self) -> int:
        return len(self.times)

    def add(self, frame) -> None:
        i = len(self.times)
        self.times.append(frame.time_s)
        if frame.face is not None:
            self.has_face[i] = True
            self.landmarks68[i] = frame.aligned.landmarks68_norm
            self.landmarks68_px[i] = frame.points68_px
            self.blendshapes[i] = frame.face.blendshapes
            self.pose[i] = frame.face.pose
            self.bbox[i] = frame.face.bbox
            self.crops[i] = frame.aligned.crop

    def build(self, first_index: int, next_time: float | None, last_duration: float) -> FrameChunk:
        """The chunk; its last frame ends at ``next_time`` (None: + ``last_duration``)."""
        n = len(self.times)
        times = np.asarray(self.times, np.float64)
        end = next_time if next_time is not None else times[-1] + last_duration
        chunk = FrameChunk(
            first_index, times, np.append(times[1:], end), self.has_face[:n],
            self.landmarks68[:n], self.landmarks68_px[:n], self.blendshapes[:n], self.pose[:n],
            self.bbox[:n], self.crops[:n],
        )
        self._reset()
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
    builder, durations = _ChunkBuilder(chunk_frames), []
    first_index, previous_time = 0, None
    for frame in iter_face_frames(path, face_model, timings):
        if previous_time is not None:
            durations.append(frame.time_s - previous_time)
        if len(builder) == chunk_frames:
            yield builder.build(first_index, frame.time_s, 0.0)
            first_index += chunk_frames
        builder.add(frame)
        previous_time = frame.time_s
    if len(builder):
        last = float(np.median(durations)) if durations else AUDIO_HOP_S
        yield builder.build(first_index, None, last)


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
