"""Weight-free audio encoder: log-mel + eGeMAPS low-level descriptors on WavLM's 20 ms grid.

No WavLM weights can be downloaded here, so the default model reads these features instead.
They share WavLM's framing exactly: 16 kHz input of N samples gives
``wavlm_num_frames(N) = floor((N - 400) / 320) + 1`` frames, frame ``i`` covering samples
``[320 i, 320 i + 400)`` (25 ms window, 20 ms hop), so everything downstream (alignment to
video frames, AG-SSM) treats both encoders alike. Input shorter than one window (N < 400)
gives zero frames, as WavLM cannot produce any either.

Per frame, in this column order (see :attr:`OfflineAudioEncoder.feature_names`):

* ``n_mels`` log-mel energies: Hann window of 400 samples, 512-point FFT, power spectrum,
  Slaney mel filterbank from ``transformers.audio_utils.mel_filter_bank`` (0-8 kHz),
  ``log(mel + LOG_MEL_EPS)``;
* the 25 eGeMAPS v02 LLDs from openSMILE (loudness, spectral balance, MFCC 1-4, F0, jitter,
  shimmer, HNR, harmonic differences, formants) and ``voiced`` (fraction of voiced
  openSMILE frames around this one). openSMILE emits them every 10 ms over its own windows,
  so each column is resampled *by time* to this frame's centre (see
  :func:`egemaps_on_grid`); ``*_sma3nz`` columns (zero when unvoiced) are averaged over
  voiced neighbours only, so voicing edges do not blend F0 with zeros;
* with ``use_compare=True`` (the ``logmel-compare`` encoder, which leaves eGeMAPS out), the
  65 ComParE 2016 LLDs from openSMILE instead (F0, voicing, jitter, shimmer, HNR, RMS
  energy, zero-crossing rate, 26 RASTA auditory bands, 15 spectral shape descriptors,
  MFCC 1-14), resampled the same way (:func:`compare_on_grid`): a richer spectral
  description than eGeMAPS' 25, at the price of width;
* with ``deltas=True``, the first-order regression deltas (+-2 frames) of all the above.

Nothing is normalised across frames or utterances: per-utterance / per-speaker
standardisation is the model's job (it sees the whole clip and the training statistics).
"""

from __future__ import annotations

import warnings

import numpy as np

from wildaffect.encoders.offline_functionals import (
    DEFAULT_HOP_S,
    DEFAULT_WINDOW_S,
    WindowFunctionals,
)
from wildaffect.io.align import WAVLM_HOP, WAVLM_RECEPTIVE_FIELD, wavlm_num_frames
from wildaffect.io.media import AUDIO_SAMPLE_RATE

N_FFT = 512
#: Added to the mel power before the log: ~-14 in log units, far below any real noise floor
#: of 16-bit-or-better audio in [-1, 1], and keeps digital silence finite.
LOG_MEL_EPS = 1e-6
MEL_FMIN, MEL_FMAX = 0.0, AUDIO_SAMPLE_RATE / 2
#: Half-width of the delta regression window (frames), as HTK / librosa's width 5.
DELTA_WIDTH = 2

#: openSMILE eGeMAPS v02 LLD frames start every 10 ms at ``start`` (its DataFrame index).
#: The energy / spectral / formant descriptors use 20 ms windows (centre = start + 10 ms);
#: F0, jitter, shimmer, HNR and the harmonic amplitudes use 60 ms windows (centre = start +
#: 30 ms). Read from eGeMAPSv02's config and checked with tone bursts on this machine.
EGEMAPS_SHORT_CENTRE_S = 0.010
EGEMAPS_LONG_CENTRE_S = 0.030
EGEMAPS_LONG_WINDOW_PREFIXES = (
    "F0semitone", "jitter", "shimmer", "HNR", "logRelF0", "F1amplitude", "F2amplitude",
    "F3amplitude",
)  # fmt: skip
#: The voicing column added after the LLDs (its source is the F0 column).
VOICED_NAME = "voiced"
F0_NAME = "F0semitoneFrom27.5Hz_sma3nz"

#: ComParE 2016 LLDs share eGeMAPS' framing (10 ms hop, frames start at ``start``): F0,
#: voicing, jitter, shimmer and HNR use 60 ms Gaussian windows, the rest 20 ms Hamming ones
#: (ComParE_2016_core.lld.conf.inc).
COMPARE_LONG_WINDOW_PREFIXES = (
    "F0final", "voicingFinalUnclipped", "jitter", "shimmer", "logHNR",
)  # fmt: skip
#: ComParE columns that are zero on unvoiced frames (no ``nz`` suffix marks them there).
COMPARE_UNVOICED_ZERO = ("F0final_sma", "jitterLocal_sma", "jitterDDP_sma", "shimmerLocal_sma")
COMPARE_F0_NAME = "F0final_sma"
#: ComParE's spectral variance (Hz^2, up to ~1e7) overflows the float16 feature cache: it is
#: stored as its square root, the spectral spread in Hz, under this name.
COMPARE_VARIANCE_NAME = "pcm_fftMag_spectralVariance_sma"
COMPARE_SPREAD_NAME = "sqrt_pcm_fftMag_spectralVariance_sma"
#: Prefix of the window-functional columns (``functionals=...``).
WINDOW_PREFIX = "win_"


