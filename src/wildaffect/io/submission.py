"""ABAW challenge submissions: one ``predictions.txt`` per task.

Format: header ``image_location,<task columns>`` (EXPR lists the 8 class names but each row
holds one class id), then one row per frame, ``<video>/<frame>.jpg,<values>``, in the order of
the organisers' sample file. The reader re-uses the annotation parser on the value columns, so
a submission is held to the same grammar as the annotations, minus the invalid markers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildaffect.data.abaw import (
    decode_line,
    n_value_columns,
    parse_annotation_bytes,
    split_lines,
)
from wildaffect.data.abaw import (
    frame_names as default_frame_names,
)
from wildaffect.errors import InputError
from wildaffect.io.atomic import atomic_write_text
from wildaffect.labels import EXPR_NAMES, TASK_SPECS, VA_MAX, VA_MIN, Task

#: First column of every submission and sample file.
LOCATION_COLUMN = "image_location"


def submission_header(task: Task | str) -> str:
    return f"{LOCATION_COLUMN},{TASK_SPECS[Task(task)].header}"


def image_location(video: str, frame_name: str) -> str:
    return f"{video}/{frame_name}"


def split_location(location: str) -> tuple[str, str]:
    """``"video/00001.jpg"`` -> ``("video", "00001.jpg")``."""
    video, _, frame = location.rpartition("/")
    return video, frame


@dataclass(frozen=True, eq=False)
class Submission:
    """A parsed submission, rows in file order.

    ``values``: AU (N, 12) int64 in {0, 1}; EXPR (N,) int64 class ids; VA (N, 2) float32.
    """

    task: Task
    locations: list[str]
    values: np.ndarray

    def by_video(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """video -> (frame names, values) in file order."""
        rows: dict[str, list[int]] = {}
        for i, location in enumerate(self.locations):
            rows.setdefault(split_location(location)[0], []).append(i)
        return {
            video: ([split_location(self.locations[i])[1] for i in idx], self.values[idx])
            for video, idx in rows.items()
        }


# --------------------------------------------------------------------------- reading


def _read_rows(path: Path, task: Task) -> list[tuple[int, str, str]]:
    """``(line, location, values text)`` of each row; checks the header and the locations."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from None
    lines = split_lines(data, path)
    header = decode_line(lines[0], path, 1)
    expected = submission_header(task)
    if [c.strip(" \t").lower() for c in header.split(",")] != expected.lower().split(","):
        raise InputError(path, f"header is {header.strip()[:120]!r}, expected {expected!r}",
                         line=1)
    if len(lines) == 1:
        raise InputError(path, "header only: the file has no rows", line=1)
    rows = []
    seen: dict[str, int] = {}
    for line_no, raw in enumerate(lines[1:], start=2):
        location, comma, rest = decode_line(raw, path, line_no).partition(",")
        location = location.strip(" \t")
        video, frame = split_location(location)
        if not video or not frame:
            raise InputError(path, f"{LOCATION_COLUMN} {location!r} is not <video>/<frame>",
                             line=line_no)
        if location in seen:
            raise InputError(path, f"{location!r} already on line {seen[location]}",
                             line=line_no)
        seen[location] = line_no
        rows.append((line_no, location, rest if comma else None))
    return rows


def read_sample_locations(path: str | Path, task: Task | str) -> list[str]:
    """The ``image_location`` column of an organisers'-style sample file (values ignored)."""
    return [location for _, location, _ in _read_rows(Path(path), Task(task))]


def read_submission(path: str | Path, task: Task | str) -> Submission:
    """Parse a ``predictions.txt``; any malformed row raises :class:`InputError` with its line."""
    path, task = Path(path), Task(task)
    rows = _read_rows(path, task)
    width = n_value_columns(task)
    for line_no, _, rest in rows:
        if rest is None:
            raise InputError(path, f"expected {LOCATION_COLUMN} and {width} value(s)",
                             line=line_no)
    # Same line numbers as the file: header on line 1, row k on line k + 1.
    body = TASK_SPECS[task].header + "\n" + "\n".join(rest for _, _, rest in rows)
    values, valid = parse_annotation_bytes(body.encode("utf-8"), task, source=path)
    row_ok = valid if valid.ndim == 1 else valid.all(axis=1)
    if not row_ok.all():
        bad = int(np.argmin(row_ok))
        raise InputError(path, "the invalid-label marker is not a prediction", line=rows[bad][0])
    if task is Task.AU:
        values = values.astype(np.int64)
    return Submission(task=task, locations=[loc for _, loc, _ in rows], values=values)


# --------------------------------------------------------------------------- writing


