"""``wildaffect demo``: run the pipeline on a real clip bundled with the package.

Until the predict pipeline lands, the demo runs the complete front-end that exists:
decode -> face tracking -> 478/68 landmarks -> eye-aligned 224 crops -> 16 kHz audio, into a
cache folder, and draws what it found (aligned crops with their 68 landmarks, the face flags
and the audio over time) so that a user sees the pipeline work on a real talking face.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEMO_CLIP = "1001_DFA_HAP_XX.flv"  # CREMA-D, ODbL/DbCL: assets/demo/NOTICE.md
DEFAULT_OUT = Path("wildaffect-demo")
SHEET_FRAMES = 8


def demo_clip() -> Path:
    from importlib.resources import files

    return Path(str(files("wildaffect") / "assets" / "demo" / DEMO_CLIP))


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's outputs.")] = (
        DEFAULT_OUT
    ),
) -> None:
    """Preprocess a bundled CREMA-D clip and draw the tracked face, landmarks and audio."""
    from rich.console import Console

    from wildaffect.data.cache import FeatureCache
    from wildaffect.errors import WildaffectError
    from wildaffect.preprocess import preprocess_batch

    console = Console(highlight=False)
    clip = demo_clip()
    console.print(f"[bold]wildaffect demo[/] on {clip.name} (CREMA-D, see its NOTICE.md)")
    with console.status("decoding, tracking the face, aligning crops, resampling audio..."):
        report = preprocess_batch([clip], out / "cache", crops="npy")
    result = report.results[0]
    if not result.ok:
        raise WildaffectError(f"demo preprocessing failed: {result.describe_failure()}")
    cache = FeatureCache(out / "cache")
    sheet = out / "face_pipeline.png"
    _draw_sheet(cache, result.video, sheet)
    meta = cache.read_meta(result.video)
    console.print(
        f"{meta['n_frames']} frames at {meta['fps']:.2f} fps, face in "
        f"{meta['n_face_frames']} of them, {result.audio_s:.2f} s of 16 kHz audio"
        + (" (no audio track)" if meta.get("audio_missing") else "")
    )
    console.print(f"record: {cache.record_dir(result.video)}")
    console.print(f"figure: {sheet}")


def _draw_sheet(cache, video: str, path: Path) -> None:
    """Aligned crops with 68 landmarks (top) and face flags + waveform over time (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from wildaffect.face.draw import draw_landmarks68
    from wildaffect.io.atomic import atomic_write_bytes

    arrays = cache.read_arrays(
        video, ["frame_times", "has_face", "landmarks68", "crops", "audio"], mmap=True
    )
    times, has_face = arrays["frame_times"], arrays["has_face"]
    faces = np.flatnonzero(has_face)
    picks = faces[np.linspace(0, len(faces) - 1, min(SHEET_FRAMES, len(faces))).astype(int)]
    fig = plt.figure(figsize=(2 * max(len(picks), 4), 5.2))
    grid = fig.add_gridspec(2, max(len(picks), 1), height_ratios=[2.2, 1])
    for column, index in enumerate(picks):
        crop = np.asarray(arrays["crops"][index])
        points = np.asarray(arrays["landmarks68"][index]) * crop.shape[1]
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(draw_landmarks68(crop, points, scale=1.0, numbers=False))
        ax.set_title(f"t = {times[index]:.2f} s", fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(grid[1, :])
    audio = np.asarray(arrays["audio"])
    sample_times = np.arange(len(audio)) / cache.read_meta(video)["sample_rate"]
    ax.plot(sample_times, audio, lw=0.4, color="0.4", label="audio (16 kHz)")
    ax.fill_between(times, -1, 1, where=~has_face, color="tab:red", alpha=0.2, label="no face")
    ax.set_xlabel("time (s)")
    ax.set_ylim(-1, 1)
    ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{video}: tracked face, eye-aligned 224 crops with 68 landmarks, audio")
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
