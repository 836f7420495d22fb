"""``python -m tuner.report``: the paper's robustness table, measured on exported models or freshly trained recipes.

Rows are models (export folders, or recipes trained through :func:`trainables.train.fit` on the quick
preset); columns are test accuracies in percent: natural, one per attack of the suite, the worst case
over every attack and, for smoothing models, certified accuracy at chosen L2 radii. The table is
printed, written as ``table.md`` and ``table.parquet``, and drawn next to the figures in ``--out``.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_spaces.presets import PRESETS
from trainables.attacks import ThreatModel
from trainables.cli import OneLineParser
from trainables.evaluation import SuiteConfig, SuiteOverrides, add_suite_arguments
from trainables.train import resolve_device
from trainables.train.recipes import get_recipe, list_recipes
from tuner.console.view import Phases
from tuner.export import load_export, recorded_threat

from . import figures
from .candidates import exported_candidates, quick_base, recipe_candidates
from .config import ReportConfig, default_suite
from .pareto import ParetoInputs, pareto_inputs
from .scoring import FigureData, ReportRow, evaluate_candidate
from .table import print_table, write_table

__all__ = ["FIGURE_FILES", "PROG", "build_parser", "main"]

PROG = "python -m tuner.report"
FIGURE_FILES = {"probability": "true_class_probability.png", "examples": "adversarial_examples.png",
                "pareto": "pareto.png"}


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> OneLineParser:
    """The report command line."""
    p = OneLineParser(prog=PROG, description="Robustness table and figures of exported models or trained recipes. "
                                             "The suite is the quick preset's objective suite, each attack on "
                                             "every correct example, unless flags change it.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--exports", nargs="+", type=Path, metavar="DIR", help="exported model folders")
    src.add_argument("--recipes", help=f"'all' or comma-separated, from {','.join(list_recipes())}")
    p.add_argument("--out", type=Path, default=Path("report"), help="folder for table.md, table.parquet, PNGs")
    p.add_argument("--epochs", type=int, default=None, help="recipes: training epochs (default: the quick preset's)")
    p.add_argument("--train-limit", type=int, default=None, help="recipes: training images (default: quick's)")
    p.add_argument("--seed", type=int, default=0, help="recipes: training seed")
    p.add_argument("--test-limit", type=int, default=1000, help="score the first N test images")
    p.add_argument("--radii", default="0.25,0.5", help="L2 radii of certified accuracy (smoothing models)")
    p.add_argument("--certify-n0", type=int, default=50, help="selection samples of CERTIFY")
    p.add_argument("--certify-n", type=int, default=200, help="estimation samples of CERTIFY")
    p.add_argument("--certify-alpha", type=float, default=0.001, help="failure probability of a certificate")
    p.add_argument("--certify-limit", type=int, default=None, help="certify the first N test images (default: all)")
    p.add_argument("--figure-limit", type=int, default=200, help="test images shown in the probability figure")
    p.add_argument("--results", type=Path, default=None, help="a search's results.parquet: draw the Pareto front")
    p.add_argument("--export", default=None, help="trial id marked on the Pareto figure (default: best exportable)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset (never an export's own setting)")
    p.add_argument("--download", action="store_true", help="download a torchvision dataset into --data-dir")
    p.add_argument("--device", default=None, help="cpu, cuda (default: $ROBUSTUNE_DEVICE or auto)")
    add_suite_arguments(p)  # --epsilon also sets the recipes' training radius; exports default to their own
    return p


def _report_config(args: Any, suite: SuiteConfig, threat: ThreatModel) -> ReportConfig:
    for flag in ("test_limit", "epochs", "train_limit"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    return ReportConfig(suite=suite, threat=threat, radii=_floats(args.radii), certify_n0=args.certify_n0,
                        certify_n=args.certify_n, certify_alpha=args.certify_alpha, certify_limit=args.certify_limit,
                        figure_limit=args.figure_limit)


def _recipe_names(text: str) -> list[str]:
    names = list_recipes() if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--recipes needs 'all' or recipe names, got {text!r}")
    for name in names:
        get_recipe(name)
    return names


def _draw_figures(gathered: FigureData, out: Path, pareto: ParetoInputs, export_trials: Sequence[str],
                  explicit: bool) -> list[Path]:
    written = [
        figures.plot_true_class_probability(gathered.probabilities, out / FIGURE_FILES["probability"]),
        figures.plot_adversarial_examples(gathered.examples, gathered.class_names, out / FIGURE_FILES["examples"],
                                          title=f"Adversarial examples against {gathered.first_model} "
                                                "(green: correct, red: wrong)"),
    ]
    if pareto.points:
        ids = {p.trial_id for p in pareto.points}
        marked = pareto.marked
        if not explicit:  # an export of this search beats the best exportable trial as the marked one
            marked = next((t for t in export_trials if t in ids), marked)
        written.append(figures.plot_pareto(pareto.points, out / FIGURE_FILES["pareto"], marked=marked,
                                           front=pareto.front,
                                           title="Search trials: validation natural vs objective (worst case)"))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Score every model, print the table, write table.md / table.parquet and the figures into --out."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = f"{PROG} {shlex.join(argv)}"
    overrides = SuiteOverrides.from_args(args)
    pareto = pareto_inputs(args.results, args.export)
    device = resolve_device(args.device)
    base_suite = default_suite()
    if args.exports is not None:
        given = [flag for flag in ("epochs", "train_limit") if getattr(args, flag) is not None]
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} trains recipes and does not apply to --exports")
        missing = [str(p) for p in args.exports if not p.exists()]
        if missing:
            raise FileNotFoundError(f"no export directory at {', '.join(missing)}")
        first = load_export(args.exports[0])
        threat = overrides.threat(recorded_threat(first.metrics, first.spec))
        cfg = _report_config(args, overrides.apply(base_suite), threat)
        candidates = exported_candidates(args.exports, args.test_limit, device, args.data_dir, args.download)
    else:
        cfg = _report_config(args, overrides.apply(base_suite), overrides.threat(PRESETS["quick"].threat))
        base = quick_base(epochs=args.epochs, train_limit=args.train_limit, test_limit=args.test_limit,
                          seed=args.seed, epsilon=args.epsilon, data_dir=args.data_dir)
        candidates = recipe_candidates(_recipe_names(args.recipes), base, device)
    rows: list[ReportRow] = []
    gathered = FigureData()
    export_trials: list[str] = []
    phases = Phases(live=sys.stderr.isatty())
    for cand in candidates:
        with phases.counted(f"attacking {cand.name} ({len(cand.test)} test images)") as heard:
            row = evaluate_candidate(cand, cfg, device, gathered, progress=heard)
        rows.append(row)
        if cand.trial_id is not None:
            export_trials.append(cand.trial_id)
        print(f"    {row.name}: natural {row.natural:.1f}% worst case {row.worst:.1f}% ({row.seconds:.0f}s)")
    md, parquet = write_table(rows, cfg, args.out, command=command)
    pngs = _draw_figures(gathered, args.out, pareto, export_trials, explicit=args.export is not None)
    print_table(rows, cfg)
    print(f"wrote {md}, {parquet}, {', '.join(str(p) for p in pngs)}")
    return 0

