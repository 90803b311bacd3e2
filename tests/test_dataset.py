"""Clip / whole-video datasets over the cache: clip count, padding, masks, up-front errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wildaffect.data.cache import FeatureCache
from wildaffect.data.dataset import ClipDataset, VideoDataset, clip_starts, collate
from wildaffect.data.synth import AUDIO_ENCODER, VISUAL_ENCODER, make_synthetic_dataset
from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import SPLITS, TASK_SPECS, Task

T = 200


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("ds"), 2, 1, T, grid=4,
                                  d_visual=8, d_audio=4, seed=2)


def clips(synth, **kw):
    return ClipDataset(synth.cache_dir, synth.root, SPLITS[0], list(Task), VISUAL_ENCODER,
                       AUDIO_ENCODER, **kw)


def test_clip_starts_cover_every_frame():
    assert clip_starts(300, 256, 128) == [0, 128]
    assert clip_starts(256, 256, 128) == [0]
    assert clip_starts(100, 256, 128) == [0]
    for n, length, stride in ((200, 64, 32), (201, 64, 64), (7, 3, 2)):
        covered = np.zeros(n, bool)
        for s in clip_starts(n, length, stride):
            covered[s: s + length] = True
        assert covered.all()


def test_clips_padding_and_masks(synth):
    ds = clips(synth, clip_len=64, stride=48)
    assert len(ds) == 2 * len(clip_starts(T, 64, 48)) == 2 * 4
    video = synth.videos[SPLITS[0]][0]
    last = ds[3]  # start 144: frames 144..199 real, 56 of 64
    assert (last["video"], last["start"]) == (video, 144)
    assert last["visual"].shape == (64, 4, 4, 8) and last["audio"].shape == (64, 4)
    assert last["valid_mask"].sum() == 56 and not last["valid_mask"][56:].any()
    assert not last["face_mask"][56:].any() and not last["audio_mask"][56:].any()
    assert torch.isfinite(last["landmarks"]).all() and torch.isfinite(last["visual"]).all()
    cache = FeatureCache(synth.cache_dir)
    has_face = cache.read_array(video, "has_face")
    np.testing.assert_array_equal(last["face_mask"][:56].numpy(), has_face[144:])
    features = cache.read_features(VISUAL_ENCODER, video)[144:].astype(np.float32)
    features[~has_face[144:]] = 0
    np.testing.assert_array_equal(last["visual"][:56].numpy(), features)
    for task in Task:
        values = synth.labels[(task, video)][144:]
        labels, mask = last["labels"][task.value], last["label_mask"][task.value]
        np.testing.assert_array_equal(labels[:56].numpy(), values)
        np.testing.assert_array_equal(mask[:56].numpy(), values != TASK_SPECS[task].invalid)
        assert not mask[56:].any()


def test_video_dataset_and_collate_pad(synth):
    ds = VideoDataset(synth.cache_dir, synth.root, SPLITS[1], [Task.AU], VISUAL_ENCODER, None)
    item = ds[0]
    assert item["visual"].shape[0] == T and item["valid_mask"].all() and "audio" not in item
    short = {**item, "visual": item["visual"][:50], "landmarks": item["landmarks"][:50],
             "face_mask": item["face_mask"][:50], "valid_mask": item["valid_mask"][:50],
             "labels": {"AU": item["labels"]["AU"][:50]},
             "label_mask": {"AU": item["label_mask"]["AU"][:50]}}
    batch = collate([item, short])
    assert batch["visual"].shape == (2, T, 4, 4, 8)
    assert batch["valid_mask"][1].sum() == 50 and not batch["label_mask"]["AU"][1, 50:].any()
    assert (batch["labels"]["AU"][1, 50:] == TASK_SPECS[Task.AU].invalid).all()


def test_balanced_weights_favour_rare_labels(synth):
    ds = clips(synth, clip_len=32, stride=32)
    weights = ds.sample_weights()
    assert weights.shape == (len(ds),) and np.isclose(weights.mean(), 1.0)
    sampler = ds.balanced_sampler(num_samples=10, seed=0)
    assert len(list(sampler)) == 10


def test_missing_split_is_a_clear_error(synth, tmp_path):
    import shutil

    root = tmp_path / "tree"
    shutil.copytree(synth.root, root, ignore=shutil.ignore_patterns("cache"))
    shutil.rmtree(root / TASK_SPECS[Task.AU].challenge_dir / SPLITS[1])
    with pytest.raises(WildaffectError, match="Validation_Set"):
        ClipDataset(synth.cache_dir, root, SPLITS[0], [Task.AU], VISUAL_ENCODER)


def test_length_mismatch_names_the_feature_file(synth, tmp_path):
    import shutil

    cache_dir = tmp_path / "cache"
    shutil.copytree(synth.cache_dir, cache_dir)
    video = synth.videos[SPLITS[0]][1]
    cache = FeatureCache(cache_dir)
    cache.write_features(VISUAL_ENCODER, video, np.zeros((T - 3, 4, 4, 8)))
    with pytest.raises(InputError, match=rf"{video}\.npy.*{T - 3} frames.*has {T}"):
        ClipDataset(cache_dir, synth.root, SPLITS[0], [Task.AU], VISUAL_ENCODER)


def test_video_missing_from_cache(synth, tmp_path):
    import shutil

    cache_dir = tmp_path / "cache"
    shutil.copytree(synth.cache_dir, cache_dir)
    video = synth.videos[SPLITS[0]][0]
    shutil.rmtree(cache_dir / "records" / video)
    with pytest.raises(InputError, match=f"{video}.txt.*no record"):
        ClipDataset(cache_dir, synth.root, SPLITS[0], [Task.AU], VISUAL_ENCODER)


def test_record_without_audio_track_masks_its_audio(tmp_path):
    """preprocess marks inputs without an audio track with ``audio_missing``: their (silent)
    audio features must not count as audio."""
    data = make_synthetic_dataset(tmp_path / "noaudio", 1, 1, T, grid=4, d_visual=8, d_audio=4)
    cache = FeatureCache(data.cache_dir)
    video = data.videos[SPLITS[0]][0]
    meta = cache.read_meta(video)
    arrays = cache.read_arrays(video)
    cache.write_record(video, {**meta, "audio_missing": True}, arrays)
    ds = ClipDataset(data.cache_dir, data.root, SPLITS[0], [Task.AU], VISUAL_ENCODER,
                     AUDIO_ENCODER, clip_len=64, stride=64)
    assert not any(ds[i]["audio_mask"].any() for i in range(len(ds)))
    assert ds[0]["face_mask"].any()


def test_only_the_most_recently_read_videos_stay_open(synth, monkeypatch):
    import wildaffect.data.dataset as dataset_module

    monkeypatch.setattr(dataset_module, "MAX_OPEN_VIDEOS", 1)
    data = VideoDataset(synth.cache_dir, synth.root, SPLITS[0], [Task.AU], VISUAL_ENCODER,
                        AUDIO_ENCODER)
    assert len(data) == 2
    first = data[0]["visual"].clone()
    for i in range(len(data)):
        data[i]
    assert len(data._reader._open) == 1  # memory maps (file descriptors) closed beyond that
    assert torch.equal(data[0]["visual"], first)  # a closed video reopens on demand
