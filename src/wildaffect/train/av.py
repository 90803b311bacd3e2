"""The audio-visual default model's data and scoring, defined once.

One model learns expression from the face photos (face, no audio), emotion from the speech
(voice, no face) and both from CREMA-D's talking-face clips; missing modalities enter as the
model's learned no-face token / no-audio embedding, so the same weights serve photos, silent
videos, audio files and talking faces. ``benchmarks/av_default.py`` cross-validates it and
``scripts/train_default_model.py`` trains the shipped model with these functions, so the
card's numbers describe what ships.

A fold holds out, at once, one identity fold of the photos (the faces bar's exact protocol:
``StratifiedGroupKFold(5, seed)`` over identities, :func:`~wildaffect.data.labelled.group_folds`)
and the EmoDB speakers whose index modulo the fold count is the fold (7 speakers over 5 folds:
1-2 speakers held out per fold, never heard in training). CREMA-D's audio-only actor is always
training data; its audio-visual clips are training data for the shipped model and held out of
every fold in cross-validation (the only audio-visual clips with labels: scored per modality).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildaffect.data.labelled import LabelledItem
from wildaffect.data.speech import SpeechItem

#: The photos' folder in the data root.
FACES_DATA = "faces-expression"
VALIDATION = "Validation_Set"
TRAIN = "Train_Set"


@dataclass(frozen=True)
class AVData:
    photos: list[LabelledItem]
    emodb: list[SpeechItem]
    crema_audio: list[SpeechItem]  # the audio-only actor (.mp3)
    crema_av: list[SpeechItem]  # the talking-face clips (.flv): face and voice
    dropped: list[str]  # photos whose duplicate labels disagree

    @property
    def speakers(self) -> list[str]:
        return sorted({i.speaker for i in self.emodb})


def read_av_data(data: Path) -> AVData:
    """Every labelled item of the data root (``../shared/data`` layout)."""
    from wildaffect.data.labelled import read_faces_expression
    from wildaffect.data.speech import read_crema_d, read_emodb
    from wildaffect.io.media import VIDEO_EXTENSIONS

    photos, dropped = read_faces_expression(data / FACES_DATA / "labels.csv")
    crema = read_crema_d(data / "media" / "crema-d")
    is_av = [i.path.suffix.lower() in VIDEO_EXTENSIONS for i in crema]
    return AVData(
        photos=photos, emodb=read_emodb(data / "speech-emotion"),
        crema_audio=[i for i, av in zip(crema, is_av, strict=True) if not av],
        crema_av=[i for i, av in zip(crema, is_av, strict=True) if av], dropped=dropped,
    )  # fmt: skip


def prepare_cache(paths: Sequence[Path], cache_dir: Path, visual: str, audio: str,
                  workers: int = 1) -> list[str]:
    """Preprocess + extract both encoders where missing; -> the record name of every path."""
    from wildaffect.data.cache import FeatureCache
    from wildaffect.errors import WildaffectError
    from wildaffect.extract import extract_batch
    from wildaffect.preprocess import preprocess_batch, record_names

    names = record_names(list(paths))
    cache = FeatureCache(cache_dir)
    missing = [p for p, n in zip(paths, names, strict=True) if not cache.has_record(n)]
    if missing:
        report = preprocess_batch(missing, cache_dir, workers=workers, crops="npy")
        if report.failures:
            raise WildaffectError(f"preprocess failed: {report.failures[0].describe_failure()}")
    todo = [n for n in names
            if not (cache.has_features(visual, n) and cache.has_features(audio, n))]
    if todo:
        report = extract_batch(cache_dir, visual=visual, audio=audio, videos=todo)
        if report.failures:
            raise WildaffectError(f"extract failed: {report.failures[0].describe_failure()}")
    return names


def speaker_fold(speakers: Sequence[str], folds: int) -> dict[str, int]:
    """EmoDB speaker -> the fold that holds it out (sorted speakers, index modulo folds)."""
    return {s: k % folds for k, s in enumerate(sorted(speakers))}


def write_av_tree(
    data: AVData, cache_dir: Path, out: Path, folds: int, validation_fold: int | None,
    seed: int = 0, photo_names: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """ABAW EXPR tree over every item; -> split -> record names.

    ``validation_fold=None`` (the shipped model) puts every item in training except the
    photos of fold 0 (a held-out check of the shipped weights) and trains on the
    audio-visual clips; a fold number holds out that fold's photos and speakers and keeps the
    audio-visual clips out of the tree.
    """
    from wildaffect.data.abaw import ANNOTATION_SUFFIX, format_annotation
    from wildaffect.data.cache import FeatureCache
    from wildaffect.data.labelled import write_expression_tree
    from wildaffect.labels import TASK_SPECS, Task

    photo_fold = 0 if validation_fold is None else validation_fold
    summary = write_expression_tree(data.photos, cache_dir, out, folds=folds,
                                    validation_fold=photo_fold, seed=seed,
                                    record_names=photo_names)
    splits = {split: list(names) for split, names in summary.videos.items()}
    held_out = speaker_fold(data.speakers, folds)
    cache = FeatureCache(cache_dir)
    task_dir = out / TASK_SPECS[Task.EXPR].challenge_dir
    speech = [*data.emodb, *data.crema_audio]
    if validation_fold is None:
        speech += data.crema_av
    for item in speech:
        split = TRAIN
        if validation_fold is not None and held_out.get(item.speaker) == validation_fold:
            split = VALIDATION  # only EmoDB speakers are in held_out
        name = item.path.stem
        n_frames = cache.read_array(name, "has_face", mmap=True).shape[0]
        text = format_annotation(Task.EXPR, np.full(n_frames, item.expr))
        (task_dir / split / f"{name}{ANNOTATION_SUFFIX}").write_text(text)
        splits[split].append(name)
    return splits


def score_records(
    model, tree: Path, cache_dir: Path, split: str, visual: str, audio: str,
    drop: str | None = None,
) -> dict[str, np.ndarray]:
    """Record -> (8,) mean over its frames of P(class), for every record of ``split``.

    ``drop="face"`` / ``"audio"`` scores with that modality masked out (as if absent).
    """
    import torch

    from wildaffect.data.dataset import VideoDataset, collate
    from wildaffect.labels import Task
    from wildaffect.models.heads import to_probabilities

    dataset = VideoDataset(cache_dir, tree, split, [Task.EXPR], visual, audio)
    out = {}
    with torch.inference_mode():
        for item in dataset:
            batch = collate([item])
            if drop == "face":
                batch["face_mask"] = torch.zeros_like(batch["face_mask"])
                batch["visual"] = torch.zeros_like(batch["visual"])
            elif drop == "audio":
                batch["audio_mask"] = torch.zeros_like(batch["audio_mask"])
            probs = to_probabilities(model(batch).outputs)[Task.EXPR][0]  # (T, 8)
            out[item["video"]] = probs[batch["valid_mask"][0]].mean(0).double().numpy()
    return out


def write_av_clip_tree(data: AVData, cache_dir: Path, out: Path) -> Path:
    """A tree whose Validation_Set is the audio-visual clips (scored per modality). Nothing
    trains on it: Train_Set holds the same files only because the layout needs both splits."""
    from wildaffect.data.abaw import ANNOTATION_SUFFIX, format_annotation
    from wildaffect.data.cache import FeatureCache
    from wildaffect.labels import TASK_SPECS, Task

    cache = FeatureCache(cache_dir)
    task_dir = out / TASK_SPECS[Task.EXPR].challenge_dir
    for split in (TRAIN, VALIDATION):
        (task_dir / split).mkdir(parents=True, exist_ok=True)
    for item in data.crema_av:
        name = item.path.stem
        n_frames = cache.read_array(name, "has_face", mmap=True).shape[0]
        text = format_annotation(Task.EXPR, np.full(n_frames, item.expr))
        for split in (TRAIN, VALIDATION):
            (task_dir / split / f"{name}{ANNOTATION_SUFFIX}").write_text(text)
    return out
