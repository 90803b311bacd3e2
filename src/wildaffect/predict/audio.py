"""Audio features for a stream of frames, in bounded memory.

The audio track is decoded chunk by chunk as the frames ask for it and encoded in fixed blocks
of :data:`BLOCK_FRAMES` feature frames (20 ms each), each with ``margin_s`` of context on both
sides (samples before that are dropped), so a one-hour file never sits in memory and the
features of a frame do not depend on how the frames were chunked: with the weight-free
encoder (local windows, deltas over +-2 frames) one second of context reproduces the
whole-file features to float32 rounding; an encoder with a ``context_s`` (window
functionals) gets that much instead when it is more. Sequence encoders (WavLM, Whisper) see
``margin_s`` of context instead of the whole file: use a larger margin for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wildaffect.io.align import WAVLM_HOP, WAVLM_RECEPTIVE_FIELD, wavlm_num_frames
from wildaffect.io.media import AUDIO_SAMPLE_RATE, AudioTrack

#: Context encoded on each side of the requested feature frames.
DEFAULT_MARGIN_S = 1.0
#: Feature frames encoded at a time (10 s at the 20 ms hop).
BLOCK_FRAMES = 500


class AudioFeatureStream:
    """Feature frames (20 ms hop) of one file's audio, computed on demand."""

    def __init__(self, path: str | Path, encoder, options, margin_s: float = DEFAULT_MARGIN_S):
        from wildaffect.io.media import iter_audio_chunks

        self._chunks: Iterator[AudioTrack] = iter_audio_chunks(path)
        self.encoder, self.options = encoder, options
        # An encoder that reads further than the frames' own windows says how far.
        margin_s = max(margin_s, getattr(encoder.model, "context_s", 0.0))
        self.margin_frames = max(1, round(margin_s * AUDIO_SAMPLE_RATE / WAVLM_HOP))
        self._buffer = np.zeros(0, np.float32)  # samples [self._offset, self._offset + len)
        self._offset = 0
        self.ended = False
        self.missing = False
        self.start_s = 0.0
        self._block: tuple[int, np.ndarray] | None = None  # (first frame, its features)
        self._pull()  # the first chunk says where the audio starts and whether it exists

    def _pull(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            self.ended = True
            return False
        if self._offset == 0 and len(self._buffer) == 0:
            self.missing, self.start_s = chunk.missing, chunk.start_s
        self._buffer = np.concatenate([self._buffer, chunk.samples])
        return True

    @property
    def n_samples_seen(self) -> int:
        return self._offset + len(self._buffer)

    def total_frames(self) -> int | None:
        """Feature frames in the whole file, once the stream has ended (else None)."""
        return wavlm_num_frames(self.n_samples_seen) if self.ended else None

    def read_all(self) -> int:
        """Decode to the end (without keeping samples before the buffer) -> total frames."""
        while self._pull():
            pass
        return wavlm_num_frames(self.n_samples_seen)

    def on_frames(self, times: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """times, ends: (T,) s of consecutive video frames -> (T, D) features, each the mean
        over its frame's interval: :func:`~wildaffect.io.align.frame_audio_ranges` applied to
        a stream whose length is known only once it has ended (before that, no range reaches
        the end, so clipping to the length would change nothing)."""
        from wildaffect.io.align import AUDIO_HOP_S, frame_audio_ranges, pool_to_frames

        last_end = int(np.rint((ends[-1] - self.start_s) / AUDIO_HOP_S))
        self._read_until(frame=max(last_end, 1))
        total = self.total_frames()
        if total == 0:
            raise ValueError("the audio is shorter than one 20 ms feature frame")
        n_known = total if total is not None else max(last_end, 1)
        ranges = frame_audio_ranges(times, n_known, audio_start_s=self.start_s, ends_s=ends)
        lo, hi = int(ranges[:, 0].min()), int(ranges[:, 1].max())
        features = self.features(lo, hi)  # (hi - lo, D)
        return pool_to_frames(features, ranges - lo)

    def _read_until(self, frame: int) -> None:
        """Decode until feature frame ``frame`` and its right margin are in (or the end)."""
        needed = (frame + self.margin_frames) * WAVLM_HOP + (WAVLM_RECEPTIVE_FIELD - WAVLM_HOP)
        while self.n_samples_seen < needed and self._pull():
            pass

    def features(self, j0: int, j1: int) -> np.ndarray:
        """Feature frames ``[j0, j1)`` (clipped to the file's end) -> (n, D) float32.

        Served from blocks of :data:`BLOCK_FRAMES` encoded once each (with the margin on both
        sides), so small chunks do not pay the margins again and again.
        """
        if j0 < 0 or j1 < j0:
            raise ValueError(f"bad feature range [{j0}, {j1})")
        parts, j = [], j0
        while j < j1:
            start = j // BLOCK_FRAMES * BLOCK_FRAMES
            if self._block is None or self._block[0] != start:
                self._block = (start, self._encode(start, start + BLOCK_FRAMES))
            block = self._block[1]
            part = block[j - start : j1 - start]
            if len(part) == 0:  # past the end of the audio
                break
            parts.append(part)
            j += len(part)
        if not parts:
            return np.zeros((0, self._dim()), np.float32)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _dim(self) -> int:
        from wildaffect.extract import audio_feature_dim

        return audio_feature_dim(self.encoder)

    def _encode(self, j0: int, j1: int) -> np.ndarray:
        """Encode feature frames ``[j0, j1)`` with ``margin_frames`` of context each side."""
        from wildaffect.extract import encode_audio

        margin = self.margin_frames
        first = max(j0 - margin, 0)
        s0 = first * WAVLM_HOP
        s1 = (j1 + margin) * WAVLM_HOP + (WAVLM_RECEPTIVE_FIELD - WAVLM_HOP)
        self._read_until(j1)
        if s0 < self._offset:
            raise ValueError(
                f"audio frames from {j0} were already released (requests must move forward)"
            )
        window = self._buffer[s0 - self._offset : s1 - self._offset]  # (n,) float32
        encoded = encode_audio(window, self.encoder, self.options)  # (Na_window, D)
        # Keep only what a later block (starting at j1 or after) can still need.
        # (Never past the samples decoded: the offset is also the count of samples dropped.)
        keep_from = min(max(j1 - margin, 0) * WAVLM_HOP, self.n_samples_seen)
        if keep_from > self._offset:
            self._buffer = self._buffer[keep_from - self._offset :]
            self._offset = keep_from
        return encoded[j0 - first : j1 - first]
