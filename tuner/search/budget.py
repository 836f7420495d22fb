"""``--time-budget``: a screened job's minutes, screen to export; the screen tries as many configurations as fit.

A fixed screen overran the quick main job's 15 minutes on every machine measured (6 configurations
x 3 epochs, then 2 x 15, then the export: 28 min on a 2-core CPU without native bf16), and would
leave a GPU idle for most of them. So the screen's ``--screen N`` is a ceiling and the job's own
ETA (:mod:`tuner.console.eta`, measured from its first epochs: the trials still running, the
promote rung after the screen, the export's scoring) decides how many of the N fit: each time a
slot frees, the screen starts another configuration only while the ETA with it still ends within
the budget. It always starts one more than the promote rung trains (else there is nothing to
choose), so a machine too slow for the budget screens that many and says so.

:class:`BudgetGate` wraps the search's Tune searcher (Optuna's, or the bundles') and ends its
suggestions (``Searcher.FINISHED``) once the budget holds no more; the trials already running
finish. The budget counts from the start of the command: ``--resume`` gives the rest of a stopped
screen a new one.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from tuner.console.callback import LiveProgress

__all__ = ["BudgetGate"]


class BudgetGate(Searcher):
    """A Tune searcher that asks ``searcher`` for configurations while the run's ETA fits its budget.

    The budget and the ETA are the run's :class:`LiveProgress` callback's (its view and progress.json
    show the same figures), so the gate only asks it whether another trial still fits.
    """

    def __init__(self, searcher: Searcher, live: LiveProgress) -> None:
        self.searcher, self.live = searcher, live
        self.closed_at: int | None = None  # the trials started when the budget held no more
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """As the wrapped searcher's."""
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """As the wrapped searcher's (Tune's ConcurrencyLimiter around this gate limits when it cannot)."""
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict | str | None:
        """The wrapped searcher's next configuration, or ``FINISHED`` once the budget holds no more."""
        if self.closed_at is None and self.live.progress().affordable() < 1:
            self.closed_at = len(self.live.progress().trials)
        if self.closed_at is not None:
            return Searcher.FINISHED
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """To the wrapped searcher."""
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """To the wrapped searcher."""
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def on_pause(self, trial_id: str) -> None:
        """To the wrapped searcher."""
        self.searcher.on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        """To the wrapped searcher."""
        self.searcher.on_unpause(trial_id)

    def get_state(self) -> dict:
        """Nothing: Tune saves the wrapped searcher itself, and a resumed run's budget decides anew."""
        return {}

    def set_state(self, state: dict) -> None:
        """Nothing to restore (see :meth:`get_state`)."""

    def save(self, checkpoint_path: str) -> None:
        """The wrapped searcher's state."""
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        """The wrapped searcher's state."""
        self.searcher.restore(checkpoint_path)
