"""`wildaffect ablate`: the five Table 1 presets on a tiny synth with ~2 steps each; checks the
table's structure and that a re-run skips finished rows (not the numbers)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from wildaffect.cli import app
from wildaffect.data.synth import make_synthetic_dataset
from wildaffect.labels import AU_NAMES
from wildaffect.models.registry import TABLE1_PRESETS
from wildaffect.train.ablation import ablation_markdown, run_ablation
from wildaffect.train.config import TrainConfig

OVERRIDES = ["d_model=8", "d_token=4", "d_inner=8", "n_layers=1", "hga_heads=1", "xattn_heads=1",
             "d_state=2", "tcn_dilations=[1, 2]", "dropout=0.0"]


def test_ablation_table_and_resume(tmp_path):
    synth = make_synthetic_dataset(tmp_path / "synth", 2, 1, 200, grid=4, d_visual=4, d_audio=2,
                                   seed=0)
    out = tmp_path / "ablation"
    args = ["ablate", "--data", str(synth.root), "--cache", str(synth.cache_dir), "--out", str(out),
            "--epochs", "1", "--max-steps", "2", "--batch-size", "2", "--clip-len", "64",
            "--warmup-epochs", "0.5", "--seed", "3", "--no-progress"]
    for item in OVERRIDES:
        args += ["--override", item]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output

    table = json.loads((out / "ablation.json").read_text())
    presets = [name for name, _ in TABLE1_PRESETS]
    assert [row["preset"] for row in table["rows"]] == presets
    assert [row["paper_mean_f1"] for row in table["rows"]] == [p for _, p in TABLE1_PRESETS]
    for row in table["rows"]:
        assert 0.0 <= row["mean_f1"] <= 100.0 and list(row["per_au_f1"]) == list(AU_NAMES)
        config = json.loads((out / row["preset"] / "config.json").read_text())
        assert config["train_config"]["seed"] == 3 and config["model_config"]["d_model"] == 8
        assert config["model_config"]["name"] == row["preset"]
    md = (out / "ablation.md").read_text()
    assert md == ablation_markdown(table)
    assert "SAME cached features (`synth-grid` + `synth-audio`)" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "abaw-" in line]
    assert len(rows) == 2 * len(presets)  # mean-F1 table + per-AU table
    assert rows[0].startswith("| 1 | abaw-baseline |") and "| 36.50 |" in rows[0]
    assert md.count("| AU1 | AU2 |") == 1

    # A killed ablation resumes: finished rows are skipped, a trained-but-unscored row is only
    # evaluated, and the table comes out the same.
    (out / presets[-1] / "eval" / "Validation_Set" / "metrics.json").unlink()
    log: list[str] = []
    base = TrainConfig.from_dict(table["train_config"])
    again = run_ablation(base, out, log=log.append)
    assert log[:-1] == [f"{p}: done already, skipped" for p in presets[:-1]]
    assert log[-1] == f"{presets[-1]}: trained already, evaluating"
    assert again["rows"] == table["rows"]
