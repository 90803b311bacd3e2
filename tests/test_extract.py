"""``wildaffect extract`` on records preprocessed from the real media fixtures.

Every stored array is checked against a slow reference computed here from the record (the
offline encoders on the whole record at once, a transformers forward on all crops in one batch,
the per-frame pooling loop of :mod:`wildaffect.io.align`), so chunking, batching, alignment and
the float16 storage cannot drift.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from wildaffect import extract as extract_module
from wildaffect.cli import app
from wildaffect.data.cache import FeatureCache
from wildaffect.encoders.registry import create_encoder
from wildaffect.errors import InputError, WildaffectError
from wildaffect.extract import (
    ENCODER_JSON,
    RANDOM_WEIGHTS,
    FeatureEncoder,
    RunOptions,
    encode_audio,
    extract_batch,
    read_crops,
)
from wildaffect.io.align import (
    frame_audio_ranges_reference,
    pool_to_frames_reference,
    wavlm_num_frames,
)
from wildaffect.labels import FRAME_NAME_FORMAT
from wildaffect.preprocess import preprocess_batch

runner = CliRunner()
CLIP = "1001_DFA_HAP_XX"  # CREMA-D flv: 56 frames, a face on each, 1.9 s of speech
SONG = "1002_DFA_HAP_XX"  # mp3: audio only, one frame per 20 ms
IMAGE = "single_face"  # jpg: T = 1, no audio track
N_CLIP_FRAMES = 56
F16 = {"rtol": 2e-3, "atol": 2e-3}  # float16 storage: 11-bit mantissa


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def preprocessed(fixtures_dir: Path, tmp_path_factory) -> Path:
    """The three fixtures preprocessed once (npy crops); tests work on copies."""
    root = tmp_path_factory.mktemp("preprocessed")
    media = fixtures_dir / "media"
    report = preprocess_batch(
        [media / f"{CLIP}.flv", media / f"{SONG}.mp3", media / f"{IMAGE}.jpg"], root, crops="npy"
    )
    assert report.all_ok, [r.reason for r in report.failures]
    return root


@pytest.fixture
def cache(preprocessed: Path, tmp_path: Path) -> FeatureCache:
    shutil.copytree(preprocessed, tmp_path / "cache")
    return FeatureCache(tmp_path / "cache")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> dict[str, Path]:
    """Tiny random DINOv2-S and WavLM-Base saved as model folders, as `--weights-*` expect."""
    torch.manual_seed(0)
    folders = {}
    for name in ("dinov2-small", "wavlm-base"):
        folder = tmp_path_factory.mktemp(name)
        create_encoder(name, pretrained=False, tiny=True).save_pretrained(folder)
        folders[name] = folder
    return folders


def invoke(*args: str) -> object:
    result = runner.invoke(app, ["extract", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def temporaries(cache: FeatureCache) -> list[Path]:
    return [p for p in (cache.root / "features").rglob("*") if p.name.endswith(".tmp")]


def test_offline_default_aligns_both_modalities_to_the_frames(cache, monkeypatch) -> None:
    monkeypatch.setattr(extract_module, "OFFLINE_CHUNK_FRAMES", 20)  # 56 frames in 3 chunks
    invoke(str(cache.root), "--device", "cpu")
    meta = cache.read_meta(CLIP)
    assert meta["n_frames"] == N_CLIP_FRAMES

    visual = cache.read_features("mediapipe-regions", CLIP)
    audio = cache.read_features("logmel-egemaps", CLIP)
    assert visual.dtype == np.float16 and audio.dtype == np.float16
    assert visual.shape[0] == N_CLIP_FRAMES and visual.ndim == 3  # (T, R, D)
    assert audio.shape[0] == N_CLIP_FRAMES and audio.ndim == 2  # (T, D)
    assert np.isfinite(visual).all() and np.isfinite(audio).all()

    # Reference: the offline encoders on the whole record at once, then the per-frame loop.
    arrays = cache.read_arrays(CLIP)
    regions = create_encoder("mediapipe-regions").encode(
        arrays["landmarks68"], arrays["blendshapes"], arrays["pose"], arrays["crops"],
        arrays["has_face"],
    )  # fmt: skip
    np.testing.assert_array_equal(visual, regions.astype(np.float16))
    raw = create_encoder("logmel-egemaps").encode(arrays["audio"])  # (Na, D) at 20 ms
    assert len(raw) == wavlm_num_frames(len(arrays["audio"]))
    ranges = frame_audio_ranges_reference(
        arrays["frame_times"], len(raw), audio_start_s=meta["audio_start_s"]
    )
    assert meta["audio_start_s"] != 0  # the shift is exercised
    expected = pool_to_frames_reference(raw, ranges)
    np.testing.assert_allclose(audio.astype(np.float32), expected, **F16)

    info = json.loads((cache.root / "features" / "mediapipe-regions" / ENCODER_JSON).read_text())
    assert info["dims"] == list(visual.shape[1:]) and info["modality"] == "visual"
    assert info["storage_dtype"] == "float16" and info["weights"].startswith("none")
    manifest = json.loads((cache.root / "manifest.json").read_text())
    assert CLIP in manifest["features"]["mediapipe-regions"]
    assert "preprocess" in manifest and manifest["extract"]["failed"] == []


def test_image_and_audio_only_records(cache) -> None:
    invoke(str(cache.root), "--device", "cpu")
    # The image: one frame of region tokens, and zero audio (it has no audio track).
    assert cache.read_features("mediapipe-regions", IMAGE).shape[0] == 1
    assert np.abs(cache.read_features("mediapipe-regions", IMAGE)).sum() > 0
    image_audio = cache.read_features("logmel-egemaps", IMAGE)
    assert image_audio.shape == (1, 180) and not image_audio.any()
    # The mp3 is on the 20 ms timeline: frame k holds exactly the k-th 20 ms audio feature,
    # and its (no-face) frames get zero visual tokens.
    samples = cache.read_array(SONG, "audio")
    n_frames = wavlm_num_frames(len(samples))
    assert cache.read_meta(SONG)["n_frames"] == n_frames > 90
    audio = cache.read_features("logmel-egemaps", SONG)
    expected = create_encoder("logmel-egemaps").encode(samples)  # (Na, 180) at 20 ms
    assert audio.shape == expected.shape == (n_frames, 180)
    np.testing.assert_allclose(audio.astype(np.float32), expected, **F16)
    assert not np.allclose(expected[1:], expected[:-1])  # so a shift by one frame would fail
    visual = cache.read_features("mediapipe-regions", SONG)
    assert visual.shape[0] == n_frames and not visual.any()
    assert not cache.has_features("logmel-egemaps@20ms", SONG)


def test_transformers_encoders_from_weight_folders_fp32_and_bf16(cache, tiny_weights) -> None:
    args = [
        str(cache.root), "--visual", "dinov2-small", "--weights-visual",
        str(tiny_weights["dinov2-small"]), "--audio", "wavlm-base", "--weights-audio",
        str(tiny_weights["wavlm-base"]), "--batch-size", "8", "--device", "cpu",
    ]  # fmt: skip
    invoke(*args)
    grid = cache.read_features("dinov2-small", CLIP)
    audio = cache.read_features("wavlm-base", CLIP)
    assert grid.shape == (N_CLIP_FRAMES, 16, 16, 32) and grid.dtype == np.float16
    assert audio.shape == (N_CLIP_FRAMES, 32) and np.isfinite(audio).all()
    assert cache.read_features("dinov2-small", IMAGE).shape == (1, 16, 16, 32)
    song = cache.read_array(SONG, "audio")
    assert cache.read_features("wavlm-base", SONG).shape == (wavlm_num_frames(len(song)), 32)

    # Reference: one forward over all 56 crops; WavLM on the whole waveform, pooled by the loop.
    arrays = cache.read_arrays(CLIP)
    visual_model = create_encoder("dinov2-small", weights=tiny_weights["dinov2-small"])
    with torch.inference_mode():
        expected = visual_model(visual_model.preprocess(arrays["crops"])).patch_grid.numpy()
    np.testing.assert_allclose(grid.astype(np.float32), expected, **F16)
    audio_model = create_encoder("wavlm-base", weights=tiny_weights["wavlm-base"])
    with torch.inference_mode():
        raw = audio_model(torch.from_numpy(arrays["audio"])[None]).features[0].numpy()
    meta = cache.read_meta(CLIP)
    ranges = frame_audio_ranges_reference(
        arrays["frame_times"], len(raw), audio_start_s=meta["audio_start_s"]
    )
    np.testing.assert_allclose(
        audio.astype(np.float32), pool_to_frames_reference(raw, ranges), **F16
    )

    # bf16 onto fp32 features is refused (mixed precisions in one folder), --force redoes them.
    result = runner.invoke(app, ["extract", *args, "--dtype", "bf16"])
    assert result.exit_code == 1 and isinstance(result.exception, WildaffectError)
    assert "compute_dtype" in str(result.exception)
    fp32 = {
        enc: np.array(cache.read_features(enc, CLIP), np.float32)
        for enc in ("dinov2-small", "wavlm-base")
    }
    invoke(*args, "--dtype", "bf16", "--force", "--videos", CLIP)
    for enc, reference in fp32.items():
        bf16 = cache.read_features(enc, CLIP).astype(np.float32)
        relative = np.linalg.norm(bf16 - reference) / np.linalg.norm(reference)
        assert 0 < relative < 1e-2, (enc, relative)
        info = json.loads((cache.root / "features" / enc / ENCODER_JSON).read_text())
        assert info["compute_dtype"] == "bf16"


def test_rerun_skips_and_force_rewrites(cache) -> None:
    args = [str(cache.root), "--audio", "none", "--device", "cpu"]
    invoke(*args)
    paths = [cache.feature_path("mediapipe-regions", v) for v in (CLIP, IMAGE)]
    before = [p.stat().st_mtime_ns for p in paths]
    report = extract_batch(cache.root, audio=None, device="cpu")
    assert [r.video for r in report.results] == [CLIP, SONG, IMAGE]
    assert [r.status for r in report.results] == ["cached"] * 3  # the mp3's zero tokens too
    assert [p.stat().st_mtime_ns for p in paths] == before
    assert cache.encoders() == ["mediapipe-regions"]
    invoke(*args, "--force", "--videos", CLIP)
    after = [p.stat().st_mtime_ns for p in paths]
    assert after[0] > before[0] and after[1] == before[1]


def test_an_encoder_failing_midway_leaves_no_partial_file(cache, monkeypatch) -> None:
    shutil.copytree(cache.record_dir(CLIP), cache.root / "records" / "b_second")
    torch.manual_seed(0)
    model = create_encoder("dinov2-small", pretrained=False, tiny=True)
    encoder = FeatureEncoder("dinov2-small", "visual", model, RANDOM_WEIGHTS, offline=False)
    forward = model.forward
    calls = {"n": 0}
    batches_per_video = -(-N_CLIP_FRAMES // 16)

    def failing_forward(pixels):
        calls["n"] += 1  # 1 probe, 4 batches of the first video, then 2 of the second
        if calls["n"] == 1 + batches_per_video + 2:
            raise RuntimeError("boom")
        return forward(pixels)

    monkeypatch.setattr(model, "forward", failing_forward)
    report = extract_batch(
        cache.root,
        visual=encoder,
        audio=None,
        batch_size=16,
        device="cpu",
        videos=[CLIP, "b_second"],
    )
    assert [r.status for r in report.results] == ["done", "failed"]
    assert "dinov2-small failed: RuntimeError: boom" in report.failures[0].reason
    first = cache.read_features("dinov2-small", CLIP, mmap=False)
    assert first.shape == (N_CLIP_FRAMES, 16, 16, 32) and np.abs(first).max() > 0
    assert not cache.has_features("dinov2-small", "b_second")
    assert temporaries(cache) == []


def test_broken_records_are_listed_and_the_others_finish(cache) -> None:
    shutil.copytree(cache.record_dir(CLIP), cache.root / "records" / "truncated")
    landmarks = cache.record_dir("truncated") / "landmarks68.npy"
    landmarks.write_bytes(landmarks.read_bytes()[:1000])
    result = runner.invoke(app, ["extract", str(cache.root), "--audio", "none", "--device", "cpu"])
    assert result.exit_code == 1
    assert "1 of 4 records failed" in result.output
    assert "truncated" in result.output and "landmarks68.npy" in result.output
    assert cache.has_features("mediapipe-regions", CLIP)
    assert not cache.has_features("mediapipe-regions", "truncated")


def test_jpeg_crops_are_read_per_face_frame(cache) -> None:
    """A ``--crops jpeg`` record (made here from the npy one) reads the same crops back."""
    crops = cache.read_array(CLIP, "crops")
    folder = cache.record_dir(CLIP)
    (folder / "crops").mkdir()
    has_face = cache.read_array(CLIP, "has_face")
    for t in np.flatnonzero(has_face):
        bgr = cv2.cvtColor(crops[t], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / "crops" / FRAME_NAME_FORMAT.format(t + 1)), bgr,
                    [cv2.IMWRITE_JPEG_QUALITY, 100])  # fmt: skip
    (folder / "crops.npy").unlink()
    meta = cache.read_meta(CLIP)
    meta["crops"] = "jpeg"
    meta["arrays"].remove("crops")
    del meta["shapes"]["crops"]
    (folder / "meta.json").write_text(json.dumps(meta))
    frames = np.array([0, 5, 55])
    read = read_crops(cache, CLIP, meta, frames)
    assert read.shape == (3, 224, 224, 3) and read.dtype == np.uint8
    assert np.abs(read.astype(int) - crops[frames]).mean() < 2
    (folder / "crops" / FRAME_NAME_FORMAT.format(6)).unlink()
    with pytest.raises(InputError, match="00006.jpg: face crop missing"):
        read_crops(cache, CLIP, meta, frames)
    report = extract_batch(cache.root, audio=None, device="cpu", videos=[CLIP])  # validated first
    assert "55 crops, expected one per face frame (56)" in report.failures[0].reason


def test_wavlm_windows_give_the_whole_file_frame_count(tiny_weights) -> None:
    model = create_encoder("wavlm-base", weights=tiny_weights["wavlm-base"])
    encoder = FeatureEncoder("wavlm-base", "audio", model, "tiny", offline=False)
    options = RunOptions(audio_window_s=0.1)  # 1600 samples = 5 hops per window
    rng = np.random.default_rng(0)
    for n in (399, 4800 + 390, 4800 + 79):  # too short; last window remainder < 400, < 80
        out = encode_audio(rng.standard_normal(n).astype(np.float32) * 0.1, encoder, options)
        assert out.shape == (wavlm_num_frames(n), 32), n


def test_weights_missing_offline_is_one_line_before_any_work(cache, tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty")}
    script = Path(sys.executable).with_name("wildaffect")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "wildaffect.cli"]
    done = subprocess.run(
        [*command, "extract", str(cache.root), "--visual", "dinov2-large"],
        check=False, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "facebook/dinov2-large" in lines[0] and "HF_HUB_OFFLINE" in lines[0]
    assert not (cache.root / "features").exists()
