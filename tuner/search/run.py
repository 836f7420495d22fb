"""A search end to end: Ray Tune runs the trials, Optuna proposes them, the best honest one is exported.

Data flow: preset + space (:mod:`tuner.search.plan`) -> Optuna define-by-run suggestions -> one
Ray Tune trial each (:mod:`tuner.trials`: train, report and checkpoint every epoch, ASHA stops the
weak ones, the objective ranks the rest) -> results.parquet + leaderboard (:mod:`tuner.console`) ->
the best honest trial (``--objective pareto``: the pick from the front of robust vs natural
accuracy) is re-evaluated on the test split and exported (:mod:`tuner.export`) into
``exports/<experiment>/``, with ``exports/latest`` pointing at the newest export.

Everything the command line says is checked before Ray starts; the experiment is locked for the
whole search; every trial's resources are checked against the cluster before the first trial.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray import tune
from ray.tune.schedulers import FIFOScheduler

from search_spaces import get_space
from trainables.data import Splits, load_splits
from trainables.evaluation import usable_cpus
from trainables.models import build_model, is_stochastic
from tuner.bundles import BundleSearch, Fusion, bundle_searcher, bundle_trainable, resolve_fusion
from tuner.cluster.connect import check_address, connect_ray, disconnect_ray
from tuner.cluster.disk import DiskFull, DiskWatch, disk_full_in, free_bytes
from tuner.cluster.integrity import IntegrityRecorder
from tuner.cluster.lock import experiment_lock
from tuner.cluster.resources import TrialResources
from tuner.cluster.storage import StudyStorage, check_writable, study_name, study_storage
from tuner.console.callback import LiveProgress
from tuner.console.eta import EtaPlan, ExportWork, TimeBudget, rungs_of
from tuner.console.leaderboard import leaderboard
from tuner.console.progress import DONE, INTERRUPTED, SearchProgress, write_export_progress, write_phase
from tuner.console.view import Phases, ViewKind, plain
from tuner.export import METRICS_FILE, DamagedCheckpoint, ExportError, ExportRequest, export_best
from tuner.report.page import write_results_page
from tuner.report.tracking import MlflowTracking, check_tracking, default_tracking_uri, log_export
from tuner.search.budget import BudgetGate
from tuner.search.config import SearchConfig
from tuner.search.logs import quiet_libraries, route_ray_logs
from tuner.search.placement import place_trials
from tuner.search.plan import SearchPlan, resolve_run
from tuner.trials.pareto import ParetoPick, pick_from_front, ranked_trials
from tuner.trials.record import TrialRecord
from tuner.trials.results import collect_trials, time_spent, write_trials
from tuner.trials.strategy import build_scheduler, build_searcher, sampler_of, starting_points
from tuner.trials.study import HonestOptunaSearch, settle_study, study_states, tell_finished
from tuner.trials.trial import TrialContext
from tuner.trials.tune_run import build_tuner, check_experiment, make_trainable, restored_parts

__all__ = ["SearchOutcome", "run_experiment"]


@dataclass
class SearchOutcome:
    """What a search left behind."""

    experiment_path: str
    records: list[TrialRecord]
    interrupted: bool
    best: TrialRecord | None  # the exported trial: the best, or a Pareto search's pick
    export_path: Path | None
    front: list[TrialRecord] = field(default_factory=list)  # a Pareto search's front, most robust first
    export_metrics: dict[str, Any] | None = None  # the export's metrics.json
    progress: SearchProgress | None = None  # the run as its ETA saw it: trials' paces, scoring, budget


def _study_storage(cfg: SearchConfig) -> StudyStorage | None:
    """Where the study is kept (:mod:`tuner.cluster.storage`); None: remote storage, no ``--optuna-storage``."""
    return study_storage(cfg.folder.path, cfg.study_storage, cfg.optuna_storage, remote=cfg.folder.remote)


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


def _fit_watching_disk(tuner: Any, cfg: SearchConfig) -> tuple[Any, bool]:
    """:func:`_fit_watching_sigint`, stopped in time (and said in one line) when the experiment's disk fills up."""
    if cfg.folder.remote:
        return _fit_watching_sigint(tuner)
    watch = DiskWatch(cfg.folder.path)
    try:
        with watch:
            fitted = _fit_watching_sigint(tuner)
    except BaseException as exc:
        if watch.tripped is not None or disk_full_in(exc):
            raise watch.full() from None
        raise
    if watch.tripped is not None:
        raise watch.full()
    return fitted


