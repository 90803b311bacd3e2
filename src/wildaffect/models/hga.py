"""Hierarchical Granularity Alignment (HGA), seed 002 §3.2, and the frame-level poolings.

The paper's words, and where each is implemented:

- "we group these landmarks into anatomically defined Regions of Interest (RoIs) ... For each
  region, we map its corresponding landmark coordinates to the downsampled patch grid of
  DINOv2" -> :func:`landmarks_to_region_masks` (regions from ``face/regions.py``).
- "The initial local representation for the r-th region is aggregated via average pooling
  over the mapped patches" (eq. local pooling, f_r = 1/|P_r| sum_{p in P_r} x_p)
  -> :func:`region_average`.
- "we define the global facial context by applying Global Average Pooling (GAP) across all
  patches" (g = 1/N sum_p x_p) -> ``patches.mean``.
- "we formulate this alignment as a Multi-Head Cross-Attention (MHCA) process. The locally
  pooled feature serves as the query, while the entire patch sequence serves as the keys
  and values" (eq. MHCA, 8 heads) -> ``HGA.cross_attention``.
- "we fuse the attention-enhanced local feature, the original local feature, and the global
  context ... through a channel-wise concatenation followed by a Multi-Layer Perceptron"
  (eq. MLP([f~_r, f_r, g])) -> ``HGA.fuse``. The one addition: a LayerNorm on the
  concatenation, because the three parts have different scales (attention output vs raw
  DINOv2 features).
- "The refined tokens for all regions are then stacked" -> output ``(B, T, R, d_out)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wildaffect.face.regions import DEFAULT_REGIONS
from wildaffect.models.layers.attention import AttentionImpl, MultiHeadAttention

Regions = Mapping[str, Sequence[int]]


def _region_pairs(regions: Regions) -> tuple[Tensor, Tensor]:
    """Flatten ``{name: landmark indices}`` to parallel ``(P,)`` region-id / landmark-id lists."""
    region_ids, landmark_ids = [], []
    for r, indices in enumerate(regions.values()):
        if len(indices) == 0:
            raise ValueError(f"region {list(regions)[r]!r} has no landmarks")
        region_ids += [r] * len(indices)
        landmark_ids += list(indices)
    return torch.tensor(region_ids), torch.tensor(landmark_ids)


def landmarks_to_region_masks(
    landmarks: Tensor,
    grid_hw: tuple[int, int] = (16, 16),
    regions: Regions = DEFAULT_REGIONS,
    radius: int = 1,
) -> Tensor:
    """Which patch cells belong to each region: ``(..., 68, 2)`` -> ``(..., R, H*W)`` bool.

    ``landmarks`` are in crop coordinates in [0, 1] (x right, y down). A landmark falls in
    cell ``(floor(y H), floor(x W))``, clamped to the grid (points just outside the crop
    land on the border). A region's cells are those its landmarks fall in, dilated by
    ``radius`` cells (Chebyshev: radius 1 adds the 8 neighbours, clipped at the border).
    Non-finite landmarks (NaN/inf) are ignored. A region with no valid landmark falls back
    to the whole grid, so its local feature is the global average: a neutral value that
    invents no location (the "nearest cell" has no reference point when all are missing).
    Cells are flattened row-major, matching ``patches.reshape(..., H*W, D)``.
    """
    if landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks must end in (..., n_points, 2), got {tuple(landmarks.shape)}")
    height, width = grid_hw
    region_ids, landmark_ids = _region_pairs(regions)
    if int(landmark_ids.max()) >= landmarks.shape[-2]:
        raise ValueError(
            f"regions use landmark {int(landmark_ids.max())} but landmarks have "
            f"{landmarks.shape[-2]} points"
        )
    lead = landmarks.shape[:-2]
    points = landmarks.reshape(-1, landmarks.shape[-2], 2)  # (N, P68, 2)
    valid = torch.isfinite(points).all(dim=-1)  # (N, P68)
    xy = torch.where(valid[..., None], points, torch.zeros_like(points)).clamp(0.0, 1.0)
    col = (xy[..., 0] * width).floor().long().clamp(max=width - 1)
    row = (xy[..., 1] * height).floor().long().clamp(max=height - 1)
    cell = row * width + col  # (N, P68)

    n_regions, n_cells = len(regions), height * width
    region_ids, landmark_ids = region_ids.to(cell.device), landmark_ids.to(cell.device)
    target = region_ids * n_cells + cell[:, landmark_ids]  # (N, P): flat (region, cell) slot
    hits = torch.zeros(points.shape[0], n_regions * n_cells, device=cell.device)
    hits.scatter_add_(1, target, valid[:, landmark_ids].float())  # duplicates just add up
    grid = (hits > 0).float().view(-1, 1, height, width)  # (N R, 1, H, W)
    if radius > 0:  # max-pool pads with -inf, so dilation is clipped at the border
        grid = F.max_pool2d(grid, kernel_size=2 * radius + 1, stride=1, padding=radius)
    masks = grid.view(points.shape[0], n_regions, n_cells) > 0  # (N, R, HW)
    empty = ~masks.any(dim=-1, keepdim=True)  # (N, R, 1)
    return (masks | empty).view(*lead, n_regions, n_cells)


def region_average(patches: Tensor, masks: Tensor) -> Tensor:
    """Eq. local pooling: mean of the patches inside each region.

    ``patches: (N, HW, D)``, ``masks: (N, R, HW)`` bool (never empty) -> ``(N, R, D)``.
    """
    weights = masks.to(patches.dtype)
    weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=1.0)
    return weights @ patches


class HGA(nn.Module):
    """Hierarchical Granularity Alignment: one aligned token per facial region per frame.

    Frames without a face (``face_mask`` False) get a learned per-region "no-face" token
    instead of a computed one (a learned token lets the temporal model tell "no face" from a
    real face with zero features). Their patches and landmarks are never read, so garbage
    or NaN there changes nothing, not even gradients.
    """

    def __init__(
        self,
        d_patch: int,
        d_out: int,
        regions: Regions = DEFAULT_REGIONS,
        n_heads: int = 8,
        radius: int = 1,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        attn_impl: AttentionImpl = "sdpa",
    ) -> None:
        super().__init__()
        self.regions = {name: tuple(indices) for name, indices in regions.items()}
        self.region_names = tuple(self.regions)
        self.n_regions = len(self.regions)
        self.d_patch = d_patch
        self.d_out = d_out
        self.radius = radius
        # eq. MHCA: Q = f_r W_Q, K = X W_K, V = X W_V, 8 heads in the paper.
        self.cross_attention = MultiHeadAttention(
            d_patch, d_patch, d_patch, n_heads, dropout, attn_impl
        )
        hidden = max(1, round(mlp_ratio * d_out))
        # eq. MLP([f~_r, f_r, g]).
        self.fuse = nn.Sequential(
            nn.LayerNorm(3 * d_patch),
            nn.Linear(3 * d_patch, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, d_out),
        )
        self.no_face = nn.Parameter(torch.randn(self.n_regions, d_out) * 0.02)

    def forward(
        self, patches: Tensor, landmarks: Tensor, face_mask: Tensor | None = None
    ) -> Tensor:
        """``patches: (B, T, H, W, D)``, ``landmarks: (B, T, 68, 2)`` in [0, 1] crop
        coordinates, ``face_mask: (B, T)`` bool -> tokens ``(B, T, R, d_out)``."""
        batch, time, _, _, dim = patches.shape  # (B, T, H, W, D)
        if dim != self.d_patch:
            raise ValueError(f"patches have D={dim}, HGA was built for d_patch={self.d_patch}")
        if landmarks.shape[:2] != (batch, time):
            raise ValueError(
                f"landmarks {tuple(landmarks.shape)} do not match patches {tuple(patches.shape)}"
            )
        face_mask = self._face_mask(face_mask, batch, time, patches.device)
        return self._scatter(self.face_tokens(patches, landmarks, face_mask), face_mask)

    def face_tokens(self, patches: Tensor, landmarks: Tensor, face_mask: Tensor) -> Tensor | None:
        """:meth:`forward` for the face frames only: ``(N, R, d_out)`` in ``face_mask`` order
        (N = its True count), None when there is no face."""
        height, width, dim = patches.shape[2:]
        faces = patches[face_mask].reshape(-1, height * width, dim)  # (N, HW, D)
        if faces.shape[0] == 0:
            return None
        masks = landmarks_to_region_masks(
            landmarks[face_mask], (height, width), self.regions, self.radius
        )  # (N, R, HW)
        local = region_average(faces, masks)  # (N, R, D)
        return self._align(local, faces, faces.mean(dim=1))

    def forward_tokens(self, region_tokens: Tensor, face_mask: Tensor | None = None) -> Tensor:
        """Adaptation for offline per-region features (no patch grid): ``(B, T, R, D)`` or
        ``(B, T, R + 1, D)`` -> ``(B, T, R, d_out)``.

        Not in the paper: the CPU default encoder yields one vector per region directly, so
        the local feature f_r is that region's vector and the keys/values are the token
        vectors instead of the patches. The global context g is the encoder's trailing global
        token when there is one (``mediapipe-regions`` appends head pose, all blendshapes and
        the whole face shape: what GAP over patches summarises in the paper), which is then
        also one more key/value; otherwise g is the mean of the region vectors. Same MHCA and
        MLP weights as :meth:`forward`.
        """
        batch, time, n_tokens, dim = region_tokens.shape
        if n_tokens not in (self.n_regions, self.n_regions + 1) or dim != self.d_patch:
            raise ValueError(
                f"region tokens {tuple(region_tokens.shape)} do not match HGA "
                f"(R={self.n_regions} regions, optionally + 1 global token; D={self.d_patch})"
            )
        face_mask = self._face_mask(face_mask, batch, time, region_tokens.device)
        return self._scatter(self.face_region_tokens(region_tokens, face_mask), face_mask)

    def face_region_tokens(self, region_tokens: Tensor, face_mask: Tensor) -> Tensor | None:
        """:meth:`forward_tokens` for the face frames only: ``(N, R, d_out)``, or None."""
        tokens = region_tokens[face_mask]  # (N, R or R+1, D)
        if tokens.shape[0] == 0:
            return None
        local = tokens[:, : self.n_regions]  # (N, R, D)
        global_ctx = tokens[:, -1] if tokens.shape[1] > self.n_regions else local.mean(dim=1)
        return self._align(local, tokens, global_ctx)

    def _align(self, local: Tensor, keys: Tensor, global_ctx: Tensor) -> Tensor:
        """``local: (N, R, D)``, ``keys: (N, K, D)``, ``global_ctx: (N, D)``
        -> ``(N, R, d_out)``."""
        attended = self.cross_attention(local, keys)  # (N, R, D)
        fused = torch.cat([attended, local, global_ctx[:, None].expand_as(local)], dim=-1)
        return self.fuse(fused)

    def _scatter(self, tokens: Tensor | None, face_mask: Tensor) -> Tensor:
        """Put the ``(N, R, d_out)`` face tokens back at their frames, no-face token elsewhere."""
        batch, time = face_mask.shape
        no_face = self.no_face.expand(batch, time, -1, -1)  # (B, T, R, d_out)
        if tokens is None:
            return no_face.clone()
        full = tokens.new_zeros(no_face.shape).index_put((face_mask,), tokens)
        return torch.where(face_mask[..., None, None], full, no_face)

    @staticmethod
    def _face_mask(face_mask: Tensor | None, batch: int, time: int, device) -> Tensor:
        if face_mask is None:
            return torch.ones(batch, time, dtype=torch.bool, device=device)
        if face_mask.shape != (batch, time) or face_mask.dtype != torch.bool:
            raise ValueError(
                f"face_mask must be bool (B, T)=({batch}, {time}), got "
                f"{face_mask.dtype} {tuple(face_mask.shape)}"
            )
        return face_mask


class RegionPool(nn.Module):
    """Region tokens -> one frame descriptor for the temporal model:
    ``(B, T, R, d) -> (B, T, d_model)``.

    ``"flatten"`` keeps which region is which (concatenate, then project), as the paper's
    "stacked" tokens feeding the SSM; ``"attention"`` learns a softmax weight per region
    (order-free, fewer parameters).
    """

    def __init__(
        self,
        n_regions: int,
        d_token: int,
        d_model: int,
        mode: Literal["flatten", "attention"] = "flatten",
    ) -> None:
        super().__init__()
        if mode not in ("flatten", "attention"):
            raise ValueError(f"mode must be 'flatten' or 'attention', got {mode!r}")
        self.mode = mode
        self.n_regions = n_regions
        if mode == "flatten":
            self.proj = nn.Linear(n_regions * d_token, d_model)
        else:
            self.score = nn.Linear(d_token, 1)
            self.proj = nn.Linear(d_token, d_model)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.shape[-2] != self.n_regions:
            raise ValueError(f"expected {self.n_regions} regions, got {tuple(tokens.shape)}")
        if self.mode == "flatten":
            return self.proj(tokens.flatten(start_dim=-2))
        weights = torch.softmax(self.score(tokens), dim=-2)  # (B, T, R, 1)
        return self.proj((weights * tokens).sum(dim=-2))


class GlobalPool(nn.Module):
    """GAP for the presets without HGA: ``(B, T, H, W, D)`` or ``(B, T, R, D)`` -> ``(B, T, D)``.

    Frames with ``face_mask`` False give zeros (whatever their features hold, NaN included).
    """

    def forward(self, features: Tensor, face_mask: Tensor | None = None) -> Tensor:
        if features.dim() not in (4, 5):
            raise ValueError(
                f"expected (B, T, H, W, D) or (B, T, R, D), got {tuple(features.shape)}"
            )
        cells = features.flatten(start_dim=2, end_dim=-2)  # (B, T, HW or R, D)
        if face_mask is not None:  # zero before pooling so NaN there cannot leak
            cells = torch.where(face_mask[..., None, None], cells, cells.new_zeros(()))
        return cells.mean(dim=2)
