"""The Pareto figure's inputs: a search's finished trials as (natural, objective) points, and the one to mark."""

from __future__ import annotations

import math
from pathlib import Path

from tuner.search.results import read_trials

from .figures import ParetoPoint

__all__ = ["pareto_inputs", "pareto_points"]


def pareto_points(path: Path) -> tuple[list[ParetoPoint], str | None]:
    """Finished trials of a search's results.parquet as (natural, objective) points, and the best exportable."""
    records = read_trials(path).to_pylist()
    natural_key = "final_metric/final/natural_acc"
    points = []
    best: tuple[float, float, str] | None = None
    for rec in records:
        natural, robust = rec.get(natural_key), rec.get("objective")
        if rec.get("outcome") != "finished" or natural is None or robust is None:
            continue
        if not (math.isfinite(natural) and math.isfinite(robust)):
            continue
        point = ParetoPoint(str(rec["trial_id"]), float(natural), float(robust))
        points.append(point)
        if rec.get("exportable") and (best is None or (point.robust, point.natural) > best[:2]):
            best = (point.robust, point.natural, point.trial_id)
    return points, None if best is None else best[2]


def pareto_inputs(results: Path | None, marked: str | None) -> tuple[list[ParetoPoint], str | None]:
    """The finished trials of ``results`` and the trial to mark, checked before any model is scored."""
    if results is None:
        if marked is not None:
            raise ValueError(f"--export {marked!r} marks a trial on the Pareto figure and needs --results")
        return [], None
    if not results.is_file():
        raise FileNotFoundError(f"no results file at {results}")
    points, best = pareto_points(results)
    if not points:
        raise ValueError(f"{results} holds no finished trial with a final natural accuracy and objective")
    if marked is not None and marked not in {p.trial_id for p in points}:
        raise ValueError(f"--export trial {marked!r} is not a finished trial in {results}")
    return points, marked or best
