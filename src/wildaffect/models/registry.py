"""Model presets as data, timm style: one ``@register_model`` function per preset returning a
:class:`ModelConfig`, and one entry point, :func:`create_model`.

The five rows of the paper's Table 1 (seed 002 §4.3) are presets, and so are the sibling
systems (seeds 000, 003 and 004) and the comparison temporal models. Widths are the encoders'
real ones; tests shrink them with overrides (``create_model(name, d_visual=16, ...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wildaffect.errors import WildaffectError
from wildaffect.labels import Task
from wildaffect.models.config import ModelConfig

_PRESETS: dict[str, Callable[[], ModelConfig]] = {}

# Output widths of the encoders the presets read (hidden sizes of the released checkpoints).
VIT_BASE_DIM = 768  # google/vit-base-patch16-224-in21k
WHISPER_BASE_DIM = 512  # openai/whisper-base encoder
DINOV2_LARGE_DIM = 1024  # facebook/dinov2-large (ViT-L/14)
WAVLM_LARGE_DIM = 1024  # microsoft/wavlm-large
CONVNEXT_BASE_DIM = 1024  # facebook/convnext-base-224-22k, last stage

#: The ablation of seed 002, Table 1, in order, with the paper's Aff-Wild2 validation mean F1.
TABLE1_PRESETS: tuple[tuple[str, float], ...] = (
    ("abaw-baseline", 36.50),
    ("abaw-fm", 52.41),
    ("abaw-fm-hga", 55.18),
    ("abaw-fm-hga-agssm", 57.82),
    ("abaw-full", 59.45),
)


def register_model(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Register a preset under its function name with ``_`` written as ``-``."""
    name = fn.__name__.replace("_", "-")
    if name in _PRESETS:
        raise ValueError(f"model preset {name!r} registered twice")
    _PRESETS[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_PRESETS)


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The preset's config with ``overrides`` applied; unknown names are a user error."""
    if name not in _PRESETS:
        raise WildaffectError(
            f"unknown model preset {name!r}; available: {', '.join(list_models())}"
        )
    config = _PRESETS[name]()
    return config.with_overrides(**overrides) if overrides else config


def create_model(name: str, **overrides: Any):
    """Build the preset's :class:`~wildaffect.models.affect.AffectModel` (random init)."""
    from wildaffect.models.affect import AffectModel  # torch only when a model is built

    return AffectModel(get_config(name, **overrides))


# -- seed 002, Table 1 ------------------------------------------------------------------------

_FM = {
    "visual_encoder": "dinov2-large", "audio_encoder": "wavlm-large",
    "d_visual": DINOV2_LARGE_DIM, "d_audio": WAVLM_LARGE_DIM,
}


@register_model
def abaw_baseline() -> ModelConfig:
    """Table 1 row 1: ViT-B + Whisper, GAP, shallow concatenation, TCN, BCE (36.50 F1)."""
    return ModelConfig(
        name="abaw-baseline", description=abaw_baseline.__doc__,
        visual_encoder="vit-base", audio_encoder="whisper-base",
        d_visual=VIT_BASE_DIM, d_audio=WHISPER_BASE_DIM,
        spatial="gap", fusion="concat", temporal="tcn", losses={"AU": "bce"},
    )


@register_model
def abaw_fm() -> ModelConfig:
    """Table 1 row 2, "+ Foundation Models": DINOv2-L + WavLM-L replace ViT-B + Whisper (52.41)."""
    return ModelConfig(
        name="abaw-fm", description=abaw_fm.__doc__, **_FM,
        spatial="gap", fusion="concat", temporal="tcn", losses={"AU": "bce"},
    )


@register_model
def abaw_fm_hga() -> ModelConfig:
    """Table 1 row 3, "+ HGA Module": landmark-guided region tokens replace GAP (55.18)."""
    return ModelConfig(
        name="abaw-fm-hga", description=abaw_fm_hga.__doc__, **_FM,
        spatial="hga", fusion="concat", temporal="tcn", losses={"AU": "bce"},
    )


