"""``python -m bench.bench_levers``: does a lever move the objective? The space's first starting point, one change.

A setting earns a place in a search space only when it moves the objective at the space's budget.
This bench trains the ``lwta`` space's first starting point at the quick preset (optionally at
another ``--epsilon``: every radius follows it) once per variant, each variant that point with some
settings changed, and scores each trained model as the search ranks trials: the preset's objective
suite (FGSM and PGD-20, both gradient ways, EOT) on the first ``--val-images`` validation images,
and the same suite on as many test images (``--test-suite export``: the export suite's L-inf attacks,
APGD and Square included, what a claim is checked against). Variants train ``--parallel`` at a
time in processes of one thread each, as a quick search runs its trials.

A variant is ``NAME:SETTING=VALUE,...``; a setting is a training setting (``trades_beta``,
``ema_decay``, ``eps_warmup``, ``seed``, ``lr``, ...), one of the space's parameters
(``clean_weight``, ``competitors``, ...) or a budget of the training mix's attacks
(``ATTACK.FIELD``: ``pgd.steps``, ``pgd.step_ratio``) or ``warm_epochs=E`` (first the variant on a short
schedule of E epochs, as a screen trains it, then the run from those weights, as ``--promote-from
screen`` trains a promoted configuration; its training time counts both); values are JSON (``0.2``,
``true``, ``"dense"``)::

    python -m bench.bench_levers --epsilon 0.2 --variant base: --variant trades:trades_beta=6,clean_weight=0
    python -m bench.bench_levers --variant fgsm-rs:pgd.steps=1,pgd.step_ratio=1.25
    python -m bench.bench_levers --epsilon 0.2 --epochs 14 --variant s1:seed=1 --variant warm-s1:seed=1,warm_epochs=3
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from bench.common import provenance, render, write_json
from search_spaces import PRESETS, get_space
from trainables.attacks import Assignment, Norm, ThreatModel
from trainables.cli import OneLineParser, run_main
from trainables.data import load_splits
from trainables.evaluation import SuiteConfig, evaluate_sharded
from trainables.train import RunSpec, TrainConfig, fit

__all__ = ["WARM_EPOCHS", "LeverFigures", "TestSuite", "Variant", "build_parser", "main", "parse_variant",
           "scoring_suite", "variant_spec"]

PROG = "python -m bench.bench_levers"
SPACE = "lwta"
_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}
TestSuite = Literal["objective", "export"]
WARM_EPOCHS = "warm_epochs"  # a variant's setting: warm-started from a short run, as a promoted configuration can be


@dataclass(frozen=True)
class Variant:
    """The starting point with some settings changed: training settings, space parameters, mix budgets."""

    name: str
    train: dict[str, Any]
    params: dict[str, Any]
    budget: tuple[Assignment, ...] = ()  # (attack, field, value) set on the training mix's attacks
    warm_epochs: int = 0  # first a run of this many epochs, the whole schedule in them; the run from its weights


@dataclass(frozen=True)
class LeverFigures:
    """One variant's scores: the objective suite's natural and worst-case accuracy on validation and test."""

    name: str
    val_natural: float
    val_robust: float
    test_natural: float
    test_robust: float
    best_epoch: int
    train_seconds: float


def parse_variant(text: str) -> Variant:
    """``NAME:SETTING=VALUE,...`` (values JSON, else strings) as a :class:`Variant`; ValueError on bad text."""
    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"a variant is NAME:SETTING=VALUE,... (NAME: for the point itself), got {text!r}")
    train: dict[str, Any] = {}
    params: dict[str, Any] = {}
    budget: list[Assignment] = []
    warm = 0
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"expected SETTING=VALUE in variant {name!r}, got {part!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw.strip()
        key = key.strip()
        attack, dot, field = key.partition(".")
        if key == WARM_EPOCHS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{WARM_EPOCHS} must be a whole number of epochs >= 1, got {raw.strip()!r}")
            warm = value
        elif dot:
            budget.append((attack, field, value))
        else:
            (train if key in _TRAIN_FIELDS else params)[key] = value
    return Variant(name.strip(), train, params, tuple(budget), warm)


def variant_spec(variant: Variant, epsilon: float | None = None, train_limit: int | None = None,
                 epochs: int | None = None) -> RunSpec:
    """The run of ``variant``: the space's first starting point at the quick preset, its settings changed."""
    preset = PRESETS.get("quick")
    if epsilon is not None:
        preset = replace(preset, threat=ThreatModel(eps=epsilon, l2_eps=preset.threat.l2_eps))
    space = get_space(SPACE)
    point = space.points_to_evaluate(preset)[0]
    unknown = set(variant.params) - set(point)
    if unknown:
        raise ValueError(f"variant {variant.name!r}: {', '.join(sorted(unknown))} is neither a training setting "
                         f"nor a parameter of the {SPACE} space")
    spec = space.apply(space.fixed(preset), point | variant.params)
    train = replace(spec.train, **variant.train, **({} if epochs is None else {"epochs": epochs}))
    if variant.budget:
        train = replace(train, mix=train.mix.with_budget(variant.budget))
    return replace(spec, train=train, data=replace(spec.data, train_limit=train_limit or spec.data.train_limit))