def _check_predictions(task: Task, video: str, values: np.ndarray) -> np.ndarray:
    """Validate one video's predictions; returns them in the written dtype."""
    values = np.asarray(values)
    width = n_value_columns(task)
    if task is Task.EXPR and values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    expected_ndim = 1 if task is Task.EXPR else 2
    if values.ndim != expected_ndim or (expected_ndim == 2 and values.shape[1] != width):
        shape = "(T,)" if task is Task.EXPR else f"(T, {width})"
        raise ValueError(f"{video}: {task.value} predictions must be {shape}, got {values.shape}")
    if task is Task.VA:
        if not np.isfinite(values).all():
            raise ValueError(f"{video}: VA predictions contain NaN or inf")
        return np.clip(values.astype(np.float32), VA_MIN, VA_MAX)
    if values.dtype.kind == "f" and not (values == np.round(values)).all():
        raise ValueError(f"{video}: {task.value} predictions must be integers "
                         "(threshold AU probabilities, argmax EXPR logits first)")
    ints = values.astype(np.int64)
    allowed = (0, 1) if task is Task.AU else tuple(range(len(EXPR_NAMES)))
    if not np.isin(ints, allowed).all():
        raise ValueError(
            f"{video}: {task.value} predictions must be in {allowed[0]}..{allowed[-1]}")
    return ints


def _nearest(predicted: np.ndarray, wanted: int) -> int:
    """Index into sorted ``predicted`` frame numbers of the one nearest ``wanted`` (ties:
    earlier)."""
    right = int(np.searchsorted(predicted, wanted))
    if right == 0:
        return 0
    if right == len(predicted):
        return len(predicted) - 1
    return right - 1 if wanted - predicted[right - 1] <= predicted[right] - wanted else right


def _frame_number(frame: str) -> int | None:
    stem = frame.rsplit(".", 1)[0]
    return int(stem) if stem.isdigit() else None


def write_submission(
    path: str | Path,
    task: Task | str,
    predictions: Mapping[str, np.ndarray],
    *,
    sample: str | Path | None = None,
    frame_names: Mapping[str, Sequence[str]] | None = None,
    fill: bool = False,
) -> Path:
    """Write ``predictions`` as an ABAW ``predictions.txt`` (atomically).

    ``predictions[video]`` holds one row per frame: AU (T, 12) 0/1, EXPR (T,) class ids,
    VA (T, 2) floats (clipped to [-1, 1]). Row ``i`` is frame ``frame_names[video][i]``,
    by default ``00001.jpg`` .. (the annotation's frame numbering). Rows follow ``sample``
    (an organisers'-style file: same header, its ``image_location`` column decides the order);
    without it, videos in sorted order and frames as given. A sample row without a prediction
    is an :class:`InputError` naming that row, unless ``fill``: then it copies the prediction
    of the nearest predicted frame (by frame number; ties take the earlier frame) of the same
    video. A video with no predictions at all is an error either way.
    """
    task = Task(task)
    checked = {video: _check_predictions(task, video, v) for video, v in predictions.items()}
    names: dict[str, Sequence[str]] = {}
    lookup: dict[str, dict[str, int]] = {}
    for video, values in checked.items():
        names[video] = (frame_names[video] if frame_names is not None and video in frame_names
                        else default_frame_names(len(values)))
        if len(names[video]) != len(values):
            raise ValueError(
                f"{video}: {len(values)} predictions but {len(names[video])} frame names")
        lookup[video] = {name: i for i, name in enumerate(names[video])}

    if sample is None:
        order = [  # (location written, video, row of its predictions)
            (image_location(video, names[video][i]), video, i)
            for video in sorted(checked) for i in range(len(checked[video]))
        ]
    else:
        sample_path = Path(sample)
        order = []
        fill_index: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for line_no, location, _ in _read_rows(sample_path, task):
            video, frame = split_location(location)
            row = lookup.get(video, {}).get(frame)
            if row is None:
                if not fill or video not in lookup:
                    reason = ("no prediction for video" if video not in lookup
                              else "no prediction for frame")
                    raise InputError(sample_path, f"{reason} {location!r}", line=line_no)
                row = _fill_row(sample_path, line_no, video, frame, names[video], fill_index)
            order.append((location, video, row))

    texts = {}  # video -> one "v1,v2,..." string per row; astype(str) is the shortest repr
    for video, values in checked.items():
        cells = values.astype(str).tolist()
        texts[video] = cells if task is Task.EXPR else [",".join(row) for row in cells]
    lines = [submission_header(task)]
    lines += [f"{location},{texts[video][row]}" for location, video, row in order]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def _fill_row(sample: Path, line_no: int, video: str, frame: str, names: Sequence[str],
              cache: dict[str, tuple[np.ndarray, np.ndarray]]) -> int:
    """Row of the predicted frame nearest to ``frame`` (see :func:`write_submission`)."""
    wanted = _frame_number(frame)
    if wanted is None:
        raise InputError(sample, f"cannot fill {video}/{frame}: frame name is not a number",
                         line=line_no)
    if video not in cache:
        numbers = [_frame_number(name) for name in names]
        if any(n is None for n in numbers):
            raise InputError(sample, f"cannot fill {video}/{frame}: predicted frame names "
                             "are not numbers", line=line_no)
        numbers_arr = np.array(numbers, dtype=np.int64)
        order = np.argsort(numbers_arr, kind="stable")
        cache[video] = (numbers_arr[order], order)
    sorted_numbers, order = cache[video]
    return int(order[_nearest(sorted_numbers, wanted)])
