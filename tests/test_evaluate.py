"""Evaluation: smoothing / voting against slow references, chunked prediction against a
whole-video pass, and the end-to-end chain synth -> train 4 steps -> resume (the next-step loss
equals an uninterrupted run's) -> evaluate -> the submission files parse; bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from train_helpers import LossRecorder, StopAfter
from typer.testing import CliRunner

from wildaffect.cli import app
from wildaffect.data.synth import make_synthetic_dataset
from wildaffect.errors import InputError, WildaffectError
from wildaffect.evaluate import (
    chunk_starts,
    evaluate_run,
    load_thresholds,
    moving_average,
    moving_median,
    predict_video,
    smooth_reference,
    soft_vote,
)
from wildaffect.io.submission import read_submission, write_submission
from wildaffect.labels import AU_INVALID, AU_NAMES, SPLITS, Task
from wildaffect.metrics import au_f1, expr_f1, search_au_thresholds, va_score
from wildaffect.models.config import ModelConfig
from wildaffect.train.config import TrainConfig
from wildaffect.train.run import train

TINY = {"d_model": 16, "d_token": 8, "d_inner": 16, "n_layers": 1, "hga_heads": 2,
        "xattn_heads": 2, "d_state": 4, "dropout": 0.1}


# --------------------------------------------------------------------------- post-processing


@pytest.mark.parametrize("window", [1, 2, 3, 4, 7, 50])
def test_smoothing_matches_reference(window):
    rng = np.random.default_rng(window)
    x = rng.random((23, 5))
    np.testing.assert_allclose(moving_average(x, window), smooth_reference(x, window, "mean"),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(moving_median(x, window), smooth_reference(x, window, "median"),
                               rtol=1e-12, atol=1e-12)


def test_soft_vote_is_centred_probability_average():
    probs = np.zeros((5, 8))
    probs[:, 0] = 1.0
    probs[2] = 0.0
    probs[2, 3] = 1.0  # a one-frame flicker to class 3
    voted = soft_vote(probs, 3)
    assert voted.argmax(1).tolist() == [0, 0, 0, 0, 0]  # the flicker is voted away
    np.testing.assert_allclose(voted[2], [2 / 3, 0, 0, 1 / 3, 0, 0, 0, 0])
    np.testing.assert_allclose(voted.sum(1), 1.0)  # still distributions, edges included


def test_chunk_starts_cover_every_frame():
    assert chunk_starts(10, 16) == [0]
    assert chunk_starts(100, 40) == [0, 20, 40, 60]
    for n, c in [(100, 40), (101, 40), (7, 3), (1000, 256)]:
        covered = np.zeros(n, int)
        for s in chunk_starts(n, c):
            covered[s:s + c] += 1
        assert covered.min() >= 1 and max(chunk_starts(n, c)) + c == n


def test_chunked_prediction_matches_whole_video():
    """A frame-local model (GAP, concat fusion, no temporal block): windows change nothing.
    And any model predicted in one window equals its whole-video forward."""
    from wildaffect.models.affect import AffectModel
    from wildaffect.models.heads import to_probabilities

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n = 37
    item = {"visual": torch.randn(n, 2, 2, 8, generator=g),
            "landmarks": torch.rand(n, 68, 2, generator=g),
            "face_mask": torch.ones(n, dtype=torch.bool),
            "valid_mask": torch.ones(n, dtype=torch.bool),
            "audio": torch.randn(n, 4, generator=g), "audio_mask": torch.ones(n, dtype=torch.bool)}
    local = AffectModel(ModelConfig(d_visual=8, d_audio=4, d_model=8, spatial="gap",
                                    fusion="concat", temporal="none",
                                    tasks=(Task.AU, Task.EXPR, Task.VA),
                                    losses={"AU": "bce", "EXPR": "ce", "VA": "ccc"})).eval()
    full = AffectModel(ModelConfig(d_visual=8, d_audio=4, **{**TINY, "dropout": 0.0})).eval()
    for model, chunk in ((local, 10), (full, 64)):
        got = predict_video(model, item, chunk_len=chunk)
        with torch.no_grad():
            want = to_probabilities(model({k: v[None] for k, v in item.items()}).outputs)
        for task, value in want.items():
            np.testing.assert_allclose(got[task], value[0].numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- end to end




@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("eval"), 4, 2, 200, grid=4,
                                  d_visual=8, d_audio=4, seed=1)


@pytest.fixture(scope="module")
def resumed_run(synth, tmp_path_factory):
    """Train 4 steps, stop, resume from last.ckpt for a 5th; also a straight 5-step run."""
    out = tmp_path_factory.mktemp("runs")
    # 4 videos x 4 clips of 64 frames, batch 4: 4 steps per epoch; step 5 opens epoch 2.
    base = TrainConfig(preset="abaw-full", data_dir=str(synth.root),
                       cache_dir=str(synth.cache_dir), model_overrides=TINY,
                       tasks=("AU", "EXPR", "VA"), epochs=2, max_steps=5, batch_size=4,
                       clip_len=64, clip_stride=64, warmup_epochs=0.5, progress_bar=False,
                       log_every_n_steps=1)
    straight = LossRecorder()
    train(base.with_overrides(out_dir=str(out / "straight")), callbacks=[straight])
    run = out / "run"
    first = LossRecorder()
    train(base.with_overrides(out_dir=str(run), checkpoint_every_n_steps=1),
          callbacks=[first, StopAfter(4)])
    second = LossRecorder()
    train(base.with_overrides(out_dir=str(run), checkpoint_every_n_steps=1),
          resume=run / "checkpoints" / "last.ckpt", callbacks=[second])
    return run, straight.losses, first.losses, second.losses


def test_end_to_end_train_resume_evaluate_submit(synth, resumed_run, tmp_path):
    run, straight, first, second = resumed_run
    assert sorted(first) == [1, 2, 3, 4] and sorted(second) == [5]
    assert second[5] == straight[5]  # identical next-step loss after the resume

    result = evaluate_run(run, synth.root, synth.cache_dir, tune_thresholds=True, smooth_window=5,
                          vote_window=9, out_dir=tmp_path / "eval")
    m = result.metrics
    assert m["n_videos"] == 2 and {"au_f1", "expr_f1", "va_ccc", "mtl_score"} <= set(m)
    # The stored thresholds are the search's on the (smoothed) predictions, and used.
    videos = synth.videos[SPLITS[1]]
    labels = np.concatenate([synth.labels[(Task.AU, v)] for v in videos])
    probs = np.concatenate([result.outputs[v][Task.AU] for v in videos])
    tuned = search_au_thresholds(labels, probs)
    np.testing.assert_array_equal(load_thresholds(run), tuned)
    assert m["au_f1"] == pytest.approx(au_f1(labels, probs, tuned).mean)
    for j, name in enumerate(AU_NAMES):  # per-AU F1 against scikit-learn
        valid = labels[:, j] != AU_INVALID
        want = f1_score(labels[valid, j], probs[valid, j] >= tuned[j], zero_division=0)
        assert m[f"au_f1_{name}"] == pytest.approx(want)
    expr = np.concatenate([synth.labels[(Task.EXPR, v)] for v in videos])
    voted = np.concatenate([result.outputs[v][Task.EXPR] for v in videos])
    assert m["expr_f1"] == pytest.approx(expr_f1(expr, voted).macro_f1)
    va = np.concatenate([synth.labels[(Task.VA, v)] for v in videos])
    va_pred = np.concatenate([result.outputs[v][Task.VA] for v in videos])
    assert m["va_ccc"] == pytest.approx(va_score(va, va_pred).mean)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["au_f1"] == m["au_f1"]

    # Submissions parse, in annotation order, and hold the thresholded / voted predictions.
    au = read_submission(tmp_path / "eval" / "predictions_AU.txt", Task.AU)
    assert au.locations[0] == f"{videos[0]}/00001.jpg" and len(au.locations) == 2 * 200
    np.testing.assert_array_equal(au.values, (probs >= tuned).astype(int))
    ex = read_submission(tmp_path / "eval" / "predictions_EXPR.txt", Task.EXPR)
    np.testing.assert_array_equal(ex.values, voted.argmax(1))
    assert read_submission(tmp_path / "eval" / "predictions_VA.txt", Task.VA).values.shape == (400, 2)
    table = (tmp_path / "eval" / "predictions" / f"{videos[0]}.csv").read_text().splitlines()
    assert table[0].startswith("frame,AU1_prob") and len(table) == 201

    # A later evaluation (CLI) reuses the stored thresholds and follows a sample file's order.
    sample = tmp_path / "sample.txt"
    reversed_rows = {v: np.zeros((200, 12), int) for v in reversed(videos)}
    write_submission(sample, Task.AU, reversed_rows)
    lines = sample.read_text().splitlines()
    sample.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    res = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(synth.root), "--cache",
                                   str(synth.cache_dir), "--sample", str(sample),
                                   "--out", str(tmp_path / "again"), "--smooth", "5"])
    assert res.exit_code == 0, res.output
    assert "AU mean F1 (run thresholds)" in res.output
    again = read_submission(tmp_path / "again" / "predictions_AU.txt", Task.AU)
    assert again.locations == list(reversed(au.locations))


def test_bad_inputs(synth, resumed_run, tmp_path):
    run, *_ = resumed_run
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(WildaffectError, match="no checkpoint"):
        evaluate_run(empty, synth.root, synth.cache_dir)
    cache = tmp_path / "cache"
    shutil.copytree(synth.cache_dir, cache)
    video = synth.videos[SPLITS[1]][0]
    np.save(cache / "features" / "synth-grid" / f"{video}.npy", np.zeros((150, 4, 4, 8), np.float16))
    with pytest.raises(InputError, match="synth-grid features have 150 frames"):
        evaluate_run(run, synth.root, cache)
    np.save(cache / "features" / "synth-grid" / f"{video}.npy", np.zeros((200, 4, 4, 6), np.float16))
    for other in synth.videos[SPLITS[1]][1:]:
        np.save(cache / "features" / "synth-grid" / f"{other}.npy",
                np.zeros((200, 4, 4, 6), np.float16))
    with pytest.raises(WildaffectError, match="expects grid features of width 8"):
        evaluate_run(run, synth.root, cache)
    res = CliRunner().invoke(app, ["evaluate", str(empty), "--data", str(synth.root),
                                   "--cache", str(synth.cache_dir)])
    assert res.exit_code != 0
