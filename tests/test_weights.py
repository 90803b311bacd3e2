"""Weight resolution: local folder, HF cache, offline failure, and ``wildaffect download``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wildaffect.encoders.weights import resolve_weights
from wildaffect.errors import InputError, WildaffectError

HUB_ID = "facebook/dinov2-small"


@pytest.fixture
def offline_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _fake_cached_snapshot(cache: Path, repo_id: str, commit: str = "a" * 40) -> Path:
    """The hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_local_folder_with_config_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_weights(tmp_path, HUB_ID) == tmp_path
    assert resolve_weights(str(tmp_path), None) == tmp_path


def test_folder_without_config_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no config\.json") as info:
        resolve_weights(tmp_path, HUB_ID)
    assert str(tmp_path) in str(info.value)


def test_cached_snapshot_is_found_without_network(offline_empty_cache: Path) -> None:
    snapshot = _fake_cached_snapshot(offline_empty_cache, HUB_ID)
    assert resolve_weights(None, HUB_ID).resolve() == snapshot.resolve()
    assert resolve_weights(HUB_ID, None).resolve() == snapshot.resolve()


def test_offline_with_empty_cache_fails_with_instructions(offline_empty_cache: Path) -> None:
    with pytest.raises(WildaffectError) as info:
        resolve_weights(None, HUB_ID, encoder_name="dinov2-small")
    message = str(info.value)
    assert "\n" not in message
    assert HUB_ID in message and "wildaffect download dinov2-small" in message
    assert str(offline_empty_cache) in message and "HF_HUB_OFFLINE" in message


def test_create_encoder_pretrained_offline_points_to_download(offline_empty_cache: Path) -> None:
    from wildaffect.encoders.registry import create_encoder

    with pytest.raises(WildaffectError, match="wildaffect download wavlm-large"):
        create_encoder("wavlm-large")


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    return env


def test_offline_set_before_import_in_a_fresh_process(tmp_path: Path) -> None:
    """huggingface_hub reads HF_HUB_OFFLINE at import: check the fresh-process path too."""
    code = textwrap.dedent(
        f"""
        from wildaffect.encoders.weights import resolve_weights
        from wildaffect.errors import WildaffectError
        try:
            resolve_weights(None, "{HUB_ID}", encoder_name="dinov2-small")
        except WildaffectError as err:
            print("RAISED", err)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_clean_env(tmp_path),
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("RAISED") and HUB_ID in result.stdout
    assert "wildaffect download dinov2-small" in result.stdout


def test_download_command_offline_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from wildaffect.cli import main; main()",
            "download",
            "dinov2-small",
        ],
        env=_clean_env(tmp_path),
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "facebook/dinov2-small" in result.stderr and "HF_HUB_OFFLINE" in result.stderr


def test_download_command_rejects_unknown_encoder(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from wildaffect.cli import main; main()", "download", "dinov9"],
        env=_clean_env(tmp_path),
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "unknown encoder 'dinov9'" in result.stderr and "dinov2-large" in result.stderr
