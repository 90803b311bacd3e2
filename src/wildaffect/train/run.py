"""Build everything from a :class:`TrainConfig` and fit; the checkpoint format; reloading.

Everything that can be wrong with the inputs is checked before Lightning starts: the preset
name, the data tree's splits, each video's cache entry and frame count (see
:mod:`wildaffect.data.dataset`), and the model config the cached feature shapes imply.

A run folder holds::

    RUN/config.json              train config + resolved model config (what was run)
    RUN/checkpoints/last.ckpt    Lightning checkpoint of the last epoch (resume from it)
    RUN/checkpoints/best-*.ckpt  best ``val/score``
    RUN/final.ckpt               the weights at the end (SWA-averaged when SWA ran)
    RUN/logs/metrics.csv         CSV log (and TensorBoard events when tensorboard is installed)
    RUN/logs/resumed-stepN/      logs of a run resumed from step N

Each checkpoint's ``hyper_parameters`` carry ``model_config`` (``ModelConfig.to_dict()``),
``train_config``, ``label_names`` and ``wildaffect_version``: :func:`load_model` needs nothing
else.
"""

from __future__ import annotations

import ast
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wildaffect.errors import InputError, WildaffectError
from wildaffect.face.regions import DEFAULT_REGIONS
from wildaffect.labels import SPLITS, Task
from wildaffect.train.config import TrainConfig

CHECKPOINT_DIR = "checkpoints"
FINAL_CHECKPOINT = "final.ckpt"
CONFIG_FILE = "config.json"


@dataclass
class RunResult:
    """Where the run went and how it scored (``val/...`` metrics)."""

    run_dir: Path
    best_metrics: dict[str, float] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: Path | None = None
    final_checkpoint: Path | None = None


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, Python value): numbers, lists, booleans, None, else the string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise WildaffectError(f"override {text!r} is not key=value")
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
    return key.strip(), value


def parse_au_weights(items: list[str]) -> dict[str, float]:
    """``["AU12=3", "AU25=3"]`` -> ``{"AU12": 3.0, "AU25": 3.0}`` (``--au-weight``); names are
    checked by :class:`TrainConfig`."""
    weights = {}
    for item in items:
        key, value = parse_override(item)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WildaffectError(f"--au-weight {item!r}: the weight must be a number (AU12=3)")
        weights[key.upper()] = float(value)
    return weights


def resolve_model_config(config: TrainConfig, shapes: dict[str, tuple[int, ...]]):
    """The preset with the user's overrides, its input widths taken from the cached features
    (``shapes`` from :meth:`ClipDataset.feature_shapes`) and a loss for every trained task."""
    from wildaffect.losses import LOSSES
    from wildaffect.models.registry import get_config

    base = get_config(config.preset)  # unknown preset: WildaffectError listing the valid ones
    visual = shapes["visual"]
    visual_input = {3: "grid", 2: "regions", 1: "vector"}.get(len(visual))
    if visual_input is None:
        raise WildaffectError(f"cached {config.visual_encoder} features have per-frame shape "
                              f"{visual}; expected (H, W, D), (R, D) or (D,)")
    n_regions = len(DEFAULT_REGIONS)  # HGA.forward_tokens: the regions, then an optional global
    if visual_input == "regions" and visual[0] not in (n_regions, n_regions + 1):
        raise WildaffectError(f"{config.visual_encoder} has {visual[0]} region tokens per frame; "
                              f"the model's regions number {n_regions} (+ 1 global token)")
    tasks = tuple(Task(t) for t in (config.tasks or [t.value for t in base.tasks]))
    losses = {**base.losses}
    for task in tasks:
        losses.setdefault(task.value, next(iter(LOSSES[task])))
    derived: dict[str, Any] = {
        "visual_input": visual_input, "d_visual": visual[-1], "visual_frame_shape": visual,
        "visual_encoder": config.visual_encoder,
        "audio_encoder": config.audio_encoder,
        "d_audio": shapes["audio"][-1] if "audio" in shapes else 0,
        # optional streams (wildaffect.streams): their widths come from the cache too
        **{width: shapes[key][-1] for key, width in (("behaviour", "d_behaviour"),
                                                     ("text", "d_text")) if key in shapes},
        "tasks": tasks,
        "losses": {t.value: losses[t.value] for t in tasks},
    }
    if not derived["d_audio"] and base.fusion in ("asym_xattn", "dual_branch", "token_transformer"):
        derived["fusion"] = "none" if base.temporal == "ag_ssm" else "concat"
    try:
        return base.with_overrides(**{**derived, **config.model_overrides})
    except (ValueError, TypeError) as err:
        raise WildaffectError(f"preset {config.preset!r}: {err}") from None


