"""Every trial of a search as records, collected from Tune's result grid and written to (and read from) Parquet."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from trainables.atomic import atomic_write
from trainables.train import CheckpointError, load_checkpoint
from tuner.trials.outcome import TrialReport, member_reports, member_trial_id, trial_outcome
from tuner.trials.pareto import front_of
from tuner.trials.record import TrialRecord

__all__ = ["collect_trials", "merge_history", "read_records", "read_trials", "time_spent", "write_trials"]

_INTERNAL = {"timestamp", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
             "iterations_since_restore", "checkpoint_dir_name", "done", "training_iteration", "date", "trial_id",
             "error"}


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in row.items():
        if key in _INTERNAL or key.startswith("config/"):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


def _checkpoint(result: Any, last: dict[str, Any], filesystem: Any) -> Any:
    """The trial's last checkpoint: Tune's own, or the one a data-parallel trial left in Train's storage."""
    if result.checkpoint is not None or not last.get("checkpoint_path"):
        return result.checkpoint
    from ray import tune

    return tune.Checkpoint(str(last["checkpoint_path"]), filesystem=filesystem)


def merge_history(reported: list[dict[str, float]], trained: list[dict[str, float]]) -> list[dict[str, float]]:
    """Tune's per-epoch rows, with the epochs it lost on a restore taken from the checkpoint's history.

    After ``--resume`` (or a retry) Tune rewrites a trial's result files with the rows reported
    since; the checkpoint still holds every epoch's training metrics.
    """
    seen = {row.get("epoch") for row in reported}
    earlier = [dict(row) for row in trained if row.get("epoch") not in seen]
    return sorted(earlier + reported, key=lambda row: row.get("epoch", math.inf))


def _trained_history(checkpoint: Any) -> list[dict[str, float]]:
    """The per-epoch metrics a training checkpoint holds ([] when there is none or it cannot be read)."""
    if checkpoint is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            checkpoint.to_directory(tmp)
            return list(load_checkpoint(Path(tmp)).history)
        except (CheckpointError, OSError):
            return []


def collect_trials(grid: Any, filesystem: Any = None, study: dict[str, str] | None = None) -> list[TrialRecord]:
    """Records for every trial of a Ray Tune ``ResultGrid``.

    ``filesystem``: the pyarrow filesystem of remote storage; ``study``: Tune trial id -> Optuna state,
    which tells an interrupted trial from a pruned one and is kept in each record.
    """
    study = study or {}
    statuses = {t.trial_id: t.status for t in getattr(getattr(grid, "_experiment_analysis", None), "trials", [])}
    records = []
    for result in grid:
        last = dict(result.metrics or {})
        trial_id = str(last.get("trial_id") or Path(result.path).name)
        frame = result.metrics_dataframe
        rows = frame.to_dict("records") if frame is not None else []
        checkpoint = _checkpoint(result, last, filesystem)
        if "members" in (result.config or {}):  # a fused trial: one record per member
            status = "ERROR" if result.error else statuses.get(trial_id, "TERMINATED")
            records += _member_records(result.config["members"], trial_id, status, rows, checkpoint, study)
            continue
        history = [_numbers(r) for r in rows if r.get("epoch") != 0]  # not a report refusing the settings
        if history and not any(row.get("epoch") == 1.0 for row in history):  # restored: earlier rows are gone
            history = merge_history(history, _trained_history(checkpoint))
        status = "ERROR" if result.error else statuses.get(trial_id, "TERMINATED")
        error = None
        if result.error is not None:
            error = (str(result.error).strip().splitlines() or [type(result.error).__name__])[-1][:500]
        elif last.get("error"):
            error = str(last["error"])
        outcome = trial_outcome(status, TrialReport.from_metrics(last), study.get(trial_id))
        records.append(TrialRecord(trial_id=trial_id, outcome=outcome,
                                   params=dict(result.config or {}), history=history, final=_numbers(last), error=error,
                                   checkpoint=checkpoint, study_state=study.get(trial_id)))
    return sorted(records, key=lambda r: r.trial_id)


