"""Audio/video alignment: WavLM frame counts, frame -> audio-feature ranges, pooling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wildaffect.io.align import (
    AUDIO_HOP_S,
    WAVLM_CONV_KERNELS,
    WAVLM_CONV_STRIDES,
    align_audio_features,
    audio_frame_times,
    frame_audio_ranges,
    frame_audio_ranges_reference,
    frame_sample_windows,
    pool_to_frames,
    pool_to_frames_reference,
    wavlm_frame_ranges,
    wavlm_num_frames,
)
from wildaffect.io.media import AUDIO_SAMPLE_RATE, iter_frames, read_audio

FPS = [25.0, 30000 / 1001, 30.0]


def _conv_stack_length(n: int) -> int:
    """Output length of the conv layers applied one by one (valid convolutions)."""
    for kernel, stride in zip(WAVLM_CONV_KERNELS, WAVLM_CONV_STRIDES):
        n = (n - kernel) // stride + 1 if n >= kernel else 0
    return n


def test_wavlm_num_frames_closed_form_matches_the_conv_stack() -> None:
    for n in list(range(2000)) + [16_000, 16_319, 16_320, 160_000, 1_234_567]:
        assert wavlm_num_frames(n) == _conv_stack_length(n), n
    assert wavlm_num_frames(AUDIO_SAMPLE_RATE) == 49  # 49 features per second at 16 kHz
    assert wavlm_num_frames(10 * AUDIO_SAMPLE_RATE) == 499


def test_wavlm_num_frames_matches_a_real_wavlm_model() -> None:
    """A tiny random WavLM from transformers: same conv front-end, same output length."""
    from transformers import WavLMConfig, WavLMModel

    default = WavLMConfig()
    assert tuple(default.conv_kernel) == WAVLM_CONV_KERNELS
    assert tuple(default.conv_stride) == WAVLM_CONV_STRIDES
    torch.manual_seed(0)
    config = WavLMConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_buckets=16,
        max_bucket_distance=50,
    )
    model = WavLMModel(config).eval()
    for n in [400, 719, 720, 16_123]:
        with torch.no_grad():
            hidden = model(torch.randn(1, n)).last_hidden_state  # (1, Na, 16)
        assert hidden.shape[1] == wavlm_num_frames(n), n


def _check_tiling(ranges: np.ndarray, n_audio: int) -> None:
    starts, ends = ranges[:, 0], ranges[:, 1]
    assert ranges.dtype == np.int64
    assert np.all(ends > starts)  # at least one feature per frame
    assert np.all(starts >= 0) and np.all(ends <= n_audio)
    assert np.all(np.diff(starts) >= 0) and np.all(np.diff(ends) >= 0)  # monotonic


@pytest.mark.parametrize("n_samples", [399, 400, 719, 720, 32_000, 16_000 * 3600 + 123])
def test_audio_timeline_aligns_one_to_one(n_samples: int) -> None:
    """Frame k of an audio-only record is at k * 20 ms and gets exactly audio feature k."""
    times = audio_frame_times(n_samples)
    n = wavlm_num_frames(n_samples)
    assert times.shape == (n,) and times.dtype == np.float64
    if n == 0:
        return
    np.testing.assert_allclose(times, np.arange(n) * AUDIO_HOP_S, rtol=0, atol=1e-9)
    ranges = frame_audio_ranges(times, n)
    np.testing.assert_array_equal(ranges, np.stack([np.arange(n), np.arange(n) + 1], axis=1))
    if n < 10_000:  # the loop oracle agrees (too slow for an hour)
        np.testing.assert_array_equal(frame_audio_ranges_reference(times, n), ranges)
    features = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    np.testing.assert_array_equal(align_audio_features(features, times), features)


@pytest.mark.parametrize("fps", FPS)
def test_constant_fps_ranges_tile_the_audio(fps: float) -> None:
    seconds = 10.0
    times = np.arange(int(seconds * fps)) / fps
    n_audio = wavlm_num_frames(int(seconds * AUDIO_SAMPLE_RATE))
    ranges = frame_audio_ranges(times, n_audio)
    assert ranges.shape == (len(times), 2)
    _check_tiling(ranges, n_audio)
    np.testing.assert_array_equal(ranges[1:, 0], ranges[:-1, 1])  # no gap, no overlap
    assert ranges[0, 0] == 0 and ranges[-1, 1] >= n_audio - 1  # covers the whole audio
    lengths = ranges[:-1, 1] - ranges[:-1, 0]  # the last one may be cut by the audio end
    expected = 1 / (fps * AUDIO_HOP_S)  # 2.0, 1.67, 1.67 features per frame
    assert set(lengths) <= {int(np.floor(expected)), int(np.ceil(expected))}
    assert lengths.mean() == pytest.approx(expected, abs=0.02)
    np.testing.assert_array_equal(ranges, frame_audio_ranges_reference(times, n_audio))


def test_variable_frame_rate_ranges() -> None:
    rng = np.random.default_rng(0)
    times = np.cumsum(np.r_[0.0, rng.uniform(0.005, 0.1, 299)])  # some frames < one hop
    n_audio = wavlm_num_frames(int((times[-1] + 0.05) * AUDIO_SAMPLE_RATE))
    ranges = frame_audio_ranges(times, n_audio)
    _check_tiling(ranges, n_audio)
    gaps = ranges[1:, 0] - ranges[:-1, 1]
    assert np.all(gaps <= 0) and np.all(gaps >= -1)  # no gap; overlap at most one feature
    np.testing.assert_array_equal(ranges, frame_audio_ranges_reference(times, n_audio))


def test_ranges_clip_to_the_audio_and_follow_its_start() -> None:
    times = np.arange(100) / 25.0  # 4 s of video
    ranges = frame_audio_ranges(times, 50)  # only 1 s of features
    _check_tiling(ranges, 50)
    assert np.all(ranges[60:] == [49, 50])  # frames past the audio get the last feature
    shifted = frame_audio_ranges(times + 0.5, 199, audio_start_s=0.5)
    np.testing.assert_array_equal(shifted, frame_audio_ranges(times, 199))
    with pytest.raises(ValueError):
        frame_audio_ranges(times, 0)
    with pytest.raises(ValueError):
        frame_audio_ranges(times[::-1], 199)


def test_frame_sample_windows() -> None:
    times = np.array([0.0, 0.5, 1.0, 2.9])
    windows = frame_sample_windows(times, n_samples=3 * 16_000, sample_rate=16_000, window_s=0.5)
    np.testing.assert_array_equal(
        windows, [[0, 4_000], [4_000, 12_000], [12_000, 20_000], [42_400, 48_000]]
    )


@pytest.mark.parametrize("fps", FPS)
def test_pool_to_frames_matches_the_loop(fps: float) -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(251, 6)).astype(np.float32)  # (Na, D), about 5 s of WavLM
    ranges = frame_audio_ranges(np.arange(int(5 * fps)) / fps, len(features))
    pooled = pool_to_frames(features, ranges)  # (T, D)
    assert pooled.shape == (len(ranges), 6) and pooled.dtype == np.float32
    np.testing.assert_allclose(
        pooled, pool_to_frames_reference(features, ranges), rtol=1e-5, atol=1e-6
    )
    batched = pool_to_frames(np.stack([features, 2 * features]), ranges)  # (2, T, D)
    np.testing.assert_allclose(batched[1], 2 * pooled, rtol=1e-5, atol=1e-6)


def test_pool_to_frames_torch_matches_and_is_differentiable() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    times = np.cumsum(np.r_[0.0, rng.uniform(0.01, 0.08, 59)])
    features = torch.randn(2, 160, 4, dtype=torch.float64, requires_grad=True)  # (B, Na, D)
    ranges = frame_audio_ranges(times, 160)
    pooled = pool_to_frames(features, ranges)  # (B, T, D)
    loop = torch.stack(
        [torch.stack([features[b, s:e].mean(0) for s, e in ranges]) for b in range(2)]
    )
    torch.testing.assert_close(pooled, loop)
    weights = torch.randn_like(pooled)
    (grad,) = torch.autograd.grad((pooled * weights).sum(), features)
    (grad_loop,) = torch.autograd.grad((loop * weights).sum(), features)
    torch.testing.assert_close(grad, grad_loop)
    assert pool_to_frames(features.float(), ranges).dtype == torch.float32


def test_bad_ranges_are_refused() -> None:
    features = np.zeros((10, 2))
    for ranges in ([[3, 3]], [[-1, 2]], [[5, 11]], [[0, 1, 2]]):
        with pytest.raises(ValueError):
            pool_to_frames(features, np.array(ranges))


def test_real_clip_alignment(fixtures_dir: Path) -> None:
    """CREMA-D: energy per 20 ms pooled to frames equals the energy of each frame's samples."""
    path = fixtures_dir / "media" / "1001_DFA_HAP_XX.flv"
    times = np.array([f.time_s for f in iter_frames(path)])
    audio = read_audio(path)
    n_audio = wavlm_num_frames(len(audio.samples))
    ranges = wavlm_frame_ranges(times, len(audio.samples), audio_start_s=audio.start_s)
    assert ranges.shape == (len(times), 2)
    _check_tiling(ranges, n_audio)
    # A 20 ms feature stream we can check by hand: mean square of each 320-sample hop.
    hops = audio.samples[: n_audio * 320].reshape(n_audio, 320)
    energy = (hops.astype(np.float64) ** 2).mean(axis=1, keepdims=True)  # (Na, 1)
    per_frame = align_audio_features(energy, times, audio_start_s=audio.start_s)[:, 0]  # (T,)
    for (start, end), value in zip(ranges, per_frame):
        direct = (audio.samples[start * 320 : end * 320].astype(np.float64) ** 2).mean()
        assert value == pytest.approx(direct, rel=1e-9)
    assert per_frame.max() > 10 * per_frame.min()  # speech and pauses differ frame to frame
