"""`wildaffect demo` works from an install with no network: real clip in, figure and record out."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from wildaffect.data.cache import FeatureCache


def test_demo_writes_a_record_and_a_figure(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "wildaffect.cli", "demo", "--out", str(out)],
        capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "face in 56 of them" in result.stdout
    png = out / "face_pipeline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cache = FeatureCache(out / "cache")
    (video,) = cache.videos()
    cache.validate_record(video)
    landmarks = cache.read_array(video, "landmarks68")
    assert np.isfinite(landmarks).all() and (landmarks >= 0).all() and (landmarks <= 1).all()
