"""A search end to end: Ray Tune runs the trials, Optuna proposes them, the best honest one is exported.

Data flow: preset + space (tuner.search.plan) -> Optuna define-by-run suggestions -> one Ray Tune
trial each (tuner.search.trial: train, report and checkpoint every epoch, ASHA stops the weak
ones) -> the objective (tuner.search.objective) ranks them -> results.parquet + leaderboard -> the
best honest trial (``--objective pareto``: the pick from the front of robust vs natural accuracy) is
re-evaluated on the test split and exported (tuner.export) into ``exports/<experiment>/``, with
``exports/latest`` pointing at the newest export.

Everything the command line says is checked before Ray starts; the experiment is locked for the
whole search; every trial's resources are checked against the cluster before the first trial.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_spaces import Preset, get_space
from trainables.attacks import SuiteConfig
from trainables.attacks.evaluation import ProgressFn
from trainables.data import Splits, load_splits
from trainables.data.info import DatasetInfo
from trainables.models import build_model
from trainables.train import RunSpec, load_checkpoint
from tuner.search.config import SearchConfig, is_uri
from tuner.search.leaderboard import leaderboard
from tuner.search.lock import experiment_lock
from tuner.search.packing import gpu_share
from tuner.search.plan import SearchPlan, resolve_run
from tuner.search.progress import write_phase
from tuner.search.resources import TrialResources, request_from_autoscaler, wait_until_placeable
from tuner.search.results import (
    ParetoPick,
    TrialRecord,
    best_trial,
    collect_trials,
    pick_from_front,
    time_spent,
    write_trials,
)
from tuner.search.storage import check_shared
from tuner.search.tuner_setup import build_tuner, check_experiment, optuna_storage
from tuner.search.view import Phases

__all__ = ["LATEST", "SearchOutcome", "export_best", "run_search"]

LATEST = "latest"  # exports/latest -> the newest export's folder


@dataclass
class SearchOutcome:
    """What a search left behind."""

    experiment_path: str
    records: list[TrialRecord]
    interrupted: bool
    best: TrialRecord | None  # the exported trial: the best, or a Pareto search's pick
    export_path: Path | None
    front: list[TrialRecord] = field(default_factory=list)  # a Pareto search's front, most robust first


def _point_latest(export_dir: Path, name: str) -> None:
    """Make ``export_dir/latest`` a symlink to ``name``, atomically."""
    link = export_dir / LATEST
    tmp = export_dir / f".{LATEST}-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(name, target_is_directory=True)
    os.replace(tmp, link)


def export_best(record: TrialRecord, splits: Splits, preset: Preset, suite: SuiteConfig, cfg: SearchConfig,
                command: str, progress: ProgressFn | None = None, pick: ParetoPick | None = None) -> Path:
    """Re-evaluate the best trial's final checkpoint with ``suite`` and export it to exports/<experiment>/.

    ``pick``: the Pareto front ``record`` was picked from, recorded with the rule in metrics.json.
    """
    from tuner.export import evaluate_for_export, export_model
    from tuner.provenance import collect_provenance

    with tempfile.TemporaryDirectory() as tmp:
        record.checkpoint.to_directory(tmp)
        state = load_checkpoint(Path(tmp))
    spec = RunSpec.from_dict(state.spec)
    model = build_model(spec.model, splits.info)
    model.load_state_dict(state.model)
    model.eval()
    metrics = evaluate_for_export(model, splits, suite, val_limit=preset.export_val_limit, progress=progress)
    metrics["search"] = {"trial_id": record.trial_id, "objective": record.objective, "natural": record.natural,
                         "experiment": cfg.experiment_path, "objective_mode": cfg.objective,
                         "pick": {"rule": "the trial with the highest objective"} if pick is None else
                         {"rule": pick.rule, "min_natural": pick.min_natural, "met": pick.met},
                         "objective_metrics": {k: v for k, v in record.final.items() if k.startswith("final/")}}
    if pick is not None:
        metrics["search"]["front"] = [{"trial_id": r.trial_id, "objective": r.objective, "natural": r.natural}
                                      for r in pick.front]
    export_dir = Path(cfg.export_dir)
    out = export_model(model, spec, export_dir / cfg.experiment_name, info=splits.info, metrics=metrics,
                       command=command, space=cfg.space, params=record.params,
                       provenance=collect_provenance(spec.train.seed))
    _point_latest(export_dir, cfg.experiment_name)
    return out


def _gpus_per_trial(cfg: SearchConfig, plan: SearchPlan, info: DatasetInfo, phases: Phases) -> float:
    """``--gpus-per-trial`` as a number: as given, or sized by a memory probe for auto (also when unset)."""
    import ray

    if cfg.gpus_per_trial not in (None, "auto"):
        return cfg.fixed_gpus_per_trial
    space = get_space(cfg.space)
    specs = [plan.base, *(space.apply(plan.base, p) for p in space.points_to_evaluate(plan.preset))]
    share = gpu_share(specs, info, [plan.base.suite, plan.objective_suite, plan.export_suite],
                      has_gpu=ray.cluster_resources().get("GPU", 0) > 0, fallback=plan.preset.gpus_per_trial)
    if share.fraction or cfg.gpus_per_trial == "auto":
        phases.say(share.reason)
    return share.fraction


def _layout(cfg: SearchConfig, plan: SearchPlan, info: DatasetInfo, phases: Phases
            ) -> tuple[TrialResources, int | None]:
    """Each trial's workers and resources, checked against the cluster, and the trials to run at once."""
    import ray

    gpus = _gpus_per_trial(cfg, plan, info, phases)
    layout = TrialResources.resolve(cfg.cpus_per_trial, gpus, cfg.workers_per_trial)
    joined = cfg.address != ""
    if joined:  # nodes on other hosts must see the experiment folder to checkpoint into it
        check_shared(cfg.experiment_path, is_uri(cfg.storage_path), ray.nodes())
    wait_s = cfg.resource_wait_s if cfg.resource_wait_s is not None else (600.0 if joined else 0.0)
    wait_until_placeable(layout, ray.nodes, timeout_s=wait_s, request=request_from_autoscaler if joined else None,
                         notify=phases.say)
    max_concurrent = cfg.max_concurrent
    if layout.data_parallel:  # Tune cannot see Train's workers: never start more trials than the cluster holds
        fits = layout.concurrency(ray.cluster_resources())
        max_concurrent = min(max_concurrent or fits, fits)
    return layout, max_concurrent


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


@contextmanager
def _quiet(cfg: SearchConfig) -> Iterator[Path | None]:
    """Keep Ray's, Tune's and Optuna's own output off the terminal (``--verbose`` keeps it); yields the log file.

    The log's handler goes on the "optuna" logger now and on Ray's loggers once Ray is up
    (:func:`_route_ray_logs`); it is taken off every logger and closed when the search ends.
    """
    import optuna

    if cfg.verbose:
        yield None
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's banner and tables; read when the run starts
    optuna.logging.disable_default_handler()
    if is_uri(cfg.storage_path):
        yield None
        return
    log = Path(cfg.experiment_path) / "search.log"
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("optuna").addHandler(handler)
    try:
        yield log
    finally:
        for name in _LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        handler.close()


_LOGGERS = ("optuna", "ray", "ray.tune", "ray.train")


class _NotTune(logging.Filter):
    """Keeps Tune's controller records (a trial's traceback when it fails or its node dies) off the terminal.

    The search says the same in one line per trial event; the traceback stays in ``search.log``.
    Tune's other errors (saving the experiment's state, syncing it) still reach the terminal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "ray.tune.execution.tune_controller"


def _route_ray_logs(log: Path | None) -> None:
    """Ray's Python loggers at INFO into ``log``, its terminal handlers at ERROR (after ``ray.init`` set them up)."""
    if log is None:
        return
    handler = next(h for h in logging.getLogger("optuna").handlers if isinstance(h, logging.FileHandler)
                   and Path(h.baseFilename) == log.resolve())
    for name in _LOGGERS[1:]:
        logger = logging.getLogger(name)
        for existing in logger.handlers:
            if existing is handler:
                continue
            existing.setLevel(max(existing.level, logging.ERROR))
            if not any(isinstance(f, _NotTune) for f in existing.filters):
                existing.addFilter(_NotTune())
        logger.setLevel(logging.INFO)
        if handler not in logger.handlers:
            logger.addHandler(handler)


