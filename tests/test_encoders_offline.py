"""Offline (weight-free) encoders: mediapipe-regions visual tokens, logmel-egemaps audio."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wildaffect.encoders.offline_audio import (
    EGEMAPS_LONG_CENTRE_S,
    F0_NAME,
    VOICED_NAME,
    OfflineAudioEncoder,
    deltas,
    log_mel,
    log_mel_reference,
)
from wildaffect.encoders.offline_visual import (
    BLENDSHAPE_REGIONS,
    GLOBAL_TOKEN,
    MEASURES,
    OfflineVisualEncoder,
    measures_for_region,
    pose_features,
    region_shape_reference,
)
from wildaffect.encoders.registry import create_encoder, get_spec
from wildaffect.face.regions import DEFAULT_REGIONS, LEFT_EYE, RIGHT_EYE

SR = 16_000


# --------------------------------------------------------------------------- helpers


def _expected_frames(n: int) -> int:
    return (n - 400) // 320 + 1 if n >= 400 else 0


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _face_inputs(image: np.ndarray):
    """Run MediaPipe + the face module on one RGB image -> encoder inputs of one frame."""
    from wildaffect.face.align import align_face
    from wildaffect.face.landmarker import FaceLandmarker
    from wildaffect.face.mapping import to_ibug68

    with FaceLandmarker(mode="image", max_faces=1) as landmarker:
        faces = landmarker.detect(image)
    if not faces:
        return None
    face = faces[0]
    h, w = image.shape[:2]
    aligned = align_face(image, to_ibug68(face.landmarks) * np.array([w, h]))
    return aligned.landmarks68_norm, face.blendshapes, face.pose, aligned.crop


def _stack(frames):
    lm, bs, pose, crops = (np.stack(x) for x in zip(*frames))
    return lm, bs, pose, crops, np.ones(len(lm), bool)


@pytest.fixture(scope="module")
def astronaut():
    from skimage.data import astronaut as load

    image = load()
    inputs = _face_inputs(image)
    assert inputs is not None, "MediaPipe finds the astronaut's face"
    return image, inputs


@pytest.fixture(scope="module")
def visual() -> OfflineVisualEncoder:
    return OfflineVisualEncoder()


# --------------------------------------------------------------------------- audio


@pytest.fixture(scope="module")
def audio() -> OfflineAudioEncoder:
    return OfflineAudioEncoder()


@pytest.mark.parametrize("n", [0, 80, 399, 400, 401, 719, 720, 16000, 16001])
def test_audio_frame_count_matches_wavlm(audio: OfflineAudioEncoder, n: int) -> None:
    x = (0.05 * _rng().standard_normal(n)).astype(np.float32)
    out = audio.encode(x)
    assert out.shape == (_expected_frames(n), audio.feature_dim)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()


def test_audio_feature_names_and_registry() -> None:
    enc = create_encoder("logmel-egemaps", n_mels=32)
    assert isinstance(enc, OfflineAudioEncoder)
    spec = get_spec("logmel-egemaps")
    assert (spec.modality, spec.hub_id) == ("audio", None)
    # 32 mels + 25 eGeMAPS LLDs + voiced, then as many deltas
    assert enc.feature_dim == len(enc.feature_names) == 2 * (32 + 25 + 1)
    assert "Loudness_sma3" in enc.feature_names and "d_Loudness_sma3" in enc.feature_names
    plain = OfflineAudioEncoder(n_mels=16, use_egemaps=False, use_deltas=False)
    assert plain.encode(np.zeros(1000, np.float32)).shape == (_expected_frames(1000), 16)


def test_audio_silence_and_determinism(audio: OfflineAudioEncoder) -> None:
    silence = audio.encode(np.zeros(SR, np.float32))
    assert np.isfinite(silence).all()
    names = list(audio.feature_names)
    assert np.all(silence[:, names.index(VOICED_NAME)] == 0)
    x = (0.1 * _rng().standard_normal(SR)).astype(np.float32)
    np.testing.assert_array_equal(audio.encode(x), audio.encode(x.copy()))


def test_audio_bad_input(audio: OfflineAudioEncoder) -> None:
    with pytest.raises(ValueError, match="1-D"):
        audio.encode(np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError, match="float"):
        audio.encode(np.zeros(1000, np.int16))


def test_log_mel_matches_transformers_reference(audio: OfflineAudioEncoder) -> None:
    x = (0.1 * _rng().standard_normal(SR + 123)).astype(np.float32)
    x[4000:6000] *= 20  # a louder stretch: a wide dynamic range
    fast, slow = log_mel(x, audio._filters), log_mel_reference(x, audio._filters)
    assert fast.shape == slow.shape == (_expected_frames(len(x)), audio.n_mels)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-4)


def test_deltas_match_loop_reference() -> None:
    x = _rng().standard_normal((9, 3))
    ref = np.zeros_like(x)
    for t in range(len(x)):
        at = lambda i: x[min(max(i, 0), len(x) - 1)]  # edge padding
        ref[t] = sum(k * (at(t + k) - at(t - k)) for k in (1, 2)) / 10
    np.testing.assert_allclose(deltas(x), ref)
    ramp = np.arange(10.0)[:, None] * 3
    np.testing.assert_allclose(deltas(ramp)[2:-2], 3.0)  # interior slope of a ramp


def _frame_of(sample: float) -> float:
    """The 20 ms frame whose 400-sample window is centred on ``sample``."""
    return (sample - 200) / 320


@pytest.mark.parametrize("click_at", [4_800, 9_777, 19_744])
def test_click_lands_on_its_frame(audio: OfflineAudioEncoder, click_at: int) -> None:
    x = (1e-4 * _rng().standard_normal(2 * SR)).astype(np.float32)
    x[click_at : click_at + 16] += 0.8
    out = audio.encode(x)
    names = list(audio.feature_names)
    mel_energy = np.exp(out[:, : audio.n_mels]).sum(axis=1)
    loudness = out[:, names.index("Loudness_sma3")]
    expected = _frame_of(click_at + 8)
    assert abs(int(np.argmax(mel_energy)) - expected) <= 1
    assert abs(int(np.argmax(loudness)) - expected) <= 1


def test_tone_burst_edges_align_in_mel_loudness_and_voicing(audio: OfflineAudioEncoder) -> None:
    """A voiced (harmonic, 150 Hz) burst from 0.5 s to 0.8 s: every stream switches on and
    off at the frames whose windows are centred on 0.5 s and 0.8 s, including the F0
    family that openSMILE computes on 60 ms windows (EGEMAPS_LONG_CENTRE_S)."""
    assert EGEMAPS_LONG_CENTRE_S > 0.01
    t = np.arange(int(1.5 * SR)) / SR
    x = 1e-4 * _rng().standard_normal(len(t))
    on = (t >= 0.5) & (t < 0.8)
    x[on] += 0.3 * sum(np.sin(2 * np.pi * 150 * k * t[on]) / k for k in range(1, 15))
    out = audio.encode(x.astype(np.float32))
    names = list(audio.feature_names)
    start, stop = _frame_of(0.5 * SR), _frame_of(0.8 * SR)

    def edges(column: np.ndarray) -> tuple[int, int]:
        above = np.flatnonzero(column > column.min() + 0.5 * (column.max() - column.min()))
        return int(above[0]), int(above[-1])

    mel_energy = np.log(np.exp(out[:, : audio.n_mels]).sum(axis=1))
    for column in (
        mel_energy,
        out[:, names.index("Loudness_sma3")],
        out[:, names.index(VOICED_NAME)],
        out[:, names.index(F0_NAME)],
    ):
        first, last = edges(column)
        assert abs(first - start) <= 1 and abs(last - stop) <= 1, (first, last, start, stop)
    f0 = out[:, names.index(F0_NAME)]
    # 150 Hz is 12 log2(150 / 27.5) = 29.4 semitones above 27.5 Hz
    assert abs(np.median(f0[int(start) + 3 : int(stop) - 3]) - 12 * math.log2(150 / 27.5)) < 1.0


@pytest.mark.shared_data
def test_crema_d_one_second(audio: OfflineAudioEncoder, shared_data) -> None:
    import av

    path = min((shared_data / "media" / "crema-d").glob("*.flv"))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
    pieces = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    samples = np.concatenate(pieces)[:SR]
    assert len(samples) == SR
    out = audio.encode(samples)
    assert out.shape == (49, audio.feature_dim)
    assert np.isfinite(out).all()
    voiced = out[:, list(audio.feature_names).index(VOICED_NAME)]
    assert (voiced > 0.5).sum() >= 5  # speech: some voiced frames, F0 found
    assert out[:, : audio.n_mels].std(axis=0).mean() > 0.5  # the mel energies move


# --------------------------------------------------------------------------- visual: unit


def test_blendshape_mapping_covers_all_names_and_regions(visual: OfflineVisualEncoder) -> None:
    from wildaffect.face.landmarker import BLENDSHAPE_NAMES

    assert set(BLENDSHAPE_REGIONS) == set(BLENDSHAPE_NAMES)
    used = {r for regions in BLENDSHAPE_REGIONS.values() for r in regions}
    assert used <= set(DEFAULT_REGIONS)
    for name, indices in DEFAULT_REGIONS.items():
        assert visual.region_blendshapes[name], f"{name} gets no blendshape"
        assert measures_for_region(indices), f"{name} gets no measure"
    assert len({m.name for m in MEASURES}) == len(MEASURES)


def test_layout_and_registry(visual: OfflineVisualEncoder) -> None:
    assert visual.token_names == (*DEFAULT_REGIONS, GLOBAL_TOKEN)
    assert visual.token_dim % 8 == 0
    lay = visual.layouts
    assert lay["region"]["hog"].stop <= visual.token_dim
    assert lay[GLOBAL_TOKEN]["face"].stop <= visual.token_dim
    assert len(visual.feature_names("AU12_lip_corner_pull")) == visual.token_dim
    assert "mouthSmileLeft" in visual.feature_names("AU12_lip_corner_pull")
    assert "yaw" in visual.feature_names(GLOBAL_TOKEN)
    spec = get_spec("mediapipe-regions")
    assert (spec.modality, spec.hub_id) == ("visual", None)
    geo_only = create_encoder("mediapipe-regions", use_appearance=False, include_global=False)
    assert geo_only.num_tokens == len(DEFAULT_REGIONS)
    assert geo_only.token_dim < visual.token_dim


def test_pose_features_angles_and_extremes() -> None:
    def rot(yaw: float, pitch: float, roll: float) -> np.ndarray:
        cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
        rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        m = np.eye(4)
        m[:3, :3] = rz @ ry @ rx
        m[:3, 3] = [1.0, -2.0, -50.0]
        return m

    out = pose_features(np.stack([rot(0.3, -0.2, 0.1), rot(math.pi / 2, 0.4, 0.0)]))
    np.testing.assert_allclose(out[0], [0.3, -0.2, 0.1, 0.01, -0.02, -0.5], atol=1e-9)
    assert abs(out[1, 0] - math.pi / 2) < 1e-6  # gimbal lock: yaw still right, all finite
    assert np.isfinite(pose_features(np.zeros((1, 4, 4)))).all()


def test_vectorised_geometry_matches_reference(astronaut) -> None:
    _, (lm, bs, pose, _crop) = astronaut
    rng = _rng()
    frames = [lm + rng.normal(0, 0.01, lm.shape) for _ in range(3)]
    frames.append(_rotate(lm, 0.4))  # a tilted face: the face frame must undo it
    enc = OfflineVisualEncoder(use_appearance=False)
    tokens = enc.encode(np.stack(frames), np.tile(bs, (4, 1)), np.tile(pose, (4, 1, 1)), None,
                        np.ones(4, bool))  # fmt: skip
    lay = enc.region_layout
    for t, frame in enumerate(frames):
        for r, indices in enumerate(enc.regions.values()):
            coords, values = region_shape_reference(frame, indices)
            token = tokens[t, r]
            np.testing.assert_allclose(token[lay["geometry"]][: len(coords)], coords, atol=1e-5)
            assert not token[lay["geometry"]][len(coords) :].any()
            np.testing.assert_allclose(token[lay["measures"]][: len(values)], values, atol=1e-5)
    # the rotation is removed: tilted and upright faces give the same tokens, except for
    # the global token's eye-line angle, which reports it
    tilted = enc.encode(_rotate(lm, 0.4)[None], bs[None], pose[None], None, np.ones(1, bool))
    upright = enc.encode(lm[None], bs[None], pose[None], None, np.ones(1, bool))
    angle = enc.global_layout["face"].start + 1
    assert tilted[0, -1, angle] - upright[0, -1, angle] == pytest.approx(0.4, abs=1e-5)
    tilted[0, -1, angle] = upright[0, -1, angle]
    np.testing.assert_allclose(tilted, upright, atol=1e-5)


def _rotate(lm: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    centre = lm.mean(axis=0)
    return (lm - centre) @ np.array([[c, s], [-s, c]]) + centre


def test_no_face_degenerate_and_extreme_frames(visual: OfflineVisualEncoder, astronaut) -> None:
    _, (lm, bs, pose, crop) = astronaut
    lm_t = np.stack([lm, np.full_like(lm, np.nan), np.full_like(lm, 0.5), lm, _rotate(lm, 1.5)])
    pose_t = np.stack([pose, pose, pose, np.zeros((4, 4)), pose])
    pose_t[4, :3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # yaw 90 degrees
    mask = np.array([True, False, True, True, True])
    crops = np.stack([crop, np.zeros_like(crop), crop, crop, crop])
    tokens = visual.encode(lm_t, np.tile(bs, (5, 1)), pose_t, crops, mask)
    assert tokens.shape == (5, visual.num_tokens, visual.token_dim)
    assert tokens.dtype == np.float32 and np.isfinite(tokens).all()
    assert not tokens[1].any()  # no face (NaN landmarks): zeros
    assert not tokens[2].any()  # all points on one spot: no face frame, zeros
    assert tokens[3].any() and tokens[4].any()  # zero pose matrix, 86-degree roll: finite
    np.testing.assert_array_equal(visual.valid_frames(lm_t, mask), [1, 0, 0, 1, 1])
    np.testing.assert_array_equal(tokens, visual.encode(lm_t, np.tile(bs, (5, 1)), pose_t,
                                                        crops, mask))  # fmt: skip


def test_bad_visual_input(visual: OfflineVisualEncoder, astronaut) -> None:
    _, (lm, bs, pose, crop) = astronaut
    with pytest.raises(ValueError, match="crops are required"):
        visual.encode(lm[None], bs[None], pose[None], None, np.ones(1, bool))
    with pytest.raises(ValueError, match="blendshapes"):
        visual.encode(lm[None], bs[None, :50], pose[None], crop[None], np.ones(1, bool))
    with pytest.raises(ValueError, match="landmarks68"):
        visual.encode(lm[None, :60], bs[None], pose[None], crop[None], np.ones(1, bool))


def test_moving_one_landmark_changes_only_its_regions(astronaut) -> None:
    """Geometry and measures of a region depend on its own points and the eye-based face
    frame only: moving a non-eye point changes exactly the regions that contain it."""
    _, (lm, bs, pose, _crop) = astronaut
    enc = OfflineVisualEncoder(use_appearance=False)
    eyes = set(RIGHT_EYE) | set(LEFT_EYE)
    movable = [k for k in range(68) if k not in eyes]
    frames = [lm]
    for k in movable:
        moved = lm.copy()
        moved[k] += [0.013, -0.021]
        frames.append(moved)
    n = len(frames)
    tokens = enc.encode(np.stack(frames), np.tile(bs, (n, 1)), np.tile(pose, (n, 1, 1)), None,
                        np.ones(n, bool))  # fmt: skip
    shape = slice(0, enc.region_layout["measures"].stop)  # geometry + measures slots
    for i, k in enumerate(movable, start=1):
        for r, indices in enumerate(enc.regions.values()):
            changed = not np.allclose(tokens[i, r, shape], tokens[0, r, shape], atol=1e-7)
            assert changed == (k in indices), (k, list(enc.regions)[r])
        assert not np.allclose(tokens[i, -1], tokens[0, -1])  # the global token sees all


def test_hog_sees_texture_only_inside_the_region_patch(visual: OfflineVisualEncoder, astronaut):
    """Painting furrows between the brows changes the AU4 (glabella) HOG, not the mouth's."""
    import cv2

    _, (lm, bs, pose, crop) = astronaut
    painted = crop.copy()
    px = lm * crop.shape[1::-1]
    x, y = px[[21, 22, 27]].mean(axis=0).astype(int)
    for dx in (-4, 0, 4):
        cv2.line(painted, (x + dx, y - 8), (x + dx, y + 8), (20, 20, 20), 1)
    tokens = visual.encode(np.stack([lm, lm]), np.stack([bs, bs]), np.stack([pose, pose]),
                           np.stack([crop, painted]), np.ones(2, bool))  # fmt: skip
    hog = visual.region_layout["hog"]
    names = list(visual.regions)
    diff = np.abs(tokens[1, :, hog] - tokens[0, :, hog]).sum(axis=-1)
    assert diff[names.index("AU4_glabella")] > 0.1
    for far in ("mouth", "AU12_lip_corner_pull", "AU26_jaw_drop", "jaw"):
        assert diff[names.index(far)] == 0, far


