"""Which trial a search exports: the best by objective, or a pick from the front of robust vs natural accuracy.

One rule for every screen: only exportable trials (finished, scored, finite, not suspect) compete;
the best has the highest objective, ties going to the higher natural accuracy; the front holds the
exportable trials no other exportable trial beats on both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tuner.trials.record import TrialRecord

__all__ = ["ParetoPick", "ParetoPoint", "best_trial", "front_of", "pareto_front", "pick_from_front", "ranked_trials"]


@dataclass(frozen=True)
class ParetoPoint:
    """One trial on the natural / robust plane (accuracies in [0, 1])."""

    trial_id: str
    natural: float
    robust: float


def pareto_front(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """The points no other point beats on both natural and robust accuracy, by rising natural accuracy."""
    def beaten(p: ParetoPoint) -> bool:
        return any(q.natural >= p.natural and q.robust >= p.robust and (q.natural, q.robust) != (p.natural, p.robust)
                   for q in points)

    return sorted((p for p in points if not beaten(p)), key=lambda p: (p.natural, -p.robust))


def ranked_trials(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The exportable trials, highest objective first (ties: higher natural accuracy, then ``records``' order)."""
    candidates = [r for r in records if r.exportable]
    return sorted(candidates, key=lambda r: (r.objective, r.natural if math.isfinite(r.natural) else 0.0),
                  reverse=True)


def best_trial(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The exportable trial with the highest objective (ties: higher natural accuracy)."""
    ranked = ranked_trials(records)
    return ranked[0] if ranked else None


def front_of(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The exportable trials no other exportable trial beats on both objective and natural accuracy, most robust first.

    Trials at the same point are all on the front (in ``records``' order); a trial without a finite
    natural accuracy is left out. Suspect, pruned and failed trials never shape the front.
    """
    candidates = {r.trial_id: r for r in records if r.exportable and math.isfinite(r.natural)}
    points = [ParetoPoint(r.trial_id, r.natural, r.objective) for r in candidates.values()]
    return [candidates[p.trial_id] for p in pareto_front(points)]  # by rising natural: falling objective


@dataclass(frozen=True)
class ParetoPick:
    """A Pareto search's front (most robust first), the trial picked from it, and the pick rule."""

    front: tuple[TrialRecord, ...]
    trial: TrialRecord | None
    min_natural: float | None = None

    @property
    def met(self) -> bool:
        """Whether the picked trial meets the rule (False when none did and the pick fell back)."""
        return self.trial is not None and (self.min_natural is None or self.trial.natural >= self.min_natural)

    @property
    def rule(self) -> str:
        """The pick rule in words."""
        floor = "" if self.min_natural is None else f" with natural accuracy >= {self.min_natural:g}"
        return f"the most robust trial of the Pareto front{floor}"


def pick_from_front(records: Sequence[TrialRecord], min_natural: float | None = None) -> ParetoPick:
    """The most robust front trial whose natural accuracy is >= ``min_natural`` (None: the most robust).

    That is the most robust of all exportable trials meeting the floor (any of them is matched or
    beaten by a front trial). When no front trial meets it, the pick falls back on the most robust
    one, with ``met`` False for the caller to say so: a search is not thrown away for a floor set
    before its results were known.
    """
    if min_natural is not None and not (math.isfinite(min_natural) and 0 <= min_natural <= 1):
        raise ValueError(f"min_natural must be an accuracy in [0, 1], got {min_natural}")
    front = front_of(records)
    qualified = [r for r in front if min_natural is None or r.natural >= min_natural]
    return ParetoPick(tuple(front), (qualified or front or [None])[0], min_natural)
