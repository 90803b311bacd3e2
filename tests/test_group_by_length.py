"""Length-grouped batches: the sampler's batches never mix length groups, short clips are read
at their own length, and a training run on such data sees unpadded batches."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
from train_helpers import TINY

from wildaffect.data.dataset import ClipDataset
from wildaffect.data.synth import make_synthetic_dataset
from wildaffect.errors import WildaffectError
from wildaffect.train.config import TrainConfig
from wildaffect.train.resume import EpochSampler, merge_small_groups
from wildaffect.train.run import train


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    # 240-frame videos: clips of 100 frames at 0 and 100, then a 40-frame tail at 200.
    return make_synthetic_dataset(tmp_path_factory.mktemp("group"), 4, 1, 240, grid=4,
                                  d_visual=16, d_audio=16, seed=0)


def test_sampler_batches_hold_one_group_and_every_index():
    groups = np.array([1] * 7 + [7] * 5 + [3] * 3)
    sampler = EpochSampler(len(groups), seed=3, groups=groups, batch_size=3)
    # 7 -> 3 batches, 5 -> 2, 3 -> 1: 6 batches of 3.
    assert len(sampler) == 18
    for epoch in (0, 1):
        order = sampler.order(epoch)
        assert len(order) == len(sampler)
        assert set(order) == set(range(len(groups)))
        for start in range(0, len(order), 3):
            assert len({groups[i] for i in order[start:start + 3]}) == 1
    assert sampler.order(0) != sampler.order(1)
    assert sampler.order(1) == EpochSampler(len(groups), 3, None, groups, 3).order(1)


def test_a_group_smaller_than_a_batch_joins_its_neighbour():
    # 9 photos, 2 long clips, 5 mid clips; batch 4: the 2 long ones join the mid group.
    groups = np.array([1] * 9 + [8] * 2 + [7] * 5)
    sampler = EpochSampler(len(groups), seed=0, groups=groups, batch_size=4)
    assert len(sampler) == 12 + 8  # 9 -> 3 batches, 7 -> 2 batches
    order = sampler.order(0)
    assert len(order) == len(sampler) and set(order) == set(range(len(groups)))
    assert max(np.bincount(order)) <= 2  # a clip is repeated at most once to fill up
    for start in range(0, len(order), 4):
        assert len({min(groups[i], 7) for i in order[start:start + 4]}) == 1
    assert merge_small_groups(np.array([3, 3, 5]), 4).tolist() == [5, 5, 5]  # all in one
    tiny = EpochSampler(3, groups=np.array([1, 1, 2]), batch_size=4)
    assert len(tiny) == 3 and sorted(tiny.order(0)) == [0, 1, 2]


def test_sampler_rejects_groups_with_weights_or_wrong_length():
    with pytest.raises(ValueError, match="cannot be combined"):
        EpochSampler(3, weights=np.ones(3), groups=np.zeros(3, int), batch_size=2)
    with pytest.raises(ValueError, match="2 entries for 3"):
        EpochSampler(3, groups=np.zeros(2, int), batch_size=2)


def test_short_clips_read_at_their_own_length(synth):
    common = {"cache": synth.cache_dir, "labels_root": synth.root, "split": "Train_Set",
              "tasks": ["AU"], "visual_encoder": "synth-grid", "audio_encoder": "synth-audio",
              "clip_len": 100, "stride": 100}
    padded, unpadded = ClipDataset(**common), ClipDataset(**common, pad_short=False)
    tails = [k for k, (_, start) in enumerate(padded.clips) if start == 200]
    assert len(tails) == 4
    assert padded[tails[0]]["valid_mask"].shape == (100,)
    item = unpadded[tails[0]]
    assert item["valid_mask"].shape == (40,) and bool(item["valid_mask"].all())
    assert np.array_equal(item["visual"].numpy(), padded[tails[0]]["visual"][:40].numpy())
    assert sorted(set(unpadded.length_groups().tolist())) == [(40).bit_length(), (100).bit_length()]


class BatchLengths(L.Callback):
    def __init__(self) -> None:
        self.lengths: list[tuple[int, bool]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        valid = batch["valid_mask"]
        self.lengths.append((valid.shape[1], bool(valid.all())))


def test_training_batches_are_unpadded_and_single_length(synth, tmp_path):
    config = TrainConfig(
        preset="abaw-full", data_dir=str(synth.root), cache_dir=str(synth.cache_dir),
        out_dir=str(tmp_path), model_overrides=TINY, epochs=1, batch_size=4, clip_len=100,
        clip_stride=100, warmup_epochs=0.0, progress_bar=False, group_by_length=True,
    )
    seen = BatchLengths()
    train(config, callbacks=[seen])
    # 8 clips of 100 frames -> 2 batches; 4 tails of 40 -> 1 batch; none padded.
    assert sorted(seen.lengths) == [(40, True), (100, True), (100, True)]


def test_group_by_length_refuses_balanced():
    with pytest.raises(WildaffectError, match="group_by_length"):
        TrainConfig(group_by_length=True, balanced=True)
