"""Encoder features for every preprocessed record, aligned to its video frames.

``extract`` reads the records :mod:`wildaffect.preprocess` wrote and stores, per encoder and
video, one float16 array whose first axis is the record's T frames::

    features/<visual>/<video>.npy       (T, h, w, D) patch grid (transformers encoders; frames
                                        without a face are zeros) or (T, R, D) region tokens
                                        (``mediapipe-regions``)
    features/<audio>/<video>.npy        (T, D): the encoder's 20 ms features averaged over each
                                        frame's interval (``wildaffect.io.align.pool_to_frames``,
                                        shifted by the record's ``audio_start_s``). Records with
                                        no audio track (images, silent videos) or audio shorter
                                        than one 25 ms window get zeros.
    features/<audio>@20ms/<video>.npy   (Na, D): records with no frames (T = 0: audio shorter
                                        than one 25 ms window, or audio records of older caches)
                                        keep their raw 20 ms features under this name instead
                                        and the visual encoder is skipped.

Audio-only records are on the audio's 20 ms timeline (``timeline: "audio"``, frame k at
``k * 0.020`` s, T = ``wavlm_num_frames(N)``), so the pooling above gives frame k exactly the
k-th 20 ms feature; none of their frames has a face, so their visual features are zeros
(the offline visual encoder skips chunks without a face: audio records have no crops).
    features/<name>/encoder.json        what made the folder: encoder, modality, dims (the shape
                                        after the first axis), compute dtype, weights, version.

Optional streams for the seed 003 presets (:mod:`wildaffect.streams`), also on the frames:
``features/silero-vad`` (T,) speech probability (on by default whenever an audio encoder
runs), ``features/behaviour`` (T, D) imported from ``behaviour_dir``, ``features/text`` (T, D)
transcript embeddings from ``transcripts_dir``.

Every array is written atomically (a hidden temporary file beside it, then ``os.replace``), so a
killed run leaves either the old file or none: re-running resumes, skipping arrays that exist
(``force`` redoes them). Visual arrays are streamed into a memory-mapped temporary file batch by
batch: a DINOv2-L grid is 0.5 MB per frame, too much to hold for a long video.

Transformers encoders run under ``torch.inference_mode()``; ``dtype="bf16"`` wraps the forward in
``torch.autocast(device, torch.bfloat16)`` (AMX on recent CPUs). WavLM sees the audio in 30 s
windows, one at a time (a padded batch would change WavLM-Base's output: it takes no attention
mask), cut so that the concatenated frames are exactly those of the whole file; Whisper gets the
whole file and windows it itself. The offline encoders are numpy and ignore device and dtype.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wildaffect import __version__
from wildaffect.data.cache import FEATURE_DTYPE, FEATURES, MANIFEST, FeatureCache
from wildaffect.errors import InputError, WildaffectError
from wildaffect.io.atomic import _current_umask, atomic_write_text
from wildaffect.labels import FRAME_NAME_FORMAT

DTYPES: tuple[str, ...] = ("fp32", "bf16")
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
#: Suffix of the feature set holding the unaligned 20 ms audio features of records with T = 0.
RAW_AUDIO_SUFFIX = "@20ms"
ENCODER_JSON = "encoder.json"
#: WavLM input window: 30 s, a multiple of its 320-sample hop.
AUDIO_WINDOW_S = 30.0
#: Frames per call of the (numpy) offline visual encoder: bounds the crops held in memory.
OFFLINE_CHUNK_FRAMES = 256
#: Weights description of encoders built without any.
WEIGHT_FREE = "none (weight-free)"
RANDOM_WEIGHTS = "random (not pretrained)"

Status = Literal["done", "cached", "failed"]


# --------------------------------------------------------------------------------------------
# Encoders ready to run.


@dataclass
class FeatureEncoder:
    """A built encoder with what ``encoder.json`` records about it.

    ``model`` is an ``nn.Module`` (transformers encoders) or an offline encoder with
    ``encode``; ``weights`` says where its weights came from (a folder, or
    :data:`WEIGHT_FREE` / :data:`RANDOM_WEIGHTS`).
    """

    name: str
    modality: str
    model: Any
    weights: str
    offline: bool
    _frame_shape: tuple[int, ...] | None = field(default=None, repr=False)

    @property
    def raw_audio_name(self) -> str:
        return f"{self.name}{RAW_AUDIO_SUFFIX}"


def load_encoder(name: str, modality: str, weights: str | Path | None = None) -> FeatureEncoder:
    """Build encoder ``name`` for extraction; weights resolve now (folder, HF cache, hub id).

    A missing model is the registry's one-line :class:`WildaffectError`, raised before any
    video is read.
    """
    from wildaffect.encoders.registry import create_encoder, get_spec

    spec = get_spec(name)
    if spec.modality != modality:
        raise WildaffectError(f"--{modality} {name}: that is a {spec.modality} encoder")
    if spec.weight_free:
        if weights is not None:
            raise WildaffectError(
                f"--weights-{modality}: {name} is weight-free and takes no weights"
            )
        return FeatureEncoder(name, modality, create_encoder(name), WEIGHT_FREE, offline=True)
    if spec.hub_id is None:  # weights published outside the hub: the builder finds them
        model = create_encoder(name, weights=weights)
        source = str(weights) if weights is not None else spec.weights_url
        return FeatureEncoder(name, modality, model, str(source), offline=False)
    from wildaffect.encoders.weights import resolve_weights

    folder = resolve_weights(weights, spec.hub_id, encoder_name=name)
    model = create_encoder(name, weights=folder)
    return FeatureEncoder(name, modality, model, str(folder), offline=False)


def torch_device(device: str) -> str:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is a user error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise WildaffectError("--device cuda: no CUDA device is available (use cpu or auto)")
    return device


@dataclass(frozen=True)
class RunOptions:
    """How the torch encoders run: frames per visual forward, device and compute dtype."""

    batch_size: int = 16
    device: str = "cpu"
    dtype: str = "fp32"
    audio_window_s: float = AUDIO_WINDOW_S

    def autocast(self) -> Any:
        import torch

        return torch.autocast(
            device_type=self.device, dtype=torch.bfloat16, enabled=self.dtype == "bf16"
        )


# --------------------------------------------------------------------------------------------
# Reading a record.


def read_crops(
    cache: FeatureCache, video: str, meta: dict[str, Any], frames: np.ndarray
) -> np.ndarray:
    """Face crops of ``frames`` (0-based indices) -> (len(frames), 224, 224, 3) uint8 RGB.

    ``--crops npy`` records are sliced from the memory-mapped array; ``--crops jpeg`` records
    read ``crops/<t + 1>.jpg`` for face frames and give zeros elsewhere.
    """
    from wildaffect.face.align import CROP_SIZE

    frames = np.asarray(frames, dtype=np.int64)
    fmt = meta.get("crops")
    folder = cache.record_dir(video)
    if fmt == "npy":
        return np.asarray(cache.read_array(video, "crops", mmap=True)[frames])
    if fmt != "jpeg":
        raise InputError(folder, f"record has no face crops (crops: {fmt!r}); preprocess it again "
                                 "with --crops jpeg or npy")  # fmt: skip
    import cv2

    has_face = cache.read_array(video, "has_face", mmap=True)
    out = np.zeros((len(frames), CROP_SIZE, CROP_SIZE, 3), np.uint8)
    for i, t in enumerate(frames):
        if not has_face[t]:
            continue
        path = folder / "crops" / FRAME_NAME_FORMAT.format(int(t) + 1)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None:
            raise InputError(path, "face crop missing or unreadable")
        if image.shape != out.shape[1:]:
            raise InputError(
                path, f"crop is {image.shape[1]}x{image.shape[0]}, expected {CROP_SIZE}"
            )
        out[i] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return out


# --------------------------------------------------------------------------------------------
# Writing features.


@contextlib.contextmanager
def feature_file(
    cache: FeatureCache, name: str, video: str, shape: tuple[int, ...]
) -> Iterator[np.ndarray]:
    """A float16 (``shape``) memmap to fill; published atomically only if the block succeeds.

    The memmap lives in a hidden ``.<video>.npy.*.tmp`` file beside the final one (zeros until
    written), so memory stays flat whatever the video length; on any exception it is removed.
    """
    path = cache.feature_path(name, video)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=FEATURE_DTYPE, shape=shape)
        yield array
        array.flush()
        del array
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_feature_temporaries(cache: FeatureCache, names: Sequence[str]) -> list[Path]:
    """Delete hidden ``*.tmp`` files a killed run left in ``features/<name>/``."""
    stale = []
    for name in names:
        folder = cache.root / FEATURES / name
        if folder.is_dir():
            stale += [
                p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")
            ]
    for path in stale:
        path.unlink(missing_ok=True)
    return sorted(stale)


def encoder_info(encoder: FeatureEncoder, name: str, dims: Sequence[int], dtype: str) -> dict:
    """The ``encoder.json`` of feature set ``name`` (``encoder.name`` or its @20ms set)."""
    return {
        "feature_set": name,
        "encoder": encoder.name,
        "modality": encoder.modality,
        "rate": "20 ms" if name.endswith(RAW_AUDIO_SUFFIX) else "video frames",
        "dims": [int(d) for d in dims],
        "storage_dtype": np.dtype(FEATURE_DTYPE).name,
        "compute_dtype": "fp32" if encoder.offline else dtype,
        "weights": encoder.weights,
        "wildaffect_version": __version__,
    }


def check_encoder_json(cache: FeatureCache, name: str, encoder: FeatureEncoder, dtype: str) -> None:
    """Refuse to add features made with other weights or dtype to an existing feature set."""
    path = cache.root / FEATURES / name / ENCODER_JSON
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"corrupt encoder description ({err}); use --force") from None
    new = encoder_info(encoder, name, [], dtype)
    for key in ("weights", "compute_dtype"):
        if old.get(key) != new[key]:
            raise InputError(
                path, f"these features were made with {key} {old.get(key)!r}, this run uses "
                f"{new[key]!r}; pass --force to redo them all, or use another cache"
            )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Encoding one record.


def visual_frame_shape(encoder: FeatureEncoder, options: RunOptions) -> tuple[int, ...]:
    """Shape of one frame's features (probed once with a blank crop for torch encoders)."""
    if encoder._frame_shape is None:
        if encoder.offline:
            encoder._frame_shape = (encoder.model.num_tokens, encoder.model.token_dim)
        else:
            from wildaffect.face.align import CROP_SIZE

            blank = np.zeros((1, CROP_SIZE, CROP_SIZE, 3), np.uint8)
            encoder._frame_shape = run_visual_encoder(encoder, blank, options).shape[1:]
    return encoder._frame_shape


