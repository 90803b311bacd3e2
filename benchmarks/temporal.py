"""Benchmark the temporal models: forward+backward time and peak memory against sequence length.

Cases (B=1, width --d-model, state --d-state):
  scan_reference   our sequential oracle (only up to --reference-max-len)
  scan_chunked     our chunked selective scan
  mambapy_pscan    mambapy's Blelloch pscan with the same discretisation and C read-out
  ag_ssm_block     one AGSSMBlock (d_inner = d_model, audio width = d_model)
  transformer      one nn.TransformerEncoderLayer of the same width (SDPA attention)
  tcn              TCN(d_model), kernel 3, dilations 1, 2, 4, 8

Every (case, length) runs in its own subprocess so that memory is measurable: peak memory is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that process, reported as the growth over the
RSS measured after inputs and weights were built (tracemalloc does not see torch's allocator).
Time is the median of --repeats forward+backward passes after --warmup passes.

    .venv/bin/python benchmarks/temporal.py --lengths 256 1024 8192 --repeats 3

Targets reported (not asserted): the chunked scan no slower than mambapy at L=8192,
t(16384)/t(1024) <= 20 for the chunked scan, and the AG-SSM block faster than one Transformer
layer from L=16384 on.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("scan_reference", "scan_chunked", "mambapy_pscan", "ag_ssm_block", "transformer", "tcn")
DEFAULT_LENGTHS = (256, 1024, 4096, 8192, 16384)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "temporal.json"


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _build_case(case: str, length: int, d_model: int, d_state: int):
    """Return a zero-argument callable doing one forward+backward pass of ``case``."""
    import torch
    import torch.nn.functional as F

    from wildaffect.models.ag_ssm import AGSSMBlock
    from wildaffect.models.layers.scan import selective_scan
    from wildaffect.models.layers.temporal import TCN

    torch.manual_seed(0)
    if case in ("scan_reference", "scan_chunked", "mambapy_pscan"):
        u = torch.randn(1, d_model, length, requires_grad=True)
        delta = torch.randn(1, d_model, length, requires_grad=True)
        A = (-torch.exp(torch.randn(d_model, d_state))).requires_grad_()
        B = torch.randn(1, d_state, length, requires_grad=True)
        C = torch.randn(1, d_state, length, requires_grad=True)
        if case == "mambapy_pscan":
            from mambapy.pscan import pscan

            def run():  # mambapy's own selective_scan, minus D: discretise, pscan, read out
                dt = F.softplus(delta).transpose(1, 2)  # (B, L, D)
                delta_a = torch.exp(dt.unsqueeze(-1) * A)  # (B, L, D, N)
                bx = (dt * u.transpose(1, 2)).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(2)
                hs = pscan(delta_a, bx)  # (B, L, D, N)
                y = (hs @ C.transpose(1, 2).unsqueeze(-1)).squeeze(-1)  # (B, L, D)
                y.sum().backward()
        else:
            impl = case.removeprefix("scan_")

            def run():
                selective_scan(u, delta, A, B, C, impl=impl).sum().backward()

        return run

    x = torch.randn(1, length, d_model, requires_grad=True)
    if case == "ag_ssm_block":
        model = AGSSMBlock(d_model, d_model, d_state=d_state, d_inner=d_model)
        audio = torch.randn(1, length, d_model)
        forward = lambda: model(x, audio)[0]
    elif case == "transformer":
        model = torch.nn.TransformerEncoderLayer(
            d_model, nhead=4, dim_feedforward=4 * d_model, dropout=0.0, batch_first=True
        )
        forward = lambda: model(x)
    elif case == "tcn":
        model = TCN(d_model)
        forward = lambda: model(x)
    else:
        raise ValueError(f"unknown case {case!r}; choose from {CASES}")
    model.train()

    def run():
        forward().sum().backward()

    return run


def worker(
    case: str, length: int, d_model: int, d_state: int, repeats: int, warmup: int, threads: int
) -> dict:
    """Measure one (case, length) in this process; returns the JSON row."""
    import torch

    torch.set_num_threads(threads)
    run = _build_case(case, length, d_model, d_state)
    base_rss = _max_rss_mb()
    for _ in range(warmup):
        run()
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {
        "case": case,
        "length": length,
        "median_ms": 1e3 * statistics.median(times),
        "times_ms": [1e3 * t for t in times],
        # CPU time of all threads: less distorted than wall time when the machine is shared.
        "median_cpu_ms": 1e3 * statistics.median(cpu_times),
        "peak_rss_mb": _max_rss_mb(),
        "extra_rss_mb": _max_rss_mb() - base_rss,
    }


def _run_in_subprocess(case: str, length: int, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        case,
        str(length),
        "--d-model",
        str(args.d_model),
        "--d-state",
        str(args.d_state),
        "--repeats",
        str(args.repeats),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
    ]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"case": case, "length": length, "error": f"timeout after {args.timeout} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
        return {"case": case, "length": length, "error": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _targets(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows; a target with missing measurements says so."""
    t = {(r["case"], r["length"]): r.get("median_ms") for r in rows}
    out = []
    ours, theirs = t.get(("scan_chunked", 8192)), t.get(("mambapy_pscan", 8192))
    if ours and theirs:
        out.append(
            (
                "chunked scan <= mambapy at L=8192",
                f"{ours:.0f} vs {theirs:.0f} ms",
                "met" if ours <= theirs else "missed",
            )
        )
    long_, short = t.get(("scan_chunked", 16384)), t.get(("scan_chunked", 1024))
    if long_ and short:
        ratio = long_ / short
        out.append(
            ("chunked t(16384)/t(1024) <= 20", f"{ratio:.1f}", "met" if ratio <= 20 else "missed")
        )
    for length in sorted({r["length"] for r in rows if r["length"] >= 16384}):
        block, attn = t.get(("ag_ssm_block", length)), t.get(("transformer", length))
        if block and attn:
            out.append(
                (
                    f"AG-SSM block < Transformer layer at L={length}",
                    f"{block:.0f} vs {attn:.0f} ms",
                    "met" if block < attn else "missed",
                )
            )
    return out


