"""Import pre-extracted behaviour features (seed 003 ¶0's stream) onto a record's frames.

Seed 003 ¶0 has a vision-language model describe each video segment; no such model is bundled,
so the features are made elsewhere and imported: one file per video in a folder,

- ``<video>.npy``: (T, D) float, one row per video frame of the record (T = its frame count);
- ``<video>.csv``: a ``time_s`` column (seconds from the first frame, increasing) and D numeric
  feature columns, interpolated linearly in time onto the frames. Frames more than half the
  file's median sampling interval before its first or after its last row get no features
  (NaN rows in the cache, masked when training).

A file that cannot be used (wrong shape or width, a NaN, no ``time_s``) is an
:class:`~wildaffect.errors.InputError` naming it; ``extract`` lists it and goes on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildaffect.errors import InputError

TIME_COLUMN = "time_s"
BEHAVIOUR_SUFFIXES: tuple[str, ...] = (".npy", ".csv")
#: Largest magnitude float16 storage keeps finite.
FLOAT16_MAX = float(np.finfo(np.float16).max)


def find_stream_file(folder: Path, names: list[str], suffixes: tuple[str, ...]) -> Path | None:
    """The first ``<name><suffix>`` in ``folder`` (names in order: record name, source stem)."""
    for name in names:
        for suffix in suffixes:
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    return None


def read_behaviour(
    path: Path, frame_times: np.ndarray, width: int | None = None
) -> np.ndarray:
    """One behaviour file -> (T, D) float32 on the frames, NaN rows where a frame has none.

    ``width``: the D every file of the feature set must have (None: whatever this one has).
    """
    n_frames = len(frame_times)
    if path.suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise InputError(path, f"unreadable .npy ({err})") from None
        if values.ndim != 2 or values.shape[0] != n_frames:
            raise InputError(path, f"shape {values.shape}, expected ({n_frames}, D): one row "
                                   "per video frame of the record")  # fmt: skip
        if not np.issubdtype(values.dtype, np.number):
            raise InputError(path, f"dtype {values.dtype} is not numeric")
        out = values.astype(np.float32)
        _check_values(path, out, width)
        return out
    times, values = _read_csv(path)
    _check_values(path, values, width)
    return resample(times, values, frame_times - frame_times[0] if n_frames else frame_times)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N,) times and (N, D) float32 values of a behaviour CSV."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"unreadable CSV ({str(err).splitlines()[0]})") from None
    if TIME_COLUMN not in table.columns:
        raise InputError(path, f"no {TIME_COLUMN!r} column (columns: "
                               f"{', '.join(map(str, table.columns[:5]))}...)")  # fmt: skip
    features = table.drop(columns=[TIME_COLUMN])
    if features.shape[1] == 0 or len(table) == 0:
        raise InputError(path, f"needs at least one row and one feature column besides "
                               f"{TIME_COLUMN!r}")  # fmt: skip
    numeric = features.apply(pd.to_numeric, errors="coerce")
    times = pd.to_numeric(table[TIME_COLUMN], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(times))
    if len(bad):
        raise InputError(path, f"{TIME_COLUMN} is not a number", line=int(bad[0]) + 2)
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        row = int(np.flatnonzero(np.diff(times) <= 0)[0]) + 3
        raise InputError(path, f"{TIME_COLUMN} must increase from row to row", line=row)
    values = numeric.to_numpy(np.float32)  # non-numbers became NaN: reported below
    return times, values


#: Rows of a memory-mapped .npy checked at a time by :func:`load_behaviour`.
CHECK_ROWS = 4096


def load_behaviour(
    path: Path, width: int, width_source: str
) -> tuple[np.ndarray | None, np.ndarray]:
    """One behaviour file checked before its frames are known (``predict`` streams them) ->
    (times, values): a .csv's (N,) times and (N, D) float32 values (interpolate them with
    :func:`resample`), or None and a .npy's (T, D) rows memory-mapped (one per frame: the
    caller checks T against the frames it decodes). ``width``: the D the reader expects, which
    ``width_source`` names in the error ("model 'x' reads").
    """
    if path.suffix != ".npy":
        times, values = _read_csv(path)
        _check_values(path, values, width, width_source=width_source)
        return times, values
    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(path, f"unreadable .npy ({err})") from None
    if values.ndim != 2:
        raise InputError(path, f"shape {values.shape}, expected (T, D): one row per frame")
    if not np.issubdtype(values.dtype, np.number):
        raise InputError(path, f"dtype {values.dtype} is not numeric")
    for first in range(0, max(len(values), 1), CHECK_ROWS):  # bounded memory on long files
        block = np.asarray(values[first : first + CHECK_ROWS], np.float32)
        _check_values(path, block, width, first_row=first, width_source=width_source)
    return None, values


def _check_values(
    path: Path, values: np.ndarray, width: int | None, *, first_row: int = 0,
    width_source: str = "the behaviour features already in the cache have",
) -> None:  # fmt: skip
    if width is not None and values.shape[1] != width:
        raise InputError(path, f"{values.shape[1]} features per row, {width_source} "
                               f"{width}")  # fmt: skip
    finite = np.isfinite(values)
    if not finite.all():
        row = first_row + int(np.flatnonzero(~finite.all(axis=1))[0])
        raise InputError(path, f"row {row} holds NaN, infinity or a non-number (drop the row "
                               "instead: frames without features are masked)")  # fmt: skip
    if np.abs(values).max(initial=0.0) > FLOAT16_MAX:
        raise InputError(path, f"values beyond {FLOAT16_MAX:g} do not fit the float16 cache; "
                               "scale them first")  # fmt: skip


def resample(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(N,) increasing times, (N, D) values -> (len(at), D) float32 linear in time; NaN rows
    for ``at`` more than half the median interval outside ``[times[0], times[-1]]``."""
    tolerance = float(np.median(np.diff(times))) / 2 if len(times) > 1 else 0.02
    out = np.full((len(at), values.shape[1]), np.nan, np.float32)
    inside = (at >= times[0] - tolerance) & (at <= times[-1] + tolerance)
    if len(times) == 1:
        out[inside] = values[0]
        return out
    t = np.clip(at[inside], times[0], times[-1])
    left = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)  # (n,)
    weight = ((t - times[left]) / (times[left + 1] - times[left]))[:, None]  # (n, 1)
    out[inside] = values[left] * (1 - weight) + values[left + 1] * weight
    return out


__all__ = ["BEHAVIOUR_SUFFIXES", "TIME_COLUMN", "find_stream_file", "load_behaviour",
           "read_behaviour", "resample"]
