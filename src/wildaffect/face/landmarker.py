"""MediaPipe FaceLandmarker behind a small numpy API.

One call per RGB frame returns every face found as a :class:`FaceObservation`: the 478-point
mesh, the 52 ARKit-style blendshapes and the 4x4 head pose. mediapipe is imported lazily so
that importing wildaffect stays fast.

Two practical fixes over the raw task API:

* VIDEO mode needs strictly increasing integer millisecond timestamps; real containers give
  repeated or rounding-equal times (29.97 fps, VFR), so a non-increasing one is bumped by 1 ms.
* The face detector inside the task sees the whole frame letterboxed to a 128 px square, so
  small faces in a wide group photo are missed. In IMAGE mode ``square_tiles=True`` also runs
  the model on overlapping square tiles (side = the short image side, stride half of it) and
  merges duplicates by box overlap.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from wildaffect.face.model_file import resolve_face_model

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

N_LANDMARKS_478 = 478
N_BLENDSHAPES = 52

#: mediapipe's blendshape categories, in the order of its output (checked against
#: face_landmarker.task, sha256 64184e22...).
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)

#: Two detections overlapping more than this (IoU) are the same face (tile merging, NMS).
DUPLICATE_IOU = 0.3

Mode = Literal["video", "image"]


@dataclass(frozen=True)
class FaceObservation:
    """One face in one frame.

    landmarks: (478, 3) float32; x, y normalised to [0, 1] by the image width and height (may
        stray slightly outside for faces cut by the border), z relative depth (mediapipe's).
    blendshapes: (52,) float32 scores in :data:`BLENDSHAPE_NAMES` order.
    pose: (4, 4) float32 facial transformation matrix (canonical face -> camera).
    bbox: (4,) float32 x0, y0, x1, y1 in pixels, the landmarks' bounding box.
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray
    pose: np.ndarray
    bbox: np.ndarray

    @property
    def area(self) -> float:
        return box_area(self.bbox)

    def landmarks_px(self, image_size: tuple[int, int]) -> np.ndarray:
        """(478, 2) x, y in pixels for an image of ``(height, width)``."""
        height, width = image_size
        return self.landmarks[:, :2] * np.array([width, height], dtype=np.float32)


def box_area(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    inter = box_area(
        np.array([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
    )
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def _ignore_stray_sigprof() -> None:
    """Keep a stray SIGPROF from killing the process.

    Seen here (mediapipe 1.2.2): after MediaPipe graphs have run and torch/Lightning work has
    happened in the same process, creating another FaceLandmarker can deliver SIGPROF, whose
    default action terminates the process ("Profiling timer expired", exit 155). Only the
    default disposition is replaced: a profiler that installed its own handler is left alone.
    Signal handlers can only be set from the main thread.
    """
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGPROF) == signal.SIG_DFL:
            signal.signal(signal.SIGPROF, signal.SIG_IGN)


@contextlib.contextmanager
def _quiet_stderr(enabled: bool = True) -> Iterator[None]:
    """Silence C++ logging written straight to fd 2 (absl ignores GLOG_* variables here)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FaceLandmarker:
    """MediaPipe's FaceLandmarker task; use as a context manager (it owns a native graph).

    ``mode="video"`` tracks landmarks between calls (faster, steadier) and needs timestamps;
    ``mode="image"`` treats every call independently.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        mode: Mode = "video",
        max_faces: int = 4,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        square_tiles: bool = False,
        quiet: bool = True,
    ):
        if mode not in ("video", "image"):
            raise ValueError(f"mode must be 'video' or 'image', got {mode!r}")
        if square_tiles and mode != "image":
            raise ValueError("square_tiles needs mode='image' (tiles break VIDEO-mode tracking)")
        self.model_path = resolve_face_model(model_path)
        self.mode: Mode = mode
        self.max_faces = max_faces
        self.square_tiles = square_tiles
        self._last_timestamp_ms: int | None = None

        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        running_mode = vision.RunningMode.VIDEO if mode == "video" else vision.RunningMode.IMAGE
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=running_mode,
            num_faces=max_faces,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        _ignore_stray_sigprof()
        with _quiet_stderr(quiet):
            self._task = vision.FaceLandmarker.create_from_options(options)

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        if self._task is not None:
            self._task.close()
            self._task = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- detection ------------------------------------------------------------------------
    def next_timestamp_ms(self, timestamp_ms: float | None) -> int:
        """The integer timestamp mediapipe will get: rounded, and bumped to stay increasing."""
        if timestamp_ms is None:
            stamp = 0 if self._last_timestamp_ms is None else self._last_timestamp_ms + 1
        else:
            stamp = round(timestamp_ms)
            if self._last_timestamp_ms is not None and stamp <= self._last_timestamp_ms:
                stamp = self._last_timestamp_ms + 1
        self._last_timestamp_ms = stamp
        return stamp

    def detect(
        self, image_rgb: np.ndarray, timestamp_ms: float | None = None
    ) -> list[FaceObservation]:
        """All faces in one RGB frame ``(H, W, 3) uint8``, largest first.

        In video mode ``timestamp_ms`` is the frame time (None: previous + 1 ms).
        """
        if self._task is None:
            raise RuntimeError("FaceLandmarker is closed")
        image_rgb = _as_rgb_uint8(image_rgb)
        height, width = image_rgb.shape[:2]
        if self.mode == "video":
            result = self._task.detect_for_video(
                self._to_mp_image(image_rgb), self.next_timestamp_ms(timestamp_ms)
            )
            faces = _observations(result, (height, width))
        else:
            faces = _observations(self._task.detect(self._to_mp_image(image_rgb)), (height, width))
            if self.square_tiles:
                faces = faces + self._detect_tiles(image_rgb)
        faces = _suppress_duplicates(faces)
        return sorted(faces, key=lambda face: -face.area)[: self.max_faces]

    def _to_mp_image(self, image_rgb: np.ndarray):
        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=image_rgb)

    def _detect_tiles(self, image_rgb: np.ndarray) -> list[FaceObservation]:
        """Faces found in overlapping square tiles, mapped back to full-image coordinates.

        Tile detections come after the full-image ones and, among themselves, those farthest
        from their tile's border first, so that duplicate suppression keeps uncut faces.
        """
        height, width = image_rgb.shape[:2]
        side = min(height, width)
        found: list[tuple[float, FaceObservation]] = []
        for y0, x0 in _square_tile_origins(height, width):
            tile = np.ascontiguousarray(image_rgb[y0 : y0 + side, x0 : x0 + side])
            for face in _observations(self._task.detect(self._to_mp_image(tile)), (side, side)):
                margin = min(face.bbox[0], face.bbox[1], side - face.bbox[2], side - face.bbox[3])
                shifted = _shift_observation(face, x0, y0, side, (height, width))
                found.append((float(margin), shifted))
        found.sort(key=lambda item: -item[0])
        return [face for _, face in found]


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB image (H, W, 3) uint8, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image)


