"""Speed and peak memory of ``wildaffect preprocess`` (not a test: prints a table, writes JSON).

    python benchmarks/preprocess.py --data ../shared/data [--clips 3] \
        [--out benchmarks/results/preprocess.json]

Per clip group of ``media/`` (CREMA-D .flv, GRID .mpg, WolfgangLanger .mp4), each case in its
own subprocess so that its peak resident memory (``ru_maxrss``) is its own:

- decode: ``iter_frames`` only (PyAV decode + RGB conversion), frames dropped;
- face: landmarker + target tracking + 478->68 + alignment on frames decoded beforehand
  (this case holds the clip's decoded frames, so its memory is not the pipeline's);
- total: :func:`wildaffect.preprocess.preprocess_file` (decode, face, JPEG crops, audio,
  record writing), one fresh landmarker per clip as in a batch;
- baseline: imports + one landmarker on one frame, the floor every case pays.

Then memory against length: a GRID clip concatenated 10 times with PyAV (MPEG-4 video + PCM
audio in .mkv) against the same clip re-encoded once, both through ``preprocess_file``.
Frames per second are wall-clock, best of one run (the machine is shared: expect noise).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
CASES = ("decode", "face", "total")
LONG_REPEATS = 10


# --------------------------------------------------------------------------------------------
# Child side: one case, one JSON line on stdout.


def _warm_up() -> None:
    """Import and load what every case needs, so timings start at the first frame."""
    import cv2  # noqa: F401
    import mediapipe  # noqa: F401

    from wildaffect.face.model_file import resolve_face_model

    resolve_face_model()  # hashes the model once per process


def run_case(case: str, paths: list[Path]) -> dict:
    from wildaffect.io.media import iter_frames

    _warm_up()
    frames = 0
    seconds = 0.0
    stages = {"decode_s": 0.0, "face_s": 0.0, "write_s": 0.0, "audio_s": 0.0}
    if case == "decode":
        start = time.perf_counter()
        for path in paths:
            for _ in iter_frames(path):
                frames += 1
        seconds = time.perf_counter() - start
    elif case == "face":
        from wildaffect.face.align import align_face
        from wildaffect.face.landmarker import FaceLandmarker
        from wildaffect.face.mapping import to_ibug68
        from wildaffect.face.tracking import FaceTracker

        for path in paths:
            decoded = [(f.time_s, f.image) for f in iter_frames(path)]  # (H, W, 3) uint8 each
            with FaceLandmarker(mode="video") as landmarker:
                tracker = FaceTracker()
                start = time.perf_counter()
                for time_s, image in decoded:
                    face = tracker.update(landmarker.detect(image, timestamp_ms=time_s * 1000))
                    if face is not None:
                        align_face(image, to_ibug68(face.landmarks_px(image.shape[:2])))
                seconds += time.perf_counter() - start
            frames += len(decoded)
    elif case in ("total", "long"):
        from wildaffect.data.cache import FeatureCache
        from wildaffect.preprocess import preprocess_file

        with tempfile.TemporaryDirectory() as folder:
            cache = FeatureCache(folder)
            start = time.perf_counter()
            for path in paths:
                result = preprocess_file(path, cache)
                frames += result.n_frames or 0
                for key in stages:
                    stages[key] += cache.read_meta(result.video)["timings"][key]
            seconds = time.perf_counter() - start
    elif case == "baseline":
        from wildaffect.face.landmarker import FaceLandmarker

        image = next(iter_frames(paths[0])).image
        with FaceLandmarker(mode="video") as landmarker:
            landmarker.detect(image, timestamp_ms=0.0)
    else:
        raise SystemExit(f"unknown case {case!r}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"frames": frames, "seconds": seconds, "peak_mib": peak_mib, "stages": stages}


# --------------------------------------------------------------------------------------------
# Parent side.


def child(case: str, paths: list[Path]) -> dict:
    """Run one case in a fresh interpreter; its own peak RSS comes back in the JSON."""
    command = [sys.executable, __file__, "--case", case, *map(str, paths)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result["children_max_mib"] = children  # max over all children so far (cross-check)
    return result


def concatenate(source: Path, repeats: int, out: Path) -> Path:
    """``source`` played ``repeats`` times, re-encoded (MPEG-4 video, PCM audio) into ``out``."""
    import av
    import numpy as np

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = Fraction(stream.average_rate).limit_denominator(1001)
        images = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    with av.open(str(source)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
        pieces = [
            out_frame.to_ndarray()[0]
            for frame in container.decode(audio=0)
            for out_frame in resampler.resample(frame)
        ]
        pieces += [f.to_ndarray()[0] for f in resampler.resample(None)]
    audio = np.concatenate(pieces)  # (N,) int16 at 16 kHz
    height, width = images[0].shape[:2]
    with av.open(str(out), "w") as container:
        video_out = container.add_stream("mpeg4", rate=fps)
        video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
        video_out.bit_rate = 2_000_000
        audio_out = container.add_stream("pcm_s16le", rate=16_000, layout="mono")
        index = sample = 0
        for _ in range(repeats):
            for image in images:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                container.mux(video_out.encode(frame))
                index += 1
            for offset in range(0, len(audio), 1024):
                block = audio[offset : offset + 1024]
                frame = av.AudioFrame.from_ndarray(block[None], format="s16", layout="mono")
                frame.sample_rate, frame.pts = 16_000, sample
                container.mux(audio_out.encode(frame))
                sample += len(block)
        container.mux(video_out.encode(None))
        container.mux(audio_out.encode(None))
    return out


def length_ratios(length: dict, floor_mib: float) -> dict[str, float]:
    """Peak memory of the x10 run over the x1 run, and the same above the baseline's floor."""
    one, ten = length["x1"]["peak_mib"], length[f"x{LONG_REPEATS}"]["peak_mib"]
    return {"peak_ratio": ten / one,
            "growth_ratio_above_baseline": (ten - floor_mib) / max(one - floor_mib, 1e-9)}


