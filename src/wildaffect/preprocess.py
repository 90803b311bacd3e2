"""Preprocess media into the feature cache: one input -> one record, and a resumable batch.

Per input (:func:`preprocess_file`) the video is decoded once, frame by frame: MediaPipe's
landmarker finds the faces, :class:`~wildaffect.face.tracking.FaceTracker` keeps the target,
the 478-point mesh is mapped to the 68 iBUG points and the face is aligned into a 224 crop.
The record (see :mod:`wildaffect.data.cache` for the folder layout) holds, for T frames::

    frame_times     (T,)          float64  seconds on the video timeline
    has_face        (T,)          bool     the target face was found
    n_faces_seen    (T,)          int16    faces detected in the frame (target or not)
    landmarks478    (T, 478, 3)   float32  normalised x, y by the frame size, + mediapipe z
    landmarks68     (T, 68, 2)    float32  iBUG points in the 224 crop, normalised to [0, 1]
    landmarks68_px  (T, 68, 2)    float32  the same points in frame pixels
    crop_matrix     (T, 2, 3)     float32  affine frame pixels -> crop pixels
    blendshapes     (T, 52)       float32
    pose            (T, 4, 4)     float32  canonical face -> camera
    bbox            (T, 4)        float32  x0, y0, x1, y1 in frame pixels
    audio           (N,)          float32  16 kHz mono in [-1, 1]
    crops/00001.jpg ...                    ``--crops jpeg`` (1-based, Aff-Wild2's naming;
                                           frames without the face have no file)
    crops.npy       (T, 224, 224, 3) uint8 ``--crops npy`` (zeros where there is no face)

NaN fills the float arrays where ``has_face`` is False. Images give T = 1. Audio-only files
(kind "audio") are put on the audio's own 20 ms timeline (``timeline: "audio"`` in meta.json,
``"video"`` otherwise): T = ``wavlm_num_frames(N)`` frames at ``k * 0.020`` s
(:func:`wildaffect.io.align.audio_frame_times`), none with a face, so that ``extract`` gives
frame k exactly the k-th 20 ms audio feature and a model predicts every 20 ms from the voice.
meta.json says where the record came from (source path, size, mtime),
what it is (kind, fps, size, frame and face counts, audio flags), the face model's sha256 and
the time each stage took.

Memory stays flat whatever the length: frames are streamed and dropped, every per-frame row
and the crops are appended to files in the record's temporary folder as they are made (the
per-frame arrays are turned into ``.npy`` at the end by a streaming copy), audio is decoded in
chunks. The cost is one extra sequential read of the small arrays.

Record names are the file stem. When several inputs of one run share a stem, each of them is
named ``<stem>-<first 6 hex of sha1(resolved path)>`` instead, whatever the argument order.

The batch (:func:`preprocess_batch`) skips inputs whose record is complete and made from a
source of the same size and mtime with the same crop format ("cached"), clears temporary
folders a killed run left, runs the rest in this process or in ``workers`` spawned processes,
and reports every failing input with its reason while the others finish.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import queue as queue_module
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wildaffect.data.cache import FeatureCache, RecordWriter
from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import FRAME_NAME_FORMAT

CropFormat = Literal["jpeg", "npy", "none"]
CROP_FORMATS: tuple[str, ...] = ("jpeg", "npy", "none")
CROPS = "crops"
JPEG_QUALITY = 95
#: Per-frame arrays of a record: name -> (row shape, dtype). Their first axis is T.
FRAME_ARRAYS: dict[str, tuple[tuple[int, ...], np.dtype]] = {
    "frame_times": ((), np.dtype(np.float64)),
    "has_face": ((), np.dtype(bool)),
    "n_faces_seen": ((), np.dtype(np.int16)),
    "landmarks478": ((478, 3), np.dtype(np.float32)),
    "landmarks68": ((68, 2), np.dtype(np.float32)),
    "landmarks68_px": ((68, 2), np.dtype(np.float32)),
    "crop_matrix": ((2, 3), np.dtype(np.float32)),
    "blendshapes": ((52,), np.dtype(np.float32)),
    "pose": ((4, 4), np.dtype(np.float32)),
    "bbox": ((4,), np.dtype(np.float32)),
}
#: Frames between two progress reports from a video being processed.
PROGRESS_EVERY = 8
#: Rows per block when the no-face rows of an audio-only record are written.
AUDIO_ROW_BLOCK = 4096
#: meta.json "timeline": frames are the video's (images: one frame) or the audio's 20 ms hops.
Timeline = Literal["video", "audio"]

Status = Literal["done", "cached", "failed"]
#: Called with (frames done so far, estimated frame count or None).
FrameProgress = Callable[[int, "int | None"], None]


@dataclass
class VideoResult:
    """What happened to one input; ``reason`` is the one-line cause of a failure."""

    path: Path
    video: str | None
    status: Status
    kind: str | None = None
    n_frames: int | None = None
    n_face_frames: int | None = None
    audio_s: float | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def describe_failure(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class BatchReport:
    """Every input of a batch, in the order given (inputs that could not be collected last)."""

    cache_root: Path
    results: list[VideoResult] = field(default_factory=list)

    @property
    def failures(self) -> list[VideoResult]:
        return [r for r in self.results if not r.ok]

    @property
    def all_ok(self) -> bool:
        return not self.failures


# --------------------------------------------------------------------------------------------
# Names and resume.


def _safe_stem(path: Path) -> str:
    stem = path.stem or path.name
    return "_" + stem.lstrip(".") if stem.startswith(".") else stem


def record_names(paths: Sequence[Path]) -> list[str]:
    """Record name per input: the stem, or ``<stem>-<sha1 hex[:6]>`` when stems collide."""
    stems = [_safe_stem(Path(p)) for p in paths]
    counts = Counter(stems)
    names = []
    for path, stem in zip(paths, stems, strict=True):
        if counts[stem] > 1:
            digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:6]
            stem = f"{stem}-{digest}"
        names.append(stem)
    return names


def _source_identity(path: Path) -> dict[str, Any]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputError(path, f"cannot read the file ({exc.strerror or exc})") from None
    return {
        "source": str(path.resolve()),
        "size": stat.st_size,
        "mtime": stat.st_mtime,
        "mtime_ns": stat.st_mtime_ns,
    }


def is_up_to_date(cache: FeatureCache, video: str, path: Path, crops: CropFormat) -> bool:
    """A complete record made from a file of this size and mtime, with these crops."""
    if not cache.has_record(video):
        return False
    try:
        meta = cache.read_meta(video)
        source = _source_identity(path)
    except InputError:
        return False
    same_crops = meta.get("kind") == "audio" or meta.get("crops") == crops  # audio has none
    # Audio records made before the 20 ms timeline (T = 0, no "timeline" key) are redone.
    same_timeline = meta.get("timeline") == _timeline(meta.get("kind"))
    same_source = meta.get("size") == source["size"] and meta.get("mtime_ns") == source["mtime_ns"]
    return same_source and same_crops and same_timeline


def _timeline(kind: str | None) -> Timeline:
    return "audio" if kind == "audio" else "video"


# --------------------------------------------------------------------------------------------
# One input -> one record.


class _RowFile:
    """Rows of one array appended to a raw file as they come; ``finish`` makes the ``.npy``.

    Keeps the process's memory independent of the video length.
    """

    def __init__(self, folder: Path, name: str, row_shape: tuple[int, ...], dtype: np.dtype):
        self.folder, self.name, self.row_shape, self.dtype = folder, name, row_shape, dtype
        self.raw = folder / f".{name}.raw"
        self.handle = open(self.raw, "wb")
        self.n_rows = 0

    def append(self, rows: np.ndarray) -> None:
        """Add one row (shape ``row_shape``) or a block of rows (``(k, *row_shape)``)."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape == self.row_shape:
            rows = rows[None]
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"{self.name}: row shape {rows.shape[1:]}, expected {self.row_shape}")
        self.handle.write(rows.tobytes())
        self.n_rows += len(rows)

    def finish(self, record: RecordWriter, block_bytes: int = 8 << 20) -> None:
        """Write ``<name>.npy`` (header + the raw bytes, copied in blocks) and register it."""
        import shutil

        self.handle.close()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.n_rows, *self.row_shape),
        }
        with open(self.folder / f"{self.name}.npy", "wb") as out, open(self.raw, "rb") as raw:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(raw, out, block_bytes)
        self.raw.unlink()
        record.add_array_file(self.name)

    def close(self) -> None:
        self.handle.close()


