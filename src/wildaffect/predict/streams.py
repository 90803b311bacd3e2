"""The optional seed-003 streams at prediction time: VAD, behaviour features, transcripts.

A model that was trained with them (:func:`wildaffect.streams.model_streams`) gets them here as
``extract`` made them for training, on the frames of each chunk:

- ``vad``: silero-vad on the input's own audio (:class:`~wildaffect.predict.vad.VadStream`);
- ``behaviour``: the input's file in ``--behaviour DIR`` (a ``.csv`` interpolated in time, or
  a ``.npy`` with one row per frame, checked against the frames decoded);
- ``text``: the input's transcript in ``--transcripts DIR``, each segment embedded once with
  the text encoder and spread over the frames it overlaps.

Files are matched as ``extract`` matches them: ``<record name>.<ext>``, then
``<file stem>.<ext>``. A stream the model reads but the user did not give (or with no file for
an input) is absent: masked, as in training, and said in the input's notes. A malformed file
is an :class:`~wildaffect.errors.InputError` naming it: that input fails, the batch goes on.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wildaffect.errors import InputError, WildaffectError
from wildaffect.streams import BEHAVIOUR, TEXT, VAD, model_streams
from wildaffect.streams.behaviour import BEHAVIOUR_SUFFIXES, find_stream_file
from wildaffect.streams.transcripts import TRANSCRIPT_SUFFIXES

if TYPE_CHECKING:
    from wildaffect.predict.vad import VadStream

#: The meta's word for a stream the model reads that this input does not have.
ABSENT = "absent"
VAD_SOURCE = "silero-vad on the input's audio"
#: The folder option of each user-given stream, and the file suffixes it holds.
OPTIONS = {BEHAVIOUR.key: ("--behaviour", BEHAVIOUR_SUFFIXES),
           TEXT.key: ("--transcripts", TRANSCRIPT_SUFFIXES)}  # fmt: skip


class PredictStreams:
    """The streams one model reads, with silero-vad and the text encoder loaded once.

    ``hears_audio``: the model gets the sound track (VAD follows the audio). ``warnings``
    (a stream the model reads was not given) and ``notices`` (one given that it does not
    read: ignored) are one line each, for the caller to show once.
    """

    def __init__(
        self,
        config: Any,
        *,
        hears_audio: bool,
        behaviour_dir: str | Path | None = None,
        transcripts_dir: str | Path | None = None,
        text_encoder: str | None = None,
    ) -> None:
        self.config = config
        self.reads = model_streams(config, has_audio=hears_audio)
        self.folders: dict[str, Path | None] = {}
        self.warnings: list[str] = []
        self.notices: list[str] = []
        for key, folder in ((BEHAVIOUR.key, behaviour_dir), (TEXT.key, transcripts_dir)):
            option = OPTIONS[key][0]
            if folder is not None and not Path(folder).is_dir():
                raise WildaffectError(f"{option} {folder}: not a folder")
            read = key in self.reads
            if read and folder is None:
                self.warnings.append(
                    f"model {config.name!r} reads the {key} stream, but {option} DIR was not "
                    "given: it is absent (masked) for every input"
                )
            if folder is not None and not read:
                self.notices.append(f"{option} {folder}: model {config.name!r} does not read "
                                    f"the {key} stream: ignored")  # fmt: skip
            self.folders[key] = Path(folder) if folder is not None and read else None
        self.vad_model: Any = None
        if VAD.key in self.reads:
            from wildaffect.streams.vad import load_vad

            self.vad_model = load_vad()
        self.text_encoder: Any = None
        if self.folders[TEXT.key] is not None:
            self.text_encoder = _load_text_encoder(text_encoder, config)

    def warn(self) -> None:
        """Python warnings for API users: what the model will not get."""
        for message in self.warnings:
            warnings.warn(message, UserWarning, stacklevel=3)

    def file(self, key: str, path: Path, name: str) -> Path | None:
        """The input's file of a user-given stream (None: folder not given, or no such file)."""
        folder = self.folders.get(key)
        if folder is None:
            return None
        return find_stream_file(folder, list(dict.fromkeys([name, path.stem])), OPTIONS[key][1])

    def plan(self, path: Path, name: str) -> dict[str, Any]:
        """Where each stream the model reads comes from for this input: the meta's
        ``streams`` and part of the resume key (another file or folder -> not cached)."""
        plan: dict[str, Any] = {}
        for key in self.reads:
            if key == VAD.key:
                plan[key] = VAD_SOURCE
                continue
            folder, found = self.folders[key], self.file(key, path, name)
            if found is None:
                why = "not given" if folder is None else f"no file for {name} in {folder}"
                plan[key] = f"{why} -> {ABSENT}"
                continue
            stat = found.stat()
            plan[key] = {"file": str(found.resolve()), "size": stat.st_size,
                         "mtime_ns": stat.st_mtime_ns}  # fmt: skip
            if key == TEXT.key:
                plan[key]["text_encoder"] = str(self.text_encoder.folder)
        return plan

    def open(
        self, path: Path, name: str, *, audio_only: bool, has_audio: bool, notes: list[str]
    ) -> InputStreams:
        """One pass over one input (files read and checked now); notes what is absent.

        ``has_audio``: the pass gives the model audio (VAD is zeros without, as ``extract``
        stores for a record without sound).
        """
        return InputStreams(self, path, name, audio_only=audio_only, has_audio=has_audio,
                            notes=notes)  # fmt: skip