def build_datasets(config: TrainConfig, tasks: list[Task], streams: Sequence[str] = ()):
    """(train ClipDataset, validation VideoDataset); raises on a missing split, a video missing
    from the cache, a frame-count mismatch or a missing optional stream (``streams``)."""
    from wildaffect.data.dataset import ClipDataset, VideoDataset

    if not config.data_dir or not Path(config.data_dir).is_dir():
        raise WildaffectError(f"data folder {config.data_dir!r} not found")
    if not config.cache_dir or not Path(config.cache_dir).is_dir():
        raise WildaffectError(f"cache folder {config.cache_dir!r} not found")
    common: dict[str, Any] = {
        "cache": config.cache_dir, "labels_root": config.data_dir, "tasks": tasks,
        "visual_encoder": config.visual_encoder, "audio_encoder": config.audio_encoder,
        "streams": tuple(streams),
    }
    train_split, val_split = SPLITS
    train_set = ClipDataset(split=train_split, clip_len=config.clip_len,
                            stride=config.clip_stride, pad_short=not config.group_by_length,
                            frame_step=config.frame_step, step_seed=config.seed, **common)
    val_set = VideoDataset(split=val_split, **common)
    if train_set.feature_shapes() != val_set.feature_shapes():
        raise WildaffectError(
            f"feature shapes differ between splits: train {train_set.feature_shapes()}, "
            f"validation {val_set.feature_shapes()}"
        )
    return train_set, val_set


def prepare(config: TrainConfig):
    """All input checks, in order: preset, data, cache, shapes -> (model config, datasets)."""
    from wildaffect.models.registry import get_config

    preset = get_config(config.preset)  # first: an unknown name needs no data to be reported
    from wildaffect.streams import model_streams

    tasks = [Task(t) for t in (config.tasks or [t.value for t in preset.tasks])]
    streams = model_streams(preset, config.model_overrides,
                            has_audio=config.audio_encoder is not None)  # fmt: skip
    train_set, val_set = build_datasets(config, tasks, streams)
    model_config = resolve_model_config(config, train_set.feature_shapes())
    return model_config, train_set, val_set