def _nan_row(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, np.nan, dtype=np.float32)


def _write_frames(
    path: Path,
    record: RecordWriter,
    crops: CropFormat,
    face_model: str | os.PathLike[str] | None,
    n_estimate: int | None,
    on_progress: FrameProgress | None,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Decode, find and align the face frame by frame, appending every row to the record."""
    import cv2

    from wildaffect.face.align import CROP_SIZE
    from wildaffect.face.pipeline import iter_face_frames

    rows = {name: _RowFile(record.folder, name, *spec) for name, spec in FRAME_ARRAYS.items()}
    crop_rows = None
    if crops == "npy":
        crop_rows = _RowFile(record.folder, CROPS, (CROP_SIZE, CROP_SIZE, 3), np.dtype(np.uint8))
    elif crops == "jpeg":
        (record.folder / CROPS).mkdir()
    blank_crop = np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
    n_frames = n_face = 0
    width = height = None
    try:
        for frame in iter_face_frames(path, face_model, timings):
            started = time.perf_counter()
            height, width = frame.image.shape[:2]
            face, aligned = frame.face, frame.aligned
            rows["frame_times"].append(np.float64(frame.time_s))
            rows["has_face"].append(np.bool_(face is not None))
            rows["n_faces_seen"].append(np.int16(frame.n_faces))
            if face is None or aligned is None:
                for name in ("landmarks478", "landmarks68", "landmarks68_px", "crop_matrix",
                             "blendshapes", "pose", "bbox"):  # fmt: skip
                    rows[name].append(_nan_row(FRAME_ARRAYS[name][0]))
            else:
                n_face += 1
                rows["landmarks478"].append(face.landmarks)
                rows["landmarks68"].append(aligned.landmarks68_norm)
                rows["landmarks68_px"].append(frame.points68_px)
                rows["crop_matrix"].append(aligned.matrix)
                rows["blendshapes"].append(face.blendshapes)
                rows["pose"].append(face.pose)
                rows["bbox"].append(face.bbox)
            if crop_rows is not None:
                crop_rows.append(aligned.crop if aligned is not None else blank_crop)
            elif crops == "jpeg" and aligned is not None:
                ok, jpeg = cv2.imencode(
                    ".jpg", cv2.cvtColor(aligned.crop, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
                )  # fmt: skip
                if not ok:
                    raise RuntimeError(f"JPEG encoding failed for frame {n_frames}")
                name = FRAME_NAME_FORMAT.format(n_frames + 1)
                (record.folder / CROPS / name).write_bytes(jpeg.tobytes())
            timings["write_s"] += time.perf_counter() - started
            n_frames += 1
            if on_progress is not None and n_frames % PROGRESS_EVERY == 0:
                on_progress(n_frames, n_estimate)
    finally:
        for row_file in [*rows.values(), crop_rows]:
            if row_file is not None:
                row_file.close()
    start = time.perf_counter()
    for row_file in [*rows.values(), crop_rows]:
        if row_file is not None:
            row_file.finish(record)
    timings["write_s"] += time.perf_counter() - start
    return {"n_frames": n_frames, "n_face_frames": n_face, "width": width, "height": height}


def _write_audio_frames(record: RecordWriter, n_samples: int) -> dict[str, Any]:
    """The per-frame arrays of an audio-only record: one no-face frame per 20 ms hop.

    Rows are written in blocks through :class:`_RowFile`, so memory stays flat for long audio.
    """
    from wildaffect.io.align import audio_frame_times

    times = audio_frame_times(n_samples)  # (T,) float64
    for name, (shape, dtype) in FRAME_ARRAYS.items():
        rows = _RowFile(record.folder, name, shape, dtype)
        try:
            for start in range(0, len(times), AUDIO_ROW_BLOCK):
                n = min(AUDIO_ROW_BLOCK, len(times) - start)
                if name == "frame_times":
                    block = times[start : start + n]
                elif np.issubdtype(dtype, np.floating):
                    block = np.full((n, *shape), np.nan, dtype)
                else:  # has_face False, n_faces_seen 0
                    block = np.zeros((n, *shape), dtype)
                rows.append(block)
        finally:
            rows.close()
        rows.finish(record)
    return {"n_frames": len(times), "n_face_frames": 0, "width": None, "height": None}


def _write_audio(
    path: Path, kind: str, record: RecordWriter, timings: dict[str, float]
) -> dict[str, Any]:
    """Stream the 16 kHz mono track into ``audio.npy``; an image gets an empty, missing one."""
    from wildaffect.io.media import AUDIO_SAMPLE_RATE, iter_audio_chunks

    start = time.perf_counter()
    audio = _RowFile(record.folder, "audio", (), np.dtype(np.float32))
    missing, start_s = True, 0.0
    try:
        if kind != "image":
            for index, chunk in enumerate(iter_audio_chunks(path)):
                if index == 0:
                    missing, start_s = chunk.missing, chunk.start_s
                audio.append(chunk.samples)  # (n,) float32
    finally:
        audio.close()
    audio.finish(record)
    timings["audio_s"] += time.perf_counter() - start
    return {
        "audio_missing": missing,
        "audio_start_s": start_s,
        "sample_rate": AUDIO_SAMPLE_RATE,
        "n_audio_samples": audio.n_rows,
    }


def preprocess_file(
    path: str | Path,
    cache: FeatureCache,
    video: str | None = None,
    *,
    crops: CropFormat = "jpeg",
    face_model: str | os.PathLike[str] | None = None,
    on_progress: FrameProgress | None = None,
) -> VideoResult:
    """Write the record of one input into ``cache`` atomically (see the module docstring).

    Raises :class:`InputError` for anything wrong with the file (nothing is then written;
    a truncated video fails whole rather than leaving a record that silently stops early).
    """
    from wildaffect.face.model_file import FACE_MODEL_SHA256, resolve_face_model
    from wildaffect.io.align import AUDIO_HOP_S
    from wildaffect.io.media import probe

    if crops not in CROP_FORMATS:
        raise ValueError(f"crops must be one of {CROP_FORMATS}, got {crops!r}")
    path = Path(path)
    video = video or record_names([path])[0]
    started = time.perf_counter()
    timings = {"decode_s": 0.0, "face_s": 0.0, "write_s": 0.0, "audio_s": 0.0}
    source = _source_identity(path)
    info = probe(path)
    has_frames = info.kind != "audio"
    model = resolve_face_model(face_model) if has_frames else None
    timeline = _timeline(info.kind)
    with cache.record_writer(video) as record:
        if has_frames:
            frames = _write_frames(
                path, record, crops, model, info.n_frames_estimate, on_progress, timings
            )
            audio = _write_audio(path, info.kind, record, timings)
        else:  # audio only: the frames are the audio's 20 ms hops
            audio = _write_audio(path, info.kind, record, timings)
            frames = _write_audio_frames(record, audio["n_audio_samples"])
        timings["total_s"] = time.perf_counter() - started
        record.meta.update(
            **source,
            kind=info.kind,
            timeline=timeline,
            fps=info.fps if has_frames else 1.0 / AUDIO_HOP_S,
            **frames,
            **audio,
            crops=crops if has_frames else "none",
            face_model_sha256=FACE_MODEL_SHA256 if model is not None else None,
            frame_arrays=sorted(FRAME_ARRAYS),
            timings={k: round(v, 4) for k, v in timings.items()},
        )
    if on_progress is not None:
        on_progress(frames["n_frames"], frames["n_frames"])
    return VideoResult(
        path, video, "done", info.kind, frames["n_frames"], frames["n_face_frames"],
        audio["n_audio_samples"] / audio["sample_rate"],
    )  # fmt: skip


def validate_preprocessed(cache: FeatureCache, video: str) -> dict[str, Any]:
    """:meth:`FeatureCache.validate_record` plus what a preprocess record promises.

    Face count matches ``has_face``, the audio is as long as meta.json says, and the crops
    are one JPEG per face frame, named by frame (``--crops jpeg``), or a (T, 224, 224, 3)
    array (``--crops npy``). Returns the meta; raises :class:`InputError` otherwise.
    """
    meta = cache.validate_record(video)
    folder = cache.record_dir(video)
    has_face = cache.read_array(video, "has_face")
    if int(has_face.sum()) != meta["n_face_frames"]:
        raise InputError(folder / "has_face.npy", "face count differs from meta.json")
    if meta.get("timeline") == "audio":
        from wildaffect.io.align import wavlm_num_frames

        if len(has_face) != wavlm_num_frames(int(meta["n_audio_samples"])):
            raise InputError(folder / "has_face.npy", "frame count is not the audio's 20 ms hops")
    if len(cache.read_array(video, "audio", mmap=True)) != meta["n_audio_samples"]:
        raise InputError(folder / "audio.npy", "audio length differs from meta.json")
    if meta["crops"] == "jpeg":
        expected = {FRAME_NAME_FORMAT.format(t + 1) for t in np.flatnonzero(has_face)}
        found = {p.name for p in (folder / CROPS).iterdir()} if (folder / CROPS).is_dir() else set()
        if found != expected:
            raise InputError(
                folder / CROPS, f"{len(found)} crops, expected one per face frame ({len(expected)})"
            )
    elif meta["crops"] == "npy":
        shape = cache.read_array(video, CROPS, mmap=True).shape
        if shape[0] != meta["n_frames"]:
            raise InputError(folder / f"{CROPS}.npy",
                             f"{shape[0]} crops for {meta['n_frames']} frames")
    return meta


# --------------------------------------------------------------------------------------------
# The batch.


@dataclass(frozen=True)
class Job:
    index: int
    path: Path
    video: str


class BatchProgress:
    """Receives the batch's events in the main process; this one ignores them."""

    def begin(self, total: int) -> None: ...

    def started(self, job: Job) -> None: ...

    def frames(self, job: Job, done: int, estimate: int | None) -> None: ...

    def finished(self, result: VideoResult) -> None: ...


def _failure_reason(err: BaseException, path: Path) -> str:
    if isinstance(err, InputError) and err.path == path:
        return err.reason
    if isinstance(err, WildaffectError):
        return str(err)
    lines = str(err).strip().splitlines()
    return f"internal error: {type(err).__name__}" + (f": {lines[0]}" if lines else "")


def _run_job(
    job: Job,
    root: str,
    crops: CropFormat,
    face_model: str | None,
    send: Callable[[tuple], None],
) -> VideoResult:
    """Process one job, turning any Exception into a failed result (the batch goes on)."""
    send(("started", job.index))

    def on_progress(done: int, estimate: int | None) -> None:
        send(("frames", job.index, done, estimate))

    try:
        return preprocess_file(
            job.path, FeatureCache(root), job.video, crops=crops, face_model=face_model,
            on_progress=on_progress,
        )  # fmt: skip
    except Exception as err:
        return VideoResult(job.path, job.video, "failed", reason=_failure_reason(err, job.path))


_worker_queue: Any = None


def _init_worker(events: Any) -> None:
    global _worker_queue
    _worker_queue = events


def _run_job_in_worker(
    job: Job, root: str, crops: CropFormat, face_model: str | None
) -> VideoResult:
    return _run_job(job, root, crops, face_model, _worker_queue.put)


def _dispatch(message: tuple, jobs: dict[int, Job], progress: BatchProgress) -> None:
    kind, index, *rest = message
    if kind == "started":
        progress.started(jobs[index])
    else:
        progress.frames(jobs[index], *rest)


def _run_parallel(
    todo: list[Job],
    root: str,
    crops: CropFormat,
    face_model: str | None,
    workers: int,
    progress: BatchProgress,
) -> list[VideoResult]:
    """Jobs in ``workers`` spawned processes; the events come back through one queue."""
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    jobs = {job.index: job for job in todo}
    results: list[VideoResult] = []
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(events,)
    )

    def drain() -> None:
        while True:
            try:
                _dispatch(events.get_nowait(), jobs, progress)
            except queue_module.Empty:
                return

    try:
        futures: dict[Future, Job] = {
            pool.submit(_run_job_in_worker, job, root, crops, face_model): job for job in todo
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                job = futures[future]
                try:
                    result = future.result()
                except BrokenProcessPool as err:
                    reason = f"internal error: a worker process died ({err})"
                    result = VideoResult(job.path, job.video, "failed", reason=reason)
                results.append(result)
                progress.finished(result)
        drain()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def preprocess_batch(
    items: Sequence[str | Path],
    out: str | Path,
    *,
    workers: int = 1,
    crops: CropFormat = "jpeg",
    force: bool = False,
    face_model: str | os.PathLike[str] | None = None,
    progress: BatchProgress | None = None,
) -> BatchReport:
    """Preprocess files, folders and globs into the cache at ``out``; never raises per input.

    Inputs with an up-to-date record are "cached" (``force`` redoes them); the others are
    processed here (``workers=1``) or in a pool of spawned processes, each building its own
    landmarker. Failures, including inputs :func:`collect_inputs` rejected, are results with
    a reason. The manifest is rewritten at the end.
    """
    from wildaffect.face.model_file import resolve_face_model
    from wildaffect.io.inputs import collect_inputs
    from wildaffect.io.media import AUDIO_EXTENSIONS

    if workers < 1:
        raise WildaffectError(f"--workers must be at least 1, got {workers}")
    if crops not in CROP_FORMATS:
        raise WildaffectError(f"--crops must be one of {', '.join(CROP_FORMATS)}, got {crops!r}")
    progress = progress or BatchProgress()
    files, errors = collect_inputs(items)
    cache = FeatureCache(out)
    cache.remove_temporaries()
    report = BatchReport(cache.root)
    by_path: dict[Path, VideoResult] = {}
    todo: list[Job] = []
    for index, (path, video) in enumerate(zip(files, record_names(files), strict=True)):
        if not force and is_up_to_date(cache, video, path, crops):
            meta = cache.read_meta(video)
            by_path[path] = VideoResult(
                path, video, "cached", meta.get("kind"), meta.get("n_frames"),
                meta.get("n_face_frames"), meta.get("n_audio_samples", 0) / meta["sample_rate"],
            )  # fmt: skip
        else:
            todo.append(Job(index, path, video))
    model = None
    if any(job.path.suffix.lower() not in AUDIO_EXTENSIONS for job in todo):
        model = str(resolve_face_model(face_model))  # a missing model fails the run, once
    progress.begin(len(files) + len(errors))
    for result in by_path.values():
        progress.finished(result)
    root = str(cache.root)
    if workers == 1 or len(todo) <= 1:
        jobs = {job.index: job for job in todo}
        for job in todo:
            result = _run_job(
                job, root, crops, model, lambda message: _dispatch(message, jobs, progress)
            )
            by_path[job.path] = result
            progress.finished(result)
    else:
        for result in _run_parallel(todo, root, crops, model, workers, progress):
            by_path[result.path] = result
    report.results = [by_path[path] for path in files]
    for err in errors:
        failed = VideoResult(err.path, None, "failed", reason=err.reason)
        report.results.append(failed)
        progress.finished(failed)
    cache.write_manifest(
        extra={
            "preprocess": {
                "crops": crops,
                "inputs": len(report.results),
                "failed": [{"path": str(r.path), "reason": r.reason} for r in report.failures],
            }
        }
    )
    return report


__all__ = [
    "CROP_FORMATS",
    "FRAME_ARRAYS",
    "BatchProgress",
    "BatchReport",
    "Job",
    "VideoResult",
    "is_up_to_date",
    "preprocess_batch",
    "preprocess_file",
    "record_names",
    "validate_preprocessed",
]
