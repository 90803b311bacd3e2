"""Per-frame task heads: AU (12, sigmoid), EXPR (8, softmax), VA (2, tanh).

Seed 002 §4.2 takes "the predicted probability from our AG-SSM classification head"; the
design (GUIDE §1) puts three heads on the temporal model's output: "AU (12, sigmoid) ·
EXPR (8, softmax) · VA (2, tanh)". AU and EXPR heads return
logits (the losses take logits: numerically stable BCE/ASL/CE); the VA head returns
``tanh`` outputs, already in the label range [VA_MIN, VA_MAX] = [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from wildaffect.labels import TASK_SPECS, Task


def n_outputs(task: Task) -> int:
    """Output width of a task's head: one unit per annotation column (12 / 8 / 2)."""
    return len(TASK_SPECS[task].columns)


class TaskHeads(nn.Module):
    """One small head per task on a shared ``(B, L, d_in)`` sequence.

    ``hidden=None`` gives a linear head; an int gives Linear-GELU-Dropout-Linear.
    """

    def __init__(
        self,
        d_in: int,
        tasks: Sequence[Task],
        hidden: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        tasks = tuple(Task(t) for t in tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty list without repeats, got {tasks}")
        self.tasks = tasks
        self.heads = nn.ModuleDict(
            {task.value: self._head(d_in, n_outputs(task), hidden, dropout) for task in tasks}
        )

    @staticmethod
    def _head(d_in: int, d_out: int, hidden: int | None, dropout: float) -> nn.Module:
        if hidden is None:
            return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, d_out))
        return nn.Sequential(
            nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_out)
        )

    def forward(self, h: Tensor) -> dict[Task, Tensor]:
        """``h: (B, L, d_in)`` -> {AU: (B, L, 12) logits, EXPR: (B, L, 8) logits,
        VA: (B, L, 2) in [-1, 1]} for the configured tasks."""
        outputs: dict[Task, Tensor] = {}
        for task in self.tasks:
            out = self.heads[task.value](h)
            outputs[task] = torch.tanh(out) if task is Task.VA else out
        return outputs


def to_probabilities(outputs: Mapping[Task, Tensor]) -> dict[Task, Tensor]:
    """Head outputs -> what a user reads: AU sigmoid, EXPR softmax over classes, VA as is."""
    converted: dict[Task, Tensor] = {}
    for task, out in outputs.items():
        task = Task(task)
        if task is Task.AU:
            converted[task] = torch.sigmoid(out)
        elif task is Task.EXPR:
            converted[task] = torch.softmax(out, dim=-1)
        else:
            converted[task] = out
    return converted
