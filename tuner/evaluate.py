"""``python -m tuner.evaluate EXPORT_DIR``: re-evaluate an exported model under an attack suite."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainables.attacks import NORMS, Norm, ThreatModel
from trainables.cli import OneLineParser, run_main
from trainables.data import load_splits
from trainables.evaluation import (
    CONVERGENCE_LIMIT,
    GRADIENT_FREE_GAP_LIMIT,
    PROBE_EXAMPLES,
    RobustResult,
    SuiteConfig,
    SuiteOverrides,
    add_suite_arguments,
    convergence_gap,
    evaluate_in_processes,
    gradient_free_gap,
    probe_words,
)
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
    p.add_argument("--workers", type=int, default=None,
                   help="on a CPU, score in N processes of one thread, each a contiguous share of the examples "
                        "(default: as the export was scored, so its figures come out again)")
    p.add_argument("--convergence", action="store_true",
                   help="then attack what stands among the first images again with the L-inf gradient attacks at "
                        "more steps and EOT draws, and say how much more they break (the export's convergence check)")
    add_suite_arguments(p)
    return p


def _print_result(export: Export, result: RobustResult, suite: SuiteConfig, threat: ThreatModel, split: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    stochastic = export.model.stochastic
    caption = ("a row: the accuracy once this attack and those above it in its ball have run (a cascade per ball)"
               if suite.cascade else "a row: the accuracy under this attack alone")
    table = Table(title=f"{export.spec.model.name} on {export.info.name}, {split} split, {result.n} examples",
                  caption=caption)
    table.add_column("attack")
    table.add_column("budget")
    table.add_column("accuracy", justify="right")
    table.add_row("natural", "", f"{100 * result.natural_acc:.2f}%")
    passes = suite.passes(threat, stochastic)
    balls = [norm for norm in NORMS if any(attack.norm == norm for _, _, attack in passes)]
    for norm in balls:
        table.add_section()
        table.add_row(f"[bold]{Norm(norm).title} ball[/]", f"radius {threat.radius(norm):g}", "")
        for key, way, attack in passes:
            if attack.norm != norm or suite.repeats(way, attack, stochastic):
                continue  # a run that repeats the attack's first (a deterministic model, a gradient-free attack)
            how = f" ({way} gradients)" if stochastic and attack.uses_gradients else ""
            table.add_row(key, attack.describe() + how, f"{100 * result.attack_acc(key):.2f}%")
        table.add_row(f"worst case, {Norm(norm).title}", "per example, over the rows above",
                      f"{100 * result.worst_acc_for(norm):.2f}%")
    if len(balls) > 1:
        table.add_section()
        table.add_row("[bold]worst case, every attack[/]", "", f"[bold]{100 * result.worst_acc:.2f}%[/]")
    console.print(table)
    gap = gradient_free_gap(result)
    if gap is not None:
        console.print(f"gradient-free check: {100 * gap:.2f}% of the examples were broken only by the gradient-free "
                      f"attack (limit {100 * GRADIENT_FREE_GAP_LIMIT:g}%)", highlight=False)
    eot = f"EOT {suite.eot_samples}, predict {suite.predict_samples}" if stochastic else "no EOT"
    console.print(f"suite: {', '.join(suite.names())}; {eot}, "
                  f"{'cascade' if suite.cascade else 'independent attacks'}, seed {suite.seed}", highlight=False)
    per_ball = ", ".join(f"{Norm(n).title} {threat.radius(n):g}: {100 * result.worst_acc_for(n):.2f}%" for n in balls)
    print(f"{split} ({result.n} examples): natural {100 * result.natural_acc:.2f}% "
          f"worst-case robust {100 * result.worst_acc:.2f}%" + (f" ({per_ball})" if per_ball else ""))


def main(argv: Sequence[str] | None = None) -> int:
    """Load the export, evaluate it on the chosen split, print a table and a one-line summary."""
    args = build_parser().parse_args(argv)
    for flag, value in (("--limit", args.limit), ("--workers", args.workers)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
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
    workers = args.workers or int(export.metrics.get("workers", 1))
    with phases.counted(f"attacking {len(data)} {args.split} images") as heard:
        result = evaluate_in_processes(export.model, data.floats(), data.labels, suite, threat, workers=workers,
                                       device=device, progress=heard)
    _print_result(export, result, suite, threat, args.split)
    if args.convergence:
        with phases.counted(f"attacking what stands among the first {PROBE_EXAMPLES} again, harder") as heard:
            gap = convergence_gap(export.model, data.floats(), data.labels, suite, threat, result, workers=workers,
                                  device=device, progress=heard)
        if gap is None:
            print("convergence check: the suite has no iterative L-inf gradient attack to strengthen")
        else:
            print(f"convergence check: {probe_words(gap, min(PROBE_EXAMPLES, result.n), args.split)} "
                  f"(limit {100 * CONVERGENCE_LIMIT:g}%)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
