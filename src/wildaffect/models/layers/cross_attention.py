"""Asymmetric audio-visual cross-attention and modality dropout.

Seed 002 (abstract, §1): "A novel asymmetric cross-attention mechanism is also introduced to
deeply synchronize paralinguistic audio cues with subtle visual movements" ... "using visual
cues to dynamically retrieve the corresponding audio context". Asymmetric = one direction
only: visual frames are the queries, audio frames the keys/values.

Seed 000: "a dual-branch Transformer architecture featuring a safe cross-attention mechanism
and a modality dropout strategy. This design allows the network to rely on audio-based
predictions when visual cues are absent." Safe = a query with no valid audio gets zeros,
never NaN (see :mod:`wildaffect.models.layers.attention`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wildaffect.models.layers.attention import AttentionImpl, MultiHeadAttention


def band_mask(length: int, window: int | None, device: torch.device | None = None) -> Tensor:
    """``(L, L)`` bool, True where ``|t - s| <= window`` (all True when ``window`` is None)."""
    if window is None:
        return torch.ones(length, length, dtype=torch.bool, device=device)
    t = torch.arange(length, device=device)
    return (t[:, None] - t[None, :]).abs() <= window


def _time_windows(x: Tensor, window: int, fill: float | bool) -> Tensor:
    """``x: (B, L, ...)`` -> ``(B, L, 2w+1, ...)``: frames ``t-w .. t+w``, padded with ``fill``."""
    pad = [0, 0] * (x.dim() - 2) + [window, window]
    padded = F.pad(x, pad, value=fill)  # (B, L + 2w, ...)
    # unfold puts the window dim last: (B, L, ..., 2w+1) -> move it next to time.
    return padded.unfold(1, 2 * window + 1, 1).movedim(-1, 2)


class AsymmetricCrossAttention(nn.Module):
    """Visual queries retrieve frame-aligned audio context.

    ``window=w`` restricts frame ``t`` to audio frames ``[t-w, t+w]`` (local synchrony, cost
    linear in L); ``window=None`` is the global variant (seed 000's safe cross-attention over
    the whole clip). Rows with no valid audio in reach, and rows whose visual frame is
    masked (no face: the query carries no information), return zeros; the raw audio stream
    still reaches the temporal model on its own path.

    ``impl="sdpa"`` gathers each frame's window of projected audio and runs fused attention
    on it; ``impl="reference"`` builds the dense ``(L, L)`` band mask and runs the explicit
    softmax. The two are the same function (parity-tested).
    """

    def __init__(
        self,
        d_visual: int,
        d_audio: int,
        d_model: int,
        n_heads: int = 8,
        window: int | None = None,
        dropout: float = 0.0,
        impl: AttentionImpl = "sdpa",
    ) -> None:
        super().__init__()
        if window is not None and window < 0:
            raise ValueError(f"window must be >= 0 or None, got {window}")
        self.window = window
        self.attn = MultiHeadAttention(d_visual, d_audio, d_model, n_heads, dropout, impl)

    @property
    def impl(self) -> AttentionImpl:
        return self.attn.impl

    @impl.setter
    def impl(self, value: AttentionImpl) -> None:
        self.attn.impl = value

    def forward(
        self,
        visual: Tensor,
        audio: Tensor,
        audio_mask: Tensor | None = None,
        visual_mask: Tensor | None = None,
    ) -> Tensor:
        """``visual: (B, L, Dv)``, ``audio: (B, L, Da)`` (same frame times), masks ``(B, L)``
        bool (True = present) or None -> audio context ``(B, L, d_model)``."""
        if visual.shape[:2] != audio.shape[:2]:
            raise ValueError(
                f"visual {tuple(visual.shape)} and audio {tuple(audio.shape)} must be "
                "frame-aligned (same B, L)"
            )
        batch, length = visual.shape[:2]
        ones = torch.ones(batch, length, dtype=torch.bool, device=visual.device)
        audio_mask = ones if audio_mask is None else audio_mask
        visual_mask = ones if visual_mask is None else visual_mask
        use_windows = (
            self.impl == "sdpa" and self.window is not None and 2 * self.window + 1 < length
        )
        if use_windows:
            return self._windowed(visual, audio, audio_mask, visual_mask)
        mask = (
            band_mask(length, self.window, visual.device)[None]
            & audio_mask[:, None, :]
            & visual_mask[:, :, None]
        )  # (B, L, L)
        return self.attn(visual, audio, mask)

    def _windowed(
        self, visual: Tensor, audio: Tensor, audio_mask: Tensor, visual_mask: Tensor
    ) -> Tensor:
        """Each frame attends over its own ``2w+1`` gathered audio frames: O(L w), not O(L^2)."""
        assert self.window is not None
        attn, w = self.attn, self.window
        batch, length = visual.shape[:2]
        span = 2 * w + 1
        q = attn.q_proj(visual).reshape(batch * length, 1, -1)  # (BL, 1, D)
        k = _time_windows(attn.k_proj(audio), w, 0.0).reshape(batch * length, span, -1)
        v = _time_windows(attn.v_proj(audio), w, 0.0).reshape(batch * length, span, -1)
        valid = _time_windows(audio_mask, w, False) & visual_mask[:, :, None]  # (B, L, 2w+1)
        out = attn.attend(
            attn.split_heads(q),
            attn.split_heads(k),
            attn.split_heads(v),
            valid.reshape(batch * length, span),
        )  # (BL, 1, D)
        return out.reshape(batch, length, -1)


class ModalityDropout(nn.Module):
    """Seed 000's modality dropout: in training, hide a whole modality from some samples.

    Per sample, with probability ``p_visual`` the visual mask is set all False, else with
    probability ``p_audio`` the audio mask is; never both (one uniform draw decides, so
    ``p_visual + p_audio <= 1``). A modality is only dropped when the other one has at least
    one present frame in that sample, so no sample is left with nothing. Identity in eval.
    """

    def __init__(self, p_visual: float = 0.0, p_audio: float = 0.0) -> None:
        super().__init__()
        if min(p_visual, p_audio) < 0 or p_visual + p_audio > 1:
            raise ValueError(
                f"need p_visual, p_audio >= 0 and p_visual + p_audio <= 1, "
                f"got {p_visual}, {p_audio}"
            )
        self.p_visual = p_visual
        self.p_audio = p_audio

    def forward(self, visual_mask: Tensor, audio_mask: Tensor) -> tuple[Tensor, Tensor]:
        """``visual_mask, audio_mask: (B, L)`` bool -> the same, with dropped samples False."""
        if not self.training or (self.p_visual == 0 and self.p_audio == 0):
            return visual_mask, audio_mask
        draw = torch.rand(visual_mask.shape[0], device=visual_mask.device)  # (B,)
        drop_visual = (draw < self.p_visual) & audio_mask.any(dim=1)
        drop_audio = (
            (draw >= self.p_visual) & (draw < self.p_visual + self.p_audio) & visual_mask.any(dim=1)
        )
        return visual_mask & ~drop_visual[:, None], audio_mask & ~drop_audio[:, None]
