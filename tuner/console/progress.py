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
from tuner.console.eta import Decided, EtaPlan, Measured
from tuner.trials.outcome import Outcome, finite

__all__ = ["DONE", "INTERRUPTED", "SearchProgress", "TrialView", "from_json", "read_progress", "write_export_progress",
           "write_phase", "write_progress"]

TRAINING = "training"  # the phase while Tune runs
DONE, INTERRUPTED = "done", "interrupted"  # the phase once a run ended


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
    seconds: float = 0.0  # its timed epochs' wall time, summed
    timed: int = 0  # epochs timed
    first_s: float = 0.0  # its first timed epoch's wall time (the trial's start-up costs are in it)
    schedule: int | None = None  # its own epochs, where they are not the run's (a promoted point's)

    @property
    def epoch_s(self) -> float | None:
        """Its epochs' mean wall time (None before the first)."""
        return self.seconds / self.timed if self.timed else None

    @property
    def steady_s(self) -> float | None:
        """Its epochs' mean wall time after the first (the first's when only one was timed; None before it)."""
        return (self.seconds - self.first_s) / (self.timed - 1) if self.timed > 1 else self.epoch_s

    def epochs(self, max_epochs: int) -> int:
        """The epochs it trains: its own schedule, else the run's ``max_epochs``."""
        return max_epochs if self.schedule is None else self.schedule

    def state(self, max_epochs: int) -> str:
        """``running``, ``pruned at epoch 2``, ``failed: <reason>``... for a view's state column."""
        last = self.epochs(max_epochs)
        if self.outcome == Outcome.RUNNING and self.epoch >= last - 1:
            return f"running (epoch {last} and the objective)"
        if self.outcome == Outcome.PRUNED:
            return f"pruned at epoch {self.epoch}"
        if self.outcome == Outcome.FAILED:
            return f"failed: {self.reason}" if self.reason else "failed"
        if self.outcome == Outcome.FINISHED and self.suspect:
            return "finished, suspect (not exported)"
        return str(self.outcome)


