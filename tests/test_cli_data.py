"""``wildaffect data check`` on tiny ABAW trees, in-process and as a real subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from abaw_tree import build_abaw_tree
from typer.testing import CliRunner

from wildaffect.cli import app
from wildaffect.errors import WildaffectError
from wildaffect.labels import AU_NAMES, EXPR_NAMES, SPLITS, Task

runner = CliRunner()
N_FRAMES = {"1-30-1280x720": 14, "2-30-640x360_left": 9, "2-30-640x360_right": 9,
            "3-25-1920x1080": 11}


@pytest.fixture
def good_tree(tmp_path):
    return build_abaw_tree(tmp_path / "abaw", n_frames=N_FRAMES, with_frames=True, seed=3)


def expected_counts(tree, task: Task, split: str) -> tuple[int, int, int, int]:
    videos = tree.videos(task, split)
    frames = sum(tree.n_frames[v] for v in videos)
    valid = 0
    for v in videos:
        mask = tree.labels[(task, split, v)][1]
        valid += int((mask if mask.ndim == 1 else mask.any(axis=1)).sum())
    if not tree.frames_present:
        return len(videos), frames, valid
    with_image = sum(int(tree.frames_present[v].sum()) for v in videos)
    return len(videos), frames, valid, with_image


def table_row(output: str, split: str, numbers) -> bool:
    """Is there a table line ``split | n1 | n2 ...`` with exactly these numbers?"""
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if cells[:1] == [split] and cells[1:] == [f"{n:,}" for n in numbers]:
            return True
    return False


def corrupt(tree, root: Path) -> list[str]:
    """Copy of the tree with two bad files; returns the expected 'path:line' prefixes."""
    shutil.copytree(tree.root, root)
    va = root / tree.paths[(Task.VA, SPLITS[0], "1-30-1280x720")].relative_to(tree.root)
    lines = va.read_text().splitlines()
    lines[4] = "0.2,1.7"  # line 5 of the file
    va.write_text("\n".join(lines) + "\n")
    expr = root / tree.paths[(Task.EXPR, SPLITS[1], "3-25-1920x1080")].relative_to(tree.root)
    expr.write_bytes(expr.read_bytes() + b"\n\n3\n")  # a blank line inside: line 13
    return [f"{va}:5: arousal is '1.7'", f"{expr}:13: blank line"]


def test_good_tree_in_process(good_tree, tmp_path):
    json_path = tmp_path / "out" / "summary.json"
    result = runner.invoke(app, ["data", "check", str(good_tree.root), "--frames",
                                 str(good_tree.frames_dir), "--json", str(json_path)])
    assert result.exit_code == 0, result.output
    assert "all 12 files are valid" in result.output
    for task in Task:
        assert f"{task.value} label distribution" in result.output
        for split in SPLITS:
            assert table_row(result.output, split, expected_counts(good_tree, task, split)), (
                f"{task} {split} row missing:\n{result.output}")
    summary = json.loads(json_path.read_text())
    assert summary["files"] == 12 and summary["failed"] == 0 and summary["layout"] == "challenge"
    for task in Task:
        for split in SPLITS:
            got = summary["tasks"][task.value][split]
            videos, frames, valid, with_image = expected_counts(good_tree, task, split)
            assert (got["videos"], got["frames"], got["valid_frames"],
                    got["frames_with_image"]) == (videos, frames, valid, with_image)
    # the distribution, recomputed from what the builder wrote
    train = SPLITS[0]
    au = np.concatenate([good_tree.labels[(Task.AU, train, v)][0]
                         for v in good_tree.videos(Task.AU, train)])
    au = au[(au != -1).all(axis=1)]
    for i, name in enumerate(AU_NAMES):
        assert summary["tasks"]["AU"][train]["distribution"][name] == pytest.approx(
            au[:, i].mean())
    expr = np.concatenate([good_tree.labels[(Task.EXPR, train, v)][0]
                           for v in good_tree.videos(Task.EXPR, train)])
    counts = np.bincount(expr[expr >= 0], minlength=8)
    assert [summary["tasks"]["EXPR"][train]["distribution"][n] for n in EXPR_NAMES] == list(counts)
    va = np.concatenate([good_tree.labels[(Task.VA, train, v)][0]
                         for v in good_tree.videos(Task.VA, train)])
    valence = va[va[:, 0] != -5, 0].astype(np.float64)
    stats = summary["tasks"]["VA"][train]["distribution"]["valence"]
    assert stats["mean"] == pytest.approx(valence.mean())
    assert stats["std"] == pytest.approx(valence.std())  # population std


def test_corrupted_tree_lists_every_failure(good_tree, tmp_path):
    expected = corrupt(good_tree, tmp_path / "bad")
    json_path = tmp_path / "bad.json"
    result = runner.invoke(app, ["data", "check", str(tmp_path / "bad"), "--json", str(json_path)])
    assert result.exit_code == 1
    for prefix in expected:
        assert prefix in result.output
    assert "2 of 12 files failed" in result.output
    assert "Traceback" not in result.output
    summary = json.loads(json_path.read_text())
    assert summary["failed"] == 2
    assert sorted(f["line"] for f in summary["failures"]) == [5, 13]
    # the other files still counted: VA Train has one video fewer
    assert summary["tasks"]["VA"][SPLITS[0]]["videos"] == 2


def test_task_filter_and_case(good_tree):
    result = runner.invoke(app, ["data", "check", str(good_tree.root), "--task", "va"])
    assert result.exit_code == 0, result.output
    assert "VA label distribution" in result.output and "AU label" not in result.output
    assert "all 4 files are valid" in result.output


def test_legacy_layout(tmp_path):
    tree = build_abaw_tree(tmp_path, layout="legacy", n_frames=5)
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "legacy layout, 12 annotation files" in result.output
    assert table_row(result.output, SPLITS[1], expected_counts(tree, Task.AU, SPLITS[1]))


def test_not_a_dataset_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert isinstance(result.exception, WildaffectError)
    build_abaw_tree(tmp_path, tasks=[Task.VA])
    result = runner.invoke(app, ["data", "check", str(tmp_path), "--frames", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "frames folder not found" in str(result.exception)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("wildaffect")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "wildaffect.cli"]
    return subprocess.run([*command, *args], check=False, capture_output=True, text=True, timeout=120)


def test_subprocess_good_and_corrupted(good_tree, tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "wildaffect.cli", "data", "check", str(good_tree.root),
         "--frames", str(good_tree.frames_dir)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert good.returncode == 0, good.stderr
    for split in SPLITS:
        assert table_row(good.stdout, split, expected_counts(good_tree, Task.AU, split))

    expected = corrupt(good_tree, tmp_path / "bad")
    bad = run_cli("data", "check", str(tmp_path / "bad"))
    assert bad.returncode == 1
    output = bad.stdout + bad.stderr
    for prefix in expected:
        assert prefix in output
    assert "2 of 12 files failed" in output and "Traceback" not in output

    missing = run_cli("data", "check", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert "not a directory" in missing.stderr and "Traceback" not in missing.stderr
