"""``wildaffect extract``: encoder features for every preprocessed record of a cache.

Thin layer over :func:`wildaffect.extract.extract_batch`: options, a rich progress bar, the
summary table and the failure list. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wildaffect.commands._progress import BatchBars
from wildaffect.streams.text import DEFAULT_TEXT_ENCODER

if TYPE_CHECKING:
    from rich.console import Console

    from wildaffect.extract import ExtractReport, ExtractResult


def extract(
    cache: Annotated[Path, typer.Argument(help="Cache folder written by `wildaffect preprocess`.")],
    visual: Annotated[
        str,
        typer.Option(
            "--visual", help="Visual encoder (e.g. dinov2-large, vit-base, convnext-base) or none."
        ),
    ] = "mediapipe-regions",
    audio: Annotated[str, typer.Option("--audio", help="Audio encoder name, or none.")] = (
        "logmel-egemaps"
    ),
    weights_visual: Annotated[
        str | None,
        typer.Option(
            "--weights-visual", help="Model folder or hub id for the visual encoder's weights."
        ),
    ] = None,
    weights_audio: Annotated[
        str | None,
        typer.Option(
            "--weights-audio", help="Model folder or hub id for the audio encoder's weights."
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, help="Frames per forward pass of the visual encoder."),
    ] = 16,
    dtype: Annotated[
        str,
        typer.Option("--dtype", help="fp32, or bf16 (autocast: AMX on CPU, tensor cores on GPU)."),
    ] = "fp32",
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "auto",
    force: Annotated[
        bool, typer.Option("--force", help="Recompute features that already exist.")
    ] = False,
    videos: Annotated[
        list[str] | None,
        typer.Option(
            "--videos", help="Only these records (repeat the option or separate with commas)."
        ),
    ] = None,
    vad: Annotated[
        bool | None,
        typer.Option(
            "--vad/--no-vad",
            help="Per-frame speech probability (silero-vad) into features/silero-vad, for "
            "presets with vad_gate. Default: on whenever an audio encoder runs.",
            show_default=False,
        ),
    ] = None,
    behaviour: Annotated[
        Path | None,
        typer.Option(
            "--behaviour",
            help="Folder of pre-extracted behaviour features, one <video>.npy (T, D) on the "
            "frames or <video>.csv (time_s + feature columns) per record -> features/behaviour.",
        ),
    ] = None,
    transcripts: Annotated[
        Path | None,
        typer.Option(
            "--transcripts",
            help="Folder of transcripts, one <video>.srt, .vtt or .csv (start,end,text) per "
            "record, embedded per segment -> features/text (MAVEN's text stream).",
        ),
    ] = None,
    text_encoder: Annotated[
        str,
        typer.Option(
            "--text-encoder", help="Text encoder for --transcripts: model folder or hub id."
        ),
    ] = DEFAULT_TEXT_ENCODER,
) -> None:
    """Run the encoders over every record and store float16 features aligned to its frames.

    Writes features/<encoder>/<video>.npy (first axis = the record's frames: audio-only records
    have one frame per 20 ms; records without frames get features/<audio>@20ms/<video>.npy)
    and features/<encoder>/encoder.json. Optional streams for the seed 003 presets:
    features/silero-vad (speech probability per frame; on whenever an audio encoder runs,
    --no-vad to skip), features/behaviour (--behaviour DIR) and features/text
    (--transcripts DIR); frames a behaviour file or transcript does not cover are stored as
    NaN rows and masked in training. Records without such a file are noted and skipped.
    Existing files are skipped, so a killed run resumes; a failing record is listed at the end
    while the others finish. Exit status 1 when any record failed.
    """
    from rich.console import Console

    from wildaffect.extract import DEVICES, DTYPES, extract_batch

    if dtype not in DTYPES:
        raise typer.BadParameter(f"must be one of {', '.join(DTYPES)}", param_hint="--dtype")
    if device not in DEVICES:
        raise typer.BadParameter(f"must be one of {', '.join(DEVICES)}", param_hint="--device")
    selected = [v for item in videos or [] for v in item.split(",") if v] or None
    console = Console(highlight=False)
    with _RichProgress(console) as progress:
        report = extract_batch(
            cache, visual=visual, audio=audio, weights_visual=weights_visual,
            weights_audio=weights_audio, batch_size=batch_size, dtype=dtype, device=device,
            force=force, videos=selected, progress=progress, vad=vad, behaviour_dir=behaviour,
            transcripts_dir=transcripts, text_encoder=text_encoder,
        )  # fmt: skip
    _print_summary(console, report)
    n_failed = len(report.failures)
    if n_failed:
        console.print(f"\n[bold red]{n_failed} of {len(report.results)} records failed:[/]")
        for result in report.failures:
            console.print(result.describe_failure(), markup=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(
        f"[green]features of all {len(report.results)} records are in {report.cache_root}[/]"
    )


class _RichProgress(BatchBars):
    """extract's progress protocol on the shared bars."""

    def __init__(self, console: Console) -> None:
        super().__init__(console, "records")

    def started(self, video: str, n_frames: int) -> None:
        self.start(video, n_frames)

    def frames(self, video: str, done: int, total: int) -> None:
        self.update(video, done, total)

    def finished(self, result: ExtractResult) -> None:
        self.finish(result.video)


def _print_summary(console: Console, report: ExtractReport) -> None:
    from rich.table import Table

    table = Table(title=f"extract -> {report.cache_root}", title_justify="left")
    for column in ("video", "frames", "written", "already there", "status", "notes"):
        table.add_column(column, justify="right" if column == "frames" else "left")
    status = {"done": "[green]done[/]", "cached": "cached", "failed": "[red]failed[/]"}
    for r in report.results:
        table.add_row(
            r.video, "-" if r.n_frames is None else str(r.n_frames), "\n".join(r.written) or "-",
            "\n".join(r.cached) or "-", status[r.status], "; ".join(r.notes),
        )  # fmt: skip
    console.print(table)
