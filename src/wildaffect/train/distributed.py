"""Multi-process training helpers: the Lightning strategy for ``devices x num_nodes`` and a
callback that lets every rank leave proof that the replicas stayed in sync.

DDP keeps replicas identical by all-reducing gradients; a bug (a parameter without a gradient
on one rank, rank-dependent randomness in the forward) breaks that silently. At the end of
training every rank writes ``RUN/ranks/rank<r>.json`` with a SHA-256 of its ``state_dict``
and the last (rank-averaged) training loss; ``tests/test_ddp.py`` compares them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
import torch

RANKS_DIR = "ranks"


def strategy_for(devices: int, num_nodes: int, find_unused_parameters: bool = False) -> Any:
    """A ``DDPStrategy`` (one process per device, gloo on CPU) when more than one process, else
    ``"auto"``. ``find_unused_parameters``: see :func:`find_unused_parameters`."""
    if devices * num_nodes == 1:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(find_unused_parameters=find_unused_parameters)


def find_unused_parameters(option: bool | None, model_config: Any) -> bool:
    """Whether DDP must look for parameters without a gradient after every backward.

    DDP all-reduces gradients in buckets and waits for every parameter's; a parameter that took
    no part in one step's loss on one rank makes it fail at the next step ("Expected to have
    finished reduction in the prior iteration"). Searching the autograd graph for them each
    step fixes that at some cost, so it is on only where needed: ``option`` when the user set
    it, else (None = auto) True iff the model has a branch some training batches skip:

    - an optional input stream (``d_text``, ``d_behaviour``): a batch in which no video has
      that stream (no transcript, no behaviour file) gives their projections no gradient;
    - HGA (``spatial="hga"``): on a batch without any face frame (faceless videos, audio-only
      utterances, or visual modality dropout on every sample) it returns the learned no-face
      tokens and skips its attention.

    Every other module of the registered presets gets a gradient from every batch, also
    without faces or audio (missing inputs become zeros or learned tokens inside the graph):
    ``tests/test_train_options.py`` checks this rule against a backward pass of each preset.
    """
    if option is not None:
        return bool(option)
    from wildaffect.models.affect import EXTRA_STREAMS

    optional = any(getattr(model_config, width) for width in EXTRA_STREAMS.values())
    return optional or model_config.spatial == "hga"


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state_dict, in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


class RankReport(L.Callback):
    """Every rank writes ``rank<r>.json`` (checksum, step, last train loss, last validation
    metrics) when fit ends."""

    def __init__(self, run_dir: str | Path) -> None:
        self.folder = Path(run_dir) / RANKS_DIR

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from wildaffect.io.atomic import atomic_write_text

        loss = trainer.callback_metrics.get("train/loss")
        report: dict[str, Any] = {
            "rank": trainer.global_rank, "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "state_sha256": state_checksum(pl_module.state_dict()),
            "train_loss": None if loss is None else float(loss),
            # The last validation (each rank scores every video, train/module.py).
            "val_metrics": dict(getattr(pl_module, "val_metrics", {})),
            "val_frames": dict(getattr(pl_module, "val_frames", {})),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / f"rank{trainer.global_rank}.json",
                          json.dumps(report, indent=2) + "\n")
