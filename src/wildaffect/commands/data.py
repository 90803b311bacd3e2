"""``wildaffect data ...``: inspect and validate ABAW / Aff-Wild2 datasets; import labelled
photos as one.

Nothing heavy at import: the data modules are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from wildaffect.labels import Task

app = typer.Typer(
    help="Inspect, validate and import ABAW / Aff-Wild2 annotation trees.", no_args_is_help=True
)


@app.command("check")
def check(
    root: Annotated[Path, typer.Argument(help="Dataset root (either ABAW annotation layout).")],
    frames: Annotated[Path | None, typer.Option(
        "--frames", help="Aligned-crops folder (cropped_aligned/); counts frame images."
    )] = None,
    task: Annotated[Task | None, typer.Option(
        "--task", case_sensitive=False, help="Check only this task."
    )] = None,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Also write the summary as JSON to this file."
    )] = None,
) -> None:
    """Validate every annotation file and print per task and split what the tree holds.

    Goes on past bad files and lists every failure at the end (file:line: reason);
    exits 1 when any file failed.
    """
    from rich.console import Console

    from wildaffect.data.abaw import find_frames_dir
    from wildaffect.data.check import check_dataset
    from wildaffect.io.atomic import atomic_write_text

    frames_dir = find_frames_dir(root, frames) if frames is not None else None
    report = check_dataset(root, task=task, frames_dir=frames_dir)
    console = Console(highlight=False)
    console.print(
        f"[bold]{report.index.root}[/]: {report.index.layout.value} layout, "
        f"{report.n_files} annotation files"
        + (f", frames in {report.frames_dir}" if report.frames_dir else ""),
        soft_wrap=True,
    )
    for task_ in report.index.tasks:
        _print_task(console, report, task_)
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
        console.print(f"summary written to {json_path}")
    if report.failures:
        console.print(f"\n[bold red]{len(report.failures)} file(s) failed:[/]")
        for err in report.failures:
            console.print(str(err), markup=False, soft_wrap=True)
        console.print(
            f"[bold red]error:[/] {len(report.failures)} of {report.n_files} files failed",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(f"[green]all {report.n_files} files are valid[/]")


def _print_task(console, report, task: Task) -> None:
    """One table of counts (a row per split) and one of the label distribution."""
    from rich.table import Table

    from wildaffect.labels import TASK_SPECS

    summaries = [s for (t, _), s in report.summaries.items() if t is task]
    counts = Table(title=f"{task.value} ({TASK_SPECS[task].challenge_dir})", title_justify="left")
    counts.add_column("split")
    for name in ("videos", "frames", "valid frames"):
        counts.add_column(name, justify="right")
    with_images = report.frames_dir is not None
    if with_images:
        counts.add_column("with image", justify="right")
    for s in summaries:
        row = [s.split, f"{s.videos:,}", f"{s.frames:,}", f"{s.valid_frames:,}"]
        if with_images:
            row.append(f"{s.frames_with_image or 0:,}")
        counts.add_row(*row)
    console.print(counts)

    label = {Task.AU: "AU (positive rate)", Task.EXPR: "class (count)",
             Task.VA: "dimension (mean ± std)"}[task]
    dist = Table(title=f"{task.value} label distribution", title_justify="left")
    dist.add_column(label)
    for s in summaries:
        dist.add_column(s.split, justify="right")
    distributions = [s.distribution for s in summaries]
    for name in (distributions[0] if distributions else {}):
        cells = []
        for d in distributions:
            value = d[name]
            if task is Task.AU:
                cells.append("-" if value is None else f"{value:.3f}")
            elif task is Task.EXPR:
                cells.append(f"{value:,}")
            else:
                cells.append("-" if value["mean"] is None
                             else f"{value['mean']:+.3f} ± {value['std']:.3f}")
        dist.add_row(name, *cells)
    console.print(dist)


@app.command("import-expression")
def import_expression(
    labels: Annotated[Path, typer.Argument(
        help="faces-expression style labels.csv (image,expression[,source_label])."
    )],
    cache: Annotated[Path, typer.Option(
        "--cache", help="Feature cache holding the preprocessed photos (wildaffect preprocess)."
    )],
    out: Annotated[Path, typer.Option("--out", help="ABAW tree to write (EXPR task).")],
    images: Annotated[Path | None, typer.Option(
        "--images", help="Image folder (default: images/ beside the CSV)."
    )] = None,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Identity-grouped folds.")] = 5,
    validation_fold: Annotated[int, typer.Option(
        "--validation-fold", min=0, help="The fold written as Validation_Set."
    )] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold split.")] = 0,
) -> None:
    """Write labelled photos as an ABAW EXPR tree (one 'video' per photo) for `wildaffect train`.

    Train/validation are split by identity (StratifiedGroupKFold, seeded), so K imports with
    --validation-fold 0..K-1 are a K-fold cross-validation.
    """
    from wildaffect.data.labelled import read_faces_expression, write_expression_tree

    items, dropped = read_faces_expression(labels, images)
    if dropped:
        typer.echo(f"dropped (conflicting duplicate labels): {', '.join(dropped)}")
    summary = write_expression_tree(items, cache, out, folds=folds,
                                    validation_fold=validation_fold, seed=seed)
    for split, counts in summary.class_counts.items():
        shown = ", ".join(f"{name} {n}" for name, n in counts.items())
        typer.echo(f"{split}: {len(summary.videos[split])} files, {summary.groups[split]} "
                   f"identities, {summary.no_face[split]} without a face ({shown})")
    typer.echo(f"wrote {summary.root}")
