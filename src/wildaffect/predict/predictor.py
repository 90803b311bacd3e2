"""``Predictor``: a model package run on any video, image or audio file, chunk by chunk.

decode -> face front-end (:mod:`wildaffect.face.pipeline`) -> visual encoder -> audio
features of each frame's interval -> model with its temporal state carried from chunk to
chunk -> rows (:mod:`wildaffect.predict.table`). The optional streams a seed-003 model reads
(VAD, behaviour features, transcripts) join each chunk's inputs
(:mod:`wildaffect.predict.streams`). Memory is bounded by the chunk size for
streamable models (a causal SSM); a bidirectional or windowed temporal model needs the whole
sequence and is run once at the end (memory then grows with the input's length).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wildaffect.derived import (
    AU_FROM_BLENDSHAPES,
    FROM_MODEL,
    VA_FROM_EXPRESSION,
    au_from_blendshapes,
    va_from_expression,
)
from wildaffect.errors import WildaffectError
from wildaffect.labels import AU_NAMES, EXPR_NAMES, VA_NAMES, Task
from wildaffect.predict import DEFAULT_CHUNK_FRAMES
from wildaffect.predict.frames import FrameChunk, audio_only_chunk, iter_frame_chunks
from wildaffect.predict.streams import InputStreams, PredictStreams
from wildaffect.predict.table import COLUMNS, GapFiller, build_rows

#: What each task's columns may come from.
KNOWN_SOURCES = {
    Task.AU: (FROM_MODEL, AU_FROM_BLENDSHAPES),
    Task.EXPR: (FROM_MODEL,),
    Task.VA: (FROM_MODEL, VA_FROM_EXPRESSION),
}


@dataclass
class PredictionChunk:
    """Rows of consecutive frames with the face geometry the overlay draws."""

    rows: pd.DataFrame
    boxes: np.ndarray  # (T, 4) frame pixels, NaN without a face
    landmarks: np.ndarray  # (T, 68, 2) frame pixels, NaN without a face


@dataclass
class InputSummary:
    """What :meth:`Predictor.iter_chunks` learnt about one input, filled as it runs."""

    kind: str = ""
    n_frames: int = 0
    n_face_frames: int = 0
    audio: bool = False
    audio_only: bool = False
    notes: list[str] = field(default_factory=list)

    def add(self, rows: pd.DataFrame) -> None:
        self.n_frames += len(rows)
        self.n_face_frames += int(rows["face"].sum())


class Predictor:
    """Per-frame AU, expression and valence/arousal for media files.

    ``model``: None (the bundled default), a bundled name, a package folder or a training
    checkpoint. ``device``: cpu, cuda or auto; ``dtype``: fp32 or bf16 (autocast).
    ``chunk_frames`` bounds memory; the rows do not depend on it (tested). ``use_audio=False``
    predicts from the face alone (e.g. when the sound track is not the person's voice).
    ``behaviour_dir`` / ``transcripts_dir``: folders with each input's behaviour features /
    transcript, for a model that reads them (``text_encoder`` embeds the transcripts; default:
    the one the model names, else ``extract``'s); a model with ``vad_gate`` gets silero-vad's
    speech probability of the input's audio.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        dtype: str = "fp32",
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        interpolate: bool = False,
        face_model: str | os.PathLike[str] | None = None,
        use_audio: bool = True,
        behaviour_dir: str | os.PathLike[str] | None = None,
        transcripts_dir: str | os.PathLike[str] | None = None,
        text_encoder: str | None = None,
    ) -> None:
        import torch

        from wildaffect.extract import RunOptions, load_encoder, torch_device
        from wildaffect.models.package import load_any

        if dtype not in ("fp32", "bf16"):
            raise WildaffectError(f"--dtype must be fp32 or bf16, got {dtype!r}")
        if chunk_frames < 1:
            raise WildaffectError(f"--chunk-frames must be >= 1, got {chunk_frames}")
        self.options = RunOptions(device=torch_device(device), dtype=dtype)
        self.model, self.meta = load_any(model)
        self.model.to(self.options.device)
        self.config = self.model.config
        self.model_name = str(model) if model is not None else "default"
        self.sources = self._sources(self.meta.get("outputs", {}))
        self.chunk_frames = chunk_frames
        self.interpolate = interpolate
        self.face_model = face_model
        self.visual_encoder = load_encoder(self.config.visual_encoder, "visual")
        self.use_audio = use_audio
        self.audio_encoder = (
            load_encoder(self.config.audio_encoder, "audio")
            if self.config.has_audio and use_audio else None
        )
        # A package may name a companion for audio-only input: needed by a model without
        # audio, and used by one with audio when a voice-only model does better there.
        self.voice_model: str | None = (self.meta.get("voice_model") or None) if use_audio else None
        self._voice: Predictor | None = None
        self._stream_folders = {"behaviour_dir": behaviour_dir, "transcripts_dir": transcripts_dir,
                                "text_encoder": text_encoder}  # fmt: skip
        self.streams = PredictStreams(self.config, hears_audio=self.audio_encoder is not None,
                                      **self._stream_folders)  # fmt: skip
        self.streams.warn()
        self._torch = torch

    def _sources(self, outputs: dict[str, str]) -> dict[Task, str | None]:
        trained = set(self.config.tasks)
        sources: dict[Task, str | None] = {}
        for task in Task:
            source = outputs.get(task.value, FROM_MODEL if task in trained else None)
            if source is not None and source not in KNOWN_SOURCES[task]:
                raise WildaffectError(
                    f"model {self.config.name!r}: unknown source {source!r} for {task.value} "
                    f"(known: {', '.join(KNOWN_SOURCES[task])})"
                )
            if source == FROM_MODEL and task not in trained:
                raise WildaffectError(
                    f"model {self.config.name!r} says {task.value} comes from the model, "
                    f"but it has no {task.value} head"
                )
            sources[task] = source
        return sources

    # -- public API ---------------------------------------------------------------------------

    def predict(self, path: str | Path) -> pd.DataFrame:
        """All rows of one input (see :data:`wildaffect.predict.table.COLUMNS`).

        A video in which no face is found at all is predicted from its voice instead, on the
        20 ms timeline of audio-only input (when the model hears audio).
        """
        summary = InputSummary()
        parts = [chunk.rows for chunk in self.iter_chunks(path, summary)]
        if self.voice_instead(summary):
            parts = [chunk.rows for chunk in self.iter_chunks(path, audio_only=True)]
        if not parts:
            return pd.DataFrame(columns=list(COLUMNS))
        return pd.concat(parts, ignore_index=True)

    @property
    def hears_voice(self) -> bool:
        """The model takes audio, or names a voice companion for audio-only input."""
        return self.audio_encoder is not None or self.voice_model is not None

    def voice_instead(self, summary: InputSummary) -> bool:
        """After a pass over a video: no face anywhere, but a voice that can be heard."""
        return (summary.kind == "video" and summary.n_frames > 0 and summary.n_face_frames == 0
                and summary.audio and self.hears_voice)

    def _voice_predictor(self) -> Predictor:
        if self._voice is None:
            import warnings

            with warnings.catch_warnings():  # its absent streams are noted per input instead
                warnings.simplefilter("ignore", UserWarning)
                self._voice = Predictor(
                    self.voice_model, device=self.options.device, dtype=self.options.dtype,
                    chunk_frames=self.chunk_frames, face_model=self.face_model,
                    **self._stream_folders,
                )  # fmt: skip
        return self._voice

    def iter_chunks(
        self, path: str | Path, summary: InputSummary | None = None, *, audio_only: bool = False,
        name: str | None = None,
    ) -> Iterator[PredictionChunk]:
        """Stream the input's rows chunk by chunk (with ``interpolate``, rows of an open
        face gap are held back until it closes). ``audio_only``: use only the sound track
        (automatic for audio files). ``name``: the input's record name, which its behaviour /
        transcript files may carry (default: the file's stem, which they may carry too)."""
        from wildaffect.io.media import probe

        path = Path(path)
        name = name or path.stem
        summary = summary if summary is not None else InputSummary()
        info = probe(path)
        summary.kind, summary.audio = info.kind, info.has_audio  # refined by the audio stream
        audio_only = audio_only or info.kind == "audio"
        if audio_only and self.voice_model is not None:
            summary.notes.append(f"predicted from the voice by the companion model "
                                 f"{self.voice_model!r} (named by this model's package)")
            yield from self._voice_predictor().iter_chunks(path, summary, audio_only=True,
                                                           name=name)  # fmt: skip
            return
        chunks = (self._audio_only(path, name, summary) if audio_only
                  else self._with_frames(path, name, info.kind, summary))
        if not self.interpolate or audio_only:  # no face rows to interpolate from
            for chunk in chunks:
                summary.add(chunk.rows)
                yield chunk
            return
        # The filler releases rows in order, maybe later than they came: geometry waits
        # in a queue beside them.
        filler, boxes, landmarks = GapFiller(), [], []
        for chunk in chunks:
            summary.add(chunk.rows)
            boxes.append(chunk.boxes)
            landmarks.append(chunk.landmarks)
            ready = filler.push(chunk.rows)
            if len(ready):
                yield _with_geometry(ready, boxes, landmarks)
        rest = filler.flush()
        if len(rest):
            yield _with_geometry(rest, boxes, landmarks)

    # -- the two kinds of input ---------------------------------------------------------------

    def _with_frames(
        self, path: Path, name: str, kind: str, summary: InputSummary
    ) -> Iterator[PredictionChunk]:
        from wildaffect.predict.audio import AudioFeatureStream

        audio = None
        if not self.use_audio and self.config.has_audio and kind != "image":
            summary.notes.append("audio not used (--no-audio): predicted from the face alone")
        if self.audio_encoder is not None and kind != "image":
            audio = AudioFeatureStream(path, self.audio_encoder, self.options)
            summary.audio = not audio.missing
            if audio.missing:
                summary.notes.append("no audio track: predicted from the face alone")
        extras = self.streams.open(path, name, audio_only=False, notes=summary.notes,
                                   has_audio=audio is not None and not audio.missing)
        chunks = iter_frame_chunks(path, self.chunk_frames, self.face_model)
        pairs = ((frames, self._inputs(frames, audio)) for frames in chunks)
        yield from self._run_model(_with_streams(pairs, extras))

    def _audio_only(
        self, path: Path, name: str, summary: InputSummary
    ) -> Iterator[PredictionChunk]:
        from wildaffect.predict.audio import AudioFeatureStream

        summary.audio_only = True
        if self.audio_encoder is None:
            why = ("audio is off (--no-audio)" if not self.use_audio
                   else f"model {self.config.name!r} takes no audio")
            raise WildaffectError(f"{path}: audio-only input, but {why}")
        audio = AudioFeatureStream(path, self.audio_encoder, self.options)
        summary.audio = not audio.missing
        extras = self.streams.open(path, name, audio_only=True, has_audio=not audio.missing,
                                   notes=summary.notes)  # fmt: skip

        def chunks() -> Iterator[tuple[FrameChunk, dict[str, Any]]]:
            start = 0
            while len(features := audio.features(start, start + self.chunk_frames)):  # (n, Da)
                frames = audio_only_chunk(start, len(features))
                yield frames, self._inputs(frames, None, audio_features=features)
                start += len(features)

        yield from self._run_model(_with_streams(chunks(), extras))

    def _run_model(
        self, chunks: Iterator[tuple[FrameChunk, dict[str, Any]]]
    ) -> Iterator[PredictionChunk]:
        """Streamable models step chunk by chunk with the temporal state carried; the others
        (bidirectional, windowed) need every chunk's inputs first and run once."""
        if not self.config.streamable:
            yield from self._whole_sequence(list(chunks))
            return
        state: list | None = None
        for frames, inputs in chunks:
            outputs, state = self._forward(inputs, state)
            yield self._chunk(frames, outputs)

    # -- pieces -------------------------------------------------------------------------------

    def _visual_features(self, frames: FrameChunk) -> np.ndarray:
        """(T, ...) visual features; zeros for frames without a face."""
        from wildaffect.extract import run_visual_encoder, visual_frame_shape

        encoder, n = self.visual_encoder, len(frames)
        if encoder.offline:
            model = encoder.model
            if frames.audio_only:
                return np.zeros((n, model.num_tokens, model.token_dim), np.float32)
            return model.encode(frames.landmarks68, frames.blendshapes, frames.pose,
                                frames.crops, frames.has_face)  # (T, R, D)
        out = np.zeros((n, *visual_frame_shape(encoder, self.options)), np.float32)
        faces = np.flatnonzero(frames.has_face)
        for start in range(0, len(faces), self.options.batch_size):
            batch = faces[start : start + self.options.batch_size]
            out[batch] = run_visual_encoder(encoder, frames.crops[batch], self.options)
        return out

    def _inputs(
        self, frames: FrameChunk, audio, audio_features: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The model's batch for one chunk (B = 1), as numpy arrays."""
        n = len(frames)
        inputs: dict[str, Any] = {
            "visual": self._visual_features(frames),
            "face_mask": frames.has_face.copy(),
            "landmarks": np.nan_to_num(frames.landmarks68),
        }
        if audio_features is not None:  # audio-only: frame k is feature k
            inputs["audio"], inputs["audio_mask"] = audio_features, np.ones(n, bool)
        elif audio is not None and not audio.missing:
            inputs["audio"] = audio.on_frames(frames.times, frames.ends)  # (T, Da)
            inputs["audio_mask"] = np.ones(n, bool)
        return inputs

    def _forward(self, inputs: dict[str, Any], state: list | None):
        torch = self._torch
        device = self.options.device
        batch = {}
        for key, value in inputs.items():
            tensor = torch.from_numpy(np.ascontiguousarray(value))[None].to(device)
            batch[key] = tensor.float() if tensor.is_floating_point() else tensor
        with torch.inference_mode(), self.options.autocast():
            out = self.model(batch, state)
        from wildaffect.models.heads import to_probabilities

        probs = {t: v[0].float().cpu().numpy() for t, v in to_probabilities(out.outputs).items()}
        return probs, out.state

    def _whole_sequence(self, held: list[tuple[FrameChunk, dict[str, Any]]]):
        """Non-streamable models: one forward over every chunk's inputs, then split."""
        if not held:
            return
        inputs = {k: np.concatenate([h[1][k] for h in held]) for k in held[0][1]}
        outputs, _ = self._forward(inputs, None)
        start = 0
        for frames, _ in held:
            stop = start + len(frames)
            yield self._chunk(frames, {t: v[start:stop] for t, v in outputs.items()})
            start = stop

    def _chunk(self, frames: FrameChunk, outputs: dict[Task, np.ndarray]) -> PredictionChunk:
        n = len(frames)
        nan = np.full((n, 1), np.nan)
        values = {
            Task.AU: nan * np.ones(len(AU_NAMES)),
            Task.EXPR: nan * np.ones(len(EXPR_NAMES)),
            Task.VA: nan * np.ones(len(VA_NAMES)),
        }
        for task in (Task.AU, Task.EXPR, Task.VA):
            source = self.sources[task]
            if source == FROM_MODEL:
                values[task] = outputs[task].astype(np.float64)
            elif source == AU_FROM_BLENDSHAPES:
                values[task] = au_from_blendshapes(frames.blendshapes)
            elif source == VA_FROM_EXPRESSION:
                values[task] = va_from_expression(values[Task.EXPR])
        # Rows without a face have no prediction, except the voice's on audio-only input.
        keep = frames.has_face.copy()
        for task in Task:
            task_keep = keep | (frames.audio_only and task is not Task.AU)
            values[task] = np.where(task_keep[:, None], values[task], np.nan)
        rows = build_rows(frames.first_index, frames.times, frames.has_face,
                          values[Task.AU], values[Task.EXPR], values[Task.VA])
        return PredictionChunk(rows, frames.bbox.copy(), frames.landmarks68_px.copy())



def _with_streams(
    pairs: Iterator[tuple[FrameChunk, dict[str, Any]]], extras: InputStreams
) -> Iterator[tuple[FrameChunk, dict[str, Any]]]:
    """Each chunk's inputs with the optional streams of its frames; checks their ends last."""
    for frames, inputs in pairs:
        inputs.update(extras.arrays(frames.times, frames.ends))
        yield frames, inputs
    extras.finish()


def _with_geometry(rows: pd.DataFrame, boxes: list, landmarks: list) -> PredictionChunk:
    """Take the first len(rows) rows of the queued geometry (the queues shrink in place)."""
    n = len(rows)
    all_boxes, all_landmarks = np.concatenate(boxes), np.concatenate(landmarks)
    boxes[:] = [all_boxes[n:]]
    landmarks[:] = [all_landmarks[n:]]
    return PredictionChunk(rows.reset_index(drop=True), all_boxes[:n], all_landmarks[:n])
