"""ABAW / Aff-Wild2 annotation files: parsing, tree layout, frame images.

One annotation file per video and task: line 1 is the header, line ``i + 1`` holds the labels
of frame ``FRAME_NAME_FORMAT.format(i)`` (1-based). Parsing is strict about content (every
frame line becomes exactly one row, or the file is rejected with its line number) and tolerant
about encoding details real files have: a UTF-8 BOM, ``\\r\\n`` or ``\\r`` line endings, no final
newline, trailing blank lines, spaces or tabs around values and header names, header names in
any letter case, and markers written as ``-5`` / ``-5.0`` / ``-1`` / ``-1.0``.

Decisions (tested in ``tests/test_abaw.py``):

* Numbers follow one grammar, ``[+-]digits[.digits][e[+-]digits]`` (``.5`` and ``5.`` too);
  ``nan``, ``inf``, ``1_0``, quotes and hex are rejected.
* AU values must equal 0, 1 or ``AU_INVALID``; ``1.0`` is accepted (it *is* 1).
* EXPR values must be integral: ``3`` and ``3.0`` give class 3, ``3.5`` is an error.
* VA values must lie in ``[VA_MIN, VA_MAX]`` or equal ``VA_INVALID``; validity is per
  dimension (a row with only valence invalid still trains arousal).
* A blank line between frame lines is an error (it would shift every later frame); blank lines
  after the last frame line are ignored (they shift nothing).

Speed: a fast path (one regular expression per line checks the grammar in C, pandas converts
the numbers) handles valid files; anything it does not accept is re-read by the line-by-line
reference parser :func:`parse_annotation_reference`, which finds the exact failing line. A
parity test checks both on random (hypothesis) input.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import (
    AU_INVALID,
    AU_VALUES,
    CROPPED_DIR,
    EXPR_INVALID,
    EXPR_NAMES,
    FRAME_NAME_FORMAT,
    SPEAKER_SUFFIXES,
    SPLITS,
    TASK_SPECS,
    VA_INVALID,
    VA_MAX,
    VA_MIN,
    Task,
)

#: Older releases keep the per-task folders under ``<root>/annotations/<legacy_dir>``.
LEGACY_ANNOTATIONS_DIR = "annotations"
#: Annotation files are ``<video><ANNOTATION_SUFFIX>``.
ANNOTATION_SUFFIX = ".txt"

_BOM = b"\xef\xbb\xbf"
_SPACE = " \t"
#: The one number grammar of annotation (and submission) cells, spaces/tabs already stripped.
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def n_value_columns(task: Task) -> int:
    """Values per frame line: EXPR files list 8 class names in the header but hold one class id."""
    return 1 if task is Task.EXPR else len(TASK_SPECS[task].columns)


def audio_video_name(video: str) -> str:
    """The video whose audio track a (possibly ``_left``/``_right``) annotated video uses."""
    for suffix in SPEAKER_SUFFIXES:
        if video.endswith(suffix):
            return video[: -len(suffix)]
    return video


def frame_names(n_frames: int) -> list[str]:
    """Image names of frame lines ``1..n_frames``."""
    return [FRAME_NAME_FORMAT.format(i) for i in range(1, n_frames + 1)]


@dataclass(frozen=True, eq=False)
class VideoLabels:
    """The labels of one video for one task, one row per frame line of the file.

    ``values`` keeps the file's numbers, invalid markers included:
    AU ``(T, 12)`` float32 in {0, 1, -1}; VA ``(T, 2)`` float32 in [-1, 1] or -5;
    EXPR ``(T,)`` int64 class ids in 0..7 or -1 (a 1-D array so it feeds a cross-entropy
    loss directly). ``valid`` has the same shape as ``values`` and is False exactly where
    the file holds the task's invalid marker.
    """

    video: str
    task: Task
    values: np.ndarray
    valid: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def frame_names(self) -> list[str]:
        """``frame_names[i]`` is the image of row ``i`` (``00001.jpg`` for row 0)."""
        return frame_names(self.n_frames)

    @property
    def audio_video(self) -> str:
        return audio_video_name(self.video)


# --------------------------------------------------------------------------- parsing


def format_annotation(task: Task, values: np.ndarray, line_ending: str = "\n") -> str:
    """The inverse of the parser: header line, then one line per frame (AU/EXPR as ints, VA
    with 3 decimals, invalid markers written as -1 / -5). Used to write datasets."""
    lines = [TASK_SPECS[task].header]
    if task is Task.EXPR:
        lines += [str(int(v)) for v in values]
    elif task is Task.AU:
        lines += [",".join(str(int(v)) for v in row) for row in values]
    else:
        invalid = TASK_SPECS[Task.VA].invalid
        lines += [
            ",".join(f"{invalid:g}" if v == invalid else f"{v:.3f}" for v in row)
            for row in values
        ]
    return line_ending.join(lines) + line_ending


def parse_annotation(path: str | Path, task: Task | str) -> VideoLabels:
    """Parse one ABAW annotation file; malformed content raises :class:`InputError`."""
    path = Path(path)
    task = Task(task)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from None
    values, valid = parse_annotation_bytes(data, task, source=path)
    return VideoLabels(video=path.name.removesuffix(ANNOTATION_SUFFIX), task=task, values=values,
                       valid=valid)


def parse_annotation_bytes(
    data: bytes, task: Task | str, source: str | Path = "<annotation>"
) -> tuple[np.ndarray, np.ndarray]:
    """``(values, valid)`` of an annotation file's bytes; ``source`` names it in errors."""
    task = Task(task)
    fast = _parse_fast(data, task)
    if fast is not None:
        return fast
    return parse_annotation_reference(data, task, source)


