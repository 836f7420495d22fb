"""``python -m tuner.evaluate EXPORT_DIR``: re-evaluate an exported model under an attack suite."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainables.attacks import RobustResult, SuiteConfig, evaluate_robustness, list_attacks
from trainables.cli import OneLineParser, run_main
from trainables.data import load_splits
from trainables.train.loop import resolve_device
from tuner.export import Export, attack_budget, load_export, recorded_suite

__all__ = ["build_parser", "main", "suite_from_args"]

PROG = "python -m tuner.evaluate"


def build_parser() -> OneLineParser:
    """The evaluation command line."""
    p = OneLineParser(prog=PROG, description="Evaluate an exported model under a suite of attacks.")
    p.add_argument("export_dir", metavar="EXPORT_DIR", type=Path, help="export directory (or its config.json)")
    p.add_argument("--attacks", default=None,
                   help=f"comma-separated, from {','.join(list_attacks())} (default: the export's suite)")
    p.add_argument("--epsilon", type=float, default=None, help="L-inf epsilon in pixel units")
    p.add_argument("--l2-epsilon", type=float, default=None, help="L2 epsilon (pgd-l2, cw)")
    p.add_argument("--steps", type=int, default=None, help="PGD steps")
    p.add_argument("--restarts", type=int, default=None, help="PGD restarts")
    p.add_argument("--eot-samples", type=int, default=None, help="gradient draws per step (stochastic models)")
    p.add_argument("--predict-samples", type=int, default=None, help="draws averaged per prediction")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate the first N examples of the split (default: the split of the export's spec)")
    p.add_argument("--split", default="test", choices=("test", "val"))
    p.add_argument("--data-dir", default=None, help="folder holding the dataset (default: the spec's)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: $ROBUSTUNE_DEVICE or auto)")
    return p


def suite_from_args(base: SuiteConfig, args: Any) -> SuiteConfig:
    """``base`` with the flags that were given; invalid values raise ValueError."""
    overrides: dict[str, Any] = {}
    if args.attacks is not None:
        names = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
        if not names:
            raise ValueError(f"--attacks needs at least one of {', '.join(list_attacks())}, got {args.attacks!r}")
        overrides["attacks"] = names
    for flag, name in (("epsilon", "eps"), ("l2_epsilon", "l2_eps"), ("steps", "steps"),
                       ("restarts", "restarts"), ("eot_samples", "eot_samples"),
                       ("predict_samples", "predict_samples")):
        value = getattr(args, flag)
        if value is not None:
            overrides[name] = value
    return replace(base, **overrides)


def _print_result(export: Export, result: RobustResult, suite: SuiteConfig, split: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{export.spec.model.name} on {export.info.name}, {split} split, {result.n} examples")
    table.add_column("attack")
    table.add_column("budget")
    table.add_column("accuracy", justify="right")
    table.add_row("natural", "", f"{100 * result.natural_acc:.2f}%")
    for name in result.per_attack:
        table.add_row(name, attack_budget(name, suite), f"{100 * result.attack_acc(name):.2f}%")
    table.add_row("[bold]worst case[/]", "all of the above", f"[bold]{100 * result.worst_acc:.2f}%[/]")
    console.print(table)
    eot = f"EOT {suite.eot_samples}, predict {suite.predict_samples}" if export.model.stochastic else "no EOT"
    console.print(f"suite: {', '.join(suite.attacks)}; eps {suite.eps:g} (L-inf), l2 eps {suite.l2_eps:g}, "
                  f"{eot}, seed {suite.seed}", highlight=False)
    print(f"{split} ({result.n} examples): natural {100 * result.natural_acc:.2f}% "
          f"worst-case robust {100 * result.worst_acc:.2f}%")


def main(argv: Sequence[str] | None = None) -> int:
    """Load the export, evaluate it on the chosen split, print a table and a one-line summary."""
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    device = resolve_device(args.device)
    export = load_export(args.export_dir, device=device)
    suite = suite_from_args(recorded_suite(export.metrics, export.spec), args)
    limit_field = "test_limit" if args.split == "test" else "val_limit"
    data_overrides: dict[str, Any] = {} if args.limit is None else {limit_field: args.limit}
    if args.data_dir is not None:
        data_overrides["data_dir"] = args.data_dir
    splits = load_splits(replace(export.spec.data, **data_overrides))
    shape = (splits.info.channels, splits.info.size, splits.info.classes)
    if shape != (export.info.channels, export.info.size, export.info.classes):
        raise ValueError(f"dataset {splits.info.name!r} (channels, size, classes)={shape} does not fit the "
                         f"export's {export.info}")
    data = splits.test if args.split == "test" else splits.val
    if export.model.stochastic and suite.eot_samples == 1:
        print(f"{PROG}: warning: stochastic model attacked without EOT (--eot-samples 1); robust accuracy "
              "is likely overestimated", file=sys.stderr)
    result = evaluate_robustness(export.model, data.floats(), data.labels, suite, device=device)
    _print_result(export, result, suite, args.split)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
