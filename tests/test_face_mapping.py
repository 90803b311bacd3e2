"""478 -> 68 mapping: iBUG geometry on a real portrait (skimage's astronaut)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from wildaffect.face import regions
from wildaffect.face.landmarker import FaceLandmarker
from wildaffect.face.mapping import MEDIAPIPE_TO_IBUG68, to_ibug68


@pytest.fixture(scope="module")
def astronaut_mesh() -> np.ndarray:
    """(478, 3) landmarks of the astronaut with x, y in pixels."""
    image = skimage.data.astronaut()
    with FaceLandmarker(mode="image") as landmarker:
        (face,) = landmarker.detect(image)
    mesh = face.landmarks.copy()
    mesh[:, :2] = face.landmarks_px(image.shape[:2])
    return mesh


def test_mapping_table() -> None:
    assert len(MEDIAPIPE_TO_IBUG68) == regions.N_LANDMARKS_68
    assert len(set(MEDIAPIPE_TO_IBUG68)) == 68
    assert all(0 <= i < 468 for i in MEDIAPIPE_TO_IBUG68)  # mesh vertices, not iris points


def test_to_ibug68_shapes_and_nan() -> None:
    rng = np.random.default_rng(0)
    track = rng.random((5, 478, 3)).astype(np.float32)
    track[2] = np.nan
    out = to_ibug68(track)
    assert out.shape == (5, 68, 2)
    np.testing.assert_array_equal(out[1, 8], track[1, 152, :2])  # chin
    assert np.isnan(out[2]).all() and np.isfinite(out[[0, 1, 3, 4]]).all()
    assert to_ibug68(track[0], dims=3).shape == (68, 3)
    with pytest.raises(ValueError, match="478"):
        to_ibug68(np.zeros((68, 2)))


def test_astronaut_ibug_geometry(astronaut_mesh: np.ndarray) -> None:
    p = to_ibug68(astronaut_mesh)  # (68, 2) pixels, y grows downwards
    x, y = p[:, 0], p[:, 1]
    eye_y = y[[36, 39, 42, 45]].mean()
    eye_distance = x[45] - x[36]

    # eye corners left -> right in the image, on a near-horizontal line
    assert x[36] < x[39] < x[42] < x[45]
    assert np.ptp(y[[36, 39, 42, 45]]) < 0.1 * eye_distance
    # eye groups: upper lid above lower lid, each eye between its corners
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert y[upper] < y[lower]
    assert x[36] < x[37] < x[38] < x[39] and x[42] < x[43] < x[44] < x[45]
    # nose tip between the eyes horizontally and below them; nose bridge goes down to the tip
    assert x[39] < x[30] < x[42] and y[30] > eye_y
    assert np.all(np.diff(y[list(regions.NOSE_BRIDGE)]) > 0)
    # nostrils left -> right, subnasale (33) under the tip
    assert np.all(np.diff(x[list(regions.NOSTRILS)]) > 0) and y[33] > y[30]
    # brows above their eyes, left -> right
    assert y[list(regions.RIGHT_BROW)].max() < y[list(regions.RIGHT_EYE)].min()
    assert y[list(regions.LEFT_BROW)].max() < y[list(regions.LEFT_EYE)].min()
    assert np.all(np.diff(x[list(regions.RIGHT_BROW + regions.LEFT_BROW)]) > 0)
    # mouth corners below the nose, left -> right; top of the upper lip above the lower lip
    assert y[48] > y[33] and y[54] > y[33] and x[48] < x[51] < x[54]
    assert y[51] < y[62] < y[66] < y[57]
    # jaw: 0 and 16 at the face sides near eye height, the chin (8) the lowest of all 68 points
    assert x[0] - x.min() < 0.05 * eye_distance and x.max() - x[16] < 0.05 * eye_distance
    assert abs(y[0] - eye_y) < 0.25 * eye_distance and abs(y[16] - eye_y) < 0.25 * eye_distance
    assert np.argmax(y) == 8
    assert x[0:8].max() < x[8] < x[9:17].min()
    assert np.all(np.diff(y[0:9]) > 0) and np.all(np.diff(y[8:17]) < 0)
    # a near-frontal face is left-right symmetric: mirrored jaw pairs at similar heights
    for i in range(8):
        assert abs(y[i] - y[16 - i]) < 0.15 * eye_distance
