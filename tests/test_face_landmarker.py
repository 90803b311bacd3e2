"""MediaPipe FaceLandmarker wrapper on real photos: shapes, units, blendshape order, timestamps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from wildaffect.face.landmarker import (
    BLENDSHAPE_NAMES,
    DUPLICATE_IOU,
    FaceLandmarker,
    _square_tile_origins,
    box_iou,
)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()  # (512, 512, 3) uint8, one smiling face


@pytest.fixture(scope="module")
def image_landmarker() -> Iterator[FaceLandmarker]:
    with FaceLandmarker(mode="image", max_faces=8) as landmarker:
        yield landmarker


def test_astronaut_observation_shapes_and_units(
    image_landmarker: FaceLandmarker, astronaut: np.ndarray
) -> None:
    faces = image_landmarker.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks.shape == (478, 3) and face.landmarks.dtype == np.float32
    assert face.blendshapes.shape == (52,) and face.blendshapes.dtype == np.float32
    assert face.pose.shape == (4, 4) and face.bbox.shape == (4,)
    xy = face.landmarks[:, :2]
    assert np.all((xy > 0) & (xy < 1))
    # bbox is the landmarks' extent in pixels, and the face sits in the upper middle of the photo
    px = face.landmarks_px(astronaut.shape[:2])
    np.testing.assert_allclose(face.bbox, [*px.min(0), *px.max(0)], rtol=1e-6)
    x0, y0, x1, y1 = face.bbox
    assert 140 < x0 < x1 < 320 and 40 < y0 < y1 < 220 and 60 < x1 - x0 < 140
    # pose: a rigid transform (orthonormal rotation, last row 0 0 0 1)
    rotation = face.pose[:3, :3].astype(np.float64)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-4)
    np.testing.assert_allclose(face.pose[3], [0, 0, 0, 1], atol=1e-6)
    # blendshapes are scores; she smiles broadly with both mouth corners
    assert np.all((face.blendshapes >= 0) & (face.blendshapes <= 1))
    scores = dict(zip(BLENDSHAPE_NAMES, face.blendshapes))
    assert scores["mouthSmileLeft"] > 0.5 and scores["mouthSmileRight"] > 0.5
    assert scores["mouthFrownLeft"] < 0.2 and scores["jawOpen"] < scores["mouthSmileLeft"]


def test_blendshape_names_match_the_model(
    image_landmarker: FaceLandmarker, astronaut: np.ndarray
) -> None:
    import mediapipe as mp

    raw = image_landmarker._task.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=astronaut))
    names = tuple(category.category_name for category in raw.face_blendshapes[0])
    assert names == BLENDSHAPE_NAMES and len(set(names)) == 52


def test_no_face_gives_empty_list(image_landmarker: FaceLandmarker) -> None:
    grey = np.full((240, 320, 3), 128, dtype=np.uint8)
    assert image_landmarker.detect(grey) == []


def test_group_photo_square_tiles_find_small_faces(shared_data: Path) -> None:
    photo = np.asarray(Image.open(shared_data / "media/portraits/multi_face.jpg").convert("RGB"))
    with FaceLandmarker(mode="image", max_faces=8) as plain:
        n_plain = len(plain.detect(photo))
    with FaceLandmarker(mode="image", max_faces=8, square_tiles=True) as tiled:
        faces = tiled.detect(photo)
    # five people; the detector sees a 128-px letterbox of the whole 1000x667 photo and misses
    # some, overlapping square tiles find them all, each once
    assert len(faces) == 5 > n_plain
    for i, face in enumerate(faces):
        for other in faces[i + 1 :]:
            assert box_iou(face.bbox, other.bbox) <= DUPLICATE_IOU
    areas = [face.area for face in faces]
    assert areas == sorted(areas, reverse=True)
    height, width = photo.shape[:2]
    for face in faces:  # mapped back into the full photo
        x0, y0, x1, y1 = face.bbox
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_square_tile_origins_cover_the_image() -> None:
    assert _square_tile_origins(100, 100) == []
    origins = _square_tile_origins(667, 1000)
    assert origins == [(0, 0), (0, 333)]
    tall = _square_tile_origins(1000, 400)
    assert tall[0] == (0, 0) and tall[-1] == (600, 0) and all(x == 0 for _, x in tall)


def test_video_timestamps_strictly_increase(astronaut: np.ndarray) -> None:
    with FaceLandmarker(mode="video", max_faces=1) as landmarker:
        stamps = [landmarker.next_timestamp_ms(t) for t in (0.0, 33.3667, 33.4, 33.4, None, 10.0)]
        assert stamps == [0, 33, 34, 35, 36, 37]
        # mediapipe itself would reject equal timestamps; repeated frame times must just work
        for _ in range(3):
            assert len(landmarker.detect(astronaut, timestamp_ms=100.0)) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="square_tiles"):
        FaceLandmarker(mode="video", square_tiles=True)
    with pytest.raises(ValueError, match="mode"):
        FaceLandmarker(mode="webcam")  # type: ignore[arg-type]
    landmarker = FaceLandmarker(mode="image")
    with pytest.raises(ValueError, match="RGB"):
        landmarker.detect(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        landmarker.detect(np.zeros((64, 64, 3), dtype=np.float32))
    landmarker.close()
    with pytest.raises(RuntimeError, match="closed"):
        landmarker.detect(np.zeros((64, 64, 3), dtype=np.uint8))


def test_landmarker_keeps_a_stray_sigprof_from_killing_the_process():
    """MediaPipe can deliver SIGPROF late in a long process; its default action would kill it.
    A handler a profiler installed is left in place. Run in a fresh process: once MediaPipe is
    running, restoring the default disposition in this one could itself be fatal."""
    import subprocess
    import sys

    code = (
        "import signal\n"
        "from wildaffect.face.landmarker import FaceLandmarker\n"
        "signal.signal(signal.SIGPROF, signal.SIG_DFL)  # an ignore is inherited from us\n"
        "with FaceLandmarker(mode='image'):\n"
        "    assert signal.getsignal(signal.SIGPROF) == signal.SIG_IGN\n"
        "mine = lambda signum, frame: None\n"
        "signal.signal(signal.SIGPROF, mine)\n"
        "with FaceLandmarker(mode='image'):\n"
        "    assert signal.getsignal(signal.SIGPROF) is mine\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
