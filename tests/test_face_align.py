"""Eye alignment and the 224 crop, against scikit-image's similarity estimate and warp."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from skimage.transform import SimilarityTransform, warp

from wildaffect.face.align import (
    CANONICAL_EYE_DISTANCE,
    CANONICAL_EYE_Y,
    CROP_SIZE,
    align_face,
    canonical_eyes,
    crop_landmarks,
    eye_centres,
    similarity_from_points,
)
from wildaffect.face.landmarker import FaceLandmarker
from wildaffect.face.mapping import to_ibug68


def detect68(landmarker: FaceLandmarker, image: np.ndarray) -> np.ndarray:
    (face,) = landmarker.detect(image)
    return to_ibug68(face.landmarks_px(image.shape[:2]))


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo, its 68 points, and the 68 points of the photo rotated by 25 degrees."""
    import cv2

    image = skimage.data.astronaut()
    centre = (256.0, 130.0)
    rotation = cv2.getRotationMatrix2D(centre, 25.0, 1.0)
    rotated = cv2.warpAffine(image, rotation, (512, 512), borderMode=cv2.BORDER_REFLECT)
    with FaceLandmarker(mode="image") as landmarker:
        points = detect68(landmarker, image)
        rotated_points = detect68(landmarker, rotated)
    return image, points, (rotated, rotated_points)


def test_similarity_matches_scikit_image() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        src = rng.uniform(0, 500, (2, 2))
        dst = rng.uniform(0, 224, (2, 2))
        ours = similarity_from_points(src[0], src[1], dst[0], dst[1])
        if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
            reference = SimilarityTransform.from_estimate(src, dst)
        else:
            reference = SimilarityTransform()
            assert reference.estimate(src, dst)
        np.testing.assert_allclose(ours, reference.params[:2], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(crop_landmarks(ours, src), dst, atol=1e-9)
    with pytest.raises(ValueError, match="coincide"):
        similarity_from_points(np.zeros(2), np.zeros(2), np.zeros(2), np.ones(2))


def test_astronaut_eyes_land_on_canonical_positions(astronaut) -> None:
    image, points, _ = astronaut
    aligned = align_face(image, points)
    assert aligned.crop.shape == (CROP_SIZE, CROP_SIZE, 3) and aligned.crop.dtype == np.uint8
    assert aligned.matrix.shape == (2, 3)
    right, left = eye_centres(aligned.landmarks68)
    want_right, want_left = canonical_eyes()
    assert np.abs(right - want_right).max() < 1.0 and np.abs(left - want_left).max() < 1.0
    expected_right = [(0.5 - CANONICAL_EYE_DISTANCE / 2) * 224, CANONICAL_EYE_Y * 224]
    np.testing.assert_allclose(want_right, expected_right)
    # nose tip near the horizontal centre, chin low in the crop but inside it
    nose_x, chin_y = aligned.landmarks68[30, 0], aligned.landmarks68[8, 1]
    assert abs(nose_x - CROP_SIZE / 2) < 0.05 * CROP_SIZE
    assert 0.8 * CROP_SIZE < chin_y < CROP_SIZE
    # the whole face is inside the crop
    assert np.all((aligned.landmarks68_norm > 0) & (aligned.landmarks68_norm < 1))
    np.testing.assert_allclose(aligned.landmarks68_norm * CROP_SIZE, aligned.landmarks68, rtol=1e-5)
    mapped = crop_landmarks(aligned.matrix, points)
    np.testing.assert_allclose(aligned.landmarks68, mapped, rtol=1e-5)


def test_crop_pixels_match_scikit_image_warp(astronaut) -> None:
    image, points, _ = astronaut
    aligned = align_face(image, points)
    transform = SimilarityTransform(matrix=np.vstack([aligned.matrix, [0, 0, 1]]))
    reference = warp(image, transform.inverse, output_shape=(CROP_SIZE, CROP_SIZE), order=1,
                     mode="constant", cval=0, preserve_range=True)
    difference = np.abs(aligned.crop.astype(np.float64) - reference)
    assert difference.mean() < 1.0 and np.percentile(difference, 99) < 4.0


def test_alignment_undoes_in_plane_rotation(astronaut) -> None:
    """The same face photographed tilted by 25 degrees gives nearly the same crop."""
    image, points, (rotated, rotated_points) = astronaut
    upright = align_face(image, points)
    tilted = align_face(rotated, rotated_points)
    # landmarks in the crop agree to a couple of pixels (mediapipe re-detected them)
    assert np.median(np.linalg.norm(upright.landmarks68 - tilted.landmarks68, axis=1)) < 3.0
    # and so do the pixels of the face centre (not the borders, which differ by construction)
    inner = slice(40, 184)
    difference = np.abs(upright.crop[inner, inner].astype(float) - tilted.crop[inner, inner])
    shifted = np.roll(upright.crop, 20, axis=1)  # the same crop, misaligned by 20 px
    unrelated = np.abs(upright.crop[inner, inner].astype(float) - shifted[inner, inner])
    assert difference.mean() < 0.1 * unrelated.mean()  # measured: 1.7 vs 46 grey levels


def test_borders_constant_or_replicate(astronaut) -> None:
    image, points, _ = astronaut
    # a tight crop of the photo: the aligned crop then reaches outside the frame at its corners
    x0, y0 = np.floor(points.min(0)).astype(int)
    x1, y1 = np.ceil(points.max(0)).astype(int)
    tight = np.ascontiguousarray(image[y0:y1, x0:x1])
    shifted = points - [x0, y0]
    black = align_face(tight, shifted, border="constant").crop
    edge = align_face(tight, shifted, border="replicate").crop
    assert np.all(black[:4, :4] == 0) and np.all(black[-4:, -4:] == 0)
    assert edge[:4, :4].mean() > 10 and edge[-4:, -4:].mean() > 10
    np.testing.assert_array_equal(black[100:124, 100:124], edge[100:124, 100:124])


def test_other_sizes_and_bad_landmarks(astronaut) -> None:
    image, points, _ = astronaut
    small = align_face(image, points, size=112)
    assert small.crop.shape == (112, 112, 3)
    right, _ = eye_centres(small.landmarks68)
    np.testing.assert_allclose(right, canonical_eyes(112)[0], atol=1e-3)
    bad = points.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="68 finite"):
        align_face(image, bad)
    with pytest.raises(ValueError, match="68 finite"):
        align_face(image, points[:60])
