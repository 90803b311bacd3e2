"""End to end: ``wildaffect extract`` makes the VAD, behaviour and transcript streams of real
clips, the datasets serve them, and seed 003's ¶0 (va-grada-*) and ¶8 (maven) presets train
on them at tiny widths with ``wildaffect train`` and the Python API.

The text encoder is a tiny random BERT with a word-level tokenizer trained here on a few
sentences (no download).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from abaw_tree import build_abaw_tree
from typer.testing import CliRunner

from wildaffect.cli import app
from wildaffect.data.cache import FeatureCache
from wildaffect.data.dataset import ClipDataset, collate
from wildaffect.errors import InputError
from wildaffect.extract import extract_batch
from wildaffect.labels import SPLITS, Task
from wildaffect.preprocess import preprocess_batch
from wildaffect.streams import BEHAVIOUR, TEXT, VAD
from wildaffect.train.config import TrainConfig
from wildaffect.train.run import prepare, train

GRID = "sbwe5n"  # 75 frames at 25 fps, speech from 0.5 s to 2.0 s
CLIP = "1001_DFA_HAP_XX"  # 56 frames at 29.97 fps
N_FRAMES = {GRID: 75, CLIP: 56}
D_BEHAVIOUR, D_TEXT = 6, 16
ALL_STREAMS = (VAD.key, BEHAVIOUR.key, TEXT.key)
TINY = {"d_model": 32, "d_token": 8, "d_inner": 16, "n_layers": 1, "xattn_heads": 2,
        "transformer_heads": 2, "d_state": 8, "dropout": 0.0, "audio_segment": 5}  # fmt: skip
SENTENCES = ["set blue with e five now", "it is eleven o'clock", "hello there"]
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_text_encoder(folder: Path) -> Path:
    """A random 1-layer BERT (hidden 16) and a word-level tokenizer, saved as a model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tokenizer.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=special))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]",
                                   pad_token="[PAD]", model_max_length=64)  # fmt: skip
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(fast), hidden_size=D_TEXT, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def made(fixtures_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """Two real clips preprocessed and extracted with every stream, and a VA tree over them."""
    root = tmp_path_factory.mktemp("streams")
    media = fixtures_dir / "media"
    report = preprocess_batch([media / f"{GRID}.mpg", media / f"{CLIP}.flv"], root / "cache",
                              crops="npy")  # fmt: skip
    assert report.all_ok, [r.reason for r in report.failures]
    behaviour = root / "behaviour"
    behaviour.mkdir()
    rng = np.random.default_rng(0)
    times = 0.51 + 0.2 * np.arange(10)  # 0.51 .. 2.31 s: covers 0.41-2.41 s of the 3 s clip
    rows = "\n".join(",".join(f"{v:.4f}" for v in (t, *rng.normal(size=D_BEHAVIOUR)))
                     for t in times)  # fmt: skip
    header = ",".join(["time_s", *(f"f{i}" for i in range(D_BEHAVIOUR))])
    (behaviour / f"{GRID}.csv").write_text(f"{header}\n{rows}\n")
    np.save(behaviour / f"{CLIP}.npy", rng.normal(size=(N_FRAMES[CLIP], D_BEHAVIOUR)))
    transcripts = root / "transcripts"
    transcripts.mkdir()
    (transcripts / f"{GRID}.srt").write_text(f"1\n00:00:00,500 --> 00:00:02,000\n{SENTENCES[0]}\n")
    (transcripts / f"{CLIP}.vtt").write_text(
        f"WEBVTT\n\n00:00.100 --> 00:00.900\n{SENTENCES[1]}\n\n00:01.000 --> 00:01.600\n"
        f"{SENTENCES[2]}\n"
    )
    text = tiny_text_encoder(root / "text-encoder")
    result = runner.invoke(app, [
        "extract", str(root / "cache"), "--device", "cpu", "--behaviour", str(behaviour),
        "--transcripts", str(transcripts), "--text-encoder", str(text),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    build_abaw_tree(root / "abaw", videos={SPLITS[0]: (GRID,), SPLITS[1]: (CLIP,)},
                    n_frames=N_FRAMES, tasks=[Task.VA], invalid_rate=0.0)  # fmt: skip
    return {"root": root, "cache": root / "cache", "abaw": root / "abaw", "text": text,
            "behaviour": behaviour, "transcripts": transcripts}  # fmt: skip


def test_extract_writes_the_three_streams_on_the_frames(made) -> None:
    cache = FeatureCache(made["cache"])
    for video, n in N_FRAMES.items():
        assert cache.read_features(VAD.feature_set, video).shape == (n,)
        assert cache.read_features(BEHAVIOUR.feature_set, video).shape == (n, D_BEHAVIOUR)
        assert cache.read_features(TEXT.feature_set, video).shape == (n, D_TEXT)
    times = cache.read_array(GRID, "frame_times") - cache.read_array(GRID, "frame_times")[0]
    behaviour = cache.read_features(BEHAVIOUR.feature_set, GRID).astype(np.float32)
    covered = np.isfinite(behaviour).all(axis=1)
    np.testing.assert_array_equal(covered, (times >= 0.41) & (times <= 2.41))
    text = cache.read_features(TEXT.feature_set, GRID).astype(np.float32)
    said = np.isfinite(text).all(axis=1)
    assert said[(times >= 0.5) & (times < 2.0)].all() and not said[(times < 0.44)].any()
    assert not said[times >= 2.04].any()
    clip_text = cache.read_features(TEXT.feature_set, CLIP).astype(np.float32)
    first, second = clip_text[5], clip_text[40]  # 0.17 s and 1.33 s: the two segments
    assert np.isfinite(first).all() and np.isfinite(second).all()
    assert not np.allclose(first, second)  # two sentences, two embeddings
    info = json.loads((made["cache"] / "features" / TEXT.feature_set / "encoder.json").read_text())
    assert info["made_by"] == str(made["text"]) and info["dims"] == [D_TEXT]
    vad = cache.read_features(VAD.feature_set, GRID).astype(np.float32)
    assert vad[:5].max() < 0.1 and np.median(vad[(times > 1.0) & (times < 1.6)]) > 0.9


def test_dataset_serves_the_streams_masked_and_without_nan(made) -> None:
    data = ClipDataset(made["cache"], made["abaw"], SPLITS[0], [Task.VA], "mediapipe-regions",
                       "logmel-egemaps", clip_len=64, stride=32, streams=ALL_STREAMS)
    cache = FeatureCache(made["cache"])
    batch = collate([data[i] for i in range(len(data))])
    assert batch["vad"].shape == batch["valid_mask"].shape == (2, 64)
    assert batch["behaviour"].shape == (2, 64, D_BEHAVIOUR)
    assert batch["text"].shape == (2, 64, D_TEXT)
    for key in ("vad", "behaviour", "text"):
        assert torch.isfinite(batch[key]).all(), key
    stored = cache.read_features(BEHAVIOUR.feature_set, GRID).astype(np.float32)
    present = np.isfinite(stored).all(axis=1)  # (75,)
    np.testing.assert_array_equal(batch["behaviour_mask"][0].numpy(), present[:64])
    np.testing.assert_array_equal(batch["behaviour_mask"][1, :43].numpy(), present[32:])
    assert not batch["behaviour_mask"][1, 43:].any()  # padding
    np.testing.assert_allclose(batch["behaviour"][0][batch["behaviour_mask"][0]].numpy(),
                               stored[:64][present[:64]])  # fmt: skip
    assert not batch["behaviour"][0][~batch["behaviour_mask"][0]].any()
    vad = cache.read_features(VAD.feature_set, GRID).astype(np.float32)
    np.testing.assert_allclose(batch["vad"][0].numpy(), vad[:64])
    assert data.feature_shapes()["behaviour"] == (D_BEHAVIOUR,)
    assert batch["text_mask"][0].any() and not batch["text_mask"][0].all()


def test_a_stream_missing_from_the_cache_is_one_line_before_training(made, tmp_path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(made["cache"], cache)
    (cache / "features" / BEHAVIOUR.feature_set / f"{CLIP}.npy").unlink()
    config = TrainConfig(preset="va-grada-moe", data_dir=str(made["abaw"]), cache_dir=str(cache),
                         visual_encoder="mediapipe-regions", audio_encoder="logmel-egemaps",
                         model_overrides=TINY, out_dir=str(tmp_path / "run"))  # fmt: skip
    with pytest.raises(InputError) as err:
        prepare(config)
    message = str(err.value)
    assert "\n" not in message and CLIP in message and "'behaviour'" in message
    assert "wildaffect extract CACHE --behaviour DIR" in message
    # without the behaviour stream (d_behaviour=0) the same cache trains the audio-visual model
    config = config.with_overrides(model_overrides={**TINY, "d_behaviour": 0})
    model_config, train_set, _ = prepare(config)
    assert train_set.streams == (VAD.key,) and model_config.d_behaviour == 0


def test_a_malformed_behaviour_file_fails_its_record_and_the_batch_goes_on(made, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(made["cache"], cache)
    behaviour = tmp_path / "behaviour"
    shutil.copytree(made["behaviour"], behaviour)
    np.save(behaviour / f"{CLIP}.npy", np.zeros((N_FRAMES[CLIP], D_BEHAVIOUR + 1)))
    for video in N_FRAMES:  # redo both; the width comes from the set's encoder.json
        (cache / "features" / BEHAVIOUR.feature_set / f"{video}.npy").unlink()
    report = extract_batch(cache, visual=None, audio=None, behaviour_dir=behaviour)
    status = {r.video: r.status for r in report.results}
    assert status == {CLIP: "failed", GRID: "done"}
    reason = report.failures[0].reason
    assert reason.startswith(str(behaviour / f"{CLIP}.npy")) and "7 features per row" in reason


def test_the_streams_reach_the_model(made, tmp_path) -> None:
    """One forward/backward on a real batch: the behaviour (va-grada-moe) and text (maven)
    projections get gradients and the VAD changes the output (it gates the audio)."""
    from wildaffect.models.affect import AffectModel

    config = TrainConfig(preset="va-grada-moe", data_dir=str(made["abaw"]),
                         cache_dir=str(made["cache"]), visual_encoder="mediapipe-regions",
                         audio_encoder="logmel-egemaps", model_overrides=TINY, clip_len=64,
                         clip_stride=32, out_dir=str(tmp_path / "run"))  # fmt: skip
    model_config, train_set, _ = prepare(config)
    assert model_config.d_behaviour == D_BEHAVIOUR and model_config.vad_gate
    torch.manual_seed(0)
    model = AffectModel(model_config)
    batch = collate([train_set[i] for i in range(len(train_set))])
    va = model(batch).outputs[Task.VA]
    va.sum().backward()
    assert model.behaviour_proj.weight.grad.abs().sum() > 0
    silent = model(dict(batch, vad=torch.zeros_like(batch["vad"]))).outputs[Task.VA]
    assert not torch.allclose(silent, va)
    model_config, train_set, _ = prepare(config.with_overrides(preset="maven"))
    assert model_config.d_text == D_TEXT and train_set.streams == (TEXT.key,)
    maven = AffectModel(model_config)
    batch = collate([train_set[i] for i in range(len(train_set))])
    maven(batch).outputs[Task.VA].sum().backward()
    assert maven.text_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("preset", ["va-grada-moe", "va-grada-reliability", "maven"])
def test_seed_003_presets_train_on_the_streams(made, tmp_path, preset) -> None:
    config = TrainConfig(preset=preset, data_dir=str(made["abaw"]), cache_dir=str(made["cache"]),
                         visual_encoder="mediapipe-regions", audio_encoder="logmel-egemaps",
                         model_overrides=TINY, out_dir=str(tmp_path / "run"), epochs=2,
                         max_steps=2, batch_size=2, clip_len=32, clip_stride=16,
                         warmup_epochs=0.0, progress_bar=False)  # fmt: skip
    result = train(config)
    assert np.isfinite(result.final_metrics["val/score"])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["model_config"]
    widths = {"maven": {"d_text": D_TEXT, "d_behaviour": 0}}.get(
        preset, {"d_behaviour": D_BEHAVIOUR, "vad_gate": True})
    assert {k: saved[k] for k in widths} == widths


def test_wildaffect_train_cli_trains_maven_with_the_transcripts(made, tmp_path) -> None:
    sets = [f"--set={k}={v}" for k, v in TINY.items()]
    result = runner.invoke(app, [
        "train", "--preset", "maven", "--data", str(made["abaw"]), "--cache", str(made["cache"]),
        "--visual-encoder", "mediapipe-regions", "--audio-encoder", "logmel-egemaps",
        "--out", str(tmp_path / "run"), "--epochs", "1", "--max-steps", "2", "--batch-size", "2",
        "--clip-len", "32", "--warmup-epochs", "0", "--no-progress", *sets,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (tmp_path / "run" / "final.ckpt").is_file()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["model_config"]
    assert saved["d_text"] == D_TEXT and saved["fusion"] == "maven"