@register_model
def abaw_fm_hga_agssm() -> ModelConfig:
    """Table 1 row 4, "+ AG-SSM Temporal Modeling": the TCN becomes the bidirectional
    audio-guided selective SSM, fed by the asymmetric cross-attention (57.82)."""
    return ModelConfig(
        name="abaw-fm-hga-agssm", description=abaw_fm_hga_agssm.__doc__, **_FM,
        spatial="hga", fusion="asym_xattn", temporal="ag_ssm", losses={"AU": "bce"},
    )


@register_model
def abaw_full() -> ModelConfig:
    """Table 1 row 5, "Full Framework (+ ASL)": the paper's model, trained with the Asymmetric
    Loss (gamma+ 0, gamma- 4, margin 0.05) and SWA (59.45)."""
    return ModelConfig(
        name="abaw-full", description=abaw_full.__doc__, **_FM,
        spatial="hga", fusion="asym_xattn", temporal="ag_ssm", losses={"AU": "asl"},
    )


# -- comparison temporal models ---------------------------------------------------------------


@register_model
def abaw_hga_transformer() -> ModelConfig:
    """HGA + asymmetric cross-attention with a Transformer over time instead of the AG-SSM
    (quadratic in clip length; the paper's argument for the SSM)."""
    return ModelConfig(
        name="abaw-hga-transformer", description=abaw_hga_transformer.__doc__, **_FM,
        spatial="hga", fusion="asym_xattn", temporal="transformer", losses={"AU": "asl"},
    )


@register_model
def abaw_hga_mamba() -> ModelConfig:
    """HGA + asymmetric cross-attention with a plain (not audio-guided) bidirectional Mamba:
    isolates the audio guidance of the AG-SSM."""
    return ModelConfig(
        name="abaw-hga-mamba", description=abaw_hga_mamba.__doc__, **_FM,
        spatial="hga", fusion="asym_xattn", temporal="mamba", losses={"AU": "asl"},
    )


# -- sibling systems --------------------------------------------------------------------------


@register_model
def abaw8_convnext_whisper() -> ModelConfig:
    """Seed 004 (8th ABAW AU): ConvNeXt image features + Whisper audio, "a Transformer
    encoder-based feature fusion module", then a TCN, trained with BCE."""
    return ModelConfig(
        name="abaw8-convnext-whisper", description=abaw8_convnext_whisper.__doc__,
        visual_encoder="convnext-base", audio_encoder="whisper-base",
        d_visual=CONVNEXT_BASE_DIM, d_audio=WHISPER_BASE_DIM,
        spatial="gap", fusion="token_transformer", temporal="tcn", losses={"AU": "bce"},
    )


@register_model
def expr_dual_branch() -> ModelConfig:
    """Seed 000 (EXPR): dual-branch Transformer with safe cross-attention and modality
    dropout, trained with focal loss (sliding-window soft voting is applied at evaluation)."""
    return ModelConfig(
        name="expr-dual-branch", description=expr_dual_branch.__doc__, **_FM,
        tasks=(Task.EXPR,), spatial="gap", fusion="dual_branch", temporal="none",
        modality_dropout=(0.15, 0.15), losses={"EXPR": "focal"},
    )


# -- seed 003 siblings ------------------------------------------------------------------------
# Encoders the papers name but the encoder registry does not have (GRADA, Qwen3-VL) are replaced
# by the nearest registered one, said in each docstring; a preset only names what
# `wildaffect extract` can produce. Widths are the real ones (training derives them from the
# features anyway).

CLIP_B16_DIM = 768  # openai/clip-vit-base-patch16 vision tower
WAVLM_BASE_PLUS_DIM = 768  # microsoft/wavlm-base-plus
#: Hidden size of Qwen3-VL-4B-Instruct's language model: the behaviour features of seed 003 ¶0
#: (no such model is bundled; the stream is an optional input, absent = ignored).
QWEN3_VL_4B_DIM = 2560
#: Per-frame transcript embeddings for MAVEN (a RoBERTa/BERT-base-sized text encoder).
TEXT_BASE_DIM = 768
AST_AUDIOSET_DIM = 768  # MIT/ast-finetuned-audioset-10-10-0.4593
RESNET_50_DIM = 2048  # microsoft/resnet-50, last stage
VGGISH_DIM = 128  # VGGish embedding
VITMAE_BASE_DIM = 768  # facebook/vit-mae-base
#: Audio segments for attention-statistics pooling: 1 s at Aff-Wild2's 30 fps.
AUDIO_SEGMENT_FRAMES = 30