def _loggers(run_dir: Path, version: str = "") -> list:
    """CSV (+ TensorBoard) loggers under ``RUN/logs/<version>``; a resumed run logs into its
    own version folder because Lightning's CSV logger would otherwise delete the old file."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers = [CSVLogger(run_dir, name="logs", version=version)]
    try:
        import tensorboard  # noqa: F401

        loggers.append(TensorBoardLogger(run_dir, name="logs", version=version))
    except ImportError:
        pass
    return loggers


def check_resume(checkpoint_path: str | Path, model_config) -> Path:
    """The checkpoint to resume from, checked to hold the same model as ``model_config``."""
    path = Path(checkpoint_path)
    hparams = _load(path).get("hyper_parameters", {})
    if "model_config" not in hparams:
        raise InputError(path, "not a wildaffect training checkpoint (no model_config)")
    if hparams["model_config"] != model_config.to_dict():
        theirs, ours = hparams["model_config"], model_config.to_dict()
        differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise InputError(path, f"was trained with another model config ({', '.join(differ)} "
                         "differ); resume with the run's original options")
    return path


def load_initial_weights(model, source: str | Path) -> list[str]:
    """Copy the model weights of a checkpoint (or of a run folder's final.ckpt) into ``model``
    for fine-tuning; -> the names of the parameters and buffers the checkpoint lacks (they keep
    their fresh initialisation, e.g. the head of a task the checkpoint was not trained on).

    Every entry both hold must agree in shape (another preset or width is an error, not a
    silent partial load), and at least one must be shared.
    """
    path = Path(source)
    if path.is_dir():
        path = path / FINAL_CHECKPOINT
    data = _load(path)
    if "model_config" not in data.get("hyper_parameters", {}) or "state_dict" not in data:
        raise InputError(path, "not a wildaffect training checkpoint (no model_config)")
    prefix = "model."
    theirs = {k[len(prefix):]: v for k, v in data["state_dict"].items() if k.startswith(prefix)}
    ours = model.state_dict()
    mismatched = [f"{k} {tuple(theirs[k].shape)} vs {tuple(v.shape)}"
                  for k, v in ours.items() if k in theirs and theirs[k].shape != v.shape]
    if mismatched:
        raise InputError(path, f"cannot initialise this model from it: {len(mismatched)} "
                         f"weight(s) differ in shape, e.g. {mismatched[0]} (another preset or "
                         "width?)")
    shared = {k: v for k, v in theirs.items() if k in ours}
    if not shared:
        raise InputError(path, "shares no weights with this model (another preset?)")
    model.load_state_dict(shared, strict=False)
    return sorted(k for k in ours if k not in shared)


def _resume_version(resume_path: Path | None) -> str:
    if resume_path is None:
        return ""
    import torch

    step = torch.load(resume_path, map_location="cpu", weights_only=False).get("global_step", 0)
    return f"resumed-step{step}"


def train(
    config: TrainConfig, resume: str | Path | None = None, callbacks: Sequence[Any] = ()
) -> RunResult:
    """Check the inputs, build model and data, ``Trainer.fit``; returns the run's metrics.

    ``resume``: a checkpoint of the same run (``RUN/checkpoints/last.ckpt``) to continue from
    exactly (weights, optimiser, LR schedule, loop counters, data order and RNG states; see
    :mod:`wildaffect.train.resume`); it takes precedence over ``config.init_from``, which only
    starts a new run from another run's weights. ``callbacks``: extra Lightning callbacks.
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import (
        LearningRateMonitor,
        ModelCheckpoint,
        RichProgressBar,
        StochasticWeightAveraging,
    )

    from wildaffect import __version__
    from wildaffect.data.dataset import collate
    from wildaffect.io.atomic import atomic_write_text
    from wildaffect.labels import LABEL_NAMES
    from wildaffect.train.augment import AudioMasking, DatasetEpoch, MaskSpec
    from wildaffect.train.curriculum import curriculum_sampler
    from wildaffect.train.distributed import RankReport, find_unused_parameters, strategy_for
    from wildaffect.train.module import MONITOR, AffectModule
    from wildaffect.train.resume import EpochSampler, ResumeState
    from wildaffect.train.stats import input_stats

    model_config, train_set, val_set = prepare(config)
    resume_path = check_resume(resume, model_config) if resume is not None else None
    run_dir = Path(config.out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(config.seed, workers=True, verbose=False)

    world_size = config.devices * config.num_nodes
    extra: list = []
    if world_size == 1:
        # Clip order a function of (seed, epoch): resumable mid-epoch (train/resume.py).
        weights = train_set.sample_weights() if config.balanced else None
        groups = train_set.length_groups() if config.group_by_length else None
        sampler = EpochSampler(len(train_set), config.seed, weights, groups, config.batch_size)
        if config.curriculum_epochs:  # seed 003 ¶9 (train/curriculum.py)
            sampler = curriculum_sampler(train_set, config.curriculum_epochs, config.seed,
                                         config.balanced)
    else:
        # Lightning swaps in a DistributedSampler (seeded by the global seed, set_epoch'ed).
        sampler = train_set.balanced_sampler(seed=config.seed) if config.balanced else None
        if config.curriculum_epochs:  # Lightning wraps it, forwarding set_epoch
            sampler = curriculum_sampler(train_set, config.curriculum_epochs, config.seed,
                                         config.balanced)
        extra.append(RankReport(run_dir))
    generator = torch.Generator().manual_seed(config.seed)  # worker seeds only
    # DistributedSampler pads to equal shares; a grouping sampler fills up its last batches.
    per_rank = math.ceil((len(sampler) if world_size == 1 else len(train_set)) / world_size)
    drop_last = per_rank > config.batch_size
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
        collate_fn=collate, num_workers=config.num_workers, generator=generator,
        drop_last=drop_last,
    )
    val_loader = torch.utils.data.DataLoader(
        val_set, batch_size=config.val_batch_size, shuffle=False, collate_fn=collate,
        num_workers=config.num_workers,
    )
    steps_per_epoch = max(
        per_rank // config.batch_size if drop_last else math.ceil(per_rank / config.batch_size), 1
    )
    if world_size == 1:
        extra.append(ResumeState(sampler, config.batch_size, steps_per_epoch, train_set))
    label_names = {t.value: LABEL_NAMES[t.value] for t in model_config.tasks}
    module = AffectModule(model_config.to_dict(), config.to_dict(), steps_per_epoch,
                          label_names, __version__, loss_options(config, model_config, train_set))
    if model_config.input_norm and resume_path is None:  # a resumed run restores the buffers
        stats = {k: torch.from_numpy(v) for k, v in input_stats(train_set).items()}
        module.model.set_input_stats(**stats)
    if config.init_from and resume_path is None:  # a resumed run restores its own weights
        fresh = load_initial_weights(module.model, config.init_from)
        if fresh:
            warnings.warn(f"init_from {config.init_from}: {len(fresh)} weight(s) not in the "
                          f"checkpoint keep their fresh initialisation: {', '.join(fresh[:5])}"
                          + (" ..." if len(fresh) > 5 else ""), stacklevel=2)
    if resume_path is None or not (run_dir / CONFIG_FILE).is_file():
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(
            {"train_config": config.to_dict(), "model_config": model_config.to_dict(),
             "label_names": label_names, "wildaffect_version": __version__}, indent=2) + "\n")

    checkpoint = ModelCheckpoint(
        dirpath=run_dir / CHECKPOINT_DIR, filename="best-{epoch}-{step}", monitor=MONITOR,
        mode="max", save_top_k=1, save_last=True, auto_insert_metric_name=False,
    )
    if config.frame_step > 1:  # new frame-skipping draws every epoch (train/augment.py)
        extra.append(DatasetEpoch(train_set))
    if config.audio_mask is not None:
        extra.append(AudioMasking(MaskSpec(*config.audio_mask), seed=config.seed))
    callbacks = [checkpoint, LearningRateMonitor(logging_interval="step"), *extra, *callbacks]
    if config.checkpoint_every_n_steps > 0:
        # A second writer of last.ckpt, mid-epoch (no monitor: never a "best").
        callbacks.append(ModelCheckpoint(
            dirpath=run_dir / CHECKPOINT_DIR, save_top_k=0, save_last=True,
            every_n_train_steps=config.checkpoint_every_n_steps,
        ))
    if config.progress_bar:
        callbacks.append(RichProgressBar())
    if config.swa_epochs > 0:
        # Our models normalise with LayerNorm only: the callback finds no BatchNorm and skips
        # its extra BN-statistics epoch (tests/test_train.py checks the run still ends cleanly).
        callbacks.append(StochasticWeightAveraging(
            swa_lrs=config.swa_lr if config.swa_lr is not None else config.lr / 10,
            swa_epoch_start=config.epochs - config.swa_epochs, annealing_epochs=1,
        ))
    trainer = L.Trainer(
        max_epochs=config.epochs, max_steps=config.max_steps, accelerator="cpu"
        if not torch.cuda.is_available() else "auto", devices=config.devices,
        num_nodes=config.num_nodes, strategy=strategy_for(
            config.devices, config.num_nodes,
            find_unused_parameters(config.find_unused_parameters, model_config)),
        use_distributed_sampler=True, check_val_every_n_epoch=config.val_every_n_epochs,
        precision=config.precision, gradient_clip_val=config.grad_clip or None,
        callbacks=callbacks, logger=_loggers(run_dir, _resume_version(resume_path)),
        default_root_dir=run_dir,
        log_every_n_steps=min(config.log_every_n_steps, steps_per_epoch),
        enable_progress_bar=config.progress_bar, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_loader, val_loader,
                ckpt_path=str(resume_path) if resume_path is not None else None)

    final_path = run_dir / FINAL_CHECKPOINT
    trainer.save_checkpoint(final_path)
    best_metrics = dict(module.best_val_metrics)
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    # Score the final weights (they differ from the last validation's after SWA).
    trainer.validate(module, val_loader, verbose=False)
    return RunResult(run_dir=run_dir, best_metrics=best_metrics,
                     final_metrics=dict(module.val_metrics), best_checkpoint=best,
                     final_checkpoint=final_path)


