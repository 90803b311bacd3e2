"""Speed of ``wildaffect extract`` per record (not a test: prints a table, writes JSON).

    python benchmarks/extract.py [--threads 2] [--out benchmarks/results/extract.json]

The CREMA-D fixture clip (56 frames, 1.9 s of speech) is preprocessed once (npy crops), then
extracted with each configuration, ``--force`` so every run computes everything:

- the offline default (mediapipe-regions + logmel-egemaps, numpy/OpenCV/openSMILE);
- DINOv2-S and WavLM-Base at their REAL sizes with random weights (saved to a temporary
  model folder, since no pretrained weights can be downloaded here), fp32 and bf16 autocast.

Wall-clock seconds of ``extract_batch`` over the one record (encoders built beforehand, so
model loading is not counted), best of ``--repeats`` runs; the machine is shared, expect noise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "tests" / "fixtures" / "media" / "1001_DFA_HAP_XX.flv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "extract.json"
    )
    args = parser.parse_args()

    import torch

    from wildaffect.encoders.registry import create_encoder
    from wildaffect.extract import FeatureEncoder, extract_batch, load_encoder
    from wildaffect.preprocess import preprocess_batch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    try:
        report = preprocess_batch([CLIP], work / "cache", crops="npy")
        n_frames = report.results[0].n_frames
        audio_s = report.results[0].audio_s
        folders = {}
        for name in ("dinov2-small", "wavlm-base"):
            folders[name] = work / name
            create_encoder(name, pretrained=False).save_pretrained(folders[name])
        configs: list[tuple[str, FeatureEncoder | None, FeatureEncoder | None, str]] = [
            ("offline default", load_encoder("mediapipe-regions", "visual"), None, "fp32"),
            ("offline default", None, load_encoder("logmel-egemaps", "audio"), "fp32"),
        ]
        dino = load_encoder("dinov2-small", "visual", folders["dinov2-small"])
        wavlm = load_encoder("wavlm-base", "audio", folders["wavlm-base"])
        for dtype in ("fp32", "bf16"):
            configs += [
                ("real size, random", dino, None, dtype),
                ("real size, random", None, wavlm, dtype),
            ]
        rows = []
        for label, visual, audio, dtype in configs:
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                done = extract_batch(
                    work / "cache", visual=visual, audio=audio, dtype=dtype, device="cpu",
                    force=True,
                )  # fmt: skip
                best = min(best, time.perf_counter() - start)
                assert done.all_ok, done.failures
            encoder = (visual or audio).name
            rows.append({
                "encoder": encoder, "weights": label, "dtype": dtype, "seconds": round(best, 3),
                "ms_per_frame": round(1000 * best / n_frames, 2),
                "x_realtime": round(audio_s / best, 2),
            })  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"one record: {n_frames} frames, {audio_s:.2f} s audio; {args.threads} torch threads")
    print(f"{'encoder':<20}{'weights':<20}{'dtype':<6}{'s':>8}{'ms/frame':>10}{'x realtime':>12}")
    for r in rows:
        print(f"{r['encoder']:<20}{r['weights']:<20}{r['dtype']:<6}{r['seconds']:>8.3f}"
              f"{r['ms_per_frame']:>10.2f}{r['x_realtime']:>12.2f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"frames": n_frames, "audio_s": audio_s, "threads": args.threads, "rows": rows,
              "note": "shared CPU (other jobs running): timings are noisy upper bounds"}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
