"""``python -m bench.bench_tune``: N tiny trials through Ray Tune against the same N in a plain loop.

Each trial is a tiny ``fit``: the quick preset's training (attack mix, PGD-5) for 1 epoch of a
``cnn`` (width 16, kernel 3) on 1000 Fashion-MNIST training images, scored on 100 validation images
with a 1-attack suite (PGD-5), one checkpoint per epoch like ``tuner.trials.trial.run_trial``. Trial i uses
seed i and the i-th of N log-spaced learning rates, on both sides.

Both sides run the very same trial body; only the reporter differs (``tune.report`` with the
epoch's checkpoint, or nothing). The Tune side is configured like ``tuner.search``: local Ray,
function trainable, ``tune.with_parameters`` for the data, ``reuse_actors=True``; a grid over the
trial index (no searcher: a searcher would pick other trials than the loop), one trial at a time
(``max_concurrent_trials=1``) with ``cpus_per_trial`` = all of Ray's CPUs, so trials get the same
threads as the loop's and the ratio is pure overhead, not parallelism.

Reported: ``ray.init`` separately, Tune wall (Tuner built + fit, ``with_parameters`` included) over
loop wall, with and without ``ray.init``, and the per-trial overhead (Tune - loop) / N.
"""

from __future__ import annotations

import contextlib
import io
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

import bench.common as common
from search_spaces.presets import QUICK
from trainables.cli import OneLineParser, run_main
from trainables.data import Splits, load_splits
from trainables.models import ModelConfig, RobustModel
from trainables.train import RunSpec, fit

__all__ = ["TinyTrials", "add_tiny_run_options", "main", "run_loop", "run_tune", "tiny_base", "tiny_base_from_args",
           "tiny_trial"]

PROG = "python -m bench.bench_tune"

Reporter = Callable[[dict[str, float], Path | None], None]  # (metrics, checkpoint dir)


@dataclass(frozen=True)
class TinyTrials:
    """What every tiny trial shares: the base run, the device, threads, and the lr range of the grid."""

    base: RunSpec
    device: str = "cpu"
    threads: int | None = None  # torch threads in each trial; None: the process's default
    checkpoint: bool = True
    lr_low: float = 0.01
    lr_high: float = 0.1

    def spec(self, index: int, trials: int) -> RunSpec:
        """Trial ``index`` of ``trials``: seed ``index``, the index-th log-spaced learning rate."""
        frac = index / max(trials - 1, 1)
        lr = math.exp(math.log(self.lr_low) + frac * (math.log(self.lr_high) - math.log(self.lr_low)))
        return replace(self.base, train=replace(self.base.train, lr=lr, seed=index))


def add_tiny_run_options(p: OneLineParser) -> None:
    """The flags of :func:`tiny_base`: --train-limit, --val-limit, --epochs, --cnn-width, --cnn-kernel."""
    p.add_argument("--train-limit", type=int, default=1000)
    p.add_argument("--val-limit", type=int, default=100)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--cnn-width", type=int, default=16)
    p.add_argument("--cnn-kernel", type=int, default=3)


def tiny_base_from_args(args: Any) -> RunSpec:
    """:func:`tiny_base` of the flags :func:`add_tiny_run_options` added."""
    return tiny_base(args.train_limit, args.val_limit, args.epochs, args.cnn_width, args.cnn_kernel)


def tiny_base(train_limit: int = 1000, val_limit: int = 100, epochs: int = 1, width: int = 16,
              kernel: int = 3) -> RunSpec:
    """The quick preset's training on a subset, a small ``cnn`` and a PGD-only suite."""
    data = replace(QUICK.data, train_limit=train_limit, val_limit=val_limit)
    train = replace(QUICK.train, epochs=epochs, eval_limit=val_limit)
    suite = QUICK.epoch_suite.select(["pgd"])
    return RunSpec(data=data, model=ModelConfig(name="cnn", cnn_width=width, cnn_kernel=kernel), train=train,
                   suite=suite, threat=QUICK.threat)


