"""A search end to end: Ray Tune runs the trials, Optuna proposes them, the best honest one is exported.

Data flow: preset + space (tuner.search.plan) -> Optuna define-by-run suggestions -> one Ray Tune
trial each (tuner.search.trial: train, report and checkpoint every epoch, ASHA stops the weak
ones) -> the objective (tuner.search.objective) ranks them -> results.parquet + leaderboard -> the
best honest trial is re-evaluated on the test split and exported (tuner.export).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import PRESETS, Preset, get_space
from trainables.attacks import SuiteConfig
from trainables.data import Splits, load_splits
from trainables.models import build_model
from trainables.train import RunSpec, load_checkpoint
from tuner.search.config import SearchConfig, is_uri
from tuner.search.leaderboard import leaderboard
from tuner.search.plan import SearchPlan, resolve_run
from tuner.search.resources import DRIVER_MEMORY, TrialResources
from tuner.search.results import TrialRecord, best_trial, collect_trials, write_trials
from tuner.search.trial import TrialContext, run_trial

__all__ = ["DefineBySpace", "SearchOutcome", "check_experiment", "run_search"]


@dataclass(frozen=True)
class DefineBySpace:
    """Picklable Optuna define-by-run function for one space under one preset."""

    space: str
    preset: str

    def __call__(self, trial: Any) -> None:
        """Ask ``trial`` for the space's tunables."""
        get_space(self.space).define(trial, PRESETS[self.preset])


@dataclass
class SearchOutcome:
    """What a search left behind."""

    experiment_path: str
    records: list[TrialRecord]
    interrupted: bool
    best: TrialRecord | None
    export_path: Path | None


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


def _optuna_storage(cfg: SearchConfig) -> str | None:
    if cfg.optuna_storage:
        return cfg.optuna_storage
    if is_uri(cfg.storage_path):
        return None  # no local folder to put SQLite in: the study lives in the searcher's state only
    folder = Path(cfg.experiment_path)
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def _rdb(url: str | None) -> Any:
    import optuna

    return None if url is None else optuna.storages.RDBStorage(url)


def check_experiment(cfg: SearchConfig) -> None:
    """Refuse to resume nothing, and to start over an experiment that is already there."""
    from ray import tune

    exists = tune.Tuner.can_restore(cfg.experiment_path)
    if cfg.resume and not exists:
        raise FileNotFoundError(f"nothing to resume at {cfg.experiment_path}")
    if not cfg.resume and exists:
        raise FileExistsError(f"experiment {cfg.experiment_path} exists: add --resume to continue it, "
                              "or pick another --name")


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