#: The keyword of each EXPR loss that takes per-class weights.
CLASS_WEIGHT_ARGUMENT = {"ce": "weight", "focal": "alpha", "vnaw": "alpha"}


def loss_options(config: TrainConfig, model_config, train_set) -> dict[str, dict[str, Any]]:
    """Keyword arguments of the losses from the train config: the AU loss's per-AU weights;
    the EXPR loss's label smoothing and class weights ``(n_max / n_c) ** class_weight_power``
    counted on the training labels."""
    from wildaffect.labels import AU_NAMES
    from wildaffect.train.stats import class_weights, expr_class_counts

    result: dict[str, dict[str, Any]] = {}
    if config.au_loss_weights and Task.AU in model_config.tasks:
        result[Task.AU.value] = {
            "au_weight": [float(config.au_loss_weights.get(au, 1.0)) for au in AU_NAMES]
        }
    if Task.EXPR not in model_config.tasks:
        return result
    options: dict[str, Any] = {}
    if config.label_smoothing:
        options["label_smoothing"] = config.label_smoothing
    if config.class_weight_power:
        name = model_config.losses[Task.EXPR.value]
        counts = expr_class_counts(train_set, config.class_count_unit)
        weights = class_weights(counts, config.class_weight_power)
        options[CLASS_WEIGHT_ARGUMENT[name]] = [float(w) for w in weights]
    if options:
        result[Task.EXPR.value] = options
    return result


def _load(path: str | Path) -> dict[str, Any]:
    import torch

    path = Path(path)
    if not path.is_file():
        raise WildaffectError(f"{path}: checkpoint not found")
    try:
        # Our checkpoints hold tensors and plain containers only; Lightning's own entries
        # (loop and callback states) may carry other types, so weights_only cannot be used.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise InputError(path, f"not a readable checkpoint ({err})") from None


def load_model(checkpoint_path: str | Path):
    """Rebuild the :class:`AffectModel` of a checkpoint from its stored config (eval mode)."""
    from wildaffect.models.affect import AffectModel
    from wildaffect.models.config import ModelConfig

    data = _load(checkpoint_path)
    hparams = data.get("hyper_parameters", {})
    if "model_config" not in hparams or "state_dict" not in data:
        raise InputError(checkpoint_path, "not a wildaffect training checkpoint (no model_config)")
    model = AffectModel(ModelConfig.from_dict(hparams["model_config"]))
    prefix = "model."
    state = {k[len(prefix):]: v for k, v in data["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(state)
    return model.eval()

