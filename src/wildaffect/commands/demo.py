"""``wildaffect demo``: ``predict`` on a real clip bundled with the package.

Runs the default model (or ``--model``) on a CREMA-D clip shipped in ``assets/demo`` (licence
in its NOTICE.md) and writes into ``./wildaffect-demo/``: the per-frame table (CSV), the
timeline plot (PNG) and the overlay video (MP4), then prints a short summary. No network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEMO_CLIP = "1001_DFA_HAP_XX.flv"  # CREMA-D, ODbL/DbCL: assets/demo/NOTICE.md
DEFAULT_OUT = Path("wildaffect-demo")


def demo_clip() -> Path:
    from importlib.resources import files

    return Path(str(files("wildaffect") / "assets" / "demo" / DEMO_CLIP))


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's outputs.")] = (
        DEFAULT_OUT
    ),
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Model to run (default: the bundled default model)."
    )] = None,
) -> None:
    """Predict AUs, expression and valence/arousal on a bundled CREMA-D clip; write the
    table, a timeline plot and an overlay video."""
    from rich.console import Console

    from wildaffect.predict.batch import predict_file, read_table
    from wildaffect.predict.predictor import Predictor
    from wildaffect.report.summary import summarise

    console = Console(highlight=False)
    clip = demo_clip()
    console.print(f"[bold]wildaffect demo[/] on {clip.name} (CREMA-D, see its NOTICE.md)")
    with console.status("loading the model..."):
        predictor = Predictor(model)
    with console.status("decoding, finding the face, encoding, predicting, drawing..."):
        result = predict_file(predictor, clip, clip.stem, out, "csv", plot=True, overlay=True,
                              force=True)
    console.print(summarise(read_table(result.output), title=f"{clip.name}: summary"))
    for path in (result.output, *result.extra_files):
        console.print(f"wrote {path}")
