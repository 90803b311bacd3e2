"""Timeline plot of a prediction table: AU heat map, expression ribbon, valence/arousal curves.

The three panels share one time axis (seconds). Long inputs are drawn from at most
``MAX_COLUMNS`` time bins (frames grouped in equal runs: mean probability for the AUs and the
curves, the most frequent arg-max class for the ribbon), so an hour of frames costs the same
drawing time and memory as a minute; a gap shorter than one bin then fades into its
neighbours. Bins are placed at the frames' own times, so variable-frame-rate input is drawn
where it happened.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from wildaffect.io.atomic import atomic_write_bytes
from wildaffect.labels import AU_NAMES, EXPR_NAMES, VA_MAX, VA_MIN, VA_NAMES
from wildaffect.report.style import expr_colour_float
from wildaffect.report.table import check_table, expression_codes, face_mask, is_audio_only

#: Most time bins drawn per panel (about one per output pixel column).
MAX_COLUMNS = 1500
#: Figure size (inches) and resolution: the PNG is FIGSIZE * DPI pixels.
FIGSIZE = (12.0, 7.0)
DPI = 100
#: Width given to the last bin when the frame step cannot be measured (a single frame).
DEFAULT_FRAME_S = 0.04
#: Colour of time bins without an estimate (no face) in the heat map.
GAP_COLOUR = "0.85"


def _bins(n_rows: int, max_columns: int) -> np.ndarray:
    """(T,) int: the drawing bin of each row, ``min(T, max_columns)`` equal runs of rows."""
    n_bins = max(1, min(n_rows, max_columns))
    return np.arange(n_rows) * n_bins // max(n_rows, 1)


def _bin_mean(values: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Mean of the finite ``values`` (T, C) per bin -> (n_bins, C); NaN for a bin with none."""
    finite = np.isfinite(values)
    sums = np.zeros((n_bins, values.shape[1]))
    counts = np.zeros((n_bins, values.shape[1]))
    np.add.at(sums, bins, np.where(finite, values, 0.0))
    np.add.at(counts, bins, finite)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def _bin_mode(codes: np.ndarray, bins: np.ndarray, n_bins: int, n_classes: int) -> np.ndarray:
    """Most frequent class code (>= 0) per bin -> (n_bins,) float, NaN for a bin with none."""
    valid = codes >= 0
    counts = np.zeros((n_bins, n_classes), np.int64)
    np.add.at(counts, (bins[valid], codes[valid]), 1)
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), np.nan)


def _bin_edges(times: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """(n_bins + 1,) times (s) where each bin starts, then the end of the last frame."""
    starts = times[np.searchsorted(bins, np.arange(n_bins))]  # bins are sorted: first rows
    steps = np.diff(times)
    step = float(np.median(steps)) if len(steps) else DEFAULT_FRAME_S
    return np.append(starts, times[-1] + (step if step > 0 else DEFAULT_FRAME_S))


def _note(ax, text: str) -> None:
    ax.text(
        0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.3"
    )


def plot_timeline(table: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Draw ``table`` (one row per frame, see :mod:`wildaffect.report.table`) into a PNG at
    ``path``, written atomically; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    check_table(table)
    path = Path(path)
    n_rows = len(table)
    times = table["time_s"].to_numpy(dtype=np.float64)  # (T,)
    bins = _bins(n_rows, MAX_COLUMNS)
    n_bins = int(bins[-1]) + 1 if n_rows else 0

    fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
    grid = fig.add_gridspec(
        3,
        3,
        height_ratios=[3.0, 0.6, 2.0],
        width_ratios=[1.0, 0.02, 0.13],
        left=0.07,
        right=0.99,
        bottom=0.08,
        top=0.92,
        hspace=0.12,
        wspace=0.03,
    )
    ax_au = fig.add_subplot(grid[0, 0])
    ax_expr = fig.add_subplot(grid[1, 0], sharex=ax_au)
    ax_va = fig.add_subplot(grid[2, 0], sharex=ax_au)
    ax_bar = fig.add_subplot(grid[0, 1])
    ax_keys = fig.add_subplot(grid[1:, 1:])  # legends of the ribbon and the curves
    ax_keys.axis("off")
    faces = face_mask(table)
    if title is None:
        found = "audio only" if is_audio_only(table) else f"face in {faces.sum()}"
        title = f"wildaffect predictions: {n_rows} frame{'s' * (n_rows != 1)}, {found}"
    fig.suptitle(title)

    if n_rows:
        edges = _bin_edges(times, bins, n_bins)
        au = _bin_mean(table[list(AU_NAMES)].to_numpy(dtype=np.float64), bins, n_bins)
        if np.isfinite(au).any():
            mesh = ax_au.pcolormesh(
                edges, np.arange(len(AU_NAMES) + 1), au.T, cmap="viridis", vmin=0.0, vmax=1.0
            )
            ax_au.set_facecolor(GAP_COLOUR)  # NaN cells are not drawn: the gaps show this
            fig.colorbar(mesh, cax=ax_bar, label="AU probability")
        else:
            ax_au.set_xlim(edges[0], edges[-1])
            reason = "audio-only input" if is_audio_only(table) else "no face in any frame"
            _note(ax_au, f"no face: no AU estimates ({reason})")
            ax_bar.axis("off")

        codes = _bin_mode(expression_codes(table), bins, n_bins, len(EXPR_NAMES))
        cmap = ListedColormap([expr_colour_float(name) for name in EXPR_NAMES])
        ax_expr.pcolormesh(
            edges, [0, 1], codes[None, :], cmap=cmap, vmin=-0.5, vmax=len(EXPR_NAMES) - 0.5
        )
        if np.isnan(codes).all():
            _note(ax_expr, "no expression estimates")

        va = _bin_mean(table[list(VA_NAMES)].to_numpy(dtype=np.float64), bins, n_bins)
        centres = (edges[:-1] + edges[1:]) / 2
        for column, name in enumerate(VA_NAMES):
            marker = "o" if n_bins == 1 else None  # a 1-frame curve is a point
            ax_va.plot(centres, va[:, column], label=name, marker=marker, lw=1.2)
        if np.isnan(va).all():
            _note(ax_va, "no valence/arousal estimates")
    else:
        ax_bar.axis("off")
        _note(ax_au, "empty table: no frames")

    ax_au.set_yticks(np.arange(len(AU_NAMES)) + 0.5, AU_NAMES, fontsize=8)
    ax_au.set_ylim(0, len(AU_NAMES))
    ax_au.invert_yaxis()  # AU1 on top, as in the table
    ax_au.tick_params(labelbottom=False)
    ax_expr.set_yticks([])
    ax_expr.set_ylabel("expression", rotation=0, ha="right", va="center", fontsize=9)
    ax_expr.tick_params(labelbottom=False)
    ax_expr.set_facecolor("white")
    legend = [Patch(color=expr_colour_float(name), label=name) for name in EXPR_NAMES]
    legend.append(Patch(facecolor="white", edgecolor="0.5", label="no face"))
    ax_keys.add_artist(
        ax_keys.legend(
            handles=legend, loc="upper left", fontsize=8, frameon=False, title="expression"
        )
    )
    ax_va.axhline(0.0, color="0.6", lw=0.6)
    ax_va.set_ylim(VA_MIN - 0.05, VA_MAX + 0.05)
    ax_va.set_ylabel("valence / arousal")
    ax_va.set_xlabel("time (s)")
    curves = ax_va.get_legend_handles_labels()
    if curves[0]:
        ax_keys.legend(*curves, loc="lower left", fontsize=8, frameon=False)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
