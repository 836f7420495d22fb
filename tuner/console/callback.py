"""The Tune callback that feeds a search's progress from Tune's events to a view and to progress.json."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from tuner.console.eta import EtaPlan, TimeBudget
from tuner.console.progress import SearchProgress, TrialView, write_progress
from tuner.console.view import TrialEvent, TrialEventView, ViewKind, make_view
from tuner.trials.outcome import Outcome, TrialReport, finite, trial_outcome, trial_units
from tuner.trials.strategy import POINT_EPOCHS

__all__ = ["LiveProgress"]


def _one_line(text: Any, limit: int = 160) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:limit]


class LiveProgress(Callback):
    """Tune callback: each trial's start, epochs, end and failure go to the view and to progress.json.

    The callback is pickled into the experiment (``tuner.pkl``) before anything happens, so it keeps
    only what it needs to start over: on ``--resume`` it rebuilds the trials from Tune's own state.
    """

    def __init__(self, progress_file: Path | None, num_samples: int, max_epochs: int, params: tuple[str, ...] = (),
                 space: str = "", view: ViewKind = ViewKind.LIVE, started: float | None = None,
                 eta: EtaPlan | None = None, budget: TimeBudget | None = None) -> None:
        self.progress_file, self.started = progress_file, started  # started: the run's clock (None: now)
        self.eta, self.budget = eta or EtaPlan(), budget
        self.num_samples, self.max_epochs, self.params, self.space = num_samples, max_epochs, params, space
        self.view_kind = ViewKind(view)
        self._progress: SearchProgress | None = None
        self._view: TrialEventView | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_progress"] = None
        state["_view"] = None  # a terminal is not pickled; made anew after a restore
        return state

    def resume_at(self, progress_file: Path | None, view: ViewKind, started: float | None = None,
                  eta: EtaPlan | None = None, budget: TimeBudget | None = None) -> None:
        """Write ``progress_file``, show ``view``, stamp lines from ``started``: a resumed search, where it now is
        (a budget counts from ``started`` again)."""
        self.progress_file, self.view_kind, self.started = progress_file, ViewKind(view), started
        self.eta, self.budget = eta or EtaPlan(), budget

    def progress(self) -> SearchProgress:
        """The run as this callback has seen it so far (its ETA, and under a budget the trials that still fit)."""
        if self._progress is None:
            budget = getattr(self, "budget", None)  # None in a callback pickled before budgets were kept
            self._progress = SearchProgress(self.num_samples, self.max_epochs, space=self.space,
                                            run_started=self.started, eta_plan=self.eta,
                                            budget_s=None if budget is None else budget.seconds,
                                            minimum=0 if budget is None else budget.minimum)
        return self._progress

    def setup(self, **info: Any) -> None:
        """Start the view when the experiment starts (or resumes)."""
        if self._view is None:
            self._view = make_view(self.view_kind, self.progress())

    def _units(self, trial: Any, result: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any],
                                                                                  TrialReport | None]]:
        """(view id, parameters, report in ``result``, else its last one) of a trial, or of each member of a bundle."""
        return trial_units(trial.trial_id, getattr(trial, "config", {}), result if result is not None
                           else trial.last_result)

    def _sync(self, unit: str, params: dict[str, Any], report: TrialReport | None) -> TrialView:
        """The view of a trial (or member), brought up to date with its parameters and ``report``."""
        view = self.progress().view(unit)
        if not view.params:
            view.params = {k: params[k] for k in self.params if k in params}
        if isinstance(params.get(POINT_EPOCHS), int):
            view.schedule = params[POINT_EPOCHS]
        if report is None:
            return view
        if report.epoch_number is not None:
            view.epoch = report.epoch_number
        for name, attribute in (("natural_acc", "natural"), ("robust_acc", "robust")):
            value = report.epoch_metric(name)
            if value is not None:
                setattr(view, attribute, value)
        if report.scored and finite(report.objective):
            view.objective = report.objective  # the objective suite's figures, not the epoch's
            view.natural = report.natural
            view.suspect = report.suspect
        return view

    def _emit(self, event: TrialEvent, view: TrialView) -> None:
        if self._view is not None:
            self._view.event(event, view)
        write_progress(self.progress_file, self.progress())

    def _end(self, view: TrialView, outcome: Outcome, reason: str = "") -> None:
        view.outcome, view.reason, view.ended_at = outcome, _one_line(reason), time.time()
        self._emit(TrialEvent.ENDED, view)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial started (or restarted)."""
        self._adopt(other for other in trials if other is not trial)
        for unit, params, report in self._units(trial):
            view = self._sync(unit, params, report)
            if not view.outcome.ended:
                view.outcome = Outcome.RUNNING
                self._emit(TrialEvent.STARTED, view)

    def _adopt(self, trials: Any) -> None:
        """Trials Tune restored on a resume and this view has not seen yet, each as Tune's state says it is."""
        for trial in trials:
            for unit, params, report in self._units(trial):
                if unit not in self.progress().trials:
                    self._sync(unit, params, report).outcome = trial_outcome(trial.status, report)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        """An epoch ended (Tune calls this before it updates the trial's last result)."""
        bundle = "members" in (getattr(trial, "config", {}) or {})
        running = sum(1 for other in trials if getattr(other, "status", "") == "RUNNING")
        for unit, params, report in self._units(trial, result):
            if report is None:
                continue
            took, scoring = report.epoch_metric("epoch_seconds"), report.epoch_metric("eval_seconds")
            if took is not None and scoring is not None and not report.ended:  # a member: its share of the bundle
                self.progress().record_epoch(unit, took, scoring, running)
            view = self._sync(unit, params, report)
            ended = bundle and report.ended
            if ended:  # a member's last report: the bundle goes on without it
                self._end(view, trial_outcome("TERMINATED", report), report.error or "")
            else:
                view.outcome = Outcome.RUNNING
                self._emit(TrialEvent.EPOCH, view)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial finished, or ASHA stopped it, or its loss diverged (a bundle: when its last member ended)."""
        for unit, params, report in self._units(trial):
            view = self._sync(unit, params, report)
            if not view.outcome.ended:
                outcome = trial_outcome("TERMINATED", report)
                self._end(view, outcome, (report.error or "") if report is not None and outcome == Outcome.FAILED
                          else "")

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial raised or lost its worker (its node died) and Tune starts it again from its last checkpoint."""
        for unit, params, report in self._units(trial):
            view = self._sync(unit, params, report)
            if not view.outcome.ended:
                view.outcome = Outcome.RUNNING
                view.reason = _one_line(getattr(trial, "error_msg", None) or _error_of(trial), limit=120)
                self._emit(TrialEvent.RETRYING, view)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial raised (after Tune's retries)."""
        for unit, params, report in self._units(trial):
            view = self._sync(unit, params, report)
            if not view.outcome.ended:
                self._end(view, Outcome.FAILED, getattr(trial, "error_msg", None) or _error_of(trial))

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Training is over (or interrupted): trials still running were interrupted; stop the view."""
        model = self.progress()
        self._adopt(trials)  # a resumed search with nothing left to run started none of them
        for trial in trials:
            for unit, params, report in self._units(trial):
                view = self._sync(unit, params, report)
                if view.outcome in (Outcome.RUNNING, Outcome.PENDING):
                    view.outcome = Outcome.INTERRUPTED if trial.status != "ERROR" else Outcome.FAILED
        model.phase = "training done"
        write_progress(self.progress_file, model)
        if self._view is not None:
            self._view.close()
            self._view = None
        counts = model.counts()
        ended = (Outcome.FINISHED, Outcome.PRUNED, Outcome.FAILED, Outcome.INTERRUPTED)
        print("training done: " + ", ".join(f"{counts[k]} {k}" for k in ended if counts.get(k))
              + f" ({model.epochs_done()} trial-epochs)", file=sys.stderr, flush=True)


def _error_of(trial: Any) -> str:
    path = getattr(trial, "error_file", None) or getattr(getattr(trial, "run_metadata", None), "error_filename", None)
    try:
        return Path(path).read_text() if path else ""
    except OSError:
        return ""
