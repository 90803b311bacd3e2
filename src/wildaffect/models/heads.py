"""Per-frame task heads: AU (12, sigmoid), EXPR (8, softmax), VA (2, tanh).

Seed 002 §4.2 takes "the predicted probability from our AG-SSM classification head"; the
design (GUIDE §1) puts three heads on the temporal model's output: "AU (12, sigmoid) ·
EXPR (8, softmax) · VA (2, tanh)". AU and EXPR heads return
logits (the losses take logits: numerically stable BCE/ASL/CE); the VA head returns
``tanh`` outputs, already in the label range [VA_MIN, VA_MAX] = [-1, 1].

Seed 003 adds two other VA heads, both still returning (valence, arousal): ``"polar"`` (¶8,
MAVEN: angle and intensity, converted) and ``"grid"`` (¶1: similarity of the frame to nine
learned region prompts, one per text description of the 3x3 VA grid), and a multi-task
option (¶9: "feature fusion from individual tasks") where every head reads the task-specific
features of all tasks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wildaffect.labels import TASK_SPECS, Task
from wildaffect.models.va_space import GRID_DESCRIPTIONS, MAX_INTENSITY, grid_centres, polar_to_va

VAHead = Literal["tanh", "polar", "grid"]


def n_outputs(task: Task) -> int:
    """Output width of a task's head: one unit per annotation column (12 / 8 / 2)."""
    return len(TASK_SPECS[task].columns)


def polar_head_to_va(raw: Tensor) -> Tensor:
    """``(..., 2)`` raw outputs -> (v, a): angle ``pi tanh(raw_0)``, intensity
    ``sqrt(2) sigmoid(raw_1)`` (the label square's corners are at sqrt 2), clamped to [-1, 1]."""
    angle = math.pi * torch.tanh(raw[..., 0])
    intensity = MAX_INTENSITY * torch.sigmoid(raw[..., 1])
    return polar_to_va(angle, intensity).clamp(-1.0, 1.0)


class GridVAHead(nn.Module):
    """Seed 003 ¶1, distance-aware soft prompts: the frame's feature is compared (cosine, with
    a learned temperature) with one learned prompt embedding per VA region (the regions and
    their text descriptions are :data:`GRID_DESCRIPTIONS`); VA is the region centres weighted by
    the softmax over regions, plus a bounded offset (|offset| <= half a cell) so that values
    between and beyond the centres are reachable: the output stays in [-1, 1].

    The prompts start random: no text encoder's weights are on this machine. With CLIP's text
    tower, :meth:`set_prompts` can initialise them from the embedded descriptions.
    """

    def __init__(self, d_in: int, d_prompt: int | None = None) -> None:
        super().__init__()
        d_prompt = d_prompt or d_in
        self.descriptions = GRID_DESCRIPTIONS
        self.proj = nn.Linear(d_in, d_prompt)
        self.prompts = nn.Parameter(torch.randn(len(GRID_DESCRIPTIONS), d_prompt) * 0.02)
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.offset = nn.Linear(d_in, 2)
        self.register_buffer("centres", grid_centres(), persistent=False)
        self.half_cell = float(self.centres[:, 0].diff().abs().max()) / 2  # 1/3 on [-1, 1]

    def set_prompts(self, embeddings: Tensor) -> None:
        """Initialise the region prompts from ``(9, d_prompt)`` text embeddings."""
        if embeddings.shape != self.prompts.shape:
            raise ValueError(f"prompts: expected {tuple(self.prompts.shape)}, got "
                             f"{tuple(embeddings.shape)}")
        with torch.no_grad():
            self.prompts.copy_(embeddings)

    def region_logits(self, h: Tensor) -> Tensor:
        """``(B, L, d_in)`` -> ``(B, L, 9)`` scaled cosine similarities to the region prompts."""
        z = F.normalize(self.proj(h), dim=-1)
        return self.log_scale.exp() * z @ F.normalize(self.prompts, dim=-1).T

    def forward(self, h: Tensor) -> Tensor:
        """``(B, L, d_in)`` -> ``(B, L, 2)`` (valence, arousal) in [-1, 1]."""
        probs = torch.softmax(self.region_logits(h), dim=-1)
        return probs @ self.centres.to(h) + self.half_cell * torch.tanh(self.offset(h))


class TaskHeads(nn.Module):
    """One small head per task on a shared ``(B, L, d_in)`` sequence.

    ``hidden=None`` gives a linear head; an int gives Linear-GELU-Dropout-Linear. ``va_head``
    picks the VA head form; ``task_fusion`` gives each task its own feature branch and every
    head reads all branches concatenated (seed 003 ¶9).
    """

    def __init__(
        self,
        d_in: int,
        tasks: Sequence[Task],
        hidden: int | None = None,
        dropout: float = 0.0,
        va_head: VAHead = "tanh",
        task_fusion: bool = False,
    ) -> None:
        super().__init__()
        tasks = tuple(Task(t) for t in tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty list without repeats, got {tasks}")
        if va_head not in ("tanh", "polar", "grid"):
            raise ValueError(f"va_head must be 'tanh', 'polar' or 'grid', got {va_head!r}")
        self.tasks, self.va_head = tasks, va_head
        self.branches = None
        if task_fusion:
            self.branches = nn.ModuleDict({
                t.value: nn.Sequential(nn.Linear(d_in, d_in), nn.GELU(), nn.Dropout(dropout))
                for t in tasks
            })
            d_in = d_in * len(tasks)
        self.heads = nn.ModuleDict({
            task.value: (
                GridVAHead(d_in) if task is Task.VA and va_head == "grid"
                else self._head(d_in, n_outputs(task), hidden, dropout)
            )
            for task in tasks
        })

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
        if self.branches is not None:
            h = torch.cat([self.branches[t.value](h) for t in self.tasks], dim=-1)
        for task in self.tasks:
            out = self.heads[task.value](h)
            if task is Task.VA and self.va_head == "tanh":
                out = torch.tanh(out)
            elif task is Task.VA and self.va_head == "polar":
                out = polar_head_to_va(out)
            outputs[task] = out
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
