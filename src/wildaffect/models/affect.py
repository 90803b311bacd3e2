"""One model class for every preset: spatial block -> audio-visual fusion -> temporal -> heads.

The flagship (seed 002) is ``HGA -> asymmetric cross-attention -> AG-SSM -> heads``; the
Table 1 rows and the sibling systems switch blocks through :class:`ModelConfig`, so there is one
implementation of each layer and no copy of the model per task. Seed 003's siblings add
optional streams (VAD speech probability, behaviour features, transcript embeddings), a
temporal block per stream before fusion, segment pooling of the audio, fusions over several
streams and other VA heads, all as configuration of this one class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wildaffect.face.regions import DEFAULT_REGIONS
from wildaffect.labels import Task
from wildaffect.models.ag_ssm import AGSSM
from wildaffect.models.config import SEQUENCE_TEMPORALS, ModelConfig
from wildaffect.models.heads import TaskHeads
from wildaffect.models.hga import HGA, GlobalPool, RegionPool
from wildaffect.models.layers.cross_attention import AsymmetricCrossAttention, ModalityDropout
from wildaffect.models.layers.fusion import DualBranchFusion, GatedFusion, TokenTransformerFusion
from wildaffect.models.layers.multistream import (
    DirectedMoEFusion,
    MultiPathCrossAttention,
    ReliabilityFusion,
)
from wildaffect.models.layers.pooling import SegmentStatsPool
from wildaffect.models.layers.temporal import TCN, GRUTemporal, TCNTransformer, TransformerTemporal

#: Optional frame-aligned streams beside visual and audio: name -> config width field.
EXTRA_STREAMS = {"behaviour": "d_behaviour", "text": "d_text"}


def _standardise(x: Tensor, mean: Tensor, std: Tensor, clip: float) -> Tensor:
    """``(x - mean) / std`` in x's dtype, clipped to +-clip (the model's input normalisation)."""
    return ((x - mean.to(x.dtype)) / std.to(x.dtype)).clamp(-clip, clip)


class _PlainSSM(nn.Module):
    """The plain (not audio-guided) Mamba stack behind the ``forward(x, mask)`` interface."""

    def __init__(self, ssm: AGSSM) -> None:
        super().__init__()
        self.ssm = ssm

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        y, _ = self.ssm(x, valid=mask)
        return y if mask is None else y.masked_fill(~mask[..., None], 0.0)


def sequence_block(kind: str, cfg: ModelConfig) -> nn.Module:
    """A temporal block ``forward(x: (B, L, D), mask: (B, L) | None) -> (B, L, D)``."""
    d = cfg.d_model
    if kind == "tcn":
        return TCN(d, cfg.tcn_kernel, cfg.tcn_dilations, cfg.dropout)
    if kind == "transformer":
        return TransformerTemporal(d, cfg.n_layers, cfg.transformer_heads, dropout=cfg.dropout)
    if kind == "gru":
        return GRUTemporal(d, cfg.n_layers, cfg.bidirectional, cfg.dropout)
    if kind == "tcn_transformer":
        return TCNTransformer(
            d, cfg.tcn_kernel, cfg.tcn_dilations, cfg.n_layers, cfg.transformer_heads, cfg.dropout
        )
    if kind == "mamba":
        return _PlainSSM(AGSSM(
            d, d, cfg.n_layers, d_state=cfg.d_state, d_inner=cfg.d_inner,
            bidirectional=cfg.bidirectional, audio_guided=False, dropout=cfg.dropout,
        ))
    raise ValueError(f"no sequence block {kind!r}")


@dataclass
class ModelOutput:
    """Head outputs per task (AU/EXPR logits, VA in [-1, 1]) and the carried temporal state."""

    outputs: dict[Task, Tensor]
    state: list | None = None


class AffectModel(nn.Module):
    """Per-frame AU / EXPR / VA from cached visual and audio features.

    ``forward`` takes a mapping (a training batch or a predictor chunk) with

    - ``visual``: ``(B, T, H, W, Dv)`` patch grid, ``(B, T, R, Dv)`` region tokens or
      ``(B, T, Dv)`` vectors, as ``config.visual_input`` says;
    - ``landmarks``: ``(B, T, 68, 2)`` in [0, 1] crop coordinates (HGA over a grid only);
    - ``face_mask``: ``(B, T)`` bool, False where no face was found (optional: all True);
    - ``audio``: ``(B, T, Da)`` frame-aligned features, and ``audio_mask`` ``(B, T)`` bool
      (both optional: a missing audio stream is handled by every fusion);
    - optional (seed 003): ``vad`` ``(B, T)`` speech probability in [0, 1];
      ``behaviour`` ``(B, T, d_behaviour)`` / ``text`` ``(B, T, d_text)`` with
      ``behaviour_mask`` / ``text_mask`` ``(B, T)`` bool; ``valid_mask`` ``(B, T)`` (padding).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        self.regions = DEFAULT_REGIONS
        d = cfg.d_model
        # Spatial: HGA tokens pooled to one descriptor per frame, or GAP + projection.
        if cfg.spatial == "hga":
            self.hga = HGA(
                cfg.d_visual, cfg.d_token, self.regions, cfg.hga_heads, cfg.hga_radius,
                dropout=cfg.dropout,
            )
            self.region_pool = RegionPool(self.hga.n_regions, cfg.d_token, d, cfg.region_pool)
        else:
            self.global_pool = GlobalPool()
            self.visual_proj = nn.Linear(cfg.d_visual, d)
            self.no_face = nn.Parameter(torch.randn(d) * 0.02)  # learned "no face" frame
        # Audio projected to the model width (zeros where audio is missing).
        if cfg.has_audio:
            self.audio_proj = nn.Linear(cfg.d_audio, d)
            if cfg.audio_segment:
                self.audio_pool = SegmentStatsPool(d, cfg.audio_segment)
        for name, width in EXTRA_STREAMS.items():
            if getattr(cfg, width):
                setattr(self, f"{name}_proj", nn.Linear(getattr(cfg, width), d))
        # Per-stream temporal blocks before fusion.
        self.stream_temporal = nn.ModuleDict()
        if cfg.modality_temporal != "none":
            for name in ("visual", "audio", "text"):
                if name == "visual" or (name == "audio" and cfg.has_audio) or (
                    name == "text" and cfg.d_text
                ):
                    self.stream_temporal[name] = sequence_block(cfg.modality_temporal, cfg)
        if cfg.d_behaviour and cfg.behaviour_temporal != "none":
            self.stream_temporal["behaviour"] = sequence_block(cfg.behaviour_temporal, cfg)
        # Fusion.
        streams = ("visual", "audio", *(n for n, w in EXTRA_STREAMS.items() if getattr(cfg, w)))
        if cfg.fusion in ("asym_xattn", "gated_xattn", "xattn_concat"):
            self.cross_attention = AsymmetricCrossAttention(
                d, d, d, cfg.xattn_heads, cfg.xattn_window, cfg.dropout
            )
        elif cfg.fusion == "concat":
            # The baselines' shallow late fusion; the presence flag tells silence from no audio.
            self.concat_proj = nn.Linear(2 * d + 1, d)
        elif cfg.fusion == "token_transformer":
            self.token_fusion = TokenTransformerFusion(d, cfg.transformer_heads, cfg.dropout)
        elif cfg.fusion == "dual_branch":
            self.dual_branch = DualBranchFusion(
                d, cfg.n_layers, cfg.transformer_heads, cfg.xattn_heads, cfg.dropout
            )
        elif cfg.fusion == "moe":
            self.moe = DirectedMoEFusion(d, streams, cfg.xattn_heads, cfg.xattn_window, cfg.dropout)
        elif cfg.fusion == "reliability":
            self.reliability = ReliabilityFusion(
                d, streams[1:], cfg.xattn_heads, cfg.xattn_window, cfg.dropout
            )
        elif cfg.fusion == "maven":
            self.maven = MultiPathCrossAttention(
                d, streams, cfg.xattn_heads, cfg.xattn_window, cfg.dropout
            )
        if cfg.fusion == "gated_xattn":
            self.gated = GatedFusion(d)
        elif cfg.fusion == "xattn_concat":
            self.xattn_concat_proj = nn.Linear(2 * d + 1, d)
        self.modality_dropout = ModalityDropout(*cfg.modality_dropout)
        # Temporal.
        if cfg.temporal in ("ag_ssm", "mamba"):
            self.temporal = AGSSM(
                d, d, cfg.n_layers, d_state=cfg.d_state, d_inner=cfg.d_inner,
                bidirectional=cfg.bidirectional, audio_guided=cfg.temporal == "ag_ssm"
                and cfg.has_audio, dropout=cfg.dropout,
            )
        elif cfg.temporal in SEQUENCE_TEMPORALS:
            self.temporal = sequence_block(cfg.temporal, cfg)
        self.heads = TaskHeads(
            d, cfg.tasks, cfg.head_hidden, cfg.dropout, cfg.va_head, cfg.task_fusion
        )
        if cfg.input_norm:
            # Identity until set_input_stats() stores the training set's statistics.
            shapes = {"visual": cfg.visual_frame_shape, "audio": (cfg.d_audio,)}
            for stream, shape in shapes.items():
                if stream == "audio" and not cfg.has_audio:
                    continue
                self.register_buffer(f"{stream}_mean", torch.zeros(shape))
                self.register_buffer(f"{stream}_std", torch.ones(shape))

    # -- input statistics ---------------------------------------------------------------------

    def set_input_stats(
        self,
        visual_mean: Tensor,
        visual_std: Tensor,
        audio_mean: Tensor | None = None,
        audio_std: Tensor | None = None,
    ) -> None:
        """Store per-feature training statistics; std below 1e-6 counts as 1 (constant)."""
        if not self.config.input_norm:
            raise ValueError(f"model {self.config.name!r} was built without input_norm")
        pairs = {"visual": (visual_mean, visual_std), "audio": (audio_mean, audio_std)}
        for stream, (mean, std) in pairs.items():
            if stream == "audio" and not self.config.has_audio:
                continue
            if mean is None or std is None:
                raise ValueError(f"set_input_stats: {stream} statistics are missing")
            target = getattr(self, f"{stream}_mean")
            if tuple(mean.shape) != tuple(target.shape) or tuple(std.shape) != tuple(target.shape):
                raise ValueError(
                    f"set_input_stats: {stream} statistics have shapes {tuple(mean.shape)} / "
                    f"{tuple(std.shape)}, the model expects {tuple(target.shape)}"
                )
            target.copy_(mean)
            getattr(self, f"{stream}_std").copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def _normalised(self, batch: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
        """The batch with visual/audio standardised and clipped (when ``input_norm``), on the
        frames where the batch's face / audio mask says the modality is present."""
        if not self.config.input_norm:
            return batch
        clip, out = self.config.input_clip, dict(batch)
        for stream in ("visual", "audio"):
            value = batch.get(stream)
            if value is None or not hasattr(self, f"{stream}_mean"):
                continue
            mean, std = getattr(self, f"{stream}_mean"), getattr(self, f"{stream}_std")
            present = batch.get("face_mask" if stream == "visual" else "audio_mask")
            if present is None or bool(present.all()):
                out[stream] = _standardise(value, mean, std, clip)
            else:  # only the frames the model reads (speech has no face: most of a clip)
                out[stream] = value.index_put(
                    (present,), _standardise(value[present], mean, std, clip))
        return out

    # -- pieces -------------------------------------------------------------------------------

    def encode_visual(self, batch: Mapping[str, Tensor], face_mask: Tensor) -> Tensor:
        """-> per-frame visual descriptor ``(B, T, d_model)``."""
        cfg, visual = self.config, batch["visual"]
        expected_dims = {"grid": 5, "regions": 4, "vector": 3}[cfg.visual_input]
        if visual.dim() != expected_dims or visual.shape[-1] != cfg.d_visual:
            raise ValueError(
                f"model {cfg.name!r} expects visual_input={cfg.visual_input!r} features with "
                f"{expected_dims} dims and D={cfg.d_visual}, got {tuple(visual.shape)}"
            )
        if cfg.spatial == "hga":
            # HGA and the pooling are per frame: run them on the face frames only and pool the
            # learned no-face tokens once (exactly region_pool(hga(...)):
            # tests/test_models_registry.py).
            if cfg.visual_input == "grid":
                tokens = self.hga.face_tokens(visual, batch["landmarks"], face_mask)
            else:
                tokens = self.hga.face_region_tokens(visual, face_mask)  # (N, R, d) or None
            no_face = self.region_pool(self.hga.no_face)  # (d_model,)
            out = no_face.expand(*face_mask.shape, -1)  # (B, T, d_model)
            if tokens is None:
                return out.clone()
            faces = self.region_pool(tokens)  # (N, d_model)
            return torch.where(face_mask[..., None],
                               out.new_zeros(out.shape).index_put((face_mask,), faces), out)
        pooled = visual if cfg.visual_input == "vector" else self.global_pool(visual, face_mask)
        pooled = torch.where(face_mask[..., None], pooled, pooled.new_zeros(()))  # NaN-safe
        projected = self.visual_proj(pooled)
        return torch.where(face_mask[..., None], projected, self.no_face.to(projected.dtype))

    def encode_audio(self, batch: Mapping[str, Tensor], like: Tensor) -> tuple[Tensor, Tensor]:
        """-> audio ``(B, T, d_model)`` (zeros where missing) and its mask ``(B, T)``."""
        batch_size, length = like.shape[:2]
        audio = batch.get("audio") if self.config.has_audio else None
        if audio is None:
            mask = torch.zeros(batch_size, length, dtype=torch.bool, device=like.device)
            return like.new_zeros(batch_size, length, self.config.d_model), mask
        if audio.shape[:2] != (batch_size, length) or audio.shape[-1] != self.config.d_audio:
            raise ValueError(
                f"audio features {tuple(audio.shape)} do not match the visual frames "
                f"(B={batch_size}, T={length}) and d_audio={self.config.d_audio}"
            )
        mask = batch.get("audio_mask")
        if mask is None:
            mask = torch.ones(batch_size, length, dtype=torch.bool, device=like.device)
        audio = torch.where(mask[..., None], audio, audio.new_zeros(()))  # NaN-safe
        a = torch.where(mask[..., None], self.audio_proj(audio), like.new_zeros(()))
        vad = batch.get("vad")
        if self.config.vad_gate and vad is not None:
            # Seed 003 ¶0's cross-modal filtering: non-speech frames fade out of the audio.
            a = a * torch.where(mask, vad.to(a.dtype), a.new_zeros(()))[..., None]
        if self.config.audio_segment:
            a, mask = self.audio_pool(a, mask)
            valid = batch.get("valid_mask")
            if valid is not None:  # a segment's descriptor reaches its real frames, not padding
                mask = mask & valid
                a = torch.where(mask[..., None], a, a.new_zeros(()))
        return a, mask

    def encode_extras(self, batch: Mapping[str, Tensor], like: Tensor) -> dict[str, tuple]:
        """The configured optional streams -> {name: ((B, T, d_model), (B, T) bool)}; an absent
        one is zeros with an all-False mask."""
        batch_size, length = like.shape[:2]
        out = {}
        for name, width in EXTRA_STREAMS.items():
            dim = getattr(self.config, width)
            if not dim:
                continue
            x = batch.get(name)
            if x is None:
                mask = torch.zeros(batch_size, length, dtype=torch.bool, device=like.device)
                out[name] = (like.new_zeros(batch_size, length, self.config.d_model), mask)
                continue
            if x.shape != (batch_size, length, dim):
                raise ValueError(f"{name} features {tuple(x.shape)} do not match the frames "
                                 f"(B={batch_size}, T={length}) and {width}={dim}")
            mask = batch.get(f"{name}_mask")
            if mask is None:
                mask = torch.ones(batch_size, length, dtype=torch.bool, device=like.device)
            x = torch.where(mask[..., None], x, x.new_zeros(()))  # NaN-safe
            projected = getattr(self, f"{name}_proj")(x)
            out[name] = (torch.where(mask[..., None], projected, like.new_zeros(())), mask)
        return out

    # -- forward ------------------------------------------------------------------------------

    def forward(self, batch: Mapping[str, Tensor], state: list | None = None) -> ModelOutput:
        cfg = self.config
        batch = self._normalised(batch)
        visual = batch["visual"]
        batch_size, length = visual.shape[:2]
        face_mask = batch.get("face_mask")
        if face_mask is None:
            face_mask = torch.ones(batch_size, length, dtype=torch.bool, device=visual.device)
        audio_mask = batch.get("audio_mask")
        if self.training and cfg.has_audio and batch.get("audio") is not None:
            if audio_mask is None:
                audio_mask = torch.ones_like(face_mask)
            face_mask, audio_mask = self.modality_dropout(face_mask, audio_mask)
        batch = {**batch, "face_mask": face_mask, "audio_mask": audio_mask}

        v = self.encode_visual(batch, face_mask)  # (B, T, d)
        a, audio_mask = self.encode_audio(batch, v)  # (B, T, d), (B, T)
        streams = {"visual": (v, face_mask), "audio": (a, audio_mask),
                   **self.encode_extras(batch, v)}
        valid = batch.get("valid_mask")
        for name, block in self.stream_temporal.items():  # each stream over time on its own
            x_s, m_s = streams[name]
            streams[name] = (torch.where(m_s[..., None], block(x_s, valid), x_s), m_s)
        v, a = streams["visual"][0], streams["audio"][0]
        x, audio_for_ssm = self._fuse(v, a, face_mask, audio_mask, streams, batch.get("vad"))
        new_state = None
        if cfg.temporal in ("ag_ssm", "mamba"):
            x, new_state = self.temporal(x, audio_for_ssm, audio_mask, state, valid)
        elif cfg.temporal in SEQUENCE_TEMPORALS:
            if state is not None:
                raise ValueError(f"temporal model {cfg.temporal!r} cannot carry state")
            x = self.temporal(x, valid)
        return ModelOutput(self.heads(x), new_state)

    def _fuse(
        self, v: Tensor, a: Tensor, face_mask: Tensor, audio_mask: Tensor,
        streams: dict[str, tuple[Tensor, Tensor]] | None = None, vad: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """-> (sequence for the temporal model, audio stream for the AG-SSM's guidance)."""
        fusion, guided = self.config.fusion, self.config.temporal == "ag_ssm"
        if not self.config.has_audio:
            return v, None
        if fusion == "none":  # audio reaches the model only through the AG-SSM's guidance
            return v, a
        if fusion in ("gated_xattn", "xattn_concat"):
            # A frame without a face still queries (its no-face vector), so audio carries it.
            context = self.cross_attention(v, a, audio_mask, None)
            if fusion == "gated_xattn":
                return self.gated(v, context), None
            flag = audio_mask[..., None].to(v.dtype)
            return self.xattn_concat_proj(torch.cat([v, context, flag], dim=-1)), None
        if fusion in ("moe", "reliability", "maven"):
            streams = streams or {"visual": (v, face_mask), "audio": (a, audio_mask)}
            if fusion == "moe":
                return self.moe(streams), None
            if fusion == "maven":
                return self.maven(streams), None
            quality = {"audio": vad} if vad is not None else None
            return self.reliability(streams, quality), None
        if fusion == "asym_xattn":
            # Visual queries retrieve the audio context in a local window; the AG-SSM is guided
            # by the aligned audio plus that retrieved context, the other temporal models add it.
            context = self.cross_attention(v, a, audio_mask, face_mask)
            return (v, a + context) if guided else (v + context, None)
        if fusion == "concat":
            flag = audio_mask[..., None].to(v.dtype)
            fused = self.concat_proj(torch.cat([v, a, flag], dim=-1))
            return fused, (a if guided else None)
        if fusion == "token_transformer":
            return self.token_fusion(v, a, face_mask, audio_mask), None
        return self.dual_branch(v, a, face_mask, audio_mask), None

    # -- helpers ------------------------------------------------------------------------------

    def no_weight_decay_names(self) -> set[str]:
        """Parameters the optimiser must not decay: norms, biases, A_log, D, learned tokens."""
        names = set()
        for name, param in self.named_parameters():
            if (
                param.ndim < 2
                or getattr(param, "_no_weight_decay", False)
                or name.endswith(("no_face", "no_audio"))
            ):
                names.add(name)
        return names
