"""Decoding real clips (CREMA-D .flv, GRID .mpg, CREMA-D .mp3, a JPEG) and clips made here.

Every bad input must surface as InputError with a reason; pytest.raises(InputError) fails on
any other exception type, which is how "no raw PyAV exception escapes" is checked.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import wave
import weakref
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from scipy.signal import resample_poly

from wildaffect.errors import InputError
from wildaffect.io import media
from wildaffect.io.media import (
    AUDIO_SAMPLE_RATE,
    iter_audio_chunks,
    iter_frame_batches,
    iter_frames,
    probe,
    read_audio,
)

CREMA_FLV = "1001_DFA_HAP_XX.flv"
GRID_MPG = "sbwe5n.mpg"
CREMA_MP3 = "1002_DFA_HAP_XX.mp3"
FACE_JPG = "single_face.jpg"
NOBODY = 65534  # uid of the unprivileged user on Linux


@pytest.fixture(scope="module")
def media_dir() -> Path:
    return Path(__file__).resolve().parent / "fixtures" / "media"


def _times(path: Path) -> np.ndarray:
    return np.array([frame.time_s for frame in iter_frames(path)])


# --------------------------------------------------------------------------------------------
# Clips written in the test with PyAV.


def _write_video(
    path: Path,
    times_s: np.ndarray,
    *,
    size: tuple[int, int] = (64, 48),
    codec: str = "mpeg4",
    frames: list[np.ndarray] | None = None,
) -> None:
    """A video-only clip whose frame i is shown at times_s[i] (ms time base: VFR allowed)."""
    width, height = size
    time_base = Fraction(1, 1000)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        for i, t in enumerate(times_s):
            if frames is not None:
                image = frames[i % len(frames)]
            else:
                image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_wav(path: Path, signal: np.ndarray, sample_rate: int) -> None:
    """signal: (N, C) float in [-1, 1] -> 16-bit PCM with the stdlib wave module."""
    pcm = np.round(signal * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(signal.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())


# --------------------------------------------------------------------------------------------
# Real clips: frames.


def test_probe_reads_the_fixture_headers(media_dir: Path) -> None:
    flv = probe(media_dir / CREMA_FLV)
    assert (flv.kind, flv.width, flv.height) == ("video", 480, 360)
    assert flv.fps == pytest.approx(30000 / 1001, abs=0.01)
    assert flv.has_video and flv.has_audio
    assert (flv.video_codec, flv.audio_codec) == ("vp6f", "mp3float")
    grid = probe(media_dir / GRID_MPG)
    assert (grid.kind, grid.fps, grid.width, grid.height) == ("video", 25.0, 360, 288)
    assert grid.duration_s == pytest.approx(3.0, abs=0.05)
    mp3 = probe(media_dir / CREMA_MP3)
    assert (mp3.kind, mp3.has_video, mp3.has_audio, mp3.fps) == ("audio", False, True, None)
    jpg = probe(media_dir / FACE_JPG)
    assert (jpg.kind, jpg.n_frames_estimate, jpg.has_audio) == ("image", 1, False)


def test_crema_d_flv_decodes_every_frame_at_29_97_fps(media_dir: Path) -> None:
    path = media_dir / CREMA_FLV
    info = probe(path)
    frames = list(iter_frames(path))
    times = np.array([f.time_s for f in frames])
    # 1.868 s declared at 29.97 fps -> 56 frames; the flv clock has 1 ms ticks.
    assert len(frames) == 56 == info.n_frames_estimate
    assert [f.index for f in frames] == list(range(56))
    assert times[0] == 0.0  # relative to the stream start (the stream starts at 27 ms)
    assert np.all(np.diff(times) > 0)
    assert np.median(np.diff(times)) == pytest.approx(1001 / 30000, abs=1.5e-3)
    assert times[-1] == pytest.approx(55 * 1001 / 30000, abs=2e-3)
    image = frames[0].image
    assert image.shape == (360, 480, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a real picture, not a blank buffer


def test_grid_mpg_decodes_at_25_fps(media_dir: Path) -> None:
    times = _times(media_dir / GRID_MPG)
    assert len(times) == 75  # 3 s at 25 fps
    np.testing.assert_allclose(np.diff(times), 0.04, atol=1e-6)
    assert times[0] == 0.0


def test_image_is_one_frame_at_time_zero(media_dir: Path) -> None:
    frames = list(iter_frames(media_dir / FACE_JPG))
    assert len(frames) == 1
    assert frames[0].time_s == 0.0
    assert frames[0].image.shape == (562, 572, 3) and frames[0].image.dtype == np.uint8


def test_max_frames_and_batches(media_dir: Path) -> None:
    path = media_dir / CREMA_FLV
    assert [f.index for f in iter_frames(path, max_frames=5)] == [0, 1, 2, 3, 4]
    batches = list(iter_frame_batches(path, 16))
    assert [len(b) for b in batches] == [16, 16, 16, 8]
    np.testing.assert_array_equal([f.time_s for b in batches for f in b], _times(path))
    with pytest.raises(ValueError):
        next(iter_frame_batches(path, 0))


# --------------------------------------------------------------------------------------------
# Real clips: audio.


@pytest.mark.parametrize("name", [CREMA_FLV, GRID_MPG])
def test_audio_of_real_videos_is_16k_mono_and_matches_the_video(media_dir: Path, name: str) -> None:
    path = media_dir / name
    track = read_audio(path)
    assert track.sample_rate == AUDIO_SAMPLE_RATE
    assert track.samples.ndim == 1 and track.samples.dtype == np.float32
    assert -1.0 <= track.samples.min() and track.samples.max() <= 1.0
    assert not track.missing
    times = _times(path)
    video_s = times[-1] + np.median(np.diff(times))
    assert track.duration_s == pytest.approx(video_s, abs=0.1)
    assert np.sqrt(np.mean(track.samples**2)) > 0.005  # real speech, not silence


def test_audio_start_is_placed_on_the_frame_timeline(media_dir: Path) -> None:
    # In the CREMA-D flv the audio starts at 0 ms and the video stream at 27 ms.
    assert read_audio(media_dir / CREMA_FLV).start_s == pytest.approx(-0.027, abs=1e-6)
    assert read_audio(media_dir / GRID_MPG).start_s == pytest.approx(0.0, abs=1e-6)
    assert read_audio(media_dir / CREMA_MP3).start_s == 0.0


def test_mp3_resampling_matches_scipy_polyphase(media_dir: Path) -> None:
    """FFmpeg's 44.1 -> 16 kHz resampling against scipy's polyphase filter on real speech."""
    path = media_dir / CREMA_MP3
    native = read_audio(path, sample_rate=44_100).samples
    ours = read_audio(path).samples
    reference = resample_poly(native.astype(np.float64), 160, 441)
    assert abs(len(ours) - len(reference)) <= 2
    n = min(len(ours), len(reference))
    correlation = np.corrcoef(ours[:n], reference[:n])[0, 1]
    assert correlation > 0.99
    rms_ours, rms_ref = np.sqrt(np.mean(ours**2)), np.sqrt(np.mean(reference**2))
    assert rms_ours == pytest.approx(rms_ref, rel=0.02)


def test_audio_chunks_concatenate_to_read_audio(media_dir: Path) -> None:
    path = media_dir / GRID_MPG
    whole = read_audio(path)
    chunks = list(iter_audio_chunks(path, chunk_s=0.5))
    assert all(len(c.samples) == 8000 for c in chunks[:-1])
    assert 0 < len(chunks[-1].samples) <= 8000
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), whole.samples)
    starts = np.array([c.start_s for c in chunks])
    np.testing.assert_allclose(np.diff(starts), 0.5, atol=1e-9)
    head = read_audio(path, duration_s=1.0)
    assert len(head.samples) == AUDIO_SAMPLE_RATE
    np.testing.assert_array_equal(head.samples, whole.samples[:AUDIO_SAMPLE_RATE])


# --------------------------------------------------------------------------------------------
# Clips made here.


def test_video_without_audio_gives_silence_of_its_duration(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    _write_video(path, np.arange(50) / 25.0)  # 2.0 s at 25 fps
    info = probe(path)
    assert info.has_video and not info.has_audio
    track = read_audio(path)
    assert track.missing
    assert len(track.samples) == 2 * AUDIO_SAMPLE_RATE
    assert not np.any(track.samples)
    assert len(list(iter_frames(path))) == 50


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_variable_frame_rate_times_are_read_back(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(1)
    written = np.round(np.cumsum(np.r_[0.0, rng.uniform(0.015, 0.12, 39)]), 3)  # ms ticks
    path = tmp_path / f"vfr{suffix}"
    _write_video(path, written)
    times = _times(path)
    assert len(times) == len(written)
    np.testing.assert_allclose(times, written, atol=1e-3)


def test_stream_without_timestamps_falls_back_to_index_over_fps(tmp_path: Path) -> None:
    """A raw H.264 elementary stream carries no timestamps: time = index / fps."""
    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), "rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:  # the premise: the decoder really gives no pts
        assert all(frame.pts is None for frame in container.decode(video=0))
    np.testing.assert_allclose(_times(path), np.arange(12) / 25.0, atol=1e-9)


def test_wav_is_resampled_to_16k_mono(tmp_path: Path) -> None:
    rate, seconds = 8_000, 1.0
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    path = tmp_path / "tone.wav"
    _write_wav(path, np.stack([tone, tone], axis=1), rate)  # stereo, same tone in both
    track = read_audio(path)
    assert len(track.samples) == pytest.approx(AUDIO_SAMPLE_RATE * seconds, abs=2)
    assert not track.missing and track.start_s == 0.0
    spectrum = np.abs(np.fft.rfft(track.samples))
    peak_hz = np.argmax(spectrum) * AUDIO_SAMPLE_RATE / len(track.samples)
    assert peak_hz == pytest.approx(440.0, abs=2.0)
    middle = track.samples[1000:-1000]
    assert np.abs(middle).max() == pytest.approx(0.5, abs=0.02)  # downmix keeps the level


def test_cover_art_in_an_audio_file_is_not_video(tmp_path: Path) -> None:
    """An .mp3 with an attached picture (album art) is audio: the picture is no frame."""
    path = tmp_path / "song.mp3"
    with av.open(str(path), "w") as container:
        audio = container.add_stream("mp3", rate=16_000, layout="mono")
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for packet in cover.encode(picture.reformat(format="yuvj420p")):
            container.mux(packet)
        for packet in cover.encode():
            container.mux(packet)
        tone = 0.3 * np.sin(2 * np.pi * 300 * np.arange(16_000) / 16_000)
        frame = av.AudioFrame.from_ndarray(
            tone.astype(np.float32)[None], format="flt", layout="mono"
        )
        frame.sample_rate, frame.pts = 16_000, 0
        to_encoder = av.AudioResampler(format=audio.codec_context.format.name, rate=16_000)
        for converted in to_encoder.resample(frame):
            for packet in audio.encode(converted):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    info = probe(path)
    assert (info.kind, info.has_video, info.has_audio) == ("audio", False, True)
    assert read_audio(path).duration_s == pytest.approx(1.0, abs=0.1)
    with pytest.raises(InputError, match="no video stream"):
        next(iter_frames(path))


def test_frames_are_decoded_lazily_and_not_kept(
    tmp_path: Path, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 10x concatenated clip: the first frame arrives after one decode; frames are not held."""
    small = [
        f.image[::6, ::6].copy() for f in iter_frames(media_dir / CREMA_FLV)
    ]  # (60, 80, 3) each
    n_frames = 10 * len(small)
    path = tmp_path / "long.mkv"
    _write_video(path, np.arange(n_frames) / 25.0, size=(80, 60), frames=small)

    pulled: list[int] = []
    real_decoded = media._decoded

    def counting_decoded(*args, **kwargs):
        for frame in real_decoded(*args, **kwargs):
            pulled.append(1)
            yield frame

    monkeypatch.setattr(media, "_decoded", counting_decoded)
    frames = iter_frames(path)
    first = next(frames)
    assert first.index == 0 and len(pulled) == 1  # nothing decoded ahead of the consumer
    alive = [weakref.ref(first)]
    del first
    count = 1
    for frame in frames:  # iterate and drop
        alive.append(weakref.ref(frame))
        count += 1
    del frame
    assert count == n_frames == len(pulled)
    assert sum(ref() is not None for ref in alive) == 0  # the decoder kept no frame


