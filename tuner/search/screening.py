"""A search, screened first or not: ``--screen N`` tries N configurations on a short schedule, the best in full.

Why: ``bench/bench_fidelity.py`` measured which cheap score orders configurations as full training
does. The whole one-cycle schedule compressed into a fifth of the epochs ranked 12 configurations
with Spearman 0.96 against their full objectives (as well as epoch 8 of the full run), where ASHA's
first rung (epoch 1 of 15) ranked them at 0.74; at eps 0.2, 0.97 against 0.64. The other low
fidelity of the literature, a cheaper training attack (FGSM with a random start for PGD-3), ranked
them at 0.92 and 0.81 and saved 3-6% of the screen's minutes (the sampled mixes' cost is mostly
Carlini-Wagner and scoring), so the screen trains on the full attack. So a screened search is
successive halving in two rungs, each rung its own Tune experiment:

1. **screen**: ``<name>-screen``, N trials (the space's known-good points, then the sampler's) of
   ``--screen-epochs`` each (default a fifth of the trials' epochs), FIFO, ranked by the honest
   objective, nothing exported;
2. **promote**: ``<name>``, the best ``--promote`` M of them (exportable trials only) trained for the
   full epochs from scratch, FIFO; its best trial is exported as any search's. Under a
   ``--time-budget`` "the full epochs" are what the budget leaves once the screen is over
   (:func:`tuner.search.budget.promote_epochs`: up to twice the preset's, at least one more than
   the screen's), each configuration at its own pace when each has a slot of its own (a promoted
   point's ``epochs``).

A configuration is promoted only within :data:`PROMOTE_MARGIN` of the screen's best: the FGSM-heavy
mix TPE drew at eps 0.2 and 0.3 screened 8.0 and 24.5 points below the starting point, was promoted
as the second best, and collapsed (49.4% and 22.1% against 69.1% and 67.0%), while every runner-up
within 4 points (eps 0.1) stayed within 4 points. Where the best trains alone on a CPU-only local
machine it takes the slots the others would have had (:func:`widened`), priced at
:data:`THREAD_GAIN` times its screened pace.

With ``--promote-from screen`` a promoted configuration starts from the weights its screen run was
ranked by rather than anew (:mod:`tuner.trials.warm`: the screen trial's checkpoint travels with the
point); on four seeds at eps 0.2 that moved neither accuracy beyond seed noise (+0.3 +- 0.8 points of
objective), so the default is ``scratch``. The promote rung is never fused: each of its trials trains
its own epochs from its own weights, where a bundle's members share their batches and epochs.

The promoted configurations are written to ``promoted.json`` in the screen's folder (beside the
exports on remote storage) once the screen is over, and the rung's epochs to ``promote.json``
beside it; ``--resume`` skips a finished screen and continues whichever rung was stopped.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from ray import tune

from trainables.atomic import atomic_write_text
from tuner.console.eta import TimeBudget
from tuner.console.progress import SearchProgress
from tuner.search.budget import PromoteEpochs, promote_epochs
from tuner.search.config import SearchConfig
from tuner.search.plan import resolve_run
from tuner.search.run import SearchOutcome, run_experiment
from tuner.trials.pareto import ranked_trials
from tuner.trials.record import TrialRecord
from tuner.trials.strategy import POINT_EPOCHS
from tuner.trials.warm import POINT_WARM, warm_start_of

__all__ = ["PROMOTE", "PROMOTED", "PROMOTE_MARGIN", "THREAD_GAIN", "PromoteRecord", "promoted_config", "run_search",
           "screen_budget", "screen_config", "screen_epochs", "warm_point", "within_margin", "widened"]

PROMOTED = "promoted.json"  # the screen's verdict: the configurations the promote rung trains
PROMOTE = "promote.json"  # and how: a PromoteRecord

# Objective points (a share) a screened configuration may trail the best and still be promoted. The
# screen's objective is the worst case on 1000 validation images: a difference of two such accuracies
# near 65% has a standard error of about 2 points, and the short schedule orders configurations as
# full training does (bench_fidelity: Spearman 0.96). Runners-up 0.6-4 points behind never overtook
# the best in any recorded main job or bench_search run; 8 and 24.5 points behind they collapsed.
PROMOTE_MARGIN = 0.05
# What a second torch thread gains a widened trial, as its epochs are priced: the quick preset's rung on
# the 2-core VM ran 1.0x, 1.3x, 1.3x and 1.18x its screened pace in four main jobs (1.15-1.6x in Tune
# trials one after the other), so the least but one: where it gains nothing the rung overruns its
# pricing by 15% (about 40 s of a 13-minute job), elsewhere it still ends a little early.
THREAD_GAIN = 1.15


@dataclass(frozen=True)
class PromoteRecord:
    """The promote rung as the screen decided it (``promote.json``): what ``--resume`` trains again, and says."""

    epochs: int  # the rung's schedule
    line: str = ""  # why that many, in words (appended to the line that starts the rung)
    each: tuple[int, ...] = ()  # each promoted configuration's own epochs (empty: ``epochs``)
    cpus_per_trial: float = 1.0  # each promoted trial's CPUs (the free slots of those not promoted: widened)
    margin: str = ""  # who was not promoted for trailing the best, in words ('' when none)


def run_search(cfg: SearchConfig, command: str = "python -m tuner.search") -> SearchOutcome:
    """Run (or resume) one search end to end and export its best honest model; screened first with ``--screen``."""
    plan = resolve_run(cfg)  # every setting checked before either rung starts
    configurations = cfg.screened(plan.preset.screen)
    if not configurations:
        return run_experiment(cfg, command)
    epochs = plan.base.train.epochs
    screen = screen_config(cfg, configurations, epochs)
    if cfg.screen_epochs is not None and cfg.screen_epochs >= epochs:
        raise ValueError(f"--screen-epochs {cfg.screen_epochs} is not a short schedule: the trials train for {epochs}")
    verdict = _verdict_path(screen)
    if cfg.resume and cfg.screen is None and _unscreened(cfg, screen, verdict):
        return run_experiment(cfg, command)  # started without a screen (before its preset screened): as it began
    if not cfg.resume and tune.Tuner.can_restore(cfg.folder.path):
        raise FileExistsError(f"experiment {cfg.folder.path} exists: add --resume to continue it, "
                              "or pick another --name")
    screened = "the screen"
    if not (cfg.resume and verdict.is_file()):
        budget = screen_budget(cfg, plan.preset.time_budget, configurations)
        outcome = run_experiment(screen, command, export=False, later=(cfg.promoted, epochs),  # its ETA: the whole job
                                 budget=budget)
        if outcome.interrupted:
            return outcome
        ranked = ranked_trials(outcome.records)[:cfg.promoted]
        if not ranked:
            return outcome  # no screened trial is exportable: nothing to promote, nothing exported
        chosen = within_margin(ranked)
        wide = widened(cfg, len(chosen), outcome.progress)
        sized = promote_epochs(outcome.progress, [r.trial_id for r in chosen], epochs, screen.epochs + 1,
                               speedup=THREAD_GAIN if wide > 1 else 1.0)
        points = [dict(r.params) for r in chosen]
        if sized.each:  # each its own epochs, carried by the point (POINT_EPOCHS) to its trial
            points = [{**point, POINT_EPOCHS: own} for point, own in zip(points, sized.each, strict=True)]
        if cfg.promote_from == "screen":  # and the screen weights it starts from (POINT_WARM)
            points = [warm_point(point, record, screen) for point, record in zip(points, chosen, strict=True)]
        verdict.parent.mkdir(parents=True, exist_ok=True)
        record = PromoteRecord(sized.epochs, _promote_line(sized, epochs, budget), sized.each,
                               cfg.cpus_per_trial * wide, _margin_line(ranked, chosen, wide))
        atomic_write_text(_promote_path(verdict), json.dumps(asdict(record)))
        atomic_write_text(verdict, json.dumps(points, indent=1))
        screened = _screened_line(len(outcome.records), configurations, screen.epochs, budget)
    promoted = json.loads(verdict.read_text())
    count = len(promoted)
    rung = _promote_record(verdict, epochs, cfg.cpus_per_trial)
    trains = " and ".join(map(str, rung.each)) if rung.each else str(rung.epochs)
    best = "the best 1 trains" if count == 1 else f"the best {count} train"
    warm = " more from its screen weights" if count == 1 else " more from their screen weights"
    warm = warm if any(POINT_WARM in point for point in promoted) else ""
    print(f"{screened} in {screen.folder.path}; {best} for {trains} epochs{warm}{rung.line} in {cfg.folder.path}",
          file=sys.stderr, flush=True)
    if rung.margin:
        print(rung.margin, file=sys.stderr, flush=True)
    full = replace(promoted_config(cfg, verdict, count), epochs=rung.epochs, cpus_per_trial=rung.cpus_per_trial)
    return run_experiment(replace(full, resume=cfg.resume and tune.Tuner.can_restore(cfg.folder.path)), command)


def _promote_line(sized: PromoteEpochs, epochs: int, budget: TimeBudget | None) -> str:
    """Why the promote rung trains ``sized.epochs``, in words ('' when it trains the preset's, no budget sizing it)."""
    if budget is None or sized.epoch_s is None or sized.left_s is None:
        return ""
    minutes = f"{budget.seconds / 60:g}-minute --time-budget"
    if sized.epochs * sized.epoch_s > max(sized.left_s, 0.0):
        return (f" (the least after a {sized.epochs - 1}-epoch screen: the {minutes} leaves "
                f"{max(sized.left_s, 0.0) / 60:.1f} minutes of training at {sized.epoch_s:.0f} s an epoch)")
    pace = f", each at its own pace on its own slot, the slowest at {sized.epoch_s:.0f} s an epoch" if sized.each \
        else f" at {sized.epoch_s:.0f} s an epoch"
    return f" (what the {minutes} leaves: {sized.left_s / 60:.1f} minutes{pace}; {epochs} without a budget, " \
           f"at most {2 * epochs})"


def within_margin(ranked: list[TrialRecord]) -> list[TrialRecord]:
    """The ranked screened trials (best first) no more than PROMOTE_MARGIN below the best."""
    return [r for r in ranked if r.objective >= ranked[0].objective - PROMOTE_MARGIN]


def widened(cfg: SearchConfig, count: int, progress: SearchProgress | None) -> int:
    """How many of the promote rung's slots each of its ``count`` trials takes: 2 where fewer than ``--promote``
    were promoted and 2 ran side by side in the screen, on a local machine without CUDA, one worker a trial; else 1.

    Only there do the slots' CPUs become the trial's torch threads for sure; a GPU trial would only hold CPUs
    it does not use, and a cluster's slots may lie on other nodes.
    """
    local_cpu = cfg.address == "" and cfg.fixed_gpus_per_trial == 0 and not cfg.data_parallel \
        and not torch.cuda.is_available()
    slots = 1 if progress is None else progress.slots
    return 2 if local_cpu and 2 * count <= min(cfg.promoted, slots) else 1


def _margin_line(ranked: list[TrialRecord], chosen: list[TrialRecord], wide: int) -> str:
    """Why fewer than the asked trials were promoted, and what the promoted get instead, in words ('' when all were)."""
    if len(chosen) == len(ranked):
        return ""
    left = ranked[len(chosen):]
    gaps = " and ".join(f"{r.trial_id} {100 * (ranked[0].objective - r.objective):.1f}" for r in left)
    slots = f"; the promoted take their slots too ({wide} each, priced at {THREAD_GAIN:g}x the pace)" if wide > 1 \
        else ""
    return f"not promoted: {gaps} points below the best after the screen (margin {100 * PROMOTE_MARGIN:g}){slots}"


def _promote_path(verdict: Path) -> Path:
    """Where the promote rung's epochs are kept: beside the screen's verdict."""
    return verdict.with_name(verdict.name.replace(PROMOTED, PROMOTE))


def _promote_record(verdict: Path, epochs: int, cpus: float) -> PromoteRecord:
    """The promote rung as the screen recorded it (``epochs`` and ``cpus``, no words, for a screen of before
    ``promote.json``)."""
    path = _promote_path(verdict)
    if not path.is_file():
        return PromoteRecord(epochs, cpus_per_trial=cpus)
    record = json.loads(path.read_text())
    return PromoteRecord(int(record["epochs"]), str(record.get("line", "")), tuple(map(int, record.get("each", ()))),
                         float(record.get("cpus_per_trial", cpus)), str(record.get("margin", "")))


def screen_budget(cfg: SearchConfig, preset_budget: float | None, configurations: int) -> TimeBudget | None:
    """The whole job's time budget, which sizes the screen (None: none): it starts one configuration more than
    the promote rung trains whatever the budget says."""
    minutes = cfg.budget_minutes(preset_budget)
    return None if minutes is None else TimeBudget(minutes * 60, min(cfg.promoted + 1, configurations))


def _screened_line(started: int, configurations: int, epochs: int, budget: TimeBudget | None) -> str:
    """What the screen did, in words."""
    line = f"screened {started} configurations for {epochs} epochs"
    if budget is None or started >= configurations:
        return line
    minutes = f"{budget.seconds / 60:g}-minute --time-budget"
    if started > budget.minimum:
        return f"{line} (of up to {configurations}: as many as the {minutes} held)"
    return f"{line} (of up to {configurations}: the {minutes} held fewer on this machine; a screen tries at least " \
           f"{budget.minimum})"


def _unscreened(cfg: SearchConfig, screen: SearchConfig, verdict: Path) -> bool:
    """Whether ``cfg``'s experiment exists with no screen before it (``--resume`` continues it unscreened)."""
    return (tune.Tuner.can_restore(cfg.folder.path) and not verdict.is_file()
            and not tune.Tuner.can_restore(screen.folder.path))


def screen_epochs(cfg: SearchConfig, epochs: int) -> int:
    """The screen's schedule: ``--screen-epochs``, else a fifth of the trials' ``epochs`` (at least 1)."""
    return cfg.screen_epochs or max(1, round(epochs / 5))


def screen_config(cfg: SearchConfig, configurations: int, epochs: int) -> SearchConfig:
    """The screen rung of ``cfg`` (trials of ``epochs`` in full): ``configurations`` short FIFO trials in
    ``<name>-screen``."""
    return replace(cfg, name=f"{cfg.folder.name}-screen", screen=0, promote=None, screen_epochs=None, time_budget=None,
                   num_samples=configurations, epochs=screen_epochs(cfg, epochs), scheduler="fifo",
                   promote_from="scratch")


def promoted_config(cfg: SearchConfig, verdict: Path, count: int) -> SearchConfig:
    """The promote rung of ``cfg``: the ``count`` configurations of ``verdict`` alone, in full, FIFO, unfused (each
    trains its own epochs from its own screen weights, where a bundle's members share their batches and epochs)."""
    return replace(cfg, screen=0, promote=None, screen_epochs=None, time_budget=None, num_samples=count,
                   points=str(verdict), space_points=False, scheduler="fifo", fuse=1, promote_from="scratch")


def warm_point(point: dict[str, Any], record: TrialRecord, screen: SearchConfig) -> dict[str, Any]:
    """``point`` with the screen weights of ``record`` (its screen trial) to start from, where it left them."""
    folder = screen.folder
    start = warm_start_of(record, folder.path.split("://", 1)[0] if folder.remote else "")
    return point if start is None else {**point, POINT_WARM: start.encode()}


def _verdict_path(screen: SearchConfig) -> Path:
    """Where the screen's verdict is kept: its experiment folder, or beside the exports on remote storage."""
    folder = screen.folder
    return Path(folder.path) / PROMOTED if not folder.remote else Path(screen.export_dir) / f"{folder.name}-{PROMOTED}"
