"""Attention with a "safe" softmax: the one multi-head attention every preset uses.

Seed 000 asks for a *safe* cross-attention: when a modality is missing (no face, no audio),
a query may have no key at all to attend to. A plain softmax over an all ``-inf`` row is
NaN, and NaN spreads through the whole batch in the backward pass. Here such a query gets
all-zero weights, hence an exactly-zero output, with finite gradients everywhere.

Mask convention (same as ``torch.nn.functional.scaled_dot_product_attention``): a bool
tensor, ``True`` = this query may attend to this key.

Two implementations of the same maths, selectable with ``impl``:

- ``"sdpa"`` (default): ``F.scaled_dot_product_attention`` (fused kernels where PyTorch has
  them). Depending on version and backend SDPA returns NaN for fully masked rows (torch 2.13
  on CPU gives zeros; older releases and some GPU kernels give NaN), so those rows get one
  key unmasked before the call and their output is zeroed after it, on every backend.
- ``"reference"``: the explicit ``softmax(Q K^T / sqrt(d)) V`` with :func:`safe_softmax`,
  the oracle that the parity tests compare the fused path against.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AttentionImpl = Literal["sdpa", "reference"]
ATTENTION_IMPLS: tuple[str, ...] = ("sdpa", "reference")


def safe_softmax(scores: Tensor, mask: Tensor | None = None, dim: int = -1) -> Tensor:
    """Softmax over ``dim`` where masked entries get weight 0 and fully masked rows are all 0.

    ``scores``: any shape; ``mask``: bool broadcastable to it (True = keep). Masked scores
    are replaced by the dtype's lowest finite value (not ``-inf``), so a fully masked row is
    a uniform softmax that the final ``* mask`` turns into zeros: no NaN in the forward or
    backward pass.
    """
    if mask is None:
        return torch.softmax(scores, dim=dim)
    lowest = torch.finfo(scores.dtype).min
    filled = torch.where(mask, scores, torch.full_like(scores, lowest))
    return torch.softmax(filled, dim=dim) * mask.to(scores.dtype)


def reference_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0
) -> Tensor:
    """The oracle: ``safe_softmax(Q K^T / sqrt(d)) V``, written out.

    ``q: (..., Lq, d)``, ``k: (..., Lk, d)``, ``v: (..., Lk, dv)``, ``mask`` bool broadcastable
    to ``(..., Lq, Lk)``; returns ``(..., Lq, dv)``. Rows with no valid key are zeros.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Lq, Lk)
    weights = safe_softmax(scores, mask, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v


def _as_4d_mask(mask: Tensor | None) -> Tensor | None:
    """``(N, Lk)`` key padding, ``(N, Lq, Lk)`` or ``(N, 1|H, Lq, Lk)`` -> 4-d bool."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise TypeError(f"attention masks are bool (True = attend), got {mask.dtype}")
    if mask.dim() == 2:
        return mask[:, None, None, :]
    if mask.dim() == 3:
        return mask[:, None, :, :]
    if mask.dim() == 4:
        return mask
    raise ValueError(f"attention mask must have 2, 3 or 4 dims, got shape {tuple(mask.shape)}")


def sdpa_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0
) -> Tensor:
    """Fused ``F.scaled_dot_product_attention`` made safe for rows with no valid key.

    Shapes as :func:`reference_attention` with 4-d ``q, k, v: (N, H, L, d)`` and a mask
    broadcastable to ``(N, H, Lq, Lk)``. Fully masked rows get key 0 unmasked so SDPA stays
    finite, then their output is replaced by zeros (``torch.where``: no gradient reaches
    that key through them).
    """
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    empty_rows = ~mask.any(dim=-1, keepdim=True)  # (..., Lq, 1)
    first_key = torch.zeros(mask.shape[-1], dtype=torch.bool, device=mask.device)
    first_key[0] = True
    usable = mask | (empty_rows & first_key)  # every row now has >= 1 key
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=usable, dropout_p=dropout_p)
    return torch.where(empty_rows, out.new_zeros(()), out)


class MultiHeadAttention(nn.Module):
    """Multi-head attention from ``d_q``-dim queries to ``d_kv``-dim keys/values.

    Own q/k/v/out projections to ``d_model`` split over ``n_heads``. A query with no valid
    key returns exactly zero (after the output projection too, so a missing modality adds
    nothing rather than the projection's bias). This is the MHCA of HGA (seed 002 §3.2) and
    the attention inside the asymmetric cross-attention (§3.3, seed 000).
    """

    def __init__(
        self,
        d_q: int,
        d_kv: int,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        impl: AttentionImpl = "sdpa",
    ) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.dropout = dropout
        self.impl: AttentionImpl = impl
        self.q_proj = nn.Linear(d_q, d_model)
        self.k_proj = nn.Linear(d_kv, d_model)
        self.v_proj = nn.Linear(d_kv, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: Tensor) -> Tensor:
        """``(N, L, d_model) -> (N, H, L, d_model / H)``."""
        n, length, _ = x.shape
        return x.view(n, length, self.n_heads, -1).transpose(1, 2)

    def forward(self, query: Tensor, key_value: Tensor, mask: Tensor | None = None) -> Tensor:
        """``query: (N, Lq, d_q)``, ``key_value: (N, Lk, d_kv)``, ``mask``: bool ``(N, Lk)``,
        ``(N, Lq, Lk)`` or ``(N, 1|H, Lq, Lk)``, True = attend -> ``(N, Lq, d_model)``."""
        q = self.split_heads(self.q_proj(query))  # (N, H, Lq, dh)
        k = self.split_heads(self.k_proj(key_value))  # (N, H, Lk, dh)
        v = self.split_heads(self.v_proj(key_value))
        return self.attend(q, k, v, mask)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attention on already projected heads ``(N, H, L, dh)``, then merge + out projection.

        Public so callers that gather keys themselves (the windowed cross-attention projects
        each audio frame once, then gathers windows) reuse the same weights and safety.
        """
        mask4 = _as_4d_mask(mask)
        dropout_p = self.dropout if self.training else 0.0
        if self.impl == "sdpa":
            heads = sdpa_attention(q, k, v, mask4, dropout_p)
        else:
            heads = reference_attention(q, k, v, mask4, dropout_p)
        n, _, lq, _ = heads.shape
        out = self.out_proj(heads.transpose(1, 2).reshape(n, lq, self.d_model))  # (N, Lq, D)
        if mask4 is None:
            return out
        has_key = mask4.any(dim=-1).any(dim=1)  # (N, Lq) or (N, 1): any head, any key
        return torch.where(has_key[..., None], out, out.new_zeros(()))
