"""``logmel-compare``: log-mel + ComParE 2016 LLDs (+ deltas) on WavLM's 20 ms grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wildaffect.encoders.offline_audio import (
    COMPARE_F0_NAME,
    COMPARE_SPREAD_NAME,
    COMPARE_VARIANCE_NAME,
    OfflineAudioEncoder,
)
from wildaffect.encoders.registry import create_encoder, get_spec

SR = 16_000
N_COMPARE_LLDS = 65


def _expected_frames(n: int) -> int:
    return (n - 400) // 320 + 1 if n >= 400 else 0


def _frame_of(sample: float) -> float:
    """The 20 ms frame whose 400-sample window is centred on ``sample``."""
    return (sample - 200) / 320


@pytest.fixture(scope="module")
def compare() -> OfflineAudioEncoder:
    return create_encoder("logmel-compare")


def test_registry_and_names(compare: OfflineAudioEncoder) -> None:
    spec = get_spec("logmel-compare")
    assert (spec.modality, spec.hub_id) == ("audio", None)
    assert compare.feature_dim == len(compare.feature_names) == 2 * (64 + N_COMPARE_LLDS)
    names = set(compare.feature_names)
    assert {COMPARE_F0_NAME, "pcm_RMSenergy_sma", "mfcc_sma[14]", "d_mfcc_sma[14]"} <= names
    assert "Loudness_sma3" not in names  # eGeMAPS left out
    assert COMPARE_SPREAD_NAME in names and COMPARE_VARIANCE_NAME not in names
    assert create_encoder("logmel-egemaps").feature_dim == 180  # shipped encoder unchanged


@pytest.mark.parametrize("n", [0, 399, 400, 401, 720, 16000, 32000])
def test_frame_grid_matches_wavlm(compare: OfflineAudioEncoder, n: int) -> None:
    x = (0.05 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    out = compare.encode(x)
    assert out.shape == (_expected_frames(n), compare.feature_dim)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert compare.hop_s == 0.02


def test_silence_is_finite_and_unvoiced(compare: OfflineAudioEncoder) -> None:
    out = compare.encode(np.zeros(SR, np.float32))
    assert out.shape == (49, compare.feature_dim) and np.isfinite(out).all()
    assert np.all(out[:, list(compare.feature_names).index(COMPARE_F0_NAME)] == 0)


def test_tone_burst_edges_and_f0(compare: OfflineAudioEncoder) -> None:
    """A 150 Hz harmonic burst from 0.5 s to 0.8 s switches the 20 ms-window energy and the
    60 ms-window F0 on and off at the frames centred on 0.5 s and 0.8 s."""
    t = np.arange(int(1.5 * SR)) / SR
    x = 1e-4 * np.random.default_rng(1).standard_normal(len(t))
    on = (t >= 0.5) & (t < 0.8)
    x[on] += 0.3 * sum(np.sin(2 * np.pi * 150 * k * t[on]) / k for k in range(1, 15))
    out = compare.encode(x.astype(np.float32))
    names = list(compare.feature_names)
    start, stop = _frame_of(0.5 * SR), _frame_of(0.8 * SR)
    for name in ("pcm_RMSenergy_sma", COMPARE_F0_NAME):
        column = out[:, names.index(name)]
        above = np.flatnonzero(column > column.min() + 0.5 * (column.max() - column.min()))
        assert abs(above[0] - start) <= 1 and abs(above[-1] - stop) <= 1, (name, above)
    f0 = out[:, names.index(COMPARE_F0_NAME)][int(start) + 3 : int(stop) - 3]
    assert abs(12 * math.log2(np.median(f0) / 150)) < 1.0  # within a semitone of 150 Hz


@pytest.mark.shared_data
def test_real_emodb_clip(compare: OfflineAudioEncoder, shared_data) -> None:
    import av

    path = min((shared_data / "speech-emotion" / "wav").glob("*.wav"))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
    pieces = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            pieces += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    samples = np.concatenate(pieces)
    out = compare.encode(samples)
    assert out.shape == (_expected_frames(len(samples)), compare.feature_dim)
    assert np.isfinite(out).all()
    # the feature cache stores float16: every value must survive the cast
    assert np.isfinite(out.astype(np.float16)).all()
    f0 = out[:, list(compare.feature_names).index(COMPARE_F0_NAME)]
    assert (f0 > 60).sum() >= 10  # speech: voiced frames with a plausible pitch
    assert out[:, : compare.n_mels].std(axis=0).mean() > 0.5  # the mel energies move
