"""silero-vad speech probability of a stream of frames, in bounded memory.

The audio is decoded chunk by chunk as the frames ask for it and scored 512 samples (32 ms) at
a time with the model's state carried (:func:`wildaffect.streams.vad.speech_probability_step`),
which gives the probabilities of the whole file at once. Each frame then gets the mean over its
interval exactly as ``extract`` does (:func:`wildaffect.streams.vad.vad_on_frames`), with a
chunk's frames knowing their ends (:meth:`VadStream.on_frames`), so the values do not depend on
how the frames were chunked. Only the probabilities a later frame can still need are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wildaffect.io.media import AudioTrack
from wildaffect.streams.vad import VAD_CHUNK, VAD_HOP_S, speech_probability_step


class VadStream:
    """Per-frame speech probability of one file's audio, computed on demand.

    ``audio_only``: the frames are on the 20 ms timeline of the audio itself (frame ``k`` at
    ``k * 0.02`` s from the first sample), rather than on the video's frame timeline.
    A file without an audio track gives zeros (as ``extract`` stores for it).
    """

    def __init__(self, path: str | Path, model: Any, *, audio_only: bool = False) -> None:
        from wildaffect.io.media import iter_audio_chunks

        self._chunks: Iterator[AudioTrack] = iter_audio_chunks(path)
        self.model = model
        self.model.reset_states()
        self._pending = np.zeros(0, np.float32)  # samples not yet scored (< one VAD chunk)
        self._probs = np.zeros(0, np.float32)  # probabilities [self._offset, self._offset + len)
        self._offset = 0
        self.ended = False
        first = next(self._chunks, None)
        self.missing = first is not None and first.missing
        self.start_s = 0.0 if first is None or audio_only else first.start_s
        if first is None:
            self.ended = True
        elif not self.missing:
            self._score(first.samples)

    @property
    def n_scored(self) -> int:
        return self._offset + len(self._probs)

    def _score(self, samples: np.ndarray) -> None:
        samples = np.concatenate([self._pending, samples])
        whole = len(samples) // VAD_CHUNK * VAD_CHUNK
        self._pending = samples[whole:]
        if whole:
            self._probs = np.concatenate(
                [self._probs, speech_probability_step(self.model, samples[:whole])]
            )

    def _pull(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            if len(self._pending):  # the last chunk, zero-padded as silero-vad pads it
                self._score(np.zeros(VAD_CHUNK - len(self._pending), np.float32))
            self.ended = True
            return False
        self._score(chunk.samples)
        return True

    def on_frames(self, times: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """times, ends: (T,) s of consecutive frames (moving forward from call to call) ->
        (T,) float32 mean speech probability over each frame's interval."""
        from wildaffect.io.align import frame_audio_ranges, pool_to_frames

        if self.missing:
            return np.zeros(len(times), np.float32)
        last_end = int(np.rint((ends[-1] - self.start_s) / VAD_HOP_S))
        # one past the last range's end: clipping to a length not yet known then changes nothing
        while not self.ended and self.n_scored <= last_end + 1:
            self._pull()
        if self.n_scored == 0:  # no audio at all
            return np.zeros(len(times), np.float32)
        ranges = frame_audio_ranges(times, self.n_scored, VAD_HOP_S, audio_start_s=self.start_s,
                                    ends_s=ends)  # (T, 2)  # fmt: skip
        if ranges[:, 0].min() < self._offset:
            raise ValueError(f"VAD chunks from {ranges[:, 0].min()} were already released "
                             "(frames must move forward)")  # fmt: skip
        pooled = pool_to_frames(self._probs[:, None], ranges - self._offset)  # (T, 1)
        # The next frame starts at or after this chunk's last frame: drop what comes before.
        keep_from = int(ranges[-1, 0])
        self._probs = self._probs[keep_from - self._offset :]
        self._offset = keep_from
        return pooled[:, 0].astype(np.float32)


__all__ = ["VadStream"]
