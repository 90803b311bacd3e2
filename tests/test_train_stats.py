"""Training-set statistics (train/stats.py) against numpy, and their use by ``train()``:
input standardisation buffers and the weighted, smoothed EXPR loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wildaffect.data.abaw import parse_annotation, scan_dataset
from wildaffect.data.cache import FeatureCache
from wildaffect.data.dataset import ClipDataset
from wildaffect.data.synth import make_synthetic_dataset
from wildaffect.errors import WildaffectError
from wildaffect.labels import SPLITS, Task
from wildaffect.train.config import TrainConfig
from wildaffect.train.run import CLASS_WEIGHT_ARGUMENT, load_model, train
from wildaffect.train.stats import class_weights, expr_class_counts, input_stats

TINY = {"d_model": 16, "d_token": 8, "d_inner": 16, "n_layers": 1, "hga_heads": 2,
        "xattn_heads": 2, "d_state": 8, "dropout": 0.0}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    result = make_synthetic_dataset(tmp_path_factory.mktemp("stats"), 3, 1, 200, grid=4,
                                    d_visual=8, d_audio=6, seed=1)
    # Hide the face on some frames of one training video: their features must not count.
    cache = FeatureCache(result.cache_dir)
    video = scan_dataset(result.root, Task.EXPR).videos(Task.EXPR, SPLITS[0])[0]
    meta, arrays = cache.read_meta(video), cache.read_arrays(video, ["has_face"])
    has_face = arrays["has_face"].copy()
    has_face[10:40] = False
    others = {n: cache.read_array(video, n) for n in meta["arrays"] if n != "has_face"}
    extra = {k: v for k, v in meta.items() if k not in ("arrays", "shapes")}
    cache.write_record(video, extra, {**others, "has_face": has_face})
    return result


def dataset(synth, stride: int = 16) -> ClipDataset:
    from wildaffect.data.synth import AUDIO_ENCODER, VISUAL_ENCODER

    return ClipDataset(synth.cache_dir, synth.root, SPLITS[0], [Task.AU, Task.EXPR],
                       VISUAL_ENCODER, AUDIO_ENCODER, clip_len=64, stride=stride)


def test_input_stats_match_numpy_over_face_frames_each_frame_once(synth):
    from wildaffect.data.synth import AUDIO_ENCODER, VISUAL_ENCODER

    data = dataset(synth)  # overlapping clips: a frame is in several clips
    cache = FeatureCache(synth.cache_dir)
    visual, audio = [], []
    for video in data.videos:
        face = cache.read_array(video, "has_face")
        visual.append(np.asarray(cache.read_features(VISUAL_ENCODER, video), np.float64)[face])
        audio.append(np.asarray(cache.read_features(AUDIO_ENCODER, video), np.float64))
    visual, audio = np.concatenate(visual), np.concatenate(audio)
    assert len(visual) < len(audio)  # the hidden-face frames are left out
    stats = input_stats(data)
    assert stats["visual_mean"].shape == visual.shape[1:]
    np.testing.assert_allclose(stats["visual_mean"], visual.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["visual_std"], visual.std(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats["audio_mean"], audio.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["audio_std"], audio.std(0), rtol=1e-4, atol=1e-5)


def test_class_weights():
    counts = np.array([40, 10, 0, 4, 40, 0, 0, 0])
    weights = class_weights(counts, 0.5)
    raw = np.array([1.0, 2.0, 0.0, np.sqrt(10), 1.0, 0, 0, 0])
    np.testing.assert_allclose(weights, raw / raw[counts > 0].mean(), rtol=1e-6)
    assert weights[counts > 0].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(class_weights(counts, 0.0), (counts > 0).astype(float))
    np.testing.assert_allclose(class_weights(counts, 1.0)[[0, 1, 3]] / class_weights(counts, 1.0)[0],
                               [1, 4, 10], rtol=1e-6)
    with pytest.raises(ValueError):
        class_weights(np.zeros(8), 0.5)


def test_expr_class_counts_match_the_files(synth):
    data = dataset(synth)
    index = scan_dataset(synth.root, Task.EXPR)
    want = np.zeros(8, int)
    for video in index.videos(Task.EXPR, SPLITS[0]):
        labels = parse_annotation(index.path(Task.EXPR, SPLITS[0], video), Task.EXPR)
        want += np.bincount(labels.values[labels.valid], minlength=8)
    assert expr_class_counts(data).tolist() == want.tolist() and want.sum() > 0


def test_video_counts_give_each_video_one_vote(tmp_path):
    from wildaffect.data.cache import FeatureCache
    from wildaffect.data.dataset import ClipDataset
    from wildaffect.data.labelled import LabelledItem, write_expression_tree

    cache = FeatureCache(tmp_path / "cache")
    label_of = {"a": 4, "b": 0, "c": 1}  # a, b photos (1 frame), c an utterance (100 frames)
    frames = {f"{v}{k}": 100 if v == "c" else 1 for v in label_of for k in (1, 2)}
    for name, n in frames.items():
        cache.write_record(name, {"n_frames": n}, {"has_face": np.ones(n, bool)})
        cache.write_features("enc", name, np.zeros((n, 2), np.float32))
    items = [LabelledItem(tmp_path / f"{v}.jpg", label_of[v[0]], v) for v in frames]
    write_expression_tree(items, cache, tmp_path / "tree", folds=2, validation_fold=0, seed=0)
    data = ClipDataset(cache, tmp_path / "tree", SPLITS[0], [Task.EXPR], "enc", clip_len=100)
    per_frame = expr_class_counts(data)
    per_video = expr_class_counts(data, "video")
    assert len(data.sources) == 3 and per_video.sum() == 3
    assert per_frame.sum() == 102
    for source in data.sources:
        label = label_of[source.video[0]]
        assert per_video[label] == 1.0 and per_frame[label] == frames[source.video]


def test_train_stores_stats_and_builds_the_weighted_smoothed_loss(synth, tmp_path):
    config = TrainConfig(
        preset="abaw-full", data_dir=str(synth.root), cache_dir=str(synth.cache_dir),
        out_dir=str(tmp_path / "run"), model_overrides={**TINY, "input_norm": True},
        tasks=("EXPR",), epochs=1, max_steps=2, batch_size=4, clip_len=64, clip_stride=64,
        warmup_epochs=0.5, progress_bar=False, class_weight_power=0.5, label_smoothing=0.1,
    )
    result = train(config)
    model = load_model(result.final_checkpoint)
    assert model.config.visual_frame_shape == (4, 4, 8)
    want = input_stats(dataset(synth))
    np.testing.assert_allclose(model.visual_mean.numpy(), want["visual_mean"], rtol=1e-6)
    np.testing.assert_allclose(model.audio_std.numpy(), want["audio_std"], rtol=1e-6)
    hparams = torch.load(result.final_checkpoint, map_location="cpu",
                         weights_only=False)["hyper_parameters"]
    options = hparams["loss_options"]["EXPR"]
    assert options["label_smoothing"] == 0.1
    key = CLASS_WEIGHT_ARGUMENT[model.config.losses["EXPR"]]  # focal: alpha, ce: weight
    np.testing.assert_allclose(options[key],
                               class_weights(expr_class_counts(dataset(synth)), 0.5), rtol=1e-6)


def test_bad_loss_options_are_refused():
    with pytest.raises(WildaffectError, match="label_smoothing must be in"):
        TrainConfig(label_smoothing=1.0)
    with pytest.raises(WildaffectError, match="class_weight_power must be >= 0"):
        TrainConfig(class_weight_power=-1)


def test_every_expr_loss_says_where_its_class_weights_go():
    import inspect

    from wildaffect.losses import LOSSES

    for name, fn in LOSSES[Task.EXPR].items():
        assert CLASS_WEIGHT_ARGUMENT[name] in inspect.signature(fn).parameters, name
