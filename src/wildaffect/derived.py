"""Outputs a model was not trained on, derived by documented rules (named in ``model.json``).

The default model is trained for expression only (no AU or valence/arousal labels exist in the
bundled training data), so its other outputs come from fixed mappings rather than a head:

- ``"blendshapes-facs"``: AU activations from MediaPipe's 52 ARKit-style blendshape scores.
  ARKit's blendshapes were designed after FACS; each AU is the mean of the left/right scores
  of the blendshape that performs it (:data:`AU_BLENDSHAPES`). The values are activations in
  [0, 1], not calibrated probabilities: 0.5 is not a decision threshold.
- ``"circumplex"``: valence/arousal as the expectation of fixed class positions on Russell's
  circumplex of affect (:data:`CIRCUMPLEX`) under the expression probabilities. It places a
  face on the circle the expression implies; it does not measure intensity beyond that.
"""

from __future__ import annotations

import numpy as np

from wildaffect.labels import AU_NAMES, EXPR_NAMES

#: The derivation names a model package can give as an output's source.
AU_FROM_BLENDSHAPES = "blendshapes-facs"
VA_FROM_EXPRESSION = "circumplex"
FROM_MODEL = "model"

#: AU -> (blendshapes averaged, blendshapes subtracted). FACS correspondences of ARKit's set:
#: AU1 browInnerUp, AU2 browOuterUp, AU4 browDown, AU6 cheekSquint, AU7 eyeSquint,
#: AU10 mouthUpperUp, AU12 mouthSmile, AU15 mouthFrown, AU24 mouthPress, AU26 jawOpen.
#: AU23 (lip tightener) has no blendshape of its own: lips pressed and rolled in is its
#: closest visible effect. AU25 (lips part) is the jaw opening minus mouthClose, ARKit's
#: "lips kept together while the jaw is open".
AU_BLENDSHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "AU1": (("browInnerUp",), ()),
    "AU2": (("browOuterUpLeft", "browOuterUpRight"), ()),
    "AU4": (("browDownLeft", "browDownRight"), ()),
    "AU6": (("cheekSquintLeft", "cheekSquintRight"), ()),
    "AU7": (("eyeSquintLeft", "eyeSquintRight"), ()),
    "AU10": (("mouthUpperUpLeft", "mouthUpperUpRight"), ()),
    "AU12": (("mouthSmileLeft", "mouthSmileRight"), ()),
    "AU15": (("mouthFrownLeft", "mouthFrownRight"), ()),
    "AU23": (("mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper"), ()),
    "AU24": (("mouthPressLeft", "mouthPressRight"), ()),
    "AU25": (("jawOpen",), ("mouthClose",)),
    "AU26": (("jawOpen",), ()),
}

#: Expression -> (valence, arousal): approximate class centres on Russell's (1980) circumplex,
#: in [-1, 1]. Neutral and the catch-all Other sit at the origin (no affect implied).
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "Neutral": (0.0, 0.0),
    "Anger": (-0.6, 0.6),
    "Disgust": (-0.65, 0.3),
    "Fear": (-0.6, 0.65),
    "Happiness": (0.75, 0.35),
    "Sadness": (-0.65, -0.35),
    "Surprise": (0.2, 0.75),
    "Other": (0.0, 0.0),
}


def _blendshape_index() -> dict[str, int]:
    from wildaffect.face.landmarker import BLENDSHAPE_NAMES

    return {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}


def au_from_blendshapes(blendshapes: np.ndarray) -> np.ndarray:
    """blendshapes: (T, 52) MediaPipe scores (NaN where no face) -> (T, 12) AU activations in
    [0, 1], in :data:`~wildaffect.labels.AU_NAMES` order (NaN rows stay NaN)."""
    blendshapes = np.asarray(blendshapes, dtype=np.float64)
    if blendshapes.ndim != 2 or blendshapes.shape[1] != 52:
        raise ValueError(f"blendshapes must be (T, 52), got {blendshapes.shape}")
    index = _blendshape_index()
    out = np.empty((blendshapes.shape[0], len(AU_NAMES)))
    for k, au in enumerate(AU_NAMES):
        added, subtracted = AU_BLENDSHAPES[au]
        value = blendshapes[:, [index[b] for b in added]].mean(axis=1)
        for name in subtracted:
            value = value - blendshapes[:, index[name]]
        out[:, k] = value
    return np.clip(out, 0.0, 1.0)


def va_from_expression(probabilities: np.ndarray) -> np.ndarray:
    """probabilities: (T, 8) over :data:`~wildaffect.labels.EXPR_NAMES` -> (T, 2) valence,
    arousal: the probability-weighted mean of the class positions (NaN rows stay NaN)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(EXPR_NAMES):
        raise ValueError(f"probabilities must be (T, {len(EXPR_NAMES)}), got {probabilities.shape}")
    centres = np.array([CIRCUMPLEX[name] for name in EXPR_NAMES])  # (8, 2)
    return probabilities @ centres