class InputStreams:
    """The stream arrays of one input's frames, chunk by chunk (see :meth:`arrays`)."""

    def __init__(self, owner: PredictStreams, path: Path, name: str, *, audio_only: bool,
                 has_audio: bool, notes: list[str]) -> None:  # fmt: skip
        self.reads = owner.reads
        self.vad: VadStream | None = None
        self.origin: float | None = None  # time of the input's first frame
        self.n_frames = 0
        self.behaviour: tuple[Path, np.ndarray | None, np.ndarray] | None = None
        self.text: tuple[list, np.ndarray] | None = None
        plan = owner.plan(path, name)
        for key in self.reads:
            if isinstance(plan[key], str) and plan[key].endswith(ABSENT):
                notes.append(f"{key}: {plan[key]}")
        if VAD.key in self.reads and has_audio:
            from wildaffect.predict.vad import VadStream

            self.vad = VadStream(path, owner.vad_model, audio_only=audio_only)
        if (found := owner.file(BEHAVIOUR.key, path, name)) is not None:
            from wildaffect.streams.behaviour import load_behaviour

            width = int(owner.config.d_behaviour)
            times, values = load_behaviour(found, width, f"model {owner.config.name!r} reads")
            if times is None and audio_only and _has_pictures(path):
                notes.append(f"{BEHAVIOUR.key}: {found.name} has a row per video frame, this pass "
                             f"has one per 20 ms of voice -> {ABSENT}")  # fmt: skip
            else:
                self.behaviour = (found, times, values)
        if (found := owner.file(TEXT.key, path, name)) is not None:
            from wildaffect.streams.transcripts import read_transcript

            segments = read_transcript(found)
            self.text = (segments, owner.text_encoder.embed([s.text for s in segments]))

    def arrays(self, times: np.ndarray, ends: np.ndarray) -> dict[str, np.ndarray]:
        """times, ends: (T,) s of the next consecutive frames -> the model inputs of the
        streams it reads: ``vad`` (T,), ``behaviour`` (T, Db) / ``text`` (T, Dt) with their
        ``*_mask`` (T,) bool (all False when absent). NaN-free."""
        n = len(times)
        if self.origin is None:
            self.origin = float(times[0]) if n else 0.0
        first, self.n_frames = self.n_frames, self.n_frames + n
        out: dict[str, np.ndarray] = {}
        if VAD.key in self.reads:
            out[VAD.key] = (self.vad.on_frames(times, ends) if self.vad is not None
                            else np.zeros(n, np.float32))  # fmt: skip
        if BEHAVIOUR.key in self.reads and self.behaviour is not None:
            out[BEHAVIOUR.key] = self._behaviour_rows(first, times - self.origin)
        if TEXT.key in self.reads and self.text is not None:
            from wildaffect.streams.transcripts import segments_on_intervals

            segments, embeddings = self.text
            out[TEXT.key] = segments_on_intervals(segments, embeddings, times - self.origin,
                                                  ends - self.origin, opens=first == 0)
        for stream in (BEHAVIOUR, TEXT):
            if stream.key in out:
                out[stream.key], out[f"{stream.key}_mask"] = _masked(out[stream.key])
        return out

    def _behaviour_rows(self, first: int, at: np.ndarray) -> np.ndarray:
        """(T, Db) float32 of frames ``first ...`` at ``at`` s from the first frame."""
        from wildaffect.streams.behaviour import resample

        path, times, values = self.behaviour
        if times is not None:
            return resample(times, values, at)
        rows = np.asarray(values[first : first + len(at)], np.float32)  # (<= T, Db)
        if len(rows) < len(at):
            raise InputError(path, f"{len(values)} rows, but the input has more frames (at least "
                                   f"{first + len(at)}): one row per frame")  # fmt: skip
        return rows

    def finish(self) -> None:
        """After the last frame: a .npy must have had exactly one row per frame."""
        if self.behaviour is None or self.behaviour[1] is not None:
            return
        path, _, values = self.behaviour
        if len(values) != self.n_frames:
            raise InputError(path, f"{len(values)} rows, but the input has {self.n_frames} "
                                   "frames: one row per frame")  # fmt: skip


def _masked(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, D) with NaN rows -> (T, D) zeros there, and (T,) bool: the row has values."""
    mask = np.isfinite(values).all(axis=1)
    return np.where(mask[:, None], values, 0).astype(np.float32), mask


def _has_pictures(path: Path) -> bool:
    from wildaffect.io.media import probe

    return probe(path).kind != "audio"


def _load_text_encoder(name: str | None, config: Any) -> Any:
    """The transcripts' text encoder: ``name``, else the one the model names, else extract's
    default; its width must be the model's ``d_text``."""
    from wildaffect.streams.text import DEFAULT_TEXT_ENCODER, TextEncoder

    name = name or getattr(config, "text_encoder", None) or DEFAULT_TEXT_ENCODER
    encoder = TextEncoder(name)
    if encoder.dim != config.d_text:
        raise WildaffectError(
            f"--text-encoder {name}: {encoder.dim}-wide embeddings, model {config.name!r} "
            f"reads d_text={config.d_text} (use the encoder its training cache was made with)"
        )
    return encoder


__all__ = ["ABSENT", "InputStreams", "PredictStreams"]
