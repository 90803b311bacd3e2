"""The package imports light and the CLI answers."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

import wildaffect
from wildaffect.cli import app
from wildaffect.labels import AU_NAMES, EXPR_NAMES, TASK_SPECS, VA_NAMES, Task

HEAVY_MODULES = ("torch", "transformers", "mediapipe", "lightning", "av", "peft")


def test_import_does_not_pull_heavy_libraries():
    code = (
        "import sys, wildaffect, wildaffect.cli, wildaffect.labels;"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_flag():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"wildaffect {wildaffect.__version__}"


def test_label_spaces_are_the_abaw_ones():
    assert len(AU_NAMES) == 12 and AU_NAMES[0] == "AU1" and AU_NAMES[-1] == "AU26"
    assert len(EXPR_NAMES) == 8 and EXPR_NAMES[0] == "Neutral" and EXPR_NAMES[-1] == "Other"
    assert VA_NAMES == ("valence", "arousal")
    assert TASK_SPECS[Task.AU].header == "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    assert TASK_SPECS[Task.EXPR].header == (
        "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    )
