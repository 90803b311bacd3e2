"""Several trained models of one configuration answering as one: their probabilities averaged.

Models trained from different seeds on the same data make different errors; averaging their
probabilities (Dietterich 2000) is the usual cure for the run-to-run spread of small training
sets (one voice model's leave-one-speaker-out UAR moves by up to 0.04 between seeds). The
ensemble keeps :class:`~wildaffect.models.affect.AffectModel`'s contract, so the predictor and
the package format take either: ``forward(batch, state) -> ModelOutput`` whose outputs are
logits (AU, EXPR) and values (VA), and whose ``state`` carries every member's temporal state.

The averaging is of probabilities, not logits: the returned EXPR "logits" are
``log(mean_k softmax(z_k))`` and the AU ones ``logit(mean_k sigmoid(z_k))``, so
:func:`~wildaffect.models.heads.to_probabilities` gives back the members' mean probability
exactly; VA is the members' mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from wildaffect.labels import Task
from wildaffect.models.affect import AffectModel, ModelOutput
from wildaffect.models.config import ModelConfig
from wildaffect.models.heads import to_probabilities

#: Probabilities are clamped away from 0 and 1 before their log / logit (float32-safe).
PROBABILITY_EPS = 1e-7


class EnsembleModel(nn.Module):
    """``members`` (same config, eval-time only) -> one model with their mean probabilities."""

    def __init__(self, members: Sequence[AffectModel]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        config = members[0].config.to_dict()
        for k, member in enumerate(members[1:], start=1):
            if member.config.to_dict() != config:
                raise ValueError(f"ensemble member {k}'s config differs from member 0's")
        self.members = nn.ModuleList(members)

    @property
    def config(self) -> ModelConfig:
        return self.members[0].config

    def forward(self, batch: Mapping[str, Tensor], state: list | None = None) -> ModelOutput:
        """``state``: None or one entry per member (what the previous call returned)."""
        if state is not None and len(state) != len(self.members):
            raise ValueError(f"state holds {len(state)} members' states, the ensemble has "
                             f"{len(self.members)}")  # fmt: skip
        outputs, states = [], []
        for k, member in enumerate(self.members):
            out = member(batch, None if state is None else state[k])
            outputs.append(to_probabilities(out.outputs))
            states.append(out.state)
        carried = None if all(s is None for s in states) else states
        return ModelOutput(mean_as_outputs(outputs), carried)


def mean_as_outputs(probabilities: Sequence[Mapping[Task, Tensor]]) -> dict[Task, Tensor]:
    """Members' probabilities per task -> head-style outputs whose probabilities are the mean."""
    combined: dict[Task, Tensor] = {}
    for task in probabilities[0]:
        mean = torch.stack([p[task] for p in probabilities]).mean(0)  # (B, T, C)
        if task is Task.EXPR:
            combined[task] = mean.clamp_min(PROBABILITY_EPS).log()
        elif task is Task.AU:
            combined[task] = torch.logit(mean, eps=PROBABILITY_EPS)
        else:
            combined[task] = mean
    return combined
