"""Fusions over more than two frame-aligned streams (visual, audio, behaviour, text) from seed 003.

Every block takes ``streams: dict[name, (x (B, T, D), mask (B, T) bool)]`` with ``"visual"``
first and returns ``(B, T, D)``. A missing stream is a mask of all False: it contributes
nothing (safe attention gives zeros, routers and averages skip it), never NaN. Every
cross-modal path is the shared :class:`AsymmetricCrossAttention` (one implementation).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wildaffect.models.layers.attention import safe_softmax
from wildaffect.models.layers.cross_attention import AsymmetricCrossAttention
from wildaffect.models.layers.fusion import masked_mean
from wildaffect.models.layers.temporal import TransformerTemporal

Streams = dict[str, tuple[Tensor, Tensor]]


def directed_pairs(names: tuple[str, ...]) -> list[tuple[str, str]]:
    """Every ordered (source, target) pair of distinct streams: n (n - 1) paths."""
    return [(src, dst) for dst in names for src in names if src != dst]


def _path_key(src: str, dst: str) -> str:
    return f"{src}_to_{dst}"


def _cross_attention_paths(
    pairs: list[tuple[str, str]], d_model: int, n_heads: int, window: int | None, dropout: float
) -> nn.ModuleDict:
    """One cross-attention per directed (source, target) pair: target queries source."""
    return nn.ModuleDict({
        _path_key(src, dst): AsymmetricCrossAttention(
            d_model, d_model, d_model, n_heads, window, dropout
        )
        for src, dst in pairs
    })


class DirectedMoEFusion(nn.Module):
    """Seed 003 ¶0: "a Directed Cross-Modal Mixture-of-Experts Fusion Strategy that learns
    interactions between modalities with adaptive weighting".

    Experts: one per directed pair ``src -> dst`` (``dst`` frames query ``src``;
    ``LayerNorm(x_dst + context)``) plus one "self" expert per stream (its own features). A
    router reads every stream and its presence flag per frame and gives softmax weights over
    the experts whose streams are present; the output is the weighted sum of the experts.
    """

    def __init__(
        self, d_model: int, names: tuple[str, ...], n_heads: int = 4, window: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.names = tuple(names)
        self.pairs = directed_pairs(self.names)
        self.paths = _cross_attention_paths(self.pairs, d_model, n_heads, window, dropout)
        self.norms = nn.ModuleDict({_path_key(s, d): nn.LayerNorm(d_model) for s, d in self.pairs})
        n_experts = len(self.pairs) + len(self.names)
        self.router = nn.Linear(len(self.names) * (d_model + 1), n_experts)

    def forward(self, streams: Streams) -> Tensor:
        xs = [streams[n][0] for n in self.names]
        masks = [streams[n][1] for n in self.names]
        present = {n: streams[n][1] for n in self.names}
        experts, available = [], []
        for src, dst in self.pairs:
            x_dst, m_dst = streams[dst]
            x_src, m_src = streams[src]
            context = self.paths[_path_key(src, dst)](x_dst, x_src, m_src, m_dst)
            experts.append(self.norms[_path_key(src, dst)](x_dst + context))
            available.append(m_dst & m_src.any(1, keepdim=True))  # (B, T)
        experts += xs
        available += [present[n] for n in self.names]
        router_in = torch.cat(
            [torch.where(m[..., None], x, x.new_zeros(())) for x, m in zip(xs, masks)]
            + [m[..., None].to(xs[0].dtype) for m in masks],
            dim=-1,
        )
        weights = safe_softmax(self.router(router_in), torch.stack(available, dim=-1))  # (B,T,E)
        stacked = torch.stack(experts, dim=-1)  # (B, T, D, E)
        stacked = torch.where(weights[:, :, None, :] > 0, stacked, stacked.new_zeros(()))
        return (stacked * weights[:, :, None, :]).sum(-1)


class ReliabilityFusion(nn.Module):
    """Seed 003 ¶0: "a Reliability-Aware Audio-Visual Fusion Strategy that combines visual
    features at the frame-level while using audio as complementary context".

    The visual frame stays the backbone; every other stream ``s`` adds a local context
    ``c_s`` retrieved by the visual frame (windowed cross-attention), scaled by a reliability
    ``r_s = sigmoid(w_s [v; c_s; q_s])`` in [0, 1], where ``q_s`` is an external quality
    score per frame (the VAD speech probability for audio; 1 for the others):
    ``out = LayerNorm(v + sum_s r_s c_s)``. A frame without a face still queries (with the
    model's learned no-face vector), so the audio alone carries it.
    """

    def __init__(
        self, d_model: int, context_names: tuple[str, ...], n_heads: int = 4,
        window: int | None = None, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.context_names = tuple(context_names)
        self.paths = nn.ModuleDict({
            n: AsymmetricCrossAttention(d_model, d_model, d_model, n_heads, window, dropout)
            for n in self.context_names
        })
        self.reliability = nn.ModuleDict(
            {n: nn.Linear(2 * d_model + 1, 1) for n in self.context_names}
        )
        self.norm = nn.LayerNorm(d_model)
        self.last_reliability: dict[str, Tensor] = {}  # (B, T) per stream, for inspection

    def forward(self, streams: Streams, quality: dict[str, Tensor] | None = None) -> Tensor:
        v, _ = streams["visual"]
        out = v
        for name in self.context_names:
            x, mask = streams[name]
            context = self.paths[name](v, x, mask, None)  # (B, T, D); zeros without the stream
            q = (quality or {}).get(name)
            q = v.new_ones(v.shape[:2]) if q is None else q.to(v.dtype)
            r = torch.sigmoid(self.reliability[name](torch.cat([v, context, q[..., None]], -1)))
            self.last_reliability[name] = r[..., 0].detach()
            out = out + r * context
        return self.norm(out)


class MultiPathCrossAttention(nn.Module):
    """Seed 003 ¶8 (MAVEN): "a bi-directional cross-modal attention mechanism with six distinct
    attention pathways [...] each modality representation is refined through weighted attention
    from other modalities, followed by self-attention refinement through modality-specific
    encoders."

    For three streams, six directed paths ``src -> dst``; ``x_dst' = x_dst + sum_src
    softmax(beta_dst)_src * context_{src -> dst}`` with learned ``beta`` per target (over the
    sources present at that frame), then one Transformer layer per modality, and the frame's
    output is the mean of the refined streams present there.
    """

    def __init__(
        self, d_model: int, names: tuple[str, ...], n_heads: int = 4, window: int | None = None,
        dropout: float = 0.0, n_layers: int = 1,
    ) -> None:
        super().__init__()
        self.names = tuple(names)
        self.pairs = directed_pairs(self.names)
        self.paths = _cross_attention_paths(self.pairs, d_model, n_heads, window, dropout)
        self.source_logits = nn.ParameterDict(
            {dst: nn.Parameter(torch.zeros(len(self.names) - 1)) for dst in self.names}
        )
        self.refine = nn.ModuleDict({
            n: TransformerTemporal(d_model, n_layers, n_heads, dropout=dropout) for n in self.names
        })

    def forward(self, streams: Streams) -> Tensor:
        refined, masks = [], []
        for dst in self.names:
            x_dst, m_dst = streams[dst]
            sources = [s for s in self.names if s != dst]
            contexts = torch.stack([
                self.paths[_path_key(src, dst)](x_dst, streams[src][0], streams[src][1], m_dst)
                for src in sources
            ], dim=-1)  # (B, T, D, S)
            has = torch.stack([streams[s][1].any(1, keepdim=True).expand_as(m_dst)
                               for s in sources], dim=-1)  # (B, T, S)
            weights = safe_softmax(self.source_logits[dst].expand_as(has), has)  # (B, T, S)
            enhanced = x_dst + (contexts * weights[:, :, None, :]).sum(-1)
            refined.append(self.refine[dst](enhanced, m_dst))
            masks.append(m_dst)
        return masked_mean(refined, masks)
