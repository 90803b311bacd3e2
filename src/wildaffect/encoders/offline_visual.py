"""Weight-free visual encoder: one token per facial region from landmarks, blendshapes and HOG.

No pretrained ViT can be downloaded here, so the toolkit's default model reads these tokens
instead of DINOv2 patch features. Each region token concatenates, in fixed slots:

* ``geometry``: the region's 68-point landmarks in a *face frame* (origin at the eye midpoint,
  x along the eye line, y downwards, unit = inter-ocular distance), zero-padded to the largest
  region;
* ``measures``: named distances that FACS ties to AUs (lip-corner lift, mouth opening, brow
  height, eye opening...). A measure is used by a region only when every landmark it needs
  belongs to that region, so a token depends on its own landmarks and on the face frame only;
* ``blendshapes``: the MediaPipe blendshapes assigned to the region (:data:`BLENDSHAPE_REGIONS`);
* ``hog``: a HOG descriptor of a ``HOG_PATCH`` x ``HOG_PATCH`` patch of the crop, centred on the
  region and rotated with the eye line: the wrinkles (AU4 furrows, AU6 crow's feet, AU9/10
  nose wrinkles) that landmarks miss; OpenFace's classic weight-free appearance feature.

After the regions comes one ``global`` token (``include_global=True``): head pose (yaw, pitch,
roll in radians; translation / 100), all 52 blendshapes, the 68 face-frame points, and the
face scale and residual in-plane angle. Its slots differ from the region slots: see
:attr:`OfflineVisualEncoder.layouts` and :meth:`OfflineVisualEncoder.feature_names`.

Frames without a face (``face_mask`` False), with non-finite landmarks, or with a degenerate
eye distance are all zeros (:meth:`OfflineVisualEncoder.valid_frames` says which). Nothing is
normalised across frames: the slots have different scales (HOG ~0.1, coordinates ~1,
angles in radians), so the model standardises each column with training-set statistics.
Frames are independent: encode long videos in batches (a frame's crop is 150 kB).

Feeding ``HGA.forward_tokens``: with ``include_global=True`` there are len(regions) + 1
tokens, the global one last; build HGA for that many tokens or drop / use the last one apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from wildaffect.face.regions import DEFAULT_REGIONS, LEFT_EYE, N_LANDMARKS_68, RIGHT_EYE

#: HOG on a square patch of this many pixels: 8-px cells, 2x2-cell blocks, 9 unsigned bins.
HOG_PATCH = 32
HOG_CELL = 8
HOG_BLOCK = 16
HOG_BINS = 9
#: The patch side is the region's extent times this margin, and at least HOG_MIN_SIDE_IOD
#: inter-ocular distances (so one- or two-point regions still see some skin).
HOG_MARGIN = 1.25
HOG_MIN_SIDE_IOD = 0.5
#: Frames whose eye distance is below this (crop-normalised units) have no usable face frame.
MIN_IOD = 1e-3
#: Head translation from MediaPipe's matrix (centimetres) is divided by this to be O(1).
POSE_TRANSLATION_SCALE = 100.0

GLOBAL_TOKEN = "global"
#: token_dim is rounded up to a multiple of this (zero padding at the end).
TOKEN_DIM_MULTIPLE = 8

# MediaPipe / ARKit blendshape names say the SUBJECT's side: checked on this machine by painting
# over the subject's right eye (image left) of a portrait, which raised eyeBlinkRight and
# eyeSquintRight, not the Left ones. Region names in face/regions.py also use the subject's side.
#: Blendshape name -> the regions whose token carries it (every name also goes to the global
#: token). The AU in each comment is the FACS action the blendshape mostly reflects.
BLENDSHAPE_REGIONS: dict[str, tuple[str, ...]] = {
    "_neutral": (),
    "browDownLeft": ("left_brow", "AU4_glabella"),  # AU4
    "browDownRight": ("right_brow", "AU4_glabella"),  # AU4
    "browInnerUp": ("right_brow", "left_brow", "AU1_inner_brow"),  # AU1
    "browOuterUpLeft": ("left_brow", "AU2_outer_brow"),  # AU2
    "browOuterUpRight": ("right_brow", "AU2_outer_brow"),  # AU2
    "cheekPuff": ("right_cheek", "left_cheek"),  # AU33/34
    "cheekSquintLeft": ("left_cheek", "AU6_cheek_raise"),  # AU6
    "cheekSquintRight": ("right_cheek", "AU6_cheek_raise"),  # AU6
    "eyeBlinkLeft": ("left_eye", "AU7_lid_tighten"),  # AU45 (closes the aperture like AU7)
    "eyeBlinkRight": ("right_eye", "AU7_lid_tighten"),  # AU45
    "eyeLookDownLeft": ("left_eye",),  # gaze
    "eyeLookDownRight": ("right_eye",),
    "eyeLookInLeft": ("left_eye",),
    "eyeLookInRight": ("right_eye",),
    "eyeLookOutLeft": ("left_eye",),
    "eyeLookOutRight": ("right_eye",),
    "eyeLookUpLeft": ("left_eye",),
    "eyeLookUpRight": ("right_eye",),
    "eyeSquintLeft": ("left_eye", "AU6_cheek_raise", "AU7_lid_tighten"),  # AU6/AU7
    "eyeSquintRight": ("right_eye", "AU6_cheek_raise", "AU7_lid_tighten"),  # AU6/AU7
    "eyeWideLeft": ("left_eye", "AU7_lid_tighten"),  # AU5 (opposite of AU7)
    "eyeWideRight": ("right_eye", "AU7_lid_tighten"),  # AU5
    "jawForward": ("jaw", "AU26_jaw_drop"),  # AU29
    "jawLeft": ("jaw", "AU26_jaw_drop"),  # AU30
    "jawOpen": ("jaw", "mouth", "AU25_lips_part", "AU26_jaw_drop"),  # AU26/27
    "jawRight": ("jaw", "AU26_jaw_drop"),  # AU30
    "mouthClose": ("mouth", "AU24_lip_press", "AU25_lips_part"),  # lips closed, jaw open
    "mouthDimpleLeft": ("mouth", "left_cheek", "AU12_lip_corner_pull"),  # AU14
    "mouthDimpleRight": ("mouth", "right_cheek", "AU12_lip_corner_pull"),  # AU14
    "mouthFrownLeft": ("mouth", "AU15_lip_corner_depress"),  # AU15
    "mouthFrownRight": ("mouth", "AU15_lip_corner_depress"),  # AU15
    "mouthFunnel": ("mouth", "AU23_lip_tighten", "AU25_lips_part"),  # AU22
    "mouthLeft": ("mouth",),
    "mouthLowerDownLeft": ("mouth", "AU25_lips_part", "AU26_jaw_drop"),  # AU16
    "mouthLowerDownRight": ("mouth", "AU25_lips_part", "AU26_jaw_drop"),  # AU16
    "mouthPressLeft": ("mouth", "AU24_lip_press"),  # AU24
    "mouthPressRight": ("mouth", "AU24_lip_press"),  # AU24
    "mouthPucker": ("mouth", "AU23_lip_tighten"),  # AU18
    "mouthRight": ("mouth",),
    "mouthRollLower": ("mouth", "AU24_lip_press"),  # AU28
    "mouthRollUpper": ("mouth", "AU23_lip_tighten"),  # AU28
    "mouthShrugLower": ("mouth", "jaw", "AU15_lip_corner_depress", "AU24_lip_press"),  # AU17
    "mouthShrugUpper": ("mouth", "AU10_upper_lip", "AU23_lip_tighten"),  # AU10-like
    "mouthSmileLeft": ("mouth", "left_cheek", "AU6_cheek_raise", "AU12_lip_corner_pull"),  # AU12
    "mouthSmileRight": ("mouth", "right_cheek", "AU6_cheek_raise", "AU12_lip_corner_pull"),
    "mouthStretchLeft": ("mouth", "AU12_lip_corner_pull", "AU15_lip_corner_depress"),  # AU20
    "mouthStretchRight": ("mouth", "AU12_lip_corner_pull", "AU15_lip_corner_depress"),  # AU20
    "mouthUpperUpLeft": ("mouth", "AU10_upper_lip"),  # AU10
    "mouthUpperUpRight": ("mouth", "AU10_upper_lip"),  # AU10
    "noseSneerLeft": ("nose", "AU10_upper_lip", "AU4_glabella"),  # AU9
    "noseSneerRight": ("nose", "AU10_upper_lip", "AU4_glabella"),  # AU9
}


# --- region measures ----------------------------------------------------------------------
# q: (T, 68, 2) face-frame points (unit = inter-ocular distance, y down). Each measure returns
# (T,). "lift" / "height" are positive upwards.


def _dist(q: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(q[:, a] - q[:, b], axis=-1)


def _mean_dist(q: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    return np.mean([_dist(q, a, b) for a, b in pairs], axis=0)


def _y(q: np.ndarray, *idx: int) -> np.ndarray:
    return q[:, list(idx), 1].mean(axis=1)


@dataclass(frozen=True)
class Measure:
    """A named scalar of the face shape; ``needs`` = the 68-point indices it reads."""

    name: str
    needs: tuple[int, ...]
    fn: Callable[[np.ndarray], np.ndarray]


MEASURES: tuple[Measure, ...] = (
    # brows (AU1 inner raise, AU2 outer raise, AU4 lower + draw together)
    Measure("brow_gap", (21, 22), lambda q: _dist(q, 21, 22)),
    Measure("right_brow_height", (17, 18, 19, 20, 21), lambda q: -_y(q, 17, 18, 19, 20, 21)),
    Measure("left_brow_height", (22, 23, 24, 25, 26), lambda q: -_y(q, 22, 23, 24, 25, 26)),
    Measure("right_brow_arch", (17, 19, 21), lambda q: _y(q, 17, 21) - _y(q, 19)),
    Measure("left_brow_arch", (22, 24, 26), lambda q: _y(q, 22, 26) - _y(q, 24)),
    Measure("right_inner_brow_slope", (20, 21), lambda q: _y(q, 20) - _y(q, 21)),
    Measure("left_inner_brow_slope", (22, 23), lambda q: _y(q, 23) - _y(q, 22)),
    Measure("right_outer_brow_slope", (17, 18), lambda q: _y(q, 18) - _y(q, 17)),
    Measure("left_outer_brow_slope", (25, 26), lambda q: _y(q, 25) - _y(q, 26)),
    Measure("right_inner_brow_to_eye", (21, 39), lambda q: _dist(q, 21, 39)),
    Measure("left_inner_brow_to_eye", (22, 42), lambda q: _dist(q, 22, 42)),
    Measure("glabella_to_brows", (21, 22, 27), lambda q: _y(q, 27) - _y(q, 21, 22)),
    # eyes (AU5/7 aperture, AU6 lower-lid raise)
    Measure("right_eye_open", (37, 38, 40, 41), lambda q: _mean_dist(q, ((37, 41), (38, 40)))),
    Measure("left_eye_open", (43, 44, 46, 47), lambda q: _mean_dist(q, ((43, 47), (44, 46)))),
    Measure("right_eye_width", (36, 39), lambda q: _dist(q, 36, 39)),
    Measure("left_eye_width", (42, 45), lambda q: _dist(q, 42, 45)),
    Measure("right_lower_lid_lift", (36, 40, 41), lambda q: _y(q, 36) - _y(q, 40, 41)),
    Measure("left_lower_lid_lift", (45, 46, 47), lambda q: _y(q, 45) - _y(q, 46, 47)),
    # cheeks (AU6 + AU12 shorten the eye-to-lip-corner span)
    Measure("right_eye_to_lip_corner", (41, 48), lambda q: _dist(q, 41, 48)),
    Measure("left_eye_to_lip_corner", (46, 54), lambda q: _dist(q, 46, 54)),
    Measure("right_nostril_to_lip_corner", (31, 48), lambda q: _dist(q, 31, 48)),
    Measure("left_nostril_to_lip_corner", (35, 54), lambda q: _dist(q, 35, 54)),
    # nose (AU9 shortens the nose, flares nostrils; AU10 lifts the upper lip)
    Measure("nose_length", (27, 33), lambda q: _dist(q, 27, 33)),
    Measure("nostril_width", (31, 35), lambda q: _dist(q, 31, 35)),
    Measure("nose_tip_to_nostrils", (30, 33), lambda q: _y(q, 33) - _y(q, 30)),
    Measure("nose_to_upper_lip", (33, 51), lambda q: _dist(q, 33, 51)),
    Measure("upper_lip_arch", (50, 51, 52), lambda q: _y(q, 50, 52) - _y(q, 51)),
    # lip corners (AU12 lifts, AU15 depresses, AU20 stretches)
    Measure("mouth_width", (48, 54), lambda q: _dist(q, 48, 54)),
    Measure("right_corner_lift", (48, 51, 57), lambda q: _y(q, 51, 57) - _y(q, 48)),
    Measure("left_corner_lift", (54, 51, 57), lambda q: _y(q, 51, 57) - _y(q, 54)),
    Measure("right_corner_lift_local", (48, 49, 59), lambda q: _y(q, 49, 59) - _y(q, 48)),
    Measure("left_corner_lift_local", (54, 53, 55), lambda q: _y(q, 53, 55) - _y(q, 54)),
    Measure("right_corner_above_lower_lip", (48, 59), lambda q: _y(q, 59) - _y(q, 48)),
    Measure("left_corner_above_lower_lip", (54, 55), lambda q: _y(q, 55) - _y(q, 54)),
    Measure("right_corner_to_jaw", (5, 48), lambda q: _dist(q, 5, 48)),
    Measure("left_corner_to_jaw", (11, 54), lambda q: _dist(q, 11, 54)),
    # lips (AU23 tighten, AU24 press thin the lips; AU25 parts them; AU26 drops the jaw)
    Measure("outer_mouth_open", (51, 57), lambda q: _dist(q, 51, 57)),
    Measure("upper_lip_thickness", (51, 62), lambda q: _dist(q, 51, 62)),
    Measure(
        "upper_lip_side_thickness", (50, 52, 61, 63), lambda q: _mean_dist(q, ((50, 61), (52, 63)))
    ),
    Measure("lower_lip_thickness", (57, 66), lambda q: _dist(q, 57, 66)),
    Measure(
        "lower_lip_side_thickness", (56, 58, 65, 67), lambda q: _mean_dist(q, ((56, 65), (58, 67)))
    ),
    Measure(
        "inner_mouth_open",
        (61, 62, 63, 65, 66, 67),
        lambda q: _mean_dist(q, ((61, 67), (62, 66), (63, 65))),
    ),
    Measure("inner_mouth_width", (60, 64), lambda q: _dist(q, 60, 64)),
    Measure("lower_lip_width", (55, 59), lambda q: _dist(q, 55, 59)),
    Measure("upper_lip_width", (49, 53), lambda q: _dist(q, 49, 53)),
    # jaw
    Measure("lower_lip_to_chin", (8, 57), lambda q: _dist(q, 8, 57)),
    Measure("inner_lip_to_chin", (8, 66), lambda q: _dist(q, 8, 66)),
    Measure("chin_drop", (4, 8, 12), lambda q: _y(q, 8) - _y(q, 4, 12)),
    Measure("jaw_width", (4, 12), lambda q: _dist(q, 4, 12)),
    Measure("lower_jaw_width", (6, 10), lambda q: _dist(q, 6, 10)),
)


def measures_for_region(indices: Sequence[int]) -> tuple[Measure, ...]:
    """The measures whose landmarks all lie in the region (so the token stays local)."""
    own = set(indices)
    return tuple(m for m in MEASURES if set(m.needs) <= own)


# --- face frame and pose ------------------------------------------------------------------


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Eye-midpoint origin, eye-line angle and inter-ocular distance of each frame.

    landmarks: (T, 68, 2). Returns origin (T, 2), angle (T,) radians, iod (T,), and the
    points in the face frame q: (T, 68, 2) (rotated by -angle, divided by iod; iod is clamped
    at MIN_IOD to stay finite: callers mask frames below it).
    """
    right_eye = landmarks[:, list(RIGHT_EYE)].mean(axis=1)  # (T, 2), subject's right = image left
    left_eye = landmarks[:, list(LEFT_EYE)].mean(axis=1)
    origin = (right_eye + left_eye) / 2
    eye_line = left_eye - right_eye
    angle = np.arctan2(eye_line[:, 1], eye_line[:, 0])
    iod = np.linalg.norm(eye_line, axis=-1)
    cos, sin = np.cos(-angle), np.sin(-angle)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (T, 2, 2)
    centred = landmarks - origin[:, None]
    q = np.einsum("tij,tnj->tni", rot, centred) / np.maximum(iod, MIN_IOD)[:, None, None]
    return origin, angle, iod, q


