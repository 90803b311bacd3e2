"""Timings of the ABAW data layer (not a test: prints a table, writes JSON).

    python benchmarks/bench_abaw_data.py [--frames 50000] [--out PATH]

- parse one annotation file of ``--frames`` lines per task: the public parser (fast path)
  vs the line-by-line reference parser;
- write and read back a submission of ``--frames`` rows per task.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wildaffect.data.abaw import parse_annotation_bytes, parse_annotation_reference
from wildaffect.io.submission import read_submission, write_submission
from wildaffect.labels import TASK_SPECS, Task


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def annotation_text(task: Task, n: int, rng: np.random.Generator) -> bytes:
    if task is Task.AU:
        rows = (",".join(map(str, r)) for r in rng.integers(-1, 2, (n, 12)))
    elif task is Task.EXPR:
        rows = map(str, rng.integers(-1, 8, n))
    else:
        rows = (f"{a:.6f},{b:.6f}" for a, b in rng.uniform(-1, 1, (n, 2)))
    return (TASK_SPECS[task].header + "\n" + "\n".join(rows) + "\n").encode()


def predictions(task: Task, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if task is Task.AU:
        return {"video": rng.integers(0, 2, (n, 12))}
    if task is Task.EXPR:
        return {"video": rng.integers(0, 8, n)}
    return {"video": rng.uniform(-1, 1, (n, 2)).astype(np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "abaw_data.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    parse_annotation_bytes(annotation_text(Task.VA, 10, rng), Task.VA)  # warm-up: pandas import
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in Task:
            data = annotation_text(task, args.frames, rng)
            fast = best_of(lambda data=data, task=task: parse_annotation_bytes(data, task))
            slow = best_of(lambda data=data, task=task: parse_annotation_reference(data, task),
                           repeat=1)
            path = Path(tmp) / f"{task.value}.txt"
            preds = predictions(task, args.frames, rng)
            write = best_of(lambda p=path, t=task, x=preds: write_submission(p, t, x))
            read = best_of(lambda p=path, t=task: read_submission(p, t))
            results.append({"task": task.value, "frames": args.frames, "parse_ms": fast,
                            "reference_parse_ms": slow, "submission_write_ms": write,
                            "submission_read_ms": read})
    print(f"{'task':5} {'frames':>8} {'parse ms':>9} {'reference ms':>13} "
          f"{'sub write ms':>13} {'sub read ms':>12}")
    for r in results:
        print(f"{r['task']:5} {r['frames']:>8} {r['parse_ms']:>9.1f} "
              f"{r['reference_parse_ms']:>13.1f} {r['submission_write_ms']:>13.1f} "
              f"{r['submission_read_ms']:>12.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "results": results}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