_GRADA: dict = {
    "tasks": (Task.VA,), "visual_encoder": "clip-vit-b16", "d_visual": CLIP_B16_DIM,
    "audio_encoder": "wavlm-large", "d_audio": WAVLM_LARGE_DIM, "spatial": "gap",
    "modality_temporal": "transformer", "audio_segment": AUDIO_SEGMENT_FRAMES, "vad_gate": True,
    "d_behaviour": QWEN3_VL_4B_DIM, "behaviour_temporal": "mamba", "temporal": "none",
    "losses": {"VA": "ccc"},
}


@register_model
def va_grada_moe() -> ModelConfig:
    """Seed 003 ¶0 with the directed mixture-of-experts fusion: "The face modality relies on
    GRADA-based frame-level embeddings and Transformer-based temporal regression. [...] Mamba is
    used to model temporal dynamics across segments. The audio modality relies on WavLM-Large
    with attention-statistics pooling and includes a cross-modal filtering stage to reduce the
    influence of unreliable or non-speech segments. [...] a Directed Cross-Modal
    Mixture-of-Experts Fusion Strategy that learns interactions between modalities with
    adaptive weighting".

    Face: CLIP ViT-B/16 frame embeddings stand in for GRADA (not in the encoder registry).
    Audio: WavLM-L, attention-statistics pooled per 1 s segment, gated by the optional per-frame
    VAD speech probability (``batch["vad"]``, silero-vad). Behaviour: optional pre-extracted
    features per frame (``batch["behaviour"]``, e.g. from Qwen3-VL; none bundled) over a plain
    Mamba. Each stream has its own temporal block before the fusion.
    """
    return ModelConfig(name="va-grada-moe", description=va_grada_moe.__doc__, fusion="moe",
                       **_GRADA)


@register_model
def va_grada_reliability() -> ModelConfig:
    """Seed 003 ¶0 with the other fusion: "a Reliability-Aware Audio-Visual Fusion Strategy that
    combines visual features at the frame-level while using audio as complementary context".

    Same streams as ``va-grada-moe``; each non-visual stream adds its windowed context to the
    face frame scaled by a learned reliability in [0, 1] that also reads the VAD probability.
    """
    return ModelConfig(name="va-grada-reliability", description=va_grada_reliability.__doc__,
                       fusion="reliability", **_GRADA)


@register_model
def va_clip_ast_grid() -> ModelConfig:
    """Seed 003 ¶1: "we partition the VA space into a 3X3 grid, defining nine emotional regions,
    each associated with distinct textual descriptions. [...] we employ a Gaussian kernel to
    compute soft labels based on the Euclidean distance between the ground truth coordinates
    and the region centers [...] a CLIP image encoder and an Audio Spectrogram Transformer (AST)
    [...] temporally modeled via Gated Recurrent Units (GRUs) and integrated through a
    hierarchical fusion scheme that sequentially combines cross-modal attention for alignment
    and gated fusion for adaptive refinement."

    Visual: CLIP ViT-B/16 (``clip-vit-b16``); audio: AST fine-tuned on AudioSet
    (``ast-audioset``: patch columns averaged over frequency, on the 20 ms grid). VA head:
    learned region prompts (``GridVAHead``); loss: CCC + KL to the Gaussian soft labels of the
    grid (``va_grid_loss``).
    """
    return ModelConfig(
        name="va-clip-ast-grid", description=va_clip_ast_grid.__doc__, tasks=(Task.VA,),
        visual_encoder="clip-vit-b16", d_visual=CLIP_B16_DIM,
        audio_encoder="ast-audioset", d_audio=AST_AUDIOSET_DIM, spatial="gap",
        modality_temporal="gru", fusion="gated_xattn", temporal="none", va_head="grid",
        losses={"VA": "grid"},
    )