def test_patch_transform_centres_on_region(visual: OfflineVisualEncoder, astronaut) -> None:
    _, (lm, *_rest) = astronaut
    maps = visual.patch_transforms(lm[None], (224, 224))[0]  # (R, 2, 3)
    c = (visual.hog_patch - 1) / 2
    px = lm * 224
    for r, indices in enumerate(visual.regions.values()):
        centre = maps[r] @ np.array([c, c, 1.0])
        np.testing.assert_allclose(centre, px[list(indices)].mean(axis=0), atol=1e-6)
        side = np.linalg.norm(maps[r][:, 0]) * visual.hog_patch
        extent = np.ptp(px[list(indices)], axis=0).max()
        assert side >= extent  # the whole region (and a margin) is in the patch


# --------------------------------------------------------------------------- visual: real faces


def test_blendshape_side_is_the_subjects_side(astronaut) -> None:
    """Covering the subject's right eye (image left) raises eyeBlinkRight, not eyeBlinkLeft:
    MediaPipe's Left/Right are the subject's, as BLENDSHAPE_REGIONS assumes."""
    import cv2

    from wildaffect.face.landmarker import BLENDSHAPE_NAMES, FaceLandmarker
    from wildaffect.face.mapping import to_ibug68

    image, _inputs = astronaut
    with FaceLandmarker(mode="image", max_faces=1) as landmarker:
        face = landmarker.detect(image)[0]
        h, w = image.shape[:2]
        eye = (to_ibug68(face.landmarks)[list(RIGHT_EYE)] * [w, h]).astype(np.int32)
        assert eye[:, 0].mean() < w / 2  # the subject's right eye is on the image's left
        closed = image.copy()
        skin = image[eye[:, 1].max() + 8, eye[:, 0].min() : eye[:, 0].max()].mean(axis=0)
        cv2.fillPoly(closed, [cv2.convexHull(eye)], skin.tolist())
        cv2.line(closed, tuple(eye[0]), tuple(eye[3]), (40, 30, 30), 2)
        after = landmarker.detect(closed)[0].blendshapes
    blink = {s: BLENDSHAPE_NAMES.index(f"eyeBlink{s}") for s in ("Left", "Right")}
    rise = {s: after[i] - face.blendshapes[i] for s, i in blink.items()}
    assert rise["Right"] > rise["Left"] + 0.05, rise


@pytest.mark.shared_data
def test_au12_token_smiles_more_on_happy_faces(visual: OfflineVisualEncoder, shared_data) -> None:
    import cv2

    folder = shared_data / "faces-expression"
    labels = pd.read_csv(folder / "labels.csv")
    groups = {}
    for expression in ("Happiness", "Neutral"):
        frames = []
        for name in labels.loc[labels.expression == expression, "image"]:
            image = cv2.cvtColor(cv2.imread(str(folder / "images" / name)), cv2.COLOR_BGR2RGB)
            inputs = _face_inputs(image)
            if inputs is not None:
                frames.append(inputs)
            if len(frames) == 5:
                break
        groups[expression] = visual.encode(*_stack(frames))
    r = visual.token_names.index("AU12_lip_corner_pull")
    names = visual.feature_names("AU12_lip_corner_pull")
    for feature in ("mouthSmileLeft", "mouthSmileRight", "right_corner_lift_local",
                    "left_corner_lift_local", "mouth_width"):  # fmt: skip
        c = names.index(feature)
        happy, neutral = groups["Happiness"][:, r, c].mean(), groups["Neutral"][:, r, c].mean()
        assert happy > neutral, (feature, happy, neutral)
