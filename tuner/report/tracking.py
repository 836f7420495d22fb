"""Experiment tracking where users already look: every trial an MLflow run, the export its artifact.

``--tracking mlflow`` adds :class:`MlflowTracking`, a Tune callback, to a search: each trial (each
member of a fused bundle) becomes a run of the MLflow experiment named after the search's, tagged
with its trial id, holding its parameters, its per-epoch metrics (step = epoch) and, once scored,
the objective suite's; a run ends FINISHED, or FAILED with the trial's error, or KILLED when the
scheduler pruned it. After the export, :func:`log_export` attaches the exported folder (weights,
config, metrics, model card, results page) to the exported trial's run. The store is a tracking
server's URI (``--tracking-uri http://host:5000``) or, by default, a SQLite file in the experiment
folder (``mlflow ui --backend-store-uri sqlite:///<experiment>/mlflow.db`` shows it).

It uses MLflow's own client (``pip install -e .[tracking]``); a resumed search finds its runs again
by their tags instead of opening new ones.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from tuner.trials.outcome import Outcome, TrialReport, finite, trial_outcome, trial_units

__all__ = ["TRIAL_TAG", "MlflowTracking", "check_tracking", "default_tracking_uri", "log_export", "mlflow_client"]

TRIAL_TAG = "robustune.trial_id"  # a run's trial (or bundle member) id
_EPOCH_METRICS = ("natural_acc", "robust_acc", "epoch_seconds", "eval_seconds", "train_loss")
_ENDS = {Outcome.FINISHED: "FINISHED", Outcome.PRUNED: "KILLED", Outcome.SUSPECT: "FINISHED"}


def default_tracking_uri(experiment: Path) -> str:
    """The local store of a search's runs: a SQLite file in its experiment folder."""
    return f"sqlite:///{(experiment / 'mlflow.db').absolute()}"


def mlflow_client(uri: str) -> Any:
    """An MLflow client of the store at ``uri`` (ValueError, one line, when MLflow is not installed)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ValueError("--tracking mlflow needs MLflow: pip install -e '.[tracking]'") from None
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str, artifacts: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifacts))


def _run_of(client: Any, experiment_id: str, trial_id: str) -> str | None:
    """The run already opened for ``trial_id`` (a resumed search), or None."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}'", max_results=1)
    return str(runs[0].info.run_id) if runs else None