def clip_groups(data: Path, n_clips: int) -> dict[str, list[Path]]:
    media = data / "media"
    groups = {
        "CREMA-D (flv 480x360)": sorted((media / "crema-d").glob("*.flv"))[:n_clips],
        "GRID (mpg 360x288)": sorted((media / "grid").glob("*.mpg"))[:n_clips],
        "WolfgangLanger (mp4 640x360)": [media / "portraits" / "WolfgangLanger_Pexels.mp4"],
    }
    missing = [p for paths in groups.values() for p in paths if not p.is_file()]
    if missing or not all(groups.values()):
        raise SystemExit(f"missing clips under {media}: {missing or 'an empty group'}")
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clips", type=int, default=3, help="clips per group (CREMA-D, GRID)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/preprocess.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.paths)))
        return

    groups = clip_groups(args.data, args.clips)
    results: dict = {"groups": {}, "length": {}, "cpu_note": "2 shared cores, under contention"}
    baseline = child("baseline", [next(iter(groups.values()))[0]])
    results["baseline_peak_mib"] = baseline["peak_mib"]
    print(f"baseline (imports + one landmarker): {baseline['peak_mib']:.0f} MiB", flush=True)
    for group, paths in groups.items():
        results["groups"][group] = {"clips": [p.name for p in paths]}
        for case in CASES:
            result = child(case, paths)
            result["fps"] = result["frames"] / result["seconds"]
            results["groups"][group][case] = result
            print(f"{group} {case}: {result['frames']} frames, {result['fps']:.1f} fps, "
                  f"peak {result['peak_mib']:.0f} MiB", flush=True)  # fmt: skip

    grid_clip = groups["GRID (mpg 360x288)"][0]
    with tempfile.TemporaryDirectory() as folder:
        for repeats in (1, LONG_REPEATS):
            path = concatenate(grid_clip, repeats, Path(folder) / f"{grid_clip.stem}_x{repeats}.mkv")
            result = child("long", [path])
            result["fps"] = result["frames"] / result["seconds"]
            results["length"][f"x{repeats}"] = result
            print(f"{grid_clip.stem} x{repeats}: {result['frames']} frames, "
                  f"peak {result['peak_mib']:.0f} MiB", flush=True)  # fmt: skip
    results["length"].update(length_ratios(results["length"], baseline["peak_mib"]))

    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


def print_table(results: dict) -> None:
    print("\n| clips | frames | decode fps | face fps | total fps | total: decode / face / "
          "crops+write / audio s | peak MiB decode / face / total |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|---|")
    for group, row in results["groups"].items():
        total = row["total"]
        stages = " / ".join(f"{total['stages'][k]:.2f}" for k in
                            ("decode_s", "face_s", "write_s", "audio_s"))  # fmt: skip
        peaks = " / ".join(f"{row[c]['peak_mib']:.0f}" for c in CASES)
        print(f"| {group}, {len(row['clips'])} clip(s) | {total['frames']} | "
              f"{row['decode']['fps']:.0f} | {row['face']['fps']:.1f} | {total['fps']:.1f} | "
              f"{stages} | {peaks} |")  # fmt: skip
    length = results["length"]
    print("\n| input | frames | total fps | peak MiB |\n|---|---:|---:|---:|")
    print(f"| baseline (imports + landmarker) | - | - | {results['baseline_peak_mib']:.0f} |")
    for key in ("x1", f"x{LONG_REPEATS}"):
        row = length[key]
        print(f"| GRID clip {key} | {row['frames']} | {row['fps']:.1f} | {row['peak_mib']:.0f} |")
    print(f"\npeak memory x{LONG_REPEATS} / x1: {length['peak_ratio']:.3f}; "
          f"growth above the baseline: {length['growth_ratio_above_baseline']:.2f}x")


if __name__ == "__main__":
    main()
