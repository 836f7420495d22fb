"""``python -m bench.bench_search``: TPE + ASHA against random search + FIFO, the same number of trials, over seeds.

Each run is a real search (``tuner.search.run_search``, the command line's own code path) of one
space on a shrunk quick preset: a training subset, a few epochs, the objective and export suites cut
to FGSM and PGD with a small budget. Per seed, both strategies get the same number of trials and the
same seed (the sampler's and the trials' training seed). Both go through the same
``HonestOptunaSearch``, so the space's known-good ``points_to_evaluate`` are their first trials alike:
the comparison is of what each strategy does with the rest.

Reported per run: the best validation objective (the exportable best trial's, as the search exports
it), the trial-epochs spent (the sum over trials of the epochs each ran, from the run's
``results.parquet``) and the wall seconds of ``run_search`` (Ray start and stop, data loading, the
export and the results page included, alike on both sides). Per strategy: mean +- std over seeds;
then TPE + ASHA over random + FIFO for the objective and the trial-epochs.

When TPE + ASHA spent fewer trial-epochs on every seed, random + FIFO is also scored **at equal
trial-epochs**: the best objective among its first k trials (in the order its searcher proposed
them), k the most whose epochs fit within TPE + ASHA's total of the same seed. Neither the random
sampler nor FIFO looks at results, so those k trials are exactly what a k-trial random + FIFO
search of that seed runs (up to training nondeterminism). The other way round (TPE + ASHA given
random + FIFO's trial-epochs) would need more trials than it ran, and is not estimated.
A diverged trial counts its last, broken epoch as one.
"""

from __future__ import annotations

import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import provenance, render, write_json
from search_spaces import list_spaces
from trainables.cli import OneLineParser, run_main
from trainables.evaluation import SuiteOverrides, add_suite_arguments
from tuner.bundles import parse_fuse
from tuner.cluster.storage import study_name, study_storage
from tuner.search import SearchConfig, SearchPlan, resolve_run, run_search
from tuner.trials import TrialRecord, best_trial, read_trials
from tuner.trials.study import TUNE_ID

__all__ = ["STRATEGIES", "RunFigures", "anytime_curve", "best_within", "build_parser", "creation_order", "main",
           "run_figures", "summarise"]

PROG = "python -m bench.bench_search"

# the strategies compared, by name: (--sampler, --scheduler); the first is "ours", the second the reference
STRATEGIES: dict[str, tuple[str, str]] = {"tpe+asha": ("tpe", "asha"), "random+fifo": ("random", "fifo")}
OURS, REFERENCE = STRATEGIES


@dataclass(frozen=True)
class RunFigures:
    """One search: its best objective, the trial-epochs and wall time it took, and its anytime curve."""

    strategy: str
    seed: int
    objective: float  # the exportable best trial's validation objective (NaN: none)
    trial_epochs: int
    wall_s: float
    trials: int
    outcomes: dict[str, int]  # finished / pruned / failed / ... -> trials
    curve: tuple[tuple[int, float], ...]  # per trial in creation order: (trial-epochs so far, best objective so far)


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


def anytime_curve(records: Sequence[TrialRecord], order: dict[str, int]) -> tuple[tuple[int, float], ...]:
    """(trial-epochs of the first k trials, best exportable objective among them) for k = 1..N.

    ``order``: each trial id's place in creation order (:func:`creation_order`); trials missing
    from it come last.
    """
    spent, best, curve = 0, math.nan, []
    for record in sorted(records, key=lambda r: (order.get(r.trial_id, math.inf), r.trial_id)):
        spent += len(record.history)
        if record.exportable and (math.isnan(best) or record.objective > best):
            best = record.objective
        curve.append((spent, best))
    return tuple(curve)


def best_within(curve: Sequence[tuple[int, float]], trial_epochs: int) -> tuple[float, int]:
    """The best objective of the longest prefix of trials that spent at most ``trial_epochs``, and its length."""
    fits = [(i, best) for i, (spent, best) in enumerate(curve, 1) if spent <= trial_epochs]
    return (fits[-1][1], fits[-1][0]) if fits else (math.nan, 0)


