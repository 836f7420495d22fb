"""The Tune/Optuna core of a search: one body per trial, the objective, the study, the strategy, the results.

Data flow: the strategy (:mod:`.strategy`) builds Optuna's searcher over the space and Tune's
scheduler; Tune runs :func:`.trial.run_trial` (or a data-parallel driver, :mod:`.data_parallel`) per
suggestion, which trains, reports a :class:`.outcome.TrialReport` every epoch and scores the objective
(:mod:`.objective`) after the last; the study (:mod:`.study`) records each trial's true outcome; the
results (:mod:`.results`) collect every trial as a :class:`.record.TrialRecord`, and :mod:`.pareto`
says which one is exported.
"""

from tuner.trials.outcome import Outcome, TrialReport, trial_outcome
from tuner.trials.pareto import ParetoPick, ParetoPoint, best_trial, front_of, pareto_front, pick_from_front
from tuner.trials.record import TrialRecord
from tuner.trials.results import collect_trials, read_records, read_trials, time_spent, write_trials
from tuner.trials.strategy import OBJECTIVES, SAMPLERS, SCHEDULERS, DefineBySpace, ObjectiveMode, Strategy

__all__ = [
    "OBJECTIVES",
    "SAMPLERS",
    "SCHEDULERS",
    "DefineBySpace",
    "ObjectiveMode",
    "Outcome",
    "ParetoPick",
    "ParetoPoint",
    "Strategy",
    "TrialRecord",
    "TrialReport",
    "best_trial",
    "collect_trials",
    "front_of",
    "pareto_front",
    "pick_from_front",
    "read_records",
    "read_trials",
    "time_spent",
    "trial_outcome",
    "write_trials",
]
