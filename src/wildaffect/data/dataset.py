"""Datasets over the feature cache and ABAW labels: fixed-length clips for training, whole
videos for evaluation, and a collate function that pads.

Every item is a dict of tensors the model and the losses read directly::

    visual      (L, H, W, Dv) | (L, R, Dv) | (L, Dv) float32  cached features (0 where padded)
    landmarks   (L, 68, 2) float32 in [0, 1]; 0 where no face / padded (never NaN)
    face_mask   (L,) bool   a face was found on the frame (False on padding)
    audio       (L, Da) float32, audio_mask (L,) bool (only with an audio encoder)
    valid_mask  (L,) bool   a real frame, not padding
    vad         (L,) float32 speech probability in [0, 1] (only with the ``vad`` stream)
    behaviour   (L, Db) float32, behaviour_mask (L,) bool (only with the ``behaviour`` stream)
    text        (L, Dt) float32, text_mask (L,) bool (only with the ``text`` stream)
    labels      {task: (L, 12) float | (L,) int64 | (L, 2) float}, invalid markers where invalid
    label_mask  {task: same shape, bool} True = a valid label of a real frame
    video, start                       where the clip comes from

Problems that would otherwise surface mid-epoch are checked when the dataset is built, each
with the offending file: a video with labels but no cached record or features, features whose
frame count differs from the annotation's, a missing split, and a missing optional stream
(``streams``: keys of :data:`wildaffect.streams.STREAMS` the model reads, see
:func:`wildaffect.streams.model_streams`) named with the command that makes it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from wildaffect.data.abaw import VideoLabels, audio_video_name, parse_annotation, scan_dataset
from wildaffect.data.cache import FeatureCache
from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import EXPR_NAMES, SPLITS, TASK_SPECS, Task
from wildaffect.streams import STREAMS, VAD

DEFAULT_CLIP_LEN = 256
#: Videos whose memory-mapped arrays a dataset keeps open at once (see _CacheReader).
MAX_OPEN_VIDEOS = 256
DEFAULT_CLIP_STRIDE = 128


@dataclass(frozen=True)
class VideoSource:
    """One annotated video: its labels per task and where its features live."""

    video: str
    n_frames: int
    labels: dict[Task, VideoLabels]  # tasks this video has labels for
    audio_video: str | None  # whose audio features it reads (None: no audio)
    streams: dict[str, str] = field(default_factory=dict)  # stream key -> whose features


def index_videos(
    cache: FeatureCache,
    labels_root: str | Path,
    split: str,
    tasks: Sequence[Task | str],
    visual_encoder: str,
    audio_encoder: str | None = None,
    streams: Sequence[str] = (),
) -> list[VideoSource]:
    """Every video of ``split`` labelled for any of ``tasks``, checked against the cache.

    Raises :class:`WildaffectError` for a missing split / task folder and :class:`InputError`
    (naming the annotation or feature file) for a video missing from the cache or a length
    mismatch between features and annotation.
    """
    if split not in SPLITS:
        raise WildaffectError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    tasks = [Task(t) for t in tasks]
    labels: dict[str, dict[Task, VideoLabels]] = {}
    paths: dict[str, Path] = {}
    for task in tasks:
        index = scan_dataset(labels_root, task)  # raises on a missing split folder
        for entry in index.select(task, split):
            labels.setdefault(entry.video, {})[task] = parse_annotation(entry.path, task)
            paths.setdefault(entry.video, entry.path)
    sources = []
    for video in sorted(labels):
        per_task = labels[video]
        annotation = next(iter(per_task.values()))
        lengths = {t: vl.n_frames for t, vl in per_task.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{t.value} {n}" for t, n in lengths.items())
            raise WildaffectError(
                f"video {video!r}: annotation lengths differ across tasks ({shown})")
        path = paths[video]
        if not cache.has_record(video):
            raise InputError(
                path, f"video {video!r} is labelled but has no record in cache {cache.root}")
        n_frames = annotation.n_frames
        _check_length(cache, visual_encoder, video, n_frames, path)
        audio_video = None
        if audio_encoder is not None:
            audio_video = (video if cache.has_features(audio_encoder, video)
                           else audio_video_name(video))
            _check_length(cache, audio_encoder, audio_video, n_frames, path)
        has_face = cache.read_array(video, "has_face", mmap=True)
        if has_face.shape[0] != n_frames:
            raise InputError(
                cache.record_dir(video) / "has_face.npy",
                f"has_face has {has_face.shape[0]} frames but {path} has {n_frames}",
            )
        owners = {key: _check_stream(cache, key, audio_video or video, video, n_frames, path)
                  for key in streams}  # fmt: skip
        sources.append(VideoSource(video, n_frames, per_task, audio_video, owners))
    if not sources:
        names = ", ".join(t.value for t in tasks)
        raise WildaffectError(f"{labels_root}: no {split} videos labelled for {names}")
    return sources


def _check_length(cache: FeatureCache, encoder: str, video: str, n_frames: int, path: Path) -> None:
    features = cache.read_features(encoder, video, mmap=True)  # raises InputError when missing
    if features.shape[0] != n_frames:
        raise InputError(
            cache.feature_path(encoder, video),
            f"{encoder} features have {features.shape[0]} frames but the annotation {path} "
            f"has {n_frames}",
        )


def _check_stream(cache: FeatureCache, key: str, audio_video: str, video: str, n_frames: int,
                  path: Path) -> str:  # fmt: skip
    """The record whose ``key`` stream ``video`` reads (VAD follows the audio); checked to
    exist and to have the annotation's frame count."""
    if key not in STREAMS:
        raise WildaffectError(f"unknown stream {key!r}; valid: {', '.join(STREAMS)}")
    stream = STREAMS[key]
    owner = audio_video if key == VAD.key else video
    if not cache.has_features(stream.feature_set, owner):
        raise InputError(cache.feature_path(stream.feature_set, owner),
                         f"video {video!r} has no {stream.feature_set!r} features, which the "
                         f"model's {key} stream needs; make them with `{stream.make}`")  # fmt: skip
    _check_length(cache, stream.feature_set, owner, n_frames, path)
    return owner