def pose_features(pose: np.ndarray) -> np.ndarray:
    """(T, 4, 4) MediaPipe facial transformation matrices -> (T, 6): yaw, pitch, roll, t/100.

    Euler angles of R = Rz(roll) Ry(yaw) Rx(pitch), with atan2 throughout so that gimbal lock
    (|yaw| = 90 deg) and slightly non-orthonormal matrices stay finite.
    """
    r = pose[:, :3, :3]
    pitch = np.arctan2(r[:, 2, 1], r[:, 2, 2])
    yaw = np.arctan2(-r[:, 2, 0], np.hypot(r[:, 2, 1], r[:, 2, 2]))
    roll = np.arctan2(r[:, 1, 0], r[:, 0, 0])
    translation = pose[:, :3, 3] / POSE_TRANSLATION_SCALE
    return np.concatenate([np.stack([yaw, pitch, roll], -1), translation], -1)


def region_shape_reference(
    landmarks68: np.ndarray, indices: Sequence[int]
) -> tuple[list[float], list[float]]:
    """Slow per-frame reference for the geometry and measures slots of one region token.

    landmarks68: (68, 2) of ONE frame. Plain-Python face frame (no broadcasting), used by the
    tests to check the vectorised :meth:`OfflineVisualEncoder.encode`. Returns the region's
    face-frame coordinates (x0, y0, x1, y1, ...) and its measure values.
    """
    pts = [(float(x), float(y)) for x, y in landmarks68]
    rx = sum(pts[i][0] for i in RIGHT_EYE) / len(RIGHT_EYE)
    ry = sum(pts[i][1] for i in RIGHT_EYE) / len(RIGHT_EYE)
    lx = sum(pts[i][0] for i in LEFT_EYE) / len(LEFT_EYE)
    ly = sum(pts[i][1] for i in LEFT_EYE) / len(LEFT_EYE)
    ox, oy = (rx + lx) / 2, (ry + ly) / 2
    iod = math.hypot(lx - rx, ly - ry)
    theta = math.atan2(ly - ry, lx - rx)
    c, s = math.cos(theta), math.sin(theta)
    q = []
    for x, y in pts:  # rotate by -theta about the eye midpoint, scale by 1 / iod
        dx, dy = x - ox, y - oy
        q.append(((c * dx + s * dy) / iod, (-s * dx + c * dy) / iod))
    coords = [v for i in indices for v in q[i]]
    q_arr = np.array(q)[None]  # (1, 68, 2)
    values = [float(m.fn(q_arr)[0]) for m in measures_for_region(indices)]
    return coords, values