def _square_tile_origins(height: int, width: int) -> list[tuple[int, int]]:
    """Top-left corners of square tiles of the short side, stride half a side, covering all."""
    if height == width:
        return []  # the one tile would be the whole image, already searched
    side = min(height, width)
    step = max(side // 2, 1)

    def starts(length: int) -> list[int]:
        last = length - side
        return sorted({*range(0, last + 1, step), last})

    return [(y0, x0) for y0 in starts(height) for x0 in starts(width)]


def _shift_observation(
    face: FaceObservation, x0: int, y0: int, side: int, image_size: tuple[int, int]
) -> FaceObservation:
    """Re-express a tile's observation in the full image (z scales with x, like mediapipe's)."""
    height, width = image_size
    landmarks = face.landmarks.copy()
    landmarks[:, 0] = (landmarks[:, 0] * side + x0) / width
    landmarks[:, 1] = (landmarks[:, 1] * side + y0) / height
    landmarks[:, 2] = landmarks[:, 2] * side / width
    bbox = face.bbox + np.array([x0, y0, x0, y0], dtype=np.float32)
    return FaceObservation(landmarks, face.blendshapes, face.pose, bbox)


def _suppress_duplicates(faces: list[FaceObservation]) -> list[FaceObservation]:
    """Greedy NMS in the given order of preference."""
    kept: list[FaceObservation] = []
    for face in faces:
        if all(box_iou(face.bbox, other.bbox) <= DUPLICATE_IOU for other in kept):
            kept.append(face)
    return kept


def _observations(result, image_size: tuple[int, int]) -> list[FaceObservation]:
    """Convert a mediapipe ``FaceLandmarkerResult`` to :class:`FaceObservation` s."""
    height, width = image_size
    faces = []
    for index, points in enumerate(result.face_landmarks):
        landmarks = np.array([(p.x, p.y, p.z) for p in points], dtype=np.float32)  # (478, 3)
        blendshapes = np.full(N_BLENDSHAPES, np.nan, dtype=np.float32)
        if index < len(result.face_blendshapes):
            for category in result.face_blendshapes[index]:
                if BLENDSHAPE_NAMES[category.index] != category.category_name:
                    raise RuntimeError(
                        f"unexpected blendshape {category.category_name!r} at index "
                        f"{category.index}: the model differs from the one BLENDSHAPE_NAMES records"
                    )
                blendshapes[category.index] = category.score
        pose = np.full((4, 4), np.nan, dtype=np.float32)
        if index < len(result.facial_transformation_matrixes):
            pose = np.asarray(result.facial_transformation_matrixes[index], dtype=np.float32)
        xy = landmarks[:, :2] * np.array([width, height], dtype=np.float32)
        bbox = np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float32)
        faces.append(FaceObservation(landmarks, blendshapes, pose, bbox))
    return faces
