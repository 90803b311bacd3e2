"""``wildaffect predict``: per-frame AU, expression and valence/arousal for any media.

Thin layer over :class:`wildaffect.Predictor` and :mod:`wildaffect.predict.batch`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wildaffect.commands._progress import BatchBars
from wildaffect.predict import DEFAULT_CHUNK_FRAMES


def predict(
    inputs: Annotated[list[str], typer.Argument(
        help="Videos, images, audio files, folders (searched recursively) or glob patterns.",
        metavar="INPUT...",
    )],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the tables.")],
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Bundled model name, package folder or training checkpoint "
        "(default: the bundled default model).",
    )] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or json.")] = "csv",
    interpolate: Annotated[bool, typer.Option(
        "--interpolate", help="Fill frames without a face from the face frames around them."
    )] = False,
    plot: Annotated[bool, typer.Option("--plot", help="Also write a timeline PNG.")] = False,
    overlay: Annotated[bool, typer.Option(
        "--overlay", help="Also write an MP4 with the face box, landmarks and labels."
    )] = False,
    abaw_submission: Annotated[bool, typer.Option(
        "--abaw-submission",
        help="Also write ABAW predictions.txt files under OUT/abaw_submission.",
    )] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="fp32 or bf16 (autocast).")] = "fp32",
    chunk_frames: Annotated[int, typer.Option(
        "--chunk-frames", min=1, help="Frames per model step (bounds memory; same result)."
    )] = DEFAULT_CHUNK_FRAMES,
    no_audio: Annotated[bool, typer.Option(
        "--no-audio", help="Ignore the sound track: predict from the face alone (e.g. when the "
        "voice is not the filmed person's).",
    )] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo inputs already predicted.")] = False,
    face_model: Annotated[Path | None, typer.Option(
        "--face-model", help="MediaPipe face_landmarker.task (default: found automatically)."
    )] = None,
    behaviour: Annotated[Path | None, typer.Option(
        "--behaviour", help="Folder of behaviour features for models that read them (seed 003 "
        "presets): per input, <stem>.npy (T, D), one row per frame, or <stem>.csv (time_s + "
        "feature columns), as for extract. Without it they are absent (masked).",
    )] = None,
    transcripts: Annotated[Path | None, typer.Option(
        "--transcripts", help="Folder of transcripts for models that read text (maven): per "
        "input, <stem>.srt, .vtt or .csv (start,end,text), as for extract. Without it the text "
        "is absent (masked).",
    )] = None,
    text_encoder: Annotated[str | None, typer.Option(
        "--text-encoder", help="Text encoder for --transcripts: model folder or hub id; use the "
        "one the model's training cache was made with (default: the model's, else roberta-base).",
    )] = None,
) -> None:
    """Write one table per input (one row per frame; per 20 ms for audio) and OUT/index.csv.

    A killed run resumes (finished inputs are skipped); a bad input is listed in index.csv and
    at the end with its reason while the others finish; exit status 1 when any failed.
    A model that reads the optional streams gets them as for training: silero-vad's speech
    probability of the audio (vad_gate), and each input's --behaviour / --transcripts file
    (same stem rule as extract); OUT/<stem>.meta.json names them, or says why one is absent.
    """
    import warnings

    from rich.console import Console
    from rich.markup import escape

    from wildaffect.io.inputs import collect_inputs
    from wildaffect.predict.batch import (
        InputResult,
        check_format,
        failure_reason,
        predict_file,
        write_abaw_submission,
        write_index,
    )
    from wildaffect.predict.predictor import Predictor
    from wildaffect.preprocess import record_names

    fmt = check_format(fmt)
    console = Console(highlight=False)
    files, input_errors = collect_inputs(inputs)
    with warnings.catch_warnings():  # the stream warnings are printed below, once
        warnings.simplefilter("ignore", UserWarning)
        predictor = Predictor(model, device=device, dtype=dtype, chunk_frames=chunk_frames,
                              interpolate=interpolate, face_model=face_model,
                              use_audio=not no_audio, behaviour_dir=behaviour,
                              transcripts_dir=transcripts, text_encoder=text_encoder)
    for message in predictor.streams.warnings:
        console.print(f"[yellow]warning:[/] {escape(message)}", markup=True, soft_wrap=True)
    for message in predictor.streams.notices:
        console.print(f"note: {message}", markup=False, soft_wrap=True)
    out.mkdir(parents=True, exist_ok=True)
    results: list[InputResult] = [
        InputResult(Path(err.path), "", error=str(err)) for err in input_errors
    ]
    with BatchBars(console, "inputs") as bars:
        bars.begin(len(files))
        for path, name in zip(files, record_names(files)):
            bars.start(name)
            try:
                result = predict_file(
                    predictor, path, name, out, fmt, plot=plot, overlay=overlay, force=force,
                    on_frames=lambda done, name=name: bars.update(name, done, None),
                )
            except KeyboardInterrupt:
                raise
            except Exception as err:  # one bad input must not stop the batch
                result = InputResult(path, name, error=failure_reason(err, path))
            results.append(result)
            write_index(out, results)
            bars.finish(name)
    index = write_index(out, results)
    if abaw_submission:
        written, notes = write_abaw_submission(out, results, predictor.sources)
        for note in notes:
            console.print(f"[yellow]note:[/] {note}", markup=True, soft_wrap=True)
        for path in written:
            console.print(f"ABAW submission: {path}")
    _print_summary(console, results, index)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        console.print(f"\n[bold red]{len(failed)} of {len(results)} inputs failed:[/]")
        for r in failed:
            console.print(r.error, markup=False, soft_wrap=True)
        raise typer.Exit(1)


def _print_summary(console, results, index: Path) -> None:
    from rich.table import Table

    table = Table(title=f"predict -> {index.parent}", title_justify="left")
    for column in ("input", "frames", "face frames", "status", "output"):
        table.add_column(column, justify="right" if "frames" in column else "left")
    status = {"done": "[green]done[/]", "cached": "cached", "failed": "[red]failed[/]"}
    for r in results:
        faces = "-" if not r.n_frames else f"{100 * (r.n_face_frames or 0) / r.n_frames:.0f}%"
        output = "" if r.output is None or r.status == "failed" else r.output.name
        table.add_row(r.name or str(r.path), "-" if r.n_frames is None else str(r.n_frames),
                      faces, status[r.status], output)
    console.print(table)
    console.print(f"index: {index}")
