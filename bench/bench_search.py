"""``python -m bench.bench_search``: was the search worth it? The main job against its starting point and random search.

Per task (an L-inf radius, ``--epsilons``) and seed, three real runs of ``tuner.search.run_search``
(the command line's own code path), each exporting its best trial as the main job does:

- **search**: the main job as the preset runs it (since ``68ea96a``: a screen of as many configurations
  as its ``--time-budget`` holds, then the best 2 in full; before, TPE + ASHA over 6 trials), ``--fuse``
  as given;
- **start-alone**: the space's first starting point trained alone, for the same wall time: one
  trial on the whole machine (the CPUs of all the search's trial slots), its schedule stretched
  over as many epochs as the search's training minutes (its start to its export's scoring) hold at
  the point's pace on the whole machine, as the search's own rung measured it (priced at
  ``THREAD_GAIN`` x its pace there when it shared the machine). Before 2026-12-05 it got the search's
  trial-epochs / slots epochs, which assumed a second thread gains nothing: it then trained in about
  two thirds of the search's minutes. A search run without that pace (an older ``--out``) falls back
  to that rule;
- **random-fifo**: random sampling + FIFO for the same wall time: as many full-length trials as the
  search's training minutes hold on its slots, a round of ``slots`` trials side by side at a time, each
  at the point's pace on one slot (the whole machine's x ``THREAD_GAIN``, the search's own pricing),
  and no more trial-epochs than the search trained; at least one round. Before 2026-12-06 it got the
  search's trial-epochs / the preset's epochs alone, which could run a third trial by itself after the
  first two (1053-1077 s against the search's 753-779 s). Its first trials are the space's starting
  points too (every search of this system starts from them), so it differs from the search by what
  it does with the rest;
- **screened** (when asked for in ``--arms``): the search with ``--screen N --promote 2 --time-budget off``
  (its own budget: N short trials, then 2 in full; its trial-epochs count both rungs).

Each run's export is scored by the preset's export suite on the first ``--test-limit`` test images
(the main job's figures: natural and L-inf worst case); its validation objective, trial-epochs and
wall time come beside them. Per task and arm: mean +- std over seeds; then the search minus each
reference, paired by seed, and the issue's targets (search robust >= start-alone + 1.5 points at a
natural accuracy no more than 0.5 below it; search robust >= random-fifo's). The JSON (``--out``)
is rewritten after every run, so a bench stopped half-way keeps what it measured, and
``--resume-from`` that file runs only what it lacks (another arm, more seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from bench.common import provenance, render, write_json
from search_spaces import get_space, list_spaces
from trainables.cli import OneLineParser, run_main
from trainables.evaluation import SuiteOverrides, add_suite_arguments
from tuner.bundles import parse_fuse
from tuner.console.progress import SearchProgress, from_json, read_progress
from tuner.search import SearchConfig, SearchOutcome, resolve_run, run_search
from tuner.search.screening import THREAD_GAIN, screen_config
from tuner.trials import read_trials
from tuner.trials.strategy import same_value

__all__ = ["ARMS", "Arm", "RunFigures", "alone_epochs", "alone_pace", "arm_config", "build_parser", "fifo_trials",
           "is_point", "last_progress", "main", "parse_epsilons", "read_runs", "run_figures", "summarise"]

PROG = "python -m bench.bench_search"

Arm = Literal["search", "start-alone", "random-fifo", "screened"]
ARMS: tuple[Arm, ...] = ("search", "start-alone", "random-fifo", "screened")
DEFAULT_ARMS: tuple[Arm, ...] = ("search", "start-alone", "random-fifo")
CANDIDATES: tuple[Arm, ...] = ("search", "screened")  # the searches judged
REFERENCES: tuple[Arm, ...] = ("start-alone", "random-fifo")  # what the issue compares a search with
PAIRS: tuple[tuple[Arm, Arm], ...] = (*((c, r) for c in CANDIDATES for r in REFERENCES), ("screened", "search"))
TARGET_GAIN = 0.015  # the search's robust accuracy over the starting point trained alone
TARGET_NATURAL_LOSS = 0.005  # ... at a natural accuracy no more than this below it


@dataclass(frozen=True)
class RunFigures:
    """One run of one arm: its export's test figures, the objective it ranked by, and what it cost."""

    arm: Arm
    epsilon: float
    seed: int
    test_natural: float  # the export's natural test accuracy (NaN: nothing exported)
    test_robust: float  # ... its L-inf worst case over the export suite
    val_objective: float  # the exported trial's validation objective
    trial_epochs: int
    wall_s: float
    trials: int
    epochs_per_trial: int  # the schedule each trial ran (the start-alone arm's stretched one)
    outcomes: dict[str, int]  # finished / pruned / failed / ... -> trials
    first_point: bool  # the exported trial is the space's first starting point
    exported: dict[str, Any]  # the exported trial's sampled settings
    train_s: float = math.nan  # from the run's start to its export's scoring (NaN: not measured)
    alone_pace_s: float = math.nan  # the first point's seconds an epoch on the whole machine, from the last rung