@register_model
def va_resnet_vggish_tcn() -> ModelConfig:
    """Seed 003 ¶4: "The visual branch uses a pre-trained ResNet model to extract spatial
    features from facial images. The audio branches employ pre-trained VGG models to extract
    VGGish and LogMel features [...] temporal modeling using Temporal Convolutional Networks
    (TCNs). We then apply cross-modal attention mechanisms, where visual features interact with
    audio features through query-key-value attention structures. Finally, the features are
    concatenated and passed through a regression layer".

    Visual: ResNet-50 (``resnet-50``, last-stage map pooled); audio: VGGish (``vggish``: one
    128-d embedding per 0.96 s log-mel patch, interpolated to 20 ms). The paper's second,
    "LogMel" audio branch is the weight-free ``logmel-egemaps`` encoder (pass it as the audio
    encoder instead; one audio stream per model).
    """
    return ModelConfig(
        name="va-resnet-vggish-tcn", description=va_resnet_vggish_tcn.__doc__, tasks=(Task.VA,),
        visual_encoder="resnet-50", d_visual=RESNET_50_DIM,
        audio_encoder="vggish", d_audio=VGGISH_DIM, spatial="gap",
        modality_temporal="tcn", fusion="xattn_concat", temporal="none", losses={"VA": "ccc"},
    )


@register_model
def expr_vnaw() -> ModelConfig:
    """Seed 003 ¶5: "Video-based Noise-aware Adaptive Weighting (V-NAW), which adaptively
    assigns importance to each frame in a clip to address label ambiguity [...] a simple and
    effective augmentation strategy to reduce redundancy between consecutive frames".

    Visual only (CLIP ViT-B/16 frames) with a temporal Transformer; EXPR trained with the
    ``vnaw`` loss (Gaussian margin weights per frame, mean 1 per clip). The augmentation is
    frame skipping when clips are built: ``ClipDataset(frame_step=...)``, set by
    ``TrainConfig.frame_step`` (``wildaffect train --frame-step N``).
    """
    return ModelConfig(
        name="expr-vnaw", description=expr_vnaw.__doc__, tasks=(Task.EXPR,),
        visual_encoder="clip-vit-b16", d_visual=CLIP_B16_DIM, audio_encoder=None, d_audio=0,
        spatial="gap", fusion="none", temporal="transformer", losses={"EXPR": "vnaw"},
    )


@register_model
def clip_tcn_transformer() -> ModelConfig:
    """Seed 003 ¶6: "fine-tuning the CLIP model with the aff-wild2 dataset [...] serves as an
    efficient visual feature extractor [...] we incorporate Temporal Convolutional Network (TCN)
    modules alongside Transformer Encoder modules", for VA, EXPR and AU.

    CLIP ViT-B/16 frames (fine-tune it with the encoders' LoRA option), TCN then Transformer;
    one head per task (train one or all with ``tasks``).
    """
    return ModelConfig(
        name="clip-tcn-transformer", description=clip_tcn_transformer.__doc__,
        tasks=(Task.VA, Task.EXPR, Task.AU), visual_encoder="clip-vit-b16",
        d_visual=CLIP_B16_DIM, audio_encoder=None, d_audio=0, spatial="gap", fusion="none",
        temporal="tcn_transformer", losses={"VA": "ccc", "EXPR": "ce", "AU": "bce"},
    )


@register_model
def maven() -> ModelConfig:
    """Seed 003 ¶8, MAVEN: "integrates visual, audio, and textual modalities via a
    bi-directional cross-modal attention mechanism with six distinct attention pathways [...]
    each modality representation is refined through weighted attention from other modalities,
    followed by self-attention refinement through modality-specific encoders. Rather than
    directly predicting valence-arousal values, MAVEN predicts emotions in a polar coordinate
    form".

    Visual CLIP ViT-B/16, audio WavLM-base+; text: per-frame transcript embeddings
    (``batch["text"]``, ``d_text``; optional: without it the four audio-visual paths remain).
    VA head: angle and intensity; loss: CCC + polar (``polar_va_loss``).
    """
    return ModelConfig(
        name="maven", description=maven.__doc__, tasks=(Task.VA,),
        visual_encoder="clip-vit-b16", d_visual=CLIP_B16_DIM,
        audio_encoder="wavlm-base-plus", d_audio=WAVLM_BASE_PLUS_DIM, d_text=TEXT_BASE_DIM,
        spatial="gap", fusion="maven", xattn_window=None, temporal="none", va_head="polar",
        losses={"VA": "polar"},
    )


