"""What a running search is doing, trial by trial: the state the live view, the log lines and progress.json show.

:class:`SearchProgress` holds it (no terminal, no Ray); :class:`LiveProgress` is the Tune callback
that feeds it from Tune's events and hands it to a view (:mod:`tuner.search.view`) and to
``progress.json``, which ``python -m tuner.search --status NAME`` reads.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from trainables.atomic import atomic_write_text

__all__ = ["LiveProgress", "SearchProgress", "TrialView", "read_progress", "trial_outcome", "write_phase"]

ENDED = ("finished", "pruned", "failed", "interrupted")


def trial_outcome(status: str, last: dict[str, Any] | None, study_state: str | None = None) -> str:
    """finished / pruned / failed / interrupted / running / pending from Tune's status and the last result.

    Tune reads TERMINATED both for a trial ASHA stopped and for one a Ctrl-C stopped; the study's
    state (``study_state``, when known) tells them apart: PRUNED, or still RUNNING (interrupted).
    """
    last = last or {}
    if status == "ERROR" or last.get("diverged") or (
            last.get("final_evaluated") and not _finite(last.get("objective"))):
        return "failed"
    if status == "TERMINATED":
        if last.get("final_evaluated"):
            return "finished"
        return "interrupted" if study_state in ("RUNNING", "WAITING") else "pruned"
    return {"RUNNING": "running", "PENDING": "pending", "PAUSED": "paused"}.get(status, status.lower())


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _one_line(text: Any, limit: int = 160) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:limit]


@dataclass
class TrialView:
    """One trial as the user sees it: what it tries, how far it got, how it is doing."""

    trial_id: str
    params: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    natural: float | None = None  # latest validation natural accuracy
    robust: float | None = None  # latest validation robust accuracy (the per-epoch suite)
    objective: float | None = None  # the final objective, once scored
    outcome: str = "pending"
    suspect: bool = False
    reason: str = ""  # why it failed, one line
    ended_at: float | None = None

    def state(self, max_epochs: int) -> str:
        """``running``, ``pruned at epoch 2``, ``failed: <reason>``... for a view's state column."""
        if self.outcome == "running" and self.epoch >= max_epochs - 1:
            return f"running (epoch {max_epochs} and the objective)"
        if self.outcome == "pruned":
            return f"pruned at epoch {self.epoch}"
        if self.outcome == "failed":
            return f"failed: {self.reason}" if self.reason else "failed"
        if self.outcome == "finished" and self.suspect:
            return "finished, suspect (not exported)"
        return self.outcome


@dataclass
class SearchProgress:
    """Every trial's view, the trial-epochs done and expected, the phase, and the time it all took."""

    num_samples: int
    max_epochs: int
    space: str = ""
    phase: str = "training"
    started: float = field(default_factory=time.time)
    trials: dict[str, TrialView] = field(default_factory=dict)

    def view(self, trial_id: str) -> TrialView:
        """The view of ``trial_id`` (created on first sight)."""
        if trial_id not in self.trials:
            self.trials[trial_id] = TrialView(trial_id)
        return self.trials[trial_id]

    def counts(self) -> dict[str, int]:
        """Trials per outcome; trials not yet created count as pending."""
        out: dict[str, int] = {}
        for t in self.trials.values():
            out[t.outcome] = out.get(t.outcome, 0) + 1
        out["pending"] = out.get("pending", 0) + max(self.num_samples - len(self.trials), 0)
        return out

    def epochs_done(self) -> int:
        """Trial-epochs trained so far."""
        return sum(t.epoch for t in self.trials.values())

    def epochs_expected(self) -> int:
        """Trial-epochs this search will train: what ended trials did, the full schedule for the others."""
        ended = sum(t.epoch for t in self.trials.values() if t.outcome in ENDED)
        open_ = sum(1 for t in self.trials.values() if t.outcome not in ENDED)
        return ended + (open_ + max(self.num_samples - len(self.trials), 0)) * self.max_epochs

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds of training left at the rate so far (None before the first epoch)."""
        done = self.epochs_done()
        if done == 0:
            return None
        elapsed = (now or time.time()) - self.started
        return elapsed / done * max(self.epochs_expected() - done, 0)

    def best(self) -> TrialView | None:
        """The finished, non-suspect trial with the highest objective."""
        finished = [t for t in self.trials.values() if t.outcome == "finished" and not t.suspect
                    and _finite(t.objective)]
        return max(finished, key=lambda t: t.objective or 0.0, default=None)

    def to_json(self) -> dict[str, Any]:
        """What progress.json holds."""
        best = self.best()
        now = time.time()
        return {"num_samples": self.num_samples, "max_epochs": self.max_epochs, "space": self.space,
                "phase": self.phase, "counts": self.counts(), "epochs_done": self.epochs_done(),
                "epochs_expected": self.epochs_expected(), "elapsed_s": now - self.started, "eta_s": self.eta_s(now),
                "best_objective": None if best is None else best.objective,
                "best_trial": None if best is None else best.trial_id, "updated": now,
                "trials": [asdict(t) for t in self.trials.values()]}


def read_progress(path: Path) -> dict[str, Any]:
    """A progress.json (ValueError, one line, when there is none or it is not one)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"no readable progress at {path}: {exc}") from None
    if not isinstance(data, dict) or "counts" not in data:
        raise ValueError(f"{path} is not a robustune progress file")
    return data


