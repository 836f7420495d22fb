"""``python -m bench.bench_fidelity``: which cheap fidelity ranks configurations as full training does (Spearman).

A search saves compute only where a cheap score ranks configurations as their full training would:
ASHA compares trials at early epochs, and a shorter schedule or a training subset are the other
usual low fidelities (Mendes et al. 2023 for adversarial training). This bench measures that rank
agreement instead of assuming it.

It runs the space's random search (random sampler + FIFO: every configuration trains to its end)
of N configurations at the quick preset: the **full** fidelity, whose objective (the objective
suite on the validation split) is the reference. Then the same N configurations at each cheap
fidelity: the random sampler draws the same suggestions in the same order whatever the results, so
a search with the same seed proposes them again (each pair is checked parameter by parameter;
the space's known-good starting points are the first two of them). Fidelities:

- ``epoch k`` (free, read from the full run): the per-epoch suite's robust accuracy after epoch k
  of the full schedule, what ASHA compares at its rungs;
- ``short E``: the whole schedule (one-cycle) compressed into E epochs, scored by the objective suite
  (``--short-epochs 2,3``: one search per E);
- ``subset E x M``: the same on M training images;
- ``short E, SPEC``: the short schedule with cheaper training attacks (``--short-attack
  pgd.steps=1,pgd.step_ratio=1.25``: FGSM with a random start in place of PGD-3, Mendes et al.'s
  low fidelity), one search per E.

Per fidelity: the Spearman and Kendall rank correlations with the full objective over the
configurations both ran, the full objective of the configuration it ranks first (its regret
against the best), whether it keeps the full best in its top half (what a halving step needs), and
its cost in trial-epochs of the full data.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from scipy import stats

from bench.common import provenance, render, write_json
from search_spaces import list_spaces
from trainables.cli import OneLineParser, run_main
from trainables.data import load_splits
from trainables.evaluation import SuiteOverrides
from tuner.cluster.storage import study_name, study_storage
from tuner.search import SearchConfig, resolve_run, run_search
from tuner.trials import TrialRecord
from tuner.trials.study import TUNE_ID

__all__ = ["Fidelity", "FidelityFigures", "build_parser", "compare", "creation_order", "main",
           "match_configurations"]

PROG = "python -m bench.bench_fidelity"


def creation_order(cfg: SearchConfig) -> dict[str, int]:
    """Tune trial id -> the number of its Optuna trial: the order the searcher proposed them (known points first).

    Tune's trial ids are random, but each asks the study for one trial when it is created.
    """
    import optuna

    storage = study_storage(cfg.folder.path, cfg.study_storage, cfg.optuna_storage, remote=cfg.folder.remote)
    if storage is None:
        return {}
    study = optuna.load_study(study_name=study_name(storage, cfg.folder.name), storage=storage.open())
    return {str(t.user_attrs[TUNE_ID]): t.number for t in study.get_trials(deepcopy=False) if TUNE_ID in t.user_attrs}


@dataclass(frozen=True)
class Fidelity:
    """A cheap score of a configuration: a search at fewer epochs or images, or an early epoch of the full run."""

    name: str
    epochs: int | None = None  # a search of its own at these epochs (None: the full run's epoch ``at_epoch``)
    train_limit: int | None = None  # training images of that search (None: all)
    at_epoch: int | None = None  # the full run's per-epoch robust accuracy after this epoch
    train_budget: tuple[str, ...] = ()  # that search's training attacks' budgets (--train-budget)

    def cost(self, full_epochs: int, train_size: int) -> float:
        """Trial-epochs of the full training data one configuration costs at this fidelity (scoring aside)."""
        if self.at_epoch is not None:
            return float(self.at_epoch)
        share = 1.0 if self.train_limit is None else min(1.0, self.train_limit / train_size)
        return float(self.epochs or full_epochs) * share


@dataclass(frozen=True)
class FidelityFigures:
    """How one fidelity ranked the configurations against the full objective."""

    fidelity: str
    configurations: int
    spearman: float
    kendall: float
    regret: float  # full best objective minus the full objective of the configuration this fidelity ranks first
    keeps_best: bool  # the full best is in this fidelity's top half
    cost: float  # trial-epochs of the full data per configuration
    wall_s: float  # the wall time of its search (0 for an epoch of the full run)


def match_configurations(full: dict[int, dict[str, Any]], cheap: dict[int, dict[str, Any]]) -> list[int]:
    """The configuration numbers whose parameters are the same in both runs (numbers: the study's trial numbers)."""
    same = []
    for number, params in full.items():
        other = cheap.get(number)
        if other is not None and other.keys() == params.keys() and all(
                other[k] == v or (isinstance(v, float) and math.isclose(other[k], v, rel_tol=1e-9))
                for k, v in params.items()):
            same.append(number)
    return same


def compare(name: str, full: dict[int, float], cheap: dict[int, float], cost: float, wall_s: float) -> FidelityFigures:
    """Rank agreement of ``cheap`` scores with ``full`` objectives over the configurations both have, finite."""
    numbers = sorted(n for n in full.keys() & cheap.keys() if math.isfinite(full[n]) and math.isfinite(cheap[n]))
    xs, ys = [cheap[n] for n in numbers], [full[n] for n in numbers]
    if len(numbers) < 3:
        return FidelityFigures(name, len(numbers), math.nan, math.nan, math.nan, False, cost, wall_s)
    best = max(numbers, key=lambda n: full[n])
    ranked = sorted(numbers, key=lambda n: cheap[n], reverse=True)
    return FidelityFigures(name, len(numbers), float(stats.spearmanr(xs, ys).statistic),
                           float(stats.kendalltau(xs, ys).statistic), full[best] - full[ranked[0]],
                           best in ranked[: math.ceil(len(ranked) / 2)], cost, wall_s)


def _epoch_score(record: TrialRecord, epoch: int) -> float:
    """The per-epoch suite's robust accuracy after ``epoch`` (NaN when the trial did not get there)."""
    for row in record.history:
        if int(row.get("epoch", 0)) == epoch:
            return float(row.get("robust_acc", math.nan))
    return math.nan


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    p = OneLineParser(prog=PROG, description="Rank correlation of cheap fidelities with the full objective, "
                                             "over the same configurations (random sampler, FIFO).")
    p.add_argument("--space", default="lwta", choices=list_spaces())
    p.add_argument("--num-samples", type=int, default=12, help="configurations (the space's starting points first)")
    p.add_argument("--seed", type=int, default=1, help="the random sampler's (and the trials') seed")
    p.add_argument("--epochs", type=int, default=None, help="the full fidelity's epochs (default: the preset's)")
    p.add_argument("--epsilon", type=float, default=None, help="the L-inf radius trained and scored (default: the "
                                                                "preset's)")
    p.add_argument("--at-epochs", default="1,2,4,8", help="epochs of the full run read as fidelities (ASHA's rungs)")
    p.add_argument("--short-epochs", default="3", metavar="E[,E...]",
                   help="the short schedules' epochs, one search each (0 or empty: none)")
    p.add_argument("--short-attack", default="", metavar="SPEC",
                   help="also each short schedule with these training-attack budgets, e.g. "
                        "pgd.steps=1,pgd.step_ratio=1.25 (empty: none)")
    p.add_argument("--subset", default="3x20000", metavar="ExM",
                   help="a search of E epochs on M training images (empty: none)")
    p.add_argument("--train-limit", type=int, default=None, help="training images of the full run (default: all)")
    p.add_argument("--val-limit", type=int, default=None, help="validation images (default: the preset's)")
    p.add_argument("--max-concurrent", type=int, default=None, help="default: as many trials as the CPUs hold")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--storage-path", type=Path, default=None,
                   help="keep the searches here; default: a temporary folder, removed")
    p.add_argument("--out", "--json", dest="out", type=Path, default=None, metavar="PATH",
                   help="also write every fidelity's figures, the configurations and the provenance here")
    return p


