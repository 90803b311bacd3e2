"""The trainer accepts region tokens with the offline encoder's trailing global token."""

from __future__ import annotations

import pytest

from wildaffect.errors import WildaffectError
from wildaffect.face.regions import DEFAULT_REGIONS
from wildaffect.train.config import TrainConfig
from wildaffect.train.run import resolve_model_config


@pytest.mark.parametrize("extra", [0, 1])
def test_regions_with_or_without_the_global_token(extra: int) -> None:
    config = TrainConfig(preset="default-offline", visual_encoder="mediapipe-regions",
                         audio_encoder="logmel-egemaps", tasks=("EXPR",))
    shapes = {"visual": (len(DEFAULT_REGIONS) + extra, 232), "audio": (180,)}
    model = resolve_model_config(config, shapes)
    assert (model.visual_input, model.d_visual, model.d_audio) == ("regions", 232, 180)


def test_other_token_counts_are_refused() -> None:
    config = TrainConfig(preset="default-offline", visual_encoder="mediapipe-regions",
                         audio_encoder=None, tasks=("EXPR",))
    with pytest.raises(WildaffectError, match="region tokens per frame"):
        resolve_model_config(config, {"visual": (len(DEFAULT_REGIONS) + 2, 232)})