def _stochastic(plan: SearchPlan, splits: Splits) -> bool:
    """Whether the search's models are stochastic (attacked with EOT and both gradient ways, predicting by draws)."""
    return is_stochastic(build_model(plan.base.model, splits.info))


def _eta_plan(plan: SearchPlan, splits: Splits, later: tuple[int, int] | None) -> EtaPlan:
    """The ETA's plan: the scheduler's rungs, a later rung's trials, and the export's scoring cost against one
    epoch's per-epoch scoring."""
    preset, strategy, epochs = plan.preset, plan.strategy, plan.base.train.epochs
    asha = strategy.scheduler == "asha" and not strategy.pareto
    stochastic = _stochastic(plan, splits)
    scored = len(splits.val.head(plan.base.train.eval_limit))
    exported = {"validation": len(splits.val.head(preset.export_val_limit)), "test": len(splits.test)}
    export = ExportWork.of(plan.export_suite, plan.threat, stochastic, exported)
    per_epoch = max(preset.epoch_suite.work(plan.threat, stochastic) * scored, 1e-9)
    return EtaPlan(rungs=rungs_of(min(strategy.grace_period, epochs), 2, epochs) if asha else (),
                   export_ratio=export.passes() / per_epoch,
                   objective_ratio=plan.objective_suite.work(plan.threat, stochastic) * len(splits.val) / per_epoch,
                   later=later)


def _tracking(cfg: SearchConfig) -> tuple[str, str | None] | None:
    """``--tracking mlflow``'s store and artifact location (None: no tracking)."""
    if cfg.tracking != "mlflow":
        return None
    if cfg.tracking_uri is not None:
        return cfg.tracking_uri, None
    if cfg.folder.remote:
        raise ValueError("--tracking mlflow with remote storage needs a --tracking-uri (a tracking server)")
    folder = Path(cfg.folder.path)
    return default_tracking_uri(folder), (folder.absolute() / "mlartifacts").as_uri()