def parse_epsilons(text: str) -> tuple[float, ...]:
    """``--epsilons 0.1,0.2`` as radii (argparse's one-line error for a bad or non-positive one)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--epsilons takes comma-separated L-inf radii, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"--epsilons takes radii > 0, got {text!r}")
    return values


def arm_config(arm: Arm, base: SearchConfig, *, slots: int, epochs: int, search: RunFigures | None,
               screen: int = 8) -> SearchConfig:
    """The search of ``arm``: ``base`` is the main job's; the references are sized by its ``search`` run.

    ``slots``: the trials the main job runs at once; ``epochs``: its trials' schedule; ``screen``: the
    screened arm's configurations.
    """
    name = f"{arm}-eps{base.suite.eps:g}-seed{base.seed}"
    if arm == "search":
        return replace(base, name=name, max_concurrent=slots)
    if arm == "screened":
        return replace(base, name=name, max_concurrent=slots, num_samples=None, screen=screen, promote=2,
                       time_budget=0)  # every one of the N, whatever the time
    if search is None:
        raise ValueError(f"the {arm} arm is sized by the search's run of the same task and seed")
    if arm == "start-alone":  # one trial, the whole machine, the search's training minutes
        return replace(base, name=name, num_samples=1, max_concurrent=1, scheduler="fifo", sampler="random", fuse=1,
                       cpus_per_trial=base.cpus_per_trial * slots, epochs=alone_epochs(search, slots, 2 * epochs))
    return replace(base, name=name, sampler="random", scheduler="fifo", max_concurrent=slots,
                   num_samples=fifo_trials(search, slots, epochs))


def alone_epochs(search: RunFigures, slots: int, most: int) -> int:
    """The start-alone arm's epochs: the search's training minutes at the point's pace on the whole machine,
    at most ``most`` (the search's own ceiling for a promoted trial: twice the preset's epochs).

    Without those figures (a search of an older ``--out``): the search's trial-epochs / ``slots``.
    """
    if math.isfinite(search.train_s) and math.isfinite(search.alone_pace_s) and search.alone_pace_s > 0:
        return max(1, min(most, math.floor(search.train_s / search.alone_pace_s)))
    return max(1, round(search.trial_epochs / slots))


def fifo_trials(search: RunFigures, slots: int, epochs: int) -> int:
    """The random-fifo arm's trials: whole rounds of ``slots`` full ``epochs``-epoch trials in the search's training
    minutes at the point's pace on one slot, and no more than the search's trial-epochs hold; at least one round (its
    first trials are the starting points).

    Without the minutes or the pace (a search of an older ``--out``): the search's trial-epochs / ``epochs``.
    """
    by_epochs = max(1, round(search.trial_epochs / epochs))
    if not (math.isfinite(search.train_s) and math.isfinite(search.alone_pace_s) and search.alone_pace_s > 0):
        return by_epochs
    rounds = math.floor(search.train_s / (epochs * search.alone_pace_s * THREAD_GAIN))
    return max(slots, min(slots * rounds, by_epochs))


def alone_pace(progress: SearchProgress | None, trial_ids: Sequence[str]) -> float:
    """The first point's seconds an epoch on the whole machine, from a run's last rung (NaN: it did not train there).

    ``trial_ids``: the rung's trials of that point. Measured where it trained alone; where trials shared
    the machine, its pace there / ``THREAD_GAIN`` (the search's own pricing of a trial given the free
    slots, :mod:`tuner.search.screening`).
    """
    if progress is None:
        return math.nan
    views = [progress.trials[t] for t in trial_ids if t in progress.trials and progress.trials[t].timed]
    if not views:
        return math.nan
    pace = views[0].seconds / views[0].timed
    return pace if progress.slots <= 1 else pace / THREAD_GAIN


def last_progress(cfg: SearchConfig) -> SearchProgress | None:
    """The progress.json a run of ``cfg`` left (its last rung's, with the export's start; None: none on disk)."""
    path = cfg.folder.progress
    if path is None or not path.is_file():
        return None
    return from_json(read_progress(path))


def is_point(params: Mapping[str, Any], point: Mapping[str, Any]) -> bool:
    """Whether the sampled ``params`` are the known ``point`` (floats to a relative 1e-9; other keys may follow)."""
    return bool(point) and all(k in params and same_value(params[k], v) for k, v in point.items())


def _experiments(cfg: SearchConfig, epochs: int) -> list[SearchConfig]:
    """The Tune experiments a run of ``cfg`` made: a screened search's screen, then the search itself."""
    configurations = cfg.screened(resolve_run(cfg).preset.screen)
    return [screen_config(cfg, configurations, epochs), cfg] if configurations else [cfg]