def _normalise_newlines(data: bytes) -> bytes:
    # \n and \r never occur inside a UTF-8 multi-byte sequence, so this is safe before decoding.
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _header_matches(header: str, task: Task) -> bool:
    names = [name.strip(_SPACE).lower() for name in header.split(",")]
    return names == [name.lower() for name in TASK_SPECS[task].columns]


_LINE_RES: dict[int, re.Pattern[str]] = {}


def _line_re(n_columns: int) -> re.Pattern[str]:
    """Matches one valid frame line (grammar only, not value ranges) at each line start."""
    if n_columns not in _LINE_RES:
        cell = f"[ \\t]*{_NUMBER}[ \\t]*"
        _LINE_RES[n_columns] = re.compile(
            "^" + ",".join([cell] * n_columns) + "$", re.MULTILINE
        )
    return _LINE_RES[n_columns]


def _parse_fast(data: bytes, task: Task) -> tuple[np.ndarray, np.ndarray] | None:
    """Vectorised parse of a well-formed file; ``None`` when anything looks wrong."""
    import pandas as pd

    data = data.removeprefix(_BOM)
    try:
        text = _normalise_newlines(data).decode("utf-8")
    except UnicodeDecodeError:
        return None
    header, _, body = text.partition("\n")
    if not _header_matches(header, task):
        return None
    body = body.rstrip(" \t\n")  # trailing blank lines (and the last line's trailing spaces)
    if not body:
        return None
    n_lines = body.count("\n") + 1
    n_columns = n_value_columns(task)
    if len(_line_re(n_columns).findall(body)) != n_lines:
        return None
    try:
        table = pd.read_csv(
            io.StringIO(body), header=None, dtype=np.float64, na_filter=False,
            skip_blank_lines=False, engine="c",
        )
    except (ValueError, pd.errors.ParserError):
        return None
    numbers = table.to_numpy()  # (T, C) float64
    if numbers.shape != (n_lines, n_columns) or not _in_domain(numbers, task).all():
        return None
    return _to_labels(numbers, task)


def _in_domain(numbers: np.ndarray, task: Task) -> np.ndarray:
    """Elementwise: is this number allowed for the task (invalid marker included)?"""
    if task is Task.AU:
        return np.isin(numbers, (*AU_VALUES, AU_INVALID))
    if task is Task.EXPR:
        integral = numbers == np.round(numbers)
        return integral & (
            ((numbers >= 0) & (numbers < len(EXPR_NAMES))) | (numbers == EXPR_INVALID)
        )
    return ((numbers >= VA_MIN) & (numbers <= VA_MAX)) | (numbers == VA_INVALID)


def _to_labels(numbers: np.ndarray, task: Task) -> tuple[np.ndarray, np.ndarray]:
    """numbers: (T, C) float64 already checked -> (values, valid) as documented on VideoLabels."""
    if task is Task.EXPR:
        values = numbers[:, 0].astype(np.int64)  # (T,)
        return values, values != EXPR_INVALID
    values = numbers.astype(np.float32)  # (T, C)
    return values, values != np.float32(TASK_SPECS[task].invalid)