def _build_tuner(cfg: SearchConfig, plan: SearchPlan, splits: Splits, layout: TrialResources,
                 max_concurrent: int | None) -> Any:
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tuner.search.progress import LiveProgress

    preset, base = plan.preset, plan.base
    trainable = _trainable(cfg, base, plan.objective_suite, splits, layout)
    if cfg.resume:
        return tune.Tuner.restore(cfg.experiment_path, trainable, resume_unfinished=True, resume_errored=True)
    searcher = OptunaSearch(
        space=DefineBySpace(cfg.space, cfg.preset), metric="objective", mode="max",
        points_to_evaluate=_points(cfg, preset) or None,
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        storage=_rdb(_optuna_storage(cfg)), study_name=cfg.experiment_name,
    )
    scheduler = ASHAScheduler(metric="robust_acc", mode="max", time_attr="training_iteration",
                              max_t=base.train.epochs, grace_period=min(cfg.grace_period, base.train.epochs),
                              reduction_factor=2)
    num_samples = cfg.num_samples or preset.num_samples
    progress_file = None if is_uri(cfg.storage_path) else Path(cfg.experiment_path) / "progress.json"
    if progress_file is not None:
        progress_file.parent.mkdir(parents=True, exist_ok=True)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=max_concurrent,
                                    reuse_actors=not layout.data_parallel),  # Train's workers are not reusable
        run_config=tune.RunConfig(
            name=cfg.experiment_name, storage_path=cfg.experiment_path.rsplit("/", 1)[0], verbose=0,
            callbacks=[LiveProgress(progress_file, num_samples, live=cfg.live)],
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def export_best(record: TrialRecord, splits: Splits, preset: Preset, suite: SuiteConfig, cfg: SearchConfig,
                command: str) -> Path:
    """Re-evaluate the best trial's final checkpoint with ``suite`` and export it."""
    from tuner.export import evaluate_for_export, export_model
    from tuner.provenance import collect_provenance

    with tempfile.TemporaryDirectory() as tmp:
        record.checkpoint.to_directory(tmp)
        state = load_checkpoint(Path(tmp))
    spec = RunSpec.from_dict(state.spec)
    model = build_model(spec.model, splits.info)
    model.load_state_dict(state.model)
    model.eval()
    metrics = evaluate_for_export(model, splits, suite, val_limit=preset.export_val_limit)
    metrics["search"] = {"trial_id": record.trial_id, "objective": record.objective,
                         "objective_metrics": {k: v for k, v in record.final.items() if k.startswith("final/")}}
    out = Path(cfg.export_dir) / cfg.space
    return export_model(model, spec, out, info=splits.info, metrics=metrics, command=command, space=cfg.space,
                        params=record.params, provenance=collect_provenance(spec.train.seed))


def _data_parallel_concurrency(layout: TrialResources, cfg: SearchConfig) -> int:
    """Trials the cluster holds at once; on a cluster too small for one yet, 1 (its autoscaler may grow it)."""
    import ray

    try:
        return layout.concurrency(ray.cluster_resources())
    except ValueError as exc:
        if cfg.address == "":
            raise
        warnings.warn(f"{exc}; running one trial at a time while the autoscaler adds nodes", stacklevel=2)
        return cfg.max_concurrent or 1


def _filesystem(storage_path: str) -> Any:
    """The pyarrow filesystem of remote storage (s3://, gs://), None for a local folder."""
    if not is_uri(storage_path):
        return None
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(storage_path)[0]


def _fit_watching_sigint(tuner: Any) -> tuple[Any, bool]:
    """``tuner.fit()``, and whether Ctrl-C (SIGINT) stopped it.

    Tune replaces the SIGINT handler for the run and puts the previous one back only when the
    signal arrives; after an interrupt its trials all read TERMINATED (its experiment state, saved
    before, still knows them as unfinished), so the handler is the only reliable witness.
    """
    watching = threading.current_thread() is threading.main_thread() and \
        os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0") == "0"
    before = signal.getsignal(signal.SIGINT)
    try:
        grid = tuner.fit()
    finally:
        after = signal.getsignal(signal.SIGINT)
        if watching:
            signal.signal(signal.SIGINT, before)
    return grid, watching and after is before


def run_search(cfg: SearchConfig, command: str = "python -m tuner.search") -> SearchOutcome:
    """Run (or resume) one search end to end and export its best honest model."""
    import ray
    from rich.console import Console

    from tuner.search.cluster import connect_ray

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    plan = resolve_run(cfg)
    preset, base = plan.preset, plan.base
    check_experiment(cfg)
    splits = load_splits(base.data)
    # Ray Train's clean-up of stopped trials needs the dashboard (see tuner.data_parallel)
    connect_ray(cfg.address, object_store_memory=1 << 30, dashboard=cfg.data_parallel or preset.gpus_per_trial > 1)
    try:
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        gpus = cfg.gpus_per_trial if cfg.gpus_per_trial is not None else (preset.gpus_per_trial if has_gpu else 0.0)
        layout = TrialResources.resolve(cfg.cpus_per_trial, gpus, cfg.workers_per_trial)
        max_concurrent = cfg.max_concurrent
        if layout.data_parallel:
            fits = _data_parallel_concurrency(layout, cfg)
            max_concurrent = min(max_concurrent or fits, fits)
        workers = (f", {layout.workers} data-parallel workers per trial "
                   f"({'NCCL' if layout.gpus_per_worker else 'gloo'})") if layout.data_parallel else ""
        console.print(f"[bold]robustune[/] space {cfg.space}, preset {preset.name}: {base.model.name} on "
                      f"{base.data.name} ({len(splits.train)} train / {len(splits.val)} val), "
                      f"{base.train.epochs} epochs, eps {base.threat.eps:g}{workers}; experiment {cfg.experiment_path}")
        tuner = _build_tuner(cfg, plan, splits, layout, max_concurrent)
        grid, stopped_by_signal = _fit_watching_sigint(tuner)
    finally:
        if cfg.address == "":
            ray.shutdown()
    records = collect_trials(grid, filesystem=_filesystem(cfg.storage_path))
    num_samples = cfg.num_samples or preset.num_samples
    finished = grid.num_terminated + grid.num_errors
    interrupted = stopped_by_signal or finished < len(grid) or (not cfg.resume and len(grid) < num_samples)
    results_path = (Path(cfg.experiment_path) / "results.parquet") if not is_uri(cfg.storage_path) else \
        Path(cfg.export_dir) / f"{cfg.experiment_name}-results.parquet"
    write_trials(records, results_path)
    params = tuple(k for k in get_space(cfg.space).leaderboard if any(k in r.params for r in records))
    console.print(leaderboard(records, params))
    console.print(f"all trials: {results_path}")
    best = None if interrupted else best_trial(records)
    export_path = export_best(best, splits, preset, plan.export_suite, cfg, command) if best is not None else None
    return SearchOutcome(cfg.experiment_path, records, interrupted, best, export_path)