def _train(cfg: SearchConfig, plan: SearchPlan, splits: Splits, phases: Phases,
           log: Path | None) -> tuple[Any, bool]:
    """Start or join Ray, check the trials fit, run Tune; the result grid and whether Ctrl-C stopped it."""
    import ray

    from tuner.search.cluster import connect_ray

    preset, base = plan.preset, plan.base
    where = "starting a local Ray" if cfg.address == "" else f"joining the Ray cluster at {cfg.address}"
    with phases.phase(where):  # Ray Train's clean-up of stopped trials needs the dashboard (see data_parallel)
        connect_ray(cfg.address, object_store_memory=1 << 30, log_to_driver=cfg.verbose,
                    dashboard=cfg.data_parallel or preset.gpus_per_trial > 1)
        _route_ray_logs(log)
    try:
        layout, max_concurrent = _layout(cfg, plan, splits.info, phases)
        workers = (f", {layout.workers} data-parallel workers per trial "
                   f"({'NCCL' if layout.gpus_per_worker else 'gloo'})") if layout.data_parallel else ""
        phases.say(f"[bold]training[/]: space {cfg.space}, preset {preset.name}, {base.model.name} on {base.data.name} "
                   f"({len(splits.train)} train / {len(splits.val)} val), {base.train.epochs} epochs, eps "
                   f"{base.threat.eps:g}{workers}; experiment {cfg.experiment_path}")
        return _fit_watching_sigint(build_tuner(cfg, plan, splits, layout, max_concurrent))
    finally:
        if cfg.address == "":
            with phases.phase("stopping the local Ray"):
                ray.shutdown()


def _study(cfg: SearchConfig, interrupted: bool) -> dict[str, str]:
    """The study's state per Tune trial; once the search is over, no trial is left RUNNING."""
    from tuner.search.study import settle_study, study_states

    storage = optuna_storage(cfg)
    if storage is None:
        return {}
    opened = storage.open()
    if not interrupted:  # every trial is over: one still RUNNING was asked for by a driver that died
        settle_study(opened, cfg.experiment_name, live=set())
    return study_states(opened, cfg.experiment_name)


def _results_page(cfg: SearchConfig, records: list[TrialRecord], params: tuple[str, ...], command: str,
                  best: TrialRecord | None, export_path: Path | None, pick: ParetoPick | None) -> list[Path]:
    """The results page, in the experiment folder (local storage) and the export folder."""
    import json

    from tuner.report.page import write_results_page

    folders = [] if is_uri(cfg.storage_path) else [Path(cfg.experiment_path)]
    metrics = None
    if export_path is not None:
        folders.append(export_path)
        metrics = json.loads((export_path / "metrics.json").read_text())
    return write_results_page(folders, records, title=f"robustune search {cfg.experiment_name} ({cfg.space})",
                              command=command, params=params, exported=None if best is None else best.trial_id,
                              export_metrics=metrics, export_path=export_path,
                              front=None if pick is None else [r.trial_id for r in pick.front])