def _track_export(cfg: SearchConfig, best: TrialRecord | None, export: tuple[Path, dict[str, Any]] | None,
                  phases: Phases) -> None:
    """With ``--tracking mlflow``: the export folder as an artifact of the exported trial's run, and where to look."""
    tracking = _tracking(cfg)
    if tracking is None or best is None or export is None:
        return
    try:
        with phases.phase("logging the export to MLflow"):
            run = log_export(tracking[0], cfg.folder.name, best.trial_id, export[0])
    except Exception as exc:  # noqa: BLE001 - the export is done and kept; the store's failure is only said
        phases.say(f"MLflow: the export was not logged ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
        return
    where = f"run {run}" if run else "no run of the exported trial (nothing logged)"
    phases.say(f"MLflow: experiment {cfg.folder.name}, {where}; mlflow ui --backend-store-uri {tracking[0]}")


def _callbacks(cfg: SearchConfig, plan: SearchPlan, started: float, eta: EtaPlan,
               budget: TimeBudget | None) -> list[Any]:
    """Tune callbacks of a new experiment: the live view and progress.json (first), and the integrity record (local
    storage)."""
    folder, preset = cfg.folder, plan.preset
    callbacks: list[Any] = [LiveProgress(folder.progress, plan.strategy.num_samples, preset.train.epochs,
                                         params=get_space(cfg.space).leaderboard, space=f"{cfg.space} · {preset.name}",
                                         view=ViewKind.LIVE if cfg.live else ViewKind.LINES, started=started, eta=eta,
                                         budget=budget)]
    if not folder.remote:
        callbacks.append(IntegrityRecorder(folder.path))
    tracking = _tracking(cfg)
    if tracking is not None:
        callbacks.append(MlflowTracking(tracking[0], folder.name, tracking[1]))
    return callbacks


def _train(cfg: SearchConfig, plan: SearchPlan, splits: Splits, phases: Phases, log: Path | None,
           study: StudyStorage | None, later: tuple[int, int] | None,
           budget: TimeBudget | None) -> tuple[Any, bool, SearchProgress]:
    """Start or join Ray, check the trials fit, run Tune; the result grid, whether Ctrl-C stopped it, and the run
    as its ETA saw it."""
    preset, base = plan.preset, plan.base
    where = "starting a local Ray" if cfg.address == "" else f"joining the Ray cluster at {cfg.address}"
    with phases.phase(where):  # Ray Train's clean-up of stopped trials needs the dashboard (see data_parallel)
        connect_ray(cfg.address, object_store_memory=1 << 30, log_to_driver=cfg.verbose,
                    dashboard=cfg.data_parallel or preset.gpus_per_trial > 1)
        route_ray_logs(log)
    try:
        layout, max_concurrent = place_trials(cfg, plan, splits.info, phases.say)
        workers = (f", {layout.workers} data-parallel workers per trial "
                   f"({'NCCL' if layout.gpus_per_worker else 'gloo'})") if layout.data_parallel else ""
        phases.say(f"[bold]training[/]: space {cfg.space}, preset {preset.name}, {base.model.name} on {base.data.name} "
                   f"({len(splits.train)} train / {len(splits.val)} val), {base.train.epochs} epochs, eps "
                   f"{base.threat.eps:g}{workers}; experiment {cfg.folder.path}")
        context = TrialContext(space=cfg.space, base=base, objective_suite=plan.objective_suite)
        fusion = _fusion(cfg, plan, splits, layout, study)
        if fusion.reason:
            phases.say(fusion.reason)
        name = study_name(study, cfg.folder.name)
        if fusion.k > 1:
            assert study is not None, "bundles need a study storage (_fusion checks it)"
            layout = _bundle_layout(layout, fusion.k)
            trainable = bundle_trainable(context, plan.strategy, study, name, splits, layout)
            searcher = None if cfg.resume else bundle_searcher(
                plan.strategy, cfg.space, preset, context, study, name, sampler_of(plan.strategy),
                starting_points(plan.strategy, cfg.space, preset), fusion.k)
            scheduler = FIFOScheduler()  # members are pruned inside their bundle, by the study's pruner
        else:
            trainable = make_trainable(context, splits, layout, cfg.folder)
            searcher = None if cfg.resume else build_searcher(plan.strategy, cfg.space, preset, study, name)
            scheduler = build_scheduler(plan.strategy, preset.train.epochs)
        eta = _eta_plan(plan, splits, later)
        callbacks = _callbacks(cfg, plan, phases.started, eta, budget)
        if searcher is not None and budget is not None:
            searcher = BudgetGate(searcher, callbacks[0])
        tuner = build_tuner(trainable, cfg.folder, resume=cfg.resume, searcher=searcher, scheduler=scheduler,
                            num_samples=plan.strategy.num_samples, callbacks=callbacks, max_concurrent=max_concurrent,
                            reuse_actors=not layout.data_parallel)  # Train's workers are not reusable
        live = _repoint(tuner, cfg, study, phases.started, eta, budget) if cfg.resume else callbacks[0]
        return (*_fit_watching_disk(tuner, cfg), live.progress())
    finally:
        if cfg.address == "":
            with phases.phase("stopping the local Ray"):
                disconnect_ray()


def _repoint(tuner: Any, cfg: SearchConfig, study: StudyStorage | None, started: float, eta: EtaPlan,
             budget: TimeBudget | None) -> LiveProgress:
    """A restored run's searcher and callbacks pointed at where the experiment is now, shown as this command asks;
    its live progress.

    A moved or copied experiment then resumes in place: its trials go into its own study file, its
    progress and integrity record into its own folder, never into the original's.
    """
    searcher, callbacks = restored_parts(tuner)
    gate = searcher if isinstance(searcher, BudgetGate) else None
    searcher = searcher.searcher if gate is not None else searcher
    if study is not None and study.in_experiment:
        if isinstance(searcher, HonestOptunaSearch):
            searcher.use_study(study.open())
        elif isinstance(searcher, BundleSearch):
            searcher.use_study(study)
    live = None
    for callback in callbacks:
        if isinstance(callback, LiveProgress):
            live = callback
            callback.resume_at(cfg.folder.progress, ViewKind.LIVE if cfg.live else ViewKind.LINES, started, eta, budget)
            if gate is not None:
                gate.live = callback  # the budget of this command, counted from its start
        elif isinstance(callback, IntegrityRecorder):
            callback.resume_at(cfg.folder.path)
        elif isinstance(callback, MlflowTracking) and (tracking := _tracking(cfg)) is not None:
            callback.resume_at(*tracking)
    assert live is not None, "every experiment is begun with its LiveProgress callback (_callbacks)"
    return live


def _fusion(cfg: SearchConfig, plan: SearchPlan, splits: Splits, layout: TrialResources,
            study: StudyStorage | None) -> Fusion:
    """Trials per bundle: as the experiment started (``--resume``), else ``--fuse``'s (kept in the experiment)."""
    record = cfg.folder.fusion
    if cfg.resume:
        return Fusion(int(json.loads(record.read_text())["k"]) if record is not None and record.is_file() else 1)
    if study is None and cfg.fuse != 1:
        fusion = Fusion(1, "--fuse: every trial alone (bundles tell their members to a study storage: give remote "
                           "storage an --optuna-storage)")
    else:
        space = get_space(cfg.space)
        first = space.apply(plan.base, space.points_to_evaluate(plan.preset)[0])
        fusion = resolve_fusion(cfg.fuse, first, splits.info, layout)
    if record is not None:
        record.write_text(json.dumps({"k": fusion.k}))
    return fusion


def _bundle_layout(layout: TrialResources, k: int) -> TrialResources:
    """A bundle of k trials takes k shares of a GPU a trial alone would share (at most one GPU)."""
    if not 0 < layout.gpus_per_worker < 1:
        return layout
    return TrialResources(1, layout.cpus_per_worker, min(1.0, math.floor(layout.gpus_per_worker * k * 1e4) / 1e4))


def _collect(cfg: SearchConfig, grid: Any, study: StudyStorage | None, interrupted: bool,
             metrics: tuple[str, ...]) -> tuple[list[TrialRecord], Path]:
    """Every trial as a record, written to results.parquet (beside the exports on remote storage).

    The study hears of trials that finished as the driver stopped (:func:`tell_finished`); once the
    search is over, no trial is left RUNNING in it (one still RUNNING was asked for by a driver that died).
    """
    folder = cfg.folder
    filesystem = pyarrow.fs.FileSystem.from_uri(cfg.storage_path)[0] if folder.remote else None
    opened, name = (None, "") if study is None else (study.open(), study_name(study, folder.name))
    records = collect_trials(grid, filesystem=filesystem, study={} if opened is None else study_states(opened, name))
    if opened is not None:
        changed = tell_finished(opened, name, records, metrics)
        if not interrupted:
            changed += settle_study(opened, name, live=set())
        if changed:  # an interrupted trial's outcome reads the study's state
            records = collect_trials(grid, filesystem=filesystem, study=study_states(opened, name))
    path = folder.results or Path(cfg.export_dir) / f"{folder.name}-{folder.RESULTS}"
    write_trials(records, path)
    return records, path


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


def _summarise(records: list[TrialRecord], params: tuple[str, ...], results: Path, pick: ParetoPick | None,
               best: TrialRecord | None, phases: Phases) -> None:
    """The leaderboard, where every trial is, where the trials' time went, and a Pareto search's front."""
    phases.console.print(leaderboard(records, params, front=None if pick is None else [r.trial_id for r in pick.front],
                                     picked=None if best is None else best.trial_id))
    phases.say(f"all trials: {results}")
    spent = time_spent(records)
    phases.say(f"trials' time, summed over them: training {spent['training']:.0f} s "
               f"({spent['trial_epochs']:.0f} trial-epochs), per-epoch scoring {spent['epoch_scoring']:.0f} s, "
               f"objective {spent['objective']:.0f} s")
    if pick is not None:
        _show_pick(pick, best is not None, phases)


def _export(cfg: SearchConfig, plan: SearchPlan, best: TrialRecord, splits: Splits, command: str,
            pick: ParetoPick | None, phases: Phases) -> tuple[Path, dict[str, Any]]:
    """Score the chosen trial with the export suite and export it; its folder and metrics."""
    request = ExportRequest(export_dir=Path(cfg.export_dir), experiment=cfg.folder.name,
                            experiment_path=cfg.folder.path, space=cfg.space, objective_mode=cfg.objective,
                            command=command, suite=plan.export_suite, threat=plan.threat,
                            val_limit=plan.preset.export_val_limit, workers=usable_cpus())
    images = {"validation": len(splits.val.head(request.val_limit)), "test": len(splits.test)}
    work = ExportWork.of(plan.export_suite, plan.threat, _stochastic(plan, splits), images)
    began = time.time()

    def eta(label: str) -> float | None:  # progress.json holds the run's ETA model: --status reads the same
        return write_export_progress(phases.progress_file, work.share(label), began)

    with phases.counted(f"scoring trial {best.trial_id} for export (validation and test)", eta=eta) as heard:
        path = export_best(best, splits, request, heard, pick)
    return path, json.loads((path / METRICS_FILE).read_text())


def _export_intact(cfg: SearchConfig, plan: SearchPlan, ranked: list[TrialRecord], splits: Splits, command: str,
                   pick: ParetoPick | None, phases: Phases) -> tuple[TrialRecord | None, tuple[Path, dict[str, Any]]
                                                                     | None]:
    """Export the first of ``ranked`` whose checkpoint is intact, saying which were passed over; (None, None): none."""
    for record in ranked:
        try:
            return record, _export(cfg, plan, record, splits, command, pick, phases)
        except DamagedCheckpoint as exc:
            phases.say(f"[yellow]warning[/]: {plain(str(exc))}; exporting the next best trial instead")
    if ranked:
        raise ExportError(f"no finished trial of {cfg.folder.path} has an intact checkpoint: nothing was exported")
    return None, None


def _results_page(cfg: SearchConfig, records: list[TrialRecord], params: tuple[str, ...], command: str,
                  best: TrialRecord | None, export: tuple[Path, dict[str, Any]] | None,
                  pick: ParetoPick | None) -> list[Path]:
    """The results page, in the experiment folder (local storage) and the export folder."""
    folders = [] if cfg.folder.remote else [Path(cfg.folder.path)]
    if export is not None:
        folders.append(export[0])
    return write_results_page(folders, records, title=f"robustune search {cfg.folder.name} ({cfg.space})",
                              command=command, params=params, exported=None if best is None else best.trial_id,
                              export_metrics=None if export is None else export[1],
                              export_path=None if export is None else export[0],
                              front=None if pick is None else [r.trial_id for r in pick.front])


def run_experiment(cfg: SearchConfig, command: str = "python -m tuner.search", *, export: bool = True,
                   later: tuple[int, int] | None = None, budget: TimeBudget | None = None) -> SearchOutcome:
    """Run (or resume) one Tune experiment end to end and export its best honest model (``export=False``: rank only).

    ``later``: (trials, epochs) of a rung that follows this experiment, counted by its ETA; ``budget``: the
    whole job's time, which sizes this experiment's trials (:mod:`tuner.search.budget`). A run
    refused or failed before Tune began (a bad setting, a cluster too small) leaves no experiment
    folder behind when it made one. ``--screen`` is :func:`tuner.search.screening.run_search`'s.
    """
    plan = resolve_run(cfg)  # every setting is checked here, before Ray starts
    check_address(cfg.address)  # a cluster that is not there: one line, before anything else is shown
    for path, flag in ((cfg.storage_path, "--storage-path"), (cfg.export_dir, "--export-dir")):
        check_writable(path, flag)
    tracking = _tracking(cfg)
    if tracking is not None:
        check_tracking(tracking[0])
    folder = cfg.folder
    made = not folder.remote and not Path(folder.path).exists()
    try:
        return _search(cfg, plan, command, export, later, budget)
    except BaseException as exc:
        if made and not tune.Tuner.can_restore(folder.path):
            shutil.rmtree(folder.path, ignore_errors=True)
        if not isinstance(exc, DiskFull) and not folder.remote and disk_full_in(exc):  # collecting, exporting
            raise DiskFull(folder.path, free_bytes(folder.path)) from None
        raise


def _search(cfg: SearchConfig, plan: SearchPlan, command: str, export_best: bool,
            later: tuple[int, int] | None, budget: TimeBudget | None) -> SearchOutcome:
    """The experiment of :func:`run_experiment`, its settings checked."""
    folder = cfg.folder
    phases = Phases(live=cfg.live, progress_file=folder.progress)
    with experiment_lock(folder.path, command, remote=folder.remote):
        study = _study_storage(cfg)  # refuses SQLite on a network filesystem, or another storage than it started in
        if study is not None and not study.in_experiment:
            study.check()  # a database elsewhere (--optuna-storage): reachable before Ray starts
        check_experiment(folder, plan.strategy, study, resume=cfg.resume, trust=cfg.trust_experiment)
        with quiet_libraries(folder.log, cfg.verbose) as log:
            if log is not None:
                phases.say(f"Ray's, Tune's and Optuna's own messages: {log}")
            with phases.phase(f"loading {plan.base.data.name}"):
                splits = load_splits(plan.base.data)
            try:
                return _ranked_and_exported(cfg, plan, command, export_best, later, budget, phases, study, log, splits)
            except KeyboardInterrupt:  # Ctrl-C outside Tune's run (its handler stops that one), or SIGTERM
                write_phase(phases.progress_file, INTERRUPTED)  # --status: not running, interrupted
                raise


def _ranked_and_exported(cfg: SearchConfig, plan: SearchPlan, command: str, export_best: bool,
                         later: tuple[int, int] | None, budget: TimeBudget | None, phases: Phases,
                         study: StudyStorage | None, log: Path | None, splits: Splits) -> SearchOutcome:
    """Train, collect, rank and export: the body of :func:`_search` inside its lock and logs."""
    folder = cfg.folder
    grid, stopped_by_signal, progress = _train(cfg, plan, splits, phases, log, study, later, budget)
    finished = grid.num_terminated + grid.num_errors
    trials = sum(len((result.config or {}).get("members", [None])) for result in grid)  # a bundle's members
    interrupted = stopped_by_signal or finished < len(grid) or (  # a budget may start fewer than all
        not cfg.resume and budget is None and trials < plan.strategy.num_samples)
    with phases.phase("collecting the trials' results"):
        records, results = _collect(cfg, grid, study, interrupted, plan.strategy.metrics)
    params = tuple(k for k in get_space(cfg.space).leaderboard if any(k in r.params for r in records))
    pick = pick_from_front(records, cfg.pick_min_natural) if cfg.pareto else None
    ranked = [] if interrupted or not export_best else ranked_trials(records)
    if pick is not None and pick.trial is not None:
        ranked = [pick.trial, *(r for r in ranked if r is not pick.trial)]
    best = ranked[0] if ranked else None
    _summarise(records, params, results, pick, best, phases)
    best, export = _export_intact(cfg, plan, ranked, splits, command, pick, phases)
    with phases.phase("writing the results page"):
        pages = _results_page(cfg, records, params, command, best, export, pick)
    phases.say(f"results page: {pages[0]}" if pages else "no results page (remote storage, nothing exported)")
    _track_export(cfg, best, export, phases)
    write_phase(phases.progress_file, INTERRUPTED if interrupted else DONE)
    return SearchOutcome(folder.path, records, interrupted, best, None if export is None else export[0],
                         [] if pick is None else list(pick.front), None if export is None else export[1], progress)
