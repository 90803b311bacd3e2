"""Attention-statistics pooling of the audio frames of a segment (seed 003 ¶0).

Seed 003 ¶0: "The audio modality relies on WavLM-Large with attention-statistics pooling".
Attentive statistics pooling (Okabe et al., Interspeech 2018): frame scores
``e_t = v^T tanh(W h_t + b)``, weights ``alpha = softmax(e)`` over the segment's valid frames,
and the segment descriptor ``[mu; sigma]`` with ``mu = sum alpha h``,
``sigma = sqrt(sum alpha h^2 - mu^2)``. Here each segment of ``segment_len`` consecutive
frames is pooled and the descriptor is given back to every frame of the segment, so the model
keeps its per-frame timeline while the audio context spans the segment.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wildaffect.models.layers.attention import safe_softmax

STD_FLOOR = 1e-5  # keeps sqrt differentiable where a segment's frames are identical


def attentive_statistics(x: Tensor, scores: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``x: (N, S, D)``, ``scores: (N, S)``, ``mask: (N, S)`` bool -> weighted mean and std,
    each ``(N, D)``; a row with no valid frame gives zeros."""
    alpha = safe_softmax(scores, mask, dim=-1)[..., None]  # (N, S, 1)
    x = torch.where(mask[..., None], x, x.new_zeros(()))
    mean = (alpha * x).sum(1)
    var = (alpha * x * x).sum(1) - mean * mean
    std = torch.sqrt(var.clamp(min=0.0) + STD_FLOOR**2)
    has = mask.any(-1, keepdim=True)
    return mean, torch.where(has, std, std.new_zeros(()))


class SegmentStatsPool(nn.Module):
    """Per-frame ``(B, T, D)`` -> per-frame segment descriptors ``(B, T, D)``.

    Frames are cut into segments of ``segment_len`` (the last one shorter); each segment's
    attentive mean and std ``(2D)`` are projected back to ``D`` and copied to its frames.
    Returns the new mask too: a frame is valid when its segment had any valid frame.
    """

    def __init__(self, d_model: int, segment_len: int, d_attention: int | None = None) -> None:
        super().__init__()
        if segment_len < 1:
            raise ValueError(f"segment_len must be >= 1, got {segment_len}")
        self.segment_len = segment_len
        hidden = d_attention or d_model
        self.score = nn.Sequential(nn.Linear(d_model, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.proj = nn.Linear(2 * d_model, d_model)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``x: (B, T, D)``, ``mask: (B, T)`` bool -> ``((B, T, D), (B, T) bool)``."""
        batch, length, dim = x.shape
        seg = self.segment_len
        n_seg = -(-length // seg)
        pad = n_seg * seg - length
        xs = F.pad(x, (0, 0, 0, pad)).reshape(batch * n_seg, seg, dim)
        ms = F.pad(mask, (0, pad), value=False).reshape(batch * n_seg, seg)
        scores = self.score(xs)[..., 0]  # (B*S, seg)
        mean, std = attentive_statistics(xs, scores, ms)  # (B*S, D) each
        pooled = self.proj(torch.cat([mean, std], dim=-1))  # (B*S, D)
        has = ms.any(-1)
        pooled = torch.where(has[:, None], pooled, pooled.new_zeros(()))
        frames = pooled.reshape(batch, n_seg, 1, dim).expand(batch, n_seg, seg, dim)
        frame_mask = has.reshape(batch, n_seg, 1).expand(batch, n_seg, seg)
        out = frames.reshape(batch, n_seg * seg, dim)[:, :length]
        return out, frame_mask.reshape(batch, n_seg * seg)[:, :length]
