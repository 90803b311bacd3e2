"""``logmel-egemaps-emobase``: frame features + openSMILE functionals of a window per frame."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from wildaffect.encoders.offline_audio import WINDOW_PREFIX, OfflineAudioEncoder, frame_centres_s
from wildaffect.encoders.offline_functionals import (
    COMPARE_SOFT_LOG_ABOVE,
    SQRT_PREFIX,
    SQUARED_SUFFIX,
    WindowFunctionals,
    functionals_context_s,
    soft_log,
)
from wildaffect.encoders.registry import create_encoder, get_spec
from wildaffect.io.media import read_audio

SR = 16_000
N_EMOBASE = 988
N_FRAME_FEATURES = 2 * (64 + 26)  # logmel-egemaps: log-mel + 25 LLDs + voiced, with deltas


@pytest.fixture(scope="module")
def encoder() -> OfflineAudioEncoder:
    return create_encoder("logmel-egemaps-emobase")


@pytest.fixture(scope="module")
def speech(fixtures_dir) -> np.ndarray:
    """(N,) 16 kHz: a real CREMA-D utterance (2.6 s)."""
    return read_audio(fixtures_dir / "media" / "1002_DFA_HAP_XX.mp3").samples


def _opensmile_emobase(samples: np.ndarray, feature_set: str = "emobase") -> np.ndarray:
    """openSMILE's functionals of the whole of ``samples``, squared errors as their roots."""
    import opensmile

    smile = opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, feature_set),
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    row = smile.process_signal(samples, SR)
    names = list(row.columns)
    values = np.nan_to_num(row.to_numpy(np.float64)[0])
    squared = np.array([n.endswith(SQUARED_SUFFIX) for n in names])
    values[squared] = np.sqrt(values[squared])
    return values


def test_registered_with_named_columns(encoder):
    assert get_spec("logmel-egemaps-emobase").hub_id is None
    assert encoder.feature_dim == len(encoder.feature_names) == N_FRAME_FEATURES + N_EMOBASE
    window = encoder.feature_names[N_FRAME_FEATURES:]
    assert all(n.startswith(WINDOW_PREFIX) for n in window)
    squared = [n for n in window if n.endswith(SQUARED_SUFFIX)]
    assert squared and all(n.startswith(WINDOW_PREFIX + SQRT_PREFIX) for n in squared)
    assert encoder.context_s == 2.0 == functionals_context_s(2.0, 0.5)


def test_three_second_variant_reads_three_second_windows(encoder, speech):
    """``logmel-egemaps-emobase3s``: same columns; the frame at 1.5 s reads [0, 3.0) s (the
    2.6 s clip, whole), which the 2 s encoder never sees in one window."""
    wide = create_encoder("logmel-egemaps-emobase3s")
    assert wide.feature_names == encoder.feature_names
    assert wide.context_s == 2.0 == functionals_context_s(3.0, 0.5)
    frame = int(np.argmin(np.abs(frame_centres_s(len(wide.encode(speech))) - 1.5)))
    window = wide.encode(speech)[frame, N_FRAME_FEATURES:]
    np.testing.assert_allclose(window, _opensmile_emobase(speech), rtol=1e-3, atol=1e-3)
    assert not np.allclose(encoder.encode(speech)[frame, N_FRAME_FEATURES:], window, rtol=1e-2)


def test_frame_part_is_logmel_egemaps_and_window_part_is_opensmile(encoder, speech):
    features = encoder.encode(speech)  # (Na, 1168)
    plain = create_encoder("logmel-egemaps").encode(speech)
    np.testing.assert_array_equal(features[:, :N_FRAME_FEATURES], plain)
    # The window centred at 1.0 s spans [0, 2.0) s; a frame centred there reads it alone.
    functionals = WindowFunctionals("emobase")
    centres, values = functionals.window_values(speech)
    k = int(np.argmin(np.abs(centres - 1.0)))
    np.testing.assert_allclose(values[k], _opensmile_emobase(speech[: 2 * SR]), rtol=1e-6)
    on_centre = functionals.on_grid(speech, np.array([1.0]))[0]
    np.testing.assert_allclose(on_centre, values[k])


def test_frames_between_window_centres_interpolate_linearly(speech):
    functionals = WindowFunctionals("emobase")
    centres, values = functionals.window_values(speech)
    assert np.allclose(np.diff(centres), 0.5) and centres[0] == 0.0
    quarter = functionals.on_grid(speech, np.array([centres[1] + 0.125]))[0]
    np.testing.assert_allclose(quarter, 0.75 * values[1] + 0.25 * values[2], rtol=1e-9)
    # Past the last centre: the last window, not an extrapolation.
    end = functionals.on_grid(speech, np.array([centres[-1] + 0.2]))[0]
    np.testing.assert_allclose(end, values[-1])


