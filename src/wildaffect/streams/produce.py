"""``extract``'s optional streams: VAD, imported behaviour features, transcript embeddings.

:class:`StreamJobs` is built once per ``extract`` run (loading silero-vad and the text encoder,
checking the folders) and then writes one record's stream arrays with :meth:`StreamJobs.run`.
Every array is ``(T, ...)`` on the record's frames like the encoders' features, with an
``encoder.json`` describing the set (``stream``, ``made_by``, ``dims``). A record with no
behaviour / transcript file in the folder is noted and skipped (the dataset names it if a model
needs it); a malformed file raises :class:`InputError` naming it, and ``extract`` goes on with
the next record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wildaffect import __version__
from wildaffect.data.cache import FEATURE_DTYPE, FEATURES, FeatureCache
from wildaffect.errors import InputError, WildaffectError
from wildaffect.io.atomic import atomic_write_text
from wildaffect.streams import BEHAVIOUR, TEXT, VAD, Stream
from wildaffect.streams.text import DEFAULT_TEXT_ENCODER

STREAM_JSON = "encoder.json"


@dataclass(frozen=True)
class StreamOptions:
    """Which optional streams ``extract`` makes (all off by default here; the CLI turns VAD on
    whenever an audio encoder runs)."""

    vad: bool = False
    behaviour_dir: Path | None = None
    transcripts_dir: Path | None = None
    text_encoder: str = DEFAULT_TEXT_ENCODER

    @property
    def any(self) -> bool:
        return self.vad or self.behaviour_dir is not None or self.transcripts_dir is not None


class StreamJobs:
    """The streams one run makes, with their models loaded once."""

    def __init__(self, cache: FeatureCache, options: StreamOptions, force: bool = False) -> None:
        self.cache, self.options, self.force = cache, options, force
        self.vad_model: Any = None
        self.text_encoder: Any = None
        self._described: set[str] = set()
        for folder, option in ((options.behaviour_dir, "--behaviour"),
                               (options.transcripts_dir, "--transcripts")):  # fmt: skip
            if folder is not None and not Path(folder).is_dir():
                raise WildaffectError(f"{option} {folder}: not a folder")
        if options.vad:
            from wildaffect.streams.vad import load_vad

            self.vad_model = load_vad()
        if options.transcripts_dir is not None:
            from wildaffect.streams.text import TextEncoder

            self.text_encoder = TextEncoder(options.text_encoder)
            self._check_same_source(TEXT, str(self.text_encoder.folder))
        self.behaviour_width = self._stored_width(BEHAVIOUR)

    @property
    def feature_sets(self) -> list[str]:
        """The cache folders this run may write."""
        on = (self.options.vad, self.options.behaviour_dir is not None,
              self.options.transcripts_dir is not None)  # fmt: skip
        return [s.feature_set for s, o in zip((VAD, BEHAVIOUR, TEXT), on, strict=True) if o]

    # -- encoder.json ---------------------------------------------------------------------

    def _json_path(self, stream: Stream) -> Path:
        return self.cache.root / FEATURES / stream.feature_set / STREAM_JSON

    def _stored(self, stream: Stream) -> dict[str, Any] | None:
        path = self._json_path(stream)
        if self.force or not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(path, f"corrupt description ({err}); use --force") from None

    def _stored_width(self, stream: Stream) -> int | None:
        stored = self._stored(stream)
        return int(stored["dims"][-1]) if stored and stored.get("dims") else None

    def _check_same_source(self, stream: Stream, made_by: str) -> None:
        stored = self._stored(stream)
        if stored is not None and stored.get("made_by") != made_by:
            raise InputError(self._json_path(stream),
                             f"these {stream.feature_set} features were made by "
                             f"{stored.get('made_by')!r}, this run uses {made_by!r}; pass "
                             "--force to redo them all, or use another cache")  # fmt: skip

    def _describe(self, stream: Stream, made_by: str, dims: tuple[int, ...]) -> None:
        if stream.feature_set in self._described:
            return
        path = self._json_path(stream)
        if self.force or not path.is_file():
            info = {
                "feature_set": stream.feature_set, "stream": stream.key, "made_by": made_by,
                "rate": "video frames", "dims": [int(d) for d in dims],
                "storage_dtype": np.dtype(FEATURE_DTYPE).name,
                "missing_frames": "NaN rows" if stream.masked else "none",
                "wildaffect_version": __version__,
            }  # fmt: skip
            atomic_write_text(path, json.dumps(info, indent=2) + "\n")
        self._described.add(stream.feature_set)

    # -- one record -----------------------------------------------------------------------

    def run(
        self, video: str, meta: dict[str, Any], wanted: Callable[[str], bool],
        written: list[str], notes: list[str],
    ) -> None:  # fmt: skip
        """Write the wanted stream arrays of one record; append to ``written`` / ``notes``."""
        n_frames = int(meta["n_frames"])
        if n_frames == 0:
            if self.options.any:
                notes.append("record without frames: no VAD, behaviour or text")
            return
        frame_times = np.asarray(self.cache.read_array(video, "frame_times"), np.float64)
        names = [video, Path(str(meta.get("source", video))).stem]
        if self.options.vad and wanted(VAD.feature_set):
            self._write(VAD, video, self._vad(video, meta, frame_times, notes), "silero-vad")
            written.append(VAD.feature_set)
        if self.options.behaviour_dir is not None and wanted(BEHAVIOUR.feature_set):
            from wildaffect.streams.behaviour import (
                BEHAVIOUR_SUFFIXES,
                find_stream_file,
                read_behaviour,
            )

            path = find_stream_file(Path(self.options.behaviour_dir), names, BEHAVIOUR_SUFFIXES)
            if path is None:
                notes.append(f"no behaviour file for {video} in {self.options.behaviour_dir}")
            else:
                features = read_behaviour(path, frame_times, self.behaviour_width)
                self.behaviour_width = features.shape[1]
                self._write(BEHAVIOUR, video, features, str(Path(self.options.behaviour_dir)))
                written.append(BEHAVIOUR.feature_set)
        if self.options.transcripts_dir is not None and wanted(TEXT.feature_set):
            from wildaffect.streams.behaviour import find_stream_file
            from wildaffect.streams.transcripts import (
                TRANSCRIPT_SUFFIXES,
                read_transcript,
                segments_on_frames,
            )

            folder = Path(self.options.transcripts_dir)
            path = find_stream_file(folder, names, TRANSCRIPT_SUFFIXES)
            if path is None:
                notes.append(f"no transcript for {video} in {folder}")
            else:
                segments = read_transcript(path)
                embeddings = self.text_encoder.embed([s.text for s in segments])  # (S, D)
                features = segments_on_frames(segments, embeddings, frame_times)  # (T, D)
                self._write(TEXT, video, features, str(self.text_encoder.folder))
                written.append(TEXT.feature_set)

    def _vad(self, video: str, meta: dict[str, Any], frame_times: np.ndarray,
             notes: list[str]) -> np.ndarray:  # fmt: skip
        from wildaffect.streams.vad import speech_probability, vad_on_frames

        if meta.get("audio_missing"):
            notes.append("no audio track: VAD is 0")
            return np.zeros(len(frame_times), np.float32)
        samples = np.asarray(self.cache.read_array(video, "audio", mmap=True))  # (N,) 16 kHz
        probs = speech_probability(self.vad_model, samples)  # (Nc,) per 32 ms
        return vad_on_frames(probs, frame_times, float(meta.get("audio_start_s", 0.0)))

    def _write(self, stream: Stream, video: str, features: np.ndarray, made_by: str) -> None:
        self.cache.write_features(stream.feature_set, video, features)
        self._describe(stream, made_by, features.shape[1:])


__all__ = ["StreamJobs", "StreamOptions"]
