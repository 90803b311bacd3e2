"""``wildaffect predict`` and ``Predictor`` end to end on real clips.

The model here is the ``default-offline`` architecture with seeded random weights in a
package (the shipped weights are tested in test_default_model.py): these tests check the
pipeline — rows, columns, ranges, streaming, audio-only input, formats, resume, bad inputs —
not what a trained model says.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from wildaffect.cli import app
from wildaffect.derived import AU_BLENDSHAPES, CIRCUMPLEX, au_from_blendshapes, va_from_expression
from wildaffect.face.landmarker import BLENDSHAPE_NAMES
from wildaffect.io.media import iter_frames
from wildaffect.io.submission import read_submission
from wildaffect.labels import AU_NAMES, EXPR_NAMES, VA_NAMES, Task
from wildaffect.predict.batch import read_table
from wildaffect.predict.table import COLUMNS, FACE, GapFiller, build_rows

runner = CliRunner()


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from wildaffect.models.package import save_package
    from wildaffect.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("default-offline", tasks=(Task.EXPR,), losses={"EXPR": "ce"},
                         fusion="concat").eval()
    return save_package(model, tmp_path_factory.mktemp("pkg") / "model",
                        outputs={"AU": "blendshapes-facs", "VA": "circumplex"})


@pytest.fixture(scope="module")
def predictor(package):
    from wildaffect.predict.predictor import Predictor

    return Predictor(package, chunk_frames=256)


@pytest.fixture(scope="module")
def clip_table(predictor, fixtures_dir):
    return predictor.predict(fixtures_dir / "media" / "1001_DFA_HAP_XX.flv")


def test_one_row_per_decoded_frame_with_the_exact_columns(clip_table, fixtures_dir):
    n_decoded = sum(1 for _ in iter_frames(fixtures_dir / "media" / "1001_DFA_HAP_XX.flv"))
    assert list(clip_table.columns) == list(COLUMNS)
    assert len(clip_table) == n_decoded == 56
    assert clip_table["frame"].tolist() == list(range(1, 57))
    assert (clip_table[FACE] == 1).all(), "CREMA-D's frontal face is found in every frame"
    probs = clip_table[list(AU_NAMES) + list(EXPR_NAMES)].to_numpy()
    assert np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()
    np.testing.assert_allclose(clip_table[list(EXPR_NAMES)].sum(axis=1), 1.0, atol=1e-5)
    va = clip_table[list(VA_NAMES)].to_numpy()
    assert (np.abs(va) <= 1).all()
    argmax = np.asarray(EXPR_NAMES)[clip_table[list(EXPR_NAMES)].to_numpy().argmax(axis=1)]
    assert (clip_table["expression"].to_numpy() == argmax).all()


def test_chunked_streaming_equals_one_pass(package, clip_table, fixtures_dir):
    from wildaffect.predict.predictor import Predictor

    chunked = Predictor(package, chunk_frames=7).predict(
        fixtures_dir / "media" / "1001_DFA_HAP_XX.flv"
    )
    numeric = [c for c in COLUMNS if c != "expression"]
    np.testing.assert_allclose(chunked[numeric].to_numpy(float),
                               clip_table[numeric].to_numpy(float), atol=1e-5)


def test_audio_only_input_gives_voice_rows_every_20_ms(predictor, fixtures_dir):
    table = predictor.predict(fixtures_dir / "media" / "1002_DFA_HAP_XX.mp3")
    assert list(table.columns) == list(COLUMNS)
    assert len(table) > 100 and (table[FACE] == 0).all()
    np.testing.assert_allclose(np.diff(table["time_s"]), 0.02, atol=1e-9)
    assert table[list(AU_NAMES)].isna().all(axis=None), "no face, no AU"
    assert table[list(EXPR_NAMES) + list(VA_NAMES)].notna().all(axis=None)
    np.testing.assert_allclose(table[list(EXPR_NAMES)].sum(axis=1), 1.0, atol=1e-5)


def test_cli_writes_tables_index_and_reports_bad_inputs(package, fixtures_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(fixtures_dir / "media" / "single_face.jpg", inputs)
    (inputs / "broken.mp4").write_bytes(b"this is not a video")
    (inputs / "empty.wav").write_bytes(b"")
    out = tmp_path / "out"
    args = ["predict", str(inputs), str(tmp_path / "missing.mov"), "--out", str(out),
            "--model", str(package), "--format", "parquet", "--abaw-submission"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    index = pd.read_csv(out / "index.csv")
    status = dict(zip(index["input"].map(lambda p: p.rsplit("/", 1)[-1]), index["status"]))
    assert status == {"single_face.jpg": "done", "broken.mp4": "failed", "empty.wav": "failed",
                      "missing.mov": "failed"}
    errors = index.set_index("status").loc["failed", "error"].tolist()
    assert all(e and "\n" not in e for e in errors)
    assert any("broken.mp4" in e for e in errors) and any("missing.mov" in e for e in errors)
    table = read_table(out / "single_face.parquet")
    assert len(table) == 1 and table[FACE].item() == 1
    meta = json.loads((out / "single_face.meta.json").read_text())
    assert meta["outputs"]["AU"].startswith("blendshapes-facs")
    assert meta["outputs"]["VA"].startswith("circumplex")
    submission = read_submission(out / "abaw_submission" / "EXPR" / "predictions.txt", Task.EXPR)
    assert submission is not None
    # Resume: the finished input is skipped the second time.
    again = runner.invoke(app, args)
    assert "cached" in again.output


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_text_formats_round_trip(package, fixtures_dir, tmp_path, fmt, clip_table):
    result = runner.invoke(app, ["predict", str(fixtures_dir / "media" / "1001_DFA_HAP_XX.flv"),
                                 "--out", str(tmp_path), "--model", str(package),
                                 "--format", fmt, "--chunk-frames", "20"])
    assert result.exit_code == 0, result.output
    table = read_table(tmp_path / f"1001_DFA_HAP_XX.{fmt}")
    numeric = [c for c in COLUMNS if c != "expression"]
    np.testing.assert_allclose(table[numeric].to_numpy(float),
                               clip_table[numeric].to_numpy(float), atol=1e-5)
    assert table["expression"].tolist() == clip_table["expression"].tolist()


# -- pieces on hand-made values ----------------------------------------------------------------


def _rows(face: list[int], start: int = 0) -> pd.DataFrame:
    n = len(face)
    t = np.arange(start, start + n, dtype=float)
    au = np.tile(t[:, None], (1, 12)) / 100
    expr = np.full((n, 8), 1 / 8)
    expr[:, 4] += t / 100
    va = np.stack([t / 100, -t / 100], 1)
    mask = np.asarray(face, bool)[:, None]
    return build_rows(start, t, np.asarray(face, bool), np.where(mask, au, np.nan),
                      np.where(mask, expr, np.nan), np.where(mask, va, np.nan))


def test_gap_filler_interpolates_in_time_and_ignores_chunking():
    face = [0, 0, 1, 0, 0, 0, 1, 1, 0, 0]
    rows = _rows(face)
    whole = GapFiller()
    expected = pd.concat([whole.push(rows), whole.flush()], ignore_index=True)
    # Linear in time across the gap, edge values held outside the face frames.
    np.testing.assert_allclose(expected["AU1"], [0.02, 0.02, 0.02, 0.03, 0.04, 0.05, 0.06,
                                                 0.07, 0.07, 0.07])
    assert expected["expression"].notna().all()
    for cut in ([3], [1, 5], [4, 6, 9]):
        filler, parts, start = GapFiller(), [], 0
        for stop in [*cut, len(face)]:
            parts.append(filler.push(rows.iloc[start:stop].reset_index(drop=True)))
            start = stop
        parts.append(filler.flush())
        got = pd.concat(parts, ignore_index=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_au_from_blendshapes_follows_the_mapping():
    shapes = np.zeros((2, 52))
    index = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}
    shapes[0, index["mouthSmileLeft"]], shapes[0, index["mouthSmileRight"]] = 0.8, 0.6
    shapes[0, index["jawOpen"]], shapes[0, index["mouthClose"]] = 0.5, 0.2
    shapes[1] = np.nan
    au = au_from_blendshapes(shapes)
    assert au.shape == (2, 12) and np.isnan(au[1]).all()
    assert au[0, AU_NAMES.index("AU12")] == pytest.approx(0.7)
    assert au[0, AU_NAMES.index("AU25")] == pytest.approx(0.3)
    assert au[0, AU_NAMES.index("AU26")] == pytest.approx(0.5)
    assert set(AU_BLENDSHAPES) == set(AU_NAMES)


def test_va_from_expression_is_the_expected_class_position():
    probs = np.zeros((2, 8))
    probs[0, EXPR_NAMES.index("Happiness")] = 1.0
    probs[1, [EXPR_NAMES.index("Sadness"), EXPR_NAMES.index("Neutral")]] = 0.5
    va = va_from_expression(probs)
    np.testing.assert_allclose(va[0], CIRCUMPLEX["Happiness"])
    np.testing.assert_allclose(va[1], np.asarray(CIRCUMPLEX["Sadness"]) / 2)


def _write_video(images: list[np.ndarray], samples: np.ndarray | None, out, fps: int = 25):
    """RGB frames (MPEG-4) and optional 16 kHz int16 mono audio (PCM) into ``out``."""
    import av

    with av.open(str(out), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.height, video.width = images[0].shape[:2]
        video.pix_fmt = "yuv420p"
        audio = None
        if samples is not None:
            audio = container.add_stream("pcm_s16le", rate=16_000, layout="mono")
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        for offset in range(0, 0 if samples is None else len(samples), 1024):
            block = samples[offset : offset + 1024]
            frame = av.AudioFrame.from_ndarray(block[None], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16_000, offset
            container.mux(audio.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            container.mux(audio.encode(None))
    return out


def _faceless_video(source, out):
    """Black frames at 25 fps with ``source``'s voice: a video in which no face is found."""
    from wildaffect.io.media import read_audio

    samples = (read_audio(source).samples * 32767).astype(np.int16)  # (N,) 16 kHz
    black = [np.zeros((120, 160, 3), np.uint8)] * (len(samples) * 25 // 16_000)
    return _write_video(black, samples, out)


def test_a_video_without_any_face_is_predicted_from_its_voice(package, fixtures_dir, tmp_path):
    video = _faceless_video(fixtures_dir / "media" / "1002_DFA_HAP_XX.mp3", tmp_path / "dark.mkv")
    result = runner.invoke(app, ["predict", str(video), "--out", str(tmp_path / "out"),
                                 "--model", str(package)])
    assert result.exit_code == 0, result.output
    table = read_table(tmp_path / "out" / "dark.csv")
    np.testing.assert_allclose(np.diff(table["time_s"]), 0.02, atol=1e-9)
    assert (table[FACE] == 0).all() and table[list(EXPR_NAMES)].notna().all(axis=None)
    meta = json.loads((tmp_path / "out" / "dark.meta.json").read_text())
    assert meta["audio_only"] and "voice" in meta["notes"][-1]


def test_a_face_appearing_mid_clip_leaves_empty_rows_or_interpolated_ones(package, fixtures_dir,
                                                                         tmp_path):
    from wildaffect.predict.predictor import Predictor

    images = [f.image for f in iter_frames(fixtures_dir / "media" / "1001_DFA_HAP_XX.flv")][:20]
    video = _write_video([np.zeros_like(images[0])] * 10 + images, None, tmp_path / "late.mkv")
    plain = Predictor(package, chunk_frames=8).predict(video)
    filled = Predictor(package, chunk_frames=8, interpolate=True).predict(video)
    assert len(plain) == len(filled) == 30
    assert plain[FACE].tolist() == [0] * 10 + [1] * 20
    assert plain.loc[:9, list(AU_NAMES) + list(EXPR_NAMES)].isna().all(axis=None)
    assert plain.loc[:9, "expression"].isna().all()
    # Before the first face, --interpolate holds the first face frame's values.
    first = plain.loc[10, list(EXPR_NAMES) + list(AU_NAMES)].to_numpy(float)
    for row in range(10):
        np.testing.assert_allclose(filled.loc[row, list(EXPR_NAMES) + list(AU_NAMES)].to_numpy(float), first)
    pd.testing.assert_frame_equal(filled.loc[10:], plain.loc[10:])


def test_a_bidirectional_model_runs_once_over_the_whole_input(fixtures_dir, tmp_path):
    from wildaffect.models.package import save_package
    from wildaffect.models.registry import create_model
    from wildaffect.predict.predictor import Predictor

    torch.manual_seed(1)
    model = create_model("default-offline", tasks=(Task.EXPR, Task.AU), fusion="concat",
                         losses={"EXPR": "ce", "AU": "asl"}, bidirectional=True).eval()
    assert not model.config.streamable
    package = save_package(model, tmp_path / "bi")
    clip = fixtures_dir / "media" / "1001_DFA_HAP_XX.flv"
    small, large = (Predictor(package, chunk_frames=n).predict(clip) for n in (9, 500))
    numeric = [c for c in COLUMNS if c != "expression"]
    np.testing.assert_allclose(small[numeric].to_numpy(float), large[numeric].to_numpy(float),
                               atol=1e-5)
    assert small[list(AU_NAMES)].notna().all(axis=None), "AU from the model's own head"


def test_audio_features_in_blocks_match_the_whole_file(fixtures_dir, monkeypatch):
    from wildaffect.extract import RunOptions, encode_audio, load_encoder
    from wildaffect.io.media import read_audio
    from wildaffect.predict import audio as audio_module

    monkeypatch.setattr(audio_module, "BLOCK_FRAMES", 40)  # several blocks in a 2.6 s clip
    path = fixtures_dir / "media" / "1002_DFA_HAP_XX.mp3"
    encoder, options = load_encoder("logmel-egemaps", "audio"), RunOptions()
    whole = encode_audio(read_audio(path).samples, encoder, options)  # (Na, D)
    stream = audio_module.AudioFeatureStream(path, encoder, options)
    pieces, start = [], 0
    for size in (7, 33, 40, 1, 90, 500):
        pieces.append(stream.features(start, start + size))
        start += len(pieces[-1])
    streamed = np.concatenate(pieces)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-3)
    assert len(stream.features(start, start + 10)) == 0, "past the end: nothing"


