"""One fused trial's body: a bundle of Optuna trials trained as one model, each member reported, pruned and told.

Tune runs :func:`run_bundle_trial` with a config of members (their Optuna trial numbers and
suggested parameters). The members train together (:func:`trainables.bundle.fit_bundle`); after
each epoch every member reports its per-epoch robust accuracy to its own Optuna trial and asks the
study's pruner (ASHA's rule: :class:`optuna.pruners.SuccessiveHalvingPruner`), and a pruned member
leaves the bundle. After a member's last epoch its kept weights are scored with the objective suite,
exactly as a single trial's are, and the member tells the study its outcome (COMPLETE, PRUNED,
FAIL). Tune hears one report per epoch holding every member's (:func:`~tuner.trials.outcome.bundle_metrics`),
with the bundle's checkpoint: a retried or resumed bundle goes on from it, and members the study
already held as ended are replayed to their end without telling it again (Tune's state may name a
checkpoint older than those ends). The checkpoint also keeps every member's latest report
(``reports.json``): members done by the checkpoint train no more, and a resumed bundle reports
their ends once again, so Tune's last result and checkpoint name every member's end even when
the bundle has nothing left to train.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from ray import tune

from trainables.bundle import MemberEpoch, fit_bundle
from trainables.data import Splits
from trainables.train import resolve_device
from tuner.cluster.storage import StudyStorage
from tuner.trials.checkpoints import restore_intact
from tuner.trials.objective import score_objective
from tuner.trials.outcome import TrialReport, bundle_metrics, trial_outcome
from tuner.trials.study import tell_end, verdict
from tuner.trials.trial import TrialContext, refused_report, trial_spec, warm_weights_of

__all__ = ["REPORTS", "BundleContext", "run_bundle_trial"]

REPORTS = "reports.json"  # in a bundle's checkpoint: each member's latest report, as Tune's flat metrics


@dataclass(frozen=True)
class BundleContext:
    """What every bundle shares: the trials' context, the study the members tell, and how it prunes."""

    trial: TrialContext
    storage: StudyStorage
    study_name: str
    pruner: optuna.pruners.BasePruner
    metrics: tuple[str, ...]  # the report metrics the study maximises (one, or two for a Pareto search)


class _Members:
    """The bundle's members as Optuna trials: what they report, and what the study is told when they end.

    A member the study held as ended when this session began is *replayed*: a bundle restored from a
    checkpoint older than the member's end trains it again to that end (its RNG restored, so the same
    epochs), telling Tune its reports but the study nothing, and leaving where the study says it left.
    """

    def __init__(self, context: BundleContext, numbers: list[int], splits: Splits,
                 params: list[dict[str, Any]]) -> None:
        self.context, self.splits = context, splits
        self.params = params  # each member's configuration, a point's own epochs and warm start included
        self.study = optuna.load_study(study_name=context.study_name, storage=context.storage.open(),
                                       pruner=context.pruner)
        by_number = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        self.frozen = [by_number[n] for n in numbers]
        self.trials = [optuna.trial.Trial(self.study, t._trial_id) for t in self.frozen]
        self.replayed = {m for m, t in enumerate(self.frozen) if t.state.is_finished()}

    def _pruned(self, member: int, epoch: int, robust: float) -> bool:
        """Whether the member leaves the bundle after ``epoch``: the pruner's decision, or the study's record."""
        if member in self.replayed:
            frozen = self.frozen[member]
            return frozen.state == optuna.trial.TrialState.PRUNED and epoch >= max(frozen.intermediate_values,
                                                                                  default=0)
        trial = self.trials[member]
        trial.report(robust, epoch)
        return len(self.context.metrics) == 1 and trial.should_prune()

    def epoch(self, member: MemberEpoch, device: Any) -> TrialReport:
        """A member's report of this epoch: the objective scored after its last, a pruning decision before."""
        metrics = member.metrics
        if member.diverged is not None:
            report = TrialReport(epoch=metrics, diverged=True, error=member.diverged)
        elif member.last and member.model is not None:
            began = time.perf_counter()
            spec = trial_spec(self.context.trial, self.params[member.member])
            score = score_objective(member.model, self.splits.val, self.context.trial.objective_suite, spec.threat,
                                    device)
            report = TrialReport.scored_with(metrics, score.metrics, score.masking, time.perf_counter() - began)
        else:
            pruned = self._pruned(member.member, int(metrics["epoch"]), float(metrics["robust_acc"]))
            report = TrialReport(epoch=metrics, objective=metrics["robust_acc"],
                                 objective_natural=metrics["natural_acc"], pruned=pruned)
        if (member.last or report.ended) and member.member not in self.replayed:
            self.tell(member.member, report)
        return report

    def tell(self, member: int, report: TrialReport) -> None:
        """Record a member's end in the study, as :class:`~tuner.trials.study.HonestOptunaSearch` records a trial's."""
        values = [report.to_metrics().get(m) for m in self.context.metrics]
        outcome, state, told = verdict(trial_outcome("TERMINATED", report), report, values)
        tell_end(self.study, self.trials[member], outcome, state, told)


