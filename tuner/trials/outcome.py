"""A trial's words: its outcome, and the report it sends Tune after every epoch, typed.

Tune carries a report as flat metrics (a dict of numbers); :class:`TrialReport` is the one place
that knows their keys, so the searcher, the scheduler, the results, the live view and the study
read typed fields (``report.suspect``), never magic keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from trainables.evaluation import MaskingFlags

__all__ = ["Outcome", "TrialReport", "bundle_metrics", "finite", "member_reports", "member_trial_id", "trial_outcome",
           "trial_units"]


class Outcome(StrEnum):
    """How a trial stands or ended."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"  # trained all its epochs (or stopped early by its patience) and scored the objective
    PRUNED = "pruned"  # the scheduler stopped it
    FAILED = "failed"  # diverged, crashed, or its objective was not finite
    INTERRUPTED = "interrupted"  # Ctrl-C or a dead driver stopped it; --resume continues it
    SUSPECT = "suspect"  # the study's word for a finished trial flagged for gradient masking (never exported)

    @property
    def ended(self) -> bool:
        """Whether the trial will train no more in this run."""
        return self in (Outcome.FINISHED, Outcome.PRUNED, Outcome.FAILED, Outcome.INTERRUPTED, Outcome.SUSPECT)


def finite(value: Any) -> bool:
    """A real, finite number (a bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# the report's own keys beside the epoch's metrics; "final/<metric>" holds the objective suite's metrics
_OBJECTIVE, _NATURAL, _SCORED, _SUSPECT = "objective", "objective_natural", "final_evaluated", "suspect"
_ABOVE, _LARGE_EPS, _MASKING_ACC = "suspect_robust_above_natural", "suspect_large_eps", "final/masking_acc"
_GAP = "suspect_gradient_free_gap"  # the share only a gradient-free attack broke (the masking check's)
_SECONDS, _DIVERGED, _ERROR, _FINAL, _PRUNED = "objective_seconds", "diverged", "error", "final/", "pruned"
_OWN = {_OBJECTIVE, _NATURAL, _SCORED, _SUSPECT, _ABOVE, _LARGE_EPS, _GAP, _SECONDS, _DIVERGED, _ERROR, _PRUNED}
_MEMBER = "member/"  # a bundle's report holds each member's under member/<index>/


@dataclass(frozen=True)
class TrialReport:
    """What a trial tells Tune after an epoch: the epoch's metrics, what the searcher ranks, and the final scores.

    ``objective`` is what ASHA and Optuna compare: the per-epoch suite's robust accuracy, or, after
    the last epoch, the objective suite's worst case (``final`` then holds that suite's metrics and
    ``masking`` its gradient-masking flags).
    """

    epoch: Mapping[str, float] = field(default_factory=dict)  # fit's metrics of the epoch (and Tune's own)
    objective: float = math.nan
    objective_natural: float = math.nan  # natural accuracy beside it (a Pareto search's second objective)
    final: Mapping[str, float] | None = None  # the objective suite's metrics, once scored
    masking: MaskingFlags | None = None  # its gradient-masking checks, once scored
    suspect: bool = False  # flagged for gradient masking (the checks' verdict): reported, never exported
    objective_seconds: float | None = None
    diverged: bool = False
    error: str | None = None  # why the trial failed (diverged, or settings no run accepts): a report with one failed
    pruned: bool = False  # a bundle's member the search stopped (a single trial's scheduler stops it instead)

    @property
    def scored(self) -> bool:
        """Whether the objective suite scored the trial (its last epoch)."""
        return self.final is not None

    @classmethod
    def scored_with(cls, epoch: Mapping[str, float], final: Mapping[str, float], masking: MaskingFlags,
                    seconds: float) -> TrialReport:
        """The last epoch's report: the objective suite's metrics (its worst case the objective) and masking checks."""
        return cls(epoch=epoch, objective=final["robust_acc"], objective_natural=final["natural_acc"], final=final,
                   masking=masking, suspect=masking.suspect, objective_seconds=seconds)

    @property
    def ended(self) -> bool:
        """Whether this report is a bundle member's last: scored, pruned, diverged or refused."""
        return self.scored or self.pruned or self.diverged or self.error is not None

    @property
    def epoch_number(self) -> int | None:
        """The 1-based epoch this report ends (None for a report without one)."""
        value = self.epoch.get("epoch")
        return int(value) if finite(value) else None

    def epoch_metric(self, name: str) -> float | None:
        """A finite metric of the epoch (``natural_acc``, ``robust_acc``, ...), else None."""
        value = self.epoch.get(name)
        return float(value) if finite(value) else None

    @property
    def natural(self) -> float | None:
        """The natural validation accuracy to show: the objective suite's once scored, else the epoch's."""
        if self.final is not None and finite(self.final.get("natural_acc")):
            return float(self.final["natural_acc"])
        return self.epoch_metric("natural_acc")

    def to_metrics(self) -> dict[str, Any]:
        """The flat metrics Tune carries."""
        out: dict[str, Any] = dict(self.epoch)
        if self.final is not None:
            out |= {f"{_FINAL}{k}": v for k, v in self.final.items()}
        out |= {_OBJECTIVE: self.objective}
        if self.masking is not None:
            out |= {_MASKING_ACC: self.masking.large_eps_acc, _SUSPECT: float(self.suspect),
                    _ABOVE: float(self.masking.robust_above_natural), _LARGE_EPS: float(self.masking.large_eps),
                    _GAP: self.masking.gradient_free_gap}
        out |= {_SCORED: float(self.scored), _NATURAL: self.objective_natural}
        if self.masking is None:
            out[_SUSPECT] = float(self.suspect)
        if self.objective_seconds is not None:
            out[_SECONDS] = self.objective_seconds
        out[_DIVERGED] = float(self.diverged)
        if self.error is not None:
            out[_ERROR] = self.error
        if self.pruned:
            out[_PRUNED] = 1.0
        return out

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any] | None) -> TrialReport:
        """The report behind Tune's flat metrics (an empty report for None or {})."""
        m = dict(metrics or {})
        scored = bool(m.get(_SCORED))
        final = {k[len(_FINAL):]: float(v) for k, v in m.items() if k.startswith(_FINAL) and k != _MASKING_ACC
                 and finite(v)} if scored else None
        masking = MaskingFlags(large_eps_acc=float(m[_MASKING_ACC]), robust_above_natural=bool(m.get(_ABOVE)),
                               gradient_free_gap=float(m.get(_GAP, 0.0))) if scored and _MASKING_ACC in m else None
        epoch = {k: v for k, v in m.items() if k not in _OWN and not k.startswith(_FINAL)}
        seconds = m.get(_SECONDS)
        natural = m.get(_NATURAL, (final or {}).get("natural_acc"))  # the same figure, once scored
        return cls(epoch=epoch, objective=_number(m.get(_OBJECTIVE)), objective_natural=_number(natural),
                   final=final, masking=masking, suspect=bool(m.get(_SUSPECT)),
                   objective_seconds=float(seconds) if finite(seconds) else None,
                   diverged=bool(m.get(_DIVERGED)), error=str(m[_ERROR]) if m.get(_ERROR) else None,
                   pruned=bool(m.get(_PRUNED)))


