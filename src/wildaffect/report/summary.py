"""A short rich table that sums up a prediction table for the terminal (``demo``, ``predict``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.table import Table

from wildaffect.labels import AU_NAMES, EXPR_NAMES, VA_NAMES
from wildaffect.report.table import check_table, expression_codes, face_mask, is_audio_only

#: AUs listed as the most active (highest mean probability over the face frames).
SUMMARY_TOP_AUS = 3


def summarise(table: pd.DataFrame, title: str | None = None) -> Table:
    """Frames, face frames, dominant expression, mean valence/arousal and the most active AUs.

    The statistics are over the frames with a face, or over every frame with an estimate for
    audio-only input (expression and valence/arousal from the voice; no AU).
    """
    check_table(table)
    audio_only = is_audio_only(table)
    faces = face_mask(table)  # (T,)
    rows = table[table[list(EXPR_NAMES)].notna().all(axis=1)] if audio_only else table[faces]
    summary = Table(title=title or "wildaffect summary", show_header=False, title_justify="left")
    summary.add_column("measure", style="bold")
    summary.add_column("value")
    summary.add_row("frames", str(len(table)))
    if audio_only:
        summary.add_row("input", "audio only: expression and valence/arousal from the voice")
    else:
        share = f" ({faces.mean():.0%})" if len(table) else ""
        summary.add_row("frames with a face", f"{int(faces.sum())}{share}")
    over = "estimated frames" if audio_only else "face frames"
    if rows.empty:
        summary.add_row("predictions", "none (no face in any frame)" if len(table) else "none")
        return summary

    codes = expression_codes(rows)
    counts = np.bincount(codes[codes >= 0], minlength=len(EXPR_NAMES))
    if counts.sum():
        best = int(counts.argmax())
        summary.add_row(
            "dominant expression", f"{EXPR_NAMES[best]} ({counts[best] / len(rows):.0%} of {over})"
        )
    for name in VA_NAMES:
        values = rows[name].astype(float)
        mean = f"{values.mean():+.2f}" if values.notna().any() else "n/a"
        summary.add_row(f"mean {name}", mean)
    au_means = rows[list(AU_NAMES)].astype(float).mean()
    if au_means.notna().any():
        top = au_means.dropna().sort_values(ascending=False, kind="stable").iloc[:SUMMARY_TOP_AUS]
        summary.add_row("most active AUs", ", ".join(f"{au} {p:.2f}" for au, p in top.items()))
    else:
        summary.add_row("most active AUs", "n/a (audio only)" if audio_only else "n/a")
    return summary
