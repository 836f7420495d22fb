"""The search's leaderboard: the best trials by objective as a rich table, a Pareto search's front marked."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from tuner.trials.record import TrialRecord

__all__ = ["leaderboard"]


def leaderboard(records: list[TrialRecord], params: tuple[str, ...] = (), top: int = 10,
                front: Collection[str] | None = None, picked: str | None = None) -> Any:
    """A rich table of the best trials by objective (NaN last).

    ``front``: the trial ids of a Pareto search's front, each shown (even below the top) and marked
    in a ``Pareto`` column. ``picked``: the trial to export, marked beside its outcome. Trial ids are
    never cut: narrow terminals wrap the parameters instead.
    """
    from rich.table import Table

    def key(r: TrialRecord) -> tuple[bool, float]:
        return (math.isfinite(r.objective), r.objective if math.isfinite(r.objective) else -1.0)

    table = Table(title="leaderboard (validation, worst case over the objective suite)")
    pareto = () if front is None else ("Pareto",)
    for column in ("#", "trial", "outcome", "robust", "natural", "epochs", *pareto, *params):
        table.add_column(column, justify="left" if column in ("trial", "outcome", "Pareto") else "right",
                         no_wrap=column in ("#", "trial", "robust", "natural", "epochs"),
                         min_width=9 if column == "outcome" else None)
    on_front = set(front or ())
    for rank, r in enumerate(sorted(records, key=key, reverse=True), start=1):
        if rank > top and r.trial_id not in on_front:
            continue
        report = r.report
        natural = report.natural
        outcome = r.outcome + (" (suspect)" if report.suspect else "") + (", exported" if r.trial_id == picked else "")
        cells = [str(rank), r.trial_id, outcome,
                 "-" if not math.isfinite(r.objective) else f"{100 * r.objective:.2f}%",
                 "-" if natural is None else f"{100 * natural:.2f}%", str(len(r.history))]
        if front is not None:
            cells.append("front" if r.trial_id in on_front else "")
        for p in params:
            v = r.params.get(p)
            cells.append("-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v))
        table.add_row(*cells)
    if front is not None:
        table.caption = (f"Pareto front: {len(front)} exportable trial(s) no other beats on both robust and natural "
                         "accuracy")
    return table