def _domain_error(task: Task, column: str, token: str, number: float) -> str | None:
    """Why ``number`` is not allowed in ``column``, or None when it is (scalar twin of
    :func:`_in_domain`, kept plain Python so the reference parser stays independent)."""
    if task is Task.AU and number in (*AU_VALUES, AU_INVALID):
        return None
    if task is Task.EXPR and number == int(number) and (
        0 <= number < len(EXPR_NAMES) or number == EXPR_INVALID
    ):
        return None
    if task is Task.VA and (VA_MIN <= number <= VA_MAX or number == VA_INVALID):
        return None
    if task is Task.AU:
        return f"{column} is {token!r}; expected 0, 1 or {AU_INVALID} (invalid)"
    if task is Task.EXPR:
        if number != round(number):
            return f"expression class {token!r} is not an integer"
        return (
            f"expression class {token!r} is not one of 0..{len(EXPR_NAMES) - 1} "
            f"or {EXPR_INVALID} (invalid)"
        )
    return (
        f"{column} is {token!r}; expected a value in [{VA_MIN:g}, {VA_MAX:g}] "
        f"or {VA_INVALID:g} (invalid)"
    )


def decode_line(raw: bytes, source: str | Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            source, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})",
            line=line,
        ) from None


def split_lines(data: bytes, source: str | Path) -> list[bytes]:
    """File bytes -> raw lines without terminators, BOM and trailing blank lines dropped.

    Shared with the submission reader so that both count lines the same way.
    """
    data = data.removeprefix(_BOM)
    lines = _normalise_newlines(data).split(b"\n")
    while lines and not lines[-1].strip(b" \t"):
        lines.pop()
    if not lines:
        raise InputError(source, "empty file")
    return lines


def parse_annotation_reference(
    data: bytes, task: Task | str, source: str | Path = "<annotation>"
) -> tuple[np.ndarray, np.ndarray]:
    """Line-by-line reference parser: slow, but names the first bad line and why."""
    task = Task(task)
    spec = TASK_SPECS[task]
    lines = split_lines(data, source)
    header = decode_line(lines[0], source, 1)
    if not _header_matches(header, task):
        shown = header.strip() if len(header) <= 120 else header[:117] + "..."
        raise InputError(
            source, f"header is {shown!r}, expected {spec.header!r} ({task.value} file)", line=1
        )
    if len(lines) == 1:
        raise InputError(source, "header only: the file has no frame lines", line=1)
    n_columns = n_value_columns(task)
    columns = spec.columns if n_columns > 1 else ("expression class",)
    rows: list[list[float]] = []
    for line_no, raw in enumerate(lines[1:], start=2):
        text = decode_line(raw, source, line_no)
        if not text.strip(_SPACE):
            raise InputError(
                source, "blank line between frame lines (every line is one frame)", line=line_no
            )
        cells = text.split(",")
        if len(cells) != n_columns:
            raise InputError(
                source, f"expected {n_columns} value(s) per line, found {len(cells)}",
                line=line_no,
            )
        row = []
        for column, cell in zip(columns, cells):
            token = cell.strip(_SPACE)
            if not _NUMBER_RE.fullmatch(token):
                kind = "a finite number" if token.lower() in _NON_FINITE else "a number"
                raise InputError(source, f"{column}: {token!r} is not {kind}", line=line_no)
            number = float(token)
            if not math.isfinite(number):  # e.g. 1e400
                raise InputError(source, f"{column}: {token!r} is not a finite number",
                                 line=line_no)
            reason = _domain_error(task, column, token, number)
            if reason is not None:
                raise InputError(source, reason, line=line_no)
            row.append(number)
        rows.append(row)
    return _to_labels(np.array(rows, dtype=np.float64).reshape(len(rows), n_columns), task)


# --------------------------------------------------------------------------- tree layout


class Layout(str, Enum):
    """Where the per-task annotation folders live."""

    CHALLENGE = "challenge"  # <root>/AU_Detection_Challenge/... (6th ABAW on)
    LEGACY = "legacy"  # <root>/annotations/AU_Set/... (older releases)


@dataclass(frozen=True)
class AnnotationRoot:
    """A detected ABAW tree: its layout and the folder of each task it has."""

    root: Path
    layout: Layout
    task_dirs: dict[Task, Path]


def find_annotation_root(root: str | Path) -> AnnotationRoot:
    """Detect the layout of an ABAW tree.

    Accepts the dataset root of either layout, or the ``annotations/`` folder itself. A tree
    may hold only some tasks; when both layouts are present the challenge one wins.
    """
    root = Path(root)
    if not root.is_dir():
        raise WildaffectError(f"{root}: not a directory")
    candidates = (
        (Layout.CHALLENGE, root, "challenge_dir"),
        (Layout.LEGACY, root / LEGACY_ANNOTATIONS_DIR, "legacy_dir"),
        (Layout.LEGACY, root, "legacy_dir"),
    )
    for layout, base, attribute in candidates:
        task_dirs = {
            task: base / getattr(spec, attribute)
            for task, spec in TASK_SPECS.items()
            if (base / getattr(spec, attribute)).is_dir()
        }
        if task_dirs:
            return AnnotationRoot(root=root, layout=layout, task_dirs=task_dirs)
    expected_new = ", ".join(spec.challenge_dir for spec in TASK_SPECS.values())
    expected_old = ", ".join(spec.legacy_dir for spec in TASK_SPECS.values())
    raise WildaffectError(
        f"{root}: no ABAW annotations found: expected one of {expected_new} "
        f"or {LEGACY_ANNOTATIONS_DIR}/{{{expected_old}}}"
    )