def _settled(folder: Path) -> dict[int, TrialReport]:
    """The members whose run had ended (pruned, scored or diverged) by a restored checkpoint, and their last reports."""
    path = folder / REPORTS
    if not path.is_file():
        return {}
    kept = {int(m): TrialReport.from_metrics(metrics) for m, metrics in json.loads(path.read_text()).items()}
    return {m: r for m, r in kept.items() if r.ended}


def _refuse(told: _Members, error: ValueError) -> None:
    """Fail every member of a bundle whose settings no run accepts, at once: retrying would fail the same way."""
    failed = refused_report(error)
    for member in range(len(told.trials)):
        if member not in told.replayed:
            told.tell(member, failed)
    tune.report(bundle_metrics(dict.fromkeys(range(len(told.trials)), failed)))


def run_bundle_trial(config: dict[str, Any], context: BundleContext, splits: Splits) -> None:
    """Ray Tune function trainable of a fused trial: ``config["members"]`` trained as one bundle."""
    members = config["members"]
    told = _Members(context, [int(m["number"]) for m in members], splits, [m["params"] for m in members])
    try:
        specs = [trial_spec(context.trial, m["params"]) for m in members]
    except ValueError as error:  # BundleKey gave such settings a bundle of their own
        _refuse(told, error)
        return
    device = resolve_device(context.trial.device)
    work = Path(tempfile.mkdtemp(prefix="robustune-bundle-"))
    restore_intact(tune.get_checkpoint(), work)  # FIFO: an epoch reported again changes no decision
    initial = [warm_weights_of(m["params"], restored_any=any(work.iterdir())) for m in members]  # promoted points'
    latest = _settled(work)  # members done by the checkpoint: trained no more, their ends reported once again
    unsent = set(latest)

    def report(out: dict[int, TrialReport], folder: Path) -> None:
        latest.update(out)
        (folder / REPORTS).write_text(json.dumps({m: r.to_metrics() for m, r in latest.items()}))
        sent = {m: r for m, r in latest.items() if m in out or m in unsent}
        tune.report(bundle_metrics(sent), checkpoint=tune.Checkpoint.from_directory(str(folder)))
        unsent.clear()

    def on_epoch(reports: list[MemberEpoch], folder: Path | None) -> set[int]:
        out = {r.member: told.epoch(r, device) for r in reports}
        report(out, folder or work)
        return {m for m, r in out.items() if r.pruned}

    try:
        fit_bundle(specs, splits, checkpoint_dir=work, on_epoch=on_epoch, device=device, ended=set(latest),
                   initial=initial)
        if unsent:  # every member had ended by the checkpoint: their ends, once more, with it
            report({}, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
