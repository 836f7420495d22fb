"""The search's strategy: what Optuna maximises, how it proposes trials, and which trials train to the end.

``--objective`` names the report metrics Optuna maximises (robust accuracy, or robust and natural
accuracy for a Pareto search); ``--sampler`` is Optuna's sampler (TPE or random) after the space's
known-good points; ``--scheduler`` either stops weak trials on the per-epoch robust accuracy (ASHA)
or runs every trial to its last epoch (FIFO).

Adding a sampler: a function of the :class:`Strategy` in :data:`SAMPLERS`, with a line of help::

    @SAMPLERS.register("qmc")
    def _qmc(strategy: Strategy) -> optuna.samplers.BaseSampler:
        "Optuna's quasi-Monte Carlo sampler"
        return optuna.samplers.QMCSampler(seed=strategy.seed)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna

from search_spaces import Preset, get_space
from trainables.registry import Registry, check_choice
from tuner.cluster.storage import StudyStorage
from tuner.trials.study import HonestOptunaSearch
from tuner.trials.warm import POINT_WARM, WarmStart

__all__ = ["OBJECTIVES", "POINT_CONSTANTS", "POINT_EPOCHS", "RUNG_METRIC", "SAMPLERS", "SCHEDULERS", "DefineBySpace",
           "ObjectiveMode", "PointEpochs", "Strategy", "build_scheduler", "build_searcher", "describe", "point_epochs",
           "same_value", "sampler_of", "starting_points", "tpe_startup_trials"]

ObjectiveMode = Literal["robust", "pareto"]

# --objective: the metrics of every trial report that Optuna maximises
OBJECTIVES: dict[ObjectiveMode, tuple[str, ...]] = {
    "robust": ("objective",),  # worst-case robust validation accuracy
    "pareto": ("objective", "objective_natural"),  # and natural validation accuracy: a Pareto front
}
RUNG_METRIC = "robust_acc"  # what ASHA compares at its rungs: the per-epoch suite's robust accuracy
POINT_EPOCHS = "epochs"  # a --points entry's own epochs, and the trial configuration's constant that carries them
POINT_CONSTANTS = frozenset({POINT_EPOCHS, POINT_WARM})  # a point's keys that are no parameter of the space


@dataclass(frozen=True)
class Strategy:
    """How one search explores: objective, sampler, scheduler, seed, trials, and the points tried first."""

    objective: ObjectiveMode = "robust"
    sampler: str = "tpe"  # a name in SAMPLERS
    scheduler: str = "asha"  # a name in SCHEDULERS
    seed: int = 0
    num_samples: int = 6
    grace_period: int = 1  # ASHA's first rung, in epochs
    points: tuple[Mapping[str, Any], ...] = field(default=())  # tried after the space's own starting points
    space_points: bool = True  # the space's known-good points first (False: ``points`` alone, as promoted trials)

    def __post_init__(self) -> None:
        check_choice("--objective", self.objective, OBJECTIVES)
        SAMPLERS.get(self.sampler)
        SCHEDULERS.get(self.scheduler)
        if self.num_samples < 1 or self.grace_period < 1:
            raise ValueError(f"need >= 1 trials and a grace period >= 1, got {self.num_samples}, {self.grace_period}")
        point_epochs(self.points)  # a bad point's epochs or warm start fail here, before Ray starts

    @property
    def metrics(self) -> tuple[str, ...]:
        """The report metrics the searcher maximises: one, or two for a Pareto search."""
        return OBJECTIVES[self.objective]

    @property
    def pareto(self) -> bool:
        """Whether the search looks for a front of robust and natural accuracy rather than one best trial."""
        return len(self.metrics) > 1


def tpe_startup_trials(num_samples: int) -> int:
    """TPE's random start-up trials in a search of ``num_samples``: a third of them, at least 2.

    Optuna's default, 10, is more than the quick preset's whole search (6 trials), which then never
    left random sampling. The known-good ``points_to_evaluate`` count: they are trials of the study.
    """
    return max(2, num_samples // 3)


SAMPLERS: Registry[Callable[[Strategy], Any]] = Registry("sampler")
SCHEDULERS: Registry[Callable[[Strategy, int], Any]] = Registry("scheduler")


@SAMPLERS.register("tpe")
def _tpe(strategy: Strategy) -> Any:
    """Optuna's multivariate TPE, random for its first max(2, trials // 3) trials"""
    # TPE for two objectives too (MOTPE): NSGA-II samples at random for its whole first generation
    # (population_size 50), longer than a quick (6 trials) or paper (20) search.
    # multivariate: one joint Parzen estimator over the space (the mix weights, eps scale and lr act
    # together). Optuna 5 defaults to it for one objective only, but its multi-objective path is the
    # same split (by non-domination rank) feeding the same estimators, and tests/test_pareto_search.py
    # runs it past the start-up trials. Every space asks the same parameters of every trial of a
    # preset, so no parameter falls back to independent sampling.
    return optuna.samplers.TPESampler(seed=strategy.seed, n_startup_trials=tpe_startup_trials(strategy.num_samples),
                                      multivariate=True)


