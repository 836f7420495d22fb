"""The Pareto figure's inputs: a search's finished trials as (natural, objective) points, its front and the one to mark.

The front and the default mark follow the search's own rule (:mod:`tuner.trials.pareto`): only
exportable trials shape the front, and the best exportable trial is marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from tuner.trials.outcome import Outcome
from tuner.trials.pareto import ParetoPoint, best_trial, front_of
from tuner.trials.results import read_records

__all__ = ["ParetoInputs", "pareto_inputs", "pareto_points"]


@dataclass(frozen=True)
class ParetoInputs:
    """Finished trials as points, the exportable front's trial ids, and the trial to mark (None: no search given)."""

    points: list[ParetoPoint] = field(default_factory=list)
    front: list[str] = field(default_factory=list)
    marked: str | None = None


def pareto_points(path: Path) -> ParetoInputs:
    """Finished trials of a search's results.parquet as points, its exportable front and its best exportable trial."""
    records = read_records(path)
    finished = [r for r in records if r.outcome == Outcome.FINISHED and math.isfinite(r.natural)
                and math.isfinite(r.objective)]
    best = best_trial(records)
    return ParetoInputs(points=[ParetoPoint(r.trial_id, r.natural, r.objective) for r in finished],
                        front=[r.trial_id for r in front_of(records)], marked=None if best is None else best.trial_id)


def pareto_inputs(results: Path | None, marked: str | None) -> ParetoInputs:
    """The finished trials of ``results`` and the trial to mark, checked before any model is scored."""
    if results is None:
        if marked is not None:
            raise ValueError(f"--export {marked!r} marks a trial on the Pareto figure and needs --results")
        return ParetoInputs()
    if not results.is_file():
        raise FileNotFoundError(f"no results file at {results}")
    found = pareto_points(results)
    if not found.points:
        raise ValueError(f"{results} holds no finished trial with a final natural accuracy and objective")
    if marked is not None and marked not in {p.trial_id for p in found.points}:
        raise ValueError(f"--export trial {marked!r} is not a finished trial in {results}")
    return ParetoInputs(found.points, found.front, marked or found.marked)
