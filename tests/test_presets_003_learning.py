"""Known-answer checks of the seed-003 presets on the synthetic dataset (labels follow the
synthetic AUs, see wildaffect.data.synth): a VA preset reaches a CCC far above 0 and the
multi-task preset beats the no-skill ABAW multi-task score. Margins are asserted, numbers are
not pinned. Tiny widths, one thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wildaffect.data.synth import make_synthetic_dataset
from wildaffect.labels import EXPR_NAMES, Task
from wildaffect.train.config import TrainConfig
from wildaffect.train.run import train

TINY = {
    "d_model": 32, "d_token": 16, "n_layers": 1, "hga_heads": 2, "xattn_heads": 2,
    "transformer_heads": 2, "d_state": 8, "d_inner": 16, "dropout": 0.0,
    "tcn_dilations": (1, 2, 4),
}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), 8, 2, 600, grid=8,
                                  d_visual=32, d_audio=16)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(data, tmp_path, preset: str, epochs: int, audio: bool, **overrides) -> dict[str, float]:
    config = TrainConfig(
        preset=preset, data_dir=str(data.root), cache_dir=str(data.cache_dir),
        out_dir=str(tmp_path / "run"), model_overrides={**TINY, **overrides}, epochs=epochs,
        batch_size=4, clip_len=64, clip_stride=32, warmup_epochs=0.5, lr=3e-3,
        weight_decay=0.0, progress_bar=False, audio_encoder="synth-audio" if audio else None,
    )
    return train(config).final_metrics


def no_skill(data) -> dict[str, float]:
    """Validation scores of answers that ignore the input: every AU active (AU mean F1), the
    majority expression everywhere (EXPR macro F1), a constant VA (CCC 0), and their ABAW sum."""
    videos = data.videos["Validation_Set"]
    au = np.concatenate([data.labels[(Task.AU, v)] for v in videos])
    p = [(col[col >= 0] == 1).mean() for col in au.T]
    au_f1 = float(np.mean([2 * x / (1 + x) for x in p]))
    expr = np.concatenate([data.labels[(Task.EXPR, v)] for v in videos])
    expr = expr[expr >= 0]
    share = np.bincount(expr, minlength=len(EXPR_NAMES)).max() / expr.size
    expr_f1 = float(2 * share / (1 + share) / len(EXPR_NAMES))
    return {"AU": au_f1, "EXPR": expr_f1, "score": au_f1 + expr_f1}


def test_grid_va_preset_learns_valence_and_arousal(synth, tmp_path):
    """va-clip-ast-grid: per-stream GRUs, cross-attention + gated fusion, grid head and loss."""
    metrics = run(synth, tmp_path, "va-clip-ast-grid", epochs=4, audio=True)
    assert metrics["val/VA_ccc"] > 0.3, metrics
    assert min(metrics["val/valence_ccc"], metrics["val/arousal_ccc"]) > 0.15, metrics


def test_multitask_preset_learns_au_expr_va_together(synth, tmp_path):
    """mtl-mae-curriculum's temporal convergence + task-fusion heads, all three tasks at once.
    The synthetic AU evidence is local to face regions (global pooling cannot tell it from the
    distractors, by design), so the spatial block is the landmark-guided one here."""
    metrics = run(synth, tmp_path, "mtl-mae-curriculum", epochs=8, audio=False, spatial="hga")
    baseline = no_skill(synth)
    assert metrics["val/score"] > baseline["score"] + 0.3, (metrics, baseline)
    assert metrics["val/VA_ccc"] > 0.2, metrics
    assert metrics["val/EXPR_f1"] > baseline["EXPR"] + 0.08, (metrics, baseline)
