"""Seed 003 ¶9's curriculum, as a clip sampler: "We utilize curriculum learning to transition
the model from recognizing single expressions to recognizing compound expressions, thereby
improving the accuracy of compound expression recognition."

The seed trains on C-EXPR-DB's compound classes; the ABAW labels here have none (EXPR is one
of 8 classes per frame, AU 12 binary units per frame). **What follows is an interpretation.**
A training clip counts as *compound* when its labels show more than one expression:

- its EXPR-labelled frames hold two or more different basic emotions (:data:`BASIC_EMOTIONS`;
  Neutral and Other do not count): one label per frame cannot mark a blend, so a clip that
  goes from one emotion to another is the nearest the labels get to one; or
- one of its AU-labelled frames has at least ``min_aus`` active AUs (default
  :data:`COMPOUND_MIN_AUS` = 5): more co-occurring AUs than the main prototypical AUs of any
  single basic expression keep within Aff-Wild2's 12 (at most 4, surprise's 1+2+25+26, after
  Du, Tao & Martinez, PNAS 2014). A rough cue: some compounds (happily surprised, 1+2+12+25)
  stay under it.

Every other clip (one emotion, few AUs, or no EXPR / AU labels) is *single*. Clips are
classified on their frames ``start .. start + clip_len`` (frame skipping aside).

The schedule (``TrainConfig.curriculum_epochs`` = N): in epoch e < N the expected share of
compound clips among the epoch's draws is ``p(e) = p_nat * e / N`` (0 in epoch 0), where
``p_nat`` is their natural share (of the clip count, or of the class-balanced weights with
``balanced``); single clips keep their weight and compound ones get
``w(e) = r S / (S + (1 - r) C)`` with ``r = e / N`` and S, C the single and compound weight
sums. An epoch draws ``len(dataset)`` clips with replacement, so its length and the LR schedule
do not change. From epoch N on it is the plain :class:`EpochSampler`: the run trains as one
without a curriculum. The order is a function of (seed, epoch) only, so resume stays exact.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from wildaffect.labels import EXPR_NAMES, Task
from wildaffect.train.resume import EpochSampler

#: EXPR classes whose mix makes a clip compound (ABAW's 8 minus Neutral and Other).
BASIC_EMOTIONS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
#: Active AUs in one frame from which a clip counts as compound (module docstring).
COMPOUND_MIN_AUS = 5

_BASIC_IDS = np.array([EXPR_NAMES.index(name) for name in BASIC_EMOTIONS])


def is_compound(expr: np.ndarray, active_aus: np.ndarray, min_aus: int = COMPOUND_MIN_AUS) -> bool:
    """expr: (F,) class ids of the clip's valid EXPR frames; active_aus: (G,) count of active
    AUs on each of its AU-labelled frames -> whether the clip is compound."""
    emotions = np.intersect1d(expr, _BASIC_IDS)
    return bool(emotions.size >= 2 or (active_aus.size and active_aus.max() >= min_aus))


def compound_clips(dataset: Any, min_aus: int = COMPOUND_MIN_AUS) -> np.ndarray:
    """(n_clips,) bool: which clips of a :class:`~wildaffect.data.dataset.ClipDataset` are
    compound (module docstring)."""
    out = np.zeros(len(dataset.clips), bool)
    for c, (i, start) in enumerate(dataset.clips):
        source = dataset.sources[i]
        frames = slice(start, min(start + dataset.clip_len, source.n_frames))
        expr = np.zeros(0, np.int64)
        if Task.EXPR in source.labels:
            labels = source.labels[Task.EXPR]
            expr = labels.values[frames][labels.valid[frames]]
        active = np.zeros(0, np.int64)
        if Task.AU in source.labels:
            labels = source.labels[Task.AU]
            valid = labels.valid[frames]  # (F, 12)
            on = (labels.values[frames] == 1) & valid
            active = on.sum(1)[valid.any(1)]  # (G,)
        out[c] = is_compound(expr, active, min_aus)
    return out


def compound_weight(
    epoch: int, ramp_epochs: int, single_mass: float, compound_mass: float
) -> float:
    """The weight of a compound clip (single clips: 1) in ``epoch`` that makes the compound
    share ``p_nat * epoch / ramp_epochs``; 1 from ``ramp_epochs`` on."""
    r = min(epoch / ramp_epochs, 1.0) if ramp_epochs > 0 else 1.0
    return r * single_mass / (single_mass + (1.0 - r) * compound_mass)


class CurriculumSampler(EpochSampler):
    """:class:`EpochSampler` whose first ``ramp_epochs`` epochs draw compound clips
    (``compound``: (n,) bool) by the schedule of the module docstring."""

    def __init__(
        self, compound: np.ndarray, ramp_epochs: int, seed: int = 0,
        weights: np.ndarray | None = None,
    ) -> None:
        super().__init__(len(compound), seed, weights)
        self.compound = torch.as_tensor(np.asarray(compound, bool))
        self.ramp_epochs = ramp_epochs

    def epoch_weights(self, epoch: int) -> torch.Tensor:
        """(n,) drawing weights of ``epoch`` (before ``ramp_epochs``)."""
        base = torch.ones(self.n, dtype=torch.double) if self.weights is None else self.weights
        single = float(base[~self.compound].sum())
        factor = compound_weight(epoch, self.ramp_epochs, single, float(base[self.compound].sum()))
        return torch.where(self.compound, base * factor, base)

    def order(self, epoch: int) -> list[int]:
        if epoch >= self.ramp_epochs or self.compound.all() or not self.compound.any():
            return super().order(epoch)  # nothing (more) to schedule: plain training
        generator = torch.Generator().manual_seed(self.seed + epoch)
        weights = self.epoch_weights(epoch)  # (n,)
        return torch.multinomial(weights, self.n, True, generator=generator).tolist()


def curriculum_sampler(
    dataset: Any, ramp_epochs: int, seed: int, balanced: bool
) -> CurriculumSampler:
    """The sampler ``wildaffect train`` uses with ``curriculum_epochs`` > 0; warns when the
    training clips are all single or all compound (the curriculum then changes nothing)."""
    compound = compound_clips(dataset)
    if compound.all() or not compound.any():
        kind = "compound" if compound.all() else "single"
        warnings.warn(f"curriculum: all {len(compound)} training clips are {kind}; it has "
                      "nothing to schedule", stacklevel=2)
    weights = dataset.sample_weights() if balanced else None
    return CurriculumSampler(compound, ramp_epochs, seed, weights)


__all__ = [
    "BASIC_EMOTIONS", "COMPOUND_MIN_AUS", "CurriculumSampler", "compound_clips",
    "compound_weight", "curriculum_sampler", "is_compound",
]
