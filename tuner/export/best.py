"""Export a search's chosen trial: its final checkpoint re-scored with the export suite, filed per experiment."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.attacks import ThreatModel
from trainables.data import Splits
from trainables.evaluation import ProgressFn, SuiteConfig
from trainables.models import build_model
from trainables.train import CheckpointError, RunSpec
from tuner.export.files import ExportError, export_model
from tuner.export.scoring import evaluate_for_export
from tuner.provenance import collect_provenance
from tuner.trials.checkpoints import trained_weights
from tuner.trials.pareto import ParetoPick
from tuner.trials.record import TrialRecord

__all__ = ["LATEST", "DamagedCheckpoint", "ExportRequest", "export_best"]

LATEST = "latest"  # exports/latest -> the newest export's folder


class DamagedCheckpoint(ExportError):
    """The chosen trial's checkpoint cannot be read (truncated, corrupt, fails its sha256): nothing was exported."""


@dataclass(frozen=True)
class ExportRequest:
    """Where and how a search's chosen trial is exported."""

    export_dir: Path  # exports/; the export goes to exports/<experiment>/
    experiment: str  # the experiment's name
    experiment_path: str  # recorded in metrics.json
    space: str
    objective_mode: str  # the search's --objective
    command: str  # the command line that ran the search
    suite: SuiteConfig  # the export suite
    threat: ThreatModel
    val_limit: int | None  # validation examples re-scored with the export suite (None: all)
    workers: int = 1  # CPU processes the scoring shares the examples among (trainables.evaluation.processes)


def _point_latest(export_dir: Path, name: str) -> None:
    """Make ``export_dir/latest`` a symlink to ``name``, atomically."""
    link = export_dir / LATEST
    tmp = export_dir / f".{LATEST}-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(name, target_is_directory=True)
    os.replace(tmp, link)


def _search_record(record: TrialRecord, request: ExportRequest, pick: ParetoPick | None) -> dict[str, Any]:
    """What metrics.json says of the search the export came from."""
    search: dict[str, Any] = {
        "trial_id": record.trial_id, "objective": record.objective, "natural": record.natural,
        "experiment": request.experiment_path, "objective_mode": request.objective_mode,
        "pick": {"rule": "the trial with the highest objective"} if pick is None else
        {"rule": pick.rule, "min_natural": pick.min_natural, "met": pick.met},
        "objective_metrics": {k: v for k, v in record.final.items() if k.startswith("final/")}}
    if pick is not None:
        search["front"] = [{"trial_id": r.trial_id, "objective": r.objective, "natural": r.natural}
                           for r in pick.front]
    return search


def _trained(record: TrialRecord) -> tuple[RunSpec, dict[str, Any]]:
    """The run and the weights the trial stands for (what its objective scored), from its checkpoint."""
    with tempfile.TemporaryDirectory() as tmp:
        record.checkpoint.to_directory(tmp)
        try:
            return trained_weights(Path(tmp), record.member)  # a fused trial's member: its own from the bundle's
        except CheckpointError as exc:
            where = str(record.checkpoint.path)
            raise DamagedCheckpoint(f"trial {record.trial_id}: {str(exc).replace(tmp, where)}") from None


def export_best(record: TrialRecord, splits: Splits, request: ExportRequest, progress: ProgressFn | None = None,
                pick: ParetoPick | None = None) -> Path:
    """Re-evaluate ``record``'s final checkpoint with the export suite and export it to exports/<experiment>/.

    ``pick``: the Pareto front ``record`` was picked from, recorded with the rule in metrics.json.
    """
    if record.checkpoint is None:
        raise ExportError(f"trial {record.trial_id} has no checkpoint left in its experiment folder: nothing to export")
    spec, weights = _trained(record)
    model = build_model(spec.model, splits.info)
    model.load_state_dict(weights)
    model.eval()
    metrics = evaluate_for_export(model, splits, request.suite, request.threat, val_limit=request.val_limit,
                                  progress=progress, workers=request.workers)
    metrics["search"] = _search_record(record, request, pick)
    out = export_model(model, spec, request.export_dir / request.experiment, info=splits.info, metrics=metrics,
                       command=request.command, space=request.space, params=record.params,
                       provenance=collect_provenance(spec.train.seed))
    _point_latest(request.export_dir, request.experiment)
    return out
