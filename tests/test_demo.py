"""`wildaffect demo` works from an install with no network: real clip in, table, plot and video out."""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np

from wildaffect.labels import EXPR_NAMES
from wildaffect.predict.batch import read_table


def test_demo_writes_the_table_the_plot_and_the_overlay(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "wildaffect.cli", "demo", "--out", str(out)],
        capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "56 (100%)" in result.stdout, result.stdout  # frames with a face
    table = read_table(out / "1001_DFA_HAP_XX.csv")
    assert len(table) == 56 and (table["face"] == 1).all()
    np.testing.assert_allclose(table[list(EXPR_NAMES)].sum(axis=1), 1.0, atol=1e-5)
    assert (out / "1001_DFA_HAP_XX.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with av.open(str(out / "1001_DFA_HAP_XX.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 56
