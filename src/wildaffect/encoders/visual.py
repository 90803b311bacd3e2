"""Visual foundation encoders (transformers): aligned 224x224 face crop -> patch grid + CLS.

Every encoder returns the same :class:`VisualOutput` so the HGA module can pool patches
inside landmark RoIs regardless of the backbone:

- DINOv2 (the paper's ``dinov2_vitl14``) and its registers variant: patch 14 -> 16x16 grid at
  224 (position embeddings are interpolated from the 518-pixel pre-training size by
  transformers). Register tokens are dropped from the grid.
- ViT-B/16 in21k (the paper's Table 1 baseline): 14x14 grid.
- ConvNeXt-B (the 8th-ABAW system): the last stage's 7x7 feature map + its pooled vector.
- CLIP ViT-B/16 vision tower (seed 003): 14x14 grid + the post-LayerNorm CLS.
- ResNet-50 (seed 003 ¶4's frame CNN): the last stage's 7x7 map + its average-pooled vector.
- ViT-MAE base (seed 003 ¶9's masked-autoencoder face features): 14x14 grid + CLS with the
  masking OFF: ``mask_ratio`` is forced to 0 and the per-image random shuffle ViTMAE does even
  then is replaced by the identity order (``noise`` = 0, 1, 2, ... sorts to itself), so the
  tokens keep their row-major patch order and two calls give identical features.

Builders take ``pretrained`` (weights via :func:`resolve_weights`), ``weights`` (a folder),
``tiny`` (a 2-layer width-32 config with random weights, for tests) and ``config_overrides``.
``pretrained=False, tiny=False`` gives the REAL architecture with random weights (benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wildaffect.encoders.registry import register_encoder
from wildaffect.encoders.weights import load_backbone
from wildaffect.errors import WildaffectError

IMAGE_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # google/vit-*-in21k normalise to [-1, 1]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Tiny configs: the REAL patch size (so grids have their real shape) with 2 layers of width 32.
TINY_VIT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
TINY_DINOV2 = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2}
TINY_CONVNEXT = {"hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1]}

# Real architectures (from the hub configs), so the benchmark needs no download.
DINOV2_SIZES = {
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
    "giant": {
        "hidden_size": 1536,
        "num_hidden_layers": 40,
        "num_attention_heads": 24,
        "use_swiglu_ffn": True,
    },
}
DINOV2_COMMON = {"patch_size": 14, "image_size": 518, "mlp_ratio": 4, "layerscale_value": 1.0}
VIT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "patch_size": 16,
    "image_size": 224,
}
CONVNEXT_BASE = {"hidden_sizes": [128, 256, 512, 1024], "depths": [3, 3, 27, 3]}
RESNET_50 = {
    "embedding_size": 64,
    "hidden_sizes": [256, 512, 1024, 2048],
    "depths": [3, 4, 6, 3],
    "layer_type": "bottleneck",
}
TINY_RESNET = {"embedding_size": 8, "hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1]}
#: Feature extraction sees every patch: MAE's pre-training mask ratio (0.75) is switched off.
MAE_EXTRACTION = {"mask_ratio": 0.0}
CLIP_B16 = {**VIT_BASE, "hidden_act": "quick_gelu", "projection_dim": 512}


@dataclass
class VisualOutput:
    """``patch_grid``: (B, h, w, D) spatial tokens (None if the backbone has none);
    ``cls``: (B, D)."""

    patch_grid: torch.Tensor | None
    cls: torch.Tensor


def preprocess_images(
    images: np.ndarray | torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """uint8 RGB (B, 224, 224, 3) -> normalised float32 (B, 3, 224, 224)."""
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise WildaffectError(
            f"images must be uint8 RGB of shape (B, H, W, 3); got {x.dtype} {tuple(x.shape)}"
        )
    x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W) in [0, 1]
    mean_t = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


class VisualEncoder(nn.Module):
    """A transformers vision backbone behind one interface; subclasses read its outputs."""

    def __init__(
        self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], freeze: bool
    ):
        super().__init__()
        self.backbone = backbone
        self.mean = tuple(mean)
        self.std = tuple(std)
        if freeze:
            backbone.requires_grad_(False)
        self.train(False)

    @property
    def config(self) -> Any:
        return self.backbone.config

    @property
    def embed_dim(self) -> int:
        raise NotImplementedError

    def preprocess(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB (B, 224, 224, 3) -> this backbone's normalised (B, 3, 224, 224)."""
        return preprocess_images(images, self.mean, self.std)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write the backbone as a transformers folder that ``weights=folder`` loads back."""
        self.backbone.save_pretrained(folder)

    def train(self, mode: bool = True) -> VisualEncoder:
        """A fully frozen backbone stays in eval mode (no dropout / drop-path while extracting)."""
        super().train(mode)
        if not any(p.requires_grad for p in self.backbone.parameters()):
            self.backbone.eval()
        return self


class TokenGridEncoder(VisualEncoder):
    """ViT-family backbones: tokens = [CLS, (registers), patches]; patches form the grid."""

    def __init__(self, *args: Any, use_pooler: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.use_pooler = use_pooler

    @property
    def embed_dim(self) -> int:
        return int(self.config.hidden_size)

    @property
    def num_prefix_tokens(self) -> int:
        return 1 + int(getattr(self.config, "num_register_tokens", 0) or 0)

    def run_backbone(self, pixel_values: torch.Tensor) -> Any:
        """The backbone's output for (B, 3, H, W) pixels (subclasses add model-specific inputs)."""
        return self.backbone(pixel_values=pixel_values)

    def forward(self, pixel_values: torch.Tensor) -> VisualOutput:
        # pixel_values: (B, 3, H, W), already normalised
        batch, _, height, width = pixel_values.shape
        patch = int(self.config.patch_size)
        h, w = height // patch, width // patch
        out = self.run_backbone(pixel_values)
        tokens = out.last_hidden_state  # (B, prefix + h*w, D)
        patches = tokens[:, self.num_prefix_tokens :]
        if patches.shape[1] != h * w:
            raise RuntimeError(f"expected {h}x{w} patch tokens, got {patches.shape[1]}")
        cls = out.pooler_output if self.use_pooler else tokens[:, 0]  # (B, D)
        return VisualOutput(patch_grid=patches.reshape(batch, h, w, -1), cls=cls)


