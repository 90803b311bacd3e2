"""Seed 003 ¶9's single -> compound curriculum (train/curriculum.py): which clips are compound
on a hand-labelled tree, the schedule's weights at epochs 0, N/2 and N, the sampler, and a
short training run whose first epoch sees no compound clip."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from wildaffect.data.abaw import ANNOTATION_SUFFIX, format_annotation
from wildaffect.data.dataset import ClipDataset
from wildaffect.data.synth import AUDIO_ENCODER, VISUAL_ENCODER, make_synthetic_dataset
from wildaffect.errors import WildaffectError
from wildaffect.labels import AU_NAMES, EXPR_NAMES, SPLITS, TASK_SPECS, Task
from wildaffect.models.registry import get_config
from wildaffect.train.config import TrainConfig
from wildaffect.train.curriculum import (
    CurriculumSampler,
    compound_clips,
    compound_weight,
    curriculum_sampler,
    is_compound,
)
from wildaffect.train.resume import EpochSampler
from wildaffect.train.run import train

N_FRAMES = 200
E = {name: i for i, name in enumerate(EXPR_NAMES)}


def _au_rows(active_per_frame: dict[int, int]) -> np.ndarray:
    """(N_FRAMES, 12) AU labels: 0 everywhere, the first k AUs on at the given frames."""
    values = np.zeros((N_FRAMES, len(AU_NAMES)), np.float32)
    for frame, k in active_per_frame.items():
        values[frame, :k] = 1
    return values


def _write(root, task: Task, video: str, values: np.ndarray) -> None:
    path = root / TASK_SPECS[task].challenge_dir / SPLITS[0] / f"{video}{ANNOTATION_SUFFIX}"
    path.write_text(format_annotation(task, values))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Two 200-frame training videos relabelled by hand; clips of 50 frames, 4 per video."""
    synth = make_synthetic_dataset(tmp_path_factory.mktemp("cur"), 2, 1, N_FRAMES, grid=4,
                                   d_visual=4, d_audio=2, seed=0)
    a, b = synth.videos[SPLITS[0]]
    expr_a = np.full(N_FRAMES, E["Happiness"])  # clip 0: one emotion -> single
    expr_a[75:100] = E["Surprise"]  # clip 1: Happiness then Surprise -> compound
    expr_a[100:125] = E["Neutral"]  # clip 2: Neutral + Happiness -> single (Neutral not counted)
    expr_a[150:160] = TASK_SPECS[Task.EXPR].invalid  # clip 3: invalid + Other + Happiness
    expr_a[160:170] = E["Other"]  # ... -> single (Other not counted) unless its AUs say more
    _write(synth.root, Task.EXPR, a, expr_a)
    au_a = _au_rows({5: 4, 160: 5})  # clip 0: 4 AUs (single); clip 3: 5 AUs -> compound
    _write(synth.root, Task.AU, a, au_a)
    expr_b = np.full(N_FRAMES, TASK_SPECS[Task.EXPR].invalid)  # no valid EXPR at all
    expr_b[150:200] = E["Anger"]
    expr_b[199] = E["Fear"]  # clip 3: Anger + Fear on its last frame -> compound
    _write(synth.root, Task.EXPR, b, expr_b)
    au_b = _au_rows({60: 5, 110: 3})  # clip 1: 5 AUs -> compound; clip 2: 3 -> single
    au_b[60, 5:] = TASK_SPECS[Task.AU].invalid  # ... its other AUs unknown: still 5 active
    au_b[120:130] = TASK_SPECS[Task.AU].invalid  # whole invalid rows count for nothing
    _write(synth.root, Task.AU, b, au_b)
    return synth


def test_is_compound_by_hand():
    ids = np.array
    assert not is_compound(ids([]), ids([]))
    assert not is_compound(ids([E["Happiness"]] * 3), ids([0, 2, 4]))
    assert is_compound(ids([E["Happiness"], E["Sadness"]]), ids([]))
    assert not is_compound(ids([E["Neutral"], E["Other"], E["Fear"]]), ids([1]))
    assert is_compound(ids([]), ids([0, 5]))
    assert not is_compound(ids([]), ids([0, 5]), min_aus=6)


def test_compound_clips_on_a_hand_labelled_tree(tree):
    data = ClipDataset(tree.cache_dir, tree.root, SPLITS[0], [Task.AU, Task.EXPR], VISUAL_ENCODER,
                       AUDIO_ENCODER, clip_len=50, stride=50)
    assert [(data.sources[i].video, s) for i, s in data.clips][:4] == [
        (tree.videos[SPLITS[0]][0], s) for s in (0, 50, 100, 150)]
    want = [False, True, False, True,  # video a
            False, True, False, True]  # video b
    assert compound_clips(data).tolist() == want
    assert compound_clips(data, min_aus=6).tolist() == [False, True, False, False,
                                                        False, False, False, True]


