"""``predict`` over many inputs: one table per input, ``index.csv``, resumable, never fatal.

Per input ``<stem>`` (names as ``preprocess`` gives them; colliding stems get a hash):

    <stem>.csv | .parquet | .json   the rows (streamed into a temporary file, renamed at the end)
    <stem>.meta.json                where it came from and how each output was obtained
    <stem>.png, <stem>.mp4          with --plot / --overlay

An input whose table and meta exist and were made from the same file (size, mtime) with the
same model, options and stream files (``streams``: each behaviour / transcript file the model
read, or why it was absent) is skipped ("cached"), so a killed run resumes. A failing input is
recorded with its one-line reason in ``index.csv`` (rewritten atomically after every input)
and the others go on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import Task
from wildaffect.predict.predictor import InputSummary, Predictor
from wildaffect.predict.table import COLUMNS

Format = Literal["csv", "parquet", "json"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "json")
INDEX_FILE = "index.csv"
META_SUFFIX = ".meta.json"
ABAW_DIR = "abaw_submission"
#: How the derived outputs are obtained, written into every table's meta.
SOURCE_DESCRIPTIONS = {
    "model": "the model's trained head",
    "blendshapes-facs": "MediaPipe blendshapes through a FACS mapping (wildaffect.derived): "
    "activations in [0, 1], not calibrated probabilities",
    "circumplex": "circumplex mapping of the expression probabilities (wildaffect.derived)",
}


@dataclass
class InputResult:
    path: Path
    name: str
    status: Literal["done", "cached", "failed"] = "failed"
    output: Path | None = None
    n_frames: int | None = None
    n_face_frames: int | None = None
    error: str = ""
    extra_files: list[Path] = field(default_factory=list)


class TableWriter:
    """Rows appended chunk by chunk to a temporary file that replaces ``path`` on commit."""

    def __init__(self, path: Path, fmt: Format) -> None:
        from wildaffect.io.atomic import atomic_path

        self.path, self.fmt = path, fmt
        self._stack = ExitStack()
        self.tmp = self._stack.enter_context(atomic_path(path))
        self._handle = None
        self._parquet = None
        self._rows = 0

    def write(self, rows: pd.DataFrame) -> None:
        if self.fmt == "csv":
            if self._handle is None:
                self._handle = open(self.tmp, "w", newline="")
            rows.to_csv(self._handle, header=self._rows == 0, index=False, float_format="%.6f")
        elif self.fmt == "json":
            if self._handle is None:
                self._handle = open(self.tmp, "w")
                self._handle.write("[")
            text = rows.to_json(orient="records", double_precision=6)[1:-1]
            if text:
                separator = ",\n" if self._rows else "\n"
                self._handle.write(separator + text.replace("},{", "},\n{"))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(rows, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.tmp, _parquet_schema())
            self._parquet.write_table(table.cast(_parquet_schema()))
        self._rows += len(rows)

    def commit(self) -> None:
        if self.fmt == "csv" and self._handle is None:  # no rows at all: header only
            self.write(pd.DataFrame(columns=list(COLUMNS)))
        if self.fmt == "json":
            if self._handle is None:
                self._handle = open(self.tmp, "w")
                self._handle.write("[")
            self._handle.write("\n]\n")
        if self.fmt == "parquet" and self._parquet is None:
            self.write(pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS}))
        self._close_files()
        self._stack.close()

    def abort(self) -> None:
        self._close_files()
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def _close_files(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._parquet is not None:
            self._parquet.close()


def _parquet_schema():
    import pyarrow as pa

    types = {"frame": pa.int64(), "face": pa.int8(), "expression": pa.string()}
    return pa.schema([(c, types.get(c, pa.float64())) for c in COLUMNS])


def read_table(path: str | Path) -> pd.DataFrame:
    """A table written by ``predict`` (any of the formats), with the exact columns."""
    path = Path(path)
    if path.suffix == ".csv":
        table = pd.read_csv(path, keep_default_na=True)
    elif path.suffix == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix == ".json":
        table = pd.read_json(path, orient="records")
    else:
        raise InputError(path, "not a prediction table (.csv, .parquet or .json)")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"not a prediction table: missing column(s) {', '.join(missing)}")
    if len(table) == 0:
        table = pd.DataFrame(columns=list(COLUMNS))
    return table[list(COLUMNS)]


def _meta(predictor: Predictor, path: Path, name: str, fmt: str) -> dict[str, Any]:
    from wildaffect import __version__
    from wildaffect.preprocess import _source_identity

    card = predictor.meta.get("card", {})
    # the optional streams the model reads (only then): their files, or why they are absent
    streams = predictor.streams.plan(path, name)
    return {
        **({"streams": streams} if streams else {}),
        **_source_identity(path),
        "model": predictor.model_name,
        "model_preset": predictor.config.name,
        "model_card": card.get("name", ""),
        "format": fmt,
        "interpolate": predictor.interpolate,
        "use_audio": predictor.use_audio,
        "outputs": {
            task.value: (None if src is None else f"{src}: {SOURCE_DESCRIPTIONS.get(src, src)}")
            for task, src in predictor.sources.items()
        },
        "columns": list(COLUMNS),
        "wildaffect_version": __version__,
    }


def _is_cached(meta_path: Path, table_path: Path, expected: dict[str, Any]) -> bool:
    if not (meta_path.is_file() and table_path.is_file()):
        return False
    try:
        done = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    keys = ("source", "size", "mtime_ns", "model", "format", "interpolate", "use_audio",
            "streams", "wildaffect_version")
    return all(done.get(k) == expected.get(k) for k in keys)


def predict_file(
    predictor: Predictor,
    path: Path,
    name: str,
    out_dir: Path,
    fmt: Format = "csv",
    *,
    plot: bool = False,
    overlay: bool = False,
    force: bool = False,
    on_frames: Callable[[int], None] | None = None,
) -> InputResult:
    """One input -> its table and meta (and plot / overlay); raises on bad input."""
    from wildaffect.io.atomic import atomic_write_text

    result = InputResult(path, name)
    table_path = out_dir / f"{name}.{fmt}"
    meta_path = out_dir / f"{name}{META_SUFFIX}"
    meta = _meta(predictor, path, name, fmt)
    result.output = table_path
    if not force and _is_cached(meta_path, table_path, meta):
        done = json.loads(meta_path.read_text())
        result.status, result.n_frames = "cached", done.get("n_frames")
        result.n_face_frames = done.get("n_face_frames")
        if not (plot or overlay):
            return result
    keep_table = plot or overlay
    parts, boxes, landmarks = [], [], []
    if result.status != "cached":
        summary = _write_rows(predictor, path, name, table_path, fmt, parts, boxes, landmarks,
                              keep_table, overlay, on_frames)
        meta.update(kind=summary.kind, n_frames=summary.n_frames,
                    n_face_frames=summary.n_face_frames, audio=summary.audio,
                    audio_only=summary.audio_only, notes=summary.notes)
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
        result.status, result.n_frames = "done", summary.n_frames
        result.n_face_frames = summary.n_face_frames
    if plot or overlay:
        table = pd.concat(parts, ignore_index=True) if parts else read_table(table_path)
        audio_only = json.loads(meta_path.read_text()).get("audio_only", False)
        overlay = overlay and not audio_only  # rows on the 20 ms timeline: no picture to draw
        if overlay and not boxes:  # cached table: the geometry needs the face pass again
            for chunk in predictor.iter_chunks(path, name=name):
                boxes.append(chunk.boxes)
                landmarks.append(chunk.landmarks)
        result.extra_files += _render(path, name, out_dir, table, plot, overlay, boxes, landmarks)
    return result


def _write_rows(predictor, path, name, table_path, fmt, parts, boxes, landmarks, keep_table,
                overlay, on_frames) -> InputSummary:
    """Stream the rows into the table (a faceless video is redone from its voice)."""
    for audio_only in (False, True):
        summary = InputSummary()
        writer = TableWriter(table_path, fmt)
        for kept in (parts, boxes, landmarks):
            kept.clear()
        try:
            for chunk in predictor.iter_chunks(path, summary, audio_only=audio_only, name=name):
                writer.write(chunk.rows)
                if keep_table:
                    parts.append(chunk.rows)
                if overlay:
                    boxes.append(chunk.boxes)
                    landmarks.append(chunk.landmarks)
                if on_frames is not None:
                    on_frames(summary.n_frames)
            if not audio_only and predictor.voice_instead(summary):
                writer.abort()
                continue
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        if audio_only:
            summary.notes.append("no face in any frame: predicted from the voice (20 ms rows)")
        return summary
    raise AssertionError("unreachable")


def _render(path, name, out_dir, table, plot, overlay, boxes, landmarks) -> list[Path]:
    written = []
    if plot:
        from wildaffect.report.timeline import plot_timeline

        written.append(plot_timeline(table, out_dir / f"{name}.png", title=path.name))
    if overlay:
        from wildaffect.report.overlay import write_overlay

        written.append(write_overlay(
            path, table, np.concatenate(boxes) if boxes else np.zeros((0, 4)),
            np.concatenate(landmarks) if landmarks else np.zeros((0, 68, 2)),
            out_dir / f"{name}.mp4",
        ))
    return written


def write_index(out_dir: Path, results: Sequence[InputResult]) -> Path:
    from wildaffect.io.atomic import atomic_write_text

    rows = [
        {
            "input": str(r.path),
            "output": "" if r.output is None or r.status == "failed" else r.output.name,
            "status": r.status,
            "frames": r.n_frames,
            "face_frames": r.n_face_frames,
            "error": r.error,
        }
        for r in results
    ]
    columns = ["input", "output", "status", "frames", "face_frames", "error"]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype({"frames": "Int64", "face_frames": "Int64"})
    return atomic_write_text(out_dir / INDEX_FILE, frame.to_csv(index=False))


def failure_reason(err: BaseException, path: Path) -> str:
    """One line: an InputError already names the file; anything else gets the path."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, InputError):
        return text
    return f"{path}: {text}"


