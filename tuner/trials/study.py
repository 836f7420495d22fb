"""An Optuna study that tells the truth about every trial.

Ray Tune's ``OptunaSearch`` tells Optuna COMPLETE, with the last reported value, for a trial that
ASHA stopped after one epoch (TPE then takes a low-fidelity score for a final one), and leaves a
trial RUNNING when its value is NaN or when the driver died between asking and saving. Here:

- a finished trial is COMPLETE with its objective; one flagged as suspect (gradient masking) FAILs;
- a trial ASHA stopped is PRUNED, with its per-epoch values reported as intermediate values;
- a diverged or crashed trial FAILs;
- each Optuna trial carries its Tune trial id and its outcome as user attributes, so that
  ``results.parquet`` and the study agree, :func:`tell_finished` tells the study of trials that
  finished while the driver was stopping, and :func:`settle_study` marks trials the driver lost.

With a list of metrics (``--objective pareto``) a finished trial is COMPLETE with every value,
finite all; Optuna keeps no intermediate values for several objectives, so a pruned trial is
PRUNED without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from tuner.trials.outcome import Outcome, TrialReport, finite, trial_outcome
from tuner.trials.record import TrialRecord

__all__ = ["LOST", "OUTCOME", "TUNE_ID", "HonestOptunaSearch", "settle_study", "study_states", "tell_end",
           "tell_finished", "verdict"]

TUNE_ID = "tune_trial_id"
OUTCOME = "outcome"
LOST = "lost: the driver ended before this trial was recorded"


class HonestOptunaSearch(OptunaSearch):
    """``OptunaSearch`` with truthful trial states (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_steps: dict[str, Any] = {}  # the last step reported per trial (saved with the searcher)
        self._moved_to: Any = None  # the study storage of this run, when --resume found it elsewhere (use_study)

    def use_study(self, storage: Any) -> None:
        """Ask and tell through ``storage`` (an Optuna storage), also once :meth:`restore` brought back the saved state.

        The saved state names the study file where the experiment was when it began; a moved or
        copied experiment resumes with its own copy of the file, and never writes to the original.
        """
        self._moved_to = storage

    def restore(self, checkpoint_path: str) -> None:
        """The saved state, its study (and the trials asked of it) reopened in :meth:`use_study`'s storage."""
        moved_to = self._moved_to
        super().restore(checkpoint_path)
        self._moved_to = moved_to
        if moved_to is None or self._ot_study is None:
            return
        self._storage = moved_to
        self._ot_study = optuna.load_study(study_name=self._ot_study.study_name, storage=moved_to,
                                           sampler=self._ot_study.sampler, pruner=self._ot_study.pruner)
        self._ot_trials = {tid: optuna.Trial(self._ot_study, t._trial_id) for tid, t in self._ot_trials.items()}

    def suggest(self, trial_id: str) -> dict | None:
        """The suggestion, its Optuna trial tagged with the Tune trial id."""
        params = super().suggest(trial_id)
        if params is not None and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr(TUNE_ID, trial_id)
        return params

    @property
    def _multi(self) -> bool:
        return isinstance(self.metric, list)

    def _told_before(self, trial_id: str) -> bool:
        """Whether the study already holds the trial as finished, and then it counts as completed here too.

        A driver killed after telling the study (durable) but before Tune saved this searcher's state
        comes back with the trial unfinished in that state; telling the study again would fail.
        """
        ot_trial = self._ot_trials[trial_id]
        if not ot_trial.storage.get_trial(ot_trial._trial_id).state.is_finished():
            return False
        self._completed_trials.add(trial_id)
        return True

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Report each epoch's finite objective as an intermediate value (one objective only)."""
        if self._multi or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if self._told_before(trial_id):
            return
        if finite(result.get(self.metric)):
            super().on_trial_result(trial_id, result)
            self._last_steps[trial_id] = result.get("training_iteration")

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna COMPLETE, PRUNED or FAIL by the trial's robustune outcome."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials or self._told_before(trial_id):
            return
        ot_trial = self._ot_trials[trial_id]
        report = TrialReport.from_metrics(result)
        metrics = self.metric if self._multi else [self.metric]
        outcome, state, told = verdict(trial_outcome("ERROR" if error else "TERMINATED", report), report,
                                       [(result or {}).get(m) for m in metrics])
        if outcome == Outcome.PRUNED:  # Tune passes the result ASHA stopped on to no on_trial_result: report it
            step, value = (result or {}).get("training_iteration"), (result or {}).get(metrics[0])
            if not self._multi and finite(value) and step is not None and self._last_steps.get(trial_id) != step:
                ot_trial.report(float(value), int(step))
        tell_end(self._ot_study, ot_trial, outcome, state, told)
        self._completed_trials.add(trial_id)


def tell_end(study: optuna.Study, trial: optuna.Trial, outcome: Outcome, state: optuna.trial.TrialState,
             values: list[float] | None) -> None:
    """Record a trial's end in ``study``: its outcome word (a user attribute), then its state and values
    (one objective: the value itself; several: the list)."""
    trial.set_user_attr(OUTCOME, str(outcome))
    study.tell(trial, values if values is None or len(values) > 1 else values[0], state=state)


def verdict(outcome: Outcome, report: TrialReport, values: list[Any]
            ) -> tuple[Outcome, optuna.trial.TrialState, list[float] | None]:
    """What the study records of a trial that ended: its outcome word, Optuna state and values (COMPLETE only).

    Finished with finite values and not suspect: COMPLETE; stopped by the scheduler or pruner: PRUNED;
    anything else FAIL, a finished but suspect trial's outcome saying so.
    """
    if outcome == Outcome.FINISHED and all(map(finite, values)) and not report.suspect:
        return outcome, optuna.trial.TrialState.COMPLETE, [float(v) for v in values]
    if outcome == Outcome.PRUNED:
        return outcome, optuna.trial.TrialState.PRUNED, None
    word = Outcome.SUSPECT if outcome == Outcome.FINISHED and report.suspect else Outcome.FAILED
    return word, optuna.trial.TrialState.FAIL, None


def study_states(storage: Any, study_name: str) -> dict[str, str]:
    """Tune trial id -> Optuna state name (COMPLETE, PRUNED, FAIL, RUNNING) of a study (an Optuna storage or URL)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study (yet)
        return {}
    return {str(t.user_attrs[TUNE_ID]): t.state.name for t in study.get_trials(deepcopy=False)
            if TUNE_ID in t.user_attrs}


def settle_study(storage: Any, study_name: str, live: set[str]) -> list[int]:
    """FAIL every RUNNING trial whose Tune trial is not in ``live`` (lost by a driver that died); their numbers."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    lost = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if str(trial.user_attrs.get(TUNE_ID)) in live:
            continue
        optuna.trial.Trial(study, trial._trial_id).set_user_attr(OUTCOME, LOST)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        lost.append(trial.number)
    return lost


def tell_finished(storage: Any, study_name: str, records: Iterable[TrialRecord], metrics: Sequence[str]) -> list[int]:
    """Tell the study the end of every trial Tune saw finish that it still holds RUNNING; their numbers.

    A Ctrl-C (or a driver's death) that comes after a trial's last report but before Tune hands its
    end to the searcher leaves the trial finished in Tune's results and RUNNING in the study, which
    ``--resume`` would then record as lost: its objective, read from the record, goes to the study.
    """
    study = optuna.load_study(study_name=study_name, storage=storage)
    running = {str(t.user_attrs.get(TUNE_ID)): t for t in
               study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    told = []
    for record in records:
        trial = running.get(record.trial_id)
        if trial is None or record.outcome != Outcome.FINISHED:
            continue
        outcome, state, values = verdict(record.outcome, record.report, [record.final.get(m) for m in metrics])
        tell_end(study, optuna.trial.Trial(study, trial._trial_id), outcome, state, values)
        told.append(trial.number)
    return told
