"""``python -m tuner.evaluate EXPORT_DIR``: re-evaluate an exported model under an attack suite."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainables.attacks import ThreatModel
from trainables.cli import OneLineParser, run_main
from trainables.data import load_splits
from trainables.evaluation import RobustResult, SuiteConfig, SuiteOverrides, add_suite_arguments, evaluate_robustness
from trainables.train import resolve_device
from tuner.console.view import Phases
from tuner.export import Export, load_export, recorded_suite, recorded_threat

__all__ = ["build_parser", "main"]

PROG = "python -m tuner.evaluate"


def build_parser() -> OneLineParser:
    """The evaluation command line."""
    p = OneLineParser(prog=PROG, description="Evaluate an exported model under a suite of attacks (default: the "
                                             "suite it was exported with).")
    p.add_argument("export_dir", metavar="EXPORT_DIR", type=Path, help="export directory (or its config.json)")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate the first N examples of the split (default: the split of the export's spec)")
    p.add_argument("--split", default="test", choices=("test", "val"))
    p.add_argument("--data-dir", default=None,
                   help="folder holding the dataset (default: the Debian package for fashion-mnist; never the "
                        "export's own setting)")
    p.add_argument("--download", action="store_true", help="download a torchvision dataset into --data-dir")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: $ROBUSTUNE_DEVICE or auto)")
    add_suite_arguments(p)
    return p


def _print_result(export: Export, result: RobustResult, suite: SuiteConfig, threat: ThreatModel, split: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{export.spec.model.name} on {export.info.name}, {split} split, {result.n} examples")
    table.add_column("attack" + (" (cascade: robust after it)" if suite.cascade else ""))
    table.add_column("budget")
    table.add_column("accuracy", justify="right")
    table.add_row("natural", "", f"{100 * result.natural_acc:.2f}%")
    for key, way, attack in suite.passes(threat, export.model.stochastic):
        table.add_row(key, f"{attack.describe()} ({way} gradients)" if export.model.stochastic else attack.describe(),
                      f"{100 * result.attack_acc(key):.2f}%")
    table.add_row("[bold]worst case[/]", "all of the above", f"[bold]{100 * result.worst_acc:.2f}%[/]")
    console.print(table)
    eot = f"EOT {suite.eot_samples}, predict {suite.predict_samples}" if export.model.stochastic else "no EOT"
    l2 = "none" if threat.l2_eps is None else f"{threat.l2_eps:g}"
    console.print(f"suite: {', '.join(suite.names())}; eps {threat.eps:g} (L-inf), l2 eps {l2}, {eot}, "
                  f"{'cascade' if suite.cascade else 'independent attacks'}, seed {suite.seed}", highlight=False)
    print(f"{split} ({result.n} examples): natural {100 * result.natural_acc:.2f}% "
          f"worst-case robust {100 * result.worst_acc:.2f}%")


def main(argv: Sequence[str] | None = None) -> int:
    """Load the export, evaluate it on the chosen split, print a table and a one-line summary."""
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    overrides = SuiteOverrides.from_args(args)
    device = resolve_device(args.device)
    export = load_export(args.export_dir, device=device)
    suite = overrides.apply(recorded_suite(export.metrics, export.spec))
    threat = overrides.threat(recorded_threat(export.metrics, export.spec))
    suite.check(threat)
    limit_field = "test_limit" if args.split == "test" else "val_limit"
    limits: dict[str, Any] = {} if args.limit is None else {limit_field: args.limit}
    # an export is data: where the dataset lives and whether to download it come from this command line only
    splits = load_splits(replace(export.spec.data, data_dir=args.data_dir, download=args.download, **limits))
    shape = (splits.info.channels, splits.info.size, splits.info.classes)
    if shape != (export.info.channels, export.info.size, export.info.classes):
        raise ValueError(f"dataset {splits.info.name!r} (channels, size, classes)={shape} does not fit the "
                         f"export's {export.info}")
    data = splits.test if args.split == "test" else splits.val
    phases = Phases(live=sys.stderr.isatty())  # a bar over attacks and batches; a line per attack when piped
    with phases.counted(f"attacking {len(data)} {args.split} images") as heard:
        result = evaluate_robustness(export.model, data.floats(), data.labels, suite, threat, device=device,
                                     progress=heard)
    _print_result(export, result, suite, threat, args.split)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
