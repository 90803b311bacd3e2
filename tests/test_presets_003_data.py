"""Seed 003 ¶5's frame-skipping augmentation in the clip dataset: every s-th frame from the
clip's start with its own labels, reproducible per (seed, epoch, clip) so resume stays exact,
and no change at all with the default step 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wildaffect.data.dataset import ClipDataset
from wildaffect.data.synth import AUDIO_ENCODER, VISUAL_ENCODER, make_synthetic_dataset
from wildaffect.labels import Task


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), 2, 1, 300, grid=4,
                                  d_visual=8, d_audio=4)


def clips(data, **kwargs) -> ClipDataset:
    return ClipDataset(data.cache_dir, data.root, "Train_Set", [Task.AU, Task.VA],
                       VISUAL_ENCODER, AUDIO_ENCODER, clip_len=32, stride=16, **kwargs)


def test_step_one_is_the_plain_dataset(synth):
    plain, stepped = clips(synth), clips(synth, frame_step=1)
    for i in (0, 5, len(plain) - 1):
        a, b = plain[i], stepped[i]
        for key in ("visual", "audio", "face_mask", "valid_mask"):
            assert torch.equal(a[key], b[key])


def test_skipped_frames_come_with_their_own_labels(synth):
    data = clips(synth, frame_step=3, step_seed=7)
    steps = [data.clip_step(i) for i in range(len(data))]
    assert set(steps) <= {1, 2, 3} and len(set(steps)) > 1
    index = next(i for i, s in enumerate(steps) if s == 3)
    item = data[index]
    video, start = item["video"], item["start"]
    features = data.cache.read_features(VISUAL_ENCODER, video)
    n = int(item["valid_mask"].sum())
    rows = np.arange(start, start + 3 * 32, 3)[:n]
    face = item["face_mask"][:n].numpy()
    np.testing.assert_array_equal(item["visual"][:n].numpy()[face], features[rows][face])
    va = synth.labels[(Task.VA, video)][rows]
    got = item["labels"]["VA"][:n].numpy()
    np.testing.assert_array_equal(got[item["label_mask"]["VA"][:n].numpy()],
                                  va[item["label_mask"]["VA"][:n].numpy()])


def test_steps_are_reproducible_and_change_with_the_epoch(synth):
    first, again = clips(synth, frame_step=4), clips(synth, frame_step=4)
    steps = [first.clip_step(i) for i in range(len(first))]
    assert steps == [again.clip_step(i) for i in range(len(again))]  # a resumed run: same clips
    assert torch.equal(first[3]["visual"], again[3]["visual"])
    again.set_epoch(1)
    assert steps != [again.clip_step(i) for i in range(len(again))]
    with pytest.raises(ValueError, match="frame_step"):
        clips(synth, frame_step=0)