def _fidelities(args: Any) -> list[Fidelity]:
    """The fidelities asked for on the command line, each checked."""
    out = [Fidelity(f"epoch {k}", at_epoch=int(k)) for k in str(args.at_epochs).split(",") if k.strip()]
    try:
        shorts = [int(e) for e in str(args.short_epochs).split(",") if e.strip() and int(e) != 0]
    except ValueError:
        raise ValueError(f"--short-epochs takes comma-separated epochs such as 2,3, got {args.short_epochs!r}") \
            from None
    out += [Fidelity(f"short {e}", epochs=e, train_limit=args.train_limit) for e in shorts]
    if args.short_attack:
        budget = (str(args.short_attack),)
        out += [Fidelity(f"short {e}, {args.short_attack}", epochs=e, train_limit=args.train_limit,
                         train_budget=budget) for e in shorts]
    if args.subset:
        epochs, _, images = str(args.subset).partition("x")
        try:
            out.append(Fidelity(f"subset {args.subset}", epochs=int(epochs), train_limit=int(images)))
        except ValueError:
            raise ValueError(f"--subset must be EPOCHSxIMAGES such as 3x20000, got {args.subset!r}") from None
    for f in out:
        if min(x for x in (f.epochs, f.train_limit, f.at_epoch, 1) if x is not None) < 1:
            raise ValueError(f"fidelity {f.name}: epochs and images must be >= 1")
    return out


