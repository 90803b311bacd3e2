"""LoRA via peft on tiny foundation encoders: targets, trainability, merge = W + (alpha/r) B A."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wildaffect.encoders.lora import (
    apply_lora,
    find_blocks,
    find_lora_targets,
    lora_parameters,
    merge_lora,
)
from wildaffect.encoders.registry import create_encoder

R, ALPHA = 4, 8


def _pixels() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 224, 224)


def _randomise_lora_b(model: nn.Module) -> None:
    """peft initialises B = 0 (LoRA starts as a no-op); make it matter for the tests."""
    torch.manual_seed(2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("dinov2-small", ["q_proj", "v_proj"]),
        ("dinov2-reg-small", ["q_proj", "v_proj"]),
        ("vit-base", ["q_proj", "v_proj"]),
        ("clip-vit-b16", ["q_proj", "v_proj"]),
        ("wavlm-base", ["q_proj", "v_proj"]),
        ("whisper-base", ["q_proj", "v_proj"]),
    ],
)
def test_targets_are_discovered_in_the_installed_transformers(
    name: str, expected: list[str]
) -> None:
    encoder = create_encoder(name, pretrained=False, tiny=True)
    assert find_lora_targets(encoder) == expected
    assert len(find_blocks(encoder, expected)) == 2  # every tiny config has 2 blocks


class _OldStyleAttention(nn.Module):
    """The module tree of transformers 4.x ViT/DINOv2: attention.attention.{query,key,value}."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.query, self.key, self.value = (
            nn.Linear(dim, dim),
            nn.Linear(dim, dim),
            nn.Linear(dim, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = torch.softmax(self.query(x) @ self.key(x).transpose(-1, -2), dim=-1)
        return attn @ self.value(x)


class _OldStyleModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList(
            nn.ModuleDict({"attention": _OldStyleAttention()}) for _ in range(3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layer:
            x = x + block["attention"](x)
        return x


def test_targets_are_discovered_under_the_older_query_value_names() -> None:
    model = _OldStyleModel()
    assert find_lora_targets(model) == ["query", "value"]
    assert find_lora_targets(model, ("q", "k", "v")) == ["query", "key", "value"]
    apply_lora(model, r=2, alpha=4)
    assert len(lora_parameters(model)) == 3 * 2 * 2  # 3 blocks x (query, value) x (A, B)


def test_unknown_projection_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no 'q' attention projection"):
        find_lora_targets(nn.Sequential(nn.Linear(4, 4)))


@pytest.mark.parametrize(
    "name", ["dinov2-small", "vit-base", "clip-vit-b16", "wavlm-base", "whisper-base"]
)
def test_lora_is_live_in_the_forward_pass(name: str) -> None:
    """A nonzero B must change the output and every LoRA matrix must get a gradient.

    WavLM reads ``q_proj.weight`` directly (F.multi_head_attention_forward): a module wrapper
    alone would be silently skipped there.
    """
    torch.manual_seed(0)
    encoder = create_encoder(name, pretrained=False, tiny=True)
    x = torch.randn(1, 16_000) * 0.1 if name.startswith(("wavlm", "whisper")) else _pixels()

    def output() -> torch.Tensor:
        out = encoder(x)
        return out.features if hasattr(out, "features") else out.patch_grid

    with torch.no_grad():
        before = output()
    apply_lora(encoder, r=R, alpha=ALPHA)
    with torch.no_grad():
        torch.testing.assert_close(output(), before)  # B = 0: LoRA starts as a no-op
    _randomise_lora_b(encoder)
    after = output()
    assert (after - before).abs().max() > 1e-3
    after.square().mean().backward()
    params = lora_parameters(encoder)
    assert len(params) == 2 * 2 * 2
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_only_lora_is_trainable_and_gets_gradients() -> None:
    encoder = apply_lora(
        create_encoder("dinov2-small", pretrained=False, tiny=True), r=R, alpha=ALPHA
    )
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 2 * 2 * 2  # 2 blocks x (q, v) x (A, B)
    assert {id(p) for p in lora_parameters(encoder)} == {
        id(p) for n, p in encoder.named_parameters() if n in trainable
    }
    _randomise_lora_b(encoder)
    encoder.train()
    assert encoder.backbone.training  # LoRA trains: the backbone leaves eval mode
    encoder(_pixels()).cls.square().mean().backward()
    for name, param in encoder.named_parameters():
        assert (param.grad is not None) == (name in trainable), name


def test_last_blocks_trainable_when_fewer_blocks_are_frozen() -> None:
    encoder = create_encoder(
        "vit-base", pretrained=False, tiny=True, config_overrides={"num_hidden_layers": 3}
    )
    apply_lora(encoder, r=R, alpha=ALPHA, freeze_first_n_blocks=2)
    blocks = find_blocks(encoder, ["q_proj", "v_proj"])
    assert len(blocks) == 3
    for index, block in enumerate(blocks):
        for name, param in block.named_parameters():
            assert param.requires_grad == (index == 2 or "lora_" in name), (index, name)
    embeddings = encoder.backbone.embeddings
    assert not any(p.requires_grad for p in embeddings.parameters())
    with pytest.raises(ValueError, match="freeze_first_n_blocks"):
        apply_lora(create_encoder("vit-base", pretrained=False, tiny=True), freeze_first_n_blocks=5)


def test_wavlm_adapter_and_layer_weights_stay_trainable() -> None:
    encoder = apply_lora(
        create_encoder("wavlm-base", pretrained=False, tiny=True), r=R, alpha=ALPHA
    )
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    outside = {n for n in trainable if not n.startswith("backbone.")}
    assert "layer_logits" in outside and any(n.startswith("adapter.") for n in outside)
    assert all("lora_" in n for n in trainable - outside)
    assert len(lora_parameters(encoder)) == 2 * 2 * 2
    assert not any(id(p) == id(encoder.layer_logits) for p in lora_parameters(encoder))


Q_PROJ = {
    "dinov2-small": "encoder.layer.0.attention.q_proj",
    "clip-vit-b16": "encoder.layers.0.self_attn.q_proj",
    "wavlm-base": "encoder.layers.0.attention.q_proj",
}


def _lora_a_b(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(A: (r, in), B: (out, r)) of a peft LoRA Linear or of our weight parametrization."""
    if hasattr(layer, "lora_A"):
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    else:
        delta = layer.parametrizations["weight"][0]
        a, b = delta.lora_A, delta.lora_B
    return a.detach().clone(), b.detach().clone()


@pytest.mark.parametrize("name", sorted(Q_PROJ))
def test_merge_folds_scaled_BA_into_W_and_keeps_the_output(name: str) -> None:
    encoder = create_encoder(name, pretrained=False, tiny=True)
    path = Q_PROJ[name]
    w0 = encoder.backbone.get_submodule(path).weight.detach().clone()
    apply_lora(encoder, r=R, alpha=ALPHA)
    _randomise_lora_b(encoder)
    a, b = _lora_a_b(encoder.backbone.get_submodule(path))
    assert b.abs().sum() > 0
    x = torch.randn(1, 16_000) * 0.1 if name.startswith("wavlm") else _pixels()
    with torch.no_grad():
        before = encoder(x)

    merge_lora(encoder)
    merged = encoder.backbone.get_submodule(path)
    assert type(merged) is nn.Linear and not hasattr(merged, "parametrizations")
    assert not any("lora_" in n for n, _ in encoder.named_parameters())
    torch.testing.assert_close(merged.weight, w0 + (ALPHA / R) * b @ a, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        after = encoder(x)
    for field in ("patch_grid", "cls", "features"):
        if hasattr(before, field):
            torch.testing.assert_close(
                getattr(after, field), getattr(before, field), rtol=1e-4, atol=1e-5
            )

    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    merge_lora(encoder)  # nothing left to merge: a no-op
    assert all(torch.equal(state[k], v) for k, v in encoder.state_dict().items())
