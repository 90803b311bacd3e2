"""The model configuration: one typed dataclass that a preset fills in.

A preset (see :mod:`wildaffect.models.registry`) is data: which encoders feed the model, which
spatial, fusion and temporal blocks it uses, and the loss each task trains with. The same
dataclass travels inside checkpoints, so a run can always rebuild its model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from wildaffect.labels import Task

VisualInput = Literal["grid", "regions", "vector"]
Spatial = Literal["hga", "gap"]
Fusion = Literal[
    "asym_xattn", "concat", "token_transformer", "dual_branch", "none",
    # seed 003 siblings: xattn then gated fusion (¶1), xattn then concatenation (¶4), directed
    # cross-modal mixture of experts and reliability-aware fusion (¶0), six-path MAVEN (¶8)
    "gated_xattn", "xattn_concat", "moe", "reliability", "maven",
]
Temporal = Literal["ag_ssm", "mamba", "tcn", "transformer", "gru", "tcn_transformer", "none"]
#: Temporal blocks with the plain ``forward(x, mask)`` interface (usable per modality too).
SEQUENCE_TEMPORALS = ("tcn", "transformer", "gru", "tcn_transformer")
#: Fusions that need an audio stream.
AUDIO_FUSIONS = (
    "asym_xattn", "dual_branch", "token_transformer", "gated_xattn", "xattn_concat", "moe",
    "reliability", "maven",
)
VAHead = Literal["tanh", "polar", "grid"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build an :class:`~wildaffect.models.affect.AffectModel`.

    Inputs are cached encoder features (see ``wildaffect extract``):

    - ``visual_input="grid"``: a patch grid per frame ``(B, T, H, W, d_visual)`` (DINOv2, ViT,
      ConvNeXt, CLIP) plus 68 landmarks in crop coordinates for HGA;
    - ``"regions"``: one token per facial region ``(B, T, R, d_visual)`` (offline encoder),
      optionally followed by one global token ``(B, T, R + 1, d_visual)`` (see
      :meth:`~wildaffect.models.hga.HGA.forward_tokens`);
    - ``"vector"``: one embedding per frame ``(B, T, d_visual)``.

    Audio is frame-aligned ``(B, T, d_audio)``; ``d_audio=0`` makes a visual-only model.
    Optional extra streams, all frame-aligned and each allowed to be absent at run time:
    ``vad`` ``(B, T)`` speech probability (with ``vad_gate``), ``behaviour``
    ``(B, T, d_behaviour)`` and ``text`` ``(B, T, d_text)`` with their ``*_mask``.
    """

    name: str = "custom"
    description: str = ""
    tasks: tuple[Task, ...] = (Task.AU,)
    # Encoders whose cached features this model reads (names in the encoder registry).
    visual_encoder: str = "dinov2-large"
    audio_encoder: str | None = "wavlm-large"
    visual_input: VisualInput = "grid"
    d_visual: int = 1024
    d_audio: int = 1024
    # Spatial: HGA (landmark-guided regions) or global average pooling.
    spatial: Spatial = "hga"
    d_token: int = 128
    hga_heads: int = 8
    hga_radius: int = 1
    region_pool: Literal["flatten", "attention"] = "flatten"
    # Width of the per-frame sequence the temporal model sees.
    d_model: int = 256
    # Audio-visual fusion before / inside the temporal model.
    fusion: Fusion = "asym_xattn"
    xattn_heads: int = 8
    xattn_window: int | None = 16
    # Temporal model.
    temporal: Temporal = "ag_ssm"
    n_layers: int = 2
    d_state: int = 16
    d_inner: int = 64
    bidirectional: bool = True
    tcn_kernel: int = 3
    tcn_dilations: tuple[int, ...] = (1, 2, 4, 8)
    transformer_heads: int = 4
    dropout: float = 0.1
    # Seed 000: drop one whole modality per training clip with these probabilities.
    modality_dropout: tuple[float, float] = (0.0, 0.0)  # (p_visual, p_audio)
    head_hidden: int | None = None
    # -- seed 003 siblings --
    # A temporal block per stream BEFORE fusion (one of SEQUENCE_TEMPORALS, or "none").
    modality_temporal: Temporal = "none"
    # > 0: audio replaced by attention-statistics pooling over segments of this many frames.
    audio_segment: int = 0
    # Gate the audio by the per-frame VAD speech probability (batch["vad"], when given).
    vad_gate: bool = False
    # Optional extra streams: pre-extracted behaviour features (and their own temporal block)
    # and per-frame transcript embeddings; 0 = none.
    d_behaviour: int = 0
    behaviour_temporal: Temporal = "mamba"
    d_text: int = 0
    text_encoder: str | None = None
    va_head: VAHead = "tanh"
    task_fusion: bool = False  # every head reads the features of every task's branch
    # Standardise the inputs with statistics of the training set, stored in the model as
    # buffers (see AffectModel.set_input_stats), then clip to +-input_clip standard deviations.
    input_norm: bool = False
    input_clip: float = 6.0
    visual_frame_shape: tuple[int, ...] = ()  # per-frame visual shape; needed by input_norm
    # Loss per task (names of wildaffect.losses.build_loss).
    losses: dict[str, str] = field(default_factory=lambda: {"AU": "asl"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(Task(t) for t in self.tasks))
        object.__setattr__(self, "tcn_dilations", tuple(self.tcn_dilations))
        object.__setattr__(self, "modality_dropout", tuple(self.modality_dropout))
        object.__setattr__(self, "visual_frame_shape", tuple(self.visual_frame_shape))
        problems = []
        if self.input_norm and (
            not self.visual_frame_shape or self.visual_frame_shape[-1] != self.d_visual
        ):
            problems.append(
                f"input_norm needs visual_frame_shape ending in d_visual={self.d_visual}, "
                f"got {self.visual_frame_shape}"
            )
        if self.spatial == "hga" and self.visual_input == "vector":
            problems.append("HGA needs a patch grid or region tokens, not one vector per frame")
        if self.fusion in AUDIO_FUSIONS and not self.d_audio:
            problems.append(f"fusion {self.fusion!r} needs audio (d_audio > 0)")
        if self.temporal == "ag_ssm" and self.fusion not in ("asym_xattn", "concat", "none"):
            problems.append("ag_ssm takes its audio from 'asym_xattn', 'concat' or 'none' fusion")
        if self.fusion == "none" and self.d_audio and self.temporal != "ag_ssm":
            problems.append(
                "audio would be unused: fusion 'none' with audio needs temporal 'ag_ssm'")
        if self.fusion == "dual_branch" and self.temporal != "none":
            problems.append("'dual_branch' fusion is its own temporal model: set temporal 'none'")
        if self.modality_temporal not in ("none", *SEQUENCE_TEMPORALS):
            problems.append(f"modality_temporal must be 'none' or one of {SEQUENCE_TEMPORALS}")
        if self.behaviour_temporal not in ("none", "mamba", *SEQUENCE_TEMPORALS):
            problems.append("behaviour_temporal must be 'none', 'mamba' or a sequence temporal")
        if (self.d_behaviour or self.d_text) and self.fusion not in ("moe", "reliability", "maven"):
            problems.append("behaviour/text streams need fusion 'moe', 'reliability' or 'maven'")
        if self.fusion == "maven" and not self.d_text:
            problems.append("fusion 'maven' needs a text stream (d_text > 0)")
        if self.task_fusion and len(self.tasks) < 2:
            problems.append("task_fusion needs two or more tasks")
        missing = [t.value for t in self.tasks if t.value not in self.losses]
        if missing:
            problems.append(f"no loss named for task(s) {', '.join(missing)}")
        if problems:
            raise ValueError(f"model config {self.name!r}: " + "; ".join(problems))

    @property
    def has_audio(self) -> bool:
        return bool(self.d_audio)

    @property
    def streamable(self) -> bool:
        """True when the model can run chunk by chunk with carried state (causal SSM)."""
        return (
            self.temporal in ("ag_ssm", "mamba", "none") and not self.bidirectional
            and self.modality_temporal == "none" and not self.audio_segment
            and self.fusion not in ("gated_xattn", "xattn_concat", "moe", "reliability", "maven")
        )

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"unknown model option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        return replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tasks"] = [t.value for t in self.tasks]
        data["tcn_dilations"] = list(self.tcn_dilations)
        data["modality_dropout"] = list(self.modality_dropout)
        data["visual_frame_shape"] = list(self.visual_frame_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model option(s) in config: {', '.join(unknown)}")
        return cls(**data)
