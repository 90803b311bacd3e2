"""``wildaffect download NAME``: fetch a registered encoder's pretrained weights into the cache.

Run it on a machine with network, then copy the cache (or the printed folder) to machines
without: every later ``create_encoder(NAME)`` finds the weights there, offline.
Heavy imports happen inside the function so ``wildaffect --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def download(
    name: Annotated[
        str, typer.Argument(help="Registered encoder name, e.g. dinov2-large or wavlm-large.")
    ],
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Hugging Face hub cache to fill (default: HF_HUB_CACHE / HF_HOME)."),
    ] = None,
) -> None:
    """Download the pretrained weights of encoder NAME (a snapshot of its hub repository)."""
    from wildaffect.encoders.registry import create_encoder, get_spec
    from wildaffect.encoders.weights import download_weights
    from wildaffect.errors import WildaffectError

    spec = get_spec(name)
    if spec.weight_free:
        raise WildaffectError(f"encoder {name!r} uses no pretrained weights: nothing to download")
    if spec.hub_id is None:  # a file outside the hub: its builder downloads it into its cache
        if cache_dir is not None:
            raise WildaffectError(
                f"--cache-dir: {name}'s weights are not on the hub ({spec.weights_url})"
            )
        create_encoder(name)
        typer.echo(f"{name}: {spec.weights_url} -> its cache (torch hub checkpoints)")
        return
    folder = download_weights(spec.hub_id, cache_dir=cache_dir)
    typer.echo(f"{name}: {spec.hub_id} -> {folder}")
