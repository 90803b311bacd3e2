"""TrainConfig's frame_step, audio_mask and find_unused_parameters: the config round trip, short
runs where each option changes what the model is given, exact mid-epoch resume with both on,
and the DDP strategy each run gets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.strategies import DDPStrategy
from train_helpers import LossRecorder, StopAfter

from wildaffect.data.cache import FeatureCache
from wildaffect.data.dataset import ClipDataset
from wildaffect.data.synth import AUDIO_ENCODER, VISUAL_ENCODER, make_synthetic_dataset
from wildaffect.errors import WildaffectError
from wildaffect.labels import SPLITS, Task
from wildaffect.models.registry import list_models
from wildaffect.train.augment import MaskSpec
from wildaffect.train.config import TrainConfig
from wildaffect.train.distributed import find_unused_parameters, strategy_for
from wildaffect.train.run import parse_override, train

sys.path.insert(0, str(Path(__file__).parent))
from test_models_registry import make_batch, tiny

TINY = {"d_model": 16, "d_token": 8, "d_inner": 8, "n_layers": 1, "hga_heads": 2,
        "xattn_heads": 2, "d_state": 4, "dropout": 0.0}
CLIP = 32


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    # 2 train videos x 6 clips of 32 frames, batch 4: 3 steps per epoch.
    return make_synthetic_dataset(tmp_path_factory.mktemp("opts"), 2, 1, 192, grid=4,
                                  d_visual=8, d_audio=8, seed=1)


def config(synth, out, **kw) -> TrainConfig:
    base = {"preset": "abaw-full", "data_dir": str(synth.root), "cache_dir": str(synth.cache_dir),
            "out_dir": str(out), "model_overrides": TINY, "epochs": 2, "batch_size": 4,
            "clip_len": CLIP, "clip_stride": CLIP, "warmup_epochs": 0.5, "progress_bar": False,
            "log_every_n_steps": 1}
    return TrainConfig(**{**base, **kw})


# -- config --------------------------------------------------------------------------------------


def test_options_round_trip_through_json_yaml_and_overrides():
    cfg = TrainConfig(frame_step=3, audio_mask=MaskSpec(1, 5, 2, 3), curriculum_epochs=4,
                      find_unused_parameters=True)
    assert cfg.audio_mask == (1, 5, 2, 3)
    data = cfg.to_dict()
    assert data["audio_mask"] == [1, 5, 2, 3]
    assert TrainConfig.from_dict(json.loads(json.dumps(data))) == cfg
    assert TrainConfig.from_dict(yaml.safe_load(yaml.safe_dump(data))) == cfg
    # The forms a user can write: a list, a mapping of MaskSpec's fields, "--audio-mask 1,5,2,3".
    key, value = parse_override("audio_mask=1,5,2,3")
    assert TrainConfig().with_overrides(**{key: value}).audio_mask == (1, 5, 2, 3)
    spec = {"time_masks": 1, "time_width": 5, "feature_masks": 2, "feature_width": 3}
    assert TrainConfig(audio_mask=spec).audio_mask == (1, 5, 2, 3)
    assert TrainConfig(audio_mask=parse_override("audio_mask=none")[1]).audio_mask is None
    assert TrainConfig().to_dict()["audio_mask"] is None
    for bad in ([1, 2, 3], (1, -1, 2, 3), "2,10", (1.5, 2, 3, 4)):
        with pytest.raises(WildaffectError, match="audio_mask must be 4 integers"):
            TrainConfig(audio_mask=bad)
    with pytest.raises(WildaffectError, match="frame_step must be >= 1"):
        TrainConfig(frame_step=0)


# -- what the model is given ---------------------------------------------------------------------


class BatchRecorder(L.Callback):
    """Copies of what each training step is given (after AudioMasking, which runs earlier)."""

    def __init__(self) -> None:
        self.batches: list[dict] = []
        self.fill: torch.Tensor | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.fill = getattr(pl_module.model, "audio_mean", None)
        self.batches.append({"epoch": trainer.current_epoch, "video": list(batch["video"]),
                             "start": batch["start"].tolist(), "visual": batch["visual"].clone(),
                             "audio": batch["audio"].clone()})


def test_frame_step_changes_the_clips_read_and_each_epoch(synth, tmp_path):
    torch.set_num_threads(1)
    recorder = BatchRecorder()
    train(config(synth, tmp_path / "run", frame_step=3, seed=4), callbacks=[recorder])
    reference = ClipDataset(synth.cache_dir, synth.root, SPLITS[0], list(Task), VISUAL_ENCODER,
                            AUDIO_ENCODER, clip_len=CLIP, stride=CLIP, frame_step=3, step_seed=4)
    index = {(reference.sources[i].video, s): c for c, (i, s) in enumerate(reference.clips)}
    cache, steps = FeatureCache(synth.cache_dir), {0: {}, 1: {}}
    for batch in recorder.batches:
        reference.set_epoch(batch["epoch"])
        for b, (video, start) in enumerate(zip(batch["video"], batch["start"], strict=True)):
            c = index[(video, start)]
            step = reference.clip_step(c)
            steps[batch["epoch"]][c] = step
            features = cache.read_features(VISUAL_ENCODER, video)[start::step][:CLIP]
            has_face = cache.read_array(video, "has_face")[start::step][:CLIP]
            got = batch["visual"][b, : len(features)].numpy()
            np.testing.assert_array_equal(got[has_face], features[has_face].astype(np.float32))
    assert len(steps[0]) == len(steps[1]) == len(reference)
    assert max(steps[0].values()) > 1  # frames were skipped
    assert steps[0] != steps[1]  # and drawn anew in epoch 1: set_epoch reached the dataset


def test_audio_mask_blanks_blocks_of_the_training_audio(synth, tmp_path):
    torch.set_num_threads(1)
    recorder = BatchRecorder()
    train(config(synth, tmp_path / "run", audio_mask=(2, 6, 1, 3), epochs=1),
          callbacks=[recorder])
    plain = ClipDataset(synth.cache_dir, synth.root, SPLITS[0], list(Task), VISUAL_ENCODER,
                        AUDIO_ENCODER, clip_len=CLIP, stride=CLIP)
    index = {(plain.sources[i].video, s): c for c, (i, s) in enumerate(plain.clips)}
    fill = recorder.fill.numpy() if recorder.fill is not None else np.zeros(8, np.float32)
    masked_rows = masked_cols = changed_clips = 0
    for batch in recorder.batches:
        for b, key in enumerate(zip(batch["video"], batch["start"], strict=True)):
            original = plain[index[key]]["audio"].numpy()  # (L, Da)
            got = batch["audio"][b].numpy()
            changed = got != original
            changed_clips += int(changed.any())
            np.testing.assert_array_equal(got[changed], np.broadcast_to(fill, got.shape)[changed])
            masked_rows += int((got == fill).all(1).sum())
            masked_cols += int((got == fill).all(0).sum())
    assert changed_clips > len(plain) // 2  # (a mask's width can be drawn 0)
    assert masked_rows > 0 and masked_cols > 0  # whole frames and whole feature dims




# Stopped after epoch 0's last step, or inside epoch 1 (also with a loader worker, whose copy
# of the dataset is made before any hook runs).
@pytest.mark.parametrize(("stop", "workers"), [(3, 0), (4, 0), (4, 1), (3, 1)])
def test_resume_is_exact_with_frame_step_and_audio_mask(synth, tmp_path, stop, workers):
    """5 straight steps vs ``stop`` steps then resumed: the same later losses and weights.
    Needs the dataset's epoch and the masking generator back from the checkpoint."""
    torch.set_num_threads(1)
    common = {"frame_step": 4, "audio_mask": (2, 6, 2, 3), "max_steps": 5, "num_workers": workers,
              "checkpoint_every_n_steps": 1, "model_overrides": {**TINY, "dropout": 0.2}}
    straight = LossRecorder()
    train(config(synth, tmp_path / "straight", **common), callbacks=[straight])
    run = tmp_path / "resumed"
    train(config(synth, run, **common), callbacks=[StopAfter(stop)])
    second = LossRecorder()
    train(config(synth, run, **common), resume=run / "checkpoints" / "last.ckpt",
          callbacks=[second])
    assert sorted(straight.losses) == [1, 2, 3, 4, 5]
    assert second.losses == {s: straight.losses[s] for s in range(stop + 1, 6)}
    want = torch.load(tmp_path / "straight" / "final.ckpt", weights_only=False)["state_dict"]
    got = torch.load(run / "final.ckpt", weights_only=False)["state_dict"]
    for name in want:
        assert torch.equal(want[name], got[name]), name


