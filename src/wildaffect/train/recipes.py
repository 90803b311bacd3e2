"""The recipe that trains the bundled default model's expression part, defined once.

``benchmarks/faces_expression.py`` cross-validates it (identity-grouped 5-fold CV on the
faces-expression photos) and ``scripts/train_default_model.py`` trains the shipped model with
it: both build their :class:`~wildaffect.train.config.TrainConfig` here, so the CV numbers in
the model card describe exactly what ships.

Fixed part: ``default-offline`` over ``mediapipe-regions`` tokens, EXPR head only (AU and VA
of the default model are derived, see :mod:`wildaffect.derived`), no audio (``d_audio=0``),
1-frame clips (photos), the final weights (no checkpoint selection: validation runs only at
the end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wildaffect.train.config import TrainConfig

DEFAULT_MODEL_PRESET = "default-offline"
DEFAULT_MODEL_ENCODER = "mediapipe-regions"

#: TrainConfig fields. The benchmark's hand-written recipe in trainer terms (one-cycle's 10 %
#: warm-up = 2 of 20 epochs, cosine to 0, AdamW with the model's no-decay groups, no gradient
#: clipping: the trainer's default clip at norm 1.0 cost 0.05 F1 on CV fold 0, 0.373 vs
#: 0.426), plus the validation settings that keep validation to the end of the run.
DEFAULT_EXPR_TRAIN: dict[str, Any] = {
    "epochs": 20, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 2.0,
    "grad_clip": 0.0, "class_weight_power": 0.5, "label_smoothing": 0.1,
    "val_every_n_epochs": 1000, "val_batch_size": 256,
}
#: Model options over the preset: inputs standardised with training statistics (stored in the
#: model), more dropout than the preset's 0.1 (3.8k photos).
DEFAULT_EXPR_MODEL: dict[str, Any] = {"input_norm": True, "dropout": 0.2}


@dataclass(frozen=True)
class ExprRecipe:
    """TrainConfig fields (``train``) and model options (``model``) over the fixed part."""

    train: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_EXPR_TRAIN))
    model: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_EXPR_MODEL))

    def with_overrides(self, train: dict[str, Any], model: dict[str, Any]) -> ExprRecipe:
        return ExprRecipe(train={**self.train, **train}, model={**self.model, **model})


def expr_train_config(
    tree: str | Path, cache: str | Path, out: str | Path, recipe: ExprRecipe | None = None,
    seed: int = 0, progress_bar: bool = False,
) -> TrainConfig:
    """The ``TrainConfig`` of one fit of the recipe on an imported EXPR tree."""
    recipe = recipe or ExprRecipe()
    return TrainConfig(
        preset=DEFAULT_MODEL_PRESET, data_dir=str(tree), cache_dir=str(cache), out_dir=str(out),
        visual_encoder=DEFAULT_MODEL_ENCODER, audio_encoder=None, tasks=("EXPR",),
        model_overrides=dict(recipe.model), clip_len=1, clip_stride=1, seed=seed,
        progress_bar=progress_bar, **recipe.train,
    )


# ----------------------------------------------------------------------- audio-visual model

#: The audio-visual default model's audio encoder (20 ms frames; wildaffect/train/av.py).
DEFAULT_AV_AUDIO = "logmel-egemaps"
#: SpecAugment-style masks on the audio features (train/augment.py MaskSpec fields: time
#: masks, their max frames, feature masks, their max dims): the voice recipe's.
DEFAULT_AV_AUDIO_MASK = (2, 10, 2, 20)
#: Over the face recipe: whole utterances as clips (<= 256 frames), batches of one length
#: range so the 1-frame photos are not padded to an utterance's length, audio masking, and
#: class weights from per-video votes (counted per frame, the utterances' ~40k frames would
#: set every weight: one CV run of that recipe scored 0.373 on photo fold 0).
DEFAULT_AV_TRAIN: dict[str, Any] = {
    **DEFAULT_EXPR_TRAIN, "clip_len": 256, "clip_stride": 256, "group_by_length": True,
    "audio_mask": DEFAULT_AV_AUDIO_MASK, "class_count_unit": "video",
}
#: Audio concatenated to the per-frame features before the AG-SSM (which it also gates), as
#: the voice model does (train/voice.py).
DEFAULT_AV_MODEL: dict[str, Any] = {**DEFAULT_EXPR_MODEL, "fusion": "concat"}


def av_recipe() -> ExprRecipe:
    return ExprRecipe(train=dict(DEFAULT_AV_TRAIN), model=dict(DEFAULT_AV_MODEL))


def av_train_config(
    tree: str | Path, cache: str | Path, out: str | Path, recipe: ExprRecipe | None = None,
    seed: int = 0, progress_bar: bool = False,
) -> TrainConfig:
    """The ``TrainConfig`` of one fit of the audio-visual recipe on a tree of
    :func:`wildaffect.train.av.write_av_tree`."""
    recipe = recipe or av_recipe()
    return TrainConfig(
        preset=DEFAULT_MODEL_PRESET, data_dir=str(tree), cache_dir=str(cache), out_dir=str(out),
        visual_encoder=DEFAULT_MODEL_ENCODER, audio_encoder=DEFAULT_AV_AUDIO, tasks=("EXPR",),
        model_overrides=dict(recipe.model), seed=seed, progress_bar=progress_bar, **recipe.train,
    )