def _member_records(members: list[dict[str, Any]], trial_id: str, status: str, rows: list[dict[str, Any]],
                    checkpoint: Any, study: dict[str, str]) -> list[TrialRecord]:
    """A fused trial's members as records: each its own history, last report, outcome and study state."""
    histories: dict[int, list[dict[str, float]]] = {m: [] for m in range(len(members))}
    finals: dict[int, dict[str, Any]] = {m: {} for m in range(len(members))}
    for row in rows:
        for m, report in member_reports(row).items():
            finals[m] = report.to_metrics()
            if histories[m] and histories[m][-1].get("epoch") == finals[m].get("epoch"):
                histories[m].pop()  # an epoch reported again (a resumed bundle repeats its ended members')
            if report.epoch_number:  # not a member refused before its first epoch
                histories[m].append(_numbers(finals[m]))
    records = []
    for m, member in enumerate(members):
        member_id = member_trial_id(trial_id, m)
        report = TrialReport.from_metrics(finals[m])
        records.append(TrialRecord(trial_id=member_id, outcome=trial_outcome(status, report, study.get(member_id)),
                                   params=dict(member["params"]), history=histories[m], final=_numbers(finals[m]),
                                   error=report.error, checkpoint=checkpoint, study_state=study.get(member_id),
                                   member=m))
    return records


def write_trials(records: list[TrialRecord], path: Path) -> Path:
    """All trials as one Parquet file: outcome, params, final metrics and the per-epoch history.

    ``pareto`` tells the trials on the front of robust vs natural validation accuracy (see
    :func:`~tuner.trials.pareto.front_of`).
    """
    on_front = {r.trial_id for r in front_of(records)}
    history_keys = sorted({k for r in records for row in r.history for k in row}) or ["epoch"]  # Parquet needs a field
    final_keys = sorted({k for r in records for k in r.final})
    param_keys = sorted({k for r in records for k in r.params})
    columns: dict[str, list[Any]] = {
        "trial_id": [r.trial_id for r in records],
        "outcome": [str(r.outcome) for r in records],
        "objective": [r.objective for r in records],
        "exportable": [r.exportable for r in records],
        "natural": [r.natural for r in records],
        "pareto": [r.trial_id in on_front for r in records],
        "epochs": [len(r.history) for r in records],
        "error": [r.error for r in records],
        "study_state": [r.study_state for r in records],
        "config_json": [json.dumps(r.params, sort_keys=True, default=str) for r in records],
    }
    for key in param_keys:
        values = [r.params.get(key) for r in records]
        columns[f"param/{key}"] = [None if v is None else float(v) if isinstance(v, (int, float)) else str(v)
                                   for v in values]
    for key in final_keys:
        columns[f"final_metric/{key}"] = [r.final.get(key) for r in records]
    history_type = pa.list_(pa.struct([(k, pa.float64()) for k in history_keys]))
    text = {"trial_id", "outcome", "error", "study_state", "config_json"}
    columns_arrays = {k: pa.array(v, type=pa.string() if k in text else None) for k, v in columns.items()}
    columns_arrays["history"] = pa.array([[{k: row.get(k) for k in history_keys} for row in r.history]
                                          for r in records], type=history_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns_arrays)
    return atomic_write(path, lambda f: pq.write_table(table, f))


def read_trials(path: Path) -> pa.Table:
    """The Parquet table ``write_trials`` wrote."""
    return pq.read_table(path)


def read_records(path: Path) -> list[TrialRecord]:
    """The records ``write_trials`` wrote (without checkpoints), so that every screen ranks them by one rule."""
    records = []
    for row in read_trials(path).to_pylist():
        final = {k.removeprefix("final_metric/"): v for k, v in row.items()
                 if k.startswith("final_metric/") and v is not None}
        history = [{k: v for k, v in epoch.items() if v is not None} for epoch in row.get("history") or []]
        records.append(TrialRecord(trial_id=str(row["trial_id"]), outcome=row["outcome"],
                                   params=json.loads(row.get("config_json") or "{}"), history=history, final=final,
                                   error=row.get("error"), study_state=row.get("study_state")))
    return records


def time_spent(records: list[TrialRecord]) -> dict[str, float]:
    """Seconds the trials spent, summed over them: training, per-epoch scoring, the objective, and trial-epochs.

    From each trial's per-epoch ``epoch_seconds`` (training and its scoring) and ``eval_seconds``, and
    its final ``objective_seconds``; rows written before these were measured count as 0.
    """
    epochs = [row for r in records for row in r.history]
    scoring = sum(row.get("eval_seconds", 0.0) for row in epochs)
    return {"training": sum(row.get("epoch_seconds", 0.0) for row in epochs) - scoring, "epoch_scoring": scoring,
            "objective": sum(r.final.get("objective_seconds", 0.0) for r in records),
            "trial_epochs": float(len(epochs))}