@dataclass
class SearchProgress:
    """Every trial's view, the trial-epochs done and expected, the phase, and the time it all took.

    The ETA covers the whole run (:mod:`tuner.console.eta`): training under the scheduler's expected
    promotions at the run's own seconds per trial-epoch, then the export's scoring, estimated from
    the per-epoch scoring's measured seconds until it starts and from its own progress after.
    """

    num_samples: int
    max_epochs: int
    space: str = ""
    phase: str = TRAINING
    started: float = field(default_factory=time.time)  # when training began: the rate behind the ETA
    trials: dict[str, TrialView] = field(default_factory=dict)
    run_started: float | None = None  # when the run began (data, Ray): the clock of stamped lines (None: started)
    eta_plan: EtaPlan = field(default_factory=EtaPlan)
    eval_alone_s: float = 0.0  # per-epoch scoring seconds summed, each divided by the trials running beside it
    evals: int = 0
    slots: int = 1  # trials that ran side by side, at most
    export_started: float | None = None  # when the export's scoring began
    export_done: float | None = None  # its share done (0..1)
    budget_s: float | None = None  # the run's time budget from run_started (a screen's --time-budget; None: none)
    minimum: int = 0  # trials started whatever the budget says (the budget sizes the rest)

    def record_epoch(self, trial_id: str, epoch_s: float, eval_s: float, running: int) -> None:
        """A trial's epoch took ``epoch_s`` (its scoring ``eval_s``) while ``running`` trials shared the machine."""
        view = self.view(trial_id)
        if not view.timed:
            view.first_s = epoch_s
        view.seconds += epoch_s
        view.timed += 1
        self.eval_alone_s += eval_s / max(running, 1)
        self.evals += 1
        self.slots = max(self.slots, running)

    def measured(self) -> Measured:
        """The run's own seconds so far."""
        means = [t.epoch_s for t in self.trials.values() if t.epoch_s is not None]
        if not self.evals or not means:
            return Measured(None, None, self.slots)
        return Measured(sum(means) / len(means), self.eval_alone_s / self.evals, self.slots)

    def export_s(self) -> float | None:
        """The export's expected scoring seconds (None before any epoch was scored)."""
        return self.eta_plan.export_s(self.measured().eval_alone_s)

    def clock(self, now: float | None = None) -> float:
        """Seconds since the run began, the time every stamped line of a run shows."""
        return (now or time.time()) - (self.started if self.run_started is None else self.run_started)

    def view(self, trial_id: str) -> TrialView:
        """The view of ``trial_id`` (created on first sight)."""
        if trial_id not in self.trials:
            self.trials[trial_id] = TrialView(trial_id)
        return self.trials[trial_id]

    def counts(self) -> dict[Outcome, int]:
        """Trials per outcome; trials not yet created count as pending (under a budget: those it holds)."""
        out: dict[Outcome, int] = {}
        for t in self.trials.values():
            out[t.outcome] = out.get(t.outcome, 0) + 1
        out[Outcome.PENDING] = out.get(Outcome.PENDING, 0) + self.affordable()
        return out

    def epochs_done(self) -> int:
        """Trial-epochs trained so far."""
        return sum(t.epoch for t in self.trials.values())

    def _decisions(self) -> list[Decided]:
        """The trials as the ETA sees them."""
        return [Decided(t.epoch, t.outcome.ended, t.epoch_s, t.schedule) for t in self.trials.values()]

    def _decided(self) -> tuple[list[Decided], int]:
        """The trials as the ETA sees them, and how many are still to start (under a budget: as many as fit)."""
        decided = self._decisions()
        return decided, self.affordable(decided)

    def affordable(self, decided: list[Decided] | None = None, now: float | None = None, unseen: int = 0) -> int:
        """Trials not yet started that the run may still start: all of them without a budget (or before an
        epoch was timed); under one, the most whose ETA still ends within it, never fewer than needed to
        reach :attr:`minimum`. ``unseen``: trials started that no view shows yet (Tune starts a trial's
        process after its searcher suggests it), counted as started and still to train."""
        started = len(self.trials) + unseen
        pending = max(self.num_samples - started, 0)
        measured = self.measured()
        if self.budget_s is None or pending == 0 or measured.epoch_s is None:
            return pending
        if decided is None:
            decided = self._decisions()
        floor = min(max(self.minimum - started, 0), pending)
        left = self.budget_s - self.clock(now) - (self.export_s() or 0.0)
        for count in range(pending, floor, -1):
            if self.eta_plan.training_s(decided, count + unseen, self.max_epochs, measured) <= left:
                return count
        return floor

    def _expected(self) -> float:
        return self.eta_plan.training_epochs(*self._decided(), self.max_epochs)

    def epochs_expected(self) -> int:
        """Trial-epochs this search is expected to train: ended trials' own, the scheduler's guess for the rest."""
        return max(round(self._expected()), self.epochs_done())

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left in the whole run: training, then the export's scoring (None before the first epoch).

        Once the export's scoring runs, its estimate gives way to its own progress as that grows (the
        share of its work done, weighted by each run's model passes), and never reads 0 while work remains.
        """
        if self.phase == DONE:
            return 0.0
        if self.phase == INTERRUPTED:
            return None  # a --resume decides what is left
        now = now or time.time()
        export = self.export_s()
        if self.export_started is not None and export is not None:
            spent, share = now - self.export_started, self.export_done or 0.0
            planned = max(export - self.eta_plan.fixed_s - spent, 0.0)
            seen = spent * (1 - share) / share if share > 0 else planned
            return share * seen + (1 - share) * planned + self.eta_plan.fixed_s
        measured = self.measured()
        if measured.epoch_s is None:
            return None
        training = self.eta_plan.training_s(*self._decided(), self.max_epochs, measured) if self.phase == TRAINING \
            else 0.0
        return training + (export or 0.0)

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
                "eta_plan": self.eta_plan.to_json(), "eval_alone_s": self.eval_alone_s,
                "evals": self.evals, "slots": self.slots,
                "export_started": self.export_started, "export_done": self.export_done,
                "budget_s": self.budget_s, "minimum": self.minimum, "run_started": self.run_started,
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
    plan = data.get("eta_plan")
    model = SearchProgress(int(data.get("num_samples", 0)), int(data.get("max_epochs", 1)),
                           space=str(data.get("space", "")), phase=str(data.get("phase", "")),
                           started=float(data.get("updated", time.time())) - float(data.get("elapsed_s", 0.0)),
                           eta_plan=EtaPlan.from_json(plan if isinstance(plan, dict) else None),
                           eval_alone_s=float(data.get("eval_alone_s", 0.0)),
                           evals=int(data.get("evals", 0)), slots=int(data.get("slots", 1)),
                           export_started=_number(data.get("export_started")),
                           export_done=_number(data.get("export_done")), budget_s=_number(data.get("budget_s")),
                           minimum=int(data.get("minimum", 0)), run_started=_number(data.get("run_started")))
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
                     ended_at=_number(values.get("ended_at")), seconds=float(values.get("seconds", 0.0)),
                     timed=int(values.get("timed", 0)), first_s=float(values.get("first_s", 0.0)),
                     schedule=None if values.get("schedule") is None else int(values["schedule"]))


def _update(path: Path | None, values: dict[str, Any]) -> float | None:
    """Set ``values`` in ``path`` (progress.json), keeping the rest (nothing when there is no file yet); the ETA."""
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    now = time.time()
    data |= values
    data["elapsed_s"] = float(data.get("elapsed_s", 0.0)) + now - float(data.get("updated", now))
    data["updated"] = now
    try:
        data["eta_s"] = from_json(data).eta_s(now)
    except (TypeError, ValueError, KeyError, AttributeError):
        data["eta_s"] = None
    atomic_write_text(path, json.dumps(data))
    return data["eta_s"]


def write_phase(path: Path | None, phase: str) -> None:
    """Set the phase in ``path`` (progress.json), keeping the rest; nothing when there is no file yet."""
    _update(path, {"phase": phase})


def write_export_progress(path: Path | None, share: float, started: float) -> float | None:
    """The export's scoring, begun at ``started``, has done ``share`` (0..1) of its work: in ``path``; the run's ETA."""
    return _update(path, {"export_started": started, "export_done": min(max(share, 0.0), 1.0)})
