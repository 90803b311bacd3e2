"""The per-frame prediction table the report draws from: its columns and the questions asked of it.

One row per frame: ``frame`` (1-based), ``time_s``, ``face`` (0/1), the AU probabilities, the
expression probabilities, ``expression`` (arg-max name) and valence/arousal. Rows without a face
hold NaN, except for audio-only input, where expression and valence/arousal come from the voice
and only the AU columns are NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wildaffect.errors import WildaffectError
from wildaffect.labels import AU_NAMES, EXPR_NAMES
from wildaffect.predict.table import COLUMNS

#: An AU counts as active at or above this probability (the ABAW default threshold).
AU_ACTIVE = 0.5


def check_table(table: pd.DataFrame) -> None:
    """Raise a one-line error when columns the report needs are missing."""
    missing = [name for name in COLUMNS if name not in table.columns]
    if missing:
        raise WildaffectError(f"prediction table lacks the columns {', '.join(missing)}")


def face_mask(table: pd.DataFrame) -> np.ndarray:
    """(T,) bool: rows where a face was found."""
    return table["face"].fillna(0).to_numpy().astype(bool)


def is_audio_only(table: pd.DataFrame) -> bool:
    """True for a table predicted from the voice alone: no face and no AU anywhere, but
    expression estimates present."""
    no_face = not face_mask(table).any()
    no_au = bool(table[list(AU_NAMES)].isna().all(axis=None))
    has_expr = bool(table[list(EXPR_NAMES)].notna().any(axis=None))
    return no_face and no_au and has_expr


def expression_codes(table: pd.DataFrame) -> np.ndarray:
    """(T,) int: index into ``EXPR_NAMES`` of each row's arg-max class, -1 where there is none."""
    return pd.Categorical(table["expression"], categories=list(EXPR_NAMES)).codes.astype(np.int64)


def top_active_aus(row: pd.Series, k: int = 3) -> list[tuple[str, float]]:
    """Up to ``k`` AUs of one row with probability >= ``AU_ACTIVE``, most probable first."""
    probs = row[list(AU_NAMES)].astype(float)
    active = probs[probs >= AU_ACTIVE].sort_values(ascending=False, kind="stable")
    return [(str(name), float(p)) for name, p in active.iloc[:k].items()]