def test_schedule_weights_by_hand():
    # 3 single + 2 compound clips, N = 4: natural compound share 0.4.
    assert compound_weight(0, 4, 3.0, 2.0) == 0.0
    assert compound_weight(2, 4, 3.0, 2.0) == pytest.approx(0.375)  # share 0.75 / 3.75 = 0.2
    assert compound_weight(4, 4, 3.0, 2.0) == 1.0
    assert compound_weight(9, 4, 3.0, 2.0) == 1.0
    sampler = CurriculumSampler(np.array([False, True, False, True, False]), 4, seed=3)
    assert sampler.epoch_weights(2).tolist() == pytest.approx([1, 0.375, 1, 0.375, 1])
    # With balanced base weights the share is of the weights: S = C = 4, p_nat 0.5 -> 0.25.
    weighted = CurriculumSampler(np.array([False, False, False, True, True]), 4,
                                 weights=np.array([1.0, 2.0, 1.0, 2.0, 2.0]))
    w = weighted.epoch_weights(2).numpy()
    assert w.tolist() == pytest.approx([1, 2, 1, 2 / 3, 2 / 3])
    assert w[3:].sum() / w.sum() == pytest.approx(0.25)


def test_sampler_epochs_0_half_and_n():
    compound = np.zeros(2000, bool)
    compound[:800] = True  # natural share 0.4
    sampler = CurriculumSampler(compound, 4, seed=5)
    first = sampler.order(0)
    assert len(first) == 2000 and not compound[first].any()
    half = compound[sampler.order(2)].mean()
    assert abs(half - 0.2) < 0.04  # expected 0.2, binomial sd 0.009
    assert sampler.order(4) == EpochSampler(2000, seed=5).order(4)  # plain training from N on
    assert sampler.order(2) == CurriculumSampler(compound, 4, seed=5).order(2)  # (seed, epoch)
    assert sampler.order(1) != sampler.order(2)
    # Nothing to schedule (no compound clip): the plain sampler in every epoch.
    plain = CurriculumSampler(np.zeros(10, bool), 4, seed=5)
    assert plain.order(0) == EpochSampler(10, seed=5).order(0)


def test_all_single_clips_warn(tree):
    data = ClipDataset(tree.cache_dir, tree.root, SPLITS[0], [Task.VA], VISUAL_ENCODER,
                       AUDIO_ENCODER, clip_len=50, stride=50)  # VA labels only: all single
    with pytest.warns(UserWarning, match="all 8 training clips are single"):
        curriculum_sampler(data, 2, 0, balanced=False)


def test_config_checks_and_preset_points_to_it():
    with pytest.raises(WildaffectError, match="curriculum_epochs must be >= 0"):
        TrainConfig(curriculum_epochs=-1)
    with pytest.raises(WildaffectError, match="group_by_length"):
        TrainConfig(curriculum_epochs=2, group_by_length=True)
    assert "curriculum_epochs" in get_config("mtl-mae-curriculum").description


class ClipRecorder(L.Callback):
    """(epoch, video, start) of every training clip the model is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen += [(trainer.current_epoch, v, int(s))
                      for v, s in zip(batch["video"], batch["start"], strict=True)]


def test_training_run_starts_without_compound_clips(tree, tmp_path):
    torch.set_num_threads(1)
    config = TrainConfig(
        preset="mtl-mae-curriculum", data_dir=str(tree.root), cache_dir=str(tree.cache_dir),
        out_dir=str(tmp_path / "run"), audio_encoder=None, epochs=3, batch_size=2, clip_len=50,
        clip_stride=50,
        warmup_epochs=0.5, progress_bar=False, log_every_n_steps=1, curriculum_epochs=2,
        model_overrides={"d_model": 8, "n_layers": 1, "transformer_heads": 2, "head_hidden": 8,
                         "tcn_dilations": (1,)},
    )
    recorder = ClipRecorder()
    train(config, callbacks=[recorder])
    data = ClipDataset(tree.cache_dir, tree.root, SPLITS[0], [Task.AU, Task.EXPR, Task.VA],
                       VISUAL_ENCODER, AUDIO_ENCODER, clip_len=50, stride=50)
    compound = {(data.sources[i].video, s) for (i, s), c in
                zip(data.clips, compound_clips(data), strict=True) if c}
    by_epoch = {e: [(v, s) for ep, v, s in recorder.seen if ep == e] for e in range(3)}
    assert all(len(clips) == 8 for clips in by_epoch.values())
    assert not set(by_epoch[0]) & compound  # epoch 0: single clips only
    assert set(by_epoch[2]) == {(data.sources[i].video, s) for i, s in data.clips}  # plain