# -- DDP -----------------------------------------------------------------------------------------


def test_strategy_carries_find_unused_parameters():
    assert strategy_for(1, 1, True) == "auto"
    for flag in (True, False):
        strategy = strategy_for(2, 1, flag)
        assert isinstance(strategy, DDPStrategy)
        assert strategy._ddp_kwargs["find_unused_parameters"] is flag
    maven = tiny("maven").config
    assert find_unused_parameters(None, maven) and not find_unused_parameters(False, maven)
    assert find_unused_parameters(True, tiny("expr-vnaw").config)


@pytest.mark.parametrize("name", list_models())
def test_auto_rule_matches_which_presets_leave_parameters_without_gradient(name):
    """The auto rule is True exactly for the presets where a batch like the cached training
    data's (no text / behaviour) without any face leaves some parameter without a gradient."""
    model = tiny(name, modality_dropout=(0.0, 0.0))
    model.train()
    batch = make_batch(model.config, extras=False)
    batch["face_mask"][:] = False
    outputs = model(batch).outputs
    sum(y.nan_to_num().sum() for y in outputs.values()).backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert find_unused_parameters(None, model.config) == bool(unused), unused


# -- per-AU loss weights ---------------------------------------------------------------------------


class ModuleGrabber(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.module = pl_module


def test_au_loss_weights_reach_the_au_loss_in_label_order(synth, tmp_path):
    """``au_loss_weights`` become the AU loss's per-AU weights (missing AUs: 1), stored with
    the run so a resume rebuilds them; all-zero weights leave nothing to learn."""
    from wildaffect.labels import AU_NAMES

    torch.set_num_threads(1)
    grab = ModuleGrabber()
    train(config(synth, tmp_path / "w", max_steps=1, au_loss_weights={"AU12": 3.0, "AU25": 0}),
          callbacks=[grab])
    expected = [3.0 if au == "AU12" else 0.0 if au == "AU25" else 1.0 for au in AU_NAMES]
    assert grab.module.losses["AU"].au_weight.tolist() == expected
    assert grab.module.hparams["loss_options"]["AU"]["au_weight"] == expected

    zero, one = LossRecorder(), LossRecorder()
    train(config(synth, tmp_path / "z", max_steps=2, au_loss_weights=dict.fromkeys(AU_NAMES, 0)),
          callbacks=[zero])
    train(config(synth, tmp_path / "o", max_steps=2), callbacks=[one])
    assert set(zero.losses.values()) == {0.0} and min(one.losses.values()) > 0


def test_au_loss_weights_are_checked_before_training(synth, tmp_path):
    from wildaffect.train.run import parse_au_weights

    with pytest.raises(WildaffectError, match="unknown AU.*AU99"):
        config(synth, tmp_path, au_loss_weights={"AU99": 2.0})
    with pytest.raises(WildaffectError, match="must be >= 0, got AU12=-1"):
        config(synth, tmp_path, au_loss_weights={"AU12": -1.0})
    assert parse_au_weights(["au12=3", "AU25=0.5"]) == {"AU12": 3.0, "AU25": 0.5}
    with pytest.raises(WildaffectError, match="must be a number"):
        parse_au_weights(["AU12=high"])


# -- fine-tuning from another run (init_from) -------------------------------------------------------


def _model_weights(path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


class StartWeights(L.Callback):
    """The model's weights when fitting starts (after any init_from)."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.weights = {k: v.clone() for k, v in pl_module.model.state_dict().items()}


def test_init_from_starts_a_new_task_from_a_trained_run(synth, tmp_path):
    """An AU run's weights start an AU + EXPR run: every shared weight is the source's final
    one when fitting starts, the EXPR head (not in the source) keeps its fresh init and is
    named in a warning, and the new run's own steps start at 1 (a new optimiser and
    schedule, not a resume)."""
    torch.set_num_threads(1)
    train(config(synth, tmp_path / "au", max_steps=2, tasks=("AU",)))
    source = _model_weights(tmp_path / "au" / "final.ckpt")
    start, losses = StartWeights(), LossRecorder()
    with pytest.warns(UserWarning, match=r"keep their fresh initialisation: .*heads\.EXPR"):
        train(config(synth, tmp_path / "ft", max_steps=2, tasks=("AU", "EXPR"),
                     init_from=str(tmp_path / "au")), callbacks=[start, losses])
    shared = [k for k in start.weights if k in source]
    fresh = [k for k in start.weights if k not in source]
    assert len(shared) > 20 and fresh and all(k.startswith("heads.heads.EXPR") for k in fresh)
    assert all(torch.equal(start.weights[k], source[k]) for k in shared)
    assert sorted(losses.losses) == [1, 2]
    scratch = StartWeights()
    train(config(synth, tmp_path / "scratch", max_steps=1, tasks=("AU", "EXPR"), seed=5),
          callbacks=[scratch])
    assert not all(torch.equal(scratch.weights[k], source[k]) for k in shared)


def test_init_from_refuses_another_architecture_or_a_missing_checkpoint(synth, tmp_path):
    from wildaffect.errors import InputError

    torch.set_num_threads(1)
    train(config(synth, tmp_path / "src", max_steps=1, tasks=("AU",)))
    wider = config(synth, tmp_path / "wide", max_steps=1, tasks=("AU",),
                   init_from=str(tmp_path / "src" / "final.ckpt"),
                   model_overrides={**TINY, "d_model": 24})
    with pytest.raises(InputError, match=r"final\.ckpt: cannot initialise .* differ in shape"):
        train(wider)
    assert not (tmp_path / "wide" / "checkpoints").exists()
    with pytest.raises(WildaffectError, match=r"empty.final\.ckpt: checkpoint not found"):
        (tmp_path / "empty").mkdir()
        train(config(synth, tmp_path / "x", max_steps=1, init_from=str(tmp_path / "empty")))


def test_cli_init_from_a_file_that_is_no_checkpoint_is_one_line(synth, tmp_path):
    import subprocess

    bogus = tmp_path / "notes.ckpt"
    bogus.write_text("not a checkpoint\n")
    result = subprocess.run([
        sys.executable, "-m", "wildaffect.cli", "train", "--data", str(synth.root),
        "--cache", str(synth.cache_dir), "--out", str(tmp_path / "run"),
        "--init-from", str(bogus), "--max-steps", "1", "--batch-size", "4",
        "--clip-len", str(CLIP), "--no-progress", *[f"--set={k}={v}" for k, v in TINY.items()],
    ], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "notes.ckpt" in line]
    assert len(lines) == 1 and "not a readable checkpoint" in lines[0], result.stderr[-2000:]
