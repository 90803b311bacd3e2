"""The optional per-frame input streams of seed 003 (VAD, behaviour features, transcripts).

One place says, for each stream, the cache feature set that holds it, the batch key the models
read (:mod:`wildaffect.models.affect`) and the command that makes it, so ``extract`` (which
writes them), the datasets (which serve them) and their error messages cannot disagree::

    features/silero-vad/<video>.npy  (T,)   speech probability in [0, 1]    -> batch["vad"]
    features/behaviour/<video>.npy   (T, D) imported features, NaN rows where a frame has none
                                            -> batch["behaviour"], batch["behaviour_mask"]
    features/text/<video>.npy        (T, D) transcript sentence embeddings, NaN rows outside
                                            every segment -> batch["text"], batch["text_mask"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stream:
    """An optional stream: its batch key, cache feature set and the command that makes it."""

    key: str
    feature_set: str
    make: str
    #: (T, D) with a per-frame mask (NaN rows = absent), rather than a (T,) scalar per frame.
    masked: bool


VAD = Stream("vad", "silero-vad", "wildaffect extract CACHE --vad", masked=False)
BEHAVIOUR = Stream("behaviour", "behaviour", "wildaffect extract CACHE --behaviour DIR", True)
TEXT = Stream("text", "text", "wildaffect extract CACHE --transcripts DIR", masked=True)
STREAMS: dict[str, Stream] = {s.key: s for s in (VAD, BEHAVIOUR, TEXT)}


def model_streams(
    config: Any, overrides: Mapping[str, Any] | None = None, *, has_audio: bool = True
) -> tuple[str, ...]:
    """Keys of the streams a model config reads: ``vad`` with ``vad_gate`` (and audio),
    ``behaviour`` / ``text`` when ``d_behaviour`` / ``d_text`` > 0.

    ``overrides`` (a train config's ``model_overrides``) win over ``config``'s attributes, so
    the streams are known before the model config is resolved from the cached shapes.
    """
    overrides = overrides or {}

    def value(name: str) -> Any:
        return overrides.get(name, getattr(config, name, None))

    keys = []
    if value("vad_gate") and has_audio:
        keys.append(VAD.key)
    if value("d_behaviour"):
        keys.append(BEHAVIOUR.key)
    if value("d_text"):
        keys.append(TEXT.key)
    return tuple(keys)


__all__ = ["BEHAVIOUR", "STREAMS", "TEXT", "VAD", "Stream", "model_streams"]