def frame_centres_s(n_frames: int, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """(Na,) centre time (s) of each 20 ms frame: (320 i + 200) / 16000."""
    return (np.arange(n_frames) * WAVLM_HOP + WAVLM_RECEPTIVE_FIELD / 2) / sample_rate


def mel_filters(n_mels: int) -> np.ndarray:
    """(N_FFT // 2 + 1, n_mels) Slaney-normalised mel filterbank, 0-8 kHz."""
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=MEL_FMIN,
        max_frequency=MEL_FMAX,
        sampling_rate=AUDIO_SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )


def hann_window() -> np.ndarray:
    """Periodic Hann window of 400 samples (the STFT convention of torch and transformers)."""
    n = np.arange(WAVLM_RECEPTIVE_FIELD)
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / WAVLM_RECEPTIVE_FIELD)


def log_mel(samples: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """(N,) -> (Na, n_mels) log-mel on WavLM's frames; one strided view and one rFFT."""
    n_frames = wavlm_num_frames(len(samples))
    if n_frames == 0:
        return np.zeros((0, filters.shape[1]), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, WAVLM_RECEPTIVE_FIELD)
    frames = frames[::WAVLM_HOP][:n_frames].astype(np.float64)  # (Na, 400)
    power = np.abs(np.fft.rfft(frames * hann_window(), n=N_FFT, axis=-1)) ** 2  # (Na, 257)
    return np.log(power @ filters + LOG_MEL_EPS).astype(np.float32)


def log_mel_reference(samples: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Slow reference of :func:`log_mel` through ``transformers.audio_utils.spectrogram``."""
    from transformers.audio_utils import spectrogram, window_function

    if wavlm_num_frames(len(samples)) == 0:
        return np.zeros((0, filters.shape[1]), np.float32)
    mel = spectrogram(
        samples.astype(np.float64),
        window_function(WAVLM_RECEPTIVE_FIELD, "hann", periodic=True),
        frame_length=WAVLM_RECEPTIVE_FIELD,
        hop_length=WAVLM_HOP,
        fft_length=N_FFT,
        power=2.0,
        center=False,
        mel_filters=filters,
        mel_floor=0.0,
        dtype=np.float64,
    )  # (n_mels, Na)
    return np.log(mel.T + LOG_MEL_EPS).astype(np.float32)


def deltas(features: np.ndarray, width: int = DELTA_WIDTH) -> np.ndarray:
    """(Na, D) -> (Na, D) regression deltas sum_k k (x[t+k] - x[t-k]) / (2 sum_k k^2),
    edges padded by repetition (HTK's formula)."""
    if len(features) == 0:
        return features.copy()
    padded = np.pad(features, ((width, width), (0, 0)), mode="edge")
    n = len(features)
    num = sum(k * (padded[width + k : width + k + n] - padded[width - k : width - k + n])
              for k in range(1, width + 1))  # fmt: skip
    return (num / (2 * sum(k * k for k in range(1, width + 1)))).astype(features.dtype)


def lld_on_grid(
    lld, times_s: np.ndarray, long_prefixes: tuple[str, ...], unvoiced_zero: set[str],
    f0_name: str,
) -> np.ndarray:
    """openSMILE's LLD DataFrame (10 ms frames) -> (len(times_s), n_columns + 1) at times_s.

    Each column is sampled at ``times_s`` by linear interpolation over its own frame
    centres (start + 10 ms, or + 30 ms for names starting with ``long_prefixes``).
    ``unvoiced_zero`` columns are zero on unvoiced frames: they are interpolated as
    sum(w v) / sum(w) over their non-zero neighbours (zero where none), so voicing edges do
    not blend F0 with zeros. The last column is the interpolated voicing of ``f0_name``.
    """
    starts = lld.index.get_level_values("start").total_seconds().to_numpy()
    values = np.nan_to_num(lld.to_numpy(dtype=np.float64))  # too-short input gives NaN rows
    out = np.zeros((len(times_s), values.shape[1] + 1))
    for c, name in enumerate(lld.columns):
        long = name.startswith(long_prefixes)
        centres = starts + (EGEMAPS_LONG_CENTRE_S if long else EGEMAPS_SHORT_CENTRE_S)
        column = values[:, c]
        if name in unvoiced_zero:
            present = (column != 0).astype(np.float64)
            weight = np.interp(times_s, centres, present)
            total = np.interp(times_s, centres, column)  # zeros contribute nothing
            out[:, c] = np.divide(total, weight, out=np.zeros_like(total), where=weight > 1e-9)
            if name == f0_name:
                out[:, -1] = weight
        else:
            out[:, c] = np.interp(times_s, centres, column)
    return out


def egemaps_on_grid(lld, times_s: np.ndarray) -> np.ndarray:
    """eGeMAPS v02 LLDs -> (len(times_s), 25 + 1) at times_s (``*nz`` columns voiced-only)."""
    unvoiced_zero = {name for name in lld.columns if name.endswith("nz")}
    return lld_on_grid(lld, times_s, EGEMAPS_LONG_WINDOW_PREFIXES, unvoiced_zero, F0_NAME)


def compare_on_grid(lld, times_s: np.ndarray) -> np.ndarray:
    """ComParE 2016 LLDs -> (len(times_s), 65) at times_s (its own voicing column suffices),
    the spectral variance as its square root (:data:`COMPARE_SPREAD_NAME`)."""
    out = lld_on_grid(
        lld, times_s, COMPARE_LONG_WINDOW_PREFIXES, set(COMPARE_UNVOICED_ZERO), COMPARE_F0_NAME
    )[:, :-1]
    variance = list(lld.columns).index(COMPARE_VARIANCE_NAME)
    out[:, variance] = np.sqrt(np.maximum(out[:, variance], 0.0))
    return out


class OfflineAudioEncoder:
    """(N,) float32 16 kHz samples in [-1, 1] -> (wavlm_num_frames(N), feature_dim) float32."""

    modality = "audio"
    sample_rate = AUDIO_SAMPLE_RATE
    hop_s = WAVLM_HOP / AUDIO_SAMPLE_RATE

    def __init__(
        self, n_mels: int = 64, use_egemaps: bool = True, use_deltas: bool = True,
        use_compare: bool = False, functionals: str | None = None,
        functional_window_s: float = DEFAULT_WINDOW_S, functional_hop_s: float = DEFAULT_HOP_S,
        functional_soft_log_above: float | None = None,
    ):  # fmt: skip
        if n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {n_mels}")
        self.n_mels = n_mels
        self.use_egemaps = use_egemaps
        self.use_compare = use_compare
        self.use_deltas = use_deltas
        self._filters = mel_filters(n_mels)
        self._smile = None
        self._smile_compare = None
        self._functionals = (
            WindowFunctionals(functionals, functional_window_s, functional_hop_s,
                              soft_log_above=functional_soft_log_above)
            if functionals else None
        )  # fmt: skip
        names = [f"logmel{k}" for k in range(n_mels)]
        if use_egemaps:
            names += [*self._egemaps().feature_names, VOICED_NAME]
        if use_compare:
            names += [COMPARE_SPREAD_NAME if n == COMPARE_VARIANCE_NAME else n
                      for n in self._compare().feature_names]  # fmt: skip
        if use_deltas:
            names += [f"d_{n}" for n in names]
        if self._functionals is not None:
            names += [f"{WINDOW_PREFIX}{n}" for n in self._functionals.feature_names]
        self.feature_names: tuple[str, ...] = tuple(names)
        self.feature_dim = len(names)

    @property
    def context_s(self) -> float:
        """Seconds of audio each side of a frame that a streaming reader must encode with it
        to reproduce the one-pass features (frames: +-2 deltas; window functionals: more)."""
        frames = 1.0
        return frames if self._functionals is None else max(frames, self._functionals.context_s)

    def _egemaps(self):
        if self._smile is None:
            import opensmile

            self._smile = opensmile.Smile(
                feature_set=opensmile.FeatureSet.eGeMAPSv02,
                feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
            )
        return self._smile

    def _compare(self):
        if self._smile_compare is None:
            import opensmile

            self._smile_compare = opensmile.Smile(
                feature_set=opensmile.FeatureSet.ComParE_2016,
                feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
            )
        return self._smile_compare

    def num_frames(self, n_samples: int) -> int:
        return wavlm_num_frames(n_samples)

    def encode(self, samples: np.ndarray) -> np.ndarray:
        """samples: (N,) mono 16 kHz -> (Na, feature_dim) float32, Na = wavlm_num_frames(N)."""
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f"samples must be 1-D mono (N,), got shape {samples.shape}")
        if not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"samples must be float in [-1, 1], got {samples.dtype}")
        samples = np.nan_to_num(samples.astype(np.float32))
        n_frames = wavlm_num_frames(len(samples))
        if n_frames == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        parts = [log_mel(samples, self._filters).astype(np.float64)]
        if self.use_egemaps:
            with warnings.catch_warnings():  # "Segment too short, filling with NaN": handled
                warnings.simplefilter("ignore", UserWarning)
                lld = self._egemaps().process_signal(samples, AUDIO_SAMPLE_RATE)
            parts.append(egemaps_on_grid(lld, frame_centres_s(n_frames)))
        if self.use_compare:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                lld = self._compare().process_signal(samples, AUDIO_SAMPLE_RATE)
            parts.append(compare_on_grid(lld, frame_centres_s(n_frames)))
        features = np.concatenate(parts, axis=1)
        if self.use_deltas:
            features = np.concatenate([features, deltas(features)], axis=1)
        if self._functionals is not None:
            windows = self._functionals.on_grid(samples, frame_centres_s(n_frames))
            features = np.concatenate([features, windows], axis=1)
        return features.astype(np.float32)