def _print_tables(rows: list[dict], targets: list[tuple[str, str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    lengths = sorted({r["length"] for r in rows})
    cases = [c for c in CASES if any(r["case"] == c for r in rows)]
    for title, key, fmt in [
        ("fwd+bwd median wall time (ms)", "median_ms", "{:.1f}"),
        ("fwd+bwd median CPU time, all threads (ms)", "median_cpu_ms", "{:.1f}"),
        ("peak extra RSS (MB)", "extra_rss_mb", "{:.0f}"),
    ]:
        table = Table(title=title)
        table.add_column("case")
        for length in lengths:
            table.add_column(f"L={length}", justify="right")
        for case in cases:
            cells = []
            for length in lengths:
                row = next((r for r in rows if r["case"] == case and r["length"] == length), None)
                if row is None:
                    cells.append("-")
                elif "error" in row:
                    cells.append("err")
                else:
                    cells.append(fmt.format(row[key]))
            table.add_row(case, *cells)
        console.print(table)
    if targets:
        table = Table(title="targets (reported, not asserted)")
        for col in ("target", "measured", "verdict"):
            table.add_column(col)
        for row in targets:
            table.add_row(*row)
        console.print(table)
    for row in rows:
        if "error" in row:
            console.print(f"[red]{row['case']} L={row['length']}: {row['error']}[/red]")


def _write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(DEFAULT_LENGTHS))
    parser.add_argument(
        "--max-len",
        type=int,
        default=16384,
        help="drop lengths above this; raise it (e.g. 65536) to add longer runs",
    )
    parser.add_argument(
        "--reference-max-len",
        type=int,
        default=1024,
        help="the sequential oracle is only run up to this length",
    )
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        case, length = args.worker[0], int(args.worker[1])
        row = worker(
            case, length, args.d_model, args.d_state, args.repeats, args.warmup, args.threads
        )
        print(json.dumps(row))
        return

    extra = {2**k for k in range(15, 17) if 2**k <= args.max_len}  # 32768, 65536 when allowed
    lengths = sorted(n for n in set(args.lengths) | extra if n <= args.max_len)
    rows = []
    for case in args.cases:
        for length in lengths:
            if case == "scan_reference" and length > args.reference_max_len:
                continue
            row = _run_in_subprocess(case, length, args)
            rows.append(row)
            status = row.get("error") or f"{row['median_ms']:.1f} ms"
            print(f"{case:15s} L={length:6d}  {status}", file=sys.stderr, flush=True)
    targets = _targets(rows)
    _print_tables(rows, targets)
    config = {k: v for k, v in vars(args).items() if k not in ("worker", "out")}
    payload = {
        "config": config,
        "memory": "peak ru_maxrss growth of a fresh subprocess per case, over its RSS after setup",
        "rows": rows,
        "targets": [dict(zip(("target", "measured", "verdict"), t)) for t in targets],
    }
    _write_json_atomic(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
