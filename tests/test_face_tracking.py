"""One target face per video: real clips (CREMA-D, GRID, a group photo) and the choice rule."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from wildaffect.face.landmarker import FaceLandmarker, FaceObservation, box_iou
from wildaffect.face.mapping import to_ibug68
from wildaffect.face.tracking import FaceTrack, FaceTracker, track_faces

CREMA_CLIP = "media/crema-d/1001_DFA_HAP_XX.flv"
GRID_CLIP = "media/grid/bbaf2n.mpg"


def decode(path: Path, n_frames: int | None = None) -> list[tuple[float, np.ndarray]]:
    """The first ``n_frames`` (all if None) as (time s, RGB (H, W, 3) uint8), decoded with PyAV."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append((float(frame.time), frame.to_ndarray(format="rgb24")))
            if len(frames) == n_frames:
                break
    return frames


def assert_tracked_everywhere(track: FaceTrack, n_frames: int) -> None:
    assert len(track) == n_frames
    assert track.has_face.all()
    assert np.isfinite(track.landmarks478).all() and np.isfinite(track.landmarks68).all()
    assert np.isfinite(track.blendshapes).all() and np.isfinite(track.pose).all()
    assert (track.n_faces_seen >= 1).all()
    assert np.all(np.diff(track.times) > 0)
    # one person who barely moves: consecutive boxes overlap strongly
    overlaps = [box_iou(a, b) for a, b in zip(track.bbox[:-1], track.bbox[1:])]
    assert min(overlaps) > 0.7
    # landmarks68 are the mapped mesh in frame pixels
    height, width = track.frame_size
    expected = to_ibug68(track.landmarks478[..., :2] * np.array([width, height], np.float32))
    np.testing.assert_allclose(track.landmarks68, expected, rtol=1e-5)


def test_crema_d_face_in_every_frame(shared_data: Path) -> None:
    frames = decode(shared_data / CREMA_CLIP)  # the whole clip: 56 frames at 29.97 fps
    track = track_faces(frames)
    assert track.frame_size == (360, 480)
    assert_tracked_everywhere(track, 56)
    np.testing.assert_allclose(track.times, [t for t, _ in frames])


def test_grid_face_in_every_frame(shared_data: Path) -> None:
    track = track_faces(decode(shared_data / GRID_CLIP, 40))
    assert track.frame_size == (288, 360)
    assert_tracked_everywhere(track, 40)


def test_face_appearing_mid_clip(shared_data: Path) -> None:
    crema = decode(shared_data / CREMA_CLIP, 10)
    step = crema[1][0] - crema[0][0]
    grey = np.full_like(crema[0][1], 128)
    frames = [(i * step, grey) for i in range(10)]
    frames += [(10 * step + i * step, image) for i, (_, image) in enumerate(crema)]
    track = track_faces(frames)
    assert len(track) == 20  # frames without a face are kept, not dropped
    assert not track.has_face[:10].any() and track.has_face[10:].all()
    assert (track.n_faces_seen[:10] == 0).all()
    for array in (track.landmarks478, track.landmarks68, track.blendshapes, track.pose, track.bbox):
        assert np.isnan(array[:10]).all()
        assert np.isfinite(array[10:]).all()


def test_group_photo_one_target_the_largest(shared_data: Path) -> None:
    photo = np.asarray(Image.open(shared_data / "media/portraits/multi_face.jpg").convert("RGB"))
    with FaceLandmarker(mode="image", max_faces=8, square_tiles=True) as landmarker:
        faces = landmarker.detect(photo)
        track = track_faces([(0.0, photo)], landmarker=landmarker)
    assert track.n_faces_seen.tolist() == [5]  # five people, all found
    assert track.has_face.tolist() == [True]
    largest = max(faces, key=lambda face: face.area)
    np.testing.assert_allclose(track.bbox[0], largest.bbox)
    # the largest is the woman on the right of the photo
    assert track.bbox[0][0] > 0.6 * photo.shape[1]


# -- the choice rule on synthetic observations ---------------------------------------------------


def box_face(cx: float, cy: float, size: float) -> FaceObservation:
    """A FaceObservation whose only meaningful part is its square box (the tracker's input)."""
    bbox = np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], np.float32)
    landmarks = np.zeros((478, 3), np.float32)
    return FaceObservation(landmarks, np.zeros(52, np.float32), np.eye(4, dtype=np.float32), bbox)


def test_crossing_faces_keep_identity_by_overlap_not_size() -> None:
    tracker = FaceTracker(max_lost_frames=5)
    chosen_x = []
    for t in range(21):
        a = box_face(100 + 10 * t, 200, 80)  # the target: largest at the start, moving right
        b = box_face(300 - 10 * t, 210, 60 + 3 * t)  # moving left, growing past A's size
        observations = [b, a] if t % 2 else [a, b]  # detection order must not matter
        chosen = tracker.update(observations)
        assert chosen is a, f"lost the target at frame {t}"
        chosen_x.append((chosen.bbox[0] + chosen.bbox[2]) / 2)
    assert box_face(0, 0, 60 + 3 * 20).area > box_face(0, 0, 80).area  # B did get bigger
    assert np.all(np.diff(chosen_x) == 10)


def test_lost_target_then_reacquire_largest() -> None:
    tracker = FaceTracker(max_lost_frames=3)
    target = box_face(100, 100, 50)
    assert tracker.update([box_face(400, 100, 30), target]) is target
    # the target vanishes; another face elsewhere is not taken while the target may come back
    elsewhere = box_face(400, 300, 40)
    for _ in range(3):
        assert tracker.update([elsewhere]) is None
    # a face near the last box (no overlap, but within one box size) is the target again
    near = box_face(140, 100, 30)
    assert box_iou(near.bbox, target.bbox) == 0.0
    assert tracker.update([elsewhere, near]) is near
    # gone for more than max_lost_frames: the largest face present is acquired afresh
    for _ in range(4):
        assert tracker.update([]) is None
    big, small = box_face(500, 500, 90), box_face(600, 100, 40)
    assert tracker.update([small, big]) is big
