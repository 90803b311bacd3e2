"""Visual foundation encoders: tiny configs, random weights, the real patch sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wildaffect.encoders.registry import create_encoder, get_spec, list_encoders
from wildaffect.encoders.visual import IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, VisualOutput
from wildaffect.errors import WildaffectError

TRANSFORMERS_VISUAL = [
    n
    for n in list_encoders("visual")
    if get_spec(n).builder.__module__ == "wildaffect.encoders.visual"
]
# Grid side at 224 for the real patch sizes (kept by the tiny configs): DINOv2 14 px, ViT/CLIP/MAE
# 16 px, the last stage of ConvNeXt and ResNet is stride 32.
EXPECTED_GRID = {"dinov2": 16, "vit": 14, "clip": 14, "convnext": 7, "resnet": 7, "vitmae": 14}


def _expected_side(name: str) -> int:
    return EXPECTED_GRID[name.split("-")[0]]


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_every_transformers_visual_encoder_is_registered() -> None:
    expected = {"vit-base", "convnext-base", "clip-vit-b16", "resnet-50", "vitmae-base"}
    for size in ("small", "base", "large", "giant"):
        expected |= {f"dinov2-{size}", f"dinov2-reg-{size}"}
    assert expected == set(TRANSFORMERS_VISUAL)
    assert get_spec("dinov2-large").hub_id == "facebook/dinov2-large"
    assert get_spec("dinov2-reg-small").hub_id == "facebook/dinov2-with-registers-small"


@pytest.mark.parametrize("name", TRANSFORMERS_VISUAL)
def test_tiny_encoder_shapes_and_save_load_roundtrip(
    name: str, pixels: torch.Tensor, tmp_path
) -> None:
    torch.manual_seed(0)
    encoder = create_encoder(name, pretrained=False, tiny=True)
    out = encoder(pixels)
    side = _expected_side(name)
    assert isinstance(out, VisualOutput)
    assert out.patch_grid.shape == (2, side, side, encoder.embed_dim)
    assert out.cls.shape == (2, encoder.embed_dim)
    assert torch.isfinite(out.patch_grid).all() and torch.isfinite(out.cls).all()
    # Different images give different tokens: the grid really comes from the pixels.
    assert not torch.allclose(out.patch_grid[0], out.patch_grid[1])

    encoder.save_pretrained(tmp_path)
    reloaded = create_encoder(name, weights=tmp_path)
    again = reloaded(pixels)
    torch.testing.assert_close(again.patch_grid, out.patch_grid, rtol=0, atol=0)
    torch.testing.assert_close(again.cls, out.cls, rtol=0, atol=0)


def test_registers_are_dropped_from_the_grid(pixels: torch.Tensor) -> None:
    """Grid = tokens after CLS and the 4 registers; the registers themselves are not patches."""
    encoder = create_encoder("dinov2-reg-small", pretrained=False, tiny=True)
    assert encoder.num_prefix_tokens == 5
    with torch.no_grad():
        tokens = encoder.backbone(pixel_values=pixels).last_hidden_state  # (B, 5 + 256, D)
        out = encoder(pixels)
    assert tokens.shape[1] == 5 + 16 * 16
    torch.testing.assert_close(out.patch_grid.reshape(2, 256, -1), tokens[:, 5:])
    torch.testing.assert_close(out.cls, tokens[:, 0])


def test_frozen_encoder_stays_in_eval_mode_and_has_no_trainable_parameters() -> None:
    encoder = create_encoder(
        "dinov2-small", pretrained=False, tiny=True, config_overrides={"drop_path_rate": 0.5}
    )
    encoder.train()
    assert not encoder.backbone.training
    assert not any(p.requires_grad for p in encoder.parameters())
    trainable = create_encoder("dinov2-small", pretrained=False, tiny=True, freeze=False)
    trainable.train()
    assert trainable.backbone.training


def test_preprocess_matches_the_imagenet_formula_on_a_real_photo() -> None:
    from skimage import data

    photo = data.astronaut()[100:324, 150:374]  # (224, 224, 3) uint8, a real face
    batch = np.stack([photo, photo[:, ::-1]])
    encoder = create_encoder("dinov2-small", pretrained=False, tiny=True)
    pixels = encoder.preprocess(batch)
    assert pixels.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE) and pixels.dtype == torch.float32
    y, x = 37, 181
    for c in range(3):
        expected = (photo[y, x, c] / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert pixels[0, c, y, x].item() == pytest.approx(expected, rel=1e-5)
    assert encoder(pixels).patch_grid.shape == (2, 16, 16, 32)


def test_preprocess_rejects_float_or_channel_first_input() -> None:
    encoder = create_encoder("vit-base", pretrained=False, tiny=True)
    with pytest.raises(WildaffectError, match="uint8 RGB"):
        encoder.preprocess(np.zeros((1, 224, 224, 3), dtype=np.float32))
    with pytest.raises(WildaffectError, match="uint8 RGB"):
        encoder.preprocess(np.zeros((1, 3, 224, 224), dtype=np.uint8))


def test_bf16_autocast_close_to_fp32(pixels: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = create_encoder("dinov2-small", pretrained=False, tiny=True)
    with torch.no_grad():
        ref = encoder(pixels).patch_grid.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = encoder(pixels).patch_grid.float()
    assert (torch.linalg.norm(low - ref) / torch.linalg.norm(ref)).item() < 1e-2


def test_real_size_config_without_weights_has_the_hub_architecture() -> None:
    """pretrained=False, tiny=False builds the true ViT-L/14 (304M parameters) for benchmarks."""
    with torch.device("meta"):  # shapes only: no memory, no random init
        encoder = create_encoder("dinov2-large", pretrained=False)
    cfg = encoder.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.patch_size) == (
        1024,
        24,
        16,
        14,
    )
    n_params = sum(p.numel() for p in encoder.parameters())
    assert 300e6 < n_params < 310e6