def run_figures(arm: Arm, cfg: SearchConfig, outcome: SearchOutcome, wall_s: float, epochs: int,
                point: Mapping[str, Any], started: float | None = None) -> RunFigures:
    """The figures of one finished run: its export's metrics, its ``results.parquet`` files and its wall time
    (``started``: its ``time.time()`` at the start, for its training minutes)."""
    outcomes: dict[str, int] = {}
    trial_epochs = trials = 0
    for experiment in _experiments(cfg, epochs):
        results = experiment.folder.results
        assert results is not None, "bench_search keeps its searches on a local disk"
        table = read_trials(results)
        for name in table.column("outcome").to_pylist():
            outcomes[name] = outcomes.get(name, 0) + 1
        trial_epochs += int(sum(table.column("epochs").to_pylist()))
        trials += table.num_rows
    test = (outcome.export_metrics or {}).get("test", {})
    best, progress = outcome.best, last_progress(cfg) or outcome.progress
    return RunFigures(arm=arm, epsilon=float(cfg.suite.eps or math.nan), seed=cfg.seed,
                      test_natural=float(test.get("natural_acc", math.nan)),
                      test_robust=float(test.get("robust_acc/linf", math.nan)),
                      val_objective=math.nan if best is None else best.objective,
                      trial_epochs=trial_epochs, wall_s=wall_s, trials=trials,
                      epochs_per_trial=(cfg.epochs or epochs), outcomes=outcomes,
                      first_point=best is not None and is_point(best.params, point),
                      exported={} if best is None else dict(best.params),
                      train_s=_train_seconds(progress, started),
                      alone_pace_s=alone_pace(progress, [r.trial_id for r in outcome.records
                                                         if is_point(r.params, point)]))


