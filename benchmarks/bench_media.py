"""Decoding speed and streaming memory of wildaffect.io.media (not a test: prints, writes JSON).

    python benchmarks/bench_media.py [--minutes 5] [--out PATH]

- video: frames per second of ``iter_frames`` (decode + RGB conversion) on the real clips;
- audio: real-time factor of ``read_audio`` (decode + resample to 16 kHz mono);
- memory: peak growth of resident memory while streaming a long generated WAV with
  ``iter_audio_chunks`` (chunks dropped) vs ``read_audio`` (whole track), and while iterating
  the frames of a long generated video (frames dropped) vs keeping them all.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
import wave
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from wildaffect.io.media import iter_audio_chunks, iter_frames, probe, read_audio

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "media"
SHARED = REPO.parent / "shared" / "data" / "media"


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def rss_mib() -> float:
    """Resident memory of this process now (Linux), MiB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_growth_mib(items: Iterable[object], keep: bool = False) -> float:
    """Largest growth of resident memory (MiB) while consuming ``items``, sampled per item.

    RSS, not tracemalloc: PyAV's frames live in FFmpeg buffers that tracemalloc never sees.
    """
    gc.collect()
    base = peak = rss_mib()
    kept = []
    for item in items:
        if keep:
            kept.append(item)
        peak = max(peak, rss_mib())
        del item
    del kept
    gc.collect()
    return peak - base


def write_long_wav(path: Path, minutes: float, rate: int = 44_100) -> None:
    rng = np.random.default_rng(0)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        for _ in range(int(minutes * 60)):  # one second at a time
            block = rng.integers(-8000, 8000, (rate, 2), dtype=np.int16)
            handle.writeframes(block.tobytes())


def write_long_video(path: Path, source: Path, repeats: int) -> int:
    frames = [f.image for f in iter_frames(source)]
    height, width = frames[0].shape[:2]
    time_base = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = stream.time_base = time_base
        for i in range(repeats * len(frames)):
            frame = av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")
            frame.pts, frame.time_base = i * 40, time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return repeats * len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the long WAV")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/media.json")
    args = parser.parse_args()

    clips = [FIXTURES / "1001_DFA_HAP_XX.flv", FIXTURES / "sbwe5n.mpg"]
    long_clip = SHARED / "portraits" / "WolfgangLanger_Pexels.mp4"
    if long_clip.exists():
        clips.append(long_clip)
    results: dict[str, object] = {"video": [], "audio": []}
    print(f"{'clip':32s} {'size':>9s} {'frames':>6s} {'decode fps':>10s} {'audio RTF':>9s}")
    for clip in clips:
        info = probe(clip)
        n_frames = sum(1 for _ in iter_frames(clip))
        seconds = best_of(lambda c=clip: sum(1 for _ in iter_frames(c)))
        audio_s = best_of(lambda c=clip: read_audio(c))
        duration = read_audio(clip).duration_s
        size = f"{info.width}x{info.height}"
        fps, rtf = n_frames / seconds, audio_s / duration
        print(f"{clip.name:32s} {size:>9s} {n_frames:6d} {fps:10.0f} {rtf:9.4f}")
        results["video"].append({"clip": clip.name, "size": size, "frames": n_frames, "fps": fps})
        results["audio"].append({"clip": clip.name, "seconds": duration, "rtf": rtf})

    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "long.wav"
        write_long_wav(wav, args.minutes)
        streamed = peak_rss_growth_mib(iter_audio_chunks(wav))
        whole = peak_rss_growth_mib(read_audio(wav) for _ in range(1))
        video = Path(folder) / "long.mkv"
        n_frames = write_long_video(video, FIXTURES / "1001_DFA_HAP_XX.flv", repeats=10)
        dropped = peak_rss_growth_mib(iter_frames(video))
        kept = peak_rss_growth_mib(iter_frames(video), keep=True)
    print(f"\n{args.minutes:g} min stereo 44.1 kHz WAV -> 16 kHz mono, peak RSS growth MiB:")
    print(f"  iter_audio_chunks (10 s chunks, dropped) {streamed:8.1f}")
    print(f"  read_audio (whole track)                 {whole:8.1f}")
    print(f"{n_frames} frames of 480x360, peak RSS growth MiB:")
    print(f"  iter_frames, frames dropped              {dropped:8.1f}")
    print(f"  list(iter_frames(...))                   {kept:8.1f}")
    results["memory_mib"] = {
        "audio_minutes": args.minutes,
        "iter_audio_chunks": streamed,
        "read_audio": whole,
        "video_frames": n_frames,
        "iter_frames_dropped": dropped,
        "iter_frames_kept": kept,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(args.out)  # atomic
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
