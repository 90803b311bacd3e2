"""Two-process DDP on CPU (gloo): `wildaffect train --devices 2` on a tiny synth for a few
steps; both ranks must end with bit-identical weights and log the same (rank-averaged) loss.

Runs the real CLI in a subprocess: Lightning's "ddp" strategy re-launches the command for
rank 1, which it cannot do from inside pytest. About 30-60 s on 2 shared cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from wildaffect.data.synth import make_synthetic_dataset


def test_two_ranks_agree(tmp_path):
    synth = make_synthetic_dataset(tmp_path / "synth", 2, 1, 200, grid=4, d_visual=4, d_audio=2,
                                   seed=0)
    run = tmp_path / "run"
    overrides = ["d_model=8", "d_token=4", "d_inner=8", "n_layers=1", "hga_heads=1",
                 "xattn_heads=1", "d_state=2", "dropout=0.1"]
    cmd = [sys.executable, "-m", "wildaffect.cli", "train", "--data", str(synth.root),
           "--cache", str(synth.cache_dir), "--out", str(run), "--devices", "2",
           "--num-nodes", "1", "--max-steps", "3", "--epochs", "3", "--batch-size", "1",
           "--clip-len", "64", "--warmup-epochs", "0.5", "--no-progress"]
    for item in overrides:
        cmd += ["--override", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1]
    assert all(r["world_size"] == 2 and r["global_step"] == 3 for r in reports)
    assert reports[0]["state_sha256"] == reports[1]["state_sha256"]
    assert reports[0]["train_loss"] is not None
    assert reports[0]["train_loss"] == reports[1]["train_loss"]
