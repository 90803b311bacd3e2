"""Two-process DDP on CPU (gloo): `wildaffect train --devices 2` on a tiny synth for one epoch;
both ranks must end with bit-identical weights, log the same (rank-averaged) loss, and score
the same validation metrics over every validation video once (3 videos on 2 ranks: the
sampler repeats one), equal to a single-process validation of the final weights.

Runs the real CLI in a subprocess: Lightning's "ddp" strategy re-launches the command for
rank 1, which it cannot do from inside pytest. About 30-60 s on 2 shared cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wildaffect.data.synth import make_synthetic_dataset


def test_two_ranks_agree(tmp_path):
    synth = make_synthetic_dataset(tmp_path / "synth", 2, 3, 200, grid=4, d_visual=4, d_audio=2,
                                   seed=0)
    run = tmp_path / "run"
    overrides = ["d_model=8", "d_token=4", "d_inner=8", "n_layers=1", "hga_heads=1",
                 "xattn_heads=1", "d_state=2", "dropout=0.1"]
    cmd = [sys.executable, "-m", "wildaffect.cli", "train", "--data", str(synth.root),
           "--cache", str(synth.cache_dir), "--out", str(run), "--devices", "2",
           "--num-nodes", "1", "--epochs", "1", "--batch-size", "1",
           "--clip-len", "64", "--warmup-epochs", "0.5", "--no-progress"]
    for item in overrides:
        cmd += ["--override", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1]
    assert all(r["world_size"] == 2 and r["global_step"] > 3 for r in reports)
    assert reports[0]["global_step"] == reports[1]["global_step"]
    assert reports[0]["state_sha256"] == reports[1]["state_sha256"]
    assert reports[0]["train_loss"] is not None
    assert reports[0]["train_loss"] == reports[1]["train_loss"]

    # Validation: each rank scored all 3 videos once (600 frames), not its share.
    assert [r["val_frames"] for r in reports] == [{"AU": 600}, {"AU": 600}]
    assert reports[0]["val_metrics"] == reports[1]["val_metrics"]
    assert reports[0]["val_metrics"]["val/score"] == pytest.approx(
        single_process_val_metrics(run / "final.ckpt")["val/score"], abs=1e-6)


def single_process_val_metrics(checkpoint) -> dict[str, float]:
    """Validate a run's checkpoint in this process, on one device."""
    import lightning as L
    import torch

    from wildaffect.data.dataset import collate
    from wildaffect.train.module import AffectModule
    from wildaffect.train.run import build_datasets

    module = AffectModule.load_from_checkpoint(checkpoint, map_location="cpu")
    _, val_set = build_datasets(module.train_config, module.tasks)
    loader = torch.utils.data.DataLoader(val_set, batch_size=1, collate_fn=collate)
    L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
              enable_checkpointing=False, enable_model_summary=False).validate(
        module, loader, verbose=False)
    return module.val_metrics