def run_figures(strategy: str, seed: int, records: Sequence[TrialRecord], results: Path, wall_s: float,
                order: dict[str, int]) -> RunFigures:
    """The figures of one finished search: its records, its ``results.parquet``, its wall time and trial order."""
    table = read_trials(results)
    outcomes: dict[str, int] = {}
    for outcome in table.column("outcome").to_pylist():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    best = best_trial(list(records))
    return RunFigures(strategy=strategy, seed=seed, objective=math.nan if best is None else best.objective,
                      trial_epochs=int(sum(table.column("epochs").to_pylist())), wall_s=wall_s,
                      trials=table.num_rows, outcomes=outcomes, curve=anytime_curve(records, order))


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample std of the finite ``values`` (std NaN for fewer than 2), and how many were finite."""
    finite = [v for v in values if math.isfinite(v)]
    return {"mean": statistics.fmean(finite) if finite else math.nan,
            "std": statistics.stdev(finite) if len(finite) > 1 else math.nan, "n": len(finite)}


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b else math.nan


def summarise(runs: Sequence[RunFigures]) -> dict[str, Any]:
    """Per strategy mean +- std over seeds, the ours / reference ratios, and the reference at ours' trial-epochs."""
    per = {s: [r for r in runs if r.strategy == s] for s in STRATEGIES}
    out: dict[str, Any] = {s: {k: _mean_std([float(getattr(r, k)) for r in rs])
                               for k in ("objective", "trial_epochs", "wall_s")} for s, rs in per.items()}
    ours, ref = out[OURS], out[REFERENCE]
    out["ratios"] = {k: _ratio(ours[k]["mean"], ref[k]["mean"]) for k in ("objective", "trial_epochs", "wall_s")}
    pairs = [(a, b) for a in per[OURS] for b in per[REFERENCE] if a.seed == b.seed]
    if pairs and all(a.trial_epochs < b.trial_epochs for a, b in pairs):
        at = [best_within(b.curve, a.trial_epochs) for a, b in pairs]
        objective = _mean_std([best for best, _ in at])
        out["reference_at_equal_trial_epochs"] = {"objective": objective, "trials": [k for _, k in at],
                                                  "ratio": _ratio(ours["objective"]["mean"], objective["mean"])}
    else:  # the reference spent no more than ours somewhere: no prefix of it to compare with
        out["reference_at_equal_trial_epochs"] = None
    return out


def build_parser() -> tuple[OneLineParser, tuple[str, ...]]:
    """The benchmark's command line, and the destinations of its suite flags."""
    p = OneLineParser(prog=PROG, description="TPE + ASHA against random search + FIFO at equal trials, over seeds. "
                                             "The objective and export suites: --attacks fgsm,pgd --budget "
                                             "pgd.steps=10 unless given (a --budget adds to that one).")
    p.add_argument("--space", default="adversarial", choices=list_spaces(),
                   help="the space searched (default adversarial: the cheapest model family)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1; each runs both strategies")
    p.add_argument("--num-samples", type=int, default=8, help="trials per search, both strategies")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-limit", type=int, default=3000)
    p.add_argument("--val-limit", type=int, default=500)
    p.add_argument("--test-limit", type=int, default=100, help="test images the export scores (unused by the bench)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--max-concurrent", type=int, default=None, help="default: as many trials as the CPUs hold")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--fuse", default="off", type=parse_fuse, metavar="K|auto|off",
                   help="trials per bundle, both strategies (default off: the strategies compared trial by trial)")
    p.add_argument("--storage-path", type=Path, default=None,
                   help="keep the searches (experiments, exports) here; default: a temporary folder, removed")
    p.add_argument("--out", "--json", dest="out", type=Path, default=None, metavar="PATH",
                   help="also write every run's figures, the summary and the provenance here")
    p.add_argument("--figure", type=Path, default=None, metavar="PNG",
                   help="draw each run's best objective against its trial-epochs here")
    suite_flags = add_suite_arguments(p)
    p.set_defaults(attacks="fgsm,pgd", budget=["pgd.steps=10"])  # the objective and export suites, both
    return p, suite_flags