def _empty_labels(task: Task, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(values filled with the invalid marker, all-False mask) of one task for ``length`` frames."""
    if task is Task.EXPR:
        return np.full(length, TASK_SPECS[task].invalid, np.int64), np.zeros(length, bool)
    shape = (length, len(TASK_SPECS[task].columns))
    return np.full(shape, TASK_SPECS[task].invalid, np.float32), np.zeros(shape, bool)


class _CacheReader:
    """Slices of one video's cached arrays as padded tensors (memory-mapped, opened lazily).

    Each memory map holds a file descriptor: only the :data:`MAX_OPEN_VIDEOS` most recently
    read videos stay open, so a cache of thousands of photos cannot exhaust the process's
    open-file limit.
    """

    def __init__(self, cache: FeatureCache, tasks: Sequence[Task], visual_encoder: str,
                 audio_encoder: str | None, streams: Sequence[str] = ()) -> None:
        self.cache, self.tasks, self.streams = cache, list(tasks), tuple(streams)
        self.visual_encoder, self.audio_encoder = visual_encoder, audio_encoder
        self._open: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _arrays(self, source: VideoSource) -> dict[str, Any]:
        if source.video not in self._open:
            cache, video = self.cache, source.video
            arrays = {
                "visual": cache.read_features(self.visual_encoder, video, mmap=True),
                "has_face": cache.read_array(video, "has_face", mmap=True),
                "landmarks": (
                    cache.read_array(video, "landmarks68", mmap=True)
                    if (cache.record_dir(video) / "landmarks68.npy").is_file() else None
                ),
            }
            if source.audio_video is not None:
                arrays["audio"] = cache.read_features(self.audio_encoder, source.audio_video,
                                                      mmap=True)
                meta = cache.read_meta(video)
                # preprocess records "audio_missing" for inputs without an audio track
                arrays["has_audio"] = not meta.get("audio_missing", False)
            for key in self.streams:
                arrays[key] = cache.read_features(STREAMS[key].feature_set,
                                                  source.streams[key], mmap=True)  # fmt: skip
            self._open[video] = arrays
            if len(self._open) > MAX_OPEN_VIDEOS:
                self._open.popitem(last=False)  # the least recently read video
        self._open.move_to_end(source.video)
        return self._open[source.video]

    def read(self, source: VideoSource, start: int, length: int, step: int = 1) -> dict[str, Any]:
        """``length`` frames of ``source`` from ``start``, every ``step``-th frame (1: consecutive),
        padded past its end."""
        arrays = self._arrays(source)
        stop = min(start + length * step, source.n_frames)
        n = len(range(start, stop, step))
        rows = slice(start, stop, step)

        def padded(array: np.ndarray, fill: float = 0.0, dtype: Any = np.float32) -> np.ndarray:
            out = np.full((length, *array.shape[1:]), fill, dtype=dtype)
            out[:n] = array[rows]
            return out

        face = padded(arrays["has_face"], False, bool)
        if arrays["landmarks"] is not None:
            landmarks = padded(arrays["landmarks"])
        else:
            landmarks = np.zeros((length, 68, 2), np.float32)
        finite = np.isfinite(landmarks).all(axis=(1, 2))  # (L,)
        face &= finite | (arrays["landmarks"] is None)
        landmarks[~finite] = 0.0
        # Only face frames' features are read: no-face frames carry zeros, not their (possibly
        # NaN) features, and an utterance without a face costs no visual reads at all.
        visual = np.zeros((length, *arrays["visual"].shape[1:]), np.float32)
        (face_rows,) = np.nonzero(face[:n])
        if len(face_rows):
            visual[face_rows] = arrays["visual"][start + face_rows * step]
        valid = np.zeros(length, bool)
        valid[:n] = True
        item: dict[str, Any] = {
            "visual": torch.from_numpy(visual),
            "landmarks": torch.from_numpy(landmarks),
            "face_mask": torch.from_numpy(face),
            "valid_mask": torch.from_numpy(valid),
            "video": source.video,
            "start": start,
        }
        if "audio" in arrays:
            item["audio"] = torch.from_numpy(padded(arrays["audio"]))
            item["audio_mask"] = torch.from_numpy(valid & arrays["has_audio"])
        for key in self.streams:
            values = padded(arrays[key])  # (L,) or (L, D); NaN rows: frames without the stream
            if STREAMS[key].masked:
                present = valid & np.isfinite(values).all(axis=1)  # (L,)
                values[~present] = 0.0
                item[f"{key}_mask"] = torch.from_numpy(present)
            else:  # VAD: a probability on every frame
                values = np.clip(np.nan_to_num(values), 0.0, 1.0)
            item[key] = torch.from_numpy(values)
        labels, masks = {}, {}
        for task in self.tasks:
            values, mask = _empty_labels(task, length)
            if task in source.labels:
                vl = source.labels[task]
                values[:n] = vl.values[rows]
                mask[:n] = vl.valid[rows]
            labels[task.value] = torch.from_numpy(values)
            masks[task.value] = torch.from_numpy(mask)
        item["labels"], item["label_mask"] = labels, masks
        return item


def clip_starts(n_frames: int, clip_len: int, stride: int) -> list[int]:
    """Clip starts 0, stride, ... up to the first clip that reaches the end (padded if needed)."""
    if clip_len < 1 or stride < 1:
        raise ValueError(f"clip_len and stride must be >= 1, got {clip_len}, {stride}")
    starts = [0]
    while starts[-1] + clip_len < n_frames:
        starts.append(starts[-1] + stride)
    return starts


class _BaseDataset(Dataset):
    def __init__(
        self,
        cache: FeatureCache | str | Path,
        labels_root: str | Path,
        split: str,
        tasks: Sequence[Task | str],
        visual_encoder: str,
        audio_encoder: str | None = None,
        streams: Sequence[str] = (),
    ) -> None:
        self.cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
        self.tasks = [Task(t) for t in tasks]
        self.split = split
        self.streams = tuple(streams)
        self.sources = index_videos(
            self.cache, labels_root, split, self.tasks, visual_encoder, audio_encoder, streams
        )
        self._reader = _CacheReader(self.cache, self.tasks, visual_encoder, audio_encoder,
                                    streams)  # fmt: skip

    @property
    def videos(self) -> list[str]:
        return [s.video for s in self.sources]

    def feature_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-frame shapes of the cached features: {"visual": (...), "audio": (...)}, plus
        those of the served streams ("vad": (), "behaviour": (Db,), "text": (Dt,))."""
        arrays = self._reader._arrays(self.sources[0])
        shapes = {"visual": tuple(arrays["visual"].shape[1:])}
        for key in ("audio", *self.streams):
            if key in arrays:
                shapes[key] = tuple(arrays[key].shape[1:])
        return shapes


class ClipDataset(_BaseDataset):
    """Clips of ``clip_len`` frames every ``stride`` frames; the last clip of a video is
    padded (``valid_mask`` False) so that every frame is in at least one clip.

    ``frame_step > 1`` is seed 003 ¶5's augmentation "to reduce redundancy between consecutive
    frames" (frame skipping): each clip reads every s-th frame from its start, s drawn from
    1..frame_step. The draw is a function of (``step_seed``, epoch, clip index) only, not of
    any RNG state, so resuming mid-epoch sees the same clips; :meth:`set_epoch` changes the
    draws between epochs (epoch 0 until it is called).

    ``pad_short=False`` reads a clip that would run past its video's end at its own length
    instead of padding it to ``clip_len`` (``collate`` pads within the batch): with
    :meth:`length_groups` this keeps 1-frame photos from being padded to an utterance's length.
    """

    def __init__(
        self,
        cache: FeatureCache | str | Path,
        labels_root: str | Path,
        split: str,
        tasks: Sequence[Task | str],
        visual_encoder: str,
        audio_encoder: str | None = None,
        clip_len: int = DEFAULT_CLIP_LEN,
        stride: int = DEFAULT_CLIP_STRIDE,
        frame_step: int = 1,
        step_seed: int = 0,
        pad_short: bool = True,
        streams: Sequence[str] = (),
    ) -> None:
        super().__init__(cache, labels_root, split, tasks, visual_encoder, audio_encoder, streams)
        if frame_step < 1:
            raise ValueError(f"frame_step must be >= 1, got {frame_step}")
        self.clip_len, self.stride = clip_len, stride
        self.frame_step, self.step_seed, self.epoch = frame_step, step_seed, 0
        self.pad_short = pad_short
        self.clips = [
            (i, start)
            for i, source in enumerate(self.sources)
            for start in clip_starts(source.n_frames, clip_len, stride)
        ]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, start = self.clips[index]
        step = self.clip_step(index)
        length = self.clip_len
        if not self.pad_short:
            length = min(length, -(-(self.sources[i].n_frames - start) // step))
        return self._reader.read(self.sources[i], start, length, step)

    def length_groups(self) -> np.ndarray:
        """(n_clips,) group id of every clip: clips whose unpadded lengths share a power-of-two
        range (1, 2-3, 4-7, ...) share a group; see ``EpochSampler(groups=...)``."""
        lengths = [min(self.clip_len, self.sources[i].n_frames - start)
                   for i, start in self.clips]
        return np.array([n.bit_length() for n in lengths])

    def set_epoch(self, epoch: int) -> None:
        """Select the frame-skipping draws of ``epoch`` (no effect with ``frame_step`` 1)."""
        self.epoch = epoch

    def clip_step(self, index: int) -> int:
        """The frame step of clip ``index`` this epoch: 1 .. frame_step, reproducible."""
        if self.frame_step == 1:
            return 1
        rng = np.random.default_rng((self.step_seed, self.epoch, index))
        return int(rng.integers(1, self.frame_step + 1))

    def sample_weights(self) -> np.ndarray:
        """(n_clips,) weights that favour clips holding rare labels.

        A frame's weight is the mean inverse frequency of its valid labels (positive AUs, its
        EXPR class); a clip's weight is the mean over its labelled frames, normalised to mean 1.
        Clips with no labels keep weight 1.
        """
        freq = self._label_frequencies()
        weights = np.ones(len(self.clips))
        for c, (i, start) in enumerate(self.clips):
            source = self.sources[i]
            stop = min(start + self.clip_len, source.n_frames)
            terms = []
            if Task.AU in source.labels and Task.AU in freq:
                vl = source.labels[Task.AU]
                pos = (vl.values[start:stop] == 1) & vl.valid[start:stop]
                if pos.any():
                    terms.append(float((pos / freq[Task.AU]).sum(1).mean()))
            if Task.EXPR in source.labels and Task.EXPR in freq:
                vl = source.labels[Task.EXPR]
                ids = vl.values[start:stop][vl.valid[start:stop]]
                if ids.size:
                    terms.append(float((1.0 / freq[Task.EXPR][ids]).mean()))
            if terms:
                weights[c] = float(np.mean(terms))
        return weights / weights.mean()

    def _label_frequencies(self) -> dict[Task, np.ndarray]:
        freq: dict[Task, np.ndarray] = {}
        au = [s.labels[Task.AU] for s in self.sources if Task.AU in s.labels]
        if au:
            pos = sum(((vl.values == 1) & vl.valid).sum(0) for vl in au)
            n = sum(vl.valid.sum(0) for vl in au)
            freq[Task.AU] = np.maximum(pos, 1) / np.maximum(n, 1)  # (12,)
        expr = [s.labels[Task.EXPR] for s in self.sources if Task.EXPR in s.labels]
        if expr:
            counts = sum(np.bincount(vl.values[vl.valid], minlength=len(EXPR_NAMES)) for vl in expr)
            freq[Task.EXPR] = np.maximum(counts, 1) / max(int(counts.sum()), 1)  # (8,)
        return freq

    def balanced_sampler(self, num_samples: int | None = None, seed: int = 0
                         ) -> WeightedRandomSampler:
        """A with-replacement sampler drawing clips by :meth:`sample_weights`."""
        generator = torch.Generator().manual_seed(seed)
        return WeightedRandomSampler(
            torch.as_tensor(self.sample_weights(), dtype=torch.double),
            num_samples or len(self), replacement=True, generator=generator,
        )


class VideoDataset(_BaseDataset):
    """One item per whole video (no padding), for evaluation on every frame exactly once."""

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source = self.sources[index]
        return self._reader.read(source, 0, source.n_frames)


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack items, right-padding shorter ones (``valid_mask`` / ``face_mask`` / label masks
    False, labels the invalid marker) so whole videos of different lengths batch together."""
    length = max(int(item["valid_mask"].shape[0]) for item in items)

    def pad(x: torch.Tensor, fill: float | bool = 0) -> torch.Tensor:
        if x.shape[0] == length:
            return x
        extra = x.new_full((length - x.shape[0], *x.shape[1:]), fill)
        return torch.cat([x, extra])

    batch: dict[str, Any] = {}
    for key in ("visual", "landmarks", "face_mask", "valid_mask", "audio", "audio_mask", "vad",
                "behaviour", "behaviour_mask", "text", "text_mask"):  # fmt: skip
        if key in items[0]:
            batch[key] = torch.stack([pad(item[key]) for item in items])
    batch["labels"] = {
        task: torch.stack([pad(item["labels"][task], TASK_SPECS[Task(task)].invalid)
                           for item in items])
        for task in items[0]["labels"]
    }
    batch["label_mask"] = {
        task: torch.stack([pad(item["label_mask"][task], False) for item in items])
        for task in items[0]["label_mask"]
    }
    batch["video"] = [item["video"] for item in items]
    batch["start"] = torch.tensor([item["start"] for item in items])
    return batch


__all__ = [
    "ClipDataset", "VideoDataset", "VideoSource", "clip_starts", "collate",
    "index_videos",
]
