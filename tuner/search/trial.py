"""The function Ray Tune runs for each trial: build the run from the suggestion, train, report."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from search_spaces import get_space
from trainables.attacks import SuiteConfig
from trainables.data import ImageSet, Splits
from trainables.models import RobustModel
from trainables.train import RunSpec, TrainingDiverged, fit, resolve_device
from tuner.objective import score_objective

__all__ = ["TrialContext", "diverged_report", "epoch_report", "run_trial", "trial_spec"]


@dataclass(frozen=True)
class TrialContext:
    """What every trial shares: the space, the preset's fixed run and the objective's suite."""

    space: str
    base: RunSpec
    objective_suite: SuiteConfig
    device: str | None = None


def trial_spec(context: TrialContext, config: dict[str, Any]) -> RunSpec:
    """The run one trial's sampled ``config`` describes."""
    return get_space(context.space).apply(context.base, config)


def epoch_report(metrics: dict[str, float], model: RobustModel, spec: RunSpec, context: TrialContext, val: ImageSet,
                 device: torch.device) -> dict[str, Any]:
    """What a trial reports after an epoch: the epoch's metrics, and the full objective after the last.

    Intermediate epochs report the cheap per-epoch suite as ``objective`` (what ASHA compares).
    """
    report: dict[str, Any] = dict(metrics)
    if int(metrics["epoch"]) >= spec.train.epochs:
        report |= score_objective(model, val, context.objective_suite, device)
    else:
        report |= {"objective": metrics["robust_acc"], "final_evaluated": 0.0, "suspect": 0.0}
    report["diverged"] = 0.0
    return report


def diverged_report(exc: TrainingDiverged) -> dict[str, Any]:
    """The report of a trial whose loss diverged: a NaN objective, which Optuna records as failed."""
    return {"objective": math.nan, "robust_acc": math.nan, "natural_acc": math.nan, "diverged": 1.0,
            "final_evaluated": 0.0, "suspect": 0.0, "error": str(exc)}


def run_trial(config: dict[str, Any], context: TrialContext, splits: Splits) -> None:
    """Ray Tune function trainable: one report (and checkpoint) per epoch, the objective at the end.

    A diverged loss is reported as a NaN objective and the search goes on.
    """
    from ray import tune

    spec = trial_spec(context, config)
    device = resolve_device(context.device)
    work = Path(tempfile.mkdtemp(prefix="robustune-trial-"))
    restored = tune.get_checkpoint()
    if restored is not None:
        restored.to_directory(str(work))

    def on_epoch(metrics: dict[str, float], checkpoint_dir: Path | None, model: RobustModel) -> None:
        report = epoch_report(metrics, model, spec, context, splits.val, device)
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))

    try:
        fit(spec, splits, checkpoint_dir=work, on_epoch=on_epoch, device=device)
    except TrainingDiverged as exc:
        tune.report(diverged_report(exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)
