"""Speed and peak memory of ``wildaffect predict``, end to end (not a test: prints a table).

    python benchmarks/predict.py --data ../shared/data [--clips 3] [--model PATH] \
        [--threads 1] [--chunk-frames 64] [--out benchmarks/results/predict.json]

Per clip group of ``media/`` (CREMA-D .flv, GRID .mpg, the WolfgangLanger portrait .mp4 and
CREMA-D .mp3 audio-only), each case in its own subprocess so that its peak resident memory
(``ru_maxrss``) is its own (JSON goes to ``--out``):

- face: :func:`wildaffect.face.pipeline.iter_face_frames` alone (decode, landmarker,
  tracking, 478->68, alignment), the front-end every prediction pays (no face stage for audio);
- e2e: :meth:`Predictor.iter_chunks` over every clip of the group, rows dropped. The split
  (decode / face / visual encoder / audio features / model / rest) comes from timers wrapped
  around the predictor's pieces in the child process (exclusive time: a timed call inside
  another counts once); "rest" is rows, derived outputs and chunking;
- baseline: imports + the predictor + one prediction on one image, the floor every case pays.

Then memory against length: a GRID clip concatenated 10 times (``preprocess.concatenate``)
against the same clip re-encoded once, both end to end. The model is ``--model``, else the
bundled default (the audio-only case runs only for a model that takes audio). Frames per second
are wall-clock over one run after a warm-up on one image (the machine is shared: expect
noise); for audio-only input a "frame" is one 20 ms row.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from wildaffect.predict import DEFAULT_CHUNK_FRAMES

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
LONG_REPEATS = 10
AUDIO_GROUP = "CREMA-D (mp3 audio-only)"
#: The one-image input every child warms up on (landmarker, encoders, first forward).
WARM_UP_IMAGE = Path("media") / "portraits" / "single_face.jpg"
STAGES = ("decode_s", "face_s", "visual_s", "audio_s", "model_s", "rest_s")
REAL_TIME_FPS = 30.0


# --------------------------------------------------------------------------------------------
# Child side: one case, one JSON line on stdout.


class StageClock:
    """Exclusive wall time of wrapped callables, per stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._nested: list[float] = []  # time spent in timed calls inside each open call

    def wrap(self, owner: object, name: str, stage: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            self._nested.append(0.0)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[stage] += elapsed - self._nested.pop()
                if self._nested:
                    self._nested[-1] += elapsed

        setattr(owner, name, timed)


def _instrument(clock: StageClock, timings: dict[str, float]) -> None:
    """Time the predictor's stages; ``timings`` gets the face front-end's decode_s / face_s."""
    import wildaffect.predict.predictor as predictor_module
    from wildaffect.predict.audio import AudioFeatureStream

    chunks = predictor_module.iter_frame_chunks

    def timed_chunks(path, chunk_frames, face_model=None):
        return chunks(path, chunk_frames, face_model, timings)

    predictor_module.iter_frame_chunks = timed_chunks
    clock.wrap(predictor_module.Predictor, "_visual_features", "visual_s")
    clock.wrap(predictor_module.Predictor, "_forward", "model_s")
    clock.wrap(AudioFeatureStream, "on_frames", "audio_s")  # video: pooled per frame
    clock.wrap(AudioFeatureStream, "features", "audio_s")  # audio-only: feature frames


def _duration_s(times: list[float]) -> float:
    """Seconds of media covered by rows at ``times`` (the last row lasts the median step)."""
    import numpy as np

    if len(times) < 2:
        return 0.0
    t = np.asarray(times)
    return float(t[-1] - t[0] + np.median(np.diff(t)))


def run_case(case: str, paths: list[Path], model: str, chunk_frames: int, threads: int,
             warm_up: Path) -> dict:  # fmt: skip
    import torch

    from wildaffect.face.model_file import resolve_face_model

    torch.set_num_threads(threads)
    resolve_face_model()  # hashes the model once per process
    frames, seconds, media_s = 0, 0.0, 0.0
    timings: dict[str, float] = {}
    stages: dict[str, float] = {}
    if case == "face":
        from wildaffect.face.pipeline import iter_face_frames

        for _ in iter_face_frames(warm_up):
            pass
        start = time.perf_counter()
        for path in paths:
            times = [frame.time_s for frame in iter_face_frames(path, timings=timings)]
            frames += len(times)
            media_s += _duration_s(times)
        seconds = time.perf_counter() - start
        stages = dict(timings)
    elif case in ("e2e", "baseline"):
        from wildaffect.predict.predictor import Predictor

        predictor = Predictor(model, chunk_frames=chunk_frames)
        predictor.predict(warm_up)
        if case == "e2e":
            clock = StageClock()
            _instrument(clock, timings)
            start = time.perf_counter()
            for path in paths:
                times: list[float] = []
                for chunk in predictor.iter_chunks(path):
                    times += chunk.rows["time_s"].tolist()
                frames += len(times)
                media_s += _duration_s(times)
            seconds = time.perf_counter() - start
            stages = {**dict.fromkeys(STAGES, 0.0), **timings, **clock.seconds}
            stages["rest_s"] = seconds - sum(v for k, v in stages.items() if k != "rest_s")
    else:
        raise SystemExit(f"unknown case {case!r}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"frames": frames, "seconds": seconds, "media_s": media_s, "peak_mib": peak_mib,
            "stages": stages}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Parent side.


def child(case: str, paths: list[Path], args: argparse.Namespace, model: Path) -> dict:
    """Run one case in a fresh interpreter; its own peak RSS comes back in the JSON."""
    command = [sys.executable, __file__, "--case", case, "--model", str(model),
               "--threads", str(args.threads), "--chunk-frames", str(args.chunk_frames),
               "--data", str(args.data), *map(str, paths)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"case {case} on {[p.name for p in paths]} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["seconds"] > 0:
        result["fps"] = result["frames"] / result["seconds"]
        result["x_real_time"] = result["media_s"] / result["seconds"]
    return result


def resolve_model(model: Path | None) -> tuple[Path, str]:
    """-> (model path, how it was chosen): ``--model``, else the bundled default."""
    from wildaffect.models.package import bundled_model_dir

    if model is not None:
        return model, f"--model {model}"
    return bundled_model_dir(), "the bundled default model"


def groups_of(data: Path, n_clips: int) -> dict[str, list[Path]]:
    from preprocess import clip_groups  # benchmarks/preprocess.py, beside this file

    groups = clip_groups(data, n_clips)
    audio = sorted((data / "media" / "crema-d").glob("*.mp3"))[:n_clips]
    if not audio:
        raise SystemExit(f"no CREMA-D .mp3 clips under {data / 'media' / 'crema-d'}")
    groups[AUDIO_GROUP] = audio
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clips", type=int, default=3, help="clips per group (CREMA-D, GRID)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model package or .ckpt (default: the bundled default model)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each case")
    parser.add_argument("--chunk-frames", type=int, default=DEFAULT_CHUNK_FRAMES)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/predict.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        result = run_case(args.case, args.paths, str(args.model), args.chunk_frames,
                          args.threads, args.data / WARM_UP_IMAGE)  # fmt: skip
        print(json.dumps(result))
        return

    from preprocess import concatenate, length_ratios  # benchmarks/preprocess.py, beside this

    groups = groups_of(args.data, args.clips)
    if not (args.data / WARM_UP_IMAGE).is_file():
        raise SystemExit(f"missing warm-up image {args.data / WARM_UP_IMAGE}")
    with tempfile.TemporaryDirectory() as folder:
        model, model_note = resolve_model(args.model)
        print(f"model: {model_note}", flush=True)
        from wildaffect.models.package import load_any

        if not load_any(model)[0].config.has_audio:
            groups.pop(AUDIO_GROUP)
            print("the model takes no audio: the audio-only case is skipped", flush=True)
        results: dict = {
            "model": model_note, "threads": args.threads, "chunk_frames": args.chunk_frames,
            "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
            "groups": {}, "length": {},
        }  # fmt: skip
        baseline = child("baseline", [], args, model)
        results["baseline_peak_mib"] = baseline["peak_mib"]
        print(f"baseline (imports + predictor + one image): {baseline['peak_mib']:.0f} MiB",
              flush=True)  # fmt: skip
        for group, paths in groups.items():
            row: dict = {"clips": [p.name for p in paths]}
            cases = ("e2e",) if group == AUDIO_GROUP else ("face", "e2e")
            for case in cases:
                row[case] = child(case, paths, args, model)
                print(f"{group} {case}: {row[case]['frames']} frames, "
                      f"{row[case]['fps']:.1f} fps, peak {row[case]['peak_mib']:.0f} MiB",
                      flush=True)  # fmt: skip
            results["groups"][group] = row

        grid_clip = groups["GRID (mpg 360x288)"][0]
        for repeats in (1, LONG_REPEATS):
            path = concatenate(
                grid_clip, repeats, Path(folder) / f"{grid_clip.stem}_x{repeats}.mkv"
            )
            results["length"][f"x{repeats}"] = result = child("e2e", [path], args, model)
            print(f"{grid_clip.stem} x{repeats}: {result['frames']} frames, "
                  f"peak {result['peak_mib']:.0f} MiB", flush=True)  # fmt: skip
    results["load_average_after"] = os.getloadavg()
    results["length"]["clip"] = grid_clip.name
    results["length"].update(length_ratios(results["length"], baseline["peak_mib"]))

    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


def _fmt(row: dict | None, key: str, spec: str) -> str:
    return "-" if row is None or key not in row else format(row[key], spec)


def print_table(results: dict) -> None:
    load = ", ".join(f"{x:.2f}" for x in results["load_average"])
    print(f"\nmodel: {results['model']}\ntorch threads {results['threads']}, chunk "
          f"{results['chunk_frames']} frames, load average before: {load} "
          f"({results['cpu_count']} CPUs)")  # fmt: skip
    print(
        "\n| case | frames | face-stage fps | end-to-end fps | x real time | "
        "e2e split s: decode / face / visual / audio / model / rest | peak MiB face / e2e |"
    )
    print("|---|---:|---:|---:|---:|---|---|")
    for group, row in results["groups"].items():
        e2e, face = row["e2e"], row.get("face")
        split = " / ".join(f"{e2e['stages'][k]:.2f}" for k in STAGES)
        peaks = f"{_fmt(face, 'peak_mib', '.0f')} / {e2e['peak_mib']:.0f}"
        print(f"| {group}, {len(row['clips'])} clip(s) | {e2e['frames']} | "
              f"{_fmt(face, 'fps', '.1f')} | {e2e['fps']:.1f} | {e2e['x_real_time']:.2f} | "
              f"{split} | {peaks} |")  # fmt: skip
    video = [row["e2e"]["fps"] for g, row in results["groups"].items() if g != AUDIO_GROUP]
    print(
        f"\nslowest video group end to end: {min(video):.1f} fps "
        f"(target {REAL_TIME_FPS:.0f}: {'met' if min(video) >= REAL_TIME_FPS else 'NOT met'})"
    )
    length = results["length"]
    print("\n| input | frames | e2e fps | peak MiB |\n|---|---:|---:|---:|")
    print(f"| baseline (imports + predictor + one image) | - | - | "
          f"{results['baseline_peak_mib']:.0f} |")  # fmt: skip
    for key in ("x1", f"x{LONG_REPEATS}"):
        row = length[key]
        print(f"| GRID {length['clip']} {key} | {row['frames']} | {row['fps']:.1f} | "
              f"{row['peak_mib']:.0f} |")  # fmt: skip
    ratio = length["peak_ratio"]
    print(
        f"\npeak memory x{LONG_REPEATS} / x1: {ratio:.3f} "
        f"(target <= 1.20: {'met' if ratio <= 1.2 else 'NOT met'}); "
        f"growth above the baseline: {length['growth_ratio_above_baseline']:.2f}x"
    )
    if length["x1"]["frames"] < results["chunk_frames"]:
        print(f"note: the x1 clip ({length['x1']['frames']} frames) is shorter than one chunk "
              f"({results['chunk_frames']} frames): x{LONG_REPEATS} holds full chunks, x1 never "
              "does; use --chunk-frames below the clip's length to see growth with length "
              "alone")  # fmt: skip


if __name__ == "__main__":
    main()
