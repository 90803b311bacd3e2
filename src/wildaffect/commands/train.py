"""``wildaffect synth`` and ``wildaffect train``: a known-answer dataset and training on
cached features. Heavy imports (torch, Lightning) happen inside the commands."""

from __future__ import annotations

from pathlib import Path

import typer


def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the ABAW tree and cache/ into."),
    videos: int = typer.Option(16, "--videos", min=2, help="Videos in all (1/4 validation)."),
    frames: int = typer.Option(900, "--frames", help="Frames per video (30 fps)."),
    grid: int = typer.Option(8, "--grid", min=2, help="Patch grid side of synth-grid."),
    d_visual: int = typer.Option(32, "--d-visual", min=2),
    d_audio: int = typer.Option(16, "--d-audio", min=2),
    seed: int = typer.Option(0, "--seed"),
    audio_led_amplitude: float | None = typer.Option(
        None, "--audio-led-amplitude", min=0.0,
        help="Visual evidence of the audio-led AUs (AU12, AU25); default: weak; "
        "0: only their audio cue predicts their onsets.",
    ),
    train_label_aus: str | None = typer.Option(
        None, "--train-label-aus",
        help="Comma-separated AUs whose training labels are kept, the others' marked invalid "
        "(their evidence stays), e.g. AU12,AU25 to study the audio lead alone; default: all.",
    ),
) -> None:
    """Write a synthetic ABAW dataset with cached features where the answer is known."""
    from wildaffect.data.synth import AUDIO_ENCODER, VISUAL_ENCODER, make_synthetic_dataset
    from wildaffect.errors import WildaffectError

    n_val = max(1, videos // 4)
    variant: dict = {} if audio_led_amplitude is None else {
        "audio_led_amplitude": audio_led_amplitude}
    if train_label_aus is not None:
        variant["train_label_aus"] = tuple(a.strip() for a in train_label_aus.split(",") if a)
    try:
        result = make_synthetic_dataset(out, videos - n_val, n_val, frames, grid=grid,
                                        d_visual=d_visual, d_audio=d_audio, seed=seed, **variant)
    except ValueError as err:
        raise WildaffectError(str(err)) from None
    typer.echo(
        f"wrote {videos - n_val} train + {n_val} validation videos of {frames} frames to "
        f"{result.root}; cache {result.cache_dir} (encoders {VISUAL_ENCODER}, {AUDIO_ENCODER}); "
        f"audio cue leads its AU by {result.lead_frames} frames"
    )


def train(
    preset: str = typer.Option("abaw-full", "--preset", help="Model preset (architecture)."),
    data: Path = typer.Option(..., "--data", help="ABAW annotation tree."),
    cache: Path = typer.Option(..., "--cache", help="Feature cache folder."),
    visual_encoder: str = typer.Option("synth-grid", "--visual-encoder"),
    audio_encoder: str = typer.Option(
        "synth-audio", "--audio-encoder", help="'none' for a visual-only model."
    ),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoints, logs, config)."),
    epochs: int = typer.Option(30, "--epochs"),
    batch_size: int = typer.Option(16, "--batch-size"),
    clip_len: int = typer.Option(256, "--clip-len"),
    clip_stride: int | None = typer.Option(None, "--clip-stride", help="Default clip-len/2."),
    lr: float = typer.Option(3e-4, "--lr"),
    lora_lr: float = typer.Option(3e-5, "--lora-lr"),
    weight_decay: float = typer.Option(0.05, "--weight-decay"),
    warmup_epochs: float = typer.Option(5.0, "--warmup-epochs"),
    swa_epochs: int = typer.Option(0, "--swa-epochs", help="SWA over the last N epochs."),
    max_steps: int = typer.Option(-1, "--max-steps"),
    precision: str = typer.Option("32-true", "--precision", help="32-true or bf16-mixed."),
    seed: int = typer.Option(0, "--seed"),
    devices: int = typer.Option(1, "--devices", help="Processes per node (> 1: DDP, gloo on CPU)."),
    num_nodes: int = typer.Option(1, "--num-nodes"),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue exactly from RUN/checkpoints/last.ckpt (same options)."
    ),
    init_from: Path | None = typer.Option(
        None, "--init-from",
        help="Start from the weights of another run (its folder or a .ckpt): fine-tuning; "
        "optimiser and schedule start fresh.",
    ),
    checkpoint_every: int = typer.Option(
        0, "--checkpoint-every", help="Also refresh last.ckpt every N steps (mid-epoch resume)."
    ),
    tasks: list[str] | None = typer.Option(None, "--task", help="Train these tasks (repeat)."),
    balanced: bool = typer.Option(False, "--balanced/--no-balanced"),
    group_by_length: bool = typer.Option(
        False, "--group-by-length/--no-group-by-length",
        help="Batches of similar clip lengths; short videos unpadded (photos + utterances)",
    ),
    class_weight_power: float = typer.Option(
        0.0, "--class-weight-power", help="EXPR class weights (n_max/n_c)**P (0 = off)."
    ),
    class_count_unit: str = typer.Option(
        "frame", "--class-count-unit",
        help="Class weights count labelled frames or videos (each video's labels sum to 1).",
    ),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="EXPR targets."),
    au_weight: list[str] | None = typer.Option(
        None, "--au-weight", help="AU loss weight of one AU, AU=W (repeat), e.g. AU12=3.",
    ),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Gradient norm clip (0 = off)."),
    frame_step: int = typer.Option(
        1, "--frame-step", min=1, help="Clips read every s-th frame, s from 1..N (seed 003 ¶5).",
    ),
    audio_mask: str | None = typer.Option(
        None, "--audio-mask",
        help="SpecAugment on training audio: time_masks,time_width,feature_masks,feature_width "
        "(e.g. 2,10,2,20).",
    ),
    curriculum_epochs: int = typer.Option(
        0, "--curriculum-epochs", min=0,
        help="Single -> compound clips over the first N epochs (seed 003 ¶9; train/curriculum.py).",
    ),
    find_unused: bool | None = typer.Option(
        None, "--find-unused-parameters/--no-find-unused-parameters",
        help="DDP: allow parameters without a gradient (default: auto; train/distributed.py).",
    ),
    override: list[str] | None = typer.Option(
        None, "--set", "--override",
        help="Model option key=value (repeat), e.g. d_model=64 or input_norm=true.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train a preset on cached features; inputs are checked before training starts."""
    from wildaffect.train.config import TrainConfig
    from wildaffect.train.run import parse_au_weights, parse_override
    from wildaffect.train.run import train as run_train

    overrides = dict(parse_override(item) for item in override or [])
    config = TrainConfig(
        preset=preset, data_dir=str(data), cache_dir=str(cache), out_dir=str(out),
        visual_encoder=visual_encoder,
        audio_encoder=None if audio_encoder.lower() == "none" else audio_encoder,
        tasks=tuple(t.upper() for t in tasks) if tasks else None, model_overrides=overrides,
        epochs=epochs, batch_size=batch_size, clip_len=clip_len,
        clip_stride=clip_stride or max(clip_len // 2, 1), lr=lr, lora_lr=lora_lr,
        weight_decay=weight_decay, warmup_epochs=warmup_epochs, swa_epochs=swa_epochs,
        max_steps=max_steps, precision=precision, seed=seed, devices=devices,
        num_nodes=num_nodes, checkpoint_every_n_steps=checkpoint_every, balanced=balanced,
        group_by_length=group_by_length,
        class_weight_power=class_weight_power, class_count_unit=class_count_unit,
        label_smoothing=label_smoothing, au_loss_weights=parse_au_weights(au_weight or []),
        grad_clip=grad_clip, frame_step=frame_step,
        audio_mask=parse_override(f"audio_mask={audio_mask}")[1] if audio_mask else None,
        curriculum_epochs=curriculum_epochs, find_unused_parameters=find_unused,
        init_from=str(init_from) if init_from else None,
        progress_bar=progress,
    )
    result = run_train(config, resume=resume)
    shown = {k: round(v, 4) for k, v in result.best_metrics.items() if "_AU" not in k}
    typer.echo(f"run folder: {result.run_dir}")
    typer.echo(f"best: {shown}  ({result.best_checkpoint})")
    final = {k: round(v, 4) for k, v in result.final_metrics.items() if "_AU" not in k}
    typer.echo(f"final: {final}  ({result.final_checkpoint})")
