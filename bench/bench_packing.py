"""``python -m bench.bench_packing``: trials per hour when 1, 2, 4, 8 trials share one GPU.

Each packed trial is a separate process, as Ray Tune runs them: it builds the run of ``--shape``
(``bench.bench_fused``'s shapes: ``quick``, the quick preset's ``lwta`` starting point; ``wrn16``;
``paper``) and trains it with the training loop's step (``trainables.bundle.measure.training_step``,
the step bench_fused times for its runs apart and bundles: the mix's costliest attack, the model in
the loop's precision and layout) on random batches of the dataset's shape for ``--seconds`` after
``--warmup`` steps, and reports how many training steps it made. All k processes build and warm up
first, then are timed over the same window. Trials per hour = (summed steps per second) x 3600 /
(steps of one trial: epochs x ceil(training split / batch)), as bench_fused counts them, so a bundle
of k and k packed processes of one shape compare directly; the ratio column is k trials' throughput
over one trial's. This measures the GPU's share of a search; start-up, data loading and scoring are
not in it.

    python -m bench.bench_packing --counts 1,2,4,8 --seconds 20      # on a GPU machine
    python -m bench.bench_packing --shape wrn16 --counts 1,8 --seconds 8
    python -m bench.bench_packing --device cpu --counts 1,2 --seconds 5   # a dry run of the code path
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.bench_fused import SHAPES, shape_spec, trial_steps
from bench.common import provenance, resolve_bench_device, write_json
from trainables.bundle.measure import training_step
from trainables.cli import OneLineParser, run_main
from trainables.data import DATASETS

__all__ = ["PackingRow", "main", "worker"]

PROG = "python -m bench.bench_packing"


def worker(shape: str, device: torch.device, seconds: float, warmup: int) -> dict[str, float]:
    """One packed trial of ``shape``: warm up, say ready, wait for the go line on stdin, train for ``seconds``."""
    spec = shape_spec(shape)
    step = training_step(spec, DATASETS[spec.data.name][0], 1, device)
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    print("ready", flush=True)  # the parent starts every packed trial's window at once
    sys.stdin.readline()
    began, steps = time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        step()
        steps += 1
        if device.type == "cuda" and steps % 8 == 0:
            torch.cuda.synchronize(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"steps": steps, "seconds": time.perf_counter() - began}


@dataclass(frozen=True)
class PackingRow:
    """k trials on one device: their summed throughput and what it means in trials per hour."""

    trials: int
    steps_per_s: float
    trials_per_hour: float
    speedup: float  # over one trial alone


def _pack(shape: str, k: int, device: str, seconds: float, warmup: int, threads: int | None) -> float:
    """Summed training steps per second of ``k`` worker processes timed over the same window."""
    argv = [sys.executable, "-m", "bench.bench_packing", "--worker", "--shape", shape, "--device", device,
            "--seconds", str(seconds), "--warmup", str(warmup)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    try:
        for proc in procs:  # every one built and warmed up
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a packed trial exited with {proc.wait()} before it was ready")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        total = 0.0
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds + 300)
            if proc.returncode != 0:
                raise RuntimeError(f"a packed trial exited with {proc.returncode}")
            result = json.loads(out.strip().splitlines()[-1])
            total += result["steps"] / result["seconds"]
        return total
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    p = OneLineParser(prog=PROG, description="Trials per hour with 1, 2, 4, 8 trials sharing one GPU.")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when torch sees it")
    p.add_argument("--shape", choices=SHAPES, default="quick", help="the run each packed trial trains (bench_fused's)")
    p.add_argument("--counts", default="1,2,4,8", help="trials packed at once, comma-separated")
    p.add_argument("--seconds", type=float, default=20.0, help="timed window of every packed trial")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps each trial makes first")
    p.add_argument("--threads", type=int, default=None, help="torch threads per trial (default: torch's)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one packed trial (internal)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run each packing, print one table, write the JSON."""
    args = build_parser().parse_args(argv)
    device = resolve_bench_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args.shape, device, args.seconds, args.warmup)), flush=True)
        return 0
    counts = [int(c) for c in args.counts.split(",")]
    if not counts or min(counts) < 1 or args.seconds <= 0:
        raise ValueError(f"--counts must be positive integers and --seconds > 0, got {args.counts!r}, {args.seconds}")
    spec = shape_spec(args.shape)
    per_trial = trial_steps(spec)
    rows: list[PackingRow] = []
    for k in counts:
        rate = _pack(args.shape, k, device.type, args.seconds, args.warmup, args.threads)
        alone = rows[0].steps_per_s if rows and rows[0].trials == 1 else (rate if k == 1 else math.nan)
        rows.append(PackingRow(k, rate, rate * 3600 / per_trial, rate / alone))
        row = rows[-1]
        print(f"{k} {args.shape} trial(s) on one {device.type}: {row.steps_per_s:.2f} steps/s together, "
              f"{row.trials_per_hour:.1f} trials/h ({per_trial} steps each), {row.speedup:.2f}x one trial",
              flush=True)
    write_json(args.json, {"benchmark": "packing", "provenance": provenance(device), "shape": args.shape,
                           "trial_steps": per_trial, "spec": spec.to_dict(), "rows": [r.__dict__ for r in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
