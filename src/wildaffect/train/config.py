"""The training configuration: one dataclass that travels inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal

Precision = Literal["32-true", "bf16-mixed"]


@dataclass(frozen=True)
class TrainConfig:
    """What to train (preset + data) and how (optimiser, schedule, clips, precision).

    The preset names the architecture; the cached features decide its input widths
    (``d_visual``, ``d_audio``, ``visual_input``), see :func:`wildaffect.train.run.train`.
    Defaults follow the paper (GUIDE §1): AdamW, cosine schedule after 5 linear warm-up
    epochs, a smaller LR for LoRA parameters, clips of 256 frames, batch 16 clips.

    ``precision="bf16-mixed"`` is ``torch.autocast("cpu", torch.bfloat16)`` on CPU: linear,
    matmul, conv and attention run in bf16 (AMX on this machine), while torch's CPU autocast
    keeps reductions, norms, softmax and losses in fp32 (the module also casts head outputs
    to fp32 before the losses); weights and optimiser state stay fp32 and no grad scaler is
    needed (bf16 has fp32's exponent range). Whether it is faster depends on the share of
    matmuls: see ``benchmarks/train_throughput.py``.
    """

    preset: str = "abaw-full"
    data_dir: str = ""  # ABAW annotation tree
    cache_dir: str = ""  # FeatureCache with the encoders' features
    out_dir: str = "runs/run"
    visual_encoder: str = "synth-grid"
    audio_encoder: str | None = "synth-audio"
    # Tasks to train; None: the preset's. A task without a loss in the preset gets its default.
    tasks: tuple[str, ...] | None = None
    task_weights: dict[str, float] = field(default_factory=dict)  # missing task: weight 1
    # AU loss: per-AU weights of its terms by AU name (missing AU: weight 1), e.g. {"AU12": 3}.
    au_loss_weights: dict[str, float] = field(default_factory=dict)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # Fine-tuning: a checkpoint (or a run folder: its final.ckpt) whose model weights (input
    # statistics included: the weights expect them) start this run; optimiser, schedule and
    # epochs start fresh (train/run.py load_initial_weights).
    init_from: str | None = None
    # Optimiser and schedule.
    epochs: int = 30
    max_steps: int = -1  # > 0: stop after this many optimiser steps
    lr: float = 3e-4
    lora_lr: float = 3e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 5.0
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of the peak LR
    swa_epochs: int = 0  # > 0: Stochastic Weight Averaging over the last swa_epochs epochs
    swa_lr: float | None = None  # None: lr / 10
    grad_clip: float = 1.0
    # EXPR loss: class weights (n_max / n_c) ** power from the training labels (0 = off,
    # 1 = fully balanced, 0.5 = square-root) and label smoothing of the targets. n_c counts
    # labelled frames ("frame") or videos, each video's labels summing to one ("video": for
    # data mixing 1-frame photos with 100-frame utterances, where frames would let the
    # utterances set every weight).
    class_weight_power: float = 0.0
    class_count_unit: Literal["frame", "video"] = "frame"
    label_smoothing: float = 0.0
    # Data.
    clip_len: int = 256
    clip_stride: int = 128
    batch_size: int = 16
    balanced: bool = False
    # Batches of clips of similar length (clip lengths in the same power-of-two range), and
    # videos shorter than clip_len read at their own length instead of padded to it: for data
    # that mixes 1-frame photos with 100-frame utterances (single process, not with balanced).
    group_by_length: bool = False
    num_workers: int = 0
    # Seed 003 ¶5's frame skipping: each training clip reads every s-th frame, s drawn from
    # 1..frame_step per clip and epoch (ClipDataset in data/dataset.py); validation reads all.
    frame_step: int = 1
    # SpecAugment-style masking of the training audio features (train/augment.py MaskSpec):
    # (time_masks, time_width, feature_masks, feature_width), e.g. (2, 10, 2, 20); None = off.
    audio_mask: tuple[int, int, int, int] | None = None
    # Seed 003 ¶9's single -> compound curriculum (train/curriculum.py): the share of
    # "compound" clips grows linearly from 0 to its natural share over the first N epochs.
    curriculum_epochs: int = 0
    # Validation: every N epochs (the run always scores its final weights at the end), and
    # whole videos per batch (> 1 pads shorter videos: exact for causal models and 1-frame
    # "videos" such as imported photos).
    val_every_n_epochs: int = 1
    val_batch_size: int = 1
    # Runtime.
    precision: Precision = "32-true"
    seed: int = 0
    devices: int = 1
    num_nodes: int = 1  # > 1 device in all: Lightning DDP (gloo on CPU), see train/distributed.py
    # DDP: search each step for parameters that got no gradient (needed when a module is not
    # used for every batch, slower). None = auto: on for models with a text / behaviour stream
    # or HGA (skipped on face-less batches); see train/distributed.py find_unused_parameters.
    find_unused_parameters: bool | None = None
    checkpoint_every_n_steps: int = 0  # > 0: also refresh checkpoints/last.ckpt every N steps
    progress_bar: bool = True
    log_every_n_steps: int = 10

    def __post_init__(self) -> None:
        if self.tasks is not None:
            object.__setattr__(self, "tasks", tuple(self.tasks))
        problems = []
        if self.audio_mask is not None:
            mask, problem = _mask_tuple(self.audio_mask)
            object.__setattr__(self, "audio_mask", mask)
            if problem:
                problems.append(problem)
        if self.precision not in ("32-true", "bf16-mixed"):
            problems.append(f"precision must be '32-true' or 'bf16-mixed', got {self.precision!r}")
        for name in ("epochs", "clip_len", "clip_stride", "batch_size", "devices",
                     "num_nodes", "val_every_n_epochs", "val_batch_size", "frame_step"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.swa_epochs < 0 or (self.swa_epochs and self.swa_epochs >= self.epochs):
            # Lightning's SWA needs at least one ordinary epoch before averaging starts.
            problems.append(
                f"swa_epochs must be 0 or less than epochs ({self.epochs}), got {self.swa_epochs}"
            )
        if self.checkpoint_every_n_steps < 0:
            problems.append(
                f"checkpoint_every_n_steps must be >= 0, got {self.checkpoint_every_n_steps}"
            )
        if self.class_count_unit not in ("frame", "video"):
            problems.append(f"class_count_unit must be 'frame' or 'video', got "
                            f"{self.class_count_unit!r}")
        if self.class_weight_power < 0:
            problems.append(f"class_weight_power must be >= 0, got {self.class_weight_power}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.warmup_epochs < 0:
            problems.append(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.group_by_length and (self.balanced or self.devices * self.num_nodes > 1):
            problems.append("group_by_length works with one process and without balanced")
        from wildaffect.labels import AU_NAMES

        unknown_aus = sorted(set(self.au_loss_weights) - set(AU_NAMES))
        if unknown_aus:
            problems.append(f"au_loss_weights names unknown AU(s) {', '.join(unknown_aus)}; "
                            f"valid: {', '.join(AU_NAMES)}")
        negative = sorted(au for au, w in self.au_loss_weights.items() if not w >= 0)
        if negative:
            problems.append(f"au_loss_weights must be >= 0, got {negative[0]}="
                            f"{self.au_loss_weights[negative[0]]}")
        if self.curriculum_epochs < 0:
            problems.append(f"curriculum_epochs must be >= 0, got {self.curriculum_epochs}")
        if self.curriculum_epochs and self.group_by_length:
            problems.append("curriculum_epochs cannot be combined with group_by_length")
        if problems:
            from wildaffect.errors import WildaffectError

            raise WildaffectError("train config: " + "; ".join(problems))

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        return replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("tasks", "audio_mask"):  # lists: what JSON and YAML give back
            if data[name] is not None:
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            from wildaffect.errors import WildaffectError

            raise WildaffectError(f"unknown train option(s): {', '.join(unknown)}")
        return cls(**data)


#: The order of :class:`wildaffect.train.augment.MaskSpec`'s fields in ``audio_mask``.
MASK_FIELDS = ("time_masks", "time_width", "feature_masks", "feature_width")


def _mask_tuple(value: Any) -> tuple[Any, str]:
    """``audio_mask`` as given (a MaskSpec, a sequence or a mapping of :data:`MASK_FIELDS`) ->
    (4-tuple of ints, "" | the problem); a sequence is what to_dict, JSON, YAML and
    ``--audio-mask 2,10,2,20`` give."""
    if is_dataclass(value):
        value = asdict(value)
    if isinstance(value, dict):
        value = [value.get(name) for name in MASK_FIELDS]
    if isinstance(value, (list, tuple)) and len(value) == len(MASK_FIELDS) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        return tuple(value), ""
    return value, (f"audio_mask must be 4 integers >= 0 ({', '.join(MASK_FIELDS)}) or None, "
                   f"got {value!r}")
