"""Ray Tune's run of a search: the trainable with its resources, and a new or restored ``tune.Tuner``.

A new experiment gets a fresh ``tune.Tuner`` with the strategy's searcher and scheduler and the
callbacks the caller passes in (the live view, the integrity record); ``--resume`` restores the
saved one (its searcher, scheduler and callbacks come back with it), but only after the experiment
folder passed its integrity check (``Tuner.restore`` unpickles it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune

from trainables.data import Splits
from tuner.cluster.integrity import verify
from tuner.cluster.resources import DRIVER_MEMORY, TrialResources
from tuner.cluster.storage import StudyStorage, study_name
from tuner.experiment import ExperimentFolder
from tuner.trials.data_parallel import SplitsRef, run_data_parallel_trial
from tuner.trials.strategy import OBJECTIVES, Strategy
from tuner.trials.trial import TrialContext, run_trial

__all__ = ["build_tuner", "check_experiment", "make_trainable", "restored_parts"]


def check_experiment(folder: ExperimentFolder, strategy: Strategy, study: StudyStorage | None, *, resume: bool,
                     trust: bool) -> None:
    """Refuse to resume nothing, an untrusted folder or another objective, and to start over an existing experiment."""
    exists = tune.Tuner.can_restore(folder.path)
    if resume and not exists:
        raise FileNotFoundError(f"nothing to resume at {folder.path}")
    if not resume and exists:
        raise FileExistsError(f"experiment {folder.path} exists: add --resume to continue it, or pick another --name")
    if resume and not trust and not folder.remote:
        verify(Path(folder.path))
    if resume:
        _check_objective(folder, strategy, study)


def _check_objective(folder: ExperimentFolder, strategy: Strategy, study: StudyStorage | None) -> None:
    """Refuse to resume under another ``--objective``: the study's directions say which one it was started with.

    Without RDB storage (remote storage and no ``--optuna-storage``) there is nothing to read before
    Tune unpickles the searcher, which then keeps its own objective.
    """
    if study is None:
        return
    try:
        directions = optuna.load_study(study_name=study_name(study, folder.name), storage=study.open()).directions
    except KeyError:  # the searcher never created its study
        return
    if len(directions) != len(strategy.metrics):
        started = next((name for name, metrics in OBJECTIVES.items() if len(metrics) == len(directions)), "?")
        raise ValueError(f"experiment {folder.path} was started with --objective {started}; resume it with "
                         f"--objective {started}, not {strategy.objective}")


def make_trainable(context: TrialContext, splits: Splits, layout: TrialResources, folder: ExperimentFolder) -> Any:
    """What Tune runs per trial, with its resources; a data-parallel trial's data goes into the object store once."""
    if not layout.data_parallel:
        return tune.with_resources(tune.with_parameters(run_trial, context=context, splits=splits),
                                   {"cpu": layout.cpus_per_worker, "gpu": layout.gpus_per_worker})
    driver = tune.with_parameters(run_data_parallel_trial, context=context, data=SplitsRef(ray.put(splits)),
                                  layout=layout, storage_path=folder.train_runs)
    return tune.with_resources(driver, {"cpu": 0, "memory": DRIVER_MEMORY})  # Train places the workers


def restored_parts(tuner: Any) -> tuple[Any, list[Any]]:
    """The searcher and the callbacks a restored ``tune.Tuner`` will run with, as ``tuner.pkl`` kept them.

    They hold the paths of where the experiment was when it began (its study file, progress.json,
    the folder the integrity record covers) and the view it began with; Tune has no public way to
    give a restored run new ones, so the caller re-points these objects before ``fit``. Reached
    through Tune's internal tuner: tests/test_tuner.py resumes a copied experiment and fails if a
    Ray release moves them.
    """
    internal = tuner._local_tuner  # noqa: SLF001 - see above
    return internal._tune_config.search_alg, internal._run_config.callbacks  # noqa: SLF001


def build_tuner(trainable: Any, folder: ExperimentFolder, *, resume: bool, searcher: Any, scheduler: Any,
                num_samples: int, callbacks: Sequence[Any], max_concurrent: int | None, reuse_actors: bool) -> Any:
    """A new ``tune.Tuner`` for the search (its searcher and scheduler built by the caller), or the restored one."""
    if resume:
        return tune.Tuner.restore(folder.path, trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=max_concurrent, reuse_actors=reuse_actors),
        run_config=tune.RunConfig(
            name=folder.name, storage_path=folder.parent, verbose=0, callbacks=list(callbacks),
            failure_config=tune.FailureConfig(max_failures=2),
            # two checkpoints per trial (each holds the best epoch's weights too): Tune deletes the
            # oldest when a trial registers a new one, and saves its experiment state only at its
            # loop's next turn; with one kept, a driver killed in between left a state naming a
            # deleted checkpoint, and --resume failed that trial ("does not exist on storage anymore").
            # With two, the state's checkpoint outlives the next one (Tune forces a save after two).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )
