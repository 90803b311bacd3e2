"""``wildaffect preprocess`` on the real media fixtures: records, bad inputs, resume, kill.

The streamed record is checked against the in-memory references it replaces (``track_faces``
on all frames, ``align_face`` per frame, ``np.save``), so the fast path cannot drift.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from wildaffect.cli import app
from wildaffect.data.cache import FeatureCache
from wildaffect.face.align import align_face
from wildaffect.face.tracking import track_faces
from wildaffect.io.media import iter_frames, read_audio
from wildaffect.preprocess import (
    FRAME_ARRAYS,
    _RowFile,
    preprocess_batch,
    record_names,
    validate_preprocessed,
)

runner = CliRunner()
FLV = "1001_DFA_HAP_XX.flv"  # CREMA-D, 56 frames, one face throughout
MP3 = "1002_DFA_HAP_XX.mp3"
JPG = "single_face.jpg"
CODEC2_HEADER = bytes([0xC0, 0xDE, 0xC2, 0, 8, 0, 0])  # a codec this FFmpeg cannot decode


@pytest.fixture(scope="module")
def media(fixtures_dir: Path) -> Path:
    return fixtures_dir / "media"


@pytest.fixture(scope="module")
def done(media: Path, tmp_path_factory) -> tuple[FeatureCache, object]:
    """One sequential batch over a video, an audio file and an image (shared by the tests)."""
    root = tmp_path_factory.mktemp("cache")
    report = preprocess_batch([media / FLV, media / MP3, media / JPG], root, workers=1)
    return FeatureCache(root), report


def test_records_of_video_audio_and_image(done, media: Path) -> None:
    cache, report = done
    assert report.all_ok and [r.status for r in report.results] == ["done"] * 3
    assert cache.videos() == ["1001_DFA_HAP_XX", "1002_DFA_HAP_XX", "single_face"]
    metas = {video: validate_preprocessed(cache, video) for video in cache.videos()}

    flv = cache.read_arrays("1001_DFA_HAP_XX")
    times = np.array([f.time_s for f in iter_frames(media / FLV)])
    assert metas["1001_DFA_HAP_XX"]["n_frames"] == len(times) == 56
    np.testing.assert_array_equal(flv["frame_times"], times)
    assert flv["has_face"].all() and (flv["n_faces_seen"] >= 1).all()
    assert flv["landmarks68"].min() >= 0.0 and flv["landmarks68"].max() <= 1.0
    assert len(list((cache.record_dir("1001_DFA_HAP_XX") / "crops").glob("*.jpg"))) == 56
    assert metas["1001_DFA_HAP_XX"]["kind"] == "video" and metas["1001_DFA_HAP_XX"]["fps"] > 29
    np.testing.assert_array_equal(flv["audio"], read_audio(media / FLV).samples)

    # The mp3 is on the 20 ms timeline: one frame per WavLM hop, none with a face.
    mp3 = cache.read_arrays("1002_DFA_HAP_XX")
    mp3_meta = metas["1002_DFA_HAP_XX"]
    assert (mp3_meta["kind"], mp3_meta["timeline"], mp3_meta["fps"]) == ("audio", "audio", 50.0)
    np.testing.assert_array_equal(mp3["audio"], read_audio(media / MP3).samples)
    assert len(mp3["audio"]) > 16_000 and not mp3_meta["audio_missing"]
    n_frames = (len(mp3["audio"]) - 400) // 320 + 1  # WavLM's frame count, by hand
    assert mp3_meta["n_frames"] == n_frames and mp3_meta["n_face_frames"] == 0
    assert all(mp3[name].shape == (n_frames, *FRAME_ARRAYS[name][0]) for name in FRAME_ARRAYS)
    np.testing.assert_allclose(mp3["frame_times"], 0.02 * np.arange(n_frames), atol=1e-12)
    assert not mp3["has_face"].any() and not mp3["n_faces_seen"].any()
    for name in ("landmarks478", "landmarks68", "blendshapes", "pose", "bbox"):
        assert np.isnan(mp3[name]).all(), name
    assert metas["1001_DFA_HAP_XX"]["timeline"] == metas["single_face"]["timeline"] == "video"

    jpg = cache.read_arrays("single_face")
    assert metas["single_face"]["n_frames"] == 1 and jpg["has_face"].tolist() == [True]
    assert metas["single_face"]["kind"] == "image" and len(jpg["audio"]) == 0
    crop = cv2.imread(str(cache.record_dir("single_face") / "crops" / "00001.jpg"))
    assert crop.shape == (224, 224, 3)


def test_streamed_record_equals_the_in_memory_reference(done, media: Path) -> None:
    """track_faces over all frames held in memory, and align_face per frame, give the same."""
    cache, _ = done
    record = cache.read_arrays("1001_DFA_HAP_XX")
    frames = [(f.time_s, f.image) for f in iter_frames(media / FLV)]
    track = track_faces(frames)
    np.testing.assert_array_equal(record["has_face"], track.has_face)
    np.testing.assert_array_equal(record["n_faces_seen"], track.n_faces_seen)
    for name, ref in [("landmarks478", track.landmarks478), ("landmarks68_px", track.landmarks68),
                      ("blendshapes", track.blendshapes), ("pose", track.pose),
                      ("bbox", track.bbox)]:  # fmt: skip
        np.testing.assert_allclose(record[name], ref, rtol=0, atol=1e-6, err_msg=name)
    t = 20
    aligned = align_face(frames[t][1], track.landmarks68[t])
    np.testing.assert_allclose(record["landmarks68"][t], aligned.landmarks68_norm, atol=1e-6)
    jpeg = cv2.imread(str(cache.record_dir("1001_DFA_HAP_XX") / "crops" / "00021.jpg"))
    error = np.abs(jpeg[..., ::-1].astype(int) - aligned.crop.astype(int)).mean()
    assert error < 3.0  # JPEG quality 95 of the same crop


def test_two_workers_and_npy_crops_give_the_same_record(done, media: Path, tmp_path) -> None:
    cache, _ = done
    report = preprocess_batch([media / FLV, media / JPG], tmp_path, workers=2, crops="npy")
    assert report.all_ok
    other = FeatureCache(tmp_path)
    for video in ("1001_DFA_HAP_XX", "single_face"):
        meta = validate_preprocessed(other, video)
        assert meta["crops"] == "npy" and not (other.record_dir(video) / "crops").exists()
        for name in FRAME_ARRAYS:
            np.testing.assert_array_equal(
                other.read_array(video, name), cache.read_array(video, name), err_msg=name
            )
    crops = other.read_array("1001_DFA_HAP_XX", "crops")
    assert crops.shape == (56, 224, 224, 3) and crops.dtype == np.uint8
    first = next(iter_frames(media / FLV))
    reference = align_face(first.image, other.read_array("1001_DFA_HAP_XX", "landmarks68_px")[0])
    np.testing.assert_array_equal(crops[0], reference.crop)


def test_rerun_is_all_cached_and_rewrites_nothing(done, media: Path) -> None:
    cache, _ = done
    metas = [cache.record_dir(v) / "meta.json" for v in cache.videos()]
    before = [p.stat().st_mtime_ns for p in metas]
    inputs = [str(media / name) for name in (FLV, MP3, JPG)]
    result = runner.invoke(app, ["preprocess", *inputs, "--out", str(cache.root)])
    assert result.exit_code == 0, result.output
    assert result.output.count("cached") == 3 and "done" not in result.output
    assert [p.stat().st_mtime_ns for p in metas] == before


def test_audio_record_of_an_older_cache_is_redone(media: Path, tmp_path) -> None:
    """An audio record from before the 20 ms timeline (no "timeline" key, T = 0) is stale."""
    assert preprocess_batch([media / MP3], tmp_path).all_ok
    cache = FeatureCache(tmp_path)
    video = "1002_DFA_HAP_XX"
    meta_path = cache.record_dir(video) / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["timeline"]
    meta_path.write_text(json.dumps(meta))
    report = preprocess_batch([media / MP3], tmp_path)
    assert [r.status for r in report.results] == ["done"]
    assert cache.read_meta(video)["timeline"] == "audio"
    assert [r.status for r in preprocess_batch([media / MP3], tmp_path).results] == ["cached"]


def test_bad_inputs_fail_one_line_each_and_the_batch_goes_on(media: Path, tmp_path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    flv = (media / FLV).read_bytes()
    (bad / "truncated.flv").write_bytes(flv[: int(len(flv) * 0.3)])
    (bad / "text.mp4").write_text("this is not a video\n")
    (bad / "codec2.wav").write_bytes(CODEC2_HEADER + bytes(1600))
    (bad / "nothing_here").mkdir()
    (bad / "nothing_here" / "notes.txt").write_text("no media\n")
    expected = {
        "empty.mp4": "empty file",
        "truncated.flv": "truncated or corrupt",
        "text.mp4": "not a media file",
        "codec2.wav": "unsupported codec",
        "nothing_here": "folder contains no media files",
        "missing.mp4": "no such file or folder",
    }
    args = [str(bad / name) for name in expected] + [str(media / JPG)]
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["preprocess", *args, "--out", str(cache)])
    assert result.exit_code == 1
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit
    )
    lines = result.output.splitlines()
    for name, reason in expected.items():
        hits = [line for line in lines if line.startswith(f"{bad / name}: ")]
        assert len(hits) == 1 and reason in hits[0], (name, result.output)
    assert f"{len(expected)} of {len(expected) + 1} inputs failed" in result.output
    assert FeatureCache(cache).videos() == ["single_face"]
    validate_preprocessed(FeatureCache(cache), "single_face")
    assert not [p for p in (cache / "records").iterdir() if p.name.startswith(".")]


def test_a_killed_run_resumes_and_never_shows_a_half_record(media: Path, tmp_path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for index, name in enumerate([JPG, FLV, MP3, JPG]):  # the kill lands while the FLV runs
        shutil.copy(media / name, inputs / f"clip{index}{Path(name).suffix}")
    cache = FeatureCache(tmp_path / "cache")
    records = cache.root / "records"
    command = [sys.executable, "-m", "wildaffect.cli", "preprocess", str(inputs),
               "--out", str(cache.root)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (records.is_dir() and any(not p.name.startswith(".") for p in records.iterdir())):
            assert process.poll() is None, "preprocess ended before writing a record"
            assert time.monotonic() < deadline, "no record after 120 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    visible = sorted(p.name for p in records.iterdir() if not p.name.startswith("."))
    assert visible == cache.videos() and 1 <= len(visible) < 4  # nothing half-written shows
    for video in visible:
        validate_preprocessed(cache, video)

    rerun = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert rerun.stdout.count("cached") == len(visible)
    assert cache.videos() == ["clip0", "clip1", "clip2", "clip3"]
    assert sorted(p.name for p in records.iterdir()) == cache.videos()  # temporaries cleared
    for video in cache.videos():
        validate_preprocessed(cache, video)
    assert (cache.root / "manifest.json").is_file()


def test_record_names_disambiguate_colliding_stems(tmp_path) -> None:
    paths = [tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.flv", tmp_path / "other.mp4",
             tmp_path / ".hidden.mp4"]  # fmt: skip
    names = record_names(paths)
    assert names[0].startswith("clip-") and names[1].startswith("clip-")
    assert names[0] != names[1] and len(names[0]) == len("clip-") + 6
    assert names[2:] == ["other", "_hidden"]
    assert record_names(paths[::-1])[::-1] == names  # independent of the argument order


@pytest.mark.parametrize("name", ["landmarks478", "frame_times", "has_face"])
def test_streamed_npy_is_byte_identical_to_np_save(tmp_path, name: str) -> None:
    from wildaffect.data.cache import RecordWriter

    shape, dtype = FRAME_ARRAYS[name]
    rng = np.random.default_rng(0)
    array = (rng.random((7, *shape)) * 3).astype(dtype)
    writer = RecordWriter(tmp_path)
    rows = _RowFile(tmp_path, name, shape, dtype)
    rows.append(array[:3])
    for row in array[3:]:
        rows.append(row)
    rows.finish(writer)
    np.save(tmp_path / "reference.npy", array)
    assert (tmp_path / f"{name}.npy").read_bytes() == (tmp_path / "reference.npy").read_bytes()
    assert writer.shapes[name] == array.shape and not list(tmp_path.glob(".*.raw"))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop")
def test_unreadable_file_is_a_failure_with_its_reason(media: Path) -> None:
    folder = Path(tempfile.mkdtemp())  # pytest's tmp_path parents are closed to other users
    try:
        os.chmod(folder, 0o777)
        locked = folder / "locked.mp3"  # audio: no face model to read (it may sit in ~root)
        shutil.copy(media / MP3, locked)
        os.chmod(locked, 0o000)
        # numpy imports mmap lazily, and the interpreter's stdlib under ~root is closed to nobody
        import mmap  # noqa: F401

        os.seteuid(65534)  # nobody: root would read the file anyway
        try:
            report = preprocess_batch([locked, media / MP3], folder / "cache")
        finally:
            os.seteuid(0)
        (failed,) = report.failures
        assert failed.path == locked and "permission denied" in failed.reason
        assert FeatureCache(folder / "cache").videos() == ["1002_DFA_HAP_XX"]
    finally:
        shutil.rmtree(folder)
