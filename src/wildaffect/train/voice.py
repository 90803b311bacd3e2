"""The voice model's recipe and steps, defined once.

``benchmarks/speech_emotion.py`` cross-validates it leave-one-speaker-out on EmoDB and
``scripts/train_default_voice.py`` trains the shipped voice companion (``default-voice``) with
it: both use these functions, so the LOSO numbers in the model card describe what ships.

The model: ``default-offline`` with ``fusion="concat"`` (the audio enters the per-frame
sequence; the visual input is the learned no-face token) over ``logmel-egemaps-compare3s``
features (20 ms descriptors + the ComParE 2016 functionals of a 3 s window), EXPR head, one model
per seed of the recipe, shipped as their ensemble; each utterance is one clip with its label
on every 20 ms frame (optionally with the training speakers' speed-perturbed copies); an
utterance is scored by the mean over its frames of P(class).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wildaffect.data.speech import EMOTION_TO_EXPR, SpeechItem, read_crema_d, read_emodb
from wildaffect.labels import EXPR_NAMES

VISUAL = "mediapipe-regions"
#: Frame descriptors + a 3 s window's ComParE 2016 functionals (utterance statistics). LOSO
#: UAR, one model per seed 0 / 1 / 2, same recipe otherwise: ComParE 3 s 0.680 / 0.639 /
#: 0.672 (their ensemble 0.685);
#: emobase instead of ComParE (logmel-egemaps-emobase3s) 0.617 / 0.605 / 0.578, emobase 2 s
#: windows 0.594 / 0.584 / -, 4 s 0.578 / - / -; the frame descriptors alone
#: (logmel-egemaps) 0.536 / - / -.
AUDIO = "logmel-egemaps-compare3s"
#: The 7 ABAW classes EmoDB's emotions map onto: the classes UAR is averaged over.
EMODB_CLASSES = sorted(EXPR_NAMES.index(c) for c in set(EMOTION_TO_EXPR.values()))
VALIDATION = "Validation_Set"


@dataclass(frozen=True)
class Recipe:
    """What is trained per fold: TrainConfig fields and model overrides (besides the fixed ones)."""

    epochs: int = 16
    lr: float = 2e-3
    batch_size: int = 16
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    balanced: bool = False
    class_weight_power: float = 0.5
    label_smoothing: float = 0.0
    input_norm: bool = True
    crema_d: bool = True
    # SpecAugment-style masking (TrainConfig.audio_mask, train/augment.py): time masks, their
    # max width (frames), feature masks, their max width (dims); None = off.
    mask: tuple[int, int, int, int] | None = (2, 10, 2, 20)
    model: dict[str, Any] = field(default_factory=dict)
    audio: str = AUDIO  # the offline audio encoder (e.g. "logmel-compare"); d_audio follows it
    # Speed perturbation (Ko et al. 2015): training copies of every EmoDB utterance played
    # f times faster (tempo and pitch scaled by f), one per factor; () = off. (0.9, 1.1) moved
    # 4 LOSO folds by +0.09, -0.02, +0.03, -0.08 for 3x the training time: off.
    speed_perturb: tuple[float, ...] = ()
    # One model per seed; more than one ship as an ensemble (their probabilities averaged):
    # seeds move a model's LOSO UAR by ~0.02 (0.578-0.617), the ensemble of 3 does not.
    seeds: tuple[int, ...] = (0, 1, 2)


# ------------------------------------------------------------------------------- data


def speech_items(data: Path, crema_d: bool) -> tuple[list[SpeechItem], list[SpeechItem]]:
    emodb = read_emodb(data / "speech-emotion")
    extra = read_crema_d(data / "media" / "crema-d") if crema_d else []  # .mp3 and .flv
    return emodb, extra


def speed_perturbed(
    items: list[SpeechItem], factors: tuple[float, ...], out: Path
) -> list[SpeechItem]:
    """Copies of ``items`` played ``f`` times faster, as 16 kHz wavs in ``out`` (kept: reused).

    Resampling by 1/f and reading the result at the original rate scales duration by 1/f and
    every frequency by f, as speed perturbation does; the copy keeps its speaker and label.
    """
    import wave
    from fractions import Fraction

    from scipy.signal import resample_poly

    from wildaffect.io.atomic import atomic_path
    from wildaffect.io.media import AUDIO_SAMPLE_RATE, read_audio

    out.mkdir(parents=True, exist_ok=True)
    copies = []
    for factor in factors:
        ratio = Fraction(1 / factor).limit_denominator(100)  # new length / old length
        for item in items:
            path = out / f"{item.path.stem}_sp{round(factor * 100):03d}.wav"
            if not path.is_file():
                samples = read_audio(item.path).samples  # (N,) float32 at 16 kHz
                faster = resample_poly(samples, ratio.numerator, ratio.denominator)
                pcm = (np.clip(faster, -1, 1) * 32767).astype("<i2")
                with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as wav:
                    wav.setnchannels(1)
                    wav.setsampwidth(2)
                    wav.setframerate(AUDIO_SAMPLE_RATE)
                    wav.writeframes(pcm.tobytes())
            copies.append(SpeechItem(path, item.expr, item.speaker, item.emotion))
    return copies


def build_cache(items: list[SpeechItem], cache_dir: Path, audio: str = AUDIO) -> dict[str, float]:
    """Preprocess + extract every item (cached records and features are skipped)."""
    from wildaffect.extract import extract_batch
    from wildaffect.preprocess import preprocess_batch

    start = time.perf_counter()
    report = preprocess_batch([i.path for i in items], cache_dir, crops="npy")  # flv: faces
    if not report.all_ok:
        raise SystemExit("\n".join(r.describe_failure() for r in report.failures))
    preprocessed = time.perf_counter()
    extracted = extract_batch(cache_dir, visual=VISUAL, audio=audio, device="cpu")
    if not extracted.all_ok:
        raise SystemExit("\n".join(r.describe_failure() for r in extracted.failures))
    return {"preprocess_s": preprocessed - start, "extract_s": time.perf_counter() - preprocessed}


def write_fold_tree(
    emodb: list[SpeechItem], extra: list[SpeechItem], cache_dir: Path, out: Path, fold: int,
    perturbed: list[SpeechItem] = (), drop_train_speakers: int = 0,
) -> str:
    """ABAW tree with one EmoDB speaker as Validation_Set (+ CREMA-D and the ``perturbed``
    copies of the other speakers in Train) -> that speaker.

    ``drop_train_speakers`` K > 0 also takes the K EmoDB speakers that follow the held-out one
    (sorted, wrapping round) out of Train_Set: the same test speaker from fewer training
    speakers, for a learning curve over speakers.
    """
    from wildaffect.data.abaw import ANNOTATION_SUFFIX, format_annotation
    from wildaffect.data.cache import FeatureCache
    from wildaffect.data.labelled import LabelledItem, write_expression_tree
    from wildaffect.labels import TASK_SPECS, Task

    speakers = sorted({i.speaker for i in emodb})
    if not 0 <= drop_train_speakers <= len(speakers) - 2:
        raise ValueError(f"drop_train_speakers must be in 0..{len(speakers) - 2} "
                         f"({len(speakers)} speakers), got {drop_train_speakers}")
    items = [LabelledItem(i.path, i.expr, i.speaker) for i in emodb]
    summary = write_expression_tree(
        items, cache_dir, out, folds=len(speakers), validation_fold=fold, seed=0
    )
    held_out = {i.speaker for i in emodb if i.path.stem in set(summary.videos[VALIDATION])}
    if len(held_out) != 1:
        raise SystemExit(f"fold {fold} holds speakers {sorted(held_out)}, not exactly one")
    (speaker,) = held_out
    after = speakers.index(speaker) + 1
    dropped = {speakers[(after + k) % len(speakers)] for k in range(drop_train_speakers)}
    cache = FeatureCache(cache_dir)
    train_dir = out / TASK_SPECS[Task.EXPR].challenge_dir / "Train_Set"
    for item in emodb:
        if item.speaker in dropped:
            (train_dir / f"{item.path.stem}{ANNOTATION_SUFFIX}").unlink()
    # Another corpus's speakers, and the training speakers' perturbed copies: training data.
    for item in [*extra, *(i for i in perturbed if i.speaker not in held_out | dropped)]:
        n_frames = cache.read_array(item.path.stem, "has_face", mmap=True).shape[0]
        text = format_annotation(Task.EXPR, np.full(n_frames, item.expr))
        (train_dir / f"{item.path.stem}{ANNOTATION_SUFFIX}").write_text(text)
    return speaker


def train_on_validation_too(tree: Path) -> int:
    """Copy the tree's Validation_Set annotations into its Train_Set -> files copied.

    For the shipped model: trained on every speaker, its validation score is then a fit to
    training data (a check that the package works), and the leave-one-speaker-out figure is
    the estimate for new speakers.
    """
    import shutil

    from wildaffect.labels import TASK_SPECS, Task

    task_dir = tree / TASK_SPECS[Task.EXPR].challenge_dir
    files = sorted((task_dir / VALIDATION).iterdir())
    for path in files:
        shutil.copyfile(path, task_dir / "Train_Set" / path.name)
    return len(files)


# ------------------------------------------------------------------------------- model


def train_fold(
    recipe: Recipe, tree: Path, cache_dir: Path, run_dir: Path, clip_len: int, seed: int = 0
):
    """Fit one fold with one seed; -> the loaded final model (eval mode)."""
    from wildaffect.train.config import TrainConfig
    from wildaffect.train.run import FINAL_CHECKPOINT, load_model, train

    overrides = {"fusion": "concat", "input_norm": recipe.input_norm, **recipe.model}
    config = TrainConfig(
        preset="default-offline", data_dir=str(tree), cache_dir=str(cache_dir),
        out_dir=str(run_dir), visual_encoder=VISUAL, audio_encoder=recipe.audio, tasks=("EXPR",),
        model_overrides=overrides, epochs=recipe.epochs, lr=recipe.lr,
        weight_decay=recipe.weight_decay, warmup_epochs=recipe.warmup_epochs,
        batch_size=recipe.batch_size, balanced=recipe.balanced,
        class_weight_power=recipe.class_weight_power, label_smoothing=recipe.label_smoothing,
        clip_len=clip_len, clip_stride=clip_len, progress_bar=False, seed=seed,
        val_every_n_epochs=recipe.epochs,  # validation only scores the final weights
        audio_mask=recipe.mask,
    )  # fmt: skip
    train(config)
    return load_model(run_dir / FINAL_CHECKPOINT)


def train_members(
    recipe: Recipe, tree: Path, cache_dir: Path, run_dir: Path, clip_len: int
) -> list:
    """One final model per seed of the recipe (runs in ``run_dir/seed<k>``)."""
    return [train_fold(recipe, tree, cache_dir, run_dir / f"seed{seed}", clip_len, seed)
            for seed in recipe.seeds]  # fmt: skip


def as_one_model(members: list):
    """The model that ships: the only member, or an ensemble averaging their probabilities."""
    from wildaffect.models.ensemble import EnsembleModel

    return members[0] if len(members) == 1 else EnsembleModel(members)


def score_held_out(model, tree: Path, cache_dir: Path, audio: str = AUDIO) -> dict[str, np.ndarray]:
    """Record -> (8,) mean over frames of the softmax, for every Validation_Set record."""
    import torch

    from wildaffect.data.dataset import VideoDataset, collate
    from wildaffect.labels import Task
    from wildaffect.models.heads import to_probabilities

    data = VideoDataset(cache_dir, tree, VALIDATION, ["EXPR"], VISUAL, audio)
    out = {}
    with torch.inference_mode():
        for item in data:
            batch = collate([item])
            probs = to_probabilities(model(batch).outputs)[Task.EXPR][0]  # (T, 8)
            out[item["video"]] = probs[batch["valid_mask"][0]].mean(0).numpy()
    return out


def uar(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import recall_score

    return float(
        recall_score(y, pred, labels=EMODB_CLASSES, average="macro", zero_division=0)
    )


def uar_summary(y: np.ndarray, pred: np.ndarray, speakers: np.ndarray) -> dict[str, Any]:
    """UAR pooled, per speaker and their mean, and accuracy (the speech benchmarks' report)."""
    per = {str(s): uar(y[speakers == s], pred[speakers == s]) for s in np.unique(speakers)}
    return {"uar_pooled": uar(y, pred), "uar_mean_per_speaker": float(np.mean(list(per.values()))),
            "per_speaker": per, "accuracy": float((y == pred).mean())}  # fmt: skip


def print_uar_table(results: dict[str, dict[str, Any]], first_column: str = "method") -> None:
    """One row per method of :func:`uar_summary` results: pooled, mean, each speaker."""
    speakers = sorted(next(iter(results.values()))["per_speaker"])
    print(f"{first_column:<44} {'pooled':>7} {'mean':>7} "
          + " ".join(f"{s:>5}" for s in speakers))  # fmt: skip
    for name, r in results.items():
        cells = " ".join(f"{r['per_speaker'][s]:5.3f}" for s in speakers)
        print(f"{name:<44} {r['uar_pooled']:7.3f} {r['uar_mean_per_speaker']:7.3f} {cells}")
