"""The encoder registry: names, modalities, errors, and ``download`` for weight-free encoders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wildaffect.encoders import registry
from wildaffect.encoders.registry import create_encoder, get_spec, list_encoders, register_encoder
from wildaffect.errors import WildaffectError


@pytest.fixture
def scratch_name() -> Iterator[str]:
    name = "test-scratch-encoder"
    yield name
    registry._REGISTRY.pop(name, None)


def test_lists_by_modality() -> None:
    visual, audio = set(list_encoders("visual")), set(list_encoders("audio"))
    assert {"dinov2-large", "vit-base", "convnext-base", "clip-vit-b16"} <= visual
    assert {"wavlm-large", "whisper-base"} <= audio
    assert not visual & audio
    assert set(list_encoders()) == visual | audio
    assert list_encoders() == sorted(list_encoders())


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(
        WildaffectError, match="unknown encoder 'dinov3'.*dinov2-large.*wavlm-large"
    ):
        create_encoder("dinov3")
    with pytest.raises(WildaffectError, match="unknown modality"):
        list_encoders("text")


def test_register_and_create_pass_kwargs(scratch_name: str) -> None:
    @register_encoder(scratch_name, "audio", description="echoes its kwargs")
    def build(**kwargs):
        return kwargs

    assert create_encoder(scratch_name, tiny=True) == {"tiny": True}
    spec = get_spec(scratch_name)
    assert (spec.modality, spec.hub_id, spec.description) == ("audio", None, "echoes its kwargs")
    with pytest.raises(ValueError, match="already registered"):
        register_encoder(scratch_name, "audio")(lambda: None)
    with pytest.raises(ValueError, match="modality"):
        register_encoder("x", "text")


def test_download_refuses_a_weight_free_encoder(scratch_name: str) -> None:
    from wildaffect.commands.download import download

    register_encoder(scratch_name, "visual")(lambda **kw: None)
    with pytest.raises(WildaffectError, match="no pretrained weights"):
        download(scratch_name, None)
