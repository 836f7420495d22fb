"""The Ray Tune side of a search: the trainable with its resources, Optuna's searcher, ASHA, the callbacks.

Optuna maximises the ``--objective``'s metrics (robust accuracy, or robust and natural accuracy for a
Pareto search) with the ``--sampler`` (TPE or random); the ``--scheduler`` either stops weak trials
on the per-epoch robust accuracy (ASHA) or runs every trial to its last epoch (FIFO).

Adding a strategy: a function of the search's settings (and its number of trials, or epochs) in
:data:`SAMPLER_FACTORIES` or :data:`SCHEDULER_FACTORIES`, and its name with a line of help in
``tuner.search.config``'s ``SAMPLERS`` or ``SCHEDULERS``::

    def _qmc(cfg: SearchConfig, num_samples: int) -> Any:
        import optuna

        return optuna.samplers.QMCSampler(seed=cfg.seed)

    SAMPLER_FACTORIES["qmc"] = _qmc

A new experiment gets a fresh ``tune.Tuner``; ``--resume`` restores the saved one, but only after
the experiment folder passed its integrity check (``Tuner.restore`` unpickles it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import PRESETS, Preset, get_space
from trainables.attacks import SuiteConfig
from trainables.data import Splits
from trainables.train import RunSpec
from tuner.search.config import OBJECTIVES, SearchConfig, is_uri
from tuner.search.plan import SearchPlan
from tuner.search.resources import DRIVER_MEMORY, TrialResources
from tuner.search.storage import StudyStorage, study_storage
from tuner.search.trial import TrialContext, run_trial

__all__ = ["SAMPLER_FACTORIES", "SCHEDULER_FACTORIES", "DefineBySpace", "build_scheduler", "build_searcher",
           "build_tuner", "check_experiment", "optuna_storage", "tpe_startup_trials"]


@dataclass(frozen=True)
class DefineBySpace:
    """Picklable Optuna define-by-run function for one space under one preset."""

    space: str
    preset: str

    def __call__(self, trial: Any) -> None:
        """Ask ``trial`` for the space's tunables."""
        get_space(self.space).define(trial, PRESETS[self.preset])