def _train_seconds(progress: SearchProgress | None, started: float | None) -> float:
    """Seconds from ``started`` to the export's scoring (NaN: either unknown)."""
    if progress is None or started is None or progress.export_started is None:
        return math.nan
    return progress.export_started - started


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample std of the finite ``values`` (std NaN for fewer than 2), and how many were finite."""
    finite = [v for v in values if math.isfinite(v)]
    return {"mean": statistics.fmean(finite) if finite else math.nan,
            "std": statistics.stdev(finite) if len(finite) > 1 else math.nan, "n": len(finite)}


FIGURES = ("test_robust", "test_natural", "val_objective", "trial_epochs", "wall_s")


def summarise(runs: Sequence[RunFigures]) -> dict[str, Any]:
    """Per task: each arm's mean +- std over seeds, the search minus each reference paired by seed, the targets."""
    out: dict[str, Any] = {}
    for eps in sorted({r.epsilon for r in runs}):
        task = [r for r in runs if r.epsilon == eps]
        by = {(r.arm, r.seed): r for r in task}
        entry: dict[str, Any] = {arm: {k: _mean_std([float(getattr(r, k)) for r in task if r.arm == arm])
                                       for k in FIGURES} for arm in ARMS}
        for arm, ref in PAIRS:
            pairs = [(by[(arm, s)], by[(ref, s)]) for a, s in by if a == ref and (arm, s) in by]
            entry[f"{arm}-{ref}"] = {
                "seeds": len(pairs),
                "robust": _mean_std([a.test_robust - b.test_robust for a, b in pairs]),
                "natural": _mean_std([a.test_natural - b.test_natural for a, b in pairs])}
        entry["targets"] = {f"{arm}_{k}": v for arm in CANDIDATES for k, v in _targets(entry, arm).items()}
        out[f"{eps:g}"] = entry
    return out


def _targets(entry: Mapping[str, Any], arm: Arm) -> dict[str, bool | None]:
    """The issue's two targets for ``arm`` on the seed means (None: a side has no runs yet)."""
    alone, rand = entry[f"{arm}-start-alone"], entry[f"{arm}-random-fifo"]
    gain, natural = alone["robust"]["mean"], alone["natural"]["mean"]
    return {"beats_start_alone": (gain >= TARGET_GAIN and natural >= -TARGET_NATURAL_LOSS)
            if alone["seeds"] else None,
            "at_least_random_fifo": rand["robust"]["mean"] >= 0 if rand["seeds"] else None}


def build_parser() -> tuple[OneLineParser, tuple[str, ...]]:
    """The benchmark's command line, and the destinations of its suite flags."""
    p = OneLineParser(prog=PROG, description="The main job against its first starting point trained alone for the "
                                             "same wall time and random search + FIFO for the same wall time, "
                                             "per L-inf radius and seed; each scored on its export's test figures.")
    p.add_argument("--space", default="lwta", choices=list_spaces(), help="the space searched (default lwta)")
    p.add_argument("--epsilons", default="0.1,0.2", type=parse_epsilons, metavar="EPS,...",
                   help="the tasks: L-inf radii (pixel units), every other setting the preset's")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1; each runs every arm of every task")
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS), metavar="ARM,...",
                   help=f"which of {','.join(ARMS)} to run (default {','.join(DEFAULT_ARMS)}; the references need "
                        "the search of their task and seed, run here or in --resume-from)")
    p.add_argument("--screen", type=int, default=8, metavar="N",
                   help="the screened arm's configurations (--screen N --promote 2)")
    p.add_argument("--resume-from", type=Path, default=None, metavar="JSON",
                   help="an earlier --out file: its runs are kept and not run again")
    p.add_argument("--num-samples", type=int, default=None, help="the search's trials (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None, help="the search's epochs per trial (default: the preset's)")
    p.add_argument("--train-limit", type=int, default=None, help="training images (default: the whole split)")
    p.add_argument("--val-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=2000, help="test images each export is scored on")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--slots", type=int, default=None,
                   help="trials the search runs at once (default: as many as the CPUs hold)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--fuse", default="auto", type=parse_fuse, metavar="K|auto|off",
                   help="trials per bundle in the search and random-fifo (default auto, as the main job)")
    p.add_argument("--storage-path", type=Path, default=None,
                   help="keep the runs (experiments, exports) here; default: a temporary folder, removed")
    p.add_argument("--out", "--json", dest="out", type=Path, default=None, metavar="PATH",
                   help="write every run's figures, the summary and the provenance here (after every run)")
    p.add_argument("--figure", type=Path, default=None, metavar="PNG",
                   help="draw each run's test natural against L-inf worst-case accuracy here, a panel per task")
    suite_flags = add_suite_arguments(p)
    return p, suite_flags


def _arms(text: str) -> tuple[Arm, ...]:
    names = tuple(a.strip() for a in text.split(",") if a.strip())
    unknown = [a for a in names if a not in ARMS]
    if unknown or not names:
        raise ValueError(f"--arms takes names from {', '.join(ARMS)}, got {text!r}")
    return tuple(a for a in ARMS if a in names)


