"""One name -> builder table for every frozen feature extractor (visual and audio).

Models, configs and the CLI refer to encoders by a short name (``dinov2-base``,
``wavlm-large``, ...). Encoder modules register their builders with
:func:`register_encoder`; this module imports them lazily on first lookup so that
``import wildaffect.encoders.registry`` stays cheap (no torch / transformers).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wildaffect.errors import WildaffectError

MODALITIES = ("visual", "audio")

# Modules whose import registers encoders. The offline (weight-free) ones are written in
# parallel and may not exist yet: only a missing module itself is skipped silently.
_ENCODER_MODULES = (
    "wildaffect.encoders.visual",
    "wildaffect.encoders.audio",
    "wildaffect.encoders.spectrogram_transformer",
    "wildaffect.encoders.vggish",
    "wildaffect.encoders.offline",
    "wildaffect.encoders.offline_visual",
    "wildaffect.encoders.offline_audio",
)
_OPTIONAL_MODULES = frozenset(m for m in _ENCODER_MODULES if ".offline" in m)


@dataclass(frozen=True)
class EncoderSpec:
    """What the registry knows about one encoder."""

    name: str
    modality: str  # "visual" | "audio"
    builder: Callable[..., Any]
    hub_id: str | None  # Hugging Face repo of the pretrained weights
    description: str
    # Weights published outside the hub (a file URL): the builder resolves ``weights=`` itself
    # (a file or folder, else its own cache, else this URL). Neither this nor hub_id: weight-free.
    weights_url: str | None = None

    @property
    def weight_free(self) -> bool:
        return self.hub_id is None and self.weights_url is None


_REGISTRY: dict[str, EncoderSpec] = {}
_loaded = False


def register_encoder(
    name: str, modality: str, hub_id: str | None = None, description: str = "",
    weights_url: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``builder(**kwargs) -> nn.Module`` under ``name``."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.builder is not builder:
            # Re-importing the same module (e.g. importlib.reload) re-registers: allow when
            # the builder comes from the same place, refuse a genuine name clash.
            same_origin = (existing.builder.__module__, existing.builder.__qualname__) == (
                builder.__module__,
                builder.__qualname__,
            )
            if not same_origin:
                raise ValueError(f"encoder {name!r} is already registered by {existing.builder}")
        _REGISTRY[name] = EncoderSpec(name, modality, builder, hub_id, description, weights_url)
        return builder

    return decorate


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: encoder modules import this one while registering
    try:
        for module in _ENCODER_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:
                if module in _OPTIONAL_MODULES and err.name == module:
                    continue
                raise
    except BaseException:
        _loaded = False  # a broken encoder module must not leave a half-filled registry silent
        raise


def get_spec(name: str) -> EncoderSpec:
    """The registered spec, or a one-line error listing the valid names."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(_REGISTRY))
        raise WildaffectError(f"unknown encoder {name!r}; valid names: {valid}") from None


def create_encoder(name: str, **kwargs: Any) -> Any:
    """Build the encoder ``name``; kwargs go to its builder (pretrained, weights, tiny, ...)."""
    return get_spec(name).builder(**kwargs)


def list_encoders(modality: str | None = None) -> list[str]:
    """Sorted registered names, optionally only one modality."""
    _ensure_loaded()
    if modality is not None and modality not in MODALITIES:
        raise WildaffectError(f"unknown modality {modality!r}; valid: {', '.join(MODALITIES)}")
    return sorted(n for n, s in _REGISTRY.items() if modality is None or s.modality == modality)
