"""Find pretrained encoder weights: a local folder, the Hugging Face cache, then the hub.

Many machines that run wildaffect have no route to the model hub (this one included), so the
order is fixed and every miss is explained in ONE line: where we looked and how to get the
weights (``wildaffect download NAME`` on a machine with network, or pass a folder).
With ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) the hub is never contacted, so a
missing model fails at once instead of waiting on a network timeout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from wildaffect.errors import InputError, WildaffectError

CONFIG_FILE = "config.json"
# Files a PyTorch user never needs: skip them when downloading a snapshot.
IGNORE_PATTERNS = ("*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "tf_model*", "flax_model*")
_TRUE = {"1", "on", "yes", "true"}


def hub_offline() -> bool:
    """Whether the hub must not be contacted, read NOW from the environment.

    ``huggingface_hub.constants.HF_HUB_OFFLINE`` is frozen at import time; a user (or a test)
    who sets the variable later must still get the fast, network-free failure.
    """
    from huggingface_hub import constants

    env = (
        os.environ.get(k, "").strip().lower() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return bool(constants.HF_HUB_OFFLINE) or any(v in _TRUE for v in env)


def default_cache_dir() -> Path:
    """The hub cache huggingface_hub would use (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def resolve_weights(
    name_or_path: str | Path | None,
    hub_id: str | None,
    *,
    cache_dir: str | Path | None = None,
    encoder_name: str | None = None,
) -> Path:
    """Folder holding ``config.json`` + weights for a transformers model.

    ``name_or_path`` is a local folder (used as is), a hub id, or None (use ``hub_id``).
    ``encoder_name`` only improves the error message (``wildaffect download <encoder_name>``).
    """
    if name_or_path is not None and Path(name_or_path).expanduser().exists():
        folder = Path(name_or_path).expanduser()
        if not (folder / CONFIG_FILE).is_file():
            raise InputError(folder, f"not a model folder: no {CONFIG_FILE} in it")
        return folder

    repo_id = str(name_or_path) if name_or_path is not None else hub_id
    if not repo_id:
        raise WildaffectError("no weights given: pass a model folder (weights=...) or a hub id")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    how = (
        f"run `wildaffect download {encoder_name or repo_id}` on a machine with network"
        " (then copy the cache) or pass a local model folder"
    )

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        cached = Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
    except HFValidationError:
        raise WildaffectError(
            f"weights {repo_id!r}: no such folder and not a valid hub id; {how}"
        ) from None
    except Exception:
        cached = None
    if cached is not None:
        return _checked(cached)

    if hub_offline():
        raise WildaffectError(
            f"weights for {repo_id!r} not found: not a local folder, not in the cache {cache},"
            f" and HF_HUB_OFFLINE is set so the hub was not contacted; {how}"
        )
    try:
        path = snapshot_download(repo_id, cache_dir=cache, ignore_patterns=list(IGNORE_PATTERNS))
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WildaffectError(
            f"weights for {repo_id!r} not found: not a local folder, not in the cache {cache},"
            f" and the hub download failed ({reason}); {how}"
        ) from None
    return _checked(Path(path))


def _checked(folder: Path) -> Path:
    if not (folder / CONFIG_FILE).is_file():
        raise InputError(folder, f"cached snapshot has no {CONFIG_FILE}; download it again")
    return folder


def download_weights(hub_id: str, cache_dir: str | Path | None = None) -> Path:
    """Fetch a full snapshot of ``hub_id`` into the cache (for ``wildaffect download``)."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if hub_offline():
        raise WildaffectError(
            f"cannot download {hub_id!r}: HF_HUB_OFFLINE is set; unset it on a machine with network"
        )
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(hub_id, cache_dir=cache, ignore_patterns=list(IGNORE_PATTERNS))
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WildaffectError(
            f"download of {hub_id!r} into {cache} failed ({reason}); check the network"
            " (huggingface.co must be reachable) or copy a model folder from another machine"
        ) from None
    return _checked(Path(path))


def load_backbone(
    model_cls: Any,
    config_cls: Any,
    *,
    real: dict[str, Any],
    tiny_overrides: dict[str, Any],
    hub_id: str | None,
    encoder_name: str,
    pretrained: bool,
    weights: str | Path | None,
    tiny: bool,
    config_overrides: dict[str, Any] | None,
    model_kwargs: dict[str, Any] | None = None,
) -> Any:
    """One transformers model: from resolved weights, or from a (real or tiny) config.

    ``real`` is the architecture of the hub checkpoint (so ``pretrained=False`` builds the true
    size with random weights), ``tiny_overrides`` shrink it for tests, ``config_overrides`` win
    over both (and are applied on top of a loaded checkpoint's config too).
    """
    import torch

    overrides = dict(config_overrides or {})
    model_kwargs = dict(model_kwargs or {})
    if weights is not None or pretrained:
        folder = resolve_weights(weights, hub_id, encoder_name=encoder_name)
        return model_cls.from_pretrained(folder, dtype=torch.float32, **model_kwargs, **overrides)
    config = config_cls(**{**real, **(tiny_overrides if tiny else {}), **overrides})
    return model_cls(config, **model_kwargs)
