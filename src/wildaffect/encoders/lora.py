"""LoRA on the attention projections of a foundation encoder (seed 002 §4.1), via peft.

The paper freezes most of DINOv2 ViT-L/14 and adapts the query and value projections with
LoRA. peft knows no default targets for DINOv2/WavLM, and transformers renamed the projections
across releases (``query``/``value`` before 5.x, ``q_proj``/``v_proj`` now; CLIP, WavLM and
Whisper always used ``q_proj``/``v_proj``), so the target names are DISCOVERED from the module
tree of the model in hand rather than hard-coded.

Some attention modules never CALL their projections: WavLM passes ``q_proj.weight`` straight
to ``F.multi_head_attention_forward``, so peft's module wrappers (and its ``target_parameters``
wrapper, active only inside the module's own forward) would be silently ignored there. For such
modules (found by reading their class source for ``self.<proj>.weight``) the same LoRA update
is installed as a ``torch.nn.utils.parametrize`` parametrization of the weight itself:
W -> W + (alpha/r)·B·A, with B = 0 at start like peft (LoRA dropout does not apply there).

Trainability after :func:`apply_lora`: inside the backbone only the LoRA matrices train, plus
every parameter of blocks ``freeze_first_n_blocks .. depth-1`` when that number is below the
depth (the paper's "freeze the majority of the blocks"). Parameters of our wrappers that live
outside ``model.backbone`` (e.g. the WavLM layer weights and adapter) keep their state.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

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


def _attention_linears(host: nn.Module) -> list[tuple[str, str, str]]:
    """(full name, parent name, leaf name) of every Linear that sits inside an attention module."""
    found = []
    for name, module in host.named_modules():
        parent, _, leaf = name.rpartition(".")
        if isinstance(module, nn.Linear) and (
            "attn" in parent.lower() or "attention" in parent.lower()
        ):
            found.append((name, parent, leaf))
    return found


def find_lora_targets(model: nn.Module, targets: Sequence[str] = ("q", "v")) -> list[str]:
    """Leaf names of the attention projections in ``model`` for each requested letter."""
    linear_leaves = {leaf for _, _, leaf in _attention_linears(_host(model))}
    found = []
    for letter in targets:
        if letter not in PROJECTION_NAMES:
            raise ValueError(
                f"unknown LoRA target {letter!r}; choose from {sorted(PROJECTION_NAMES)}"
            )
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
            any(n.rsplit(".", 1)[-1] in leaves for n, _ in child.named_modules())
            for child in module
        ) and (best is None or len(module) > len(best)):
            best = module
    if best is None:
        raise ValueError(f"no block list holding {sorted(leaves)} in {type(_host(model)).__name__}")
    return best


class LoraWeightDelta(nn.Module):
    """Parametrization W -> W + scaling·B·A for projections whose weight is read directly."""

    def __init__(self, weight: torch.Tensor, r: int, alpha: float):
        super().__init__()
        out_features, in_features = weight.shape
        self.lora_A = nn.Parameter(
            torch.empty(r, in_features, dtype=weight.dtype, device=weight.device)
        )
        self.lora_B = nn.Parameter(
            torch.zeros(out_features, r, dtype=weight.dtype, device=weight.device)
        )
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # peft's default init for A
        self.scaling = alpha / r

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # weight: (out, in); B @ A: (out, r) @ (r, in)
        return weight + self.scaling * (self.lora_B @ self.lora_A)


@functools.cache
def _reads_weight_directly(owner_cls: type, leaf: str) -> bool:
    """Whether ``owner_cls`` uses ``self.<leaf>.weight`` instead of calling ``self.<leaf>(x)``."""
    try:
        source = inspect.getsource(owner_cls)
    except (OSError, TypeError):
        return False
    return f"self.{leaf}.weight" in source


def _split_targets(host: nn.Module, leaves: Sequence[str]) -> tuple[list[str], list[str]]:
    """Full names of target Linears: (called as modules -> peft, weight read directly ->
    parametrize)."""
    called, direct = [], []
    for name, parent_name, leaf in _attention_linears(host):
        if leaf in leaves:
            owner = host.get_submodule(parent_name)
            (direct if _reads_weight_directly(type(owner), leaf) else called).append(name)
    return called, direct


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
    if freeze_first_n_blocks is not None and not 0 <= freeze_first_n_blocks <= len(blocks):
        raise ValueError(f"freeze_first_n_blocks must be in [0, {len(blocks)}]")
    called, direct = _split_targets(host, leaves)
    if called:
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=called)
        inject_adapter_in_model(config, host)
    for name in direct:
        linear = host.get_submodule(name)
        parametrize.register_parametrization(
            linear, "weight", LoraWeightDelta(linear.weight, r, alpha)
        )

    for name, param in host.named_parameters():
        param.requires_grad = LORA_MARKER in name
    if freeze_first_n_blocks is not None:
        for block in list(blocks)[freeze_first_n_blocks:]:
            block.requires_grad_(True)
    model.train(model.training)  # let wrappers re-decide eval/train for the backbone
    return model


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Trainable LoRA matrices: the optimiser's smaller-learning-rate group."""
    return [p for n, p in model.named_parameters() if LORA_MARKER in n and p.requires_grad]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold W + (alpha/r)·B·A into every LoRA layer and put the plain Linear back, in place.

    The result has no peft modules or LoRA parametrizations left, so merging again changes nothing.
    """
    from peft.tuners.lora import LoraLayer

    for module in list(model.modules()):
        if parametrize.is_parametrized(module, "weight") and any(
            isinstance(p, LoraWeightDelta) for p in module.parametrizations["weight"]
        ):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    for name, module in list(model.named_modules()):
        if not isinstance(module, LoraLayer):
            continue
        module.merge()
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, leaf, module.get_base_layer())
    return model
