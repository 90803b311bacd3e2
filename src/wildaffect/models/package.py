"""A trained model as a folder a user can ship: ``model.safetensors`` + ``model.json``.

Checkpoints (``.ckpt``) carry optimiser and loop state and need pickle to load; a *package*
holds only what prediction needs, in safetensors (no code execution on load):

    model.safetensors   the AffectModel's state dict (weights and input-statistics buffers)
    model.json          {"format": 1, "model_config": ..., "label_names": ..., "outputs": ...,
                         "wildaffect_version": ..., "card": ...}

An ensemble (:class:`~wildaffect.models.ensemble.EnsembleModel`: several trained models of one
config whose probabilities are averaged) is the same two files: the weights of member ``k``
under ``members.k.``, and ``"members": K`` in ``model.json``.

``outputs`` says where each predicted quantity comes from, per task: ``"model"`` (the
trained head) or the name of a derivation in :mod:`wildaffect.derived` for tasks the model
was not trained on (e.g. AU from MediaPipe blendshapes). The bundled default model lives in
``wildaffect/assets/models/default``; :func:`resolve_model` turns ``--model`` into a path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wildaffect.errors import InputError, WildaffectError

if TYPE_CHECKING:
    from wildaffect.models.affect import AffectModel
    from wildaffect.models.ensemble import EnsembleModel

#: Newest package format this version reads; format 2 adds ensembles (``members``), so an
#: older wildaffect asks to be upgraded instead of failing on their weights.
PACKAGE_FORMAT = 2
SINGLE_MODEL_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
DEFAULT_MODEL = "default"
BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"


def bundled_model_dir(name: str = DEFAULT_MODEL) -> Path:
    return BUNDLED_MODELS_DIR / name


def save_package(
    model: AffectModel | EnsembleModel,
    folder: str | Path,
    *,
    outputs: dict[str, str] | None = None,
    card: dict[str, Any] | None = None,
    voice_model: str | None = None,
) -> Path:
    """Write ``model`` as a package folder (both files atomically); returns the folder.

    ``outputs``: task -> source (``"model"`` or a derivation name); tasks the model predicts
    default to ``"model"``. ``voice_model``: the package (bundled name or folder) that
    predicts audio-only input instead (required for a model without audio; optional for one
    with audio, when a voice-only model does better on speech alone).
    """
    from safetensors.torch import save_file

    from wildaffect import __version__
    from wildaffect.io.atomic import atomic_path, atomic_write_text
    from wildaffect.labels import LABEL_NAMES

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    sources = {t.value: "model" for t in config.tasks}
    sources.update(outputs or {})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    ensemble = hasattr(model, "members")
    meta = {
        "format": PACKAGE_FORMAT if ensemble else SINGLE_MODEL_FORMAT,
        "model_config": config.to_dict(),
        "label_names": {t.value: list(LABEL_NAMES[t.value]) for t in config.tasks},
        "outputs": sources,
        "wildaffect_version": __version__,
        "card": card or {},
    }
    if voice_model is not None:
        meta["voice_model"] = voice_model
    if ensemble:
        meta["members"] = len(model.members)
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2) + "\n")
    return folder


def read_package_meta(folder: str | Path) -> dict[str, Any]:
    """``model.json`` of a package folder, checked for the fields prediction needs."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise InputError(folder, f"not a wildaffect model package (no {META_FILE})")
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(path, f"unreadable model description ({err})") from None
    missing = [k for k in ("format", "model_config", "outputs") if k not in meta]
    if missing:
        raise InputError(path, f"model description lacks {', '.join(missing)}")
    if meta["format"] > PACKAGE_FORMAT:
        raise InputError(
            path, f"package format {meta['format']} is newer than this wildaffect "
            f"understands ({PACKAGE_FORMAT}): upgrade wildaffect"
        )
    return meta


def load_package(folder: str | Path) -> tuple[AffectModel | EnsembleModel, dict[str, Any]]:
    """-> (model in eval mode, its ``model.json``); an ensemble when it names ``members``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from wildaffect.models.affect import AffectModel
    from wildaffect.models.config import ModelConfig

    folder = Path(folder)
    meta = read_package_meta(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(folder, f"model package has no {WEIGHTS_FILE}")
    try:
        config = ModelConfig.from_dict(meta["model_config"])
    except (TypeError, ValueError) as err:
        raise InputError(folder / META_FILE, f"invalid model_config ({err})") from None
    members = meta.get("members")
    if members is None:
        model = AffectModel(config)
    elif isinstance(members, int) and not isinstance(members, bool) and members >= 1:
        from wildaffect.models.ensemble import EnsembleModel

        model = EnsembleModel([AffectModel(config) for _ in range(members)])
    else:
        raise InputError(folder / META_FILE,
                         f"members must be a whole number >= 1, got {members!r}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise InputError(weights, f"unreadable weights ({err})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise InputError(weights, f"weights do not fit the model config ({first})") from None
    return model.eval(), meta


def load_any(model: str | Path | None) -> tuple[AffectModel | EnsembleModel, dict[str, Any]]:
    """``--model`` as a user gives it: None (the bundled default), a bundled name, a package
    folder or a training checkpoint (``.ckpt``: every task the checkpoint trained comes from
    the model)."""
    if model is None:
        model = DEFAULT_MODEL
    path = Path(model)
    if not path.exists() and bundled_model_dir(str(model)).is_dir():
        path = bundled_model_dir(str(model))
    if path.is_dir():
        return load_package(path)
    if path.is_file():
        from wildaffect.train.run import load_model

        loaded = load_model(path)
        meta = {
            "format": PACKAGE_FORMAT,
            "model_config": loaded.config.to_dict(),
            "outputs": {t.value: "model" for t in loaded.config.tasks},
            "card": {},
        }
        return loaded, meta
    bundled = sorted(p.name for p in BUNDLED_MODELS_DIR.glob("*/") if (p / META_FILE).is_file())
    raise WildaffectError(
        f"model {str(model)!r} not found: give a package folder, a .ckpt file or one of the "
        f"bundled models ({', '.join(bundled) or 'none installed'})"
    )
