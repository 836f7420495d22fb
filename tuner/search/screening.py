"""A search, screened first or not: ``--screen N`` tries N configurations on a short schedule, the best in full.

Why: ``bench/bench_fidelity.py`` measured which cheap score orders configurations as full training
does. The whole one-cycle schedule compressed into a fifth of the epochs ranked 12 configurations
with Spearman 0.96 against their full objectives (as well as epoch 8 of the full run), where ASHA's
first rung (epoch 1 of 15) ranked them at 0.74. So a screened search is successive halving in two
rungs, each rung its own Tune experiment:

1. **screen**: ``<name>-screen``, N trials (the space's known-good points, then the sampler's) of
   ``--screen-epochs`` each (default a fifth of the trials' epochs), FIFO, ranked by the honest
   objective, nothing exported;
2. **promote**: ``<name>``, the best ``--promote`` M of them (exportable trials only) trained for the
   full epochs from scratch, FIFO; its best trial is exported as any search's. Under a
   ``--time-budget`` "the full epochs" are what the budget leaves once the screen is over
   (:func:`tuner.search.budget.promote_epochs`: up to twice the preset's, at least one more than
   the screen's), each configuration at its own pace when each has a slot of its own (a promoted
   point's ``epochs``).

The promoted configurations are written to ``promoted.json`` in the screen's folder (beside the
exports on remote storage) once the screen is over, and the rung's epochs to ``promote.json``
beside it; ``--resume`` skips a finished screen and continues whichever rung was stopped.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from ray import tune

from trainables.atomic import atomic_write_text
from tuner.console.eta import TimeBudget
from tuner.search.budget import PromoteEpochs, promote_epochs
from tuner.search.config import SearchConfig
from tuner.search.plan import resolve_run
from tuner.search.run import SearchOutcome, run_experiment
from tuner.trials.pareto import ranked_trials
from tuner.trials.strategy import POINT_EPOCHS

__all__ = ["PROMOTE", "PROMOTED", "promoted_config", "run_search", "screen_budget", "screen_config",
           "screen_epochs"]

PROMOTED = "promoted.json"  # the screen's verdict: the configurations the promote rung trains
PROMOTE = "promote.json"  # and how long: {"epochs": E, "each": [own epochs], "line": what was said of it}


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
        chosen = ranked_trials(outcome.records)[:cfg.promoted]
        if not chosen:
            return outcome  # no screened trial is exportable: nothing to promote, nothing exported
        sized = promote_epochs(outcome.progress, [r.trial_id for r in chosen], epochs, screen.epochs + 1)
        points = [dict(r.params) for r in chosen]
        if sized.each:  # each its own epochs, carried by the point (POINT_EPOCHS) to its trial
            points = [{**point, POINT_EPOCHS: own} for point, own in zip(points, sized.each, strict=True)]
        verdict.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_promote_path(verdict), json.dumps({"epochs": sized.epochs, "each": list(sized.each),
                                                              "line": _promote_line(sized, epochs, budget)}))
        atomic_write_text(verdict, json.dumps(points, indent=1))
        screened = _screened_line(len(outcome.records), configurations, screen.epochs, budget)
    count = len(json.loads(verdict.read_text()))
    full_epochs, how, each = _promote_record(verdict, epochs)
    trains = " and ".join(map(str, each)) if each else str(full_epochs)
    print(f"{screened} in {screen.folder.path}; the best {count} train for {trains} epochs{how} in "
          f"{cfg.folder.path}", file=sys.stderr, flush=True)
    full = replace(promoted_config(cfg, verdict, count), epochs=full_epochs)
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


def _promote_path(verdict: Path) -> Path:
    """Where the promote rung's epochs are kept: beside the screen's verdict."""
    return verdict.with_name(verdict.name.replace(PROMOTED, PROMOTE))


def _promote_record(verdict: Path, epochs: int) -> tuple[int, str, tuple[int, ...]]:
    """The promote rung's epochs, why, and each configuration's own (none: all the rung's), as the screen recorded
    them (``epochs``, no reason, for a screen of before ``promote.json``)."""
    path = _promote_path(verdict)
    if not path.is_file():
        return epochs, "", ()
    record = json.loads(path.read_text())
    return int(record["epochs"]), str(record.get("line", "")), tuple(map(int, record.get("each", ())))


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
                   num_samples=configurations, epochs=screen_epochs(cfg, epochs), scheduler="fifo")


def promoted_config(cfg: SearchConfig, verdict: Path, count: int) -> SearchConfig:
    """The promote rung of ``cfg``: the ``count`` configurations of ``verdict`` alone, in full, FIFO."""
    return replace(cfg, screen=0, promote=None, screen_epochs=None, time_budget=None, num_samples=count,
                   points=str(verdict), space_points=False, scheduler="fifo")


def _verdict_path(screen: SearchConfig) -> Path:
    """Where the screen's verdict is kept: its experiment folder, or beside the exports on remote storage."""
    folder = screen.folder
    return Path(folder.path) / PROMOTED if not folder.remote else Path(screen.export_dir) / f"{folder.name}-{PROMOTED}"
