"""Training throughput (frames/s) of the paper-full head on cached-feature-shaped tensors.

One optimiser step = forward + backward + AdamW step (+ gradient clipping as in training) of
``abaw-full`` at its real widths (DINOv2-L patch grid 16x16x1024, WavLM-L 1024, d_model 256)
on random tensors of clips of 256 frames, fp32 vs bf16 autocast (CPU, AMX where present).
The encoders are not run: this is the cost of training the head on cached features.

    .venv/bin/python benchmarks/train_throughput.py [--batch 2 4] [--steps 3] [--threads 2]

Prints a table and writes benchmarks/results/train_throughput.json. Timings on a shared
machine vary; report them with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from wildaffect.models.registry import create_model
from wildaffect.train.optim import build_optimizer

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"


def make_batch(batch: int, frames: int, grid: int, d_visual: int, d_audio: int) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "visual": torch.randn(batch, frames, grid, grid, d_visual, generator=g),
        "landmarks": 0.2 + 0.6 * torch.rand(batch, frames, 68, 2, generator=g),
        "face_mask": torch.ones(batch, frames, dtype=torch.bool),
        "valid_mask": torch.ones(batch, frames, dtype=torch.bool),
        "audio": torch.randn(batch, frames, d_audio, generator=g),
        "audio_mask": torch.ones(batch, frames, dtype=torch.bool),
    }


def step_time(model, optimizer, batch: dict, precision: str, steps: int, warmup: int) -> list[float]:
    from wildaffect.labels import Task

    target = (torch.rand(batch["visual"].shape[:2] + (12,)) > 0.7).float()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            logits = model(batch).outputs[Task.AU]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("abaw-full")  # real widths: d_visual 1024, d_audio 1024, d_model 256
    cfg = model.config
    grid = 16  # DINOv2 ViT-L/14 at 224: 16x16 patches
    model.train()
    optimizer = build_optimizer(model, 3e-4, 3e-5, 0.05)
    n_params = sum(p.numel() for p in model.parameters())
    rows = []
    for batch_size in args.batch:
        batch = make_batch(batch_size, args.frames, grid, cfg.d_visual, cfg.d_audio)
        for precision in ("fp32", "bf16"):
            times = step_time(model, optimizer, batch, precision, args.steps, args.warmup)
            median = sorted(times)[len(times) // 2]
            rows.append({"batch_clips": batch_size, "frames_per_clip": args.frames,
                         "precision": precision, "step_s_median": median,
                         "step_s_all": times,
                         "frames_per_s": batch_size * args.frames / median})
            print(f"batch {batch_size} {precision}: {median:.2f} s/step", flush=True)
    print()
    print(f"abaw-full head, {n_params / 1e6:.2f} M params, grid {grid}x{grid}x{cfg.d_visual}, "
          f"audio {cfg.d_audio}, d_model {cfg.d_model}, {args.threads} threads")
    print(f"{'clips x frames':>15} {'precision':>9} {'s/step':>8} {'frames/s':>9}")
    for r in rows:
        print(f"{r['batch_clips']:>6} x {r['frames_per_clip']:<6} {r['precision']:>9} "
              f"{r['step_s_median']:>8.2f} {r['frames_per_s']:>9.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "model": "abaw-full", "params": n_params, "grid": grid, "d_visual": cfg.d_visual,
        "d_audio": cfg.d_audio, "d_model": cfg.d_model, "threads": args.threads,
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
        "load_avg_at_end": os.getloadavg(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