@dataclass(frozen=True)
class AnnotationFile:
    """One annotation file of the tree."""

    task: Task
    split: str
    video: str
    path: Path


@dataclass(frozen=True)
class DatasetIndex:
    """Every annotation file of a tree, sorted by task, split and video."""

    root: Path
    layout: Layout
    files: tuple[AnnotationFile, ...]

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[AnnotationFile]:
        return iter(self.files)

    @property
    def tasks(self) -> list[Task]:
        return sorted({f.task for f in self.files}, key=list(Task).index)

    def select(self, task: Task | str | None = None, split: str | None = None
               ) -> list[AnnotationFile]:
        task = Task(task) if task is not None else None
        return [
            f for f in self.files
            if (task is None or f.task is task) and (split is None or f.split == split)
        ]

    def videos(self, task: Task | str, split: str) -> list[str]:
        return [f.video for f in self.select(task, split)]

    def path(self, task: Task | str, split: str, video: str) -> Path:
        for f in self.select(task, split):
            if f.video == video:
                return f.path
        raise WildaffectError(
            f"{self.root}: no {Task(task).value} annotation for {video} in {split}")


def scan_dataset(root: str | Path, task: Task | str | None = None) -> DatasetIndex:
    """List the annotation files of ``root`` (all tasks it has, or just ``task``).

    Every listed task must have all of ``SPLITS``, each with at least one ``.txt`` file;
    hidden files and other extensions are ignored.
    """
    found = find_annotation_root(root)
    if task is not None:
        task = Task(task)
        if task not in found.task_dirs:
            spec = TASK_SPECS[task]
            folder = spec.challenge_dir if found.layout is Layout.CHALLENGE else spec.legacy_dir
            raise WildaffectError(f"{found.root}: no {task.value} annotations ({folder}/ missing)")
        tasks = [task]
    else:
        tasks = [t for t in Task if t in found.task_dirs]
    files = []
    for t in tasks:
        for split in SPLITS:
            split_dir = found.task_dirs[t] / split
            if not split_dir.is_dir():
                raise WildaffectError(f"{found.task_dirs[t]}: missing the {split}/ folder")
            paths = sorted(  # hidden files (e.g. macOS "._x.txt" resource forks) are not labels
                p for p in split_dir.glob("*" + ANNOTATION_SUFFIX)
                if p.is_file() and not p.name.startswith(".")
            )
            if not paths:
                raise WildaffectError(f"{split_dir}: no {ANNOTATION_SUFFIX} annotation files")
            files.extend(
                AnnotationFile(t, split, p.name.removesuffix(ANNOTATION_SUFFIX), p) for p in paths
            )
    return DatasetIndex(root=found.root, layout=found.layout, files=tuple(files))


# --------------------------------------------------------------------------- frame images


def find_frames_dir(root: str | Path, frames_dir: str | Path | None = None) -> Path | None:
    """The aligned-crops folder: ``frames_dir`` if given (it must exist), else
    ``cropped_aligned`` inside or beside ``root``, else None."""
    if frames_dir is not None:
        frames_dir = Path(frames_dir)
        if not frames_dir.is_dir():
            raise WildaffectError(f"{frames_dir}: frames folder not found")
        return frames_dir
    root = Path(root)
    for candidate in (root / CROPPED_DIR, root.parent / CROPPED_DIR):
        if candidate.is_dir():
            return candidate
    return None


def frame_path(frames_root: str | Path, video: str, frame_index: int) -> Path:
    """Image of row ``frame_index`` (0-based, as in ``VideoLabels.values``): row 0 -> 00001.jpg."""
    if frame_index < 0:
        raise ValueError(f"frame_index must be >= 0, got {frame_index}")
    return Path(frames_root) / video / FRAME_NAME_FORMAT.format(frame_index + 1)


def frames_present(frames_root: str | Path, video: str, n_frames: int) -> np.ndarray:
    """``(n_frames,)`` bool: does the image of each row exist? (one directory listing)"""
    video_dir = Path(frames_root) / video
    try:
        with os.scandir(video_dir) as entries:
            names = {entry.name for entry in entries}
    except (FileNotFoundError, NotADirectoryError):
        names = set()
    return np.fromiter((name in names for name in frame_names(n_frames)), dtype=bool,
                       count=n_frames)
