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


def strategy_for(devices: int, num_nodes: int) -> str:
    """``"ddp"`` (one process per device, gloo on CPU) when more than one process, else auto."""
    return "ddp" if devices * num_nodes > 1 else "auto"


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state_dict, in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


class RankReport(L.Callback):
    """Every rank writes ``rank<r>.json`` (checksum, step, last train loss) when fit ends."""

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
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / f"rank{trainer.global_rank}.json",
                          json.dumps(report, indent=2) + "\n")
