"""``wildaffect evaluate`` (score a run, tune AU thresholds, write submissions) and
``wildaffect ablate`` (the paper's Table 1). Heavy imports happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wildaffect.labels import SPLITS


def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder written by `wildaffect train`.")],
    data: Annotated[Path, typer.Option("--data", help="ABAW annotation tree.")],
    cache: Annotated[Path, typer.Option("--cache", help="Feature cache folder.")],
    split: Annotated[str, typer.Option("--split", help="Split to evaluate.")] = SPLITS[1],
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="Default: the run's best, else final.ckpt, else last.ckpt.",
    )] = None,
    tune_thresholds: Annotated[bool, typer.Option(
        "--tune-thresholds", help="Tune per-AU thresholds here; store in RUN/thresholds.json.",
    )] = False,
    smooth_window: Annotated[int, typer.Option(
        "--smooth", min=0, help="Centred window (frames) over AU probabilities and VA.",
    )] = 0,
    smooth_method: Annotated[str, typer.Option("--smooth-method", help="mean or median.")] = "mean",
    vote_window: Annotated[int, typer.Option(
        "--vote-window", min=0, help="EXPR sliding-window soft voting (frames).",
    )] = 0,
    sample: Annotated[Path | None, typer.Option(
        "--sample", help="Organisers' sample file: submission rows in its order.",
    )] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Default: RUN/eval/<split>.")] = None,
    chunk_len: Annotated[int, typer.Option(
        "--chunk-len", min=1, help="Frames per forward pass.",
    )] = 4096,
) -> None:
    """Score a run per task and per AU, optionally tune AU thresholds, write predictions."""
    from rich.console import Console
    from rich.table import Table

    from wildaffect.evaluate import evaluate_run
    from wildaffect.labels import AU_NAMES, EXPR_NAMES

    result = evaluate_run(
        run, data, cache, split=split, checkpoint=checkpoint, tune_thresholds=tune_thresholds,
        smooth_window=smooth_window, smooth_method=smooth_method, vote_window=vote_window,
        sample=sample, out_dir=out, chunk_len=chunk_len,
    )
    m = result.metrics
    table = Table(title=f"{run.name}: {split} ({m['n_videos']} videos, {result.checkpoint.name})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if "au_f1" in m:
        table.add_row(f"AU mean F1 ({result.threshold_source} thresholds)", f"{m['au_f1']:.4f}")
        table.add_row("AU mean F1 at 0.5", f"{m['au_f1_at_0.5']:.4f}")
        for name in AU_NAMES:
            table.add_row(f"  {name} (thr {m['au_thresholds'][name]:.2f})",
                          f"{m[f'au_f1_{name}']:.4f}")
    if "expr_f1" in m:
        table.add_row("EXPR macro F1", f"{m['expr_f1']:.4f}")
        table.add_row("EXPR accuracy", f"{m['expr_acc']:.4f}")
        for name in EXPR_NAMES:
            table.add_row(f"  {name}", f"{m[f'expr_f1_{name}']:.4f}")
    if "va_ccc" in m:
        table.add_row("VA mean CCC", f"{m['va_ccc']:.4f}")
        table.add_row("  valence", f"{m['va_ccc_valence']:.4f}")
        table.add_row("  arousal", f"{m['va_ccc_arousal']:.4f}")
    if "mtl_score" in m:
        table.add_row("MTL score P", f"{m['mtl_score']:.4f}")
    Console().print(table)
    typer.echo(f"outputs: {result.out_dir}")


def ablate(
    data: Annotated[Path, typer.Option("--data", help="ABAW annotation tree.")],
    cache: Annotated[Path, typer.Option("--cache", help="Feature cache folder.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for one run per row + ablation.md.")],
    visual_encoder: Annotated[str, typer.Option("--visual-encoder")] = "synth-grid",
    audio_encoder: Annotated[str, typer.Option("--audio-encoder")] = "synth-audio",
    epochs: Annotated[int, typer.Option("--epochs")] = 30,
    max_steps: Annotated[int, typer.Option("--max-steps")] = -1,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 16,
    clip_len: Annotated[int, typer.Option("--clip-len")] = 256,
    warmup_epochs: Annotated[float, typer.Option("--warmup-epochs")] = 5.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    override: Annotated[list[str] | None, typer.Option(
        "--override", help="Model option key=value for every row (repeat).",
    )] = None,
    tune_thresholds: Annotated[bool, typer.Option("--tune-thresholds")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Train and evaluate the five Table 1 presets with the same data and seed."""
    from wildaffect.train.ablation import ABLATION_MD, run_ablation
    from wildaffect.train.config import TrainConfig
    from wildaffect.train.run import parse_override

    base = TrainConfig(
        data_dir=str(data), cache_dir=str(cache), out_dir=str(out),
        visual_encoder=visual_encoder,
        audio_encoder=None if audio_encoder.lower() == "none" else audio_encoder,
        model_overrides=dict(parse_override(item) for item in override or []),
        epochs=epochs, max_steps=max_steps, batch_size=batch_size, clip_len=clip_len,
        clip_stride=max(clip_len // 2, 1), warmup_epochs=warmup_epochs, seed=seed,
        progress_bar=progress,
    )
    table = run_ablation(base, out, tune_thresholds=tune_thresholds, log=typer.echo)
    for row in table["rows"]:
        typer.echo(f"{row['preset']:<20} {row['mean_f1']:6.2f}  (paper {row['paper_mean_f1']:.2f})")
    typer.echo(f"table: {out / ABLATION_MD}")