def _configs(args: Any, storage: Path) -> list[tuple[str, SearchConfig]]:
    """One search per seed and strategy, every setting checked (``resolve_run``) before the first starts."""
    suite = SuiteOverrides.from_args(args)
    configs = []
    for seed in range(args.seeds):
        for strategy, (sampler, scheduler) in STRATEGIES.items():
            cfg = SearchConfig(space=args.space, preset="quick", data_dir=args.data_dir, num_samples=args.num_samples,
                               max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial, seed=seed,
                               sampler=sampler, scheduler=scheduler, storage_path=str(storage / "runs"),
                               name=f"{strategy.replace('+', '-')}-seed{seed}", export_dir=str(storage / "exports"),
                               suite=suite, epochs=args.epochs, train_limit=args.train_limit,
                               val_limit=args.val_limit, test_limit=args.test_limit, live=False, fuse=args.fuse)
            resolve_run(cfg)
            configs.append((strategy, cfg))
    return configs


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run every search, print the tables, write the JSON and the figure."""
    parser, _suite_flags = build_parser()
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    storage = args.storage_path or Path(tempfile.mkdtemp(prefix="robustune-bench-search-"))
    runs: list[RunFigures] = []
    try:
        configs = _configs(args, storage)
        plan = resolve_run(configs[0][1])
        header = provenance(torch.device("cpu"), space=args.space, preset="quick", seeds=args.seeds,
                            trials_per_search=args.num_samples, strategies=STRATEGIES,
                            trial=_trial_line(plan),
                            cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent)
        for strategy, cfg in configs:
            began = time.perf_counter()
            outcome = run_search(cfg, f"{PROG} ({strategy}, seed {cfg.seed})")
            wall_s = time.perf_counter() - began
            if outcome.interrupted:
                raise RuntimeError(f"the {strategy} search of seed {cfg.seed} was interrupted")
            results = cfg.folder.results
            assert results is not None, "bench_search keeps its searches on a local disk"
            runs.append(run_figures(strategy, cfg.seed, outcome.records, results, wall_s, creation_order(cfg)))
    finally:
        if args.storage_path is None:
            shutil.rmtree(storage, ignore_errors=True)
    summary = summarise(runs)
    header["loadavg_after"] = provenance(torch.device("cpu"))["loadavg_1_5_15"]
    _show(header, runs, summary)
    if args.figure is not None:
        _plot(runs, args.figure, f"{args.space}, quick preset, {args.num_samples} trials x {args.epochs} epochs, "
                                 f"{args.seeds} seed(s)")
    write_json(args.out, {"benchmark": "search", "provenance": header,
                          "settings": vars(args) | {"out": str(args.out), "figure": str(args.figure),
                                                    "storage_path": str(args.storage_path)},
                          "runs": [asdict(r) for r in runs], "summary": summary})
    return 0


def _trial_line(plan: SearchPlan) -> str:
    """What every trial of the bench runs, in a line of the header."""
    suite = plan.objective_suite
    steps = ", ".join(f"{a.name} {a.steps} steps" for a in suite.attacks if getattr(a, "steps", None))
    return (f"{plan.base.model.name} on {plan.base.data.train_limit} train, {plan.base.train.epochs} epochs; "
            f"objective {','.join(suite.names())} ({steps}) on {plan.base.data.val_limit} val")


def _pct(stats: dict[str, float]) -> str:
    std = "n/a" if math.isnan(stats["std"]) else f"{100 * stats['std']:.2f}"
    return f"{100 * stats['mean']:.2f} +- {std} %"


def _num(stats: dict[str, float], unit: str = "") -> str:
    std = "n/a" if math.isnan(stats["std"]) else f"{stats['std']:.1f}"
    return f"{stats['mean']:.1f} +- {std}{unit}"


def _show(header: dict[str, Any], runs: Sequence[RunFigures], summary: dict[str, Any]) -> None:
    """The provenance, a row per run, then per strategy mean +- std over seeds and the ratios."""
    rows = [(r.strategy, str(r.seed), "none" if math.isnan(r.objective) else f"{100 * r.objective:.2f} %",
             str(r.trial_epochs), ", ".join(f"{n} {o}" for o, n in sorted(r.outcomes.items())), f"{r.wall_s:.0f} s")
            for r in runs]
    render("robustune bench: search strategies at equal trials (best validation objective, trial-epochs, wall)",
           header, [], rows, ("strategy", "seed", "best objective", "trial-epochs", "trials", "wall"))
    lines = [(s, _pct(summary[s]["objective"]) + f" (n={summary[s]['objective']['n']})",
              _num(summary[s]["trial_epochs"]), _num(summary[s]["wall_s"], " s")) for s in STRATEGIES]
    ratios = summary["ratios"]
    lines.append((f"{OURS} / {REFERENCE}", f"{ratios['objective']:.3f}", f"{ratios['trial_epochs']:.3f}",
                  f"{ratios['wall_s']:.3f}"))
    equal = summary["reference_at_equal_trial_epochs"]
    if equal is not None:
        lines.append((f"{REFERENCE} at {OURS}'s trial-epochs (first {'/'.join(map(str, equal['trials']))} trials)",
                      _pct(equal["objective"]), "", ""))
        lines.append((f"{OURS} / that", f"{equal['ratio']:.3f}", "", ""))
    render(f"mean +- std over {len(runs) // len(STRATEGIES)} seed(s)", {}, [], lines,
           ("strategy", "best objective", "trial-epochs", "wall"))
    if equal is None:
        print(f"  no equal-trial-epochs figure: {REFERENCE} did not spend more trial-epochs than {OURS} on every seed")


def _plot(runs: Sequence[RunFigures], path: Path, title: str) -> Path:
    """Best objective so far against trial-epochs so far, one line per run (trials in creation order)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from trainables.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    colors = dict(zip(STRATEGIES, ("tab:blue", "tab:orange"), strict=True))
    for r in runs:
        xs = [spent for spent, best in r.curve if math.isfinite(best)]
        ys = [100 * best for _, best in r.curve if math.isfinite(best)]
        ax.step(xs, ys, where="post", color=colors[r.strategy], alpha=0.8, marker=".",
                label=r.strategy if r.seed == 0 else None)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("trial-epochs spent by the first k trials")
    ax.set_ylabel("best validation objective so far (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
