"""A rich live view of the search, also written to progress.json for scripts and tests."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from trainables.atomic import atomic_write_text

__all__ = ["LiveProgress", "trial_outcome"]


def trial_outcome(status: str, last: dict[str, Any] | None, study_state: str | None = None) -> str:
    """finished / pruned / failed / interrupted / running / pending from Tune's status and the last result.

    Tune reads TERMINATED both for a trial ASHA stopped and for one a Ctrl-C stopped; the study's
    state (``study_state``, when known) tells them apart: PRUNED, or still RUNNING (interrupted).
    """
    last = last or {}
    if status == "ERROR" or last.get("diverged") or (
            last.get("final_evaluated") and not _finite(last.get("objective"))):
        return "failed"
    if status == "TERMINATED":
        if last.get("final_evaluated"):
            return "finished"
        return "interrupted" if study_state in ("RUNNING", "WAITING") else "pruned"
    return {"RUNNING": "running", "PENDING": "pending", "PAUSED": "paused"}.get(status, status.lower())


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


class LiveProgress(Callback):
    """Counts trials by outcome and tracks the best honest objective (finished, not suspect)."""

    def __init__(self, progress_file: Path | None, num_samples: int, live: bool = True) -> None:
        self.progress_file = progress_file
        self.num_samples = num_samples
        self.live = live
        self._view: Any = None
        self._started = time.time()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_view"] = None  # rich's Live holds a terminal; make it anew after a restore
        return state

    def setup(self, **info: Any) -> None:
        """Start the live view when the experiment starts (or resumes)."""
        if self.live and self._view is None:
            from rich.console import Console
            from rich.live import Live

            self._view = Live(console=Console(stderr=True), refresh_per_second=2, transient=False)
            self._view.start()

    def _summary(self, trials: list[Any]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        best: tuple[float, str] | None = None
        for t in trials:
            outcome = trial_outcome(t.status, t.last_result)
            counts[outcome] = counts.get(outcome, 0) + 1
            last = t.last_result or {}
            if outcome == "finished" and not last.get("suspect") and _finite(last.get("objective")):
                if best is None or last["objective"] > best[0]:
                    best = (float(last["objective"]), t.trial_id)
        return {"num_samples": self.num_samples, "counts": counts, "best_objective": best[0] if best else None,
                "best_trial": best[1] if best else None, "elapsed_s": time.time() - self._started}

    def _render(self, summary: dict[str, Any]) -> Any:
        from rich.table import Table

        table = Table(title="robustune search", show_header=True, header_style="bold")
        for column in ("trials", "running", "finished", "pruned", "failed", "best robust acc"):
            table.add_column(column, justify="right")
        c = summary["counts"]
        best = summary["best_objective"]
        table.add_row(f"{sum(c.values())}/{self.num_samples}", str(c.get("running", 0)), str(c.get("finished", 0)),
                      str(c.get("pruned", 0)), str(c.get("failed", 0)),
                      "-" if best is None else f"{100 * best:.2f}% ({summary['best_trial']})")
        return table

    def _update(self, trials: list[Any]) -> None:
        summary = self._summary(trials)
        if self._view is not None:
            self._view.update(self._render(summary))
        if self.progress_file is not None:
            atomic_write_text(self.progress_file, json.dumps(summary))

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        """Refresh after every reported epoch."""
        self._update(trials)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Refresh when a trial ends."""
        self._update(trials)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Refresh when a trial fails."""
        self._update(trials)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Final refresh; stop the live view."""
        self._update(trials)
        if self._view is not None:
            self._view.stop()
            self._view = None
