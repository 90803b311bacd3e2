"""The per-frame face front-end shared by ``preprocess`` and ``predict``.

decode (PyAV) -> MediaPipe FaceLandmarker (VIDEO mode) -> :class:`FaceTracker` keeps the
target face -> 478-point mesh mapped to the 68 iBUG points -> eye-aligned 224 crop.
One generator so that a record in the cache and a live prediction see identical faces.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildaffect.face.align import AlignedFace
from wildaffect.face.landmarker import FaceObservation


@dataclass
class FaceFrame:
    """One decoded frame and the target face in it (``face``/``aligned`` None: no face)."""

    index: int  # 0-based decode order
    time_s: float
    image: np.ndarray  # (H, W, 3) uint8 RGB
    n_faces: int  # faces detected, target or not
    face: FaceObservation | None
    points68_px: np.ndarray | None  # (68, 2) iBUG points in frame pixels
    aligned: AlignedFace | None


def iter_face_frames(
    path: str | Path,
    face_model: str | os.PathLike[str] | None = None,
    timings: dict[str, float] | None = None,
) -> Iterator[FaceFrame]:
    """Yield every frame of ``path`` with its tracked, aligned face.

    A fresh landmarker per call: VIDEO mode carries tracking state and timestamps from call
    to call, so a shared one would make an input's result depend on the inputs before it.
    ``timings`` (optional) accumulates ``decode_s`` and ``face_s``.
    """
    from wildaffect.face.align import align_face
    from wildaffect.face.landmarker import FaceLandmarker
    from wildaffect.face.mapping import to_ibug68
    from wildaffect.face.tracking import FaceTracker
    from wildaffect.io.media import iter_frames

    timings = timings if timings is not None else {}
    timings.setdefault("decode_s", 0.0)
    timings.setdefault("face_s", 0.0)
    with FaceLandmarker(mode="video", model_path=face_model) as landmarker:
        tracker = FaceTracker()
        frames = iter_frames(path)
        try:
            index = 0
            while True:
                start = time.perf_counter()
                frame = next(frames, None)  # frame.image: (H, W, 3) uint8 RGB
                decoded = time.perf_counter()
                timings["decode_s"] += decoded - start
                if frame is None:
                    return
                height, width = frame.image.shape[:2]
                faces = landmarker.detect(frame.image, timestamp_ms=frame.time_s * 1000.0)
                face = tracker.update(faces)
                points68 = aligned = None
                if face is not None:
                    points68 = to_ibug68(face.landmarks_px((height, width)))  # (68, 2) px
                    aligned = align_face(frame.image, points68)
                timings["face_s"] += time.perf_counter() - decoded
                yield FaceFrame(index, frame.time_s, frame.image, len(faces), face, points68,
                                aligned)
                index += 1
        finally:
            frames.close()