def bundle_metrics(reports: Mapping[int, TrialReport]) -> dict[str, Any]:
    """What a bundle tells Tune after an epoch: each member's report under ``member/<index>/``."""
    return {f"{_MEMBER}{member}/{key}": value for member, report in reports.items()
            for key, value in report.to_metrics().items()}


def member_reports(metrics: Mapping[str, Any] | None) -> dict[int, TrialReport]:
    """The members' reports in a bundle's flat metrics (those with an epoch: a table row holds every column).

    Missing values (None, or NaN in a table row) are left out: a report reads them as absent.
    """
    found: dict[int, dict[str, Any]] = {}
    for key, value in (metrics or {}).items():
        member, _, name = key.removeprefix(_MEMBER).partition("/")
        if key.startswith(_MEMBER) and member.isdigit() and value is not None and value == value:
            found.setdefault(int(member), {})[name] = value
    return {member: TrialReport.from_metrics(values) for member, values in sorted(found.items())
            if finite(values.get("epoch"))}


def trial_units(trial_id: str, config: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None
                ) -> list[tuple[str, dict[str, Any], TrialReport | None]]:
    """(id, parameters, report in ``metrics``) of a Tune trial, or of each member of a bundle (None: none reported)."""
    config = config or {}
    if "members" not in config:
        return [(trial_id, dict(config), TrialReport.from_metrics(metrics))]
    reports = member_reports(metrics)
    return [(member_trial_id(trial_id, m), dict(member["params"]), reports.get(m))
            for m, member in enumerate(config["members"])]


def member_trial_id(tune_trial_id: str, member: int) -> str:
    """The id of a bundle's member: its Tune trial's id and its place in the bundle."""
    return f"{tune_trial_id}.{member}"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def trial_outcome(status: str, report: TrialReport | None, study_state: str | None = None) -> Outcome:
    """The outcome from Tune's status (TERMINATED, ERROR, RUNNING, ...) and the trial's last report.

    Tune reads TERMINATED both for a trial ASHA stopped and for one a Ctrl-C stopped; the study's
    state (``study_state``, when known) tells them apart: PRUNED, or still RUNNING (interrupted).
    """
    report = report or TrialReport()
    if status == "ERROR" or report.diverged or report.error is not None or (report.scored
                                                                          and not finite(report.objective)):
        return Outcome.FAILED
    if report.pruned:
        return Outcome.PRUNED
    if status == "TERMINATED":
        if report.scored:
            return Outcome.FINISHED
        return Outcome.INTERRUPTED if study_state in ("RUNNING", "WAITING") else Outcome.PRUNED
    return {"RUNNING": Outcome.RUNNING, "PENDING": Outcome.PENDING, "PAUSED": Outcome.PAUSED}.get(status,
                                                                                                  Outcome.PENDING)
