"""``wildaffect preprocess``: media files -> per-video records in a feature cache.

Thin layer over :func:`wildaffect.preprocess.preprocess_batch`: options, a rich progress bar,
the summary table and the failure list. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wildaffect.commands._progress import BatchBars

if TYPE_CHECKING:
    from rich.console import Console

    from wildaffect.preprocess import BatchReport, Job, VideoResult


def preprocess(
    inputs: Annotated[list[str], typer.Argument(
        help="Media files, folders (searched recursively) or glob patterns.", metavar="INPUT...",
    )],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Cache folder to write the records into."
    )],
    workers: Annotated[int, typer.Option(
        "--workers", "-j", min=1, help="Processes to run in parallel."
    )] = 1,
    crops: Annotated[str, typer.Option(
        "--crops", help="Face crops: jpeg (crops/00001.jpg...), npy (one array) or none."
    )] = "jpeg",
    force: Annotated[bool, typer.Option(
        "--force", help="Redo inputs whose record is up to date."
    )] = False,
    face_model: Annotated[Path | None, typer.Option(
        "--face-model", help="MediaPipe face_landmarker.task (default: found automatically)."
    )] = None,
) -> None:
    """Decode, find and align the face, and store landmarks, crops and 16 kHz audio per video.

    A killed run resumes where it stopped (complete records of unchanged inputs are skipped);
    a bad input is listed at the end with its reason while the others finish. Exit status 1
    when any input failed.
    """
    from rich.console import Console

    from wildaffect.preprocess import CROP_FORMATS, preprocess_batch

    if crops not in CROP_FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(CROP_FORMATS)}", param_hint="--crops")
    console = Console(highlight=False)
    with _RichProgress(console) as progress:
        report = preprocess_batch(
            inputs, out, workers=workers, crops=crops, force=force,  # type: ignore[arg-type]
            face_model=face_model, progress=progress,
        )  # fmt: skip
    _print_summary(console, report)
    n_failed = len(report.failures)
    if n_failed:
        console.print(f"\n[bold red]{n_failed} of {len(report.results)} inputs failed:[/]")
        for result in report.failures:
            console.print(result.describe_failure(), markup=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[green]all {len(report.results)} inputs are in {report.cache_root}[/]")


class _RichProgress(BatchBars):
    """preprocess's progress protocol on the shared bars (frames per video as they decode)."""

    def __init__(self, console: Console) -> None:
        super().__init__(console, "videos")

    def started(self, job: Job) -> None:
        self.start(job.video)

    def frames(self, job: Job, done: int, estimate: int | None) -> None:
        self.update(job.video, done, estimate)

    def finished(self, result: VideoResult) -> None:
        self.finish(result.video)


def _print_summary(console: Console, report: BatchReport) -> None:
    from rich.table import Table

    table = Table(title=f"preprocess -> {report.cache_root}", title_justify="left")
    for column in ("video", "frames", "face frames", "audio s", "status"):
        table.add_column(column, justify="left" if column in ("video", "status") else "right")
    for r in report.results:
        faces = (
            f"{100 * r.n_face_frames / r.n_frames:.0f}%"
            if r.n_frames and r.n_face_frames is not None else "-"
        )  # fmt: skip
        status = {"done": "[green]done[/]", "cached": "cached", "failed": "[red]failed[/]"}
        table.add_row(
            r.video or str(r.path), "-" if r.n_frames is None else str(r.n_frames), faces,
            "-" if r.audio_s is None else f"{r.audio_s:.2f}", status[r.status],
        )  # fmt: skip
    console.print(table)