def read_runs(path: Path | None) -> list[RunFigures]:
    """The runs of an earlier ``--out`` file (none without one); ValueError, one line, for a file that is not one."""
    if path is None:
        return []
    try:
        return [RunFigures(**run) for run in json.loads(path.read_text())["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--resume-from {path}: not a bench_search --out file ({type(exc).__name__})") from None


def _slots(args: Any) -> int:
    if args.slots is not None:
        if args.slots < 1:
            raise ValueError(f"--slots must be >= 1, got {args.slots}")
        return args.slots
    return max(1, int(len(os.sched_getaffinity(0)) // args.cpus_per_trial))


def _base(args: Any, storage: Path, eps: float, seed: int) -> SearchConfig:
    """The main job's settings for one task and seed."""
    suite = replace(SuiteOverrides.from_args(args), eps=eps)
    return SearchConfig(space=args.space, preset="quick", data_dir=args.data_dir, num_samples=args.num_samples,
                        cpus_per_trial=args.cpus_per_trial, seed=seed, storage_path=str(storage / "runs"),
                        export_dir=str(storage / "exports"), suite=suite, epochs=args.epochs,
                        train_limit=args.train_limit, val_limit=args.val_limit, test_limit=args.test_limit,
                        live=False, fuse=args.fuse)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run every arm of every task and seed, print the tables, write the JSON and the figure."""
    parser, _suite_flags = build_parser()
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if args.epsilon is not None:
        raise ValueError("bench_search takes its radii from --epsilons, not --epsilon")
    arms, slots = _arms(args.arms), _slots(args)
    if args.screen < 2:
        raise ValueError(f"--screen must be >= 2, got {args.screen}")
    runs = read_runs(args.resume_from)
    tasks = [(eps, seed) for seed in range(args.seeds) for eps in args.epsilons]  # seed-major: a stop keeps pairs
    storage = args.storage_path or Path(tempfile.mkdtemp(prefix="robustune-bench-search-"))
    plans = {eps: resolve_run(_base(args, storage, eps, 0)) for eps in args.epsilons}  # every setting checked first
    first = next(iter(plans.values()))
    epochs = first.base.train.epochs
    point = (get_space(args.space).points_to_evaluate(first.preset) or [{}])[0]
    header = provenance(torch.device("cpu"), space=args.space, preset="quick", epsilons=args.epsilons,
                        seeds=args.seeds, arms=arms, slots=slots, trials=first.strategy.num_samples, epochs=epochs,
                        train_limit=first.base.data.train_limit, test_limit=args.test_limit)
    done = {(r.arm, r.epsilon, r.seed): r for r in runs}
    try:
        for eps, seed in tasks:
            base = _base(args, storage, eps, seed)
            for arm in arms:
                if (arm, eps, seed) in done:
                    continue
                cfg = arm_config(arm, base, slots=slots, epochs=epochs, search=done.get(("search", eps, seed)),
                                 screen=args.screen)
                began, started = time.perf_counter(), time.time()
                outcome = run_search(cfg, f"{PROG} ({arm}, eps {eps:g}, seed {seed})")
                wall_s = time.perf_counter() - began
                if outcome.interrupted:  # Ctrl-C stopped Tune: the runs so far are in --out
                    raise KeyboardInterrupt
                figures = run_figures(arm, cfg, outcome, wall_s, epochs, point, started)
                runs.append(figures)
                done[(arm, eps, seed)] = figures
                _write(args, header, runs)
    finally:
        if args.storage_path is None:
            shutil.rmtree(storage, ignore_errors=True)
    header["loadavg_after"] = provenance(torch.device("cpu"))["loadavg_1_5_15"]
    summary = _write(args, header, runs)
    _show(header, runs, summary)
    if args.figure is not None:
        limit = first.base.data.train_limit
        training = "the whole training split" if limit is None else f"{limit} training images"
        _plot(runs, args.figure, f"{args.space}, quick preset, {training}, {args.test_limit} test images")
    return 0


def _write(args: Any, header: dict[str, Any], runs: Sequence[RunFigures]) -> dict[str, Any]:
    """Summarise the runs so far and write them to ``--out`` (when given)."""
    summary = summarise(runs)
    settings = vars(args) | {k: str(getattr(args, k)) for k in ("out", "figure", "storage_path", "resume_from")}
    write_json(args.out, {"benchmark": "search", "provenance": header, "settings": settings,
                          "runs": [asdict(r) for r in runs], "summary": summary})
    return summary


def _pct(stats: Mapping[str, float], signed: bool = False) -> str:
    mean = f"{100 * stats['mean']:+.2f}" if signed else f"{100 * stats['mean']:.2f}"
    std = "n/a" if math.isnan(stats["std"]) else f"{100 * stats['std']:.2f}"
    return f"{mean} +- {std}"


def _show(header: dict[str, Any], runs: Sequence[RunFigures], summary: Mapping[str, Any]) -> None:
    """The provenance, a row per run, then per task and arm mean +- std over seeds and the paired differences."""
    rows = [(f"{r.epsilon:g}", r.arm, str(r.seed), f"{100 * r.test_natural:.2f}%", f"{100 * r.test_robust:.2f}%",
             f"{100 * r.val_objective:.2f}%", f"{r.trials} x {r.epochs_per_trial}", str(r.trial_epochs),
             "yes" if r.first_point else "no", f"{r.wall_s:.0f} s") for r in runs]
    render("robustune bench: the search against its starting point alone and random + FIFO (test figures of each "
           "export)", header, [], rows, ("eps", "arm", "seed", "natural", "L-inf worst", "val objective",
                                         "trials x epochs", "trial-epochs", "exported first point", "wall"))
    lines = []
    for eps, entry in summary.items():
        for arm in ARMS:
            s = entry[arm]
            if s["test_robust"]["n"]:
                lines.append((eps, arm, _pct(s["test_natural"]), _pct(s["test_robust"]), _pct(s["val_objective"]),
                              f"{s['wall_s']['mean']:.0f} s", str(s["test_robust"]["n"])))
        for arm, ref in PAIRS:
            d = entry[f"{arm}-{ref}"]
            if d["seeds"]:
                lines.append((eps, f"{arm} - {ref}", _pct(d["natural"], True), _pct(d["robust"], True), "", "",
                              str(d["seeds"])))
        met = ", ".join(f"{k}: {v}" for k, v in entry["targets"].items() if v is not None)
        lines.append((eps, "targets", "", met, "", "", ""))
    render("mean +- std over seeds (points)", {}, [], lines,
           ("eps", "arm", "natural", "L-inf worst", "val objective", "wall", "seeds"))


def _plot(runs: Sequence[RunFigures], path: Path, title: str) -> Path:
    """Test natural against L-inf worst-case accuracy, a point per run and a cross per arm's mean, a panel per task."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from trainables.atomic import atomic_write

    epsilons = sorted({r.epsilon for r in runs})
    fig, axes = plt.subplots(1, len(epsilons), figsize=(4.6 * len(epsilons), 3.9), squeeze=False)
    colors = dict(zip(ARMS, ("tab:blue", "tab:green", "tab:orange", "tab:purple"), strict=True))
    for ax, eps in zip(axes[0], epsilons, strict=True):
        for arm in ARMS:
            mine = [r for r in runs if r.epsilon == eps and r.arm == arm and math.isfinite(r.test_robust)]
            if not mine:
                continue
            xs, ys = [100 * r.test_natural for r in mine], [100 * r.test_robust for r in mine]
            ax.scatter(xs, ys, color=colors[arm], alpha=0.6, label=arm)
            ax.scatter([statistics.fmean(xs)], [statistics.fmean(ys)], color=colors[arm], marker="x", s=90)
        ax.set_title(f"L-inf eps {eps:g}", fontsize=9)
        ax.set_xlabel("test natural accuracy (%)")
        ax.set_ylabel("test L-inf worst case (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title + " (x: mean over seeds)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG, interrupted="interrupted; the runs finished so far are in --out: continue "
                                                   "with --resume-from that file"))
