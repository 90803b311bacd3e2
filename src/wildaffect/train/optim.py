"""AdamW parameter groups and the warm-up + cosine schedule.

Three groups: weights that decay, parameters that must not (norms, biases, ``A_log``, ``D``,
learned tokens: :meth:`AffectModel.no_weight_decay_names`), and LoRA adapters (names with
``lora_``) at their own, smaller learning rate. The schedule is a multiplier per optimiser
step: linear warm-up from 0 to 1, then a half cosine down to ``min_ratio``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LORA_MARKER = "lora_"


def param_groups(
    model: nn.Module, lr: float, lora_lr: float, weight_decay: float
) -> list[dict]:
    """-> AdamW groups ``decay`` / ``no_decay`` / ``lora`` (empty groups left out), trainable
    parameters only. LoRA matrices decay like other weights but at ``lora_lr``."""
    no_decay = (
        model.no_weight_decay_names() if hasattr(model, "no_weight_decay_names") else set()
    )
    groups: dict[str, dict] = {
        "decay": {"name": "decay", "params": [], "lr": lr, "weight_decay": weight_decay},
        "no_decay": {"name": "no_decay", "params": [], "lr": lr, "weight_decay": 0.0},
        "lora": {"name": "lora", "params": [], "lr": lora_lr, "weight_decay": weight_decay},
    }
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if LORA_MARKER in name:
            key = "lora"
        elif name in no_decay or param.ndim < 2:
            key = "no_decay"
        else:
            key = "decay"
        groups[key]["params"].append(param)
        groups[key].setdefault("param_names", []).append(name)
    return [g for g in groups.values() if g["params"]]


def build_optimizer(
    model: nn.Module, lr: float, lora_lr: float, weight_decay: float
) -> torch.optim.AdamW:
    groups = [
        {k: v for k, v in g.items() if k != "param_names"}
        for g in param_groups(model, lr, lora_lr, weight_decay)
    ]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """LR multiplier at optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps (so the
    first step already moves), then ``min_ratio + (1 - min_ratio) (1 + cos(pi p)) / 2`` with
    ``p`` going from 0 to 1 over the remaining steps; ``min_ratio`` after ``total_steps``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR following :func:`warmup_cosine` (call ``step()`` every step)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup_steps, total_steps, min_ratio)
    )