def _blendshape_names() -> tuple[str, ...]:
    from wildaffect.face.landmarker import BLENDSHAPE_NAMES

    return tuple(BLENDSHAPE_NAMES)


# --- the encoder --------------------------------------------------------------------------


class OfflineVisualEncoder:
    """Per-frame region tokens from MediaPipe outputs and the aligned crop; no weights.

    encode(...) -> (T, R, token_dim) float32 with R = len(regions) (+1 for the global token,
    last). Deterministic; frames are independent.
    """

    modality = "visual"

    def __init__(
        self,
        regions: Mapping[str, Sequence[int]] = DEFAULT_REGIONS,
        use_appearance: bool = True,
        include_global: bool = True,
        hog_patch: int = HOG_PATCH,
    ) -> None:
        if not regions:
            raise ValueError("regions must not be empty")
        for name, idx in regions.items():
            if not idx or min(idx) < 0 or max(idx) >= N_LANDMARKS_68:
                raise ValueError(f"region {name!r}: indices must be in [0, {N_LANDMARKS_68})")
        if hog_patch % 4:
            raise ValueError(
                f"hog_patch must be a multiple of 4 (2x2 cells per block), got {hog_patch}"
            )
        if GLOBAL_TOKEN in regions:
            raise ValueError(f"{GLOBAL_TOKEN!r} is reserved for the global token")
        self.regions = {name: tuple(idx) for name, idx in regions.items()}
        self.use_appearance = use_appearance
        self.include_global = include_global
        self.hog_patch = hog_patch
        self.blendshape_names = _blendshape_names()
        unknown = set(BLENDSHAPE_REGIONS) ^ set(self.blendshape_names)
        if unknown:
            raise ValueError(f"BLENDSHAPE_REGIONS and BLENDSHAPE_NAMES differ: {sorted(unknown)}")

        self.region_measures = {n: measures_for_region(idx) for n, idx in self.regions.items()}
        self.region_blendshapes = {
            n: tuple(b for b in self.blendshape_names if n in BLENDSHAPE_REGIONS[b])
            for n in self.regions
        }
        self._hog = None
        hog_dim = self._hog_descriptor().getDescriptorSize() if use_appearance else 0

        n_geo = 2 * max(len(idx) for idx in self.regions.values())
        n_meas = max(len(m) for m in self.region_measures.values())
        n_bs = max(len(b) for b in self.region_blendshapes.values())
        self.region_layout = _layout(
            [("geometry", n_geo), ("measures", n_meas), ("blendshapes", n_bs), ("hog", hog_dim)]
        )
        self.global_layout = _layout(
            [
                ("pose", 6),
                ("blendshapes", len(self.blendshape_names)),
                ("geometry", 2 * N_LANDMARKS_68),
                ("face", 2),
            ]
        )
        sizes = [self.region_layout["hog"].stop]
        if include_global:
            sizes.append(self.global_layout["face"].stop)
        # A multiple of 8 so that 8-head attention over the tokens (HGA) splits it evenly.
        self.token_dim = -(-max(sizes) // TOKEN_DIM_MULTIPLE) * TOKEN_DIM_MULTIPLE
        self.token_names = tuple(self.regions) + ((GLOBAL_TOKEN,) if include_global else ())
        # (R, max_points) gather indices and (R, max_bs) blendshape indices, -1 = padding.
        self._point_index = _padded(list(self.regions.values()), n_geo // 2)
        bs_pos = {b: i for i, b in enumerate(self.blendshape_names)}
        self._bs_index = _padded(
            [[bs_pos[b] for b in self.region_blendshapes[n]] for n in self.regions], n_bs
        )

    @property
    def num_tokens(self) -> int:
        return len(self.token_names)

    @property
    def layouts(self) -> dict[str, dict[str, slice]]:
        """Slot slices of a region token (key "region") and of the global token ("global")."""
        return {"region": dict(self.region_layout), GLOBAL_TOKEN: dict(self.global_layout)}

    def feature_names(self, token: str) -> list[str]:
        """Name of each of the token_dim columns of one token ("pad" for padding)."""
        names = ["pad"] * self.token_dim
        if token == GLOBAL_TOKEN:
            if not self.include_global:
                raise KeyError(token)
            lay = self.global_layout
            names[lay["pose"]] = ["yaw", "pitch", "roll", "tx", "ty", "tz"]
            names[lay["blendshapes"]] = list(self.blendshape_names)
            names[lay["geometry"]] = [f"p{i}_{a}" for i in range(N_LANDMARKS_68) for a in "xy"]
            names[lay["face"]] = ["iod", "eye_line_angle"]
            return names
        idx = self.regions[token]
        lay = self.region_layout
        for k, i in enumerate(idx):
            names[lay["geometry"].start + 2 * k : lay["geometry"].start + 2 * k + 2] = [
                f"p{i}_x",
                f"p{i}_y",
            ]
        for k, m in enumerate(self.region_measures[token]):
            names[lay["measures"].start + k] = m.name
        for k, b in enumerate(self.region_blendshapes[token]):
            names[lay["blendshapes"].start + k] = b
        if self.use_appearance:
            hog = lay["hog"]
            names[hog] = [f"hog{k}" for k in range(hog.stop - hog.start)]
        return names

    def encode(
        self,
        landmarks68: np.ndarray,
        blendshapes: np.ndarray,
        pose: np.ndarray,
        crops: np.ndarray | None,
        face_mask: np.ndarray,
    ) -> np.ndarray:
        """landmarks68: (T, 68, 2) in [0, 1] crop coords; blendshapes: (T, 52);
        pose: (T, 4, 4); crops: (T, H, W, 3) uint8 RGB or None; face_mask: (T,) bool.
        Returns tokens: (T, R, token_dim) float32.
        """
        landmarks68, blendshapes, pose, crops, face_mask = self._check(
            landmarks68, blendshapes, pose, crops, face_mask
        )
        t = landmarks68.shape[0]
        tokens = np.zeros((t, self.num_tokens, self.token_dim), np.float32)
        valid = self.valid_frames(landmarks68, face_mask)
        if not valid.any():
            return tokens
        lm = landmarks68[valid]
        bs = np.nan_to_num(blendshapes[valid].astype(np.float64))
        _, angle, iod, q = face_frame(lm)
        n_r = len(self.regions)

        lay = self.region_layout
        region = np.zeros((lm.shape[0], n_r, self.token_dim), np.float32)  # (T', R, D)
        pts = q[:, np.maximum(self._point_index, 0)]  # (T', R, P, 2)
        pts[:, self._point_index < 0] = 0.0
        region[..., lay["geometry"]] = pts.reshape(lm.shape[0], n_r, -1)
        for r, name in enumerate(self.regions):
            for k, m in enumerate(self.region_measures[name]):
                region[:, r, lay["measures"].start + k] = m.fn(q)
        gathered = bs[:, np.maximum(self._bs_index, 0)]  # (T', R, B)
        gathered[:, self._bs_index < 0] = 0.0
        region[..., lay["blendshapes"]] = gathered
        if self.use_appearance:
            region[..., lay["hog"]] = self._hog_features(crops[valid], lm, angle, iod)
        tokens[valid, :n_r] = region

        if self.include_global:
            g = self.global_layout
            glob = np.zeros((lm.shape[0], self.token_dim), np.float32)
            glob[:, g["pose"]] = pose_features(np.nan_to_num(pose[valid].astype(np.float64)))
            glob[:, g["blendshapes"]] = bs
            glob[:, g["geometry"]] = q.reshape(lm.shape[0], -1)
            glob[:, g["face"]] = np.stack([iod, angle], -1)
            tokens[valid, n_r] = glob
        return tokens

    @staticmethod
    def valid_frames(landmarks68: np.ndarray, face_mask: np.ndarray) -> np.ndarray:
        """(T,) frames that get tokens: masked in, finite landmarks, eye distance >= MIN_IOD."""
        finite = np.isfinite(landmarks68).all(axis=(1, 2))
        safe = np.where(finite[:, None, None], landmarks68, 0.0)
        iod = face_frame(safe)[2]
        return face_mask & finite & (iod >= MIN_IOD)

    # --- appearance ---

    def _hog_descriptor(self):
        if self._hog is None:
            import cv2

            p = self.hog_patch
            block = p // 2
            self._hog = cv2.HOGDescriptor(
                (p, p), (block, block), (block, block), (block // 2, block // 2), HOG_BINS
            )
        return self._hog

    def patch_transforms(self, landmarks68: np.ndarray, crop_size: tuple[int, int]) -> np.ndarray:
        """(T, R, 2, 3) affine maps from patch pixels to crop pixels (cv2 inverse-map form).

        The patch is centred on the region's landmarks, rotated with the eye line, and its
        side is HOG_MARGIN x the region's extent along the face axes, at least
        HOG_MIN_SIDE_IOD eye distances.
        """
        h, w = crop_size
        px = landmarks68 * np.array([w, h], dtype=np.float64)  # (T, 68, 2) pixels
        _, angle, iod, q = face_frame(px)
        cos, sin = np.cos(angle), np.sin(angle)
        out = np.zeros((px.shape[0], len(self.regions), 2, 3))
        c = (self.hog_patch - 1) / 2
        for r, idx in enumerate(self.regions.values()):
            sel = list(idx)
            extent = (q[:, sel].max(axis=1) - q[:, sel].min(axis=1)).max(axis=1) * iod
            side = np.maximum(HOG_MARGIN * extent, HOG_MIN_SIDE_IOD * iod)
            k = side / self.hog_patch
            a, b = k * cos, k * sin
            centre = px[:, sel].mean(axis=1)  # (T, 2)
            out[:, r, 0] = np.stack([a, -b, centre[:, 0] - a * c + b * c], -1)
            out[:, r, 1] = np.stack([b, a, centre[:, 1] - b * c - a * c], -1)
        return out

    def _hog_features(
        self, crops: np.ndarray, landmarks68: np.ndarray, angle: np.ndarray, iod: np.ndarray
    ) -> np.ndarray:
        """crops: (T, H, W, 3) uint8 -> (T, R, hog_dim) HOG of each region's patch."""
        import cv2

        hog = self._hog_descriptor()
        maps = self.patch_transforms(landmarks68, crops.shape[1:3])
        size = (self.hog_patch, self.hog_patch)
        out = np.zeros((crops.shape[0], len(self.regions), hog.getDescriptorSize()), np.float32)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        for t in range(crops.shape[0]):
            gray = cv2.cvtColor(np.ascontiguousarray(crops[t]), cv2.COLOR_RGB2GRAY)
            for r in range(len(self.regions)):
                patch = cv2.warpAffine(
                    gray, maps[t, r], size, flags=flags, borderMode=cv2.BORDER_REPLICATE
                )
                out[t, r] = hog.compute(patch).ravel()
        return out

    # --- input checks ---

    def _check(self, landmarks68, blendshapes, pose, crops, face_mask):
        landmarks68 = np.asarray(landmarks68, dtype=np.float64)
        blendshapes = np.asarray(blendshapes)
        pose = np.asarray(pose)
        face_mask = np.asarray(face_mask, dtype=bool)
        if landmarks68.ndim != 3 or landmarks68.shape[1:] != (N_LANDMARKS_68, 2):
            raise ValueError(f"landmarks68 must be (T, 68, 2), got {landmarks68.shape}")
        t = landmarks68.shape[0]
        expected = {
            "blendshapes": (blendshapes, (t, len(self.blendshape_names))),
            "pose": (pose, (t, 4, 4)),
            "face_mask": (face_mask, (t,)),
        }
        for name, (arr, shape) in expected.items():
            if arr.shape != shape:
                raise ValueError(f"{name} must be {shape}, got {arr.shape}")
        if self.use_appearance:
            if crops is None:
                raise ValueError("crops are required when use_appearance=True")
            crops = np.asarray(crops)
            if crops.ndim != 4 or crops.shape[0] != t or crops.shape[3] != 3:
                raise ValueError(f"crops must be (T={t}, H, W, 3), got {crops.shape}")
            if crops.dtype != np.uint8:
                raise ValueError(f"crops must be uint8, got {crops.dtype}")
        return landmarks68, blendshapes, pose, crops, face_mask


def _layout(slots: list[tuple[str, int]]) -> dict[str, slice]:
    out, start = {}, 0
    for name, size in slots:
        out[name] = slice(start, start + size)
        start += size
    return out


def _padded(rows: Sequence[Sequence[int]], width: int) -> np.ndarray:
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for r, row in enumerate(rows):
        out[r, : len(row)] = row
    return out
