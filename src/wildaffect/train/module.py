"""The LightningModule: per-task masked losses, whole-video validation with the challenge
metrics, AdamW groups with a per-step warm-up + cosine schedule."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from wildaffect import __version__
from wildaffect.labels import AU_NAMES, Task
from wildaffect.losses import build_loss
from wildaffect.models.affect import AffectModel
from wildaffect.models.config import ModelConfig
from wildaffect.models.heads import to_probabilities
from wildaffect.train.config import TrainConfig
from wildaffect.train.optim import build_optimizer, build_scheduler

#: The metric ModelCheckpoint keeps the best of: the sum of the task scores (ABAW's MTL P).
MONITOR = "val/score"
#: One video's validation frames: predictions, targets and label masks.
ValFrames = tuple[np.ndarray, np.ndarray, np.ndarray]


class AffectModule(L.LightningModule):
    """Wraps an :class:`AffectModel`; everything needed to rebuild it is in ``hparams``:
    ``model_config`` (``ModelConfig.to_dict()``), ``train_config``, ``label_names`` and
    ``wildaffect_version``; ``loss_options`` (task -> keyword arguments of its loss, e.g. the
    EXPR class weights taken from the training labels) rebuild the same losses on resume."""

    def __init__(
        self,
        model_config: dict[str, Any],
        train_config: dict[str, Any],
        steps_per_epoch: int = 1,
        label_names: dict[str, list[str]] | None = None,
        wildaffect_version: str = __version__,
        loss_options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model_config = ModelConfig.from_dict(model_config)
        self.train_config = TrainConfig.from_dict(train_config)
        self.model = AffectModel(self.model_config)
        self.tasks = list(self.model_config.tasks)
        self.losses = torch.nn.ModuleDict(
            {t.value: build_loss(t, self.model_config.losses[t.value],
                                 **(loss_options or {}).get(t.value, {})) for t in self.tasks}
        )
        self.steps_per_epoch = steps_per_epoch
        # task -> video -> (pred, target, mask) of its valid frames, for one validation epoch
        self._val_outputs: dict[str, dict[str, ValFrames]] = {}
        self.val_metrics: dict[str, float] = {}
        self.val_frames: dict[str, int] = {}  # task -> frames the last validation scored
        self.best_val_metrics: dict[str, float] = {}

    def forward(self, batch: dict[str, Any]) -> dict[Task, Tensor]:
        return self.model(batch).outputs

    # -- training -----------------------------------------------------------------------------

    def task_losses(self, outputs: dict[Task, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        """Masked loss per task (labels invalid or on padding count for nothing)."""
        losses = {}
        for task in self.tasks:
            key = task.value
            pred = outputs[task].float()  # losses in fp32 under bf16 autocast
            target, mask = batch["labels"][key], batch["label_mask"][key]
            if task is Task.AU:
                target = target.clamp(min=0)  # invalid markers are masked; keep BCE inputs in [0,1]
            elif task is Task.EXPR:
                target = target.clamp(min=0)
            losses[key] = self.losses[key](pred, target, mask)
        return losses

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses = self.task_losses(self(batch), batch)
        weights = self.train_config.task_weights
        total = sum(weights.get(k, 1.0) * v for k, v in losses.items())
        batch_size = int(batch["valid_mask"].shape[0])
        for key, value in losses.items():
            self.log(f"train/loss_{key}", value, batch_size=batch_size)
        # Averaged over ranks under DDP (so every rank logs the same number).
        self.log("train/loss", total, prog_bar=True, batch_size=batch_size,
                 sync_dist=self.trainer.world_size > 1)
        return total

    # -- validation: gather every valid frame, score once per epoch ---------------------------

    def on_validation_epoch_start(self) -> None:
        self._val_outputs = {t.value: {} for t in self.tasks}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        probs = to_probabilities(self(batch))
        frames = batch["valid_mask"]  # (B, L)
        for task in self.tasks:
            key = task.value
            for i, video in enumerate(batch["video"]):  # a batch holds whole videos
                pred = probs[task][i].float()[frames[i]].cpu().numpy()
                target = batch["labels"][key][i][frames[i]].cpu().numpy()
                mask = batch["label_mask"][key][i][frames[i]].cpu().numpy()
                self._val_outputs[key][video] = (pred, target, mask)

    def gathered_val_outputs(self) -> dict[str, dict[str, ValFrames]]:
        """Every rank's validation frames, each video once: DDP's DistributedSampler gives
        each rank a share of the videos and repeats some to even the shares, and F1 / CCC are
        not means of per-rank scores, so every rank scores the whole set itself."""
        if self.trainer.world_size == 1:
            return self._val_outputs
        shares: list[Any] = [None] * self.trainer.world_size
        torch.distributed.all_gather_object(shares, self._val_outputs)
        merged: dict[str, dict[str, ValFrames]] = {key: {} for key in self._val_outputs}
        for share in shares:
            for key, videos in share.items():
                merged[key].update(videos)  # a repeated video: the same frames again
        return merged

    def on_validation_epoch_end(self) -> None:
        from wildaffect.metrics import au_f1, expr_f1, va_score

        metrics: dict[str, float] = {}
        scores = []
        for key, videos in self.gathered_val_outputs().items():
            if not videos:
                continue
            parts = [videos[video] for video in sorted(videos)]
            pred, target, mask = (np.concatenate(x) for x in zip(*parts))
            self.val_frames[key] = len(pred)
            if key == Task.AU.value:
                score = au_f1(target, pred, valid=mask)
                metrics["val/AU_f1"] = score.mean
                for name, value in zip(AU_NAMES, score.per_au):
                    metrics[f"val/AU_f1_{name}"] = value
                scores.append(score.mean)
            elif key == Task.EXPR.value:
                score = expr_f1(target, pred, valid=mask)
                metrics["val/EXPR_f1"] = score.macro_f1
                metrics["val/EXPR_acc"] = score.accuracy
                scores.append(score.macro_f1)
            else:
                score = va_score(target, pred, valid=mask)
                metrics.update({"val/VA_ccc": score.mean, "val/valence_ccc": score.valence,
                                "val/arousal_ccc": score.arousal})
                scores.append(score.mean)
        if scores:
            metrics[MONITOR] = float(sum(scores))
            # Every rank computed the same numbers (gathered_val_outputs); sync_dist keeps
            # the logged values bit-identical across ranks all the same.
            self.log(MONITOR, metrics[MONITOR], prog_bar=True, sync_dist=True)
            self.log_dict({k: v for k, v in metrics.items() if k != MONITOR}, sync_dist=True)
        self.val_metrics = metrics
        best = self.best_val_metrics.get(MONITOR, -float("inf"))
        if not self.trainer.sanity_checking and metrics.get(MONITOR, -float("inf")) > best:
            self.best_val_metrics = dict(metrics)
        self._val_outputs = {}

    # -- checkpoints: the best metrics so far travel with the run --------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["best_val_metrics"] = dict(self.best_val_metrics)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_val_metrics = dict(checkpoint.get("best_val_metrics", {}))

    # -- optimiser ----------------------------------------------------------------------------

    def total_steps(self) -> int:
        cfg = self.train_config
        total = cfg.epochs * self.steps_per_epoch
        return min(total, cfg.max_steps) if cfg.max_steps > 0 else total

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.train_config
        optimizer = build_optimizer(self.model, cfg.lr, cfg.lora_lr, cfg.weight_decay)
        warmup = math.ceil(cfg.warmup_epochs * self.steps_per_epoch)
        scheduler = build_scheduler(optimizer, warmup, self.total_steps(), cfg.min_lr_ratio)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
