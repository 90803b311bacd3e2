"""Per-frame cost of the face front-end (not a test: prints a table, writes JSON).

    python benchmarks/bench_face_pipeline.py [--frames 56] [--out PATH]

On real clips from ../shared/data: MediaPipe FaceLandmarker in VIDEO and IMAGE mode, the
square-tile search on the five-person photo, 478 -> 68 mapping, eye alignment + 224 crop
(cv2.warpAffine) and the whole ``track_faces`` loop. Wall times, best of 3, single process.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from wildaffect.face.align import align_face
from wildaffect.face.landmarker import FaceLandmarker
from wildaffect.face.mapping import to_ibug68
from wildaffect.face.tracking import track_faces

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = Path(os.environ.get("WILDAFFECT_SHARED_DATA", DEFAULT_DATA))
Row = tuple[str, str, float, str]  # input, what, value, unit


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def decode(path: Path, n_frames: int) -> list[tuple[float, np.ndarray]]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append((float(frame.time), frame.to_ndarray(format="rgb24")))
            if len(frames) == n_frames:
                break
    return frames


def bench_clip(name: str, frames: list[tuple[float, np.ndarray]]) -> list[Row]:
    n = len(frames)

    def video_mode() -> None:
        with FaceLandmarker(mode="video", max_faces=1) as landmarker:
            for t, image in frames:
                landmarker.detect(image, t * 1000)

    def image_mode() -> None:
        with FaceLandmarker(mode="image", max_faces=1) as landmarker:
            for _, image in frames:
                landmarker.detect(image)

    track = track_faces(frames)

    def align_all() -> None:
        for (_, image), points in zip(frames, track.landmarks68):
            align_face(image, points)

    per_frame = "ms/frame"
    return [
        (name, "landmarker VIDEO mode (incl. 1 model load)", best_of(video_mode) / n, per_frame),
        (name, "landmarker IMAGE mode (incl. 1 model load)", best_of(image_mode) / n, per_frame),
        (name, "track_faces (VIDEO mode, tracking, 68 map)",
         best_of(lambda: track_faces(frames)) / n, per_frame),
        (name, "to_ibug68 on the whole track",
         best_of(lambda: to_ibug68(track.landmarks478)) / n, per_frame),
        (name, "align_face 224 crop", best_of(align_all) / n, per_frame),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=56)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/face_pipeline.json"))
    args = parser.parse_args()

    rows: list[Row] = []
    for name, clip in (("CREMA-D 480x360", "media/crema-d/1001_DFA_HAP_XX.flv"),
                       ("GRID 360x288", "media/grid/bbaf2n.mpg")):
        rows += bench_clip(name, decode(DATA / clip, args.frames))

    photo = np.asarray(Image.open(DATA / "media/portraits/multi_face.jpg").convert("RGB"))
    for tiles in (False, True):
        with FaceLandmarker(mode="image", max_faces=8, square_tiles=tiles) as landmarker:
            found = len(landmarker.detect(photo))
            cost = best_of(lambda: landmarker.detect(photo))
        what = f"IMAGE mode, square_tiles={tiles} ({found} faces)"
        rows.append(("multi_face.jpg 1000x667", what, cost, "ms/image"))

    width = max(len(r[1]) for r in rows)
    print(f"{'input':<24} {'what':<{width}} {'time':>9}")
    for source, what, value, unit in rows:
        print(f"{source:<24} {what:<{width}} {value:>7.2f} {unit}")
    payload = {
        "cpu_count": os.cpu_count(),
        "rows": [{"input": s, "what": w, "value": v, "unit": u} for s, w, v, u in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, suffix=".tmp") as f:
        json.dump(payload, f, indent=2)
    os.replace(f.name, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
