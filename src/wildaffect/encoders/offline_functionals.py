"""Utterance-level openSMILE functionals on the 20 ms grid, from sliding windows.

Per-utterance statistics of the low-level descriptors (means, percentiles, ranges, slopes of
MFCCs, F0, loudness, ...) carry more of a voice's emotion than any single 20 ms frame: on the
EmoDB leave-one-speaker-out protocol emobase functionals + logistic regression reach a UAR of
0.60, frame descriptors pooled by mean and std 0.50-0.54 (``benchmarks/speech_baselines.py``).
A frame model cannot rebuild such statistics from a few hundred training utterances, so
they are given to it as features: the functionals of a window of ``window_s`` around the
frame.

Windows are centred every ``hop_s`` from the first sample (``0, hop_s, 2 hop_s, ...``) and
clipped to the signal, so a window near either end covers less audio; windows shorter than
:data:`MIN_WINDOW_S` are dropped. Each 20 ms frame takes the linear interpolation, in time,
between the two windows whose centres surround its centre (the nearest one past the first or
last centre). A frame's features therefore depend on the samples within ``window_s / 2 +
hop_s`` of it. A streaming reader that encodes blocks with whole seconds of context
(:func:`functionals_context_s`) reproduces the one-pass features exactly, because ``hop_s``
must divide one second: every block then starts on the same window grid.

openSMILE's squared regression errors (``*_linregerrQ``, squared units: up to ~4e4 for F0 in
Hz, near float16's limit in the feature cache) are stored as their square roots, i.e. the
RMS error in the descriptor's own unit (``sqrt_*``). ComParE 2016 goes further: functionals of
its spectral descriptors (variance in Hz^2, roll-off and centroid slopes, ``lpgain``) reach
1e7-1e12 on EmoDB, past float16's 65504, so with ``soft_log_above`` c every value beyond +-c is
compressed to ``sign(x) (c + c log(|x| / c))``: the identity up to c, continuous with slope 1
there, logarithmic after (1e12 becomes ~2.2e4). On EmoDB utterance functionals + logistic
regression, leave-one-speaker-out, the compressed float16 values score as the raw float64
ones (UAR 0.705-0.709 vs 0.699-0.705, C 0.01 / 0.1).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from wildaffect.io.media import AUDIO_SAMPLE_RATE

#: openSMILE functional sets offered (``opensmile.FeatureSet`` member names).
FUNCTIONAL_SETS = ("emobase", "eGeMAPSv02", "ComParE_2016")
#: Where ComParE's functionals start to be log-compressed (see the module docstring).
COMPARE_SOFT_LOG_ABOVE = 1000.0
DEFAULT_WINDOW_S = 2.0
DEFAULT_HOP_S = 0.5
#: Windows clipped by the signal's ends below this length are left out (openSMILE's F0 and
#: percentile functionals need a few hundred ms to mean anything).
MIN_WINDOW_S = 0.5
#: Columns stored as their square root, and the prefix that marks them.
SQUARED_SUFFIX = "_linregerrQ"
SQRT_PREFIX = "sqrt_"


def soft_log(values: np.ndarray, above: float) -> np.ndarray:
    """Identity on [-above, above], ``sign(x) (above + above log(|x| / above))`` beyond."""
    magnitude = np.abs(values)
    beyond = above * (1.0 + np.log(np.maximum(magnitude, above) / above))
    return np.where(magnitude <= above, values, np.sign(values) * beyond)


def functionals_context_s(window_s: float, hop_s: float) -> float:
    """Whole seconds of audio on each side of a frame that cover what its features read."""
    return float(math.ceil(window_s / 2 + hop_s - 1e-9))


class WindowFunctionals:
    """(N,) 16 kHz samples + frame centres -> (len(times), D) windowed functionals."""

    def __init__(
        self, feature_set: str = "emobase", window_s: float = DEFAULT_WINDOW_S,
        hop_s: float = DEFAULT_HOP_S, sample_rate: int = AUDIO_SAMPLE_RATE,
        soft_log_above: float | None = None,
    ):  # fmt: skip
        if feature_set not in FUNCTIONAL_SETS:
            raise ValueError(f"functionals must be one of {FUNCTIONAL_SETS}, got {feature_set!r}")
        if not 0 < hop_s <= window_s:
            raise ValueError(f"need 0 < hop_s <= window_s, got hop {hop_s}, window {window_s}")
        if abs(round(1 / hop_s) * hop_s - 1) > 1e-9:
            raise ValueError(f"hop_s must divide one second (0.1, 0.25, 0.5, ...), got {hop_s}")
        self.feature_set = feature_set
        if soft_log_above is not None and soft_log_above <= 0:
            raise ValueError(f"soft_log_above must be > 0, got {soft_log_above}")
        self.window_s, self.hop_s, self.sample_rate = window_s, hop_s, sample_rate
        self.soft_log_above = soft_log_above
        self._smile = None
        raw = self._opensmile().feature_names
        self._squared = np.array([n.endswith(SQUARED_SUFFIX) for n in raw])
        self.feature_names: tuple[str, ...] = tuple(
            f"{SQRT_PREFIX}{n}" if s else n for n, s in zip(raw, self._squared)
        )

    def _opensmile(self):
        if self._smile is None:
            import opensmile

            self._smile = opensmile.Smile(
                feature_set=getattr(opensmile.FeatureSet, self.feature_set),
                feature_level=opensmile.FeatureLevel.Functionals,
            )
        return self._smile

    @property
    def context_s(self) -> float:
        return functionals_context_s(self.window_s, self.hop_s)

    def windows(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """-> centres (K,) s and sample bounds (K, 2) of the windows kept for ``n_samples``."""
        duration = n_samples / self.sample_rate
        centres = np.arange(0.0, duration + 1e-9, self.hop_s)
        half = self.window_s / 2
        bounds = np.stack([np.clip(centres - half, 0, duration),
                           np.clip(centres + half, 0, duration)], axis=1)  # fmt: skip
        keep = bounds[:, 1] - bounds[:, 0] >= min(MIN_WINDOW_S, duration) - 1e-9
        samples = np.rint(bounds[keep] * self.sample_rate).astype(np.int64)
        return centres[keep], samples

    def window_values(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> centres (K,) s and (K, D) functionals of each kept window (NaN -> 0)."""
        centres, bounds = self.windows(len(samples))
        rows = []
        with warnings.catch_warnings():  # "Segment too short": NaN, zeroed below
            warnings.simplefilter("ignore", UserWarning)
            for s0, s1 in bounds:
                frame = self._opensmile().process_signal(samples[s0:s1], self.sample_rate)
                rows.append(frame.to_numpy(dtype=np.float64)[0])
        values = np.nan_to_num(np.stack(rows)) if rows else np.zeros((0, len(self.feature_names)))
        values[:, self._squared] = np.sqrt(np.maximum(values[:, self._squared], 0.0))
        if self.soft_log_above is not None:
            values = soft_log(values, self.soft_log_above)
        return centres, values

    def on_grid(self, samples: np.ndarray, times_s: np.ndarray) -> np.ndarray:
        """(N,) samples, (Na,) frame centres -> (Na, D): windows interpolated to each centre."""
        if len(times_s) == 0:
            return np.zeros((0, len(self.feature_names)))
        centres, values = self.window_values(samples)
        if len(centres) == 0:  # shorter than any window: no statistics to give
            return np.zeros((len(times_s), len(self.feature_names)))
        if len(centres) == 1:
            return np.repeat(values, len(times_s), axis=0)
        # Linear interpolation weights, shared by every column: (Na,) left index and weight.
        right = np.clip(np.searchsorted(centres, times_s), 1, len(centres) - 1)
        left = right - 1
        w = np.clip((times_s - centres[left]) / (centres[right] - centres[left]), 0.0, 1.0)
        return values[left] * (1 - w)[:, None] + values[right] * w[:, None]