def run_visual_encoder(
    encoder: FeatureEncoder, crops: np.ndarray, options: RunOptions
) -> np.ndarray:
    """crops: (B, 224, 224, 3) uint8 -> (B, h, w, D) float32 patch grid (or (B, D) CLS)."""
    import torch

    model = encoder.model
    with torch.inference_mode(), options.autocast():
        pixels = model.preprocess(crops).to(options.device)  # (B, 3, 224, 224)
        out = model(pixels)
    features = out.patch_grid if out.patch_grid is not None else out.cls
    return features.float().cpu().numpy()


def encode_visual(
    cache: FeatureCache,
    video: str,
    meta: dict[str, Any],
    encoder: FeatureEncoder,
    out: np.ndarray,
    options: RunOptions,
    on_frames: Callable[[int], None] | None = None,
) -> None:
    """Fill ``out`` (T, ...) with the visual features of every frame of ``video``."""
    has_face = np.asarray(cache.read_array(video, "has_face", mmap=True), dtype=bool)
    n_frames = len(has_face)
    if encoder.offline:
        arrays = {
            n: cache.read_array(video, n, mmap=True) for n in ("landmarks68", "blendshapes", "pose")
        }
        for start in range(0, n_frames, OFFLINE_CHUNK_FRAMES):
            stop = min(start + OFFLINE_CHUNK_FRAMES, n_frames)
            if not has_face[start:stop].any():  # all zeros (``out`` starts zeroed): no crops read
                if on_frames is not None:
                    on_frames(stop)
                continue
            crops = read_crops(cache, video, meta, np.arange(start, stop))
            out[start:stop] = encoder.model.encode(
                np.asarray(arrays["landmarks68"][start:stop]),
                np.asarray(arrays["blendshapes"][start:stop]),
                np.asarray(arrays["pose"][start:stop]),
                crops,
                has_face[start:stop],
            )  # (n, R, D)
            if on_frames is not None:
                on_frames(stop)
        return
    faces = np.flatnonzero(has_face)  # frames without a face stay zero
    for start in range(0, len(faces), options.batch_size):
        batch = faces[start : start + options.batch_size]
        out[batch] = run_visual_encoder(encoder, read_crops(cache, video, meta, batch), options)
        if on_frames is not None:
            on_frames(int(batch[-1]) + 1)