def test_windows_change_only_near_where_the_audio_changes(encoder, speech):
    """Silencing the last 0.5 s leaves frames more than a context away unchanged."""
    muted = speech.copy()
    muted[-SR // 2 :] = 0
    a, b = encoder.encode(speech)[:, N_FRAME_FEATURES:], encoder.encode(muted)[:, N_FRAME_FEATURES:]
    changed = np.abs(a - b).max(1) > 1e-6
    times = frame_centres_s(len(a))
    edit_s = (len(speech) - SR // 2) / SR
    assert changed[times > edit_s].all()
    assert not changed[times < edit_s - encoder.context_s].any()


def test_short_input_is_one_window_and_tiny_input_no_frames(encoder, speech):
    short = encoder.encode(speech[: SR * 3 // 10])  # 0.3 s: shorter than MIN_WINDOW_S
    assert len(short) == 14
    window = short[:, N_FRAME_FEATURES:]
    np.testing.assert_array_equal(window, np.repeat(window[:1], len(window), axis=0))
    assert np.abs(window).sum() > 0
    assert encoder.encode(speech[:399]).shape == (0, encoder.feature_dim)


def test_hop_must_divide_a_second():
    with pytest.raises(ValueError, match="divide one second"):
        WindowFunctionals("emobase", window_s=2.0, hop_s=0.3)
    with pytest.raises(ValueError, match="functionals must be one of"):
        WindowFunctionals("nope")


def test_soft_log_is_the_identity_up_to_the_bound_and_logarithmic_beyond():
    x = np.array([-1e12, -5000.0, -1000.0, -3.5, 0.0, 999.0, 1000.0, 2718.281828, 1e12])
    c = 1000.0
    expected = [-(c + c * np.log(1e9)), -(c + c * np.log(5)), -c, -3.5, 0.0, 999.0, c, 2 * c,
                c + c * np.log(1e9)]  # hand-computed: c (1 + ln(|x| / c)) beyond c
    np.testing.assert_allclose(soft_log(x, c), expected, rtol=1e-6)
    # Continuous with slope 1 at the bound, so nearby values keep their order and spacing.
    eps = 1e-3
    np.testing.assert_allclose((soft_log(np.array([c + eps]), c) - c) / eps, 1.0, rtol=1e-3)
    with pytest.raises(ValueError, match="soft_log_above must be > 0"):
        WindowFunctionals("emobase", soft_log_above=0.0)


def test_compare_variant_is_opensmile_compare_compressed_into_float16(speech):
    """``logmel-egemaps-compare3s``: the frame at 1.5 s reads the whole 2.6 s clip; its window
    part is openSMILE's ComParE 2016 functionals of it, soft-log-compressed beyond 1000, and
    every value stays finite in the float16 feature cache (raw ComParE values do not)."""
    encoder = create_encoder("logmel-egemaps-compare3s")
    assert get_spec("logmel-egemaps-compare3s").hub_id is None
    assert encoder.feature_dim == N_FRAME_FEATURES + 6373 and encoder.context_s == 2.0
    features = encoder.encode(speech)
    frame = int(np.argmin(np.abs(frame_centres_s(len(features)) - 1.5)))
    raw = _opensmile_emobase(speech, "ComParE_2016")
    np.testing.assert_allclose(features[frame, N_FRAME_FEATURES:],
                               soft_log(raw, COMPARE_SOFT_LOG_ABOVE), rtol=1e-3, atol=1e-3)
    assert np.abs(raw).max() > 65504  # why the compression is needed
    assert np.isfinite(features.astype(np.float16)).all()


@pytest.mark.parametrize(
    "name", ["logmel-egemaps-emobase", "logmel-egemaps-emobase3s", "logmel-egemaps-compare3s"]
)
def test_streamed_features_equal_one_pass(name, speech, tmp_path, monkeypatch):
    """Blocks of 1 s with the encoder's 2 s context reproduce the one-pass features (the 3 s
    windows reach exactly that far: window / 2 + hop = 2 s)."""
    import wildaffect.predict.audio as audio_module
    from wildaffect.extract import RunOptions, encode_audio, load_encoder

    long = np.concatenate([speech, speech[::-1], speech])  # 7.8 s of real speech
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SR)
        out.writeframes((np.clip(long, -1, 1) * 32767).astype("<i2").tobytes())
    samples = read_audio(path).samples
    loaded, options = load_encoder(name, "audio"), RunOptions()
    whole = encode_audio(samples, loaded, options)
    monkeypatch.setattr(audio_module, "BLOCK_FRAMES", 50)  # 1 s blocks: a multiple of the hop
    stream = audio_module.AudioFeatureStream(path, loaded, options)
    assert stream.margin_frames == 100  # the encoder's context, not the 1 s default
    pieces, start = [], 0
    for size in (13, 60, 1, 150, 1000):
        pieces.append(stream.features(start, start + size))
        start += len(pieces[-1])
    streamed = np.concatenate(pieces)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=1e-4, atol=1e-3)
