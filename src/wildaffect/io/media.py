"""Decode video frames with their timestamps and audio as 16 kHz mono float, with PyAV.

Why timestamps and not ``index / fps``: in-the-wild videos are often variable-frame-rate
(phone recordings, screen captures, re-encoded uploads), and the audio has to be aligned to
the time a frame is *shown*, not to its position in the file. Every time here is in seconds
on one timeline whose origin is the start of the video stream (so the first frame of a
well-formed file is at 0.0); :attr:`AudioTrack.start_s` places the audio on the same timeline.

Every failure is an :class:`~wildaffect.errors.InputError` naming the file and what is wrong;
no raw PyAV/FFmpeg exception escapes, so a batch can report it and go on with other files.

Truncated or corrupt files: decoding stops where the data stops, but a file that ends well
before the duration its header declares (or whose decoder fails midway) raises
``InputError(path, "truncated or corrupt: ...")`` *after* the frames decoded so far were
yielded. A caller that wants the partial result keeps what it already consumed; a batch
catches the error, reports it and goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.logging
import numpy as np

from wildaffect.errors import InputError

#: Sample rate of every audio track handed to the models (WavLM / Whisper expect 16 kHz).
AUDIO_SAMPLE_RATE = 16_000

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".mpg", ".mpeg", ".m4v", ".wmv", ".3gp"}
)
AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".mp3", ".flac", ".m4a", ".ogg", ".aac"})
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
MEDIA_EXTENSIONS: frozenset[str] = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS | IMAGE_EXTENSIONS

#: Default length of the chunks :func:`iter_audio_chunks` yields.
AUDIO_CHUNK_S = 10.0

#: A stream that ends this much earlier than its declared duration is reported as truncated
#: (the larger of the two). Declared durations are estimates in some containers; the margin
#: keeps valid files from being flagged.
_TRUNCATION_MIN_S = 0.5
_TRUNCATION_FRACTION = 0.1

#: FFmpeg demuxers that read still images (a .jpg is opened as a one-frame "video").
_IMAGE_DEMUXERS = ("image2", "_pipe")

MediaKind = Literal["video", "image", "audio"]

# FFmpeg prints warnings for every damaged packet; our errors say what matters, once per file.
av.logging.set_level(av.logging.PANIC)


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` reads from the container headers (nothing is decoded)."""

    path: Path
    kind: MediaKind
    width: int | None
    height: int | None
    fps: float | None  # average frame rate; None for images and audio
    duration_s: float | None  # None when the container does not say (and for images)
    n_frames_estimate: int | None  # header frame count, else duration * fps; 1 for images
    # Codec names are None when the stream is absent or this FFmpeg build cannot decode it.
    has_video: bool
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame and the time it is shown (s, from the video stream start)."""

    index: int
    time_s: float
    image: np.ndarray  # (H, W, 3) uint8 RGB


@dataclass(frozen=True)
class AudioTrack:
    """Mono audio at ``sample_rate``; ``samples[0]`` is heard at ``start_s`` on the frame timeline.

    ``missing`` is True when the file has no audio track: ``samples`` is then silence as long
    as the video, so downstream code can run unchanged (and models can mask it).
    """

    samples: np.ndarray  # (N,) float32 in [-1, 1]
    sample_rate: int
    missing: bool
    start_s: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


# --------------------------------------------------------------------------------------------
# Errors: one translation point from PyAV/OS exceptions to InputError.


def _check_readable(path: Path) -> None:
    """Fail early with a plain reason for the cases FFmpeg reports cryptically."""
    try:
        with open(path, "rb") as handle:
            first = handle.read(1)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a media file") from None
    except PermissionError:
        raise InputError(path, "cannot read the file (permission denied)") from None
    except OSError as exc:
        raise InputError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if not first:
        raise InputError(path, "empty file (0 bytes)")


def _reason(exc: BaseException, doing: str) -> str:
    if isinstance(exc, av.error.DecoderNotFoundError):
        return "unsupported codec: this FFmpeg build has no decoder for it"
    if isinstance(exc, av.error.PermissionError | PermissionError):
        return "cannot read the file (permission denied)"
    if isinstance(exc, av.error.FileNotFoundError | FileNotFoundError):
        return "file not found"
    if doing == "open" and isinstance(exc, av.error.InvalidDataError):
        return "not a media file, or a truncated/corrupt one (FFmpeg cannot parse it)"
    if isinstance(exc, av.error.InvalidDataError | av.error.EOFError):
        return f"truncated or corrupt: decoding failed while {doing}"
    message = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    return f"FFmpeg failed while {doing}: {message}"


@contextlib.contextmanager
def _translated(path: Path, doing: str) -> Iterator[None]:
    """Re-raise PyAV/OS failures inside the block as InputError(path, short reason)."""
    try:
        yield
    except (av.FFmpegError, OSError) as exc:
        raise InputError(path, _reason(exc, doing)) from None


@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[av.container.InputContainer]:
    _check_readable(path)
    with _translated(path, "open"):
        container = av.open(str(path), mode="r")
    try:
        yield container
    finally:
        container.close()


# --------------------------------------------------------------------------------------------
# Stream helpers.


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream; cover art in audio files (attached pictures) is not video."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def _require_decoder(path: Path, stream: av.stream.Stream) -> None:
    if stream.codec_context is None:  # PyAV leaves it unset when no decoder exists
        raise InputError(
            path, f"unsupported codec: this FFmpeg build cannot decode the {stream.type} stream"
        )


def _codec_name(stream: av.stream.Stream | None) -> str | None:
    if stream is None or stream.codec_context is None:
        return None
    return stream.codec_context.name


def _is_image(path: Path, container: av.container.InputContainer) -> bool:
    name = container.format.name
    return path.suffix.lower() in IMAGE_EXTENSIONS or any(d in name for d in _IMAGE_DEMUXERS)


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _stream_start_s(stream: av.stream.Stream) -> float | None:
    return _seconds(stream.start_time, stream.time_base)


def _stream_duration_s(
    stream: av.stream.Stream, container: av.container.InputContainer
) -> float | None:
    """Declared duration of one stream; the container's when the stream does not say."""
    duration = _seconds(stream.duration, stream.time_base)
    if duration is None and container.duration is not None:
        duration = container.duration / av.time_base
    return duration


