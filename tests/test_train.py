"""Training: optimiser groups, the warm-up + cosine schedule, a few real steps on synth with
checkpoint round trip, SWA without BatchNorm, bad inputs before training, and learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from train_helpers import TINY, LossRecorder, StopAfter

from wildaffect.data.synth import make_synthetic_dataset
from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import SPLITS, TASK_SPECS, Task
from wildaffect.models.registry import create_model
from wildaffect.train.config import TrainConfig
from wildaffect.train.optim import build_scheduler, param_groups, warmup_cosine
from wildaffect.train.run import load_model, parse_override, train


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    # 4 train videos x 4 clips of 64 frames; 1 validation video (kept small: speed).
    return make_synthetic_dataset(tmp_path_factory.mktemp("train"), 4, 1, 240, grid=4,
                                  d_visual=16, d_audio=16, seed=0)


def config(synth, out, **kw) -> TrainConfig:
    base = {"preset": "abaw-full", "data_dir": str(synth.root), "cache_dir": str(synth.cache_dir),
                "out_dir": str(out), "model_overrides": TINY, "epochs": 1, "batch_size": 4, "clip_len": 64,
                "clip_stride": 64, "warmup_epochs": 0.5, "progress_bar": False, "log_every_n_steps": 1}
    return TrainConfig(**{**base, **kw})


def test_param_groups_decay_no_decay_and_lora():
    torch.manual_seed(0)
    model = create_model("abaw-full", d_visual=8, d_audio=4, **TINY)
    model.add_module("lora_adapter", nn.Linear(4, 4))
    groups = {g["name"]: g for g in param_groups(model, lr=1e-3, lora_lr=1e-4, weight_decay=0.1)}
    names = {k: set(g["param_names"]) for k, g in groups.items()}
    assert names["lora"] == {"lora_adapter.weight", "lora_adapter.bias"}
    assert groups["lora"]["lr"] == 1e-4 and groups["decay"]["lr"] == 1e-3
    assert groups["no_decay"]["weight_decay"] == 0.0 and groups["decay"]["weight_decay"] == 0.1
    assert model.no_weight_decay_names() - {"lora_adapter.bias"} <= names["no_decay"]
    assert any(n.endswith("A_log") for n in names["no_decay"])
    assert any(n.endswith(".D") for n in names["no_decay"])
    assert all(not n.endswith((".bias", "A_log")) for n in names["decay"])
    every = {n for n, _ in model.named_parameters()}
    assert set().union(*names.values()) == every  # each parameter in exactly one group
    assert sum(map(len, names.values())) == len(every)


def test_warmup_cosine_values():
    assert warmup_cosine(0, 4, 14) == pytest.approx(0.25)
    assert warmup_cosine(3, 4, 14) == pytest.approx(1.0)
    assert warmup_cosine(4, 4, 14) == pytest.approx(1.0)
    assert warmup_cosine(9, 4, 14) == pytest.approx(0.5)  # half way through the cosine
    assert warmup_cosine(14, 4, 14) == pytest.approx(0.0)
    assert warmup_cosine(20, 4, 14, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(6, 0, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.6)))
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = build_scheduler(opt, 4, 14)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([2.0 * warmup_cosine(s, 4, 14) for s in range(10)])


def test_parse_override():
    assert parse_override("d_model=64") == ("d_model", 64)
    assert parse_override("tcn_dilations=[1, 2]") == ("tcn_dilations", [1, 2])
    assert parse_override("temporal=tcn") == ("temporal", "tcn")
    with pytest.raises(WildaffectError):
        parse_override("d_model")


def test_few_steps_checkpoint_and_reload(synth, tmp_path):
    from wildaffect.train.module import AffectModule

    result = train(config(synth, tmp_path / "run", max_steps=4))
    assert result.final_checkpoint.is_file()
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / "logs" / "metrics.csv").is_file()
    data = torch.load(result.final_checkpoint, map_location="cpu", weights_only=False)
    hp = data["hyper_parameters"]
    assert hp["model_config"]["d_visual"] == 16 and hp["model_config"]["visual_input"] == "grid"
    assert hp["model_config"]["d_audio"] == 16 and hp["label_names"]["AU"][0] == "AU1"
    assert hp["train_config"]["preset"] == "abaw-full" and "wildaffect_version" in hp
    assert data["global_step"] == 4
    model = load_model(result.final_checkpoint)
    reference = AffectModule.load_from_checkpoint(result.final_checkpoint).model.eval()
    g = torch.Generator().manual_seed(0)
    batch = {"visual": torch.randn(1, 10, 4, 4, 16, generator=g),
             "landmarks": torch.rand(1, 10, 68, 2, generator=g),
             "audio": torch.randn(1, 10, 16, generator=g)}
    with torch.no_grad():
        got, want = model(batch).outputs[Task.AU], reference(batch).outputs[Task.AU]
    torch.testing.assert_close(got, want)
    assert set(result.final_metrics) >= {"val/AU_f1", "val/score"}


def test_swa_without_batchnorm_ends_cleanly(synth, tmp_path):
    """SWA over the last epoch of a LayerNorm-only model: no BN-update epoch, weights averaged."""
    cfg = config(synth, tmp_path / "swa", epochs=2, swa_epochs=1, clip_len=128, clip_stride=128,
                 batch_size=4, tasks=("AU", "EXPR", "VA"))
    result = train(cfg)
    data = torch.load(result.final_checkpoint, map_location="cpu", weights_only=False)
    assert data["epoch"] == 2  # exactly the configured epochs: no extra BN epoch
    assert {"val/EXPR_f1", "val/VA_ccc", "val/AU_f1"} <= set(result.final_metrics)


def test_bad_inputs_fail_before_training(synth, tmp_path):
    import shutil

    with pytest.raises(WildaffectError, match="unknown model preset 'nope'.*abaw-full"):
        train(config(synth, tmp_path / "a", preset="nope"))
    root = tmp_path / "tree"
    shutil.copytree(synth.root, root, ignore=shutil.ignore_patterns("cache"))
    shutil.rmtree(root / TASK_SPECS[Task.AU].challenge_dir / SPLITS[0])
    with pytest.raises(WildaffectError, match="Train_Set"):
        train(config(synth, tmp_path / "b", data_dir=str(root)))
    cache = tmp_path / "cache"
    shutil.copytree(synth.cache_dir, cache)
    video = synth.videos[SPLITS[1]][0]
    np.save(cache / "features" / "synth-audio" / f"{video}.npy", np.zeros((299, 16), np.float16))
    with pytest.raises(InputError, match="synth-audio features have 299 frames"):
        train(config(synth, tmp_path / "c", cache_dir=str(cache)))
    assert not any((tmp_path / name).exists() for name in "abc")  # nothing was started




def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_resume_mid_epoch_is_exact(synth, tmp_path):
    """6 steps straight vs 3 steps (stop mid-epoch 1), resume from last.ckpt, 3 more: the same
    losses for steps 4 to 6 and bit-identical final weights. Dropout and modality dropout are
    on, so the RNG states must be restored too; the run crosses an epoch boundary, so the
    per-epoch clip order and the LR schedule must be restored too."""
    model = {**TINY, "dropout": 0.2, "modality_dropout": (0.3, 0.3)}
    # 16 clips of 64 frames, batch 4: 4 steps per epoch; 6 steps = 1.5 epochs.
    common = {"model_overrides": model, "epochs": 2, "batch_size": 4, "max_steps": 6,
              "warmup_epochs": 1.0, "checkpoint_every_n_steps": 1}
    straight = LossRecorder()
    train(config(synth, tmp_path / "straight", **common), callbacks=[straight])
    first = LossRecorder()
    run = tmp_path / "resumed"
    train(config(synth, run, **common), callbacks=[first, StopAfter(3)])
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 3
    second = LossRecorder()
    train(config(synth, run, **common), resume=last, callbacks=[second])
    assert sorted(straight.losses) == [1, 2, 3, 4, 5, 6]
    assert [first.losses[s] for s in (1, 2, 3)] == [straight.losses[s] for s in (1, 2, 3)]
    assert sorted(second.losses) == [4, 5, 6]
    assert second.losses[4] == straight.losses[4]  # the next step after the resume
    assert [second.losses[s] for s in (5, 6)] == [straight.losses[s] for s in (5, 6)]
    assert (run / "logs" / "metrics.csv").is_file()  # the first part's log survives the resume
    assert (run / "logs" / "resumed-step3" / "metrics.csv").is_file()
    want, got = _weights(tmp_path / "straight" / "final.ckpt"), _weights(run / "final.ckpt")
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), name
    # Resuming with another architecture is refused before anything starts.
    other = config(synth, tmp_path / "other", **{**common, "model_overrides": {**model, "d_model": 16}})
    with pytest.raises(InputError, match="another model config.*d_model"):
        train(other, resume=last)
    assert not (tmp_path / "other").exists()


def test_bf16_mixed_two_steps_finite(synth, tmp_path):
    """CPU autocast runs matmuls/linears in bf16 (AMX here); the losses are computed in fp32."""
    losses = LossRecorder()
    result = train(config(synth, tmp_path / "bf16", max_steps=2, precision="bf16-mixed"),
                   callbacks=[losses])
    assert sorted(losses.losses) == [1, 2]
    assert all(math.isfinite(v) for v in losses.losses.values())
    assert math.isfinite(result.final_metrics["val/score"])
