"""Registers the weight-free encoders, the toolkit's CPU default (no downloaded weights).

Unlike the transformers encoders these are not ``nn.Module`` s: they turn arrays into
float32 features with numpy / OpenCV / openSMILE, deterministically, and have nothing to
train. Both expose ``modality``, ``encode(...)`` and their output width (``token_dim`` /
``feature_dim``).

* ``mediapipe-regions`` (visual): :class:`~wildaffect.encoders.offline_visual.OfflineVisualEncoder`,
  one token per facial region (+ a global token) from the 68 landmarks, the 52 blendshapes,
  the head pose and HOG of the aligned crop.
* ``logmel-egemaps`` (audio): :class:`~wildaffect.encoders.offline_audio.OfflineAudioEncoder`,
  log-mel + eGeMAPS LLDs (+ deltas) on WavLM's 20 ms frames.
* ``logmel-compare`` (audio): the same encoder with the 65 ComParE 2016 LLDs in place of
  eGeMAPS' 25 (+ deltas), for voice models that need a richer spectral description.
* ``logmel-egemaps-emobase`` (audio): ``logmel-egemaps`` + the openSMILE emobase functionals
  of a 2 s window around each frame: per-utterance statistics for voice models;
  ``logmel-egemaps-emobase3s`` the same over 3 s windows;
* ``logmel-egemaps-compare3s`` (audio): ``logmel-egemaps`` + the 6373 openSMILE ComParE 2016
  functionals of a 3 s window around each frame, log-compressed beyond +-1000 so that float16
  caches hold them (the voice companion's input).
"""

from __future__ import annotations

from typing import Any

from wildaffect.encoders.registry import register_encoder


@register_encoder(
    "mediapipe-regions",
    "visual",
    hub_id=None,
    description="weight-free region tokens: 68-point geometry, AU distances, blendshapes, "
    "HOG of the aligned crop, head pose (CPU default)",
)
def build_mediapipe_regions(**kwargs: Any):
    from wildaffect.encoders.offline_visual import OfflineVisualEncoder

    return OfflineVisualEncoder(**kwargs)


@register_encoder(
    "logmel-egemaps",
    "audio",
    hub_id=None,
    description="weight-free 20 ms audio features: log-mel + eGeMAPS v02 LLDs + deltas, "
    "framed like WavLM (CPU default)",
)
def build_logmel_egemaps(**kwargs: Any):
    from wildaffect.encoders.offline_audio import OfflineAudioEncoder

    return OfflineAudioEncoder(**kwargs)


@register_encoder(
    "logmel-compare",
    "audio",
    hub_id=None,
    description="weight-free 20 ms audio features: log-mel + ComParE 2016 LLDs + deltas, "
    "framed like WavLM",
)
def build_logmel_compare(**kwargs: Any):
    from wildaffect.encoders.offline_audio import OfflineAudioEncoder

    return OfflineAudioEncoder(**{"use_egemaps": False, "use_compare": True, **kwargs})


@register_encoder(
    "logmel-egemaps-emobase",
    "audio",
    hub_id=None,
    description="logmel-egemaps + openSMILE emobase functionals of a 2 s window around each "
    "20 ms frame",
)
def build_logmel_egemaps_emobase(**kwargs: Any):
    from wildaffect.encoders.offline_audio import OfflineAudioEncoder

    return OfflineAudioEncoder(**{"functionals": "emobase", **kwargs})


@register_encoder(
    "logmel-egemaps-emobase3s",
    "audio",
    hub_id=None,
    description="logmel-egemaps + openSMILE emobase functionals of a 3 s window around each "
    "20 ms frame",
)
def build_logmel_egemaps_emobase3s(**kwargs: Any):
    from wildaffect.encoders.offline_audio import OfflineAudioEncoder

    return OfflineAudioEncoder(**{"functionals": "emobase", "functional_window_s": 3.0, **kwargs})


@register_encoder(
    "logmel-egemaps-compare3s",
    "audio",
    hub_id=None,
    description="logmel-egemaps + openSMILE ComParE 2016 functionals of a 3 s window around "
    "each 20 ms frame, log-compressed beyond +-1000 (the voice companion's input)",
)
def build_logmel_egemaps_compare3s(**kwargs: Any):
    from wildaffect.encoders.offline_audio import OfflineAudioEncoder
    from wildaffect.encoders.offline_functionals import COMPARE_SOFT_LOG_ABOVE

    return OfflineAudioEncoder(**{
        "functionals": "ComParE_2016", "functional_window_s": 3.0,
        "functional_soft_log_above": COMPARE_SOFT_LOG_ABOVE, **kwargs,
    })