class MlflowTracking(Callback):
    """Tune callback: a run per trial (or bundle member) with its parameters and per-epoch metrics."""

    def __init__(self, uri: str, experiment: str, artifacts: str | None = None) -> None:
        self.uri, self.experiment, self.artifacts = uri, experiment, artifacts
        self._client: Any = None
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}
        self._ended: set[str] = set()
        self._broken = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_client=None, _experiment_id=None, _runs={}, _ended=set(), _broken=False)  # runs found by tag
        return state

    def resume_at(self, uri: str, artifacts: str | None) -> None:
        """Track into ``uri`` from now on (a moved or copied experiment's own store)."""
        self.uri, self.artifacts = uri, artifacts

    def _open(self) -> Any:
        if self._client is None:
            self._client = mlflow_client(self.uri)
            self._experiment_id = _experiment_id(self._client, self.experiment, self.artifacts)
        return self._client

    def setup(self, **info: Any) -> None:
        """Open the store (and the experiment) when the search starts or resumes."""
        self._guarded(self._open)

    def _run(self, unit: str, params: Mapping[str, Any]) -> str:
        """The run of ``unit``, opened (with its parameters) on first sight."""
        if unit in self._runs:
            return self._runs[unit]
        from mlflow.entities import Param, RunTag

        client = self._open()
        run_id = _run_of(client, str(self._experiment_id), unit)
        if run_id is None:
            run = client.create_run(str(self._experiment_id), run_name=unit, tags={TRIAL_TAG: unit})
            run_id = str(run.info.run_id)
            client.log_batch(run_id, params=[Param(str(k), str(v)[:6000]) for k, v in sorted(params.items())],
                             tags=[RunTag("robustune.kind", "trial")])
        self._runs[unit] = run_id
        return run_id

    def _log(self, unit: str, params: Mapping[str, Any], report: TrialReport) -> None:
        from mlflow.entities import Metric

        epoch = report.epoch_number
        if epoch is None or epoch < 1:
            return
        now = int(time.time() * 1000)
        values = {name: report.epoch_metric(name) for name in _EPOCH_METRICS}
        if report.scored and finite(report.objective):
            values |= {"objective": report.objective, "objective_natural": report.natural}
            values |= {f"final/{k}": v for k, v in (report.final or {}).items()}
        metrics = [Metric(key, float(value), now, epoch) for key, value in values.items() if finite(value)]
        if metrics:
            self._open().log_batch(self._run(unit, params), metrics=metrics)

    def _guarded(self, work: Any, *args: Any) -> None:
        """Run ``work``; a store that fails (a server gone) stops the tracking with one warning, never the search."""
        if self._broken:
            return
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - MLflow's and its transports' errors alike
            self._broken = True
            warnings.warn(f"MLflow tracking stopped ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                          "the search goes on", RuntimeWarning, stacklevel=2)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Open the trial's runs."""
        self._guarded(self._start, trial)

    def _start(self, trial: Any) -> None:
        for unit, params, _ in trial_units(trial.trial_id, getattr(trial, "config", {}), None):
            self._run(unit, params)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        """Log the epoch's metrics of the trial (of each member that reported)."""
        self._guarded(self._result, trial, result)

    def _result(self, trial: Any, result: dict) -> None:
        for unit, params, report in trial_units(trial.trial_id, getattr(trial, "config", {}), result):
            if report is not None and unit not in self._ended:
                self._log(unit, params, report)
                if "members" in (getattr(trial, "config", {}) or {}) and report.ended:
                    self._end(unit, params, report, "TERMINATED")

    def _end(self, unit: str, params: Mapping[str, Any], report: TrialReport | None, status: str) -> None:
        from mlflow.entities import RunTag

        if unit in self._ended:
            return
        self._ended.add(unit)
        outcome = trial_outcome(status, report)
        client, run_id = self._open(), self._run(unit, params)
        tags = [RunTag("robustune.outcome", str(outcome))]
        if report is not None and report.error:
            tags.append(RunTag("robustune.error", report.error[:5000]))
        client.log_batch(run_id, tags=tags)
        client.set_terminated(run_id, status=_ENDS.get(outcome, "FAILED"))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """End the trial's runs as the trial (or each member) ended."""
        self._guarded(self._finish, trial, "TERMINATED")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial that crashed for good: its runs FAILED."""
        self._guarded(self._finish, trial, "ERROR")

    def _finish(self, trial: Any, status: str) -> None:
        for unit, params, report in trial_units(trial.trial_id, getattr(trial, "config", {}), trial.last_result):
            self._end(unit, params, report, status)


def log_export(uri: str, experiment: str, trial_id: str, folder: Path) -> str | None:
    """Attach the exported ``folder`` to ``trial_id``'s run (artifact path ``export``); its run id, or None."""
    client = mlflow_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    run_id = _run_of(client, str(found.experiment_id), trial_id)
    if run_id is None:
        return None
    client.log_artifacts(run_id, str(folder), artifact_path="export")
    client.set_tag(run_id, "robustune.exported", "true")
    return run_id


def check_tracking(uri: str) -> None:
    """ValueError (one line) when MLflow is missing or no tracking server answers at ``uri`` (before Ray starts)."""
    mlflow_client(uri)
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10) as answer:  # noqa: S310 - the user's URI
            if answer.status != 200:
                raise ValueError(f"--tracking-uri {uri}: the server answered {answer.status} to /health")
    except (urllib.error.URLError, OSError) as exc:
        raise ValueError(f"--tracking-uri {uri}: no MLflow tracking server answers there "
                         f"({getattr(exc, 'reason', exc)})") from None
