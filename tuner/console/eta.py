"""The whole run's ETA: training under the scheduler's expected promotions, then the export's scoring.

Training: every trial still to train is expected to run the epochs the scheduler would let it
run. ASHA (and the bundles' successive-halving pruner) decides at rungs g, g*eta, g*eta^2, ...
epochs, keeping a result that reaches the top 1/eta of those recorded at the rung so far, its
own included: the k-th result at a rung passes with probability max(1, ceil(k/eta)) / k (the
first always does). Each trial still to train walks the rungs ahead of it in that way, the
running ones first, the ones not yet started after them, each adding its expected arrival to
the rung's count. The early readings then neither assume that every trial runs every epoch nor
that ASHA stops half of the first ones. Seconds: the trials' own epoch wall time, over the
trials running side by side; the last trial's remaining epochs bound it from below (the tail of
a search runs one trial alone), and each trial expected to finish adds its objective's scoring.

The export scores the best trial with the export suite on the validation head and the test split,
alone on the machine. Its cost is the per-epoch scoring's measured seconds (each divided by the
trials that shared the machine then), scaled by the two suites' model passes per image
(:meth:`~trainables.evaluation.SuiteConfig.work`) and their image counts. Once scoring starts,
the estimate follows its own progress.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainables.attacks import ThreatModel
from trainables.evaluation import PROBE_EXAMPLES, SuiteConfig, probe_suite

__all__ = ["Decided", "EtaPlan", "ExportWork", "Measured", "TimeBudget", "Walk", "rungs_of"]

_FIXED_S = 5.0  # stopping Ray, collecting the results, writing the page: a few seconds on every machine seen
_WALKED = 64  # trials not yet started that are walked one by one; the rest repeat the last one's walk


def rungs_of(grace_period: int, reduction_factor: float, max_epochs: int) -> tuple[int, ...]:
    """The epochs at which successive halving decides: g, g*eta, ... below ``max_epochs``."""
    rungs, rung = [], float(grace_period)
    while rung < max_epochs:
        rungs.append(int(rung))
        rung *= reduction_factor
    return tuple(rungs)


@dataclass(frozen=True)
class TimeBudget:
    """A run's time budget (a screen's ``--time-budget``): the whole job's seconds, and the trials it starts
    whatever the ETA says (the rest only while the ETA with them ends within the seconds)."""

    seconds: float
    minimum: int

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"a time budget must be > 0 seconds, got {self.seconds}")


@dataclass(frozen=True)
class Decided:
    """One trial as the ETA sees it: the epochs it reported, and whether it will train no more."""

    epoch: int
    ended: bool
    epoch_s: float | None = None  # its epochs' mean wall time (None: none timed yet)
    schedule: int | None = None  # its own epochs (None: the run's)


@dataclass(frozen=True)
class Measured:
    """The run's own seconds so far (None where nothing was measured yet)."""

    epoch_s: float | None  # a trial's epoch wall time (training and its per-epoch scoring), side by side: the
    # mean over trials of each one's mean (a fast trial reports more epochs, and would weigh more per epoch)
    eval_alone_s: float | None  # one epoch's per-epoch scoring, alone on the machine
    slots: int  # trials that ran side by side, at most


@dataclass(frozen=True)
class Walk:
    """A trial's expected way through the rungs still ahead of it (``trials`` alike walk so)."""

    epochs: float  # expected epochs still to train
    finish: float  # chance it trains to the end (and scores its objective)
    epoch_s: float | None  # its seconds per epoch (None: not known)
    trials: int = 1


def _pass_chance(arrival: float, reduction_factor: float) -> float:
    """Chance the ``arrival``-th result at a rung (1-based, expected) is in the top 1/eta recorded there."""
    k = max(arrival, 1.0)
    return min(1.0, max(1.0, math.ceil(k / reduction_factor)) / k)


