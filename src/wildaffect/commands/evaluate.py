"""``wildaffect evaluate`` (score a run, tune AU thresholds, write submissions) and
``wildaffect ablate`` (the paper's Table 1). Heavy imports happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from wildaffect.labels import SPLITS


def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `wildaffect train`."),
    data: Path = typer.Option(..., "--data", help="ABAW annotation tree."),
    cache: Path = typer.Option(..., "--cache", help="Feature cache folder."),
    split: str = typer.Option(SPLITS[1], "--split", help="Split to evaluate."),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="Default: the run's best, else final.ckpt, else last.ckpt."
    ),
    tune_thresholds: bool = typer.Option(
        False, "--tune-thresholds", help="Tune per-AU thresholds here; store in RUN/thresholds.json."
    ),
    smooth_window: int = typer.Option(
        0, "--smooth", min=0, help="Centred window (frames) over AU probabilities and VA."
    ),
    smooth_method: str = typer.Option("mean", "--smooth-method", help="mean or median."),
    vote_window: int = typer.Option(
        0, "--vote-window", min=0, help="EXPR sliding-window soft voting (frames)."
    ),
    sample: Optional[Path] = typer.Option(
        None, "--sample", help="Organisers' sample file: submission rows in its order."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/eval/<split>."),
    chunk_len: int = typer.Option(4096, "--chunk-len", min=1, help="Frames per forward pass."),
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
    data: Path = typer.Option(..., "--data", help="ABAW annotation tree."),
    cache: Path = typer.Option(..., "--cache", help="Feature cache folder."),
    out: Path = typer.Option(..., "--out", help="Folder for one run per row + ablation.md."),
    visual_encoder: str = typer.Option("synth-grid", "--visual-encoder"),
    audio_encoder: str = typer.Option("synth-audio", "--audio-encoder"),
    epochs: int = typer.Option(30, "--epochs"),
    max_steps: int = typer.Option(-1, "--max-steps"),
    batch_size: int = typer.Option(16, "--batch-size"),
    clip_len: int = typer.Option(256, "--clip-len"),
    warmup_epochs: float = typer.Option(5.0, "--warmup-epochs"),
    seed: int = typer.Option(0, "--seed"),
    override: Optional[list[str]] = typer.Option(
        None, "--override", help="Model option key=value for every row (repeat)."
    ),
    tune_thresholds: bool = typer.Option(False, "--tune-thresholds"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
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
