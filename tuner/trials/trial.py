"""One trial's body, the same whether Tune runs it in one process or Ray Train on every data-parallel worker.

The body builds the run from the suggestion, restores a checkpoint when there is one (else starts a
promoted configuration from its screen weights, :mod:`.warm`), trains with
:func:`trainables.train.fit`, and reports every epoch with its checkpoint; the last epoch carries the
objective. Where the reports go is a :class:`TrialSession`: Tune's (one process) or Ray Train's
(every worker of a data-parallel trial, rank 0's report reaching Tune).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from search_spaces import get_space
from trainables.data import ImageSet, Splits
from trainables.evaluation import SuiteConfig
from trainables.models import RobustModel
from trainables.train import CheckpointError, RunSpec, TrainingDiverged, fit, resolve_device
from tuner.trials.checkpoints import Restored, restore_intact
from tuner.trials.objective import score_objective
from tuner.trials.outcome import TrialReport
from tuner.trials.strategy import POINT_EPOCHS
from tuner.trials.warm import POINT_WARM, WarmStart, warm_weights

__all__ = ["TrainSession", "TrialContext", "TrialSession", "TuneSession", "diverged_report", "epoch_report",
           "refused_report", "run_trial", "train_trial", "trial_spec", "warm_weights_of"]


@dataclass(frozen=True)
class TrialContext:
    """What every trial shares: the space, the preset's fixed run and the objective's suite."""

    space: str
    base: RunSpec
    objective_suite: SuiteConfig
    device: str | None = None


class TrialSession(Protocol):
    """Where a trial's checkpoint comes from and its reports go."""

    device: torch.device

    def restore_into(self, folder: Path) -> Restored:
        """Copy the checkpoint to resume from (if any) into ``folder``."""

    def report(self, report: TrialReport, checkpoint_dir: Path | None) -> None:
        """Report one epoch, with the checkpoint folder when this process wrote one."""


@dataclass(frozen=True)
class TuneSession:
    """A trial run by Tune in one process."""

    device: torch.device

    def restore_into(self, folder: Path) -> Restored:
        """Tune's checkpoint of this trial, when it was restored or retried (its newest intact one)."""
        from ray import tune

        return restore_intact(tune.get_checkpoint(), folder)

    def report(self, report: TrialReport, checkpoint_dir: Path | None) -> None:
        """``tune.report`` with the epoch's checkpoint."""
        from ray import tune

        checkpoint = None if checkpoint_dir is None else tune.Checkpoint.from_directory(str(checkpoint_dir))
        tune.report(report.to_metrics(), checkpoint=checkpoint)


@dataclass(frozen=True)
class TrainSession:
    """A worker of a data-parallel trial run by Ray Train: every rank resumes, rank 0 checkpoints."""

    device: torch.device

    def restore_into(self, folder: Path) -> Restored:
        """The Train run's last checkpoint, when the trial was retried or resumed (a damaged one fails the trial)."""
        import ray.train

        restored = ray.train.get_checkpoint()
        if restored is not None:
            restored.to_directory(str(folder))
        return Restored()

    def report(self, report: TrialReport, checkpoint_dir: Path | None) -> None:
        """``ray.train.report``; the TuneReportCallback hands rank 0's report to Tune."""
        import ray.train

        checkpoint = None if checkpoint_dir is None else ray.train.Checkpoint.from_directory(str(checkpoint_dir))
        ray.train.report(report.to_metrics(), checkpoint=checkpoint)


def trial_spec(context: TrialContext, config: dict[str, Any]) -> RunSpec:
    """The run one trial's sampled ``config`` describes (its own ``epochs`` when it names them: a promoted point)."""
    spec = get_space(context.space).apply(context.base, config)
    if POINT_EPOCHS not in config:
        return spec
    return replace(spec, train=replace(spec.train, epochs=int(config[POINT_EPOCHS])))


def epoch_report(metrics: dict[str, float], model: RobustModel, spec: RunSpec, context: TrialContext, val: ImageSet,
                 device: torch.device) -> TrialReport:
    """What a trial reports after an epoch: the epoch's metrics, and the full objective after the last.

    After the last epoch (the scheduled one, or the one early stopping ended on) ``model`` holds the
    run's kept weights, its best epoch's by default, and the objective scores those. Intermediate
    epochs report the cheap per-epoch suite's robust accuracy as the objective (what ASHA compares).
    """
    if metrics.get("last_epoch", float(int(metrics["epoch"]) >= spec.train.epochs)):
        began = time.perf_counter()
        score = score_objective(model, val, context.objective_suite, spec.threat, device)
        return TrialReport.scored_with(metrics, score.metrics, score.masking, time.perf_counter() - began)
    return TrialReport(epoch=metrics, objective=metrics["robust_acc"], objective_natural=metrics["natural_acc"])


def diverged_report(exc: TrainingDiverged) -> TrialReport:
    """The report of a trial whose loss diverged: a NaN objective, which Optuna records as failed."""
    return TrialReport(epoch={"robust_acc": float("nan"), "natural_acc": float("nan")}, diverged=True, error=str(exc))


def refused_report(exc: ValueError) -> TrialReport:
    """The report of a trial whose settings no run accepts: failed before its first epoch, and not retried."""
    return TrialReport(epoch={"epoch": 0.0, "robust_acc": float("nan"), "natural_acc": float("nan")}, error=str(exc))


def train_trial(config: dict[str, Any], context: TrialContext, splits: Splits, session: TrialSession) -> None:
    """The trial's body: train the suggested run, one report (and checkpoint) per epoch, the objective at the end.

    A diverged loss is reported as a NaN objective and the search goes on. In a data-parallel trial
    every rank runs this together (the objective on the last epoch is a collective).
    """
    try:
        spec = trial_spec(context, config)
    except ValueError as exc:  # a retry would fail the same way
        session.report(refused_report(exc), None)
        return
    work = Path(tempfile.mkdtemp(prefix="robustune-trial-"))
    restored = session.restore_into(work)
    initial = warm_weights_of(config, restored_any=any(work.iterdir()))

    def on_epoch(metrics: dict[str, float], checkpoint_dir: Path | None, model: RobustModel) -> None:
        if restored.silent(int(metrics["epoch"])):
            return  # retrained after a damaged checkpoint: Tune holds this epoch's report already
        session.report(epoch_report(metrics, model, spec, context, splits.val, session.device), checkpoint_dir)

    try:
        fit(spec, splits, checkpoint_dir=work, on_epoch=on_epoch, device=session.device, initial=initial)
    except TrainingDiverged as exc:  # in a data-parallel trial, raised on every rank together
        session.report(diverged_report(exc), None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def warm_weights_of(config: dict[str, Any], restored_any: bool) -> dict[str, torch.Tensor] | None:
    """The screen weights a promoted trial starts from (None: from scratch, or resumed from its own checkpoint).

    Weights that cannot be read (a screen checkpoint lost or damaged since) cost the warm start, not the
    trial: it starts from scratch and says so in one line on its log.
    """
    if restored_any or not config.get(POINT_WARM):
        return None
    try:
        return warm_weights(WarmStart.decode(config[POINT_WARM]))
    except CheckpointError as exc:
        print(f"robustune: {exc}; the trial starts from scratch", file=sys.stderr, flush=True)
        return None


def run_trial(config: dict[str, Any], context: TrialContext, splits: Splits) -> None:
    """Ray Tune function trainable of a single-process trial."""
    train_trial(config, context, splits, TuneSession(resolve_device(context.device)))