@dataclass(frozen=True)
class EtaPlan:
    """What the ETA knows before the run: the scheduler's rungs and the scoring costs against the per-epoch scoring."""

    rungs: tuple[int, ...] = ()  # () : every trial runs every epoch (FIFO)
    reduction_factor: float = 2.0
    export_ratio: float = 0.0  # the export's scoring seconds per second of one epoch's scoring, alone
    objective_ratio: float = 0.0  # a finished trial's objective scoring, per second of one epoch's scoring
    fixed_s: float = _FIXED_S
    later: tuple[int, int] | None = None  # a rung after this experiment: (trials, epochs each), FIFO (--screen's)

    def walks(self, trials: list[Decided], pending: int, max_epochs: int,
              typical_s: float | None = None) -> list[Walk]:
        """The trials still to train (running ones, then ``pending`` not yet started), each as it walks the rungs.

        ``typical_s``: the seconds per epoch of a trial not timed yet.

        Beyond the first :data:`_WALKED` trials not yet started, the rest repeat the last one's walk (a
        late arrival's chances barely move), so a search of any size costs the same to estimate.
        """
        arrivals = {r: float(sum(1 for t in trials if t.epoch >= r)) for r in self.rungs}
        walked = min(pending, _WALKED)
        starts = [(t.epoch, t.epoch_s or typical_s, 1, t.schedule or max_epochs) for t in trials if not t.ended]
        starts += [(0, typical_s, 1, max_epochs)] * max(walked - 1, 0) \
            + ([(0, typical_s, pending - walked + 1, max_epochs)] if walked else [])
        out = []
        for epoch, seconds, count, last in starts:
            total, reach, at = 0.0, 1.0, epoch
            for rung in self.rungs:
                if rung <= epoch or rung >= last:
                    continue  # reported there and still running: passed (or past its own schedule)
                total += reach * (rung - at)
                arrivals[rung] += reach
                reach *= _pass_chance(arrivals[rung], self.reduction_factor)
                at = rung
            out.append(Walk(total + reach * max(last - at, 0), reach, seconds, count))
        return out

    def training_epochs(self, trials: list[Decided], pending: int, max_epochs: int) -> float:
        """Trial-epochs the run is expected to train in all: those done, and the expected rest."""
        return sum(t.epoch for t in trials) + sum(w.epochs * w.trials for w in self.walks(trials, pending, max_epochs))

    def training_s(self, trials: list[Decided], pending: int, max_epochs: int, measured: Measured) -> float:
        """Seconds of training left: the expected epochs side by side, never less than the longest trial's alone;
        then a later rung's (:attr:`later`), each of its trials as slow per epoch as this run's slowest: which
        ones it trains is not known yet, and it lasts as long as its slowest (on the quick main job the best
        configuration, PGD only, was the slowest of its screen: 57 s an epoch against a 46 s mean)."""
        if measured.epoch_s is None:
            return 0.0
        objective = 0.0 if measured.eval_alone_s is None else self.objective_ratio * measured.eval_alone_s
        later = 0.0
        if self.later is not None:
            count, epochs = self.later
            one = epochs * max((t.epoch_s for t in trials if t.epoch_s is not None), default=measured.epoch_s)
            later = max(one * count / max(measured.slots, 1), one) + count * objective + self.fixed_s
        walks = self.walks(trials, pending, max_epochs, measured.epoch_s)
        if not walks:
            return later
        finishing = sum(w.finish * w.trials for w in walks)  # each scores its objective
        work = [(w.epochs * (w.epoch_s or measured.epoch_s), w.trials) for w in walks]
        side_by_side = sum(one * count for one, count in work) / max(measured.slots, 1)
        return max(side_by_side, max(one for one, _ in work)) + finishing * objective + later

    def export_s(self, eval_alone_s: float | None) -> float | None:
        """The export's scoring seconds from one epoch's scoring seconds alone (None before the first epoch)."""
        return None if eval_alone_s is None else eval_alone_s * self.export_ratio + self.fixed_s

    def to_json(self) -> dict[str, float | list[int]]:
        """What progress.json keeps of it."""
        return {"rungs": list(self.rungs), "reduction_factor": self.reduction_factor,
                "export_ratio": self.export_ratio, "objective_ratio": self.objective_ratio, "fixed_s": self.fixed_s,
                "later": None if self.later is None else list(self.later)}

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> EtaPlan:
        """Inverse of :meth:`to_json` (the default plan for None)."""
        if not data:
            return cls()
        rungs, later = data.get("rungs", []), data.get("later")
        return cls(rungs=tuple(int(r) for r in rungs) if isinstance(rungs, list) else (),
                   later=(int(later[0]), int(later[1])) if isinstance(later, list) and len(later) == 2 else None,
                   reduction_factor=float(data.get("reduction_factor", 2.0)),  # type: ignore[arg-type]
                   export_ratio=float(data.get("export_ratio", 0.0)),  # type: ignore[arg-type]
                   objective_ratio=float(data.get("objective_ratio", 0.0)),  # type: ignore[arg-type]
                   fixed_s=float(data.get("fixed_s", _FIXED_S)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ExportWork:
    """The export's scoring as the runs it makes, split by split, each with its model passes (its share of the work)."""

    runs: tuple[tuple[str, str, float], ...]  # (split, outcome key, passes over the split)

    @classmethod
    def of(cls, suite: SuiteConfig, threat: ThreatModel, stochastic: bool, images: dict[str, int],
           probed: bool = True) -> ExportWork:
        """The runs of ``suite`` on each split of ``images`` (split -> images, in the order they are scored), then
        (``probed``) the convergence check's stronger attacks on the first test images (split ``probe``)."""
        runs: list[tuple[str, str, float]] = []
        for split, count in images.items():
            runs += _runs(suite, threat, stochastic, split, count)
        probe = probe_suite(suite) if probed else None
        if probe is not None and images.get("test"):
            runs += _runs(probe, threat, stochastic, "probe", min(PROBE_EXAMPLES, images["test"]))
        return cls(tuple(runs))

    def passes(self) -> float:
        """Model passes of the whole export's scoring (the sum over its runs)."""
        return sum(work for _, _, work in self.runs)

    def share(self, label: str) -> float:
        """The share done while the run ``label`` (``"<split>: <key>"``) goes on: those before it and half of it."""
        split, _, key = label.partition(": ")
        total = self.passes() or 1.0
        before = 0.0
        for run_split, run_key, work in self.runs:
            if (run_split, run_key) == (split, key):
                return (before + work / 2) / total
            before += work
        return 0.0


def _runs(suite: SuiteConfig, threat: ThreatModel, stochastic: bool, split: str,
          count: int) -> list[tuple[str, str, float]]:
    """``suite``'s runs on ``count`` images of ``split``: the natural prediction, then each attack and way."""
    predict = (suite.predict_samples if stochastic else 1) / 3
    runs = [(split, "natural", predict * count)]
    for key, way, attack in suite.passes(threat, stochastic):
        if not suite.repeats(way, attack, stochastic):
            runs.append((split, key, (attack.work() + predict) * count))
    return runs
