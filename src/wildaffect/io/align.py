"""Align audio to video frames: which audio (features or samples) belongs to which frame.

The paper chunks "the audio signal using a sliding window that temporally aligns with the
corresponding video frame rate". Audio encoders run at their own rate (WavLM: one feature
every 20 ms), video at 25-30 fps or a variable rate, so each video frame gets the audio
features that fall between its presentation time and the next frame's, averaged.

Times are seconds on the frame timeline of :mod:`wildaffect.io.media`; ``audio_start_s``
is :attr:`~wildaffect.io.media.AudioTrack.start_s` (where sample 0 of the audio lies on that
timeline, e.g. -0.027 s when the audio starts 27 ms before the first frame).

WavLM's convolutional front-end (7 layers, kernels 10,3,3,3,3,2,2 and strides 5,2,2,2,2,2,2)
has a receptive field of 400 samples (25 ms) and a hop of 320 samples (20 ms) at 16 kHz, so
feature ``j`` covers samples ``[320 j, 320 j + 400)`` and ``n_samples`` give
``floor((n_samples - 400) / 320) + 1`` features (49 per second). Feature ``j`` is placed at
``j * AUDIO_HOP_S``, the start of its window. Whisper's encoder also produces 20 ms frames.

Audio-only inputs have no video frames: their records use the audio's own timeline, one frame
per 20 ms feature (:func:`audio_frame_times`), so frame ``k`` gets exactly feature ``k``.
"""

from __future__ import annotations

import itertools
from typing import TypeVar

import numpy as np

from wildaffect.io.media import AUDIO_SAMPLE_RATE

#: Hop between audio feature frames (s): WavLM and Whisper both emit one feature per 20 ms.
AUDIO_HOP_S = 0.02
#: WavLM's conv front-end at 16 kHz: receptive field and hop in samples.
WAVLM_RECEPTIVE_FIELD = 400
WAVLM_HOP = 320
#: The conv layers behind those numbers (transformers' WavLMConfig defaults).
WAVLM_CONV_KERNELS: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
WAVLM_CONV_STRIDES: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)

ArrayT = TypeVar("ArrayT")


def wavlm_num_frames(n_samples: int) -> int:
    """Number of WavLM (wav2vec 2.0 style) feature frames for ``n_samples`` of 16 kHz audio."""
    if n_samples < WAVLM_RECEPTIVE_FIELD:
        return 0
    return (n_samples - WAVLM_RECEPTIVE_FIELD) // WAVLM_HOP + 1


def audio_frame_times(n_samples: int) -> np.ndarray:
    """(T,) float64 frame times of an audio-only record of ``n_samples`` 16 kHz samples.

    The one rule for the 20 ms timeline: T = :func:`wavlm_num_frames` and frame ``k`` is at
    ``k * AUDIO_HOP_S``, the start of its feature's window, which is where
    :func:`frame_audio_ranges` places feature ``k`` (so the alignment is one-to-one).
    """
    return np.arange(wavlm_num_frames(n_samples), dtype=np.float64) * AUDIO_HOP_S


def _as_times(frame_times_s: np.ndarray) -> np.ndarray:
    times = np.asarray(frame_times_s, dtype=np.float64)
    if times.ndim != 1:
        raise ValueError(f"frame_times_s must be 1-D (T,), got shape {times.shape}")
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        raise ValueError("frame_times_s must be strictly increasing")
    return times


def _frame_ends(times: np.ndarray) -> np.ndarray:
    """End of each frame's interval: the next frame's time; the last lasts the median frame."""
    if len(times) == 0:
        return times.copy()
    last_duration = float(np.median(np.diff(times))) if len(times) > 1 else AUDIO_HOP_S
    return np.append(times[1:], times[-1] + last_duration)


def frame_audio_ranges(
    frame_times_s: np.ndarray,
    n_audio_frames: int,
    hop_s: float = AUDIO_HOP_S,
    *,
    audio_start_s: float = 0.0,
    ends_s: np.ndarray | None = None,
) -> np.ndarray:
    """Half-open ranges ``[start, end)`` of audio feature frames for each video frame.

    frame_times_s: (T,) increasing presentation times. Returns (T, 2) int64.
    ``ends_s`` (T,): each frame's end when the caller knows it (a chunk of a longer stream
    knows the next frame's time); by default computed as below.

    Frame ``i`` covers ``[t_i, t_{i+1})`` (the last one the median frame duration). Both
    ends are rounded to the nearest feature index, so for consecutive frames the ranges
    tile the audio without gaps or overlaps. A frame shorter than one hop still gets one
    feature (the nearest), and every range is clipped into ``[0, n_audio_frames)``: frames
    before the audio starts or after it ends reuse the first / last feature.
    """
    if n_audio_frames <= 0:
        raise ValueError(f"need at least one audio frame to align to, got {n_audio_frames}")
    times = _as_times(frame_times_s) - audio_start_s
    frame_ends = _frame_ends(times) if ends_s is None else np.asarray(ends_s) - audio_start_s
    starts = np.rint(times / hop_s).astype(np.int64)
    ends = np.rint(frame_ends / hop_s).astype(np.int64)
    starts = np.clip(starts, 0, n_audio_frames - 1)
    ends = np.clip(np.maximum(ends, starts + 1), 1, n_audio_frames)
    return np.stack([starts, ends], axis=1)


