"""silero-vad speech probability at extract time, on real speech with silent lead-ins.

GRID clips are read sentences with about half a second of silence before and after: the
per-frame probability must be low there and high in the speech, and its onset must agree with
the onset of the audio's energy (an independent check of the alignment to the frames).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from wildaffect.cli import app
from wildaffect.data.cache import FeatureCache
from wildaffect.extract import extract_batch
from wildaffect.io.media import AUDIO_SAMPLE_RATE, frame_times, read_audio
from wildaffect.preprocess import preprocess_batch
from wildaffect.streams import VAD
from wildaffect.streams.vad import VAD_HOP_S, load_vad, speech_probability, vad_on_frames

GRID = "sbwe5n"  # 3 s, 25 fps, silence - "set blue with e five now" - silence
SONG = "1002_DFA_HAP_XX"  # CREMA-D mp3: audio-only record, one frame per 20 ms
IMAGE = "single_face"  # one frame, no audio
runner = CliRunner()


@pytest.fixture(scope="module")
def vad_model():
    return load_vad()


@pytest.fixture(scope="module")
def preprocessed(fixtures_dir: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("streams-vad")
    media = fixtures_dir / "media"
    report = preprocess_batch(
        [media / f"{GRID}.mpg", media / f"{SONG}.mp3", media / f"{IMAGE}.jpg"], root, crops="npy"
    )
    assert report.all_ok, [r.reason for r in report.failures]
    return root


@pytest.fixture
def cache(preprocessed: Path, tmp_path: Path) -> FeatureCache:
    shutil.copytree(preprocessed, tmp_path / "cache")
    return FeatureCache(tmp_path / "cache")


def energy_onset_s(samples: np.ndarray) -> float:
    """Start (s) of the first 100 ms whose 20 ms windows all reach a tenth of the loudest
    window's RMS (-20 dB): sustained loudness, so a click in the silence does not count."""
    hop, run = int(0.02 * AUDIO_SAMPLE_RATE), 5
    windows = samples[: len(samples) // hop * hop].reshape(-1, hop)
    rms = np.sqrt((windows.astype(np.float64) ** 2).mean(axis=1))
    loud = rms >= 0.1 * rms.max()
    sustained = np.lib.stride_tricks.sliding_window_view(loud, run).all(axis=1)
    return float(np.argmax(sustained)) * 0.02


def check_speech_in_silence(vad: np.ndarray, times: np.ndarray, samples: np.ndarray) -> None:
    speech = vad >= 0.5
    assert vad[:5].max() < 0.1, vad[:5]  # the first 0.2 s are silence
    assert vad[-3:].max() < 0.2, vad[-3:]  # and so are the last 0.1 s
    middle = (times > 1.0) & (times < 1.6)
    assert np.median(vad[middle]) > 0.9, vad[middle]  # mid-sentence (short pauses aside)
    onset = float(times[np.argmax(speech)])
    assert abs(onset - energy_onset_s(samples)) <= 0.12, (onset, energy_onset_s(samples))


def test_vad_on_a_grid_clip_is_low_in_the_silence_and_high_in_the_speech(
    fixtures_dir: Path, vad_model
) -> None:
    path = fixtures_dir / "media" / f"{GRID}.mpg"
    audio = read_audio(path)
    probs = speech_probability(vad_model, audio.samples)
    assert probs.shape == (-(-len(audio.samples) // 512),) and probs.dtype == np.float32
    assert ((probs >= 0) & (probs <= 1)).all()
    times = frame_times(path)
    vad = vad_on_frames(probs, times, audio.start_s)
    assert vad.shape == times.shape
    check_speech_in_silence(vad, times, audio.samples)
    # One chunk later on the timeline moves the onset by one hop: alignment is not free.
    shifted = vad_on_frames(probs, times, audio.start_s + 0.2)
    assert not np.allclose(shifted, vad)


def test_speech_probability_keeps_the_thread_count_and_handles_empty_audio(vad_model) -> None:
    threads = torch.get_num_threads()
    assert speech_probability(vad_model, np.zeros(0, np.float32)).shape == (0,)
    short = speech_probability(vad_model, np.zeros(100, np.float32))  # padded to one chunk
    assert short.shape == (1,) and short[0] < 0.1
    assert torch.get_num_threads() == threads
    assert vad_on_frames(np.zeros(0), np.arange(3) * 0.04).tolist() == [0, 0, 0]


@pytest.mark.shared_data
def test_vad_on_every_grid_clip(shared_data: Path, vad_model) -> None:
    clips = sorted((shared_data / "media" / "grid").glob("*.mpg"))
    assert len(clips) >= 10
    for path in clips:
        audio = read_audio(path)
        times = frame_times(path)
        vad = vad_on_frames(speech_probability(vad_model, audio.samples), times, audio.start_s)
        check_speech_in_silence(vad, times, audio.samples)


def test_extract_writes_vad_by_default_with_audio_on_each_record_timeline(cache) -> None:
    report = extract_batch(cache.root, visual=None, device="cpu")
    assert report.all_ok, [r.reason for r in report.failures]
    assert all(VAD.feature_set in r.written for r in report.results)
    grid = cache.read_features(VAD.feature_set, GRID).astype(np.float32)
    meta = cache.read_meta(GRID)
    assert grid.shape == (meta["n_frames"],)
    check_speech_in_silence(grid, cache.read_array(GRID, "frame_times"),
                            cache.read_array(GRID, "audio"))  # fmt: skip
    song = cache.read_features(VAD.feature_set, SONG).astype(np.float32)
    assert song.shape == (cache.read_meta(SONG)["n_frames"],)  # the 20 ms timeline
    assert song.max() > 0.9 and song.min() < 0.5  # an utterance with pauses around it
    assert cache.read_features(VAD.feature_set, IMAGE).tolist() == [0.0]  # no audio track
    info = json.loads((cache.root / "features" / VAD.feature_set / "encoder.json").read_text())
    assert info["stream"] == "vad" and info["dims"] == []
    manifest = json.loads((cache.root / "manifest.json").read_text())
    assert manifest["extract"]["streams"] == [VAD.feature_set]


def test_no_vad_without_audio_or_with_no_vad_and_vad_alone(cache) -> None:
    extract_batch(cache.root, audio=None, device="cpu", videos=[IMAGE])
    assert not cache.has_features(VAD.feature_set, IMAGE)
    result = runner.invoke(app, ["extract", str(cache.root), "--visual", "none", "--no-vad",
                                 "--videos", GRID])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not cache.has_features(VAD.feature_set, GRID)
    result = runner.invoke(app, ["extract", str(cache.root), "--visual", "none", "--audio",
                                 "none", "--vad", "--videos", GRID])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert cache.has_features(VAD.feature_set, GRID)
    assert cache.encoders() == ["logmel-egemaps", "mediapipe-regions", VAD.feature_set]


def test_vad_hop_is_silero_chunk() -> None:
    assert VAD_HOP_S == pytest.approx(0.032)
