"""The known-answer check of the training issue: on the synthetic dataset the paper's full
model (HGA -> asymmetric cross-attention -> AG-SSM, ASL) learns, i.e. its validation AU mean F1
is far above the no-skill baseline of predicting every AU as present. Numbers are not pinned:
the margin is what is asserted."""

from __future__ import annotations

import numpy as np

from wildaffect.data.synth import make_synthetic_dataset
from wildaffect.labels import Task
from wildaffect.train.config import TrainConfig
from wildaffect.train.run import train

TINY = dict(  # noqa: C408
    d_model=32, d_token=16, d_inner=16, n_layers=1, hga_heads=2, xattn_heads=2, d_state=8,
    dropout=0.0,
)


def no_skill_f1(labels: list[np.ndarray]) -> float:
    """Mean over AUs of the F1 of always answering 'active': 2p / (1 + p)."""
    values = np.concatenate(labels)
    rates = [(col[col >= 0] == 1).mean() for col in values.T]
    return float(np.mean([2 * p / (1 + p) for p in rates]))


def test_full_model_learns_the_synthetic_aus(tmp_path):
    data = make_synthetic_dataset(tmp_path / "synth", 8, 2, 600, grid=8, d_visual=32, d_audio=16)
    baseline = no_skill_f1([data.labels[(Task.AU, v)] for v in data.videos["Validation_Set"]])
    config = TrainConfig(
        preset="abaw-full", data_dir=str(data.root), cache_dir=str(data.cache_dir),
        out_dir=str(tmp_path / "run"), model_overrides=TINY, epochs=4, batch_size=4,
        clip_len=64, clip_stride=32, warmup_epochs=0.5, lr=3e-3, weight_decay=0.0,
        progress_bar=False,
    )
    result = train(config)
    f1 = result.final_metrics["val/AU_f1"]
    assert f1 > baseline + 0.15, f"AU mean F1 {f1:.3f} vs no-skill {baseline:.3f}"