def scoring_suite(which: TestSuite) -> SuiteConfig:
    """The suite the test images are scored with: the objective's, or the export's L-inf attacks."""
    quick = PRESETS.get("quick")
    if which == "objective":
        return quick.objective_suite
    return replace(quick.export_suite, attacks=tuple(a for a in quick.export_suite.attacks if a.norm == Norm.LINF))


def _score(spec: RunSpec, variant: Variant, images: int, which: TestSuite = "objective") -> LeverFigures:
    """Train ``spec`` in this process (one thread); score validation with the objective suite, test with ``which``."""
    torch.set_num_threads(1)
    splits = load_splits(spec.data)
    began = time.perf_counter()
    initial = None
    if variant.warm_epochs:  # the screen's run (its whole schedule in warm_epochs), then the run from its weights
        short = fit(replace(spec, train=replace(spec.train, epochs=variant.warm_epochs)), splits)
        initial = short.model.state_dict()
    result = fit(spec, splits, initial=initial)
    seconds = time.perf_counter() - began
    scores = []
    for split, suite in ((splits.val.head(images), PRESETS.get("quick").objective_suite),
                         (splits.test.head(images), scoring_suite(which))):
        scores.append(evaluate_sharded(result.model, split.floats(), split.labels, suite, spec.threat).as_dict())
    return LeverFigures(variant.name, scores[0]["natural_acc"], scores[0]["robust_acc"], scores[1]["natural_acc"],
                        scores[1]["robust_acc"], result.best_epoch, seconds)


def build_parser() -> OneLineParser:
    """The command line."""
    p = OneLineParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0].strip("`"))
    p.add_argument("--variant", action="append", required=True, metavar="NAME:SETTING=VALUE,...",
                   help="the starting point with these settings (NAME: alone for the point itself); repeatable")
    p.add_argument("--epsilon", type=float, default=None, help="the L-inf threat model (default: the preset's)")
    p.add_argument("--parallel", type=int, default=2, help="variants trained at once, one thread each")
    p.add_argument("--val-images", type=int, default=1000, help="validation and test images scored")
    p.add_argument("--train-limit", type=int, default=None, help="training images (default: the whole split)")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--test-suite", choices=get_args(TestSuite), default="objective",
                   help="the test images' suite: the objective's, or the export suite's L-inf attacks (APGD, Square)")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Train and score every variant; print the table (and write ``--out``)."""
    args = build_parser().parse_args(argv)
    if args.parallel < 1 or args.val_images < 1 or (args.epsilon is not None and not args.epsilon > 0):
        raise ValueError("--parallel and --val-images must be >= 1 and --epsilon > 0")
    variants = [parse_variant(v) for v in args.variant]
    specs = [variant_spec(v, args.epsilon, args.train_limit, args.epochs) for v in variants]  # bad input fails here
    with ProcessPoolExecutor(max_workers=args.parallel, mp_context=get_context("spawn")) as pool:
        figures = list(pool.map(_score, specs, variants, [args.val_images] * len(specs),
                                [args.test_suite] * len(specs)))
    header = provenance(torch.device("cpu"), epsilon=specs[0].threat.eps, images=args.val_images,
                        epochs=specs[0].train.epochs, parallel=args.parallel, worker_threads=1,
                        test_suite=args.test_suite)
    rows = [(f.name, *(f"{100 * v:.1f}%" for v in (f.val_natural, f.val_robust, f.test_natural, f.test_robust)),
             str(f.best_epoch), f"{f.train_seconds:.0f} s") for f in figures]
    render(f"{SPACE} starting point, one lever at a time", header, (), rows,
           ("variant", "val natural", "val objective", "test natural", f"test robust ({args.test_suite} suite)",
            "best epoch", "training"))
    write_json(args.out, {"header": header, "variants": [asdict(v) for v in variants],
                          "figures": [asdict(f) for f in figures]})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