# --------------------------------------------------------------------------------------------
# Bad inputs: always InputError with a reason.


def _all_readers(path: Path) -> list:
    return [probe, lambda p: list(iter_frames(p)), read_audio]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    for reader in _all_readers(path):
        with pytest.raises(InputError, match="empty file") as info:
            reader(path)
        assert info.value.path == path


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 20)
    for reader in _all_readers(path):
        with pytest.raises(InputError, match="not a media file"):
            reader(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    for reader in _all_readers(tmp_path):
        with pytest.raises(InputError, match="file not found"):
            reader(tmp_path / "nope.mp4")
        with pytest.raises(InputError, match="is a folder"):
            reader(tmp_path)


def test_truncated_flv_raises_after_the_frames_it_has(tmp_path: Path, media_dir: Path) -> None:
    data = (media_dir / CREMA_FLV).read_bytes()
    path = tmp_path / "cut.flv"
    path.write_bytes(data[: int(len(data) * 0.3)])
    decoded = []
    with pytest.raises(InputError, match="truncated") as info:
        for frame in iter_frames(path):
            decoded.append(frame)
    assert info.value.path == path
    assert 0 < len(decoded) < 56  # what was there is still delivered before the error
    with pytest.raises(InputError, match="truncated"):
        read_audio(path)


def test_truncated_mp4_without_its_index(tmp_path: Path) -> None:
    full = tmp_path / "full.mp4"
    _write_video(full, np.arange(25) / 25.0)
    data = full.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.3)])  # the moov index sits at the end
    with pytest.raises(InputError, match="truncated/corrupt"):
        list(iter_frames(path))