def encode_audio(samples: np.ndarray, encoder: FeatureEncoder, options: RunOptions) -> np.ndarray:
    """samples: (N,) float32 16 kHz -> (Na, D) float32 features at 20 ms (Na may be 0).

    WavLM runs on windows of ``options.audio_window_s`` (a multiple of its hop) extended by 80
    samples, so window i yields exactly the frames ``j`` whose 400-sample span starts inside it:
    the frame count is ``wavlm_num_frames(N)``, as for the whole file.
    """
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if encoder.offline:
        return encoder.model.encode(samples)
    import torch

    from wildaffect.encoders.audio import WavLMEncoder
    from wildaffect.io.align import WAVLM_HOP, WAVLM_RECEPTIVE_FIELD
    from wildaffect.io.media import AUDIO_SAMPLE_RATE

    model = encoder.model
    if isinstance(model, WavLMEncoder):
        step = max(int(options.audio_window_s * AUDIO_SAMPLE_RATE) // WAVLM_HOP, 1) * WAVLM_HOP
        extra = WAVLM_RECEPTIVE_FIELD - WAVLM_HOP
        windows = [samples[s : s + step + extra] for s in range(0, len(samples), step)]
        windows = [w for w in windows if len(w) >= WAVLM_RECEPTIVE_FIELD]
    else:  # Whisper: the encoder cuts its own 30 s windows
        windows = [samples] if len(samples) else []
    pieces = [np.zeros((0, model.out_dim), np.float32)]
    for window in windows:
        with torch.inference_mode(), options.autocast():
            out = model(torch.tensor(window)[None].to(options.device))  # (1, n) copied
        pieces.append(out.features[0, : int(out.lengths[0])].float().cpu().numpy())
    return np.concatenate(pieces, axis=0)


def audio_feature_dim(encoder: FeatureEncoder) -> int:
    model = encoder.model
    return int(model.feature_dim if encoder.offline else model.out_dim)


def audio_on_frames(
    features: np.ndarray, frame_times: np.ndarray, audio_start_s: float
) -> np.ndarray:
    """(Na, D) 20 ms features -> (T, D): the mean over each video frame's interval."""
    from wildaffect.io.align import frame_audio_ranges, pool_to_frames

    ranges = frame_audio_ranges(frame_times, len(features), audio_start_s=audio_start_s)
    return pool_to_frames(features, ranges)


# --------------------------------------------------------------------------------------------
# One video, and the batch.


@dataclass
class ExtractResult:
    """What happened to one record: feature sets written / already there, notes, or why it
    failed."""

    video: str
    status: Status
    n_frames: int | None = None
    written: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def describe_failure(self) -> str:
        return f"{self.video}: {self.reason}"


@dataclass
class ExtractReport:
    cache_root: Path
    results: list[ExtractResult] = field(default_factory=list)

    @property
    def failures(self) -> list[ExtractResult]:
        return [r for r in self.results if not r.ok]

    @property
    def all_ok(self) -> bool:
        return not self.failures


class ExtractProgress:
    """Receives the batch's events; this one ignores them (the CLI draws rich bars)."""

    def begin(self, total: int) -> None: ...

    def started(self, video: str, n_frames: int) -> None: ...

    def frames(self, video: str, done: int, total: int) -> None: ...

    def finished(self, result: ExtractResult) -> None: ...


class _EncoderJsons:
    """Writes each feature set's ``encoder.json`` once per run, when its first array is written."""

    def __init__(self, cache: FeatureCache, dtype: str, force: bool) -> None:
        self.cache, self.dtype, self.force = cache, dtype, force
        self.done: set[str] = set()

    def wrote(self, name: str, encoder: FeatureEncoder, dims: Sequence[int]) -> None:
        if name in self.done:
            return
        path = self.cache.root / FEATURES / name / ENCODER_JSON
        if self.force or not path.is_file():
            info = encoder_info(encoder, name, dims, self.dtype)
            atomic_write_text(path, json.dumps(info, indent=2) + "\n")
        self.done.add(name)


def extract_video(
    cache: FeatureCache,
    video: str,
    visual_encoder: FeatureEncoder | None,
    audio_encoder: FeatureEncoder | None,
    *,
    options: RunOptions | None = None,
    force: bool = False,
    progress: ExtractProgress | None = None,
    encoder_jsons: _EncoderJsons | None = None,
    streams: Any = None,
) -> ExtractResult:
    """Write the missing (all with ``force``) feature arrays of one record.

    Raises :class:`InputError` for a broken record (see
    :func:`wildaffect.preprocess.validate_preprocessed`) or an encoder failing on it; the
    arrays finished before stay valid, the one being written is dropped. ``streams``: a
    :class:`wildaffect.streams.produce.StreamJobs` writing the optional streams last.
    """
    from wildaffect.preprocess import validate_preprocessed

    options = options or RunOptions()
    progress = progress or ExtractProgress()
    jsons = encoder_jsons or _EncoderJsons(cache, options.dtype, force)
    meta = validate_preprocessed(cache, video)
    n_frames = int(meta["n_frames"])
    result = ExtractResult(video, "cached", n_frames)
    record = cache.record_dir(video)
    progress.started(video, n_frames)

    def wanted(name: str) -> bool:
        if not force and cache.has_features(name, video):
            result.cached.append(name)
            return False
        return True

    if n_frames == 0:
        kept = "audio kept at 20 ms" if audio_encoder is not None else "no audio encoder"
        result.notes.append(f"record without frames: no visual features, {kept}")
    elif visual_encoder is not None and wanted(visual_encoder.name):
        shape = (n_frames, *visual_frame_shape(visual_encoder, options))
        try:
            with feature_file(cache, visual_encoder.name, video, shape) as out:
                encode_visual(
                    cache, video, meta, visual_encoder, out, options,
                    lambda done: progress.frames(video, done, n_frames),
                )  # fmt: skip
        except WildaffectError:  # already one line naming the file
            raise
        except Exception as err:  # an encoder failing on this record: one line, batch goes on
            raise InputError(record, f"{visual_encoder.name} failed: {_first_line(err)}") from err
        jsons.wrote(visual_encoder.name, visual_encoder, shape[1:])
        result.written.append(visual_encoder.name)

    if audio_encoder is not None:
        name = audio_encoder.name if n_frames else audio_encoder.raw_audio_name
        if wanted(name):
            try:
                features = _audio_features(cache, video, meta, audio_encoder, options, result)
            except WildaffectError:
                raise
            except Exception as err:
                raise InputError(
                    record, f"{audio_encoder.name} failed: {_first_line(err)}"
                ) from err
            cache.write_features(name, video, features)
            jsons.wrote(name, audio_encoder, features.shape[1:])
            result.written.append(name)
    if streams is not None:
        try:
            streams.run(video, meta, wanted, result.written, result.notes)
        except WildaffectError:
            raise
        except Exception as err:
            raise InputError(record, f"optional streams failed: {_first_line(err)}") from err
    if result.written:
        result.status = "done"
    return result


def _audio_features(
    cache: FeatureCache,
    video: str,
    meta: dict[str, Any],
    encoder: FeatureEncoder,
    options: RunOptions,
    result: ExtractResult,
) -> np.ndarray:
    """(T, D) frame-aligned audio features, or (Na, D) at 20 ms for a record with T = 0."""
    n_frames = int(meta["n_frames"])
    dim = audio_feature_dim(encoder)
    if meta.get("audio_missing"):
        result.notes.append("no audio track: audio features are zeros")
        return np.zeros((n_frames, dim), np.float32)
    samples = np.asarray(cache.read_array(video, "audio", mmap=True))  # (N,) float32 16 kHz
    features = encode_audio(samples, encoder, options)  # (Na, D)
    if n_frames == 0:
        return features
    if len(features) == 0:
        result.notes.append("audio shorter than 25 ms: audio features are zeros")
        return np.zeros((n_frames, dim), np.float32)
    frame_times = cache.read_array(video, "frame_times")
    return audio_on_frames(features, frame_times, float(meta.get("audio_start_s", 0.0)))


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}" + (f": {lines[0]}" if lines else "")


