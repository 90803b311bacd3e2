"""Training-time augmentation of cached features: SpecAugment-style audio masking, and the
callback that moves seed 003 ¶5's frame-skipping draws on every epoch.

Cached features cannot be augmented at the waveform; masking blocks of frames and of feature
dimensions (Park et al., 2019, on log-mel; here on any frame-aligned audio features) is the
cheap regulariser that stays: the model must not rely on one band or one moment of a voice.
Masked values become the training mean of the feature (the model's ``audio_mean`` buffer when
it was built with ``input_norm``, so they read as 0 after standardisation; else 0).

:class:`AudioMasking` is a Lightning callback: it edits each training batch before the forward,
so it needs nothing from the model or the loop beyond ``trainer.fit(..., callbacks=...)``
(``wildaffect.train.run.train(config, callbacks=[AudioMasking(...)])``). Validation and
prediction never see it. ``TrainConfig.audio_mask`` turns it on in ``wildaffect train``.

:class:`DatasetEpoch` calls the training dataset's ``set_epoch`` (Lightning only does that for
samplers), so ``ClipDataset(frame_step > 1)`` draws new frame steps each epoch, and a resumed
run reads the clips the uninterrupted one would have read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor


@dataclass(frozen=True)
class MaskSpec:
    """Per clip: ``time_masks`` blocks of up to ``time_width`` frames, ``feature_masks`` blocks
    of up to ``feature_width`` feature dimensions (widths drawn uniformly from 0..width)."""

    time_masks: int = 2
    time_width: int = 10
    feature_masks: int = 2
    feature_width: int = 20


def mask_audio(
    audio: Tensor,
    spec: MaskSpec,
    fill: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """audio: (B, T, D) -> a masked copy; ``fill``: (D,) value of masked entries (default 0)."""
    batch, length, dim = audio.shape
    keep = torch.ones(batch, length, dim, dtype=torch.bool, device=audio.device)
    for count, width, size, axis in (
        (spec.time_masks, spec.time_width, length, 1),
        (spec.feature_masks, spec.feature_width, dim, 2),
    ):
        if count <= 0 or width <= 0 or size == 0:
            continue
        widths = torch.randint(0, width + 1, (batch, count), generator=generator)  # (B, K)
        starts = (torch.rand(batch, count, generator=generator) * (size - widths + 1)).long()
        index = torch.arange(size)  # (size,)
        inside = (index >= starts[..., None]) & (index < (starts + widths)[..., None])  # (B, K, S)
        blocked = inside.any(dim=1).to(audio.device)  # (B, size)
        keep &= ~(blocked[:, :, None] if axis == 1 else blocked[:, None, :])
    fill_value = audio.new_zeros(dim) if fill is None else fill.to(audio)
    return torch.where(keep, audio, fill_value)


class AudioMasking(L.Callback):
    """Masks ``batch["audio"]`` of every training batch (see the module docstring)."""

    def __init__(self, spec: MaskSpec | None = None, seed: int = 0) -> None:
        self.spec = spec or MaskSpec()
        self.generator = torch.Generator().manual_seed(seed)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        audio = batch.get("audio") if isinstance(batch, dict) else None
        if audio is None:
            return
        fill = getattr(pl_module.model, "audio_mean", None)
        batch["audio"] = mask_audio(audio, self.spec, fill, self.generator)

    def state_dict(self) -> dict[str, Any]:
        # In checkpoints, so a resumed run draws the masks the uninterrupted one would.
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.generator.set_state(state_dict["generator"])


class DatasetEpoch(L.Callback):
    """Calls ``dataset.set_epoch(epoch)`` before each training epoch, also a resumed one.

    ``on_train_epoch_start`` is skipped for the epoch a run resumes in (also when the checkpoint
    was written after an epoch's last batch), so ``on_train_start`` sets it too:
    ``trainer.current_epoch`` is restored by then. With ``num_workers`` > 0 the first loader
    iterator (and its workers' copies of the dataset) exists before either hook: on a
    single-process resume :class:`~wildaffect.train.resume.ResumeState` sets the resumed
    epoch before that iterator is made.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dataset.set_epoch(trainer.current_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dataset.set_epoch(trainer.current_epoch)



__all__ = ["AudioMasking", "DatasetEpoch", "MaskSpec", "mask_audio"]
