"""``python -m tuner.search --space lwta``: search robust classifiers with Ray Tune + Optuna, export the best."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_spaces import PRESETS, list_spaces
from trainables.cli import OneLineParser
from trainables.data import list_datasets
from trainables.evaluation import SuiteOverrides, add_suite_arguments
from trainables.train.compute import MEMORY_FORMATS, PRECISIONS
from tuner.bundles import parse_fuse
from tuner.cluster.storage import STUDY_STORAGES
from tuner.console.status import show_status
from tuner.experiment import check_name
from tuner.export import claim_warnings
from tuner.search.config import PROMOTE_FROM, TRACKINGS, SearchConfig
from tuner.search.screening import run_search
from tuner.trials.strategy import OBJECTIVES, SAMPLERS, SCHEDULERS, describe

__all__ = ["PROG", "build_parser", "main"]

PROG = "python -m tuner.search"


def build_parser() -> tuple[OneLineParser, tuple[str, ...]]:
    """The search command line, and the destinations of its suite flags."""
    p = OneLineParser(prog=PROG, description="Search robust classifiers with Ray Tune + Optuna.")
    p.add_argument("--space", default="lwta", choices=list_spaces(), help="the model family searched")
    p.add_argument("--preset", default="quick", choices=PRESETS.names(),
                   help="quick: a 2-core laptop in minutes; paper: the paper's CIFAR-10 setting")
    p.add_argument("--dataset", default=None, choices=list_datasets(), help="override the preset's dataset")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--download", action="store_true")
    p.add_argument("--num-samples", type=int, default=None, help="trials (default: the preset's)")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as the resources allow)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs each trial holds")
    p.add_argument("--gpus-per-trial", type=_gpus, default=None,
                   help="fractions share a GPU; N > 1 trains data-parallel on N GPUs; auto sizes a share from a "
                        "memory probe (default: auto when the cluster has GPUs)")
    p.add_argument("--workers-per-trial", type=int, default=None,
                   help="data-parallel Ray Train workers per trial (default: one per GPU; gloo workers on CPU)")
    p.add_argument("--seed", type=int, default=0, help="the sampler's and the trials' seed")
    p.add_argument("--objective", default="robust", choices=list(OBJECTIVES),
                   help="robust: maximise worst-case robust validation accuracy; pareto: maximise it and natural "
                        "validation accuracy together (Optuna's multi-objective TPE), a Pareto front of trials")
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS.in_order(),
                   help="how Optuna proposes trials after the space's known-good points: " + describe(SAMPLERS)
                        + " (--resume keeps the search's own)")
    p.add_argument("--scheduler", default="asha", choices=SCHEDULERS.in_order(),
                   help="which trials train to the end: " + describe(SCHEDULERS) + " (--resume keeps the search's own)")
    p.add_argument("--pick-min-natural", type=float, default=None, metavar="X",
                   help="with --objective pareto: export the most robust Pareto trial whose natural validation "
                        "accuracy is >= X (in [0, 1]); default: the most robust on the front")
    p.add_argument("--storage-path", default="runs", help="local folder or pyarrow URI (s3://, gs://)")
    p.add_argument("--name", default=None, help="experiment name (default: SPACE-PRESET)")
    p.add_argument("--resume", action="store_true", help="continue the experiment --name in --storage-path")
    p.add_argument("--trust-experiment", action="store_true",
                   help="with --resume: skip the integrity check of the experiment folder (Tune unpickles it); "
                        "only for a folder you trust")
    p.add_argument("--address", default="", help="'' local Ray; 'auto' or host:port joins a cluster")
    p.add_argument("--wait-for-resources", dest="resource_wait_s", type=float, default=None, metavar="SECONDS",
                   help="how long a joined cluster may take to grow until a trial fits (default 600; a local Ray: 0)")
    p.add_argument("--export-dir", default="exports", help="where the best model is exported (exports/NAME)")
    p.add_argument("--optuna-storage", default=None,
                   help="SQLAlchemy URL of the study's database (default: kept in the experiment, see --study-storage)")
    p.add_argument("--study-storage", default="auto", choices=list(STUDY_STORAGES),
                   help="; ".join(f"{k}: {v}" for k, v in STUDY_STORAGES.items()))
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--train-budget", action="append", default=None, metavar="ATTACK.SETTING=VALUE",
                   help="the training attacks' budgets for every trial, as --budget sets the suites' (e.g. "
                        "pgd.steps=7; pgd.steps=1,pgd.step_ratio=1.25 trains on FGSM with a random start)")
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="training's autocast (default auto: bf16 on CPUs with native bf16, else fp32; scoring is fp32)")
    p.add_argument("--memory-format", default=None, choices=MEMORY_FORMATS,
                   help="the models' layout (default auto: channels_last on CPU, contiguous on CUDA)")
    p.add_argument("--train-limit", type=int, default=None, help="override the preset's training subset")
    p.add_argument("--val-limit", type=int, default=None, help="override the preset's validation subset")
    p.add_argument("--test-limit", type=int, default=None, help="override the preset's test subset")
    p.add_argument("--points", default=None,
                   help="JSON list of configurations to evaluate first (one with an \"epochs\" key trains for "
                        "that many, fused or not; one with a \"warm_from\" key starts from that screen checkpoint)")
    p.add_argument("--screen", type=_screen, default=None, metavar="N|off",
                   help="first train N configurations on a short schedule (their own experiment NAME-screen), "
                        "then the best --promote of them for the full epochs; off: --num-samples trials under "
                        "--scheduler (default: the preset's, off with --num-samples)")
    p.add_argument("--promote", type=int, default=None, metavar="M",
                   help="with --screen: configurations trained in full (default 2)")
    p.add_argument("--promote-from", choices=list(PROMOTE_FROM), default="scratch",
                   help="with --screen: a promoted configuration's full run starts from a new initialisation "
                        "(scratch) or from the weights its screen run ended with (screen); measured on the quick "
                        "preset, neither is better (default scratch)")
    p.add_argument("--screen-epochs", type=int, default=None, metavar="E",
                   help="with --screen: the screen's whole schedule in E epochs (default: a fifth of --epochs)")
    p.add_argument("--time-budget", type=_minutes, default=None, metavar="MIN|off",
                   help="with a screen: the whole job's minutes, screen to export; the screen tries as many of its "
                        "--screen N configurations as its ETA says fit, at least --promote + 1 (default: the "
                        "preset's; off: all N)")
    p.add_argument("--fuse", default="auto", metavar="K|auto|off",
                   help="train up to K trials of one shape as one model in one Ray trial (each still its own Optuna "
                        "trial); auto: measured on the trials' hardware, used where it pays (default auto)")
    p.add_argument("--tracking", default="none", choices=list(TRACKINGS),
                   help="mlflow: log every trial as an MLflow run (parameters, per-epoch metrics) and the export as "
                        "the exported trial's artifact")
    p.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="the MLflow tracking server or store (default: a SQLite file in the experiment folder)")
    p.add_argument("--no-live", action="store_true", help="one plain line per event instead of the live view")
    p.add_argument("--verbose", action="store_true", help="Ray's, Tune's and Optuna's own output on the terminal too")
    p.add_argument("--status", metavar="NAME", default=None,
                   help="show where the search NAME (in --storage-path) stands, running or finished, and exit")
    suite_flags = add_suite_arguments(p)  # radii apply to training and every suite; attacks, budgets to the final ones
    return p, suite_flags


def _screen(text: str) -> int:
    """``--screen``: a number of configurations, or 'off' (0)."""
    if text == "off":
        return 0
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of configurations or 'off', got {text!r}") from None


def _minutes(text: str) -> float:
    """``--time-budget``: minutes, or 'off' (0)."""
    if text == "off":
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of minutes or 'off', got {text!r}") from None


def _gpus(text: str) -> float | str:
    """``--gpus-per-trial``: 'auto' or a number."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a number, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, search, print the leaderboard and the export."""
    parser, suite_flags = build_parser()
    args = parser.parse_args(argv)
    if args.status is not None:
        experiment = Path(args.storage_path) / check_name(args.status, "--status")
        screen = experiment.with_name(f"{experiment.name}-screen")
        if not experiment.exists() and screen.is_dir():  # a screened search before its promote rung
            print(f"{experiment}: screening first, in {screen}")
            experiment = screen
        return show_status(experiment)
    values = {k: v for k, v in vars(args).items() if k not in ("no_live", "status", "fuse") and k not in suite_flags}
    values["train_budget"] = tuple(args.train_budget or ())
    cfg = SearchConfig(**values, fuse=parse_fuse(args.fuse), suite=SuiteOverrides.from_args(args),
                       live=not args.no_live)
    command = " ".join([PROG, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    outcome = run_search(cfg, command)
    if outcome.interrupted:
        print(f"{PROG}: interrupted; finished trials are kept in {outcome.experiment_path}: "
              f"run again with --resume", file=sys.stderr)
        return 130
    if outcome.export_path is None or outcome.best is None:
        print(f"{PROG}: no trial finished without failing or being flagged as suspect; nothing exported",
              file=sys.stderr)
        return 1
    metrics = outcome.export_metrics or {}
    best = outcome.best
    if cfg.pareto:
        chosen = (f"trial {best.trial_id}, picked from {len(outcome.front)} on the Pareto front: validation L-inf "
                  f"robust {100 * best.objective:.2f}%, natural {100 * best.natural:.2f}%")
    else:
        chosen = f"best trial {best.trial_id}: validation L-inf objective {100 * best.objective:.2f}%"
    print(f"{chosen}; {_test_line(metrics)} -> {outcome.export_path}")
    for warning in claim_warnings(metrics):
        print(f"warning: {warning}")
    print(f"next: python -m tuner.crosscheck {outcome.export_path}   (the figures under torchattacks' attacks)")
    print(f"      python -m tuner.evaluate {outcome.export_path} --epsilon E   (another radius)")
    return 0


def _test_line(metrics: dict[str, Any]) -> str:
    """The export's test figures, each threat model's worst case apart: 'test (2000 images): natural ..., L-inf ...'."""
    test = metrics.get("test", {})
    threat = metrics.get("threat", {})
    examples = metrics.get("examples", {}).get("test")
    parts = [f"natural {100 * test['natural_acc']:.2f}%"]
    for norm, name, radius in (("linf", "L-inf", threat.get("eps")), ("l2", "L2", threat.get("l2_eps"))):
        value = test.get(f"robust_acc/{norm}")
        if value is not None:
            parts.append(f"{name}{'' if radius is None else f' {radius:g}'} worst case {100 * value:.2f}%")
    if len(parts) == 1:  # an export from before the per-threat figures
        parts.append(f"worst-case robust {100 * test['robust_acc']:.2f}%")
    return f"test{'' if examples is None else f' ({examples} images)'}: " + ", ".join(parts)