@SAMPLERS.register("random")
def _random(strategy: Strategy) -> Any:
    """Optuna's random sampler"""
    return optuna.samplers.RandomSampler(seed=strategy.seed)


@SCHEDULERS.register("asha")
def _asha(strategy: Strategy, epochs: int) -> Any:
    """ASHA stops a trial at epoch 1, 2, 4, ... unless its per-epoch robust accuracy is in the top half reached there
    so far"""
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(metric=RUNG_METRIC, mode="max", time_attr="training_iteration", max_t=epochs,
                         grace_period=min(strategy.grace_period, epochs), reduction_factor=2)


@SCHEDULERS.register("fifo")
def _fifo(strategy: Strategy, epochs: int) -> Any:
    """every trial runs all its epochs"""
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def describe(registry: Registry[Any]) -> str:
    """Each entry's name and help line, for ``--help``."""
    return "; ".join(f"{name}: {' '.join((registry[name].__doc__ or '').split())}" for name in registry.in_order())


@dataclass(frozen=True)
class PointEpochs:
    """A starting point with a run of its own: its own epochs (a ``--points`` entry with an ``epochs`` key), and
    for a promoted configuration the screen weights it starts from (``warm_from``)."""

    params: tuple[tuple[str, Any], ...]
    epochs: int | None = None  # None: the run's
    warm: str = ""  # an encoded WarmStart ('' : from scratch)

    def matches(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` (a trial's suggested values) are this point's."""
        mine = dict(self.params)
        return mine.keys() == params.keys() and all(same_value(mine[k], params[k]) for k in mine)

    def constants(self) -> dict[str, Any]:
        """What a trial of this point carries beside its suggested values."""
        return {**({} if self.epochs is None else {POINT_EPOCHS: self.epochs}),
                **({POINT_WARM: self.warm} if self.warm else {})}


def same_value(a: Any, b: Any) -> bool:
    """Whether two parameter values are the same (floats to a relative 1e-9: a value read back from JSON or a study)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    return bool(a == b)


def point_epochs(points: Sequence[Mapping[str, Any]]) -> tuple[PointEpochs, ...]:
    """The points that name their own epochs or warm start; ValueError (one line) for epochs that are not a whole
    number >= 1, or a warm start that names no checkpoint."""
    out = []
    for point in points:
        if not POINT_CONSTANTS & point.keys():
            continue
        epochs = point.get(POINT_EPOCHS)
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise ValueError(f"a point's {POINT_EPOCHS!r} must be a whole number >= 1, got {epochs!r}")
        warm = point.get(POINT_WARM, "")
        if warm:
            WarmStart.decode(warm)
        out.append(PointEpochs(tuple((k, v) for k, v in point.items() if k not in POINT_CONSTANTS), epochs, warm))
    return tuple(out)


@dataclass(frozen=True)
class DefineBySpace:
    """Picklable Optuna define-by-run function for one space under the search's preset (overrides included).

    A trial whose values are those of a point in ``schedules`` gets that point's epochs and warm start as
    constants of its configuration (``epochs`` and ``warm_from``, which :func:`~tuner.trials.trial.train_trial`
    trains by).
    """

    space: str
    preset: Preset
    schedules: tuple[PointEpochs, ...] = ()

    def __call__(self, trial: Any) -> dict[str, Any] | None:
        """Ask ``trial`` for the space's tunables; its own epochs and warm start when it is a point that names them."""
        get_space(self.space).define(trial, self.preset)
        own = next((p.constants() for p in self.schedules if p.matches(trial.params)), None)
        return own or None


def starting_points(strategy: Strategy, space: str, preset: Preset) -> list[dict[str, Any]]:
    """The configurations tried first: the space's known-good points (unless left out), then ``--points`` (the
    values Optuna fixes: a point's own ``epochs`` and ``warm_from`` go to :class:`DefineBySpace`)."""
    known = get_space(space).points_to_evaluate(preset) if strategy.space_points else []
    return [*known, *({k: v for k, v in p.items() if k not in POINT_CONSTANTS} for p in strategy.points)]


def sampler_of(strategy: Strategy) -> optuna.samplers.BaseSampler:
    """The ``--sampler`` of ``strategy``."""
    return SAMPLERS[strategy.sampler](strategy)


def build_searcher(strategy: Strategy, space: str, preset: Preset, study: StudyStorage | None,
                   study_name: str) -> HonestOptunaSearch:
    """Optuna's searcher of a new experiment: the space's known-good points (and ``strategy.points``) first."""
    points = starting_points(strategy, space, preset)
    metrics = list(strategy.metrics)  # a list of several: Ray's OptunaSearch makes a multi-objective study
    return HonestOptunaSearch(
        space=DefineBySpace(space, preset, point_epochs(strategy.points)),
        metric=metrics if strategy.pareto else metrics[0], mode=["max"] * len(metrics) if strategy.pareto else "max",
        points_to_evaluate=points or None,
        sampler=sampler_of(strategy), storage=None if study is None else study.open(), study_name=study_name,
    )


def build_scheduler(strategy: Strategy, epochs: int) -> Any:
    """The scheduler of a new experiment whose trials train for ``epochs``."""
    return SCHEDULERS[strategy.scheduler](strategy, epochs)