class ConvNextEncoder(VisualEncoder):
    """ConvNeXt: the last stage's (B, C, 7, 7) map as the grid, its pooled LayerNorm as CLS."""

    @property
    def embed_dim(self) -> int:
        return int(self.config.hidden_sizes[-1])

    def forward(self, pixel_values: torch.Tensor) -> VisualOutput:
        out = self.backbone(pixel_values=pixel_values)
        grid = out.last_hidden_state.permute(0, 2, 3, 1)  # (B, C, h, w) -> (B, h, w, C)
        return VisualOutput(patch_grid=grid, cls=out.pooler_output)


class MAEEncoder(TokenGridEncoder):
    """ViT-MAE with masking off: every patch, in row-major order, the same on every call."""

    def run_backbone(self, pixel_values: torch.Tensor) -> Any:
        if float(self.config.mask_ratio) != 0.0:
            raise WildaffectError(
                f"ViT-MAE feature extraction needs mask_ratio 0, got {self.config.mask_ratio}"
            )
        batch, _, height, width = pixel_values.shape
        patch = int(self.config.patch_size)
        num_patches = (height // patch) * (width // patch)
        # argsort(noise) is the identity: no shuffle, so the grid keeps its patch order.
        noise = torch.arange(num_patches, device=pixel_values.device, dtype=torch.float32)
        return self.backbone(pixel_values=pixel_values, noise=noise.expand(batch, -1))


class ResNetEncoder(ConvNextEncoder):
    """ResNet: the last stage's (B, C, 7, 7) map as the grid, its global average as CLS."""

    def forward(self, pixel_values: torch.Tensor) -> VisualOutput:
        out = self.backbone(pixel_values=pixel_values)
        grid = out.last_hidden_state.permute(0, 2, 3, 1)  # (B, C, h, w) -> (B, h, w, C)
        return VisualOutput(patch_grid=grid, cls=out.pooler_output.flatten(1))  # (B, C)


def _builder(
    encoder_cls: type[VisualEncoder],
    model_cls_name: str,
    config_cls_name: str,
    *,
    name: str,
    real: dict[str, Any],
    tiny_overrides: dict[str, Any],
    hub_id: str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    model_kwargs: dict[str, Any] | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
    fixed_overrides: dict[str, Any] | None = None,
) -> Callable[..., VisualEncoder]:
    def build(
        pretrained: bool = True,
        weights: str | Path | None = None,
        tiny: bool = False,
        config_overrides: dict[str, Any] | None = None,
        freeze: bool = True,
    ) -> VisualEncoder:
        import transformers

        backbone = load_backbone(
            getattr(transformers, model_cls_name),
            getattr(transformers, config_cls_name),
            real=real,
            tiny_overrides=tiny_overrides,
            hub_id=hub_id,
            encoder_name=name,
            pretrained=pretrained,
            weights=weights,
            tiny=tiny,
            config_overrides={**(fixed_overrides or {}), **(config_overrides or {})},
            model_kwargs=model_kwargs,
        )
        return encoder_cls(backbone, mean, std, freeze, **(encoder_kwargs or {}))

    build.__name__ = build.__qualname__ = f"build_{name.replace('-', '_')}"
    build.__doc__ = f"Build the {name} visual encoder ({hub_id})."
    return build


def _register(name: str, hub_id: str, description: str, **kwargs: Any) -> None:
    build = _builder(name=name, hub_id=hub_id, **kwargs)
    build.__module__ = __name__
    register_encoder(name, "visual", hub_id=hub_id, description=description)(build)


for _size, _dims in DINOV2_SIZES.items():
    _register(
        f"dinov2-{_size}",
        f"facebook/dinov2-{_size}",
        f"DINOv2 ViT-{_size[0].upper()}/14: 16x16 patch grid + CLS at 224",
        encoder_cls=TokenGridEncoder,
        model_cls_name="Dinov2Model",
        config_cls_name="Dinov2Config",
        real={**DINOV2_COMMON, **_dims},
        tiny_overrides=TINY_DINOV2 | {"use_swiglu_ffn": False},
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
    _register(
        f"dinov2-reg-{_size}",
        f"facebook/dinov2-with-registers-{_size}",
        f"DINOv2 ViT-{_size[0].upper()}/14 with 4 registers (dropped from the grid)",
        encoder_cls=TokenGridEncoder,
        model_cls_name="Dinov2WithRegistersModel",
        config_cls_name="Dinov2WithRegistersConfig",
        real={**DINOV2_COMMON, **_dims, "num_register_tokens": 4},
        tiny_overrides=TINY_DINOV2 | {"use_swiglu_ffn": False},
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )

_register(
    "vit-base",
    "google/vit-base-patch16-224-in21k",
    "ViT-B/16 ImageNet-21k (the paper's Table 1 baseline): 14x14 grid + CLS",
    encoder_cls=TokenGridEncoder,
    model_cls_name="ViTModel",
    config_cls_name="ViTConfig",
    real=VIT_BASE,
    tiny_overrides=TINY_VIT,
    mean=HALF,
    std=HALF,
    model_kwargs={"add_pooling_layer": False},
)
_register(
    "convnext-base",
    "facebook/convnext-base-224-22k",
    "ConvNeXt-B ImageNet-22k (8th-ABAW AU system): 7x7 last-stage map + pooled vector",
    encoder_cls=ConvNextEncoder,
    model_cls_name="ConvNextModel",
    config_cls_name="ConvNextConfig",
    real=CONVNEXT_BASE,
    tiny_overrides=TINY_CONVNEXT,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)
_register(
    "clip-vit-b16",
    "openai/clip-vit-base-patch16",
    "CLIP ViT-B/16 vision tower (seed 003): 14x14 grid + post-LayerNorm CLS",
    encoder_cls=TokenGridEncoder,
    model_cls_name="CLIPVisionModel",
    config_cls_name="CLIPVisionConfig",
    real=CLIP_B16,
    tiny_overrides=TINY_VIT,
    mean=CLIP_MEAN,
    std=CLIP_STD,
    encoder_kwargs={"use_pooler": True},
)
_register(
    "resnet-50",
    "microsoft/resnet-50",
    "ResNet-50 ImageNet-1k (seed 003 ¶4 frame CNN): 7x7 last-stage map + pooled vector",
    encoder_cls=ResNetEncoder,
    model_cls_name="ResNetModel",
    config_cls_name="ResNetConfig",
    real=RESNET_50,
    tiny_overrides=TINY_RESNET,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)
_register(
    "vitmae-base",
    "facebook/vit-mae-base",
    "ViT-MAE B/16 (seed 003 ¶9 masked-autoencoder features), masking off: 14x14 grid + CLS",
    encoder_cls=MAEEncoder,
    model_cls_name="ViTMAEModel",
    config_cls_name="ViTMAEConfig",
    real=VIT_BASE,
    tiny_overrides=TINY_VIT,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    fixed_overrides=MAE_EXTRACTION,
)