@register_model
def mtl_mae_curriculum() -> ModelConfig:
    """Seed 003 ¶9: "To attain high-quality facial features, we train a Masked-Auto Encoder [...]
    We devise a temporal convergence module to capture the temporal information between video
    frames [...] we explore the impact of sub-task joint training and feature fusion from
    individual tasks [...] curriculum learning to transition the model from recognizing single
    expressions to recognizing compound expressions".

    Visual: ViT-MAE B/16 (``vitmae-base``, masking off at extraction); the paper trains its MAE
    on faces: pass that checkpoint's folder as the encoder's weights.
    Temporal convergence: a dilated TCN over a local window of frames, then a Transformer over
    the sequence; AU + EXPR + VA heads with task feature fusion. The single -> compound
    curriculum is a training schedule, not part of the model: ``TrainConfig.curriculum_epochs``
    (``wildaffect train --curriculum-epochs N``), whose reading of "compound" for ABAW labels
    is in :mod:`wildaffect.train.curriculum`.
    """
    return ModelConfig(
        name="mtl-mae-curriculum", description=mtl_mae_curriculum.__doc__,
        tasks=(Task.AU, Task.EXPR, Task.VA), visual_encoder="vitmae-base",
        d_visual=VITMAE_BASE_DIM, audio_encoder=None, d_audio=0, spatial="gap", fusion="none",
        temporal="tcn_transformer", task_fusion=True,
        losses={"AU": "bce", "EXPR": "ce", "VA": "ccc"},
    )


# -- the toolkit's CPU default ----------------------------------------------------------------

#: Output widths of the weight-free encoders (checked against the encoders in the tests).
MEDIAPIPE_REGIONS_DIM = 232  # mediapipe-regions token_dim: 21 region tokens + 1 global token
LOGMEL_EGEMAPS_DIM = 180  # logmel-egemaps feature_dim per 20 ms frame


@register_model
def default_offline() -> ModelConfig:
    """The toolkit's default: the paper's HGA -> AG-SSM -> heads over the weight-free encoders,
    so it runs on CPU with no downloaded weights.

    Inputs: ``mediapipe-regions`` tokens (21 regions + the trailing global token, which HGA uses
    as its global context) and ``logmel-egemaps`` audio. Audio enters only through the AG-SSM's
    guidance (fusion "none": no look-ahead window) and the SSM is unidirectional, so the model
    streams chunk by chunk with carried state.

    What each output is trained on (by the toolkit itself, from ../shared/data):
    EXPR (8 classes, cross-entropy) on the faces-expression photos as 1-frame clips, the only
    real expression labels here (benchmarks/faces_expression.py is its identity-grouped
    cross-validation); AU (12, ASL) and VA (2, CCC) have NO real labels on this machine: the
    heads exist so the model speaks the ABAW format, and until a labelled set is supplied
    their training targets can only be derived ones (AU from MediaPipe blendshapes by a
    FACS mapping), which a run must say. This preset ships no weights by itself.
    """
    return ModelConfig(
        name="default-offline", description=default_offline.__doc__,
        tasks=(Task.AU, Task.EXPR, Task.VA),
        visual_encoder="mediapipe-regions", audio_encoder="logmel-egemaps",
        visual_input="regions", d_visual=MEDIAPIPE_REGIONS_DIM, d_audio=LOGMEL_EGEMAPS_DIM,
        spatial="hga", d_token=64, d_model=128, fusion="none", temporal="ag_ssm",
        bidirectional=False, n_layers=2,
        losses={"AU": "asl", "EXPR": "ce", "VA": "ccc"},
    )
