"""The prediction table: its columns, how model outputs become rows, gap interpolation.

One row per decoded frame (per 20 ms for audio-only input)::

    frame  time_s  face  AU1 ... AU26  Neutral ... Other  expression  valence  arousal

``frame`` is 1-based (Aff-Wild2's frame numbering), ``face`` is 1 when the tracked face was
found. Rows without a face keep empty (NaN) predictions unless the input is audio-only and
the model hears audio (then the expression and valence/arousal columns come from the voice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wildaffect.labels import AU_NAMES, EXPR_NAMES, VA_NAMES

FRAME, TIME, FACE, EXPRESSION = "frame", "time_s", "face", "expression"
#: Every prediction file has exactly these columns, in this order.
COLUMNS: tuple[str, ...] = (
    FRAME, TIME, FACE, *AU_NAMES, *EXPR_NAMES, EXPRESSION, *VA_NAMES,
)
#: The numeric prediction columns (what interpolation fills).
VALUE_COLUMNS: tuple[str, ...] = (*AU_NAMES, *EXPR_NAMES, *VA_NAMES)


def build_rows(
    first_index: int,
    times: np.ndarray,
    has_face: np.ndarray,
    au: np.ndarray,
    expr: np.ndarray,
    va: np.ndarray,
) -> pd.DataFrame:
    """times, has_face: (T,); au (T, 12), expr (T, 8), va (T, 2) float, NaN = no value."""
    n = len(times)
    data: dict[str, np.ndarray] = {
        FRAME: np.arange(first_index + 1, first_index + n + 1, dtype=np.int64),
        TIME: np.asarray(times, np.float64),
        FACE: np.asarray(has_face, bool).astype(np.int8),
    }
    for names, values in ((AU_NAMES, au), (EXPR_NAMES, expr)):
        for k, name in enumerate(names):
            data[name] = values[:, k].astype(np.float64)
    data[EXPRESSION] = pd.Series(expression_names(expr), dtype=object)
    for k, name in enumerate(VA_NAMES):
        data[name] = va[:, k].astype(np.float64)
    return pd.DataFrame(data, columns=list(COLUMNS))


def expression_names(expr: np.ndarray) -> np.ndarray:
    """(T, 8) probabilities -> (T,) arg-max class names (None where the row is NaN)."""
    names = np.full(len(expr), None, dtype=object)
    valid = np.isfinite(expr).all(axis=1)
    names[valid] = np.asarray(EXPR_NAMES, dtype=object)[expr[valid].argmax(axis=1)]
    return names


class GapFiller:
    """Streams rows and fills the predictions of face-less rows (``--interpolate``).

    A gap between two face rows is filled linearly in time between them; rows before the
    first face take the first face's values and rows after the last take the last's. Rows of
    an open gap are held until the next face row arrives, so memory is bounded by the longest
    gap and the result does not depend on how the rows were chunked.
    """

    def __init__(self) -> None:
        self._pending: pd.DataFrame | None = None  # rows after the last face row
        self._anchor: pd.Series | None = None  # the last face row seen

    def push(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Add rows; returns the rows that are final now (maybe none)."""
        if self._pending is not None:
            rows = pd.concat([self._pending, rows], ignore_index=True)
        faces = np.flatnonzero(rows[FACE].to_numpy() == 1)
        if len(faces) == 0:
            self._pending = rows
            return rows.iloc[:0]
        ready, self._pending = rows.iloc[: faces[-1] + 1].copy(), rows.iloc[faces[-1] + 1 :]
        ready = self._fill(ready)
        self._anchor = ready.iloc[-1]
        return ready

    def flush(self) -> pd.DataFrame:
        """The held rows at the end of the input (filled with the last face's values)."""
        rows, self._pending = self._pending, None
        if rows is None or rows.empty:
            return pd.DataFrame(columns=list(COLUMNS))
        rows = rows.copy()
        if self._anchor is not None:
            for name in VALUE_COLUMNS:
                rows[name] = self._anchor[name]
            rows[EXPRESSION] = _as_column(np.full(len(rows), self._anchor[EXPRESSION]), rows)
        return rows

    def _fill(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rows ending with a face row: interpolate their gaps (with the anchor before them)."""
        values = rows[list(VALUE_COLUMNS)].copy()
        values[rows[FACE].to_numpy() == 0] = np.nan
        times = rows[TIME].to_numpy()
        if self._anchor is not None:
            anchor = self._anchor[list(VALUE_COLUMNS)].to_frame().T.astype(float)
            values = pd.concat([anchor, values], ignore_index=True)
            times = np.concatenate([[self._anchor[TIME]], times])
        values.index = pd.Index(times)
        filled = values.interpolate(method="index", limit_direction="both")
        if self._anchor is not None:
            filled = filled.iloc[1:]
        for name in VALUE_COLUMNS:
            rows[name] = filled[name].to_numpy()
        rows[EXPRESSION] = _as_column(expression_names(rows[list(EXPR_NAMES)].to_numpy()), rows)
        return rows


def _as_column(names: np.ndarray, rows: pd.DataFrame) -> pd.Series:
    """The expression column as plain objects (None where empty), whatever pandas infers."""
    return pd.Series(names, index=rows.index, dtype=object)