def write_abaw_submission(
    out_dir: Path, results: Sequence[InputResult], sources: dict[Task, str | None]
) -> tuple[list[Path], list[str]]:
    """ABAW ``predictions.txt`` per task from the finished tables -> (files, notes).

    Frames without a prediction (no face) copy the nearest predicted frame, as the challenge
    scores every frame; AU probabilities (or activations) are thresholded at 0.5.
    """
    from wildaffect.io.submission import write_submission
    from wildaffect.labels import AU_NAMES, EXPR_NAMES, VA_NAMES

    per_task: dict[Task, dict[str, np.ndarray]] = {t: {} for t in Task if sources.get(t)}
    notes: list[str] = []
    for r in results:
        if r.status == "failed" or r.output is None:
            continue
        table = read_table(r.output)
        for task in per_task:
            names = {Task.AU: AU_NAMES, Task.EXPR: EXPR_NAMES, Task.VA: VA_NAMES}[task]
            values = table[list(names)].astype(float).ffill().bfill()
            if values.isna().all(axis=None):
                notes.append(f"{r.path}: no {task.value} prediction in any frame: left out")
                continue
            array = values.to_numpy()
            if task is Task.AU:
                array = (array >= 0.5).astype(np.int64)
            elif task is Task.EXPR:
                array = array.argmax(axis=1)
            per_task[task][r.name] = array
    written = []
    for task, predictions in per_task.items():
        if predictions:
            path = out_dir / ABAW_DIR / task.value / "predictions.txt"
            written.append(write_submission(path, task, predictions))
    return written, notes


def check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise WildaffectError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt  # type: ignore[return-value]
