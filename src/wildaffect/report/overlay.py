"""Overlay video: the source frames with the face box, 68 landmarks, expression and top AUs.

The video is decoded again (:func:`wildaffect.io.media.iter_frames`), one frame is drawn
(OpenCV) and encoded (PyAV) at a time, so memory stays flat whatever the length. Row ``i`` of
the prediction table belongs to decoded frame ``i``; a table with another number of rows is an
:class:`~wildaffect.errors.InputError` naming the video, and nothing is written.

Choices:

- Encoder: the first of ``VIDEO_ENCODERS`` this FFmpeg build can open (H.264 through libx264
  or libopenh264, else MPEG-4 part 2, which every build has), in an MP4 container.
- Timing: by default each frame keeps its presentation time, so variable-frame-rate input stays
  in step with its audio, which is re-encoded to AAC beside it (mono, ``AUDIO_RATE``). ``fps``
  re-times the frames at a constant rate instead; the audio would then drift, so it is left out.
- H.264 in yuv420p needs an even width and height: an odd-sized frame gets one edge-replicated
  pixel column/row, so such an overlay is one pixel wider/taller than its source.
- Image input: one frame, so the overlay is a PNG beside ``path`` (``path`` with the suffix
  ``.png``), which is what an image viewer and a document expect; the return value says where.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

from wildaffect.errors import InputError, WildaffectError
from wildaffect.io.atomic import atomic_path, atomic_write_bytes
from wildaffect.labels import AU_NAMES, EXPR_NAMES
from wildaffect.report.style import BOX_OUTLINE_RGB, BOX_RGB, EXPR_COLOURS_RGB
from wildaffect.report.table import AU_ACTIVE, check_table, expression_codes, face_mask

#: Video encoders in order of preference; the first one this FFmpeg build can open is used.
VIDEO_ENCODERS: tuple[str, ...] = ("libx264", "libopenh264", "mpeg4")
#: Encoder options: libx264 at visually near-lossless quality; the others by bit rate.
X264_OPTIONS = {"crf": "20", "preset": "veryfast"}
#: Bits per pixel per frame for the bit-rate encoders (about 1.3 Mbit/s at 640x360, 30 fps).
BITS_PER_PIXEL = 0.2
#: Time base of the written frames when they keep their own times (1 ms resolution).
TIME_BASE = Fraction(1, 1000)
#: Sample rate of the re-encoded audio track and the length of the pieces it is decoded in.
AUDIO_RATE = 44_100
AUDIO_CHUNK_S = 0.5
#: AUs written under the expression label.
TOP_AUS = 3
#: Reference frame height for text size and line widths (they scale with the frame).
_REFERENCE_HEIGHT = 360.0


@functools.cache
def pick_encoder(candidates: tuple[str, ...] = VIDEO_ENCODERS) -> str:
    """The first encoder in ``candidates`` that exists in this FFmpeg build and opens."""
    for name in candidates:
        try:
            context = av.CodecContext.create(name, "w")
            context.width, context.height = 64, 64
            context.pix_fmt = "yuv420p"
            context.time_base = Fraction(1, 25)
            context.open()
        except (av.FFmpegError, ValueError):  # unknown codec, or present but cannot open
            continue
        return name
    raise WildaffectError(f"this FFmpeg build has none of the video encoders {candidates}")


# --------------------------------------------------------------------------------------------
# Drawing one frame.


def _text_box(
    canvas: np.ndarray,
    text: str,
    origin: tuple[int, int],
    colour,
    scale: float,
    thickness: int,
    below: bool,
) -> None:
    """Write ``text`` on a filled ``colour`` box whose top-left (``below``) or bottom-left
    corner is ``origin``, kept inside the frame."""
    import cv2

    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, thickness * 2)
    height, width = canvas.shape[:2]
    x = int(np.clip(origin[0], 0, max(0, width - w - 2 * pad)))
    top = origin[1] if below else origin[1] - h - base - 2 * pad
    top = int(np.clip(top, 0, max(0, height - h - base - 2 * pad)))
    cv2.rectangle(canvas, (x, top), (x + w + 2 * pad, top + h + base + 2 * pad), colour, -1)
    ink = (0, 0, 0) if sum(colour) > 382 else (255, 255, 255)  # dark text on a light box
    cv2.putText(
        canvas,
        text,
        (x + pad, top + pad + h),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        ink,
        thickness,
        cv2.LINE_AA,
    )


def draw_predictions(
    image_rgb: np.ndarray,
    box: np.ndarray,
    points: np.ndarray,
    expression: str | None,
    expression_prob: float,
    active_aus: list[tuple[str, float]],
) -> np.ndarray:
    """A copy of ``image_rgb`` (H, W, 3) with the face box (4,) x0, y0, x1, y1, the 68
    ``points`` (68, 2) in pixels, the expression label above the box and the active AUs below
    it; "no face" in the corner when ``box`` is not finite."""
    import cv2

    from wildaffect.face.draw import draw_landmarks68

    height = image_rgb.shape[0]
    scale = 0.5 * height / _REFERENCE_HEIGHT
    thickness = max(1, round(height / _REFERENCE_HEIGHT))
    if not np.isfinite(box).all():
        canvas = np.ascontiguousarray(image_rgb.copy())
        _text_box(canvas, "no face", (0, 0), (40, 40, 40), scale, thickness, below=True)
        return canvas
    canvas = draw_landmarks68(image_rgb, points, numbers=False)  # skips NaN points
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), BOX_OUTLINE_RGB, 4 * thickness, cv2.LINE_AA)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), BOX_RGB, 2 * thickness, cv2.LINE_AA)
    if expression is not None:
        label = f"{expression} {expression_prob:.2f}"
        _text_box(
            canvas, label, (x0, y0), EXPR_COLOURS_RGB[expression], scale, thickness, below=False
        )
    aus = "  ".join(f"{name} {p:.2f}" for name, p in active_aus) or f"no AU >= {AU_ACTIVE}"
    _text_box(canvas, aus, (x0, y1 + 2 * thickness), (40, 40, 40), scale, thickness, below=True)
    return canvas


class _Rows:
    """Per-frame drawing inputs taken once from the table as arrays (fast row access)."""

    def __init__(self, table: pd.DataFrame, boxes: np.ndarray, landmarks: np.ndarray):
        self.face = face_mask(table)  # (T,)
        self.au = table[list(AU_NAMES)].to_numpy(dtype=np.float64)  # (T, 12)
        self.expr = table[list(EXPR_NAMES)].to_numpy(dtype=np.float64)  # (T, 8)
        self.codes = expression_codes(table)  # (T,)
        self.boxes = boxes  # (T, 4)
        self.landmarks = landmarks  # (T, 68, 2)

    def draw(self, index: int, image_rgb: np.ndarray) -> np.ndarray:
        box = self.boxes[index] if self.face[index] else np.full(4, np.nan)
        code = int(self.codes[index])
        expression = EXPR_NAMES[code] if code >= 0 else None
        prob = float(self.expr[index, code]) if code >= 0 else float("nan")
        au = self.au[index]
        order = [
            i for i in np.argsort(-np.nan_to_num(au, nan=-1.0), kind="stable") if au[i] >= AU_ACTIVE
        ][:TOP_AUS]
        active = [(AU_NAMES[i], float(au[i])) for i in order]
        return draw_predictions(image_rgb, box, self.landmarks[index], expression, prob, active)


# --------------------------------------------------------------------------------------------
# Encoding.


def _even(image: np.ndarray) -> np.ndarray:
    """Pad an odd width/height by one edge-replicated pixel (yuv420p needs even sizes)."""
    height, width = image.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return image
    return np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def _add_video_stream(
    out: av.container.OutputContainer,
    encoder: str,
    width: int,
    height: int,
    rate: Fraction,
    time_base: Fraction,
) -> av.video.stream.VideoStream:
    stream = out.add_stream(encoder, rate=rate)
    stream.width, stream.height = width + width % 2, height + height % 2
    stream.pix_fmt = "yuv420p"
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    if encoder == "libx264":
        stream.options = dict(X264_OPTIONS)
    else:
        stream.bit_rate = int(BITS_PER_PIXEL * width * height * float(rate))
    return stream


class _AudioCopy:
    """Re-encode the source audio to AAC beside the video, in step with it.

    Decoded in ``AUDIO_CHUNK_S`` pieces on the video's timeline
    (:func:`~wildaffect.io.media.iter_audio_chunks`), so memory stays flat; ``write_until``
    is called before each video frame so that the muxer interleaves without buffering.
    """

    def __init__(self, video_path: Path, out: av.container.OutputContainer):
        from wildaffect.io.media import iter_audio_chunks

        self.stream = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        self.out = out
        self.chunks: Iterator = iter_audio_chunks(
            video_path, chunk_s=AUDIO_CHUNK_S, sample_rate=AUDIO_RATE
        )
        self.written_s = 0.0

    def _write(self, samples: np.ndarray, start_s: float) -> None:
        if start_s < 0:  # audio that starts before the first frame: cut to the video's start
            samples, start_s = samples[round(-start_s * AUDIO_RATE) :], 0.0
        if not len(samples):
            return
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = round(start_s * AUDIO_RATE)
        frame.time_base = Fraction(1, AUDIO_RATE)
        self.out.mux(self.stream.encode(frame))
        self.written_s = start_s + len(samples) / AUDIO_RATE

    def write_until(self, time_s: float) -> None:
        while self.written_s <= time_s:
            chunk = next(self.chunks, None)
            if chunk is None:
                self.written_s = float("inf")
                return
            self._write(chunk.samples, chunk.start_s)

    def finish(self) -> None:
        for chunk in self.chunks:
            self._write(chunk.samples, chunk.start_s)
        self.out.mux(self.stream.encode(None))


def _check_geometry(table: pd.DataFrame, boxes: np.ndarray, landmarks: np.ndarray) -> None:
    n = len(table)
    if boxes.shape != (n, 4) or landmarks.shape != (n, 68, 2):
        raise WildaffectError(
            f"face geometry does not match the {n}-row prediction table: boxes {boxes.shape}, "
            f"landmarks {landmarks.shape} (expected ({n}, 4) and ({n}, 68, 2))"
        )


def write_overlay(
    video_path: str | Path,
    table: pd.DataFrame,
    boxes: np.ndarray,
    landmarks: np.ndarray,
    path: str | Path,
    *,
    fps: float | None = None,
) -> Path:
    """Draw the predictions of ``table`` (one row per decoded frame) on ``video_path`` and
    write an MP4 at ``path`` atomically (a PNG for an image, see the module docstring).

    boxes: (T, 4) x0, y0, x1, y1 and landmarks: (T, 68, 2), frame pixels, NaN without a face.
    Returns the written path.
    """
    from wildaffect.io.media import iter_frames, probe

    check_table(table)
    video_path, path = Path(video_path), Path(path)
    boxes = np.asarray(boxes, dtype=np.float64)  # (T, 4)
    landmarks = np.asarray(landmarks, dtype=np.float64)  # (T, 68, 2)
    _check_geometry(table, boxes, landmarks)
    info = probe(video_path)
    if info.kind == "audio":
        raise InputError(video_path, "audio only: there are no frames to draw an overlay on")
    rows = _Rows(table, boxes, landmarks)
    n_rows = len(table)

    def mismatch(n_frames: str) -> InputError:
        return InputError(
            video_path, f"has {n_frames} frames but the prediction table has {n_rows} rows"
        )

    if info.kind == "image":
        import cv2

        (frame,) = iter_frames(video_path)
        if n_rows != 1:
            raise mismatch("1")
        drawn = rows.draw(0, frame.image)
        ok, png = cv2.imencode(".png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if not ok:
            raise WildaffectError(f"could not encode the overlay image of {video_path}")
        return atomic_write_bytes(path.with_suffix(".png"), png.tobytes())

    encoder = pick_encoder(VIDEO_ENCODERS)  # read at call time: a caller may narrow it
    nominal = Fraction(fps or info.fps or 25).limit_denominator(1001)
    time_base = 1 / nominal if fps else TIME_BASE
    n_frames = 0
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as out:
        video = _add_video_stream(out, encoder, info.width, info.height, nominal, time_base)
        audio = _AudioCopy(video_path, out) if info.has_audio and not fps else None
        for frame in iter_frames(video_path):
            if frame.index >= n_rows:
                raise mismatch(f"more than {n_rows}")
            if audio is not None:
                audio.write_until(frame.time_s)
            picture = av.VideoFrame.from_ndarray(
                _even(rows.draw(frame.index, frame.image)), format="rgb24"
            )
            picture.pts = frame.index if fps else round(frame.time_s / TIME_BASE)
            picture.time_base = time_base
            out.mux(video.encode(picture))
            n_frames += 1
        if n_frames != n_rows:
            raise mismatch(str(n_frames))
        out.mux(video.encode(None))
        if audio is not None:
            audio.finish()
    return path
