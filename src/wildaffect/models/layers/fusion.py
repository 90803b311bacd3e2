"""Audio-visual fusion blocks of the sibling systems (the flagship's is the asymmetric
cross-attention in :mod:`wildaffect.models.layers.cross_attention`; fusions of more than two
streams are in :mod:`wildaffect.models.layers.multistream`).

Both are built from the shared layers: :class:`MultiHeadAttention` (safe softmax),
:class:`AsymmetricCrossAttention` and :class:`TransformerTemporal`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wildaffect.models.layers.attention import MultiHeadAttention
from wildaffect.models.layers.cross_attention import AsymmetricCrossAttention
from wildaffect.models.layers.temporal import TransformerTemporal


def masked_mean(streams: list[Tensor], masks: list[Tensor]) -> Tensor:
    """Average of ``(B, T, D)`` streams over those present at each frame (masks ``(B, T)``);
    frames where none is present give zeros."""
    weights = torch.stack([m.to(streams[0].dtype) for m in masks], dim=-1)  # (B, T, S)
    stacked = torch.stack(streams, dim=-1)  # (B, T, D, S)
    stacked = torch.where(weights[:, :, None, :] > 0, stacked, stacked.new_zeros(()))
    total = (stacked * weights[:, :, None, :]).sum(dim=-1)
    return total / weights.sum(dim=-1, keepdim=True).clamp(min=1.0)


class TokenTransformerFusion(nn.Module):
    """Seed 004 (8th ABAW AU system): "a Transformer encoder-based feature fusion module to
    integrate the affective information embedded in audio and image features".

    Per frame, the visual and the audio vector become two tokens (plus a learned modality
    embedding each) that attend to each other in one pre-norm Transformer layer; the frame's
    fused vector is the mean of the tokens that are present. Safe attention: a frame with
    one modality missing attends only to the other, a frame with neither gives zeros.
    """

    def __init__(self, d_model: int, n_heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.modality = nn.Parameter(torch.randn(2, d_model) * 0.02)  # visual, audio
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, d_model, d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(4 * d_model, d_model),
        )

    def forward(self, visual: Tensor, audio: Tensor, face_mask: Tensor, audio_mask: Tensor
                ) -> Tensor:
        """``visual, audio: (B, T, D)``, masks ``(B, T)`` -> fused ``(B, T, D)``."""
        batch, length, dim = visual.shape
        tokens = torch.stack([visual, audio], dim=2) + self.modality  # (B, T, 2, D)
        tokens = tokens.reshape(batch * length, 2, dim)
        present = torch.stack([face_mask, audio_mask], dim=-1).reshape(batch * length, 2)
        tokens = tokens + self.attn(self.norm1(tokens), self.norm1(tokens), present)
        tokens = tokens + self.ffn(self.norm2(tokens))
        tokens = tokens.reshape(batch, length, 2, dim)
        return masked_mean([tokens[:, :, 0], tokens[:, :, 1]], [face_mask, audio_mask])


class DualBranchFusion(nn.Module):
    """Seed 000 (EXPR): "a dual-branch Transformer architecture featuring a safe
    cross-attention mechanism [...] This design allows the network to rely on audio-based
    predictions when visual cues are absent."

    Each modality has its own temporal Transformer; each branch then queries the other with
    global safe cross-attention (residual), and the frame's output is the mean of the branches
    present at that frame, so a frame without a face is predicted from the audio branch alone.
    Training with :class:`ModalityDropout` (in the model) teaches exactly that fallback.
    """

    def __init__(
        self, d_model: int, n_layers: int = 2, n_heads: int = 4, xattn_heads: int = 8,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.visual_branch = TransformerTemporal(d_model, n_layers, n_heads, dropout=dropout)
        self.audio_branch = TransformerTemporal(d_model, n_layers, n_heads, dropout=dropout)
        self.visual_queries_audio = AsymmetricCrossAttention(
            d_model, d_model, d_model, xattn_heads, None, dropout
        )
        self.audio_queries_visual = AsymmetricCrossAttention(
            d_model, d_model, d_model, xattn_heads, None, dropout
        )

    def forward(self, visual: Tensor, audio: Tensor, face_mask: Tensor, audio_mask: Tensor
                ) -> Tensor:
        """``visual, audio: (B, T, D)``, masks ``(B, T)`` -> fused ``(B, T, D)``."""
        v = self.visual_branch(visual, face_mask)
        a = self.audio_branch(audio, audio_mask)
        v_fused = v + self.visual_queries_audio(v, a, audio_mask, face_mask)
        a_fused = a + self.audio_queries_visual(a, v, face_mask, audio_mask)
        return masked_mean([v_fused, a_fused], [face_mask, audio_mask])


class GatedFusion(nn.Module):
    """Seed 003 ¶1: "gated fusion for adaptive refinement": per frame and channel,
    ``g = sigmoid(W [x; y] + b)`` and ``out = g * x + (1 - g) * y``."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * d_model, d_model)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """``x, y: (B, T, D)`` -> ``(B, T, D)``."""
        g = torch.sigmoid(self.gate(torch.cat([x, y], dim=-1)))
        return g * x + (1 - g) * y