def _average_fps(stream: av.video.stream.VideoStream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


def _check_complete(path: Path, what: str, decoded_s: float, declared_s: float | None) -> None:
    """Raise when a stream stopped well before the duration its header declares."""
    if declared_s is None or declared_s <= 0:
        return
    margin = max(_TRUNCATION_MIN_S, _TRUNCATION_FRACTION * declared_s)
    if decoded_s < declared_s - margin:
        raise InputError(
            path,
            f"truncated or corrupt: the {what} stops at {decoded_s:.2f} s "
            f"of the {declared_s:.2f} s the file declares",
        )


# --------------------------------------------------------------------------------------------
# Probe.


def probe(path: str | Path) -> MediaInfo:
    """Read what the file holds from its headers, without decoding it.

    Cheap, so it cannot see damage past the headers: a truncated file probes fine and fails
    in :func:`iter_frames` / :func:`read_audio`.
    """
    path = Path(path)
    with _open_input(path) as container:
        video = _video_stream(container)
        audio = _audio_stream(container)
        if video is None and audio is None:
            raise InputError(path, "no video or audio stream in the file")
        if video is not None and _is_image(path, container):
            ctx = video.codec_context
            return MediaInfo(
                path=path, kind="image", width=ctx and ctx.width, height=ctx and ctx.height,
                fps=None, duration_s=None, n_frames_estimate=1, has_video=True,
                has_audio=False, video_codec=_codec_name(video), audio_codec=None,
            )  # fmt: skip
        if video is not None:
            ctx = video.codec_context
            fps = _average_fps(video)
            duration = _stream_duration_s(video, container)
            n_frames = video.frames or None
            if n_frames is None and duration is not None and fps:
                n_frames = round(duration * fps)
            return MediaInfo(
                path=path, kind="video", width=ctx and ctx.width, height=ctx and ctx.height,
                fps=fps, duration_s=duration, n_frames_estimate=n_frames, has_video=True,
                has_audio=audio is not None, video_codec=_codec_name(video),
                audio_codec=_codec_name(audio),
            )  # fmt: skip
        return MediaInfo(
            path=path, kind="audio", width=None, height=None, fps=None,
            duration_s=_stream_duration_s(audio, container), n_frames_estimate=None,
            has_video=False, has_audio=True, video_codec=None, audio_codec=_codec_name(audio),
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Video frames.


def _decoded(path: Path, container: av.container.InputContainer, stream, what: str) -> Iterator:
    """``container.decode(stream)`` with every PyAV failure turned into an InputError."""
    frames = container.decode(stream)
    count = 0
    while True:
        with _translated(path, f"decoding {what} {count} (truncated or damaged data?)"):
            frame = next(frames, None)
        if frame is None:
            return
        yield frame
        count += 1


def _frame_time_s(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> float | None:
    """Presentation time (absolute, s): the frame's own, else pts * stream time base."""
    if frame.time is not None:
        return float(frame.time)
    return _seconds(frame.pts, stream.time_base)


def iter_frames(path: str | Path, *, max_frames: int | None = None) -> Iterator[VideoFrame]:
    """Decode frames lazily, in presentation order, with the time each one is shown.

    ``time_s`` comes from the frame's presentation timestamp, relative to the video stream
    start; when the container has no timestamps it falls back to ``index / fps``. Times are
    kept strictly increasing (a repeated or backwards timestamp becomes previous + one
    nominal frame), since alignment needs a monotonic clock. An image gives one frame at 0.
    Raises :class:`InputError` for anything wrong with the file (see the module docstring
    for truncated files: the frames before the damage are yielded first).
    """
    path = Path(path)
    if max_frames is not None and max_frames <= 0:
        return
    with _open_input(path) as container:
        stream = _video_stream(container)
        if stream is None:
            raise InputError(path, "no video stream (an audio-only file has no frames)")
        _require_decoder(path, stream)
        stream.thread_type = "AUTO"
        image = _is_image(path, container)
        fps = _average_fps(stream)
        nominal_dt = 1.0 / fps if fps else 0.04  # 25 fps when the file says nothing
        origin = _stream_start_s(stream)
        index = 0
        previous: float | None = None
        last_absolute: float | None = None
        for frame in _decoded(path, container, stream, "video frame"):
            absolute = _frame_time_s(frame, stream)
            if image:
                time_s = 0.0
            elif absolute is None:
                time_s = index * nominal_dt
            else:
                origin = absolute if origin is None else origin
                time_s = absolute - origin
                last_absolute = absolute
            if previous is not None and time_s <= previous:
                time_s = previous + nominal_dt
            with _translated(path, f"converting video frame {index} to RGB"):
                rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
            yield VideoFrame(index, time_s, rgb)
            previous = time_s
            index += 1
            if image or (max_frames is not None and index >= max_frames):
                return
        if index == 0:
            raise InputError(path, "truncated or corrupt: no video frame could be decoded")
        if last_absolute is not None and origin is not None:
            decoded_s = last_absolute + nominal_dt - origin
            _check_complete(path, "video", decoded_s, _stream_duration_s(stream, container))


def iter_frame_batches(
    path: str | Path, batch_size: int, *, max_frames: int | None = None
) -> Iterator[list[VideoFrame]]:
    """:func:`iter_frames` grouped into lists of ``batch_size`` (the last one may be shorter)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    batch: list[VideoFrame] = []
    for frame in iter_frames(path, max_frames=max_frames):
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# --------------------------------------------------------------------------------------------
# Audio.


@dataclass
class _AudioClock:
    """Absolute times (s) of the first decoded audio sample and of the end of the last frame."""

    first_s: float | None = None
    end_s: float | None = None


def _resampled(
    path: Path, container: av.container.InputContainer, stream, sample_rate: int, clock: _AudioClock
) -> Iterator[np.ndarray]:
    """Decoded audio as mono float32 pieces at ``sample_rate``, one decoded frame at a time.

    FFmpeg resamples (keeping the channels, planar float); the channels are then averaged.
    FFmpeg's own ``layout="mono"`` downmix computes (L + R) * 0.707, i.e. +3 dB on a
    centred voice, which clips loud speech: the plain mean keeps the level of each channel.
    """
    resampler = av.AudioResampler(format="fltp", rate=sample_rate)
    for frame in _decoded(path, container, stream, "audio frame"):
        if frame.time is not None:
            clock.first_s = float(frame.time) if clock.first_s is None else clock.first_s
            clock.end_s = float(frame.time) + frame.samples / frame.sample_rate
        with _translated(path, "resampling audio"):
            converted = resampler.resample(frame)
        for out in converted:
            yield _mono(out)
    with _translated(path, "resampling audio"):
        flushed = resampler.resample(None)  # the resampler holds back its filter's tail
    for out in flushed:
        yield _mono(out)


def _mono(frame: av.AudioFrame) -> np.ndarray:
    planes = frame.to_ndarray()  # (C, n) float32, planar
    return planes[0] if planes.shape[0] == 1 else planes.mean(axis=0, dtype=np.float32)


def _rechunk(pieces: Iterator[np.ndarray], size: int, limit: int | None) -> Iterator[np.ndarray]:
    """Regroup a stream of 1-D pieces into chunks of ``size`` samples, stopping at ``limit``."""
    buffer: list[np.ndarray] = []
    buffered = 0
    emitted = 0
    for piece in pieces:
        buffer.append(piece)
        buffered += len(piece)
        while buffered >= size or (limit is not None and emitted + buffered >= limit):
            joined = np.concatenate(buffer)
            n = size if limit is None else min(size, limit - emitted)
            yield joined[:n]
            emitted += n
            buffer, buffered = [joined[n:]], len(joined) - n
            if limit is not None and emitted >= limit:
                return
    if buffered:
        yield np.concatenate(buffer)


def _video_duration_s(path: Path, container: av.container.InputContainer, stream) -> float:
    """Duration of the video stream: declared, else measured from packet timestamps."""
    duration = _stream_duration_s(stream, container)
    if duration is not None:
        return duration
    start = _stream_start_s(stream) or 0.0
    end = 0.0
    with _translated(path, "reading video packets"):
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                packet_end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                end = max(end, packet_end - start)
    return end


def iter_audio_chunks(
    path: str | Path,
    *,
    chunk_s: float = AUDIO_CHUNK_S,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    duration_s: float | None = None,
) -> Iterator[AudioTrack]:
    """Stream the audio as consecutive mono float32 chunks of ``chunk_s`` (the last is shorter).

    Memory stays bounded by about one chunk plus one decoded frame, whatever the file
    length. Each chunk is an :class:`AudioTrack` whose ``start_s`` is its first sample's time
    on the frame timeline (the video stream start; the audio's own start in an audio-only
    file). A video without audio yields silence as long as the video (``missing=True``).
    ``duration_s`` stops after that many seconds.
    """
    path = Path(path)
    chunk_samples = max(1, round(chunk_s * sample_rate))
    limit = None if duration_s is None else max(0, round(duration_s * sample_rate))
    if limit == 0:
        return
    with _open_input(path) as container:
        audio = _audio_stream(container)
        video = _video_stream(container)
        if audio is None:
            if video is None:
                raise InputError(path, "no video or audio stream in the file")
            if _is_image(path, container):
                raise InputError(path, "an image has no audio")
            n_samples = round(_video_duration_s(path, container, video) * sample_rate)
            n_samples = n_samples if limit is None else min(n_samples, limit)
            for offset in range(0, n_samples, chunk_samples):
                length = min(chunk_samples, n_samples - offset)
                silence = np.zeros(length, np.float32)
                yield AudioTrack(silence, sample_rate, True, offset / sample_rate)
            return
        _require_decoder(path, audio)
        clock = _AudioClock()
        start_s = 0.0
        emitted = 0
        for chunk in _rechunk(
            _resampled(path, container, audio, sample_rate, clock), chunk_samples, limit
        ):
            if emitted == 0:
                first = clock.first_s if clock.first_s is not None else _stream_start_s(audio)
                first = first or 0.0
                origin = first if video is None else (_stream_start_s(video) or 0.0)
                start_s = first - origin
            samples = np.clip(chunk, -1.0, 1.0).astype(np.float32, copy=False)
            yield AudioTrack(samples, sample_rate, False, start_s + emitted / sample_rate)
            emitted += len(samples)
        if emitted == 0:
            raise InputError(path, "truncated or corrupt: no audio could be decoded")
        if limit is not None and emitted >= limit:
            return
        if clock.first_s is not None and clock.end_s is not None:
            decoded_s = clock.end_s - clock.first_s
            _check_complete(path, "audio", decoded_s, _stream_duration_s(audio, container))


def read_audio(
    path: str | Path,
    *,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    duration_s: float | None = None,
) -> AudioTrack:
    """The whole audio track as one :class:`AudioTrack` (16 kHz mono float32 in [-1, 1]).

    Values are decoded floats clipped to [-1, 1], not peak-normalised: loudness carries
    arousal, and WavLM's feature extractor standardises its input itself.
    """
    chunks = list(iter_audio_chunks(path, sample_rate=sample_rate, duration_s=duration_s))
    if not chunks:  # duration_s=0 or a zero-length video
        return AudioTrack(np.zeros(0, np.float32), sample_rate, False, 0.0)
    samples = np.concatenate([c.samples for c in chunks]) if len(chunks) > 1 else chunks[0].samples
    return AudioTrack(samples, sample_rate, chunks[0].missing, chunks[0].start_s)


def frame_times(path: str | Path, *, max_frames: int | None = None) -> np.ndarray:
    """Presentation times (s) of every frame, (T,) float64; decodes the video once."""
    times = [frame.time_s for frame in iter_frames(path, max_frames=max_frames)]
    return np.asarray(times, dtype=np.float64)


def is_media_path(path: str | Path) -> bool:
    """True when the file name has one of the extensions wildaffect reads."""
    return Path(path).suffix.lower() in MEDIA_EXTENSIONS


__all__ = [
    "AUDIO_CHUNK_S",
    "AUDIO_EXTENSIONS",
    "AUDIO_SAMPLE_RATE",
    "IMAGE_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "AudioTrack",
    "MediaInfo",
    "VideoFrame",
    "frame_times",
    "is_media_path",
    "iter_audio_chunks",
    "iter_frame_batches",
    "iter_frames",
    "probe",
    "read_audio",
]