def frame_audio_ranges_reference(
    frame_times_s: np.ndarray,
    n_audio_frames: int,
    hop_s: float = AUDIO_HOP_S,
    *,
    audio_start_s: float = 0.0,
) -> np.ndarray:
    """Slow per-frame loop of :func:`frame_audio_ranges`, kept as its test oracle."""
    times = [float(t) - audio_start_s for t in frame_times_s]
    ranges = []
    for i, t in enumerate(times):
        if i + 1 < len(times):
            t_end = times[i + 1]
        else:
            durations = [b - a for a, b in itertools.pairwise(times)]
            t_end = t + (float(np.median(durations)) if durations else hop_s)
        start = min(max(round(t / hop_s), 0), n_audio_frames - 1)
        end = round(t_end / hop_s)
        end = min(max(end, start + 1), n_audio_frames)
        ranges.append((start, end))
    return np.asarray(ranges, dtype=np.int64).reshape(-1, 2)


def frame_sample_windows(
    frame_times_s: np.ndarray,
    n_samples: int,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    window_s: float = 1.0,
    *,
    audio_start_s: float = 0.0,
) -> np.ndarray:
    """Raw-sample range ``[start, end)`` of a ``window_s`` window centred on each frame time.

    For encoders that take a waveform per frame (a context window of speech around the
    moment the frame is shown). Returns (T, 2) int64, clipped to ``[0, n_samples]``, so
    windows at the edges are shorter (possibly empty when the frame lies outside the audio).
    """
    times = _as_times(frame_times_s) - audio_start_s
    length = round(window_s * sample_rate)
    starts = np.rint((times - window_s / 2) * sample_rate).astype(np.int64)
    ends = starts + length
    return np.stack([np.clip(starts, 0, n_samples), np.clip(ends, 0, n_samples)], axis=1)


def pool_to_frames(features: ArrayT, ranges: np.ndarray) -> ArrayT:
    """Mean of the feature rows in each range: audio features resampled to video frames.

    features: (Na, D) numpy array or torch tensor (any leading batch dims: (..., Na, D));
    ranges: (T, 2) from :func:`frame_audio_ranges`. Returns (..., T, D) of the same kind and
    dtype. One cumulative sum and two gathers instead of a loop over frames; the sum runs in
    float64 so long recordings do not lose precision. Differentiable for torch tensors.
    """
    ranges = np.asarray(ranges, dtype=np.int64)
    if ranges.ndim != 2 or ranges.shape[1] != 2:
        raise ValueError(f"ranges must be (T, 2), got shape {ranges.shape}")
    starts, ends = ranges[:, 0], ranges[:, 1]
    n_audio = features.shape[-2]
    if np.any(ends <= starts) or np.any(starts < 0) or np.any(ends > n_audio):
        raise ValueError(f"ranges must be non-empty and inside [0, {n_audio}]")
    counts = (ends - starts).astype(np.float64)[:, None]  # (T, 1)
    if isinstance(features, np.ndarray):
        cumulative = np.cumsum(features, axis=-2, dtype=np.float64)  # (..., Na, D)
        zero = np.zeros_like(cumulative[..., :1, :])
        cumulative = np.concatenate([zero, cumulative], axis=-2)  # (..., Na + 1, D)
        pooled = (cumulative[..., ends, :] - cumulative[..., starts, :]) / counts
        return pooled.astype(features.dtype, copy=False)
    import torch  # only when given tensors; keeps this module light for numpy callers

    cumulative = torch.cumsum(features.to(torch.float64), dim=-2)  # (..., Na, D)
    zero = torch.zeros_like(cumulative[..., :1, :])
    cumulative = torch.cat([zero, cumulative], dim=-2)  # (..., Na + 1, D)
    ends_t = torch.as_tensor(ends, device=features.device)
    starts_t = torch.as_tensor(starts, device=features.device)
    counts_t = torch.as_tensor(counts, device=features.device)
    pooled = cumulative.index_select(-2, ends_t) - cumulative.index_select(-2, starts_t)
    return (pooled / counts_t).to(features.dtype)


def pool_to_frames_reference(features: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Slow loop of :func:`pool_to_frames` for (Na, D) arrays, kept as its test oracle."""
    return np.stack([features[start:end].mean(axis=0) for start, end in ranges])


def wavlm_frame_ranges(
    frame_times_s: np.ndarray, n_samples: int, *, audio_start_s: float = 0.0
) -> np.ndarray:
    """:func:`frame_audio_ranges` for the WavLM features of an ``n_samples`` 16 kHz waveform.

    Lets a caller plan the alignment (or check a feature cache) before running WavLM.
    """
    return frame_audio_ranges(
        frame_times_s, wavlm_num_frames(n_samples), AUDIO_HOP_S, audio_start_s=audio_start_s
    )


def align_audio_features(
    features: ArrayT,
    frame_times_s: np.ndarray,
    *,
    hop_s: float = AUDIO_HOP_S,
    audio_start_s: float = 0.0,
) -> ArrayT:
    """Audio features (..., Na, D) at ``hop_s`` -> one averaged feature per video frame
    (..., T, D)."""
    ranges = frame_audio_ranges(
        frame_times_s, features.shape[-2], hop_s, audio_start_s=audio_start_s
    )
    return pool_to_frames(features, ranges)


__all__ = [
    "AUDIO_HOP_S",
    "WAVLM_CONV_KERNELS",
    "WAVLM_CONV_STRIDES",
    "WAVLM_HOP",
    "WAVLM_RECEPTIVE_FIELD",
    "align_audio_features",
    "audio_frame_times",
    "frame_audio_ranges",
    "frame_audio_ranges_reference",
    "frame_sample_windows",
    "pool_to_frames",
    "pool_to_frames_reference",
    "wavlm_frame_ranges",
    "wavlm_num_frames",
]
