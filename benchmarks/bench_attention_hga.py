"""Timings of the safe attention, the asymmetric cross-attention and HGA (not a test).

    python benchmarks/bench_attention_hga.py [--out PATH]

- MultiHeadAttention, fused SDPA vs the explicit reference, at HGA's shapes (21 region
  queries over 16x16 patches, ViT-S width), forward+backward, fp32 and bf16 autocast;
- AsymmetricCrossAttention: windowed gather (O(L w)) vs the dense banded mask (O(L^2)) vs
  the global variant, forward only, growing clip length;
- landmarks_to_region_masks and a full HGA forward+backward on one 256-frame clip.
Prints a table and writes JSON (atomically). Timings on a shared 2-core CPU are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from wildaffect.models.hga import HGA, landmarks_to_region_masks
from wildaffect.models.layers.attention import MultiHeadAttention
from wildaffect.models.layers.cross_attention import AsymmetricCrossAttention


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs (after one warm-up), in milliseconds."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def mha_rows() -> list[tuple[str, float]]:
    torch.manual_seed(0)
    frames, regions, patches, dim = 64, 21, 256, 384
    module = MultiHeadAttention(dim, dim, dim, n_heads=8)
    query = torch.randn(frames, regions, dim, requires_grad=True)
    keys = torch.randn(frames, patches, dim, requires_grad=True)
    rows = []
    for precision in ("fp32", "bf16"):
        for impl in ("sdpa", "reference"):
            module.impl = impl

            def step(bf16: bool = precision == "bf16") -> None:
                cast = (
                    torch.autocast("cpu", dtype=torch.bfloat16)
                    if bf16
                    else contextlib.nullcontext()
                )
                with cast:
                    out = module(query, keys)
                out.float().sum().backward()

            name = f"MHA {impl:9s} {precision} fwd+bwd, {frames} frames x {regions}q x {patches}k"
            rows.append((name, best_of(step)))
    return rows


def cross_attention_rows() -> list[tuple[str, float]]:
    torch.manual_seed(0)
    dim, window = 256, 16
    rows = []
    for length in (256, 1024, 4096):
        visual, audio = torch.randn(1, length, dim), torch.randn(1, length, dim)
        variants = [("windowed gather", window, "sdpa"), ("global sdpa", None, "sdpa")]
        if length <= 1024:
            variants.append(("dense band ref", window, "reference"))
        for label, win, impl in variants:
            module = AsymmetricCrossAttention(dim, dim, dim, 8, window=win, impl=impl).eval()
            with torch.no_grad():
                ms = best_of(lambda m=module, v=visual, a=audio: m(v, a))
            rows.append((f"cross-attn {label:15s} w={win} L={length} fwd", ms))
    return rows


def hga_rows() -> list[tuple[str, float]]:
    torch.manual_seed(0)
    frames, dim = 256, 384
    landmarks = torch.rand(1, frames, 68, 2)
    patches = torch.randn(1, frames, 16, 16, dim)
    hga = HGA(d_patch=dim, d_out=256, n_heads=8)

    def step() -> None:
        hga(patches, landmarks).sum().backward()

    return [
        (
            f"landmarks_to_region_masks, {frames} frames, 21 regions",
            best_of(lambda: landmarks_to_region_masks(landmarks)),
        ),
        (f"HGA fwd+bwd, {frames} frames, 16x16x{dim} patches", best_of(step, 1)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path("benchmarks/results/attention_hga.json")
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = mha_rows() + cross_attention_rows() + hga_rows()
    width = max(len(name) for name, _ in rows)
    print(f"{'case':{width}s}  ms")
    for name, ms in rows:
        print(f"{name:{width}s}  {ms:9.1f}")
    payload = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "note": "shared 2-core CPU, other jobs running: noisy",
        "ms": {name: round(ms, 2) for name, ms in rows},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, suffix=".tmp") as f:
        json.dump(payload, f, indent=2)
    os.replace(f.name, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