def test_a_face_only_model_hands_audio_only_input_to_its_voice_companion(package, fixtures_dir,
                                                                        tmp_path):
    from wildaffect.models.package import save_package
    from wildaffect.models.registry import create_model
    from wildaffect.predict.predictor import InputSummary, Predictor

    torch.manual_seed(1)
    face_only = create_model("default-offline", tasks=(Task.EXPR,), losses={"EXPR": "ce"},
                             d_audio=0).eval()
    folder = save_package(face_only, tmp_path / "face-only", voice_model=str(package))
    speech = fixtures_dir / "media" / "1002_DFA_HAP_XX.mp3"
    summary = InputSummary()
    predictor = Predictor(folder)
    assert not predictor.config.has_audio and predictor.hears_voice
    table = pd.concat([c.rows for c in predictor.iter_chunks(speech, summary)], ignore_index=True)
    assert summary.audio_only and "companion" in summary.notes[-1]
    direct = Predictor(package).predict(speech)
    np.testing.assert_allclose(table[list(EXPR_NAMES)].to_numpy(float),
                               direct[list(EXPR_NAMES)].to_numpy(float), atol=1e-6)


def test_no_audio_predicts_from_the_face_alone(package, clip_table, fixtures_dir, tmp_path):
    clip = fixtures_dir / "media" / "1001_DFA_HAP_XX.flv"
    speech = fixtures_dir / "media" / "1002_DFA_HAP_XX.mp3"
    result = runner.invoke(app, ["predict", str(clip), str(speech), "--out", str(tmp_path),
                                 "--model", str(package), "--no-audio"])
    assert result.exit_code == 1, result.output  # the audio file cannot be predicted
    face_only = read_table(tmp_path / f"{clip.stem}.csv")
    assert len(face_only) == len(clip_table) and (face_only[FACE] == 1).all()
    gap = np.abs(face_only[list(EXPR_NAMES)].to_numpy(float)
                 - clip_table[list(EXPR_NAMES)].to_numpy(float))
    assert gap.max() > 1e-4, "the tiny model's output must depend on the audio it was not given"
    meta = json.loads((tmp_path / f"{clip.stem}.meta.json").read_text())
    assert meta["use_audio"] is False and "--no-audio" in meta["notes"][-1]
    index = pd.read_csv(tmp_path / "index.csv")
    failed = index[index["status"] == "failed"]
    assert len(failed) == 1 and "audio is off" in failed["error"].iloc[0]


def test_audio_ending_before_the_video_streams_in_chunks(package, fixtures_dir):
    """GRID's sound track ends before its last video frame: the chunks after the first audio
    block must still know the audio's true length (a released-sample count once overstated
    it and the last chunk failed)."""
    from wildaffect.extract import RunOptions, load_encoder
    from wildaffect.io.align import wavlm_num_frames
    from wildaffect.io.media import read_audio
    from wildaffect.predict.audio import AudioFeatureStream
    from wildaffect.predict.predictor import Predictor

    clip = fixtures_dir / "media" / "sbwe5n.mpg"
    stream = AudioFeatureStream(clip, load_encoder("logmel-egemaps", "audio"), RunOptions())
    stream.features(0, 10)  # encodes the first block, reading the whole short file
    assert stream.total_frames() == wavlm_num_frames(len(read_audio(clip).samples))
    one_pass = Predictor(package, chunk_frames=256).predict(clip)
    chunked = Predictor(package, chunk_frames=16).predict(clip)
    assert len(chunked) == len(one_pass) == 75
    numeric = [c for c in COLUMNS if c != "expression"]
    np.testing.assert_allclose(chunked[numeric].to_numpy(float),
                               one_pass[numeric].to_numpy(float), atol=1e-5)
