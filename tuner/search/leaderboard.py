"""The search's leaderboard: the best trials by objective as a rich table."""

from __future__ import annotations

import math
from typing import Any

from tuner.search.results import TrialRecord

__all__ = ["leaderboard"]


def leaderboard(records: list[TrialRecord], params: tuple[str, ...] = (), top: int = 10) -> Any:
    """A rich table of the best trials by objective (NaN last)."""
    from rich.table import Table

    def key(r: TrialRecord) -> tuple[bool, float]:
        return (math.isfinite(r.objective), r.objective if math.isfinite(r.objective) else -1.0)

    table = Table(title="leaderboard (validation, worst case over the objective suite)")
    for column in ("#", "trial", "outcome", "robust", "natural", "epochs", *params):
        table.add_column(column, justify="right" if column not in ("trial", "outcome") else "left")
    for rank, r in enumerate(sorted(records, key=key, reverse=True)[:top], start=1):
        natural = r.final.get("final/natural_acc", r.final.get("natural_acc"))
        outcome = r.outcome + (" (suspect)" if r.final.get("suspect") else "")
        cells = [str(rank), r.trial_id, outcome,
                 "-" if not math.isfinite(r.objective) else f"{100 * r.objective:.2f}%",
                 "-" if natural is None else f"{100 * natural:.2f}%", str(len(r.history))]
        for p in params:
            v = r.params.get(p)
            cells.append("-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v))
        table.add_row(*cells)
    return table