def tiny_trial(index: int, trials: int, setup: TinyTrials, splits: Splits, report: Reporter) -> None:
    """The trial body both sides run: fit, checkpoint and report once per epoch."""
    began = time.perf_counter()
    if setup.threads is not None:
        torch.set_num_threads(setup.threads)
    work = Path(tempfile.mkdtemp(prefix="robustune-bench-")) if setup.checkpoint else None

    def on_epoch(metrics: dict[str, float], checkpoint_dir: Path | None, model: RobustModel) -> None:
        report(metrics | {"body_s": time.perf_counter() - began, "torch_threads": float(torch.get_num_threads())},
               checkpoint_dir)

    try:
        fit(setup.spec(index, trials), splits, checkpoint_dir=work, on_epoch=on_epoch, device=setup.device)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _tune_function(config: dict[str, Any], trials: int, setup: TinyTrials, splits: Splits) -> None:
    """Ray Tune function trainable around :func:`tiny_trial`."""
    from ray import tune

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)

    tiny_trial(int(config["index"]), trials, setup, splits, report)


@dataclass
class SideLog:
    """Per-run facts of one side, besides its wall time: summed trial-body seconds and threads seen."""

    body_s: list[float]
    threads: set[float]


def run_loop(trials: int, setup: TinyTrials, splits: Splits, log: SideLog | None = None) -> None:
    """The ``trials`` trials one after the other in this process."""
    finals: list[dict[str, float]] = []  # each trial's last report (body_s counts from the trial's start)
    for i in range(trials):
        reports: list[dict[str, float]] = []
        tiny_trial(i, trials, setup, splits, lambda metrics, _checkpoint, out=reports: out.append(metrics))
        finals.append(reports[-1])
    if log is not None:
        log.threads.update(r["torch_threads"] for r in finals)
        log.body_s.append(sum(r["body_s"] for r in finals))


