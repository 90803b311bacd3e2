"""CPU cost of the foundation encoders at their REAL sizes, random weights (not a test).

    python benchmarks/encoders.py [--quick] [--only dinov2-small,wavlm-base] [--repeat 3]
                                  [--threads 2] [--audio-seconds 10] [--out PATH]

- visual: ms per 224x224 frame, batch 8, forward only, fp32 vs ``torch.autocast("cpu",
  torch.bfloat16)``: DINOv2 S/B/L/g, ViT-B/16, ConvNeXt-B, CLIP ViT-B/16;
- audio: ms per second of 16 kHz audio (one clip of ``--audio-seconds``): WavLM Base/Large,
  Whisper base (its encoder always processes a 30 s window, so short clips pay for 30 s).

Architectures come from the registry's real configs (``pretrained=False``): no download.
``--quick`` keeps the small ones (dinov2-small, dinov2-base, vit-base, wavlm-base).
Best of ``--repeat`` runs after one warm-up. Prints a table, writes JSON atomically.
Timings on a shared CPU are noisy: compare rows from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from wildaffect.encoders.registry import create_encoder

VISUAL = [
    "dinov2-small",
    "dinov2-base",
    "dinov2-large",
    "dinov2-giant",
    "vit-base",
    "convnext-base",
    "clip-vit-b16",
]
AUDIO = ["wavlm-base", "wavlm-large", "whisper-base"]
QUICK = {"dinov2-small", "dinov2-base", "vit-base", "wavlm-base"}
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "encoders.json"
PRECISIONS = ("fp32", "bf16")


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` runs after one warm-up, in seconds."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(fn: Callable[[], object], precision: str) -> Callable[[], object]:
    def call() -> object:
        with (
            torch.no_grad(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"),
        ):
            return fn()

    return call


def bench_visual(name: str, batch: int, repeat: int) -> list[dict]:
    torch.manual_seed(0)
    encoder = create_encoder(name, pretrained=False).eval()
    n_params = sum(p.numel() for p in encoder.parameters())
    pixels = torch.randn(batch, 3, 224, 224)
    rows = []
    for precision in PRECISIONS:
        seconds = best_of(run(lambda: encoder(pixels), precision), repeat)
        rows.append(
            {
                "encoder": name,
                "precision": precision,
                "value": 1000 * seconds / batch,
                "unit": "ms/frame",
                "params_m": n_params / 1e6,
                "input": f"batch {batch} x 224x224",
            }
        )
    return rows


def bench_audio(name: str, audio_seconds: float, repeat: int) -> list[dict]:
    torch.manual_seed(0)
    encoder = create_encoder(name, pretrained=False).eval()
    n_params = sum(p.numel() for p in encoder.parameters())
    wave = 0.1 * torch.randn(1, int(audio_seconds * 16_000))
    rows = []
    for precision in PRECISIONS:
        seconds = best_of(run(lambda: encoder(wave), precision), repeat)
        rows.append(
            {
                "encoder": name,
                "precision": precision,
                "value": 1000 * seconds / audio_seconds,
                "unit": "ms/s audio",
                "params_m": n_params / 1e6,
                "input": f"1 x {audio_seconds:g} s",
            }
        )
    return rows


def matmul_gflops(precision: str, repeat: int, size: int = 1024) -> float:
    """A CPU-share probe: the same matmul timed beside the encoders says how contended the run was."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = best_of(run(lambda: a @ b, precision), max(repeat, 5))
    return 2 * size**3 / seconds / 1e9


def write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the small encoders")
    parser.add_argument(
        "--only", default="", help="comma-separated encoder names (overrides --quick)"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--audio-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    names = VISUAL + AUDIO
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
    elif args.quick:
        names = [n for n in names if n in QUICK]
    probe = {p: matmul_gflops(p, args.repeat) for p in PRECISIONS}
    print(
        f"matmul 1024^3 probe: fp32 {probe['fp32']:.0f} GFLOP/s, bf16 {probe['bf16']:.0f} GFLOP/s",
        flush=True,
    )
    # Rows of encoders not measured in this run are kept from the previous file, so partial
    # runs (--quick, --only) add up; the file is rewritten after every encoder.
    previous = json.loads(args.out.read_text()).get("rows", []) if args.out.is_file() else []
    rows: list[dict] = [r for r in previous if r["encoder"] not in names]
    for name in names:
        started = time.perf_counter()
        if name in AUDIO or name.startswith(("wavlm", "whisper")):
            new = bench_audio(name, args.audio_seconds, args.repeat)
        else:
            new = bench_visual(name, args.batch, args.repeat)
        for row in new:  # each row keeps its own contention context: files merge across runs
            row["load_1min"] = os.getloadavg()[0]
            row["run_matmul_gflops"] = probe
        rows += new
        for row in new:
            print(
                f"{row['encoder']:<14} {row['precision']:<5} {row['value']:9.1f} {row['unit']:<11}"
                f" {row['params_m']:7.1f}M  ({row['input']})",
                flush=True,
            )
        print(f"  [{name}: {time.perf_counter() - started:.0f} s incl. build]", flush=True)
        write_json_atomic(args.out, payload(args, probe, rows))
    final = payload(args, probe, rows)
    final["matmul_gflops_after"] = {p: matmul_gflops(p, args.repeat) for p in PRECISIONS}
    write_json_atomic(args.out, final)
    print(f"wrote {args.out}")


def payload(args: argparse.Namespace, probe: dict[str, float], rows: list[dict]) -> dict:
    return {
        "torch": torch.__version__,
        "threads": args.threads,
        "repeat": args.repeat,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "matmul_gflops_before": probe,
        "note": "random weights at the real sizes; shared CPU, timings noisy",
        "rows": rows,
    }


if __name__ == "__main__":
    main()