def _show_pick(pick: ParetoPick, exported: bool, phases: Phases) -> None:
    """A Pareto search's front, and the trial picked for export (a warning when none of the front met the rule)."""
    points = ", ".join(f"{r.trial_id} {100 * r.objective:.2f}% / {100 * r.natural:.2f}%" for r in pick.front)
    phases.say(f"Pareto front (validation robust / natural, most robust first): {points or 'empty'}")
    if not exported or pick.trial is None:
        return
    if not pick.met:
        top = max(pick.front, key=lambda r: r.natural)
        phases.say(f"[yellow]warning[/]: no Pareto trial has natural accuracy >= {100 * (pick.min_natural or 0):.2f}% "
                   f"(at most {100 * top.natural:.2f}%, {top.trial_id}); exporting the most robust, "
                   f"{pick.trial.trial_id}")
    else:
        phases.say(f"exporting {pick.rule}: trial {pick.trial.trial_id}")


def run_search(cfg: SearchConfig, command: str = "python -m tuner.search") -> SearchOutcome:
    """Run (or resume) one search end to end and export its best honest model."""
    from tuner.search.cluster import check_address

    plan = resolve_run(cfg)  # every setting is checked here, before Ray starts
    check_address(cfg.address)  # a cluster that is not there: one line, before anything else is shown
    local = not is_uri(cfg.storage_path)
    phases = Phases(live=cfg.live, progress_file=Path(cfg.experiment_path) / "progress.json" if local else None)
    with experiment_lock(cfg.experiment_path, command, remote=not local):
        check_experiment(cfg)
        with _quiet(cfg) as log:
            if log is not None:
                phases.say(f"Ray's, Tune's and Optuna's own messages: {log}")
            with phases.phase(f"loading {plan.base.data.name}"):
                splits = load_splits(plan.base.data)
            grid, stopped_by_signal = _train(cfg, plan, splits, phases, log)
            num_samples = cfg.num_samples or plan.preset.num_samples
            finished = grid.num_terminated + grid.num_errors
            interrupted = stopped_by_signal or finished < len(grid) or (not cfg.resume and len(grid) < num_samples)
            with phases.phase("collecting the trials' results"):
                records = collect_trials(grid, filesystem=_filesystem(cfg.storage_path),
                                         study=_study(cfg, interrupted))
                results_path = (Path(cfg.experiment_path) / "results.parquet") if local else \
                    Path(cfg.export_dir) / f"{cfg.experiment_name}-results.parquet"
                write_trials(records, results_path)
            params = tuple(k for k in get_space(cfg.space).leaderboard if any(k in r.params for r in records))
            pick = pick_from_front(records, cfg.pick_min_natural) if cfg.pareto else None
            best = None if interrupted else best_trial(records) if pick is None else pick.trial
            phases.console.print(leaderboard(records, params, front=None if pick is None else
                                             [r.trial_id for r in pick.front],
                                             picked=None if best is None else best.trial_id))
            phases.say(f"all trials: {results_path}")
            spent = time_spent(records)
            phases.say(f"trials' time, summed over them: training {spent['training']:.0f} s "
                       f"({spent['trial_epochs']:.0f} trial-epochs), per-epoch scoring {spent['epoch_scoring']:.0f} s, "
                       f"objective {spent['objective']:.0f} s")
            if pick is not None:
                _show_pick(pick, best is not None, phases)
            export_path = None
            if best is not None:
                with phases.counted(f"scoring trial {best.trial_id} for export (validation and test)") as heard:
                    export_path = export_best(best, splits, plan.preset, plan.export_suite, cfg, command, heard,
                                              pick)
            with phases.phase("writing the results page"):
                pages = _results_page(cfg, records, params, command, best, export_path, pick)
            phases.say(f"results page: {pages[0]}" if pages else "no results page (remote storage, nothing exported)")
            write_phase(phases.progress_file, "interrupted" if interrupted else "done")
    return SearchOutcome(cfg.experiment_path, records, interrupted, best, export_path,
                         [] if pick is None else list(pick.front))