def _points(cfg: SearchConfig, preset: Preset) -> list[dict[str, Any]]:
    points = list(get_space(cfg.space).points_to_evaluate(preset))
    if cfg.points:
        try:
            extra = json.loads(Path(cfg.points).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read --points {cfg.points}: {exc}") from None
        if not isinstance(extra, list) or not all(isinstance(p, dict) for p in extra):
            raise ValueError(f"--points {cfg.points} must hold a JSON list of objects")
        points += extra
    return points


def optuna_storage(cfg: SearchConfig) -> StudyStorage | None:
    """Where the study is kept (:mod:`tuner.search.storage`); None: remote storage, no ``--optuna-storage``."""
    return study_storage(cfg.experiment_path, cfg.study_storage, cfg.optuna_storage, remote=is_uri(cfg.storage_path))


def check_experiment(cfg: SearchConfig) -> None:
    """Refuse to resume nothing or an untrusted folder, and to start over an experiment that is already there."""
    from ray import tune

    from tuner.search.integrity import verify

    optuna_storage(cfg)  # refuses SQLite on a network filesystem, or another storage than the study started in
    exists = tune.Tuner.can_restore(cfg.experiment_path)
    if cfg.resume and not exists:
        raise FileNotFoundError(f"nothing to resume at {cfg.experiment_path}")
    if not cfg.resume and exists:
        raise FileExistsError(f"experiment {cfg.experiment_path} exists: add --resume to continue it, "
                              "or pick another --name")
    if cfg.resume and not cfg.trust_experiment and not is_uri(cfg.storage_path):
        verify(Path(cfg.experiment_path))
    if cfg.resume:
        _check_objective(cfg)


def _check_objective(cfg: SearchConfig) -> None:
    """Refuse to resume under another ``--objective``: the study's directions say which one it was started with.

    Without RDB storage (remote storage and no ``--optuna-storage``) there is nothing to read before
    Tune unpickles the searcher, which then keeps its own objective.
    """
    import optuna

    storage = optuna_storage(cfg)
    if storage is None:
        return
    try:
        directions = optuna.load_study(study_name=cfg.experiment_name, storage=storage.open()).directions
    except KeyError:  # the searcher never created its study
        return
    if len(directions) != len(cfg.metrics):
        started = next((name for name, metrics in OBJECTIVES.items() if len(metrics) == len(directions)), "?")
        raise ValueError(f"experiment {cfg.experiment_path} was started with --objective {started}; resume it with "
                         f"--objective {started}, not {cfg.objective}")


def _trainable(cfg: SearchConfig, base: RunSpec, objective: SuiteConfig, splits: Splits,
               layout: TrialResources) -> Any:
    """What Tune runs per trial, with its resources; the data goes into the object store once."""
    import ray
    from ray import tune

    from tuner.search.data_parallel import TRAIN_RUNS, SplitsRef, run_data_parallel_trial

    context = TrialContext(space=cfg.space, base=base, objective_suite=objective)
    if not layout.data_parallel:
        return tune.with_resources(tune.with_parameters(run_trial, context=context, splits=splits),
                                   {"cpu": layout.cpus_per_worker, "gpu": layout.gpus_per_worker})
    driver = tune.with_parameters(run_data_parallel_trial, context=context, data=SplitsRef(ray.put(splits)),
                                  layout=layout, storage_path=f"{cfg.experiment_path}/{TRAIN_RUNS}")
    return tune.with_resources(driver, {"cpu": 0, "memory": DRIVER_MEMORY})  # Train places the workers


def tpe_startup_trials(num_samples: int) -> int:
    """TPE's random start-up trials in a search of ``num_samples``: a third of them, at least 2.

    Optuna's default, 10, is more than the quick preset's whole search (6 trials), which then never
    left random sampling. The known-good ``points_to_evaluate`` count: they are trials of the study.
    """
    return max(2, num_samples // 3)


def _tpe(cfg: SearchConfig, num_samples: int) -> Any:
    import optuna

    # TPE for two objectives too (MOTPE): NSGA-II samples at random for its whole first generation
    # (population_size 50), longer than a quick (6 trials) or paper (20) search.
    # multivariate: one joint Parzen estimator over the space (the mix weights, eps scale and lr act
    # together). Optuna 5 defaults to it for one objective only, but its multi-objective path is the
    # same split (by non-domination rank) feeding the same estimators, and tests/test_pareto_search.py
    # runs it past the start-up trials. Every space asks the same parameters of every trial of a
    # preset, so no parameter falls back to independent sampling. (Optuna 4 warns that it is experimental.)
    return optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=tpe_startup_trials(num_samples),
                                      multivariate=True)


def _random(cfg: SearchConfig, num_samples: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=cfg.seed)


def _asha(cfg: SearchConfig, epochs: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(metric="robust_acc", mode="max", time_attr="training_iteration", max_t=epochs,
                         grace_period=min(cfg.grace_period, epochs), reduction_factor=2)


def _fifo(cfg: SearchConfig, epochs: int) -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


# --sampler -> the Optuna sampler of (settings, trials); --scheduler -> the Tune scheduler of (settings, epochs)
SAMPLER_FACTORIES: dict[str, Callable[[SearchConfig, int], Any]] = {"tpe": _tpe, "random": _random}
SCHEDULER_FACTORIES: dict[str, Callable[[SearchConfig, int], Any]] = {"asha": _asha, "fifo": _fifo}


def build_searcher(cfg: SearchConfig, preset: Preset) -> Any:
    """Optuna's searcher of a new experiment: the objective, or robust and natural accuracy (``--objective pareto``).

    The known-good points of the space (and ``--points``) come first whatever the ``--sampler``.
    """
    from tuner.search.study import HonestOptunaSearch

    storage = optuna_storage(cfg)
    metrics = list(cfg.metrics)  # a list of several: Ray's OptunaSearch makes a multi-objective study
    return HonestOptunaSearch(
        space=DefineBySpace(cfg.space, cfg.preset), metric=metrics if cfg.pareto else metrics[0],
        mode=["max"] * len(metrics) if cfg.pareto else "max",
        points_to_evaluate=_points(cfg, preset) or None,
        sampler=SAMPLER_FACTORIES[cfg.sampler](cfg, cfg.num_samples or preset.num_samples),
        storage=None if storage is None else storage.open(), study_name=cfg.experiment_name,
    )


def build_scheduler(cfg: SearchConfig, epochs: int) -> Any:
    """The ``--scheduler`` of a new experiment whose trials train for ``epochs``."""
    return SCHEDULER_FACTORIES[cfg.scheduler](cfg, epochs)


def build_tuner(cfg: SearchConfig, plan: SearchPlan, splits: Splits, layout: TrialResources,
                max_concurrent: int | None) -> Any:
    """A new ``tune.Tuner`` for the plan, or the restored one for ``--resume``."""
    from ray import tune

    from tuner.search.integrity import IntegrityRecorder
    from tuner.search.progress import LiveProgress

    preset, base = plan.preset, plan.base
    trainable = _trainable(cfg, base, plan.objective_suite, splits, layout)
    if cfg.resume:
        return tune.Tuner.restore(cfg.experiment_path, trainable, resume_unfinished=True, resume_errored=True)
    searcher = build_searcher(cfg, preset)
    scheduler = build_scheduler(cfg, base.train.epochs)
    num_samples = cfg.num_samples or preset.num_samples
    local = not is_uri(cfg.storage_path)
    progress_file = Path(cfg.experiment_path) / "progress.json" if local else None
    if progress_file is not None:
        progress_file.parent.mkdir(parents=True, exist_ok=True)
    callbacks = [LiveProgress(progress_file, num_samples, base.train.epochs, params=get_space(cfg.space).leaderboard,
                              space=f"{cfg.space} · {preset.name}", view="live" if cfg.live else "plain")]
    if local:
        callbacks.append(IntegrityRecorder(cfg.experiment_path))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=max_concurrent,
                                    reuse_actors=not layout.data_parallel),  # Train's workers are not reusable
        run_config=tune.RunConfig(
            name=cfg.experiment_name, storage_path=cfg.experiment_path.rsplit("/", 1)[0], verbose=0,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=2),
            # one checkpoint per trial (it holds the best epoch's weights too); Tune then saves the
            # experiment's state with every checkpoint, so a killed driver's --resume finds a trial
            # that had reported its last epoch at that epoch, and does not train it again
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
