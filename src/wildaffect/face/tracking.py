"""Follow one target face through a video.

ABAW labels belong to one person per video (two-person videos are split into ``_left`` /
``_right`` beforehand), so the pipeline keeps exactly one face per frame. The rule:

1. **Acquire**: at the first frame with any face, the target is the largest face (box area):
   in-the-wild video the subject is usually the closest person.
2. **Follow**: on later frames the target is the face whose box best overlaps (IoU) the last
   known target box; if none overlaps at all (fast motion, a dropped detection), the face whose
   centre is nearest, within ``max_centre_shift`` (default 1) box sizes (sqrt of the box area).
   Identity follows position, not size: a bigger face walking past does not steal the target.
3. **Lose / re-acquire**: a frame where no face matches is a frame without the target
   (even if other faces are there). After more than ``max_lost_frames`` such frames in a row
   the old box is stale, and the largest face present is acquired afresh.

Frames without the target are kept and flagged (``has_face`` False) with NaN arrays, so the
track stays aligned one-to-one with the video's frames and its labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from wildaffect.face.landmarker import (
    N_BLENDSHAPES,
    N_LANDMARKS_478,
    FaceLandmarker,
    FaceObservation,
    box_area,
    box_iou,
)
from wildaffect.face.mapping import to_ibug68
from wildaffect.face.regions import N_LANDMARKS_68


class FaceTracker:
    """Incremental target-face choice; see the module docstring for the rule."""

    def __init__(
        self, max_lost_frames: int = 15, min_iou: float = 0.0, max_centre_shift: float = 1.0
    ):
        self.max_lost_frames = max_lost_frames
        self.min_iou = min_iou
        self.max_centre_shift = max_centre_shift
        self.target_box: np.ndarray | None = None
        self.lost_frames = 0

    def reset(self) -> None:
        self.target_box = None
        self.lost_frames = 0

    def update(self, observations: list[FaceObservation]) -> FaceObservation | None:
        """The target among this frame's faces, or None if it is not visible."""
        if self.target_box is None or self.lost_frames > self.max_lost_frames:
            chosen = max(observations, key=lambda face: face.area, default=None)
        else:
            chosen = self._match(observations)
        if chosen is None:
            self.lost_frames += 1
        else:
            self.target_box = chosen.bbox.copy()
            self.lost_frames = 0
        return chosen

    def _match(self, observations: list[FaceObservation]) -> FaceObservation | None:
        assert self.target_box is not None
        if not observations:
            return None
        ious = [box_iou(self.target_box, face.bbox) for face in observations]
        best = int(np.argmax(ious))
        if ious[best] > self.min_iou:
            return observations[best]
        size = max(np.sqrt(box_area(self.target_box)), 1e-3)
        shifts = [np.linalg.norm(_centre(face.bbox) - _centre(self.target_box)) / size
                  for face in observations]
        best = int(np.argmin(shifts))
        return observations[best] if shifts[best] <= self.max_centre_shift else None


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], dtype=np.float64)


@dataclass
class FaceTrack:
    """Per-frame arrays for one target face; T = number of frames, NaN where ``has_face`` is False.

    times: (T,) float64 seconds; has_face: (T,) bool; n_faces_seen: (T,) int, faces detected
    in the frame (target or not); landmarks478: (T, 478, 3) normalised x, y in [0, 1] + z;
    landmarks68: (T, 68, 2) iBUG points in PIXELS of the frame (what alignment needs);
    blendshapes: (T, 52); pose: (T, 4, 4); bbox: (T, 4) x0, y0, x1, y1 in pixels;
    frame_size: (height, width) of the frames (None when there were no frames).
    """

    times: np.ndarray
    has_face: np.ndarray
    n_faces_seen: np.ndarray
    landmarks478: np.ndarray
    landmarks68: np.ndarray
    blendshapes: np.ndarray
    pose: np.ndarray
    bbox: np.ndarray
    frame_size: tuple[int, int] | None

    def __len__(self) -> int:
        return len(self.times)


class _TrackBuilder:
    """Accumulates one frame at a time, then stacks into a :class:`FaceTrack`."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, int, FaceObservation | None]] = []
        self.frame_size: tuple[int, int] | None = None

    def add(self, time_s: float, image_size: tuple[int, int], n_faces: int,
            chosen: FaceObservation | None) -> None:
        if self.frame_size is None:
            self.frame_size = image_size
        elif image_size != self.frame_size:
            raise ValueError(f"frame size changed from {self.frame_size} to {image_size}")
        self.rows.append((float(time_s), n_faces, chosen))

    def build(self) -> FaceTrack:
        n = len(self.rows)
        track = FaceTrack(
            times=np.array([row[0] for row in self.rows], dtype=np.float64),
            has_face=np.array([row[2] is not None for row in self.rows], dtype=bool),
            n_faces_seen=np.array([row[1] for row in self.rows], dtype=np.int64),
            landmarks478=np.full((n, N_LANDMARKS_478, 3), np.nan, dtype=np.float32),
            landmarks68=np.full((n, N_LANDMARKS_68, 2), np.nan, dtype=np.float32),
            blendshapes=np.full((n, N_BLENDSHAPES), np.nan, dtype=np.float32),
            pose=np.full((n, 4, 4), np.nan, dtype=np.float32),
            bbox=np.full((n, 4), np.nan, dtype=np.float32),
            frame_size=self.frame_size,
        )
        for t, (_, _, face) in enumerate(self.rows):
            if face is None:
                continue
            assert self.frame_size is not None
            track.landmarks478[t] = face.landmarks
            track.landmarks68[t] = to_ibug68(face.landmarks_px(self.frame_size))
            track.blendshapes[t] = face.blendshapes
            track.pose[t] = face.pose
            track.bbox[t] = face.bbox
        return track


def track_faces(
    frames: Iterable[tuple[float, np.ndarray]],
    landmarker: FaceLandmarker | None = None,
    tracker: FaceTracker | None = None,
    **landmarker_options: object,
) -> FaceTrack:
    """Detect and follow the target face in ``(time_s, rgb (H, W, 3) uint8)`` frames.

    Without a ``landmarker`` one is made in video mode (with ``landmarker_options``) and
    closed afterwards; frame times become its millisecond timestamps.
    """
    tracker = tracker or FaceTracker()
    owned = landmarker is None
    if landmarker is None:
        landmarker = FaceLandmarker(mode="video", **landmarker_options)  # type: ignore[arg-type]
    builder = _TrackBuilder()
    try:
        for time_s, image in frames:
            faces = landmarker.detect(image, timestamp_ms=float(time_s) * 1000.0)
            builder.add(time_s, image.shape[:2], len(faces), tracker.update(faces))
    finally:
        if owned:
            landmarker.close()
    return builder.build()
