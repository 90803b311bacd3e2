"""The valence-arousal plane as the sibling systems of seed 003 see it: a 3x3 grid of regions
with a text description each (¶1) and polar coordinates (¶8).

Seed 003 ¶1: "we partition the VA space into a 3X3 grid, defining nine emotional regions, each
associated with distinct textual descriptions. Rather than a hard categorization, we employ a
Gaussian kernel to compute soft labels based on the Euclidean distance between the ground
truth coordinates and the region centers". Seed 003 ¶8: "MAVEN predicts emotions in a polar
coordinate form, aligning with psychological models of the emotion circumplex."

Pure tensor functions; the losses (:mod:`wildaffect.losses`) and the heads share them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from wildaffect.labels import VA_MAX, VA_MIN

GRID_SIZE = 3
#: Width of the Gaussian kernel of the soft labels, in VA units (half a grid cell).
GRID_SIGMA = (VA_MAX - VA_MIN) / GRID_SIZE / 2
#: Largest intensity on the label square [-1, 1]^2 (its corners).
MAX_INTENSITY = math.sqrt(2.0)

#: Region descriptions, row-major from (low valence, high arousal) to (high valence, low
#: arousal): row = arousal high -> low, column = valence low -> high (circumplex quadrants).
GRID_DESCRIPTIONS: tuple[str, ...] = (
    "a tense, angry or afraid face: negative and highly aroused",
    "an alert, astonished face: neutral in valence and highly aroused",
    "an excited, elated face: positive and highly aroused",
    "a displeased, frustrated face: negative with moderate arousal",
    "a neutral, calm face: neither pleasant nor unpleasant, moderately aroused",
    "a pleased, friendly face: positive with moderate arousal",
    "a sad, bored or tired face: negative and deactivated",
    "a sleepy, drowsy face: neutral in valence and deactivated",
    "a relaxed, content, serene face: positive and deactivated",
)


def grid_centres(size: int = GRID_SIZE) -> Tensor:
    """``(size * size, 2)`` (valence, arousal) centres of the regions, in the order of
    :data:`GRID_DESCRIPTIONS`: arousal from high to low by row, valence low to high by column."""
    width = (VA_MAX - VA_MIN) / size
    ticks = VA_MIN + width * (torch.arange(size, dtype=torch.float32) + 0.5)  # (size,)
    arousal, valence = torch.meshgrid(ticks.flip(0), ticks, indexing="ij")
    return torch.stack([valence.reshape(-1), arousal.reshape(-1)], dim=-1)


def grid_log_soft_labels(
    va: Tensor, sigma: float = GRID_SIGMA, centres: Tensor | None = None
) -> Tensor:
    """``va: (..., 2)`` -> ``(..., K)`` log of the Gaussian-kernel soft labels over the regions:
    ``q_k = exp(-|va - c_k|^2 / (2 sigma^2)) / sum_j exp(-|va - c_j|^2 / (2 sigma^2))``."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    c = (grid_centres() if centres is None else centres).to(va)
    d2 = ((va[..., None, :] - c) ** 2).sum(-1)  # (..., K)
    return torch.log_softmax(-d2 / (2 * sigma**2), dim=-1)


def grid_soft_labels(
    va: Tensor, sigma: float = GRID_SIGMA, centres: Tensor | None = None
) -> Tensor:
    """``va: (..., 2)`` -> ``(..., K)`` soft labels summing to 1 (:func:`grid_log_soft_labels`)."""
    return grid_log_soft_labels(va, sigma, centres).exp()


def va_to_polar(va: Tensor) -> tuple[Tensor, Tensor]:
    """``(..., 2)`` (valence, arousal) -> (angle in (-pi, pi] from the positive valence axis,
    intensity = distance from the neutral centre), each ``(...)``."""
    return torch.atan2(va[..., 1], va[..., 0]), torch.linalg.vector_norm(va, dim=-1)


def polar_to_va(angle: Tensor, intensity: Tensor) -> Tensor:
    """(angle, intensity) ``(...)`` -> ``(..., 2)`` (valence, arousal) = intensity (cos, sin)."""
    return torch.stack([intensity * torch.cos(angle), intensity * torch.sin(angle)], dim=-1)
