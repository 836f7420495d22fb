"""``python -m bench.bench_packing``: trials per hour when 1, 2, 4, 8 trials share one GPU.

Each packed trial is a separate process, as Ray Tune runs them: it builds the quick preset's
``lwta`` run (the space's first starting point: the LWTA CNN in the loop's default precision and
layout), trains it with ``bench_trainables``' PGD-3 adversarial-training step on random batches of
the dataset's shape for ``--seconds`` after ``--warmup`` steps, and reports how many training steps
it made. All k processes build and warm up first, then are timed over the same window. Trials per
hour = (summed steps per second) x 3600 / (steps of one trial: epochs x ceil(55000 / batch)); the
ratio column is k trials' throughput over one trial's. This measures the GPU's share of a search;
start-up, data loading and scoring are not in it.

    python -m bench.bench_packing --counts 1,2,4,8 --seconds 20      # on a GPU machine
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

from bench.bench_trainables import TrainablesBench, _with, adversarial_step_fn
from bench.common import provenance, resolve_bench_device, write_json
from search_spaces import PRESETS, get_space
from trainables.cli import OneLineParser, run_main
from trainables.models import build_model
from trainables.train import RunSpec
from trainables.train.compute import resolve_compute

__all__ = ["PackingRow", "main", "trial_steps", "worker"]

PROG = "python -m bench.bench_packing"
TRAIN_SIZE = 55_000  # the quick preset's training split


def _spec() -> RunSpec:
    """The quick lwta search's first starting point."""
    space, preset = get_space("lwta"), PRESETS["quick"]
    return space.apply(space.fixed(preset), space.points_to_evaluate(preset)[0])


def trial_steps(spec: RunSpec) -> int:
    """Training steps of one whole trial of ``spec`` on the quick preset's split."""
    return spec.train.epochs * math.ceil(TRAIN_SIZE / spec.train.batch_size)


def worker(device: torch.device, seconds: float, warmup: int) -> dict[str, float]:
    """One packed trial: warm up, say ready, wait for the go line on stdin, train for ``seconds``."""
    spec = _spec()
    bench = TrainablesBench(shape=spec.data.name, batch=spec.train.batch_size, at_pgd_steps=3)
    info = bench.info
    compute = resolve_compute(spec.train.precision, spec.train.memory_format, device)
    model = compute.layout(build_model(spec.model, info).to(device))
    x = torch.rand(bench.batch, info.channels, info.size, info.size, device=device)  # (B, C, H, W)
    y = torch.randint(0, info.classes, (bench.batch,), device=device)  # (B,)
    step = _with(lambda: compute.autocast_context(device), adversarial_step_fn(model, x, y, bench))
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


def _pack(k: int, device: str, seconds: float, warmup: int, threads: int | None) -> float:
    """Summed training steps per second of ``k`` worker processes timed over the same window."""
    argv = [sys.executable, "-m", "bench.bench_packing", "--worker", "--device", device, "--seconds", str(seconds),
            "--warmup", str(warmup)]
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
        print(json.dumps(worker(device, args.seconds, args.warmup)), flush=True)
        return 0
    counts = [int(c) for c in args.counts.split(",")]
    if not counts or min(counts) < 1 or args.seconds <= 0:
        raise ValueError(f"--counts must be positive integers and --seconds > 0, got {args.counts!r}, {args.seconds}")
    per_trial = trial_steps(_spec())
    rows: list[PackingRow] = []
    for k in counts:
        rate = _pack(k, device.type, args.seconds, args.warmup, args.threads)
        alone = rows[0].steps_per_s if rows and rows[0].trials == 1 else (rate if k == 1 else math.nan)
        rows.append(PackingRow(k, rate, rate * 3600 / per_trial, rate / alone))
        row = rows[-1]
        print(f"{k} trial(s) on one {device.type}: {row.steps_per_s:.2f} steps/s together, "
              f"{row.trials_per_hour:.1f} trials/h ({per_trial} steps each), {row.speedup:.2f}x one trial",
              flush=True)
    write_json(args.json, {"benchmark": "packing", "provenance": provenance(device), "trial_steps": per_trial,
                           "spec": _spec().to_dict(), "rows": [r.__dict__ for r in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
