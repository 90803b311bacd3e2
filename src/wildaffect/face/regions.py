"""Facial regions of interest as groups of 68-point (iBUG 300-W) landmark indices.

Defined once here and used by the face pipeline (drawing, crops) and by HGA (which pools
the patches each region's landmarks fall in). Indices are 0-based in the iBUG order:
jaw 0-16, right brow 17-21, left brow 22-26, nose bridge 27-30, nostrils 31-35,
right eye 36-41, left eye 42-47, outer lips 48-59, inner lips 60-67 ("right" is the
subject's right, i.e. the left of the image for a frontal face).
"""

from __future__ import annotations

N_LANDMARKS_68 = 68

JAW = tuple(range(17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE_BRIDGE = tuple(range(27, 31))
NOSTRILS = tuple(range(31, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))

#: Anatomical regions (the paper's "left eye, right eyebrow, mouth" kind of RoI).
ANATOMICAL_REGIONS: dict[str, tuple[int, ...]] = {
    "right_brow": RIGHT_BROW,
    "left_brow": LEFT_BROW,
    "right_eye": RIGHT_EYE,
    "left_eye": LEFT_EYE,
    "nose": NOSE_BRIDGE + NOSTRILS,
    "mouth": OUTER_LIPS + INNER_LIPS,
    "right_cheek": (1, 2, 3, 4, 31, 36, 41, 48),
    "left_cheek": (12, 13, 14, 15, 35, 45, 46, 54),
    "jaw": JAW[4:13],
}

#: Regions centred on where each ABAW AU shows (FACS muscle sites), for AU-specific tokens.
AU_REGIONS: dict[str, tuple[int, ...]] = {
    "AU1_inner_brow": (20, 21, 22, 23),  # frontalis, pars medialis
    "AU2_outer_brow": (17, 18, 25, 26),  # frontalis, pars lateralis
    "AU4_glabella": (21, 22, 27, 39, 42),  # corrugator / procerus between the brows
    "AU6_cheek_raise": (36, 41, 40, 45, 46, 47, 1, 15),  # orbicularis oculi, orbital part
    "AU7_lid_tighten": (37, 38, 40, 41, 43, 44, 46, 47),  # orbicularis oculi, palpebral part
    "AU10_upper_lip": (31, 33, 35, 50, 51, 52),  # levator labii superioris
    "AU12_lip_corner_pull": (48, 54, 49, 53, 59, 55),  # zygomaticus major
    "AU15_lip_corner_depress": (48, 54, 59, 55, 5, 11),  # depressor anguli oris
    "AU23_lip_tighten": (49, 50, 51, 52, 53, 61, 62, 63),  # orbicularis oris
    "AU24_lip_press": (55, 56, 57, 58, 59, 65, 66, 67),  # orbicularis oris
    "AU25_lips_part": (60, 61, 62, 63, 64, 65, 66, 67),  # lip separation
    "AU26_jaw_drop": (6, 7, 8, 9, 10, 57, 66),  # masseter relaxation, chin down
}

#: What HGA uses by default: the anatomical regions followed by the AU-centred ones.
DEFAULT_REGIONS: dict[str, tuple[int, ...]] = {**ANATOMICAL_REGIONS, **AU_REGIONS}


def region_names(regions: dict[str, tuple[int, ...]] | None = None) -> tuple[str, ...]:
    return tuple((regions or DEFAULT_REGIONS).keys())
