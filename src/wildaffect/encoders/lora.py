"""LoRA on the attention projections of a foundation encoder (seed 002 §4.1), via peft.

The paper freezes most of DINOv2 ViT-L/14 and adapts the query and value projections with
LoRA. peft knows no default targets for DINOv2/WavLM, and transformers renamed the projections
across releases (``query``/``value`` before 5.x, ``q_proj``/``v_proj`` now; CLIP, WavLM and
Whisper always used ``q_proj``/``v_proj``), so the target names are DISCOVERED from the module
tree of the model in hand rather than hard-coded.

Trainability after :func:`apply_lora`: inside the backbone only the LoRA matrices train, plus
every parameter of blocks ``freeze_first_n_blocks .. depth-1`` when that number is below the
depth (the paper's "freeze the majority of the blocks"). Parameters of our wrappers that live
outside ``model.backbone`` (e.g. the WavLM layer weights and adapter) keep their state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import nn

# Leaf names an attention projection has had, newest first, per projection letter.
PROJECTION_NAMES: dict[str, tuple[str, ...]] = {
    "q": ("q_proj", "query", "q"),
    "k": ("k_proj", "key", "k"),
    "v": ("v_proj", "value", "v"),
    "o": ("o_proj", "out_proj"),
}
LORA_MARKER = "lora_"


def _host(model: nn.Module) -> nn.Module:
    """The transformers model LoRA goes into: our wrappers keep it in ``.backbone``."""
    backbone = getattr(model, "backbone", None)
    return backbone if isinstance(backbone, nn.Module) else model


def find_lora_targets(model: nn.Module, targets: Sequence[str] = ("q", "v")) -> list[str]:
    """Leaf names of the attention projections in ``model`` for each requested letter."""
    linear_leaves = set()
    for name, module in _host(model).named_modules():
        parent, _, leaf = name.rpartition(".")
        if isinstance(module, nn.Linear) and ("attn" in parent.lower() or "attention" in parent.lower()):
            linear_leaves.add(leaf)
    found = []
    for letter in targets:
        if letter not in PROJECTION_NAMES:
            raise ValueError(f"unknown LoRA target {letter!r}; choose from {sorted(PROJECTION_NAMES)}")
        match = next((n for n in PROJECTION_NAMES[letter] if n in linear_leaves), None)
        if match is None:
            raise ValueError(
                f"no {letter!r} attention projection in {type(_host(model)).__name__}; "
                f"looked for {PROJECTION_NAMES[letter]} among {sorted(linear_leaves)}"
            )
        found.append(match)
    return found


def find_blocks(model: nn.Module, leaf_names: Iterable[str]) -> nn.ModuleList:
    """The ModuleList of transformer blocks: the one whose every child holds a target projection."""
    leaves = set(leaf_names)
    best: nn.ModuleList | None = None
    for module in _host(model).modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if all(
            any(n.rsplit(".", 1)[-1] in leaves for n, _ in child.named_modules()) for child in module
        ) and (best is None or len(module) > len(best)):
            best = module
    if best is None:
        raise ValueError(f"no block list holding {sorted(leaves)} in {type(_host(model)).__name__}")
    return best


def apply_lora(
    model: nn.Module,
    r: int = 8,
    alpha: float = 16,
    dropout: float = 0.0,
    freeze_first_n_blocks: int | None = None,
    targets: Sequence[str] = ("q", "v"),
) -> nn.Module:
    """Inject LoRA (rank ``r``, scale ``alpha / r``) into the attention projections, in place.

    ``freeze_first_n_blocks=None`` freezes every block (only LoRA trains); ``n < depth``
    leaves blocks ``n..depth-1`` fully trainable as well. Returns ``model`` itself.
    """
    from peft import LoraConfig, inject_adapter_in_model

    host = _host(model)
    leaves = find_lora_targets(model, targets)
    blocks = find_blocks(model, leaves)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=leaves)
    inject_adapter_in_model(config, host)

    for name, param in host.named_parameters():
        param.requires_grad = LORA_MARKER in name
    if freeze_first_n_blocks is not None:
        if not 0 <= freeze_first_n_blocks <= len(blocks):
            raise ValueError(f"freeze_first_n_blocks must be in [0, {len(blocks)}]")
        for block in list(blocks)[freeze_first_n_blocks:]:
            block.requires_grad_(True)
    model.train(model.training)  # let wrappers re-decide eval/train for the backbone
    return model


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Trainable LoRA matrices: the optimiser's smaller-learning-rate group."""
    return [p for n, p in model.named_parameters() if LORA_MARKER in n and p.requires_grad]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold W + (alpha/r)·B·A into every LoRA layer and put the plain Linear back, in place.

    The result has no peft modules left, so merging again changes nothing.
    """
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if not isinstance(module, LoraLayer):
            continue
        module.merge()
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, leaf, module.get_base_layer())
    return model
