"""``wildaffect predict`` feeds the seed-003 streams to the models that read them, as ``extract``
makes them for training: silero-vad's speech probability (``vad_gate``), behaviour features
(``--behaviour``) and transcript embeddings (``--transcripts``), on real clips.

Models are tiny random builds of the presets that read the streams over the weight-free
encoders; the text encoder is the tiny random BERT of test_streams_train (no download).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_streams_train import D_BEHAVIOUR, D_TEXT, SENTENCES, TINY, tiny_text_encoder
from typer.testing import CliRunner

from wildaffect.cli import app
from wildaffect.io.align import _frame_ends, audio_frame_times
from wildaffect.io.media import iter_frames, read_audio
from wildaffect.labels import VA_NAMES, Task
from wildaffect.predict.batch import read_table
from wildaffect.predict.streams import ABSENT
from wildaffect.predict.table import COLUMNS
from wildaffect.streams.behaviour import read_behaviour
from wildaffect.streams.text import TextEncoder
from wildaffect.streams.transcripts import read_transcript, segments_on_frames
from wildaffect.streams.vad import load_vad, speech_probability, vad_on_frames

GRID, CLIP, SPEECH = "sbwe5n.mpg", "1001_DFA_HAP_XX.flv", "1002_DFA_HAP_XX.mp3"
#: The weight-free encoders' widths: mediapipe-regions tokens (22, 232), logmel-egemaps 180.
ENCODERS = {"visual_encoder": "mediapipe-regions", "visual_input": "regions", "d_visual": 232,
            "visual_frame_shape": (22, 232), "audio_encoder": "logmel-egemaps", "d_audio": 180}
NUMERIC = [c for c in COLUMNS if c != "expression"]
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _package(folder: Path, preset: str, seed: int = 0, **overrides) -> Path:
    from wildaffect.models.package import save_package
    from wildaffect.models.registry import create_model

    torch.manual_seed(seed)
    model = create_model(preset, **{**ENCODERS, **overrides}).eval()
    return save_package(model, folder)


@pytest.fixture(scope="module")
def made(tmp_path_factory, fixtures_dir) -> dict[str, Path]:
    """Packages (streamable default with and without the VAD gate, va-grada-moe, maven), a
    behaviour folder and a transcript folder for the real clips, and the tiny text encoder."""
    root = tmp_path_factory.mktemp("predict-streams")
    small = {"d_model": 32, "d_token": 8, "d_inner": 16, "n_layers": 1, "d_state": 8,
             "dropout": 0.0}  # fmt: skip
    out = {"media": fixtures_dir / "media"}
    for gate in (True, False):  # the same seed: the same weights, gated or not
        out[f"gate-{gate}"] = _package(root / f"gate-{gate}", "default-offline", vad_gate=gate,
                                       tasks=(Task.VA,), losses={"VA": "ccc"}, **small)
    out["moe"] = _package(root / "moe", "va-grada-moe", d_behaviour=D_BEHAVIOUR, **TINY)
    out["maven"] = _package(root / "maven", "maven", d_text=D_TEXT, **TINY)
    behaviour = root / "behaviour"
    behaviour.mkdir()
    rng = np.random.default_rng(0)
    header = ",".join(["time_s", *(f"f{i}" for i in range(D_BEHAVIOUR))])
    rows = "\n".join(",".join(f"{v:.4f}" for v in (t, *rng.normal(size=D_BEHAVIOUR)))
                     for t in 0.51 + 0.2 * np.arange(10))  # 0.41-2.41 s of GRID's 3 s
    (behaviour / "sbwe5n.csv").write_text(f"{header}\n{rows}\n")
    np.save(behaviour / "1001_DFA_HAP_XX.npy", rng.normal(size=(56, D_BEHAVIOUR)))
    transcripts = root / "transcripts"
    transcripts.mkdir()
    (transcripts / "sbwe5n.srt").write_text(f"1\n00:00:00,500 --> 00:00:02,000\n{SENTENCES[0]}\n")
    (transcripts / "1001_DFA_HAP_XX.vtt").write_text(
        f"WEBVTT\n\n00:00.100 --> 00:00.900\n{SENTENCES[1]}\n\n00:01.000 --> 00:01.600\n"
        f"{SENTENCES[2]}\n"
    )
    out.update(root=root, behaviour=behaviour, transcripts=transcripts,
               text=tiny_text_encoder(root / "text-encoder"))  # fmt: skip
    return out


def _recorded(predictor) -> list[dict[str, np.ndarray]]:
    """Record the inputs of every model step of ``predictor`` (a list filled as it runs)."""
    seen: list[dict[str, np.ndarray]] = []
    forward = predictor._forward

    def record(inputs, state):
        seen.append({k: np.array(v) for k, v in inputs.items()})
        return forward(inputs, state)

    predictor._forward = record
    return seen


def _joined(seen: list[dict[str, np.ndarray]], key: str) -> np.ndarray:
    return np.concatenate([s[key] for s in seen])


def _frame_times(path: Path) -> np.ndarray:
    return np.asarray([f.time_s for f in iter_frames(path)], np.float64)


# -- VAD ----------------------------------------------------------------------------------------


def test_a_vad_gated_model_gets_extracts_vad_chunked_or_not(made) -> None:
    from wildaffect.predict.predictor import Predictor

    clip = made["media"] / GRID  # silence, then speech from 0.5 s to 2.0 s
    one_pass = Predictor(made["gate-True"], chunk_frames=256)
    assert one_pass.config.streamable and one_pass.streams.reads == ("vad",)
    seen = _recorded(one_pass)
    table = one_pass.predict(clip)
    audio = read_audio(clip)
    times = _frame_times(clip)
    expected = vad_on_frames(speech_probability(load_vad(), audio.samples), times,
                             audio.start_s)  # (T,) what extract stores  # fmt: skip
    np.testing.assert_allclose(_joined(seen, "vad"), expected, atol=1e-6)
    assert expected[:5].max() < 0.1 and expected[30] > 0.9
    chunked = Predictor(made["gate-True"], chunk_frames=7)
    seen_chunked = _recorded(chunked)
    rows = chunked.predict(clip)
    assert len(seen_chunked) == 11  # 75 frames in chunks of 7, the AG-SSM state carried
    np.testing.assert_allclose(_joined(seen_chunked, "vad"), expected, atol=1e-6)
    np.testing.assert_allclose(rows[NUMERIC].to_numpy(float), table[NUMERIC].to_numpy(float),
                               atol=1e-5)  # fmt: skip
    ungated = Predictor(made["gate-False"], chunk_frames=256)
    assert "vad" not in _recorded(ungated) and ungated.streams.reads == ()
    plain = ungated.predict(clip)
    gap = np.abs(plain[list(VA_NAMES)].to_numpy(float) - table[list(VA_NAMES)].to_numpy(float))
    assert gap.max() > 1e-4, "the gate must change what the model says"


def test_audio_only_input_gets_the_vad_on_its_20_ms_rows(made) -> None:
    from wildaffect.predict.predictor import Predictor

    speech = made["media"] / SPEECH
    samples = read_audio(speech).samples
    times = audio_frame_times(len(samples))  # (Na,) the 20 ms rows
    expected = vad_on_frames(speech_probability(load_vad(), samples), times)
    tables = {}
    for size in (13, 500):
        predictor = Predictor(made["gate-True"], chunk_frames=size)
        seen = _recorded(predictor)
        tables[size] = predictor.predict(speech)
        np.testing.assert_allclose(_joined(seen, "vad"), expected, atol=1e-6)
    assert len(tables[13]) == len(times) and expected.max() > 0.9 > 0.1 > expected.min()
    np.testing.assert_allclose(tables[13][NUMERIC].to_numpy(float),
                               tables[500][NUMERIC].to_numpy(float), atol=1e-5)  # fmt: skip
    ungated = Predictor(made["gate-False"], chunk_frames=500).predict(speech)
    assert not np.allclose(ungated[list(VA_NAMES)].to_numpy(float),
                           tables[500][list(VA_NAMES)].to_numpy(float), atol=1e-4)  # fmt: skip


def test_a_video_without_sound_gives_a_vad_model_zeros(made, tmp_path) -> None:
    """As extract stores for a record without an audio track."""
    from test_predict import _write_video

    from wildaffect.predict.predictor import Predictor

    images = [f.image for f in iter_frames(made["media"] / CLIP)][:12]
    mute = _write_video(images, None, tmp_path / "mute.mkv")
    predictor = Predictor(made["gate-True"], chunk_frames=5)
    seen = _recorded(predictor)
    table = predictor.predict(mute)
    assert len(table) == 12 and "audio" not in seen[0]
    np.testing.assert_array_equal(_joined(seen, "vad"), np.zeros(12, np.float32))


# -- behaviour and text -------------------------------------------------------------------------


@pytest.mark.parametrize("video", [GRID, CLIP])  # a .csv in time, a .npy per frame
def test_behaviour_features_reach_the_model_as_extract_imports_them(made, video) -> None:
    from wildaffect.predict.predictor import Predictor

    clip = made["media"] / video
    given = Predictor(made["moe"], behaviour_dir=made["behaviour"], chunk_frames=9)
    seen = _recorded(given)
    table = given.predict(clip)
    assert len(seen) == 1, "moe fusion is not streamable: one pass over every chunk's inputs"
    stem = Path(video).stem
    file = next(made["behaviour"].glob(f"{stem}.*"))
    expected = read_behaviour(file, _frame_times(clip), D_BEHAVIOUR)  # (T, Db), NaN rows
    present = np.isfinite(expected).all(axis=1)
    np.testing.assert_array_equal(_joined(seen, "behaviour_mask"), present)
    np.testing.assert_allclose(_joined(seen, "behaviour")[present], expected[present], atol=1e-6)
    assert present.any() and (video == CLIP) == present.all()
    one_pass = Predictor(made["moe"], behaviour_dir=made["behaviour"], chunk_frames=256)
    np.testing.assert_allclose(one_pass.predict(clip)[NUMERIC].to_numpy(float),
                               table[NUMERIC].to_numpy(float), atol=1e-5)  # fmt: skip
    with pytest.warns(UserWarning, match="behaviour stream"):
        absent = Predictor(made["moe"], chunk_frames=9)
    assert "behaviour" not in _recorded(absent)
    gap = np.abs(absent.predict(clip)[list(VA_NAMES)].to_numpy(float)
                 - table[list(VA_NAMES)].to_numpy(float))  # fmt: skip
    assert gap.max() > 1e-4, "the behaviour features must change what the model says"


def test_transcripts_reach_maven_as_extract_embeds_them(made) -> None:
    from wildaffect.predict.predictor import Predictor

    clip = made["media"] / CLIP
    given = Predictor(made["maven"], transcripts_dir=made["transcripts"],
                      text_encoder=str(made["text"]), chunk_frames=5)  # fmt: skip
    seen = _recorded(given)
    table = given.predict(clip)
    segments = read_transcript(made["transcripts"] / "1001_DFA_HAP_XX.vtt")
    embeddings = TextEncoder(str(made["text"])).embed([s.text for s in segments])
    expected = segments_on_frames(segments, embeddings, _frame_times(clip))  # (T, Dt)
    said = np.isfinite(expected).all(axis=1)
    np.testing.assert_array_equal(_joined(seen, "text_mask"), said)
    np.testing.assert_allclose(_joined(seen, "text")[said], expected[said], atol=1e-6)
    assert said.any() and not said.all()
    one_pass = Predictor(made["maven"], transcripts_dir=made["transcripts"],
                         text_encoder=str(made["text"]), chunk_frames=256)  # fmt: skip
    np.testing.assert_allclose(one_pass.predict(clip)[NUMERIC].to_numpy(float),
                               table[NUMERIC].to_numpy(float), atol=1e-5)  # fmt: skip
    with pytest.warns(UserWarning, match="text stream"):
        absent = Predictor(made["maven"], chunk_frames=5).predict(clip)
    assert not np.allclose(absent[list(VA_NAMES)].to_numpy(float),
                           table[list(VA_NAMES)].to_numpy(float), atol=1e-4)  # fmt: skip


def test_a_text_encoder_of_another_width_is_one_line(made) -> None:
    from wildaffect.errors import WildaffectError
    from wildaffect.predict.predictor import Predictor

    wide = _package(made["root"] / "maven-wide", "maven", d_text=2 * D_TEXT, **TINY)
    with pytest.raises(WildaffectError, match="16-wide embeddings.*d_text=32"):
        Predictor(wide, transcripts_dir=made["transcripts"], text_encoder=str(made["text"]))


def test_segments_on_frames_chunk_by_chunk_equal_the_whole(made) -> None:
    from wildaffect.streams.transcripts import Segment, segments_on_intervals

    times = _frame_times(made["media"] / GRID)  # (75,) from 0 s at 25 fps
    ends = _frame_ends(times)
    segments = [Segment(-1.0, 0.0, "a"), Segment(0.4, 0.4, "b"), Segment(0.5, 1.13, "c"),
                Segment(1.0, 2.0, "d"), Segment(2.9, 9.0, "e"), Segment(-2.0, -1.0, "f")]
    embeddings = np.random.default_rng(1).normal(size=(len(segments), 4))
    whole = segments_on_frames(segments, embeddings, times)
    for size in (1, 4, 11):
        parts = [segments_on_intervals(segments, embeddings, times[i : i + size],
                                       ends[i : i + size], opens=i == 0)
                 for i in range(0, len(times), size)]  # fmt: skip
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert np.isfinite(whole[0]).all() and np.isfinite(whole[10]).all()  # "a" at 0, "b" at 0.4


# -- the command: notes, errors, resume ---------------------------------------------------------


def _predict(*args: str):
    return runner.invoke(app, ["predict", *map(str, args)])


def test_cli_notes_a_stream_not_given_and_ignores_one_not_read(made, tmp_path) -> None:
    out = tmp_path / "out"
    result = _predict(made["media"] / CLIP, "--out", out, "--model", made["moe"],
                      "--transcripts", made["transcripts"])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    lines = result.output.splitlines()
    warned = [line for line in lines if line.startswith("warning:")]
    assert len(warned) == 1 and "behaviour stream" in warned[0] and "--behaviour" in warned[0]
    noted = [line for line in lines if line.startswith("note:")]
    assert len(noted) == 1 and "--transcripts" in noted[0] and "ignored" in noted[0]
    meta = json.loads((out / "1001_DFA_HAP_XX.meta.json").read_text())
    assert meta["streams"] == {"vad": "silero-vad on the input's audio",
                               "behaviour": f"not given -> {ABSENT}"}  # fmt: skip
    assert "behaviour: not given -> absent" in meta["notes"]


def test_cli_feeds_the_files_and_resumes_only_with_the_same_ones(made, tmp_path) -> None:
    out = tmp_path / "out"
    inputs = [made["media"] / GRID, made["media"] / CLIP]
    args = ["--out", out, "--model", made["maven"], "--transcripts", made["transcripts"],
            "--text-encoder", made["text"]]  # fmt: skip
    first = _predict(*inputs, *args)
    assert first.exit_code == 0, first.output + repr(first.exception)
    meta = json.loads((out / "sbwe5n.meta.json").read_text())
    assert meta["streams"]["text"]["file"] == str((made["transcripts"] / "sbwe5n.srt").resolve())
    assert meta["streams"]["text"]["text_encoder"] == str(made["text"])
    table = read_table(out / "sbwe5n.csv")
    assert _predict(*inputs, *args).output.count("cached") == 2
    other = tmp_path / "other"  # another folder, another transcript for GRID, none for CLIP
    other.mkdir()
    (other / "sbwe5n.csv").write_text(f"start,end,text\n0.0,3.0,{SENTENCES[1]}\n")
    again = _predict(*inputs, *args[:-3], other, "--text-encoder", made["text"])
    assert again.exit_code == 0, again.output
    index = pd.read_csv(out / "index.csv")
    assert index["status"].tolist() == ["done", "done"], "not cached: the transcripts changed"
    redone = read_table(out / "sbwe5n.csv")
    assert not np.allclose(redone[list(VA_NAMES)].to_numpy(float),
                           table[list(VA_NAMES)].to_numpy(float), atol=1e-4)  # fmt: skip
    clip_meta = json.loads((out / "1001_DFA_HAP_XX.meta.json").read_text())
    assert clip_meta["streams"]["text"] == f"no file for 1001_DFA_HAP_XX in {other} -> {ABSENT}"
    assert f"text: no file for 1001_DFA_HAP_XX in {other} -> {ABSENT}" in clip_meta["notes"]


def test_cli_a_malformed_behaviour_file_fails_its_input_and_the_batch_goes_on(made, tmp_path):
    behaviour = tmp_path / "behaviour"
    shutil.copytree(made["behaviour"], behaviour)
    short = tmp_path / "short"
    shutil.copytree(made["behaviour"], short)
    np.save(behaviour / "1001_DFA_HAP_XX.npy", np.zeros((56, D_BEHAVIOUR + 1)))  # wrong width
    np.save(short / "1001_DFA_HAP_XX.npy", np.zeros((50, D_BEHAVIOUR)))  # 50 rows, 56 frames
    inputs = [made["media"] / GRID, made["media"] / CLIP]
    for folder, reason in ((behaviour, "7 features per row, model 'va-grada-moe' reads 6"),
                           (short, "50 rows, but the input has more frames")):  # fmt: skip
        out = tmp_path / f"out-{folder.name}"
        result = _predict(*inputs, "--out", out, "--model", made["moe"], "--behaviour", folder,
                          "--chunk-frames", "16")  # fmt: skip
        assert result.exit_code == 1, result.output
        index = pd.read_csv(out / "index.csv").set_index("status")
        assert index.loc["done", "input"].endswith(GRID)
        error = index.loc["failed", "error"]
        assert "\n" not in error and error.startswith(str(folder / "1001_DFA_HAP_XX.npy"))
        assert reason in error
        assert not (out / "1001_DFA_HAP_XX.csv").exists()


def test_help_lists_the_stream_options() -> None:
    result = runner.invoke(app, ["predict", "--help"], terminal_width=200)
    for option in ("--behaviour", "--transcripts", "--text-encoder"):
        assert option in result.output
