"""The on-disk cache that ``preprocess``, ``extract``, ``synth`` and training share.

Layout (one folder per video, so a killed run never leaves a half-written record)::

    CACHE/
      manifest.json                   what is in the cache (rewritten atomically; the folders
                                      below are the truth, the manifest is a summary)
      records/<video>/meta.json       source, fps, frame count, audio flags, versions, ...
      records/<video>/<array>.npy     frame_times (T,), has_face (T,), landmarks68 (T, 68, 2), ...
                                      crops (T, 224, 224, 3) uint8, audio (N,) float32
      features/<encoder>/<video>.npy  float16, first axis = the video's frames

A record is written into a hidden temporary folder beside its final place and renamed in
one step; ``meta.json`` is written last inside it, so a record folder without it cannot exist.
Arrays are plain ``.npy`` files so that large ones (crops, audio) can be memory-mapped.
:meth:`FeatureCache.record_writer` lets a producer fill the temporary folder piece by piece
(e.g. JPEG crops as frames stream by); hidden ``.<video>.*.tmp`` folders left by a killed
run are what :meth:`FeatureCache.remove_temporaries` clears at the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wildaffect import __version__
from wildaffect.errors import InputError, WildaffectError
from wildaffect.io.atomic import atomic_write_bytes, atomic_write_text

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
META = "meta.json"
RECORDS = "records"
FEATURES = "features"
FEATURE_DTYPE = np.float16
#: Suffixes of the hidden folders a record passes through (``.<video>.<random>.tmp`` while it
#: is written, ``.<video>.old`` while it replaces an older one).
TMP_SUFFIX = ".tmp"
OLD_SUFFIX = ".old"


class RecordWriter:
    """The record being built by :meth:`FeatureCache.record_writer`.

    ``folder`` is the hidden temporary folder (write extra files there, e.g. ``crops/``);
    ``meta`` is merged into meta.json; ``shapes`` lists the arrays saved so far.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta: dict[str, Any] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}

    def save_array(self, name: str, array: np.ndarray) -> Path:
        _check_name(name)
        array = np.asarray(array)
        path = self.folder / f"{name}.npy"
        np.save(path, array, allow_pickle=False)
        self.shapes[name] = tuple(array.shape)
        return path

    def add_array_file(self, name: str) -> Path:
        """Register ``<name>.npy`` already written into ``folder`` (e.g. through a memmap)."""
        _check_name(name)
        path = self.folder / f"{name}.npy"
        self.shapes[name] = tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
        return path


