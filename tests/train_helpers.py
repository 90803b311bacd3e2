"""Shared by the training tests: tiny model widths and callbacks that record or interrupt a run."""

from __future__ import annotations

import lightning as L

#: Model widths small enough for a few CPU training steps in a test.
TINY = {"d_model": 32, "d_token": 8, "d_inner": 16, "n_layers": 1, "hga_heads": 2,
        "xattn_heads": 2, "d_state": 8, "dropout": 0.0}


class LossRecorder(L.Callback):
    """Training loss of every optimiser step, keyed by the step number (1-based)."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step] = float(outputs["loss"])


class StopAfter(L.Callback):
    """Simulates a killed run: stops fitting once ``steps`` optimiser steps are done."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True
