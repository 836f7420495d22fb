"""One trial as the search saw it when it ended: outcome, sampled parameters, per-epoch history, last report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tuner.trials.outcome import Outcome, TrialReport, finite

__all__ = ["TrialRecord"]


@dataclass
class TrialRecord:
    """One trial: its outcome, sampled params, per-epoch metrics and its last report's numbers."""

    trial_id: str
    outcome: Outcome
    params: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)  # the last report's metrics (TrialReport.to_metrics)
    checkpoint: Any = None  # ray.tune.Checkpoint of the last epoch (Tune's, or Train's for data-parallel trials)
    error: str | None = None
    study_state: str | None = None  # the Optuna study's state of this trial (COMPLETE, PRUNED, FAIL, RUNNING)
    member: int | None = None  # its place in a fused trial (its checkpoint holds the whole bundle); None: alone

    def __post_init__(self) -> None:
        self.outcome = Outcome(self.outcome)

    @property
    def report(self) -> TrialReport:
        """The last report, typed."""
        return TrialReport.from_metrics(self.final)

    @property
    def objective(self) -> float:
        """Worst-case robust validation accuracy (NaN when the trial never finished its evaluation)."""
        report = self.report
        return report.objective if report.scored else math.nan

    @property
    def natural(self) -> float:
        """Natural validation accuracy beside the objective (NaN when the trial never finished its evaluation)."""
        report = self.report
        return report.objective_natural if report.scored else math.nan

    @property
    def exportable(self) -> bool:
        """Finished, evaluated with the full objective, finite and not flagged as suspect."""
        return self.outcome == Outcome.FINISHED and finite(self.objective) and not self.report.suspect