@pytest.mark.parametrize("name", [CREMA_FLV, GRID_MPG])
def test_damaged_bytes_never_leak_a_raw_av_error(
    tmp_path: Path, media_dir: Path, name: str
) -> None:
    """Garbage written over the middle of a real clip: decoded (concealed) or InputError."""
    data = bytearray((media_dir / name).read_bytes())
    rng = np.random.default_rng(7)
    for trial in range(3):
        damaged = bytearray(data)
        at = int(rng.integers(len(data) // 4, 3 * len(data) // 4))
        damaged[at : at + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        path = tmp_path / f"damaged{trial}{Path(name).suffix}"
        path.write_bytes(bytes(damaged))
        for reader in (lambda p: list(iter_frames(p)), read_audio):
            try:
                reader(path)
            except InputError as exc:
                assert exc.path == path and exc.reason


def test_unsupported_codec(tmp_path: Path) -> None:
    """A Codec 2 file: FFmpeg has its demuxer, but PyAV's build has no Codec 2 decoder."""
    with pytest.raises(av.codec.codec.UnknownCodecError):
        av.Codec("codec2", "r")  # the premise: if a decoder appears, pick another codec
    header = bytes([0xC0, 0xDE, 0xC2, 0, 8, 0, 0])  # magic, version 0.8, mode 3200, flags
    path = tmp_path / "speech.wav"  # misnamed on purpose: FFmpeg sniffs the content
    path.write_bytes(header + bytes(8 * 200))
    with pytest.raises(InputError, match="unsupported codec"):
        read_audio(path)
    assert probe(path).audio_codec is None


@contextlib.contextmanager
def _unprivileged() -> Iterator[None]:
    """Run the block as a normal user: root reads anything, so drop to nobody for a moment."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions only")
def test_unreadable_file(media_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)  # others may enter the folder but not read the file
        path = Path(folder) / "locked.flv"
        path.write_bytes((media_dir / CREMA_FLV).read_bytes())
        path.chmod(0)
        hidden = Path(folder) / "private" / "clip.flv"  # inside a folder others cannot enter
        hidden.parent.mkdir(mode=0o700)
        hidden.write_bytes(b"x")
        with _unprivileged():
            for reader in _all_readers(path):
                for target in (path, hidden):
                    with pytest.raises(InputError, match="permission denied"):
                        reader(target)


def test_streams_that_are_absent(media_dir: Path) -> None:
    with pytest.raises(InputError, match="no video stream"):
        next(iter_frames(media_dir / CREMA_MP3))
    with pytest.raises(InputError, match="image has no audio"):
        read_audio(media_dir / FACE_JPG)


def test_a_batch_goes_on_past_bad_files(tmp_path: Path, media_dir: Path) -> None:
    """The loop a batch command runs: bad files are reported, the good ones still decode."""
    cut = tmp_path / "cut.flv"
    data = (media_dir / CREMA_FLV).read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    text = tmp_path / "text.mp4"
    text.write_text("not a video")
    batch = [media_dir / CREMA_FLV, cut, text, tmp_path / "gone.mp4", media_dir / GRID_MPG]
    counts: dict[str, int] = {}
    failures: list[InputError] = []
    for path in batch:
        try:
            counts[path.name] = sum(1 for _ in iter_frames(path))
        except InputError as exc:
            failures.append(exc)
    assert counts == {CREMA_FLV: 56, GRID_MPG: 75}
    assert [f.path for f in failures] == [cut, text, tmp_path / "gone.mp4"]