def write_phase(path: Path | None, phase: str) -> None:
    """Set the phase in ``path`` (progress.json), keeping the rest; nothing when there is no file yet."""
    if path is None or not path.is_file():
        return
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    atomic_write_text(path, json.dumps(data | {"phase": phase, "updated": time.time()}))


class LiveProgress(Callback):
    """Tune callback: each trial's start, epochs, end and failure go to the view and to progress.json.

    The callback is pickled into the experiment (``tuner.pkl``) before anything happens, so it keeps
    only what it needs to start over: on ``--resume`` it rebuilds the trials from Tune's own state.
    """

    def __init__(self, progress_file: Path | None, num_samples: int, max_epochs: int, params: tuple[str, ...] = (),
                 space: str = "", view: str = "live") -> None:
        self.progress_file = progress_file
        self.num_samples, self.max_epochs, self.params, self.space = num_samples, max_epochs, params, space
        self.view_kind = view  # "live" (rich), "plain" (one line per event) or "none"
        self._progress: SearchProgress | None = None
        self._view: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_progress"] = None
        state["_view"] = None  # a terminal is not pickled; made anew after a restore
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Also the callback of an experiment an older robustune started (it knew less)."""
        defaults = {"max_epochs": 1, "params": (), "space": "", "_progress": None, "_view": None,
                    "view_kind": "live" if state.get("live", True) else "plain"}
        self.__dict__.update(defaults | state)

    def _model(self) -> SearchProgress:
        if self._progress is None:
            self._progress = SearchProgress(self.num_samples, self.max_epochs, space=self.space)
        return self._progress

    def setup(self, **info: Any) -> None:
        """Start the view when the experiment starts (or resumes)."""
        from tuner.search.view import make_view

        if self._view is None:
            self._view = make_view(self.view_kind, self._model())

    def _sync(self, trial: Any, result: dict[str, Any] | None = None) -> TrialView:
        """The trial's view, brought up to date with Tune's trial: its config and ``result`` (else its last one)."""
        view = self._model().view(trial.trial_id)
        if not view.params:
            config = getattr(trial, "config", {}) or {}
            view.params = {k: config[k] for k in self.params if k in config}
        last = result if result is not None else (trial.last_result or {})
        if "epoch" in last:
            view.epoch = int(last["epoch"])
        for key in ("natural_acc", "robust_acc"):
            if _finite(last.get(key)):
                setattr(view, key.removesuffix("_acc"), float(last[key]))
        return view

    def _emit(self, event: str, view: TrialView) -> None:
        if self._view is not None:
            self._view.event(event, view)
        if self.progress_file is not None:
            atomic_write_text(self.progress_file, json.dumps(self._model().to_json()))

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial started (or restarted)."""
        for other in trials:  # on a resume, the trials Tune restored
            if other.trial_id not in self._model().trials and other is not trial:
                past = self._sync(other)
                past.outcome = trial_outcome(other.status, other.last_result)
        view = self._sync(trial)
        view.outcome = "running"
        self._emit("started", view)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        """An epoch ended (Tune calls this before it updates the trial's last result)."""
        view = self._sync(trial, result)
        view.outcome = "running"
        if result.get("final_evaluated") and _finite(result.get("objective")):
            view.objective = float(result["objective"])  # the objective suite's figures, not the epoch's
            view.natural = float(result.get("final/natural_acc", view.natural or 0.0))
            view.suspect = bool(result.get("suspect"))
        self._emit("epoch", view)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial finished, or ASHA stopped it, or its loss diverged."""
        view = self._sync(trial)
        last = trial.last_result or {}
        view.outcome = trial_outcome("TERMINATED", last)
        view.reason = _one_line(last.get("error", "")) if view.outcome == "failed" else ""
        view.ended_at = time.time()
        self._emit(view.outcome, view)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial raised or lost its worker (its node died) and Tune starts it again from its last checkpoint."""
        view = self._sync(trial)
        view.outcome = "running"
        view.reason = _one_line(getattr(trial, "error_msg", None) or _error_of(trial), limit=120)
        self._emit("retrying", view)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial raised (after Tune's retries)."""
        view = self._sync(trial)
        view.outcome, view.ended_at = "failed", time.time()
        view.reason = _one_line(getattr(trial, "error_msg", None) or _error_of(trial))
        self._emit("failed", view)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Training is over (or interrupted): trials still running were interrupted; stop the view."""
        model = self._model()
        for trial in trials:
            view = self._sync(trial)
            if view.outcome in ("running", "pending"):
                view.outcome = "interrupted" if trial.status != "ERROR" else "failed"
        model.phase = "training done"
        if self.progress_file is not None:
            atomic_write_text(self.progress_file, json.dumps(model.to_json()))
        if self._view is not None:
            self._view.close()
            self._view = None
        counts = model.counts()
        print("training done: " + ", ".join(f"{counts[k]} {k}" for k in ("finished", "pruned", "failed", "interrupted")
                                            if counts.get(k)) + f" ({model.epochs_done()} trial-epochs)",
              file=sys.stderr, flush=True)


def _error_of(trial: Any) -> str:
    path = getattr(trial, "error_file", None) or getattr(getattr(trial, "run_metadata", None), "error_filename", None)
    try:
        return Path(path).read_text() if path else ""
    except OSError:
        return ""