class FeatureCache:
    """Read and write one cache folder (see the module docstring for the layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- per-video records --------------------------------------------------------------------

    def record_dir(self, video: str) -> Path:
        _check_name(video)
        return self.root / RECORDS / video

    def has_record(self, video: str) -> bool:
        return (self.record_dir(video) / META).is_file()

    def videos(self) -> list[str]:
        """Names of the complete records, sorted."""
        records = self.root / RECORDS
        if not records.is_dir():
            return []
        return sorted(p.name for p in records.iterdir() if (p / META).is_file())

    def write_record(
        self, video: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> Path:
        """Write a whole record atomically, replacing an older one of the same name."""
        with self.record_writer(video) as record:
            for name, array in arrays.items():
                record.save_array(name, array)
            record.meta.update(meta)
        return self.record_dir(video)

    @contextlib.contextmanager
    def record_writer(self, video: str) -> Iterator[RecordWriter]:
        """Build a record in a hidden temporary folder; publish it only if the block succeeds.

        Inside the block, save arrays with :meth:`RecordWriter.save_array` (or write any
        other file into ``record.folder``) and fill ``record.meta``. On a normal exit
        ``meta.json`` is written last and the folder is renamed into place in one step,
        replacing an older record of the same name; on any exception (including
        KeyboardInterrupt) the temporary folder is removed and the old record is left as it was.
        """
        final = self.record_dir(video)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{video}.", suffix=TMP_SUFFIX, dir=final.parent))
        try:
            record = RecordWriter(tmp)
            yield record
            full_meta = {
                "cache_format": CACHE_FORMAT,
                "wildaffect_version": __version__,
                "video": video,
                "arrays": sorted(record.shapes),
                "shapes": {name: list(shape) for name, shape in sorted(record.shapes.items())},
                **record.meta,
            }
            (tmp / META).write_text(json.dumps(full_meta, indent=2, default=_json_default))
            os.chmod(tmp, 0o755)
            if final.exists():  # replace: move the old one aside first, then drop it
                old = final.with_name(f".{video}{OLD_SUFFIX}")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def remove_temporaries(self) -> list[Path]:
        """Delete the hidden folders a killed writer left in ``records/``; return what went.

        Only call it when no other process is writing to this cache (e.g. at the start of a
        ``preprocess`` run, before its workers start).
        """
        records = self.root / RECORDS
        if not records.is_dir():
            return []
        stale = [
            p for p in records.iterdir()
            if p.name.startswith(".") and p.name.endswith((TMP_SUFFIX, OLD_SUFFIX))
        ]  # fmt: skip
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return sorted(stale)

    def validate_record(self, video: str) -> dict[str, Any]:
        """Check a record is whole; return its meta or raise :class:`InputError` saying what is not.

        Every array listed in meta.json must load (memory-mapped, so a short file is caught
        without reading it) with the shape recorded when it was written, and the arrays named
        in ``meta["frame_arrays"]`` must all be ``meta["n_frames"]`` long on their first axis.
        """
        meta = self.read_meta(video)
        shapes = meta.get("shapes", {})
        for name in meta.get("arrays", []):
            array = self.read_array(video, name, mmap=True)
            path = self.record_dir(video) / f"{name}.npy"
            if name in shapes and list(array.shape) != list(shapes[name]):
                raise InputError(
                    path, f"shape {list(array.shape)}, meta.json says {list(shapes[name])}"
                )
        n_frames = meta.get("n_frames")
        for name in meta.get("frame_arrays", []):
            path = self.record_dir(video) / f"{name}.npy"
            if name not in meta.get("arrays", []):
                raise InputError(path, f"frame array {name!r} is missing from the record")
            length = self.read_array(video, name, mmap=True).shape[0]
            if length != n_frames:
                raise InputError(path, f"{length} rows, but the record has {n_frames} frames")
        return meta

    def read_meta(self, video: str) -> dict[str, Any]:
        path = self.record_dir(video) / META
        if not path.is_file():
            raise InputError(path, f"no cached record for video {video!r} in {self.root}")
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(path, f"corrupt record metadata ({err})") from None

    def read_array(self, video: str, name: str, mmap: bool = False) -> np.ndarray:
        path = self.record_dir(video) / f"{name}.npy"
        if not path.is_file():
            raise InputError(path, f"record {video!r} has no array {name!r}")
        return _load(path, mmap)

    def read_arrays(
        self, video: str, names: list[str] | None = None, mmap: bool = False
    ) -> dict[str, np.ndarray]:
        names = names if names is not None else self.read_meta(video)["arrays"]
        return {name: self.read_array(video, name, mmap) for name in names}

    # -- encoder features ---------------------------------------------------------------------

    def feature_path(self, encoder: str, video: str) -> Path:
        _check_name(encoder)
        _check_name(video)
        return self.root / FEATURES / encoder / f"{video}.npy"

    def has_features(self, encoder: str, video: str) -> bool:
        return self.feature_path(encoder, video).is_file()

    def write_features(self, encoder: str, video: str, features: np.ndarray) -> Path:
        """Store ``(T, ...)`` features as float16, atomically."""
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.asarray(features, dtype=FEATURE_DTYPE), allow_pickle=False)
        return atomic_write_bytes(self.feature_path(encoder, video), buffer.getvalue())

    def read_features(self, encoder: str, video: str, mmap: bool = True) -> np.ndarray:
        path = self.feature_path(encoder, video)
        if not path.is_file():
            raise InputError(
                path, f"no {encoder!r} features for video {video!r} (run `wildaffect extract`)"
            )
        return _load(path, mmap)

    def encoders(self) -> list[str]:
        folder = self.root / FEATURES
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    # -- manifest -----------------------------------------------------------------------------

    def write_manifest(self, extra: Mapping[str, Any] | None = None) -> Path:
        """Summarise the complete records and feature sets in ``manifest.json``."""
        videos = {}
        for video in self.videos():
            meta = self.read_meta(video)
            videos[video] = {k: meta.get(k) for k in ("source", "n_frames", "fps")}
        features = {
            enc: sorted(p.stem for p in (self.root / FEATURES / enc).glob("*.npy"))
            for enc in self.encoders()
        }
        manifest = {
            "cache_format": CACHE_FORMAT,
            "wildaffect_version": __version__,
            "videos": videos,
            "features": features,
            **(extra or {}),
        }
        text = json.dumps(manifest, indent=2, default=_json_default)
        return atomic_write_text(self.root / MANIFEST, text)


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise WildaffectError(f"invalid cache entry name {name!r}")


def _load(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(path, f"corrupt cached array ({err})") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