def _failure_reason(err: BaseException) -> str:
    if isinstance(err, WildaffectError):
        return str(err)
    return f"internal error: {_first_line(err)}"


def _as_encoder(
    value: str | FeatureEncoder | None, modality: str, weights: str | Path | None
) -> FeatureEncoder | None:
    if value is None or isinstance(value, FeatureEncoder):
        return value
    if value.lower() == "none":
        return None
    return load_encoder(value, modality, weights)


def _keep_manifest_extras(cache: FeatureCache) -> dict[str, Any]:
    """Keys other commands added to manifest.json (e.g. ``preprocess``), kept on rewrite."""
    path = cache.root / MANIFEST
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    standard = {"cache_format", "wildaffect_version", "videos", "features", "extract"}
    return {k: v for k, v in old.items() if k not in standard}


def extract_batch(
    cache_root: str | Path,
    *,
    visual: str | FeatureEncoder | None = "mediapipe-regions",
    audio: str | FeatureEncoder | None = "logmel-egemaps",
    weights_visual: str | Path | None = None,
    weights_audio: str | Path | None = None,
    batch_size: int = 16,
    dtype: str = "fp32",
    device: str = "auto",
    force: bool = False,
    videos: Sequence[str] | None = None,
    progress: ExtractProgress | None = None,
    vad: bool | None = None,
    behaviour_dir: str | Path | None = None,
    transcripts_dir: str | Path | None = None,
    text_encoder: str | None = None,
) -> ExtractReport:
    """Extract features for every record of the cache (or ``videos``); never raises per video.

    Setup problems (unknown encoder, weights not found, bad options, a feature set made with
    other weights) raise :class:`WildaffectError` before any record is read. Then each record
    is done in turn; its failure is a result with a reason and the others go on. The manifest is
    rewritten at the end.

    Optional streams (:mod:`wildaffect.streams`): ``vad`` (None = auto: on when an audio
    encoder runs) writes silero-vad speech probabilities; ``behaviour_dir`` imports one
    ``<video>.npy`` / ``.csv`` of behaviour features per record; ``transcripts_dir`` embeds one
    ``<video>.srt`` / ``.vtt`` / ``.csv`` transcript per record with ``text_encoder`` (a model
    folder or hub id, default ``roberta-base``).
    """
    if dtype not in DTYPES:
        raise WildaffectError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if device not in DEVICES:
        raise WildaffectError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if batch_size < 1:
        raise WildaffectError(f"--batch-size must be at least 1, got {batch_size}")
    cache = FeatureCache(cache_root)
    if not cache.root.is_dir():
        raise WildaffectError(
            f"{cache.root}: not a cache folder (run `wildaffect preprocess` first)"
        )
    visual_encoder = _as_encoder(visual, "visual", weights_visual)
    audio_encoder = _as_encoder(audio, "audio", weights_audio)
    from wildaffect.streams.produce import StreamJobs, StreamOptions
    from wildaffect.streams.text import DEFAULT_TEXT_ENCODER

    stream_options = StreamOptions(
        vad=audio_encoder is not None if vad is None else vad,
        behaviour_dir=Path(behaviour_dir) if behaviour_dir is not None else None,
        transcripts_dir=Path(transcripts_dir) if transcripts_dir is not None else None,
        text_encoder=text_encoder or DEFAULT_TEXT_ENCODER,
    )
    if visual_encoder is None and audio_encoder is None and not stream_options.any:
        raise WildaffectError("nothing to extract: --visual and --audio are both none")
    streams = StreamJobs(cache, stream_options, force) if stream_options.any else None
    torch_encoders = [e for e in (visual_encoder, audio_encoder) if e is not None and not e.offline]
    run_device = torch_device(device) if torch_encoders else "cpu"
    for encoder in torch_encoders:
        encoder.model.to(run_device)
    options = RunOptions(batch_size=batch_size, device=run_device, dtype=dtype)
    feature_sets: list[tuple[str, FeatureEncoder]] = []  # every folder this run may write
    if visual_encoder is not None:
        feature_sets.append((visual_encoder.name, visual_encoder))
    if audio_encoder is not None:
        feature_sets += [(audio_encoder.name, audio_encoder),
                         (audio_encoder.raw_audio_name, audio_encoder)]  # fmt: skip
    if not force:
        for name, encoder in feature_sets:
            check_encoder_json(cache, name, encoder, dtype)
    remove_feature_temporaries(cache, [name for name, _ in feature_sets])
    if streams is not None:
        remove_feature_temporaries(cache, streams.feature_sets)

    todo = list(videos) if videos else cache.videos()
    if not todo:
        raise WildaffectError(
            f"{cache.root}: no preprocessed records (run `wildaffect preprocess`)"
        )
    progress = progress or ExtractProgress()
    progress.begin(len(todo))
    jsons = _EncoderJsons(cache, dtype, force)
    report = ExtractReport(cache.root)
    for video in todo:
        try:
            result = extract_video(
                cache, video, visual_encoder, audio_encoder, options=options, force=force,
                progress=progress, encoder_jsons=jsons, streams=streams,
            )  # fmt: skip
        except Exception as err:
            result = ExtractResult(video, "failed", reason=_failure_reason(err))
        report.results.append(result)
        progress.finished(result)
    cache.write_manifest(
        extra={
            **_keep_manifest_extras(cache),
            "extract": {
                "visual": visual_encoder.name if visual_encoder else None,
                "audio": audio_encoder.name if audio_encoder else None,
                "streams": streams.feature_sets if streams is not None else [],
                "failed": [{"video": r.video, "reason": r.reason} for r in report.failures],
            },
        }
    )
    return report


__all__ = [
    "DTYPES",
    "ENCODER_JSON",
    "RAW_AUDIO_SUFFIX",
    "ExtractProgress",
    "ExtractReport",
    "ExtractResult",
    "FeatureEncoder",
    "RunOptions",
    "audio_on_frames",
    "encode_audio",
    "extract_batch",
    "extract_video",
    "feature_file",
    "load_encoder",
    "read_crops",
]