def run_tune(trials: int, setup: TinyTrials, splits: Splits, cpus_per_trial: float, storage: Path,
             log: SideLog | None = None) -> None:
    """The same trials through Ray Tune (a fresh Tuner each call; raises if a trial errored)."""
    from ray import tune

    trainable = tune.with_resources(tune.with_parameters(_tune_function, trials=trials, setup=setup, splits=splits),
                                    {"cpu": cpus_per_trial, "gpu": 1 if setup.device.startswith("cuda") else 0})
    name = f"bench-tune-{time.time_ns()}"
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(trials)))},
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )
    with contextlib.redirect_stdout(io.StringIO()):  # Tune's experiment banner, even at verbose=0
        grid = tuner.fit()
    if grid.num_errors:
        raise RuntimeError(f"{grid.num_errors} of {len(grid)} Tune trials failed: {grid.errors[0]}")
    if log is not None:
        log.body_s.append(sum(r.metrics["body_s"] for r in grid))
        log.threads.update(r.metrics["torch_threads"] for r in grid)
    shutil.rmtree(storage / name, ignore_errors=True)


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    p = OneLineParser(prog=PROG, description="Ray Tune overhead: N tiny trials through Tune vs a plain loop.")
    p.add_argument("--trials", type=int, default=8, help="N trials per side")
    add_tiny_run_options(p)
    p.add_argument("--cpus", type=int, default=2, help="Ray's num_cpus, and each trial's cpus (one at a time)")
    p.add_argument("--no-checkpoint", action="store_true", help="trials write and report no checkpoint")
    p.add_argument("--data-dir", default=None)
    common.add_common_options(p, repeats=3, warmup=1,
                              threads_help="torch threads per trial, both sides (default: --cpus)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, start Ray (timed), measure both sides interleaved, print the table, write the JSON."""
    args = build_parser().parse_args(argv)
    common.check_counts(args.repeats, args.warmup)
    if args.trials < 1 or args.cpus < 1:
        raise ValueError(f"--trials and --cpus must be >= 1, got {args.trials=}, {args.cpus=}")
    device = common.resolve_bench_device(args.device)
    threads = args.threads or args.cpus  # the same on both sides: Ray's worker would get OMP threads = cpus
    torch.set_num_threads(threads)
    base = tiny_base_from_args(args)
    base = replace(base, data=replace(base.data, data_dir=args.data_dir))
    setup = TinyTrials(base=base, device=str(device), threads=threads, checkpoint=not args.no_checkpoint)
    splits = load_splits(base.data)
    header = common.provenance(device, trials=args.trials, repeats=args.repeats, warmup=args.warmup,
                               ray_cpus=args.cpus, cpus_per_trial=args.cpus, max_concurrent_trials=1, reuse_actors=True,
                               checkpoint=setup.checkpoint,
                               trial=f"{base.model.name} w{base.model.cnn_width} k{base.model.cnn_kernel}, "
                                     f"{base.train.epochs} epoch on {len(splits.train)} train, "
                                     f"suite {base.suite.attacks} on {len(splits.val)} val")

    import ray

    from tuner.cluster.connect import connect_ray

    began = time.perf_counter()
    import ray.tune  # noqa: F401  (its import is part of what a search pays once)
    import_s = time.perf_counter() - began
    storage = Path(tempfile.mkdtemp(prefix="robustune-bench-tune-"))
    began = time.perf_counter()
    connect_ray("", num_cpus=args.cpus, num_gpus=1 if device.type == "cuda" else 0, object_store_memory=256 << 20)
    init_s = time.perf_counter() - began
    tune_log, loop_log = SideLog([], set()), SideLog([], set())
    try:
        for _ in range(args.warmup):  # untimed: one trial per side
            run_loop(1, setup, splits)
            run_tune(1, setup, splits, args.cpus, storage)
        comparison = common.compare(
            f"{args.trials} trials",
            ("tune", lambda: run_tune(args.trials, setup, splits, args.cpus, storage, tune_log)),
            ("loop", lambda: run_loop(args.trials, setup, splits, loop_log)), device, args.repeats, warmup=0)
        began = time.perf_counter()
    finally:
        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    shutdown_s = time.perf_counter() - began
    figures = tune_figures(comparison, args.trials, init_s, tune_log, loop_log)
    header |= {"import_ray_tune_s": round(import_s, 2), "ray_init_s": round(init_s, 2),
               "ray_shutdown_s": round(shutdown_s, 2), "trial_torch_threads_tune": sorted(tune_log.threads),
               "trial_torch_threads_loop": sorted(loop_log.threads),
               "loadavg_after": common.provenance(device)["loadavg_1_5_15"]}
    rows = [(k, v) for k, v in figures["table"]]
    common.render("robustune bench: Ray Tune overhead (ratio = tune / loop, median of paired repeats)", header,
                  [comparison], rows, ("figure", "value"))
    settings = vars(args) | {"json": str(args.json)}
    common.write_json(args.json, {"benchmark": "tune", "provenance": header, "settings": settings,
                                  "comparison": comparison.as_dict(), "figures": figures["values"]})
    return 0


def tune_figures(c: common.Comparison, trials: int, init_s: float, tune_log: SideLog,
                 loop_log: SideLog) -> dict[str, Any]:
    """Ratios with and without ``ray.init``, per-trial overhead, and time spent outside trial bodies."""
    tune_s, loop_s = statistics.median(c.ours_s), statistics.median(c.reference_s)
    values = {
        "tune_over_loop": c.ratio,
        "tune_over_loop_with_ray_init": statistics.median((t + init_s) / lp for t, lp in
                                                          zip(c.ours_s, c.reference_s, strict=True)),
        "per_trial_overhead_s": statistics.median((t - lp) / trials for t, lp in
                                                  zip(c.ours_s, c.reference_s, strict=True)),
        "per_trial_overhead_with_ray_init_s": statistics.median((t + init_s - lp) / trials for t, lp in
                                                                zip(c.ours_s, c.reference_s, strict=True)),
        "ray_init_s": init_s,
        "tune_wall_median_s": tune_s,
        "loop_wall_median_s": loop_s,
        "tune_trial_bodies_median_s": statistics.median(tune_log.body_s),
        "loop_trial_bodies_median_s": statistics.median(loop_log.body_s),
    }
    values["tune_outside_bodies_per_trial_s"] = (tune_s - values["tune_trial_bodies_median_s"]) / trials
    table = [
        ("ray.init (once per search)", f"{init_s:.2f} s"),
        ("tune / loop, without ray.init", f"{values['tune_over_loop']:.2f}"),
        ("tune / loop, with ray.init", f"{values['tune_over_loop_with_ray_init']:.2f}"),
        ("per-trial overhead, without ray.init", f"{values['per_trial_overhead_s']:.2f} s"),
        ("per-trial overhead, with ray.init", f"{values['per_trial_overhead_with_ray_init_s']:.2f} s"),
        ("trial bodies: tune / loop (summed, median)",
         f"{values['tune_trial_bodies_median_s']:.1f} s / {values['loop_trial_bodies_median_s']:.1f} s"),
        ("tune wall outside trial bodies, per trial", f"{values['tune_outside_bodies_per_trial_s']:.2f} s"),
    ]
    return {"values": values, "table": table}


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
