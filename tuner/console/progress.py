"""What a running search is doing, trial by trial: the state the live view, the log lines and progress.json show.

:class:`SearchProgress` holds it (no terminal, no Ray); :class:`~tuner.console.callback.LiveProgress`
feeds it from Tune's events; views (:mod:`tuner.console.view`) draw it, and ``progress.json``
(written here) lets ``python -m tuner.search --status NAME`` show it from another terminal.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainables.atomic import atomic_write_text
from tuner.trials.outcome import Outcome, finite

__all__ = ["SearchProgress", "TrialView", "from_json", "read_progress", "write_phase", "write_progress"]


@dataclass
class TrialView:
    """One trial as the user sees it: what it tries, how far it got, how it is doing."""

    trial_id: str
    params: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    natural: float | None = None  # latest validation natural accuracy
    robust: float | None = None  # latest validation robust accuracy (the per-epoch suite)
    objective: float | None = None  # the final objective, once scored
    outcome: Outcome = Outcome.PENDING
    suspect: bool = False
    reason: str = ""  # why it failed, one line
    ended_at: float | None = None

    def state(self, max_epochs: int) -> str:
        """``running``, ``pruned at epoch 2``, ``failed: <reason>``... for a view's state column."""
        if self.outcome == Outcome.RUNNING and self.epoch >= max_epochs - 1:
            return f"running (epoch {max_epochs} and the objective)"
        if self.outcome == Outcome.PRUNED:
            return f"pruned at epoch {self.epoch}"
        if self.outcome == Outcome.FAILED:
            return f"failed: {self.reason}" if self.reason else "failed"
        if self.outcome == Outcome.FINISHED and self.suspect:
            return "finished, suspect (not exported)"
        return str(self.outcome)


@dataclass
class SearchProgress:
    """Every trial's view, the trial-epochs done and expected, the phase, and the time it all took."""

    num_samples: int
    max_epochs: int
    space: str = ""
    phase: str = "training"
    started: float = field(default_factory=time.time)  # when training began: the rate behind the ETA
    trials: dict[str, TrialView] = field(default_factory=dict)
    run_started: float | None = None  # when the run began (data, Ray): the clock of stamped lines (None: started)

    def clock(self, now: float | None = None) -> float:
        """Seconds since the run began, the time every stamped line of a run shows."""
        return (now or time.time()) - (self.started if self.run_started is None else self.run_started)

    def view(self, trial_id: str) -> TrialView:
        """The view of ``trial_id`` (created on first sight)."""
        if trial_id not in self.trials:
            self.trials[trial_id] = TrialView(trial_id)
        return self.trials[trial_id]

    def counts(self) -> dict[Outcome, int]:
        """Trials per outcome; trials not yet created count as pending."""
        out: dict[Outcome, int] = {}
        for t in self.trials.values():
            out[t.outcome] = out.get(t.outcome, 0) + 1
        out[Outcome.PENDING] = out.get(Outcome.PENDING, 0) + max(self.num_samples - len(self.trials), 0)
        return out

    def epochs_done(self) -> int:
        """Trial-epochs trained so far."""
        return sum(t.epoch for t in self.trials.values())

    def epochs_expected(self) -> int:
        """Trial-epochs this search will train: what ended trials did, the full schedule for the others."""
        ended = sum(t.epoch for t in self.trials.values() if t.outcome.ended)
        open_ = sum(1 for t in self.trials.values() if not t.outcome.ended)
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
        finished = [t for t in self.trials.values() if t.outcome == Outcome.FINISHED and not t.suspect
                    and finite(t.objective)]
        return max(finished, key=lambda t: t.objective or 0.0, default=None)

    def to_json(self) -> dict[str, Any]:
        """What progress.json holds."""
        best = self.best()
        now = time.time()
        return {"num_samples": self.num_samples, "max_epochs": self.max_epochs, "space": self.space,
                "phase": self.phase, "counts": {str(k): v for k, v in self.counts().items()},
                "epochs_done": self.epochs_done(),
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


def write_progress(path: Path | None, progress: SearchProgress) -> None:
    """Write ``progress`` to ``path`` (progress.json) atomically; nothing without a path (remote storage)."""
    if path is not None:
        atomic_write_text(path, json.dumps(progress.to_json()))


def from_json(data: dict[str, Any]) -> SearchProgress:
    """The progress a progress.json holds (its clock set from the file's last update)."""
    known = set(TrialView.__dataclass_fields__)
    model = SearchProgress(int(data.get("num_samples", 0)), int(data.get("max_epochs", 1)),
                           space=str(data.get("space", "")), phase=str(data.get("phase", "")),
                           started=float(data.get("updated", time.time())) - float(data.get("elapsed_s", 0.0)))
    for row in data.get("trials", []):
        view = _view({k: v for k, v in row.items() if k in known})
        model.trials[view.trial_id] = view
    return model


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _view(values: dict[str, Any]) -> TrialView:
    """A trial's view from a progress.json row, every field of its type (ValueError or TypeError otherwise)."""
    params = values.get("params", {})
    if not isinstance(params, dict):
        raise TypeError(f"a trial's params must be an object, got {type(params).__name__}")
    return TrialView(trial_id=str(values["trial_id"]), params=params, epoch=int(values.get("epoch", 0)),
                     natural=_number(values.get("natural")), robust=_number(values.get("robust")),
                     objective=_number(values.get("objective")), outcome=Outcome(values.get("outcome", "pending")),
                     suspect=bool(values.get("suspect", False)), reason=str(values.get("reason", "")),
                     ended_at=_number(values.get("ended_at")))


def write_phase(path: Path | None, phase: str) -> None:
    """Set the phase in ``path`` (progress.json), keeping the rest; nothing when there is no file yet."""
    if path is None or not path.is_file():
        return
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    atomic_write_text(path, json.dumps(data | {"phase": phase, "updated": time.time()}))
