"""Baseline temporal models: a dilated TCN, a Transformer encoder, a GRU and TCN -> Transformer.

The paper's Table 1 baseline uses a TCN; the seeds' siblings use Transformers, GRUs (seed 003
¶1) and a TCN followed by a Transformer (seed 003 ¶6). All share one interface so presets can
swap them:

    forward(x: (B, L, D), mask: (B, L) bool, True = valid frame, or None) -> (B, L, D)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _TemporalBlock(nn.Module):
    """Residual block of two dilated convolutions (Bai et al. 2018, "An Empirical Evaluation
    of Generic Convolutional and Recurrent Networks"), with LayerNorm instead of weight norm."""

    def __init__(self, d_model: int, kernel_size: int, dilation: int, dropout: float, causal: bool):
        super().__init__()
        total = (kernel_size - 1) * dilation
        # Causal: all padding on the left; otherwise centred (one extra on the right if odd).
        self.pad = (total, 0) if causal else (total // 2, total - total // 2)
        self.conv1 = nn.Conv1d(d_model, d_model, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size, dilation=dilation)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """x: (B, L, D); valid: (B, L, 1) float or None."""
        h = x if valid is None else x * valid  # padded frames act like the zero padding
        h = h.transpose(1, 2)  # (B, D, L)
        h = self.dropout(F.gelu(self.conv1(F.pad(h, self.pad))))
        if valid is not None:
            h = h * valid.transpose(1, 2)
        h = self.dropout(F.gelu(self.conv2(F.pad(h, self.pad))))
        return self.norm(x + h.transpose(1, 2))


class TCN(nn.Module):
    """Stack of residual dilated-convolution blocks (the paper's baseline temporal model).

    Padded frames (mask False) are zeroed before every convolution, so a right-padded sequence
    gives the same valid outputs as the unpadded one.
    """

    def __init__(
        self,
        d_model: int,
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        dropout: float = 0.0,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size, self.dilations, self.causal = kernel_size, tuple(dilations), causal
        self.blocks = nn.ModuleList(
            _TemporalBlock(d_model, kernel_size, d, dropout, causal) for d in self.dilations
        )

    @property
    def receptive_field(self) -> int:
        """Frames that can influence one output: 1 + sum over convs of (k - 1) * dilation."""
        return 1 + 2 * (self.kernel_size - 1) * sum(self.dilations)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) True = valid -> (B, L, D)."""
        valid = None if mask is None else mask[..., None].to(x.dtype)  # (B, L, 1)
        for block in self.blocks:
            x = block(x, valid)
        return x


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """The fixed sine/cosine table of "Attention Is All You Need": (length, d_model)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table


class TransformerTemporal(nn.Module):
    """Pre-norm ``nn.TransformerEncoder`` over time with sinusoidal positions.

    Attention runs through PyTorch's scaled_dot_product_attention. Padded frames (mask False)
    are excluded as keys, so they never change valid outputs; padding is expected at the end of
    a clip (a causal query with no valid key at or before it would have nothing to attend to).
    """

    def __init__(
        self,
        d_model: int,
        n_layers: int = 2,
        n_heads: int = 4,
        dim_ff: int | None = None,
        dropout: float = 0.0,
        causal: bool = False,
        max_len: int = 65536,
    ) -> None:
        super().__init__()
        self.causal, self.max_len = causal, max_len  # max_len: a sanity limit only
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=dim_ff or 4 * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) True = valid -> (B, L, D)."""
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"TransformerTemporal: length {length} > max_len {self.max_len}")
        x = x + sinusoidal_positions(length, x.shape[-1]).to(x)  # cheap; no max_len buffer
        padding = None
        if mask is not None:
            padding = ~mask.bool()
            # A clip with no valid frame would make every attention row empty (NaN): let it
            # attend normally; its outputs are meaningless and zeroed below anyway.
            padding = padding & mask.any(dim=1, keepdim=True)
        causal_mask = (  # True = may not attend (the future); bool like the padding mask
            torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
            if self.causal
            else None
        )
        out = self.encoder(x, mask=causal_mask, src_key_padding_mask=padding, is_causal=self.causal)
        if mask is not None:
            out = out.masked_fill(~mask.bool()[..., None], 0.0)
        return out


class GRUTemporal(nn.Module):
    """Residual (bi)directional GRU over time (seed 003 ¶1: "temporally modeled via Gated
    Recurrent Units (GRUs)").

    ``x + W [h_fwd; h_bwd]`` then LayerNorm. Padding is expected at the end of a clip (as the
    collate function pads): the sequence is packed by its valid length, so padded frames never
    reach the backward direction and get zero outputs.
    """

    def __init__(
        self, d_model: int, n_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(
            d_model, d_model, n_layers, batch_first=True, bidirectional=bidirectional,
            dropout=dropout if n_layers > 1 else 0.0,
        )
        self.proj = nn.Linear(d_model * (2 if bidirectional else 1), d_model)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) True = valid (a prefix of each row) -> (B, L, D)."""
        length = x.shape[1]
        if mask is None:
            h, _ = self.gru(x)  # (B, L, D * directions)
        else:
            lengths = mask.bool().sum(1).clamp(min=1).cpu()  # an empty row runs on frame 0
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths, batch_first=True, enforce_sorted=False
            )
            out, _ = self.gru(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=length)
        y = self.norm(x + self.dropout(self.proj(h)))
        if mask is not None:
            y = y.masked_fill(~mask.bool()[..., None], 0.0)
        return y


class TCNTransformer(nn.Module):
    """Seed 003 ¶6: "Temporal Convolutional Network (TCN) modules alongside Transformer Encoder
    modules": local dynamics from the dilated TCN, then global context from the Transformer."""

    def __init__(
        self,
        d_model: int,
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        n_layers: int = 2,
        n_heads: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.tcn = TCN(d_model, kernel_size, dilations, dropout)
        self.transformer = TransformerTemporal(d_model, n_layers, n_heads, dropout=dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) True = valid -> (B, L, D)."""
        return self.transformer(self.tcn(x, mask), mask)
