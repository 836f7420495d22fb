"""``--time-budget``: a screened job's minutes, screen to export; the screen tries as many configurations as fit.

A fixed screen overran the quick main job's 15 minutes on every machine measured (6 configurations
x 3 epochs, then 2 x 15, then the export: 28 min on a 2-core CPU without native bf16), and would
leave a GPU idle for most of them. So the screen's ``--screen N`` is a ceiling and the job's own
ETA (:mod:`tuner.console.eta`, measured from its first epochs: the trials still running, the
promote rung after the screen, the export's scoring) decides how many of the N fit: each time a
slot frees, the screen starts another configuration only while the ETA with it still ends within
the budget. It always starts one more than the promote rung trains (else there is nothing to
choose), so a machine too slow for the budget screens that many and says so.

The promote rung then trains for what the budget leaves (:func:`promote_epochs`): the screen
reserved it the preset's epochs, but the screen's last configuration rarely ends where the budget
does, the ETA's estimates were made before it, and a machine too slow for the least screen has
nothing left for the full schedule. So once the screen is over its measured paces size the rung:
the most epochs, up to twice the preset's, that end the job within the budget, never fewer than
one more than the screen's. A fast machine trains its finalists longer (bench_search: the first
starting point trained 24 epochs was 5 robust points above 15 at eps 0.2), a slow one shorter,
and both end on time.

:class:`BudgetGate` wraps the search's Tune searcher (Optuna's, or the bundles') and ends its
suggestions (``Searcher.FINISHED``) once the budget holds no more; the trials already running
finish. The budget counts from the start of the command: ``--resume`` gives the rest of a stopped
screen a new one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ray.tune.search import Searcher

from tuner.console.callback import LiveProgress
from tuner.console.progress import SearchProgress, TrialView
from tuner.trials.outcome import trial_units

__all__ = ["PACE_SPREAD", "BudgetGate", "PromoteEpochs", "promote_epochs"]


# A rung epoch's seconds over the same configuration's screened steady pace, 16 finalists of 8 unloaded
# runs (2026-12-04): 0.97-1.15, mean 1.05. A finalist sized at its own pace ends after the slowest one
# (sized as before) when its pace was measured low: from a fresh clone at f7c79d0, 30 epochs at a screened
# 13.3 s ran at 14.2 s and ended 84 s after the slowest. Sizing the faster ones at the top of the spread
# keeps the rung as long as its slowest finalist's schedule.
PACE_SPREAD = 1.15


@dataclass(frozen=True)
class PromoteEpochs:
    """The promote rung's epochs, and the seconds per epoch and seconds left they were sized from (None: unsized)."""

    epochs: int  # the rung's schedule: what its slowest configuration fits (and every one trains, fused or queued)
    epoch_s: float | None = None  # the rung's seconds per epoch (its slowest configuration, side by side)
    left_s: float | None = None  # the budget's seconds left for training, after the export and the objectives
    each: tuple[int, ...] = ()  # each promoted trial's own epochs at its own pace on its own slot (empty: ``epochs``)


def promote_epochs(progress: SearchProgress | None, promoted: Sequence[str], epochs: int, floor: int,
                   now: float | None = None, speedup: float = 1.0) -> PromoteEpochs:
    """The promote rung's epochs under the screen's budget: the most of ``floor`` .. 2 x ``epochs`` that end in time.

    ``promoted``: the screened trials it trains; each epoch goes at the slowest one's screened pace
    after its first epoch (the first carries the trial's start-up, paid once more: a 3-epoch screen
    would otherwise price all 15 epochs at a third of it), the rung's trials side by side as the
    screen ran them; the slowest screened trial's pace when none of them was timed. After the
    training come each trial's objective and the export's scoring, as the ETA counts them. Without
    a budget, or before any epoch was timed: ``epochs``.

    When every promoted trial was timed and each has a slot of its own, each also gets the epochs
    its own pace fits in the same minutes (:attr:`PromoteEpochs.each`): sized by the slowest alone,
    a finalist twice as fast ended half-way and left its slot idle (bench_search, eps 0.1: the
    starting point trained 10 epochs and waited 2.3 minutes for a 36-s finalist). The others are
    sized at :data:`PACE_SPREAD` times their screened pace, so that they end before the slowest
    even when their pace was measured low: the rung lasts as long as its last finalist.

    ``speedup``: how much faster than screened the rung's trials are expected to train (a trial given
    the slots of those not promoted, :func:`tuner.search.screening.widened`).
    """
    if progress is None or progress.budget_s is None:
        return PromoteEpochs(epochs)
    measured = progress.measured()
    timed = [t for t in progress.trials.values() if t.timed]
    own = [progress.trials[t] for t in promoted if t in progress.trials and progress.trials[t].timed]
    timed = own or timed
    if not timed or measured.epoch_s is None:
        return PromoteEpochs(epochs)
    count, plan = max(len(promoted), 1), progress.eta_plan
    objective = 0.0 if measured.eval_alone_s is None else plan.objective_ratio * measured.eval_alone_s
    left = progress.budget_s - progress.clock(now or time.time()) - (progress.export_s() or 0.0) \
        - count * objective - plan.fixed_s

    def fits(view: TrialView, share: float) -> tuple[int, float, float]:
        pace, start_up = view.steady_s or 0.0, max(view.first_s - (view.steady_s or 0.0), 0.0)
        epoch_s, room = pace * share, left - start_up
        most = math.floor(room / epoch_s) if room > 0 and epoch_s > 0 else 0
        return max(floor, min(2 * epochs, most)), epoch_s, room

    slowest = max(timed, key=lambda t: t.steady_s or 0.0)
    sized, epoch_s, room = fits(slowest, max(count / max(measured.slots, 1), 1.0) / speedup)
    apart = len(own) == len(promoted) and len(promoted) <= measured.slots
    each = tuple(sized if view is slowest else max(sized, fits(view, PACE_SPREAD)[0]) for view in own) if apart else ()
    return PromoteEpochs(sized, epoch_s, room, each if len(set(each)) > 1 else ())


class BudgetGate(Searcher):
    """A Tune searcher that asks ``searcher`` for configurations while the run's ETA fits its budget.

    The budget and the ETA are the run's :class:`LiveProgress` callback's (its view and progress.json
    show the same figures), so the gate only asks it whether another trial still fits.
    """

    def __init__(self, searcher: Searcher, live: LiveProgress) -> None:
        self.searcher, self.live = searcher, live
        self.closed_at: int | None = None  # the trials started when the budget held no more
        self.issued: dict[str, list[str]] = {}  # suggested, no view shows them yet: their view ids
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """As the wrapped searcher's."""
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """As the wrapped searcher's (Tune's ConcurrencyLimiter around this gate limits when it cannot)."""
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict | str | None:
        """The wrapped searcher's next configuration, or ``FINISHED`` once the budget holds no more.

        A trial suggested a moment ago is not in the run's view until its process starts: two trials
        ending together would otherwise both see the least screen unreached and start one each.
        """
        progress = self.live.progress()
        self.issued = {t: units for t, units in self.issued.items() if units[0] not in progress.trials}
        unseen = sum(len(units) for units in self.issued.values())
        if self.closed_at is None and progress.affordable(unseen=unseen) < 1:
            self.closed_at = len(progress.trials) + unseen
        if self.closed_at is not None:
            return Searcher.FINISHED
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self.issued[trial_id] = [unit for unit, _, _ in trial_units(trial_id, config, None)]
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """To the wrapped searcher."""
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """To the wrapped searcher (a trial that ended unseen, failed before it started, no longer counts as unseen)."""
        self.issued.pop(trial_id, None)
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
