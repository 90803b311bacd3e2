"""Known-answer comparison on the synthetic dataset (training issue, item 6).

Trains the five Table 1 presets (``wildaffect ablate``'s rows) plus the plain-Mamba and
Transformer temporal variants on one synthetic dataset with one seed and tiny widths, then
prints mean F1 and the F1 of the audio-led AUs (AU12, AU25, whose audio cue precedes onset by
more frames than the TCN's receptive field). Run by hand; takes ~10-20 min on 2 CPU cores:

    python benchmarks/synth_ablation.py --out /tmp/synth-ablation
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from wildaffect.data.synth import AUDIO_LED_AUS, make_synthetic_dataset
from wildaffect.evaluate import evaluate_run
from wildaffect.models.registry import TABLE1_PRESETS
from wildaffect.train.ablation import run_ablation
from wildaffect.train.config import TrainConfig
from wildaffect.train.run import train

EXTRA_PRESETS = ("abaw-hga-mamba", "abaw-hga-transformer")
TINY = dict(  # noqa: C408
    d_model=32, d_token=16, d_inner=16, n_layers=1, hga_heads=2, xattn_heads=2, d_state=8,
    dropout=0.0, transformer_heads=2,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = args.out / "data"
    if not data.exists():
        make_synthetic_dataset(data, 9, 3, 600, grid=8, d_visual=32, d_audio=16, seed=args.seed)
    base = TrainConfig(
        data_dir=str(data), cache_dir=str(data / "cache"), model_overrides=TINY,
        epochs=args.epochs, batch_size=4, clip_len=64, clip_stride=32, warmup_epochs=0.5,
        lr=3e-3, weight_decay=0.0, progress_bar=False, seed=args.seed,
    )
    runs = args.out / "runs"
    run_ablation(base, runs)
    for preset in EXTRA_PRESETS:
        run_dir = runs / preset
        if not (run_dir / "final.ckpt").exists():
            train(replace(base, preset=preset, out_dir=str(run_dir), tasks=("AU",)))
        evaluate_run(run_dir, base.data_dir, base.cache_dir, checkpoint=run_dir / "final.ckpt")
    rows = []
    for preset in [p for p, _ in TABLE1_PRESETS] + list(EXTRA_PRESETS):
        metrics = json.loads((runs / preset / "eval" / "Validation_Set" / "metrics.json").read_text())
        rows.append({"preset": preset, "mean_f1": metrics["au_f1"],
                     **{au: metrics[f"au_f1_{au}"] for au in AUDIO_LED_AUS}})
    header = "| preset | mean F1 | " + " | ".join(f"{au} F1 (audio-led)" for au in AUDIO_LED_AUS)
    print(header + " |\n|---|---:|" + "---:|" * len(AUDIO_LED_AUS))
    for row in rows:
        cells = " | ".join(f"{100 * row[au]:.1f}" for au in AUDIO_LED_AUS)
        print(f"| {row['preset']} | {100 * row['mean_f1']:.1f} | {cells} |")
    (args.out / "synth_ablation.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
