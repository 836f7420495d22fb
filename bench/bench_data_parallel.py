"""``python -m bench.bench_data_parallel``: one training run as W gloo replicas against one process.

Both sides run ``trainables.train.fit`` on the same run (bench_tune's tiny trial: the quick preset's
attack mix and PGD-5 training, 1 epoch of a ``cnn`` on 1000 Fashion-MNIST images, PGD-5 on 100
validation images). The data-parallel side is what a Ray Train worker runs: W processes in one
torch.distributed group (gloo over a file store), each with ``threads // W`` torch threads, each
training its shard of every global batch with DistributedDataParallel and scoring its share of the
validation set. The reference is the same run in this process with ``threads`` threads. Only
``fit`` is timed (the slowest rank's, after the process group is up), not process start-up or
Ray's scheduling, which ``bench_tune`` measures.

On a CPU box the ratio tells what the collectives and per-replica Python overhead cost when the
same cores are split among replicas instead of among one process's threads; on several GPUs it is
the scaling of one trial over its GPUs (run with ``--device cuda --workers N`` and NCCL).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bench.bench_tune import add_tiny_run_options, tiny_base_from_args
from bench.common import (
    Comparison,
    add_common_options,
    check_counts,
    provenance,
    render,
    resolve_bench_device,
    write_json,
)
from trainables.cli import OneLineParser, run_main
from trainables.data import Splits, load_splits
from trainables.train import RunSpec, fit

__all__ = ["main", "time_in_process", "time_replicas"]

PROG = "python -m bench.bench_data_parallel"


def _replica(rank: int, world: int, store: str, spec: RunSpec, splits: Splits, threads: int, device: str,
             out: str) -> None:
    torch.set_num_threads(threads)
    backend = "nccl" if device == "cuda" else "gloo"
    where = torch.device(f"cuda:{rank}") if device == "cuda" else torch.device("cpu")
    if device == "cuda":
        torch.cuda.set_device(where)
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        dist.barrier()
        began = time.perf_counter()
        fit(spec, splits, device=where)
        torch.save(time.perf_counter() - began, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    os._exit(0)  # skip interpreter finalisation, where gloo's threads now and then abort the process


def time_replicas(spec: RunSpec, splits: Splits, workers: int, threads: int, device: str) -> float:
    """Seconds of ``fit`` on ``workers`` replicas (the slowest rank's), with ``threads`` threads each."""
    with tempfile.TemporaryDirectory(prefix="robustune-bench-ddp-") as tmp:
        mp.start_processes(_replica, args=(workers, f"{tmp}/store", spec, splits, threads, device, tmp),
                           nprocs=workers, start_method="spawn")
        return max(torch.load(Path(tmp) / f"rank{r}.pt") for r in range(workers))


def time_in_process(spec: RunSpec, splits: Splits, threads: int, device: str) -> float:
    """Seconds of ``fit`` in this process with ``threads`` threads."""
    torch.set_num_threads(threads)
    where = torch.device("cuda:0") if device == "cuda" else torch.device("cpu")
    began = time.perf_counter()
    fit(spec, splits, device=where)
    if where.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - began


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    p = OneLineParser(prog=PROG, description="One training run: W data-parallel replicas vs one process.")
    p.add_argument("--workers", type=int, default=2, help="data-parallel replicas (gloo on CPU, NCCL on CUDA)")
    add_tiny_run_options(p)
    p.add_argument("--data-dir", default=None)
    add_common_options(p, repeats=3, warmup=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, time both sides in ABBA pairs, print the table, write the JSON."""
    args = build_parser().parse_args(argv)
    check_counts(args.repeats, args.warmup)
    if args.workers < 2:
        raise ValueError(f"--workers must be >= 2, got {args.workers}")
    device = resolve_bench_device(args.device)
    if device.type == "cuda" and torch.cuda.device_count() < args.workers:
        raise ValueError(f"--workers {args.workers} needs as many GPUs, torch sees {torch.cuda.device_count()}")
    threads = args.threads or torch.get_num_threads()
    per_replica = max(1, threads // args.workers) if device.type == "cpu" else threads
    base = tiny_base_from_args(args)
    base = replace(base, data=replace(base.data, data_dir=args.data_dir))
    splits = load_splits(base.data)
    sides = {"replicas": lambda: time_replicas(base, splits, args.workers, per_replica, device.type),
             "one process": lambda: time_in_process(base, splits, threads, device.type)}
    for _ in range(args.warmup):
        for run in sides.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(args.repeats):  # ABBA: load from other processes hits both sides alike
        for name in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
            times[name].append(sides[name]())
    comparison = Comparison(f"fit, {args.workers} replicas", f"{args.workers} x {per_replica} threads",
                            f"1 x {threads} threads", tuple(times["replicas"]), tuple(times["one process"]))
    header = provenance(device, workers=args.workers, threads=threads, threads_per_replica=per_replica,
                        repeats=args.repeats, warmup=args.warmup,
                        run=f"{base.model.name} w{base.model.cnn_width} k{base.model.cnn_kernel}, {base.train.epochs} "
                            f"epoch on {len(splits.train)} train, suite {base.suite.names()} on {len(splits.val)} val")
    rows = [("replicas / one process (median of paired ratios)", f"{comparison.ratio:.2f}"),
            ("replicas, median fit", f"{statistics.median(times['replicas']):.2f} s"),
            ("one process, median fit", f"{statistics.median(times['one process']):.2f} s")]
    render("robustune bench: data-parallel fit (ratio = replicas / one process)", header, [comparison], rows,
           ("figure", "value"))
    write_json(args.json, {"benchmark": "data_parallel", "provenance": header,
                           "settings": vars(args) | {"json": str(args.json)}, "comparison": comparison.as_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