def _config(args: Any, storage: Path, name: str, epochs: int | None, train_limit: int | None,
            train_budget: tuple[str, ...] = ()) -> SearchConfig:
    """One of the bench's searches: the random sampler, FIFO, every configuration to its end, no bundles."""
    cfg = SearchConfig(space=args.space, preset="quick", data_dir=args.data_dir, num_samples=args.num_samples,
                       max_concurrent=args.max_concurrent, seed=args.seed, sampler="random", scheduler="fifo",
                       storage_path=str(storage / "runs"), name=name, export_dir=str(storage / "exports"),
                       epochs=epochs, train_limit=train_limit, val_limit=args.val_limit, test_limit=100,
                       train_budget=train_budget, suite=SuiteOverrides(eps=args.epsilon), live=False, fuse=1)
    resolve_run(cfg)  # every setting checked before the first search starts
    return cfg


def _folder(name: str) -> str:
    """An experiment name for the fidelity ``name`` (letters, digits, dashes)."""
    return "-".join("".join(c if c.isalnum() else " " for c in name).split())


def _search(cfg: SearchConfig) -> tuple[dict[int, TrialRecord], float]:
    """Run one search; its records by configuration number (the study's trial number) and its wall seconds."""
    began = time.perf_counter()
    outcome = run_search(cfg, f"{PROG} ({cfg.folder.name})")
    wall_s = time.perf_counter() - began
    if outcome.interrupted:
        raise RuntimeError(f"the search {cfg.folder.name} was interrupted")
    order = creation_order(cfg)
    return {order[r.trial_id]: r for r in outcome.records if r.trial_id in order}, wall_s


def main(argv: Sequence[str] | None = None) -> int:
    """Run the full search and each cheap one, print the table, write the JSON."""
    args = build_parser().parse_args(argv)
    if args.num_samples < 3:
        raise ValueError(f"--num-samples must be >= 3 (a rank correlation needs them), got {args.num_samples}")
    fidelities = _fidelities(args)
    storage = args.storage_path or Path(tempfile.mkdtemp(prefix="robustune-bench-fidelity-"))
    try:
        full_cfg = _config(args, storage, "full", args.epochs, args.train_limit)
        searches = {f.name: _config(args, storage, _folder(f.name), f.epochs, f.train_limit, f.train_budget)
                    for f in fidelities if f.at_epoch is None}
        plan = resolve_run(full_cfg)
        header = provenance(torch.device("cpu"), space=args.space, preset="quick", epsilon=plan.threat.eps,
                            configurations=args.num_samples,
                            seed=args.seed, full=f"{plan.base.train.epochs} epochs on "
                                                 f"{args.train_limit or 'all'} training images")
        train_size = len(load_splits(plan.base.data).train)
        full, full_wall = _search(full_cfg)
        full_epochs = plan.base.train.epochs
        objective = {n: r.objective for n, r in full.items()}
        figures, skipped = [], {}
        for f in fidelities:
            if f.at_epoch is not None:
                scores, wall = {n: _epoch_score(r, f.at_epoch) for n, r in full.items()}, 0.0
            else:
                cheap, wall = _search(searches[f.name])
                same = match_configurations({n: r.params for n, r in full.items()},
                                            {n: r.params for n, r in cheap.items()})
                skipped[f.name] = len(full) - len(same)
                scores = {n: cheap[n].objective for n in same}
            figures.append(compare(f.name, objective, scores, f.cost(full_epochs, train_size), wall))
    finally:
        if args.storage_path is None:
            shutil.rmtree(storage, ignore_errors=True)
    header["full_wall_s"] = round(full_wall, 1)
    header["loadavg_after"] = provenance(torch.device("cpu"))["loadavg_1_5_15"]
    rows = [(f.fidelity, str(f.configurations), f"{f.spearman:+.2f}", f"{f.kendall:+.2f}",
             f"{100 * f.regret:.2f}", "yes" if f.keeps_best else "no", f"{f.cost:g}",
             f"{f.wall_s:.0f} s" if f.wall_s else "free") for f in figures]
    render("robustune bench: cheap fidelities against the full objective (rank correlation over configurations)",
           header, [], rows, ("fidelity", "configs", "Spearman", "Kendall", "regret (pts)", "best in top half",
                              "trial-epochs", "wall"))
    if any(skipped.values()):
        print(f"  configurations whose parameters differed between runs, left out: {skipped}")
    configs = [{"number": n, "objective": r.objective, "natural": r.natural, "outcome": str(r.outcome),
                "params": r.params, "per_epoch_robust": [row.get("robust_acc") for row in r.history]}
               for n, r in sorted(full.items())]
    write_json(args.out, {"benchmark": "fidelity", "provenance": header, "settings": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "fidelities": [asdict(f) for f in figures], "configurations": configs})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
