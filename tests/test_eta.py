"""The whole run's ETA: the scheduler's expected promotions, the trials' own seconds, the export's scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search_spaces.presets import QUICK
from trainables.attacks import FGSM, PGD, Square, parse_assignments
from trainables.evaluation import GRADIENT_WAYS, SuiteConfig
from tuner.console.eta import Decided, EtaPlan, ExportWork, Measured, rungs_of
from tuner.console.progress import SearchProgress, from_json
from tuner.trials.outcome import Outcome

RECORDED = Path(__file__).parent / "data" / "recorded_run.json"


def test_rungs_are_successive_halvings_below_the_last_epoch() -> None:
    assert rungs_of(1, 2, 15) == (1, 2, 4, 8)
    assert rungs_of(2, 2, 15) == (2, 4, 8)
    assert rungs_of(3, 2, 3) == ()


def test_without_rungs_every_trial_runs_every_epoch() -> None:
    plan = EtaPlan()
    trials = [Decided(3, ended=False), Decided(5, ended=True)]
    assert [(w.epochs, w.finish, w.trials) for w in plan.walks(trials, 2, 10)] == [(7, 1, 1), (10, 1, 1), (10, 1, 1)]
    assert plan.training_epochs(trials, 2, 10) == 3 + 5 + 7 + 20


def test_a_trial_of_its_own_epochs_walks_to_its_own_last() -> None:
    plan = EtaPlan()
    trials = [Decided(3, ended=False, schedule=20), Decided(3, ended=False, schedule=5), Decided(3, ended=False)]
    assert [w.epochs for w in plan.walks(trials, 0, 10)] == [17, 2, 7]  # a promoted point's epochs, the run's
    [short] = EtaPlan(rungs=(4, 8)).walks([Decided(1, ended=False, schedule=6)], 0, 10)
    assert short.epochs == 5 and short.finish == 1.0  # ends at its epoch 6, before the rung at 8


def test_asha_keeps_the_first_arrivals_and_about_half_of_the_rest() -> None:
    plan = EtaPlan(rungs=(1, 2, 4, 8))
    [alone] = plan.walks([], pending=1, max_epochs=15)
    assert (alone.epochs, alone.finish) == (15.0, 1.0)  # the first result at every rung passes it
    walks = plan.walks([], pending=6, max_epochs=15)
    assert (walks[0].epochs, walks[0].finish) == (15.0, 1.0) and walks[1].epochs < 15.0  # later ones meet a cutoff
    total = sum(w.epochs for w in walks)
    assert 6 * (1 + 1 / 2 + 2 / 4 + 4 / 8 + 7 / 16) < total < 6 * 15  # between ASHA's 1/eta and every epoch
    # a trial that reported at a rung and is still running passed it: only the rungs ahead count
    [ahead] = plan.walks([Decided(4, ended=False)], pending=0, max_epochs=15)
    assert ahead.epochs == 11.0  # first at rung 8 as well


def test_training_time_is_the_trials_side_by_side_or_the_longest_alone() -> None:
    plan = EtaPlan()
    measured = Measured(epoch_s=10.0, eval_alone_s=None, slots=2)
    two = [Decided(0, ended=False, epoch_s=10.0), Decided(0, ended=False, epoch_s=30.0)]
    assert plan.training_s(two, 0, 4, measured) == pytest.approx(max((40 + 120) / 2, 120))  # the slow one is the tail
    assert plan.training_s(two[:1], 2, 4, measured) == pytest.approx(3 * 4 * 10 / 2)


def test_a_screens_eta_counts_the_promote_rung_after_it() -> None:
    plan = EtaPlan(objective_ratio=2.0, fixed_s=5.0, later=(2, 15))  # --screen: then 2 trials of 15 epochs
    measured = Measured(epoch_s=10.0, eval_alone_s=3.0, slots=2)
    rung = max(2 * 150 / 2, 150) + 2 * 2.0 * 3.0 + 5.0  # side by side, their objectives, Ray's restart
    assert plan.training_s([Decided(3, ended=True)], 0, 3, measured) == pytest.approx(rung)  # the screen is over
    running = [Decided(1, ended=False, epoch_s=10.0)]
    assert plan.training_s(running, 0, 3, measured) == pytest.approx(
        EtaPlan(objective_ratio=2.0, fixed_s=5.0).training_s(running, 0, 3, measured) + rung)
    slow = [Decided(3, ended=True, epoch_s=8.0), Decided(3, ended=True, epoch_s=12.0)]  # its slowest sets the pace
    assert plan.training_s(slow, 0, 3, measured) == pytest.approx(max(2 * 180 / 2, 180) + 2 * 2.0 * 3.0 + 5.0)
    assert EtaPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    assert EtaPlan.from_json({"rungs": [1, 2]}).later is None  # a progress file from before


def test_the_export_share_weighs_each_run_by_its_model_passes() -> None:
    suite = SuiteConfig(attacks=(FGSM(), PGD(steps=20), Square(n_queries=300)), gradients=GRADIENT_WAYS,
                        eot_samples=3, predict_samples=3)
    work = ExportWork.of(suite, QUICK.threat, True, {"validation": 200, "test": 2000})
    keys = [(split, key) for split, key, _ in work.runs]
    assert keys[:5] == [("validation", "natural"), ("validation", "fgsm"), ("validation", "fgsm/sampled"),
                        ("validation", "pgd"), ("validation", "pgd/sampled")]
    assert ("validation", "square/sampled") not in keys  # a gradient-free attack runs once
    shares = [work.share(f"{split}: {key}") for split, key in keys]
    assert shares == sorted(shares) and 0 < shares[0] and shares[-1] < 1
    passes = {(split, key): passes for split, key, passes in work.runs}
    probe = [key for split, key, _ in work.runs if split == "probe"]
    assert keys[-3:] == [("probe", key) for key in probe] == [("probe", k) for k in ("natural", "pgd", "pgd/sampled")]
    scored = 1 - sum(passes["probe", key] for key in probe) / work.passes()  # the suite's own share, the probe's after
    assert work.share("validation: pgd/sampled") < 200 / 2200 * scored < work.share("test: natural")  # by images
    assert passes["test", "pgd"] > 10 * passes["test", "fgsm"]  # 20 steps against 1
    assert passes["test", "pgd"] == pytest.approx(10 * passes["validation", "pgd"])  # 2000 images against 200
    # the probe: PGD at twice the steps and twice the EOT draws on the first 100 test images
    assert passes["probe", "pgd"] == pytest.approx(4 * passes["test", "pgd"] / 20, rel=0.02)
    assert work.share("elsewhere: x") == 0.0


def test_the_quick_export_costs_about_a_hundred_per_epoch_scorings() -> None:
    threat = QUICK.threat
    export, epoch = QUICK.export_suite.work(threat, True), QUICK.epoch_suite.work(threat, True)
    assert epoch == pytest.approx(1 * 2 + 10 * 2 + 2 / 3 * 3)  # FGSM and PGD-10 with 2 draws, 3 predictions
    assert 50 < export / epoch < 200  # AutoAttack's 100 APGD steps, both gradient ways, nominally on every image
    assert QUICK.export_suite.work(threat, False) < export  # a deterministic model takes one way, one draw


def test_the_eta_is_never_zero_while_the_export_runs_past_its_estimate() -> None:
    model = SearchProgress(2, 2, started=0.0, eta_plan=EtaPlan(export_ratio=10.0))
    for trial in ("a", "b"):
        view = model.view(trial)
        view.epoch, view.outcome = 2, Outcome.FINISHED
        model.record_epoch(trial, 10.0, 1.0, running=1)
    model.phase = "scoring"
    assert model.eta_s(now=100.0) == pytest.approx(10 * 1.0 + model.eta_plan.fixed_s)  # the estimate, not started
    model.export_started, model.export_done = 100.0, 0.0
    assert model.eta_s(now=200.0) == pytest.approx(model.eta_plan.fixed_s)  # past the estimate, nothing known
    model.export_done = 0.5
    # its progress says as long again, its plan says nothing left: each counts by the share done
    assert model.eta_s(now=200.0) == pytest.approx(0.5 * 100 + 0.5 * 0 + model.eta_plan.fixed_s)
    assert from_json(json.loads(json.dumps(model.to_json()))).eta_s(now=200.0) == pytest.approx(
        model.eta_s(now=200.0), rel=0.01)  # --status reads the same from progress.json
    model.phase = "done"
    assert model.eta_s(now=300.0) == 0.0  # nothing left
    model.phase = "interrupted"
    assert model.eta_s(now=300.0) is None  # --resume decides


# the export suite the recorded run was scored with: the quick preset's before its APGD took AutoAttack's 100 steps
_RECORDED_EXPORT_SUITE = QUICK.export_suite.with_budget(parse_assignments("apgd-ce.steps=20,apgd-dlr.steps=20,"
                                                                          "apgd-l2.steps=20"))


def _replay(record: dict) -> list[tuple[int, float | None, int]]:
    """(time, ETA, true time left) at every event of a recorded run, its ETA computed as the search computes it."""
    stochastic = record["stochastic"]
    scored = 500  # the quick preset's per-epoch scoring (eval_limit) of its 1000 validation images
    per_epoch = QUICK.epoch_suite.work(QUICK.threat, stochastic) * scored
    images = record["images"]
    export = _RECORDED_EXPORT_SUITE
    plan = EtaPlan(rungs=tuple(record["rungs"]),
                   export_ratio=export.work(QUICK.threat, stochastic) * sum(images.values()) / per_epoch,
                   objective_ratio=QUICK.objective_suite.work(QUICK.threat, stochastic) * 1000 / per_epoch)
    work = ExportWork.of(export, QUICK.threat, stochastic, images, probed=False)  # recorded before the probe
    model = SearchProgress(record["num_samples"], record["max_epochs"], started=0.0, eta_plan=plan)
    out = []
    for event in record["events"]:
        kind, now = event["event"], float(event["t"])
        if kind == "phase":
            model.phase = event["phase"]
        elif kind == "export":
            model.export_started = model.export_started or now
            model.export_done = work.share(event["label"])
        else:
            view = model.view(event["trial"])
            view.epoch = event.get("epoch", view.epoch)
            view.outcome = {"started": Outcome.RUNNING, "epoch": Outcome.RUNNING, "finished": Outcome.FINISHED,
                            "pruned": Outcome.PRUNED}[kind]
            if kind == "epoch":
                model.record_epoch(event["trial"], event["epoch_s"], event["eval_s"], event["running"])
        out.append((event["t"], model.eta_s(now=now), record["end"] - event["t"]))
    return out


def test_on_a_recorded_run_the_eta_is_within_half_again_of_the_truth_after_the_first_rung() -> None:
    record = json.loads(RECORDED.read_text())
    readings = _replay(record)
    first_rung = min(e["t"] for e in record["events"] if e["event"] == "epoch" and e["epoch"] == 2)
    checked = [(t, eta, truth) for t, eta, truth in readings if t >= first_rung and truth >= 30]
    assert len(checked) > 40  # training, and the export's scoring
    far = [(t, round(eta or 0), truth) for t, eta, truth in checked if not truth / 1.5 <= (eta or 0) <= truth * 1.5]
    assert not far, far
    assert all(eta is not None and eta > 0 for t, eta, truth in readings if truth > 0 and t >= first_rung)


def test_a_search_of_any_size_costs_the_same_to_estimate() -> None:
    plan = EtaPlan(rungs=(1, 2, 4, 8))
    measured = Measured(epoch_s=10.0, eval_alone_s=1.0, slots=2)
    few, many = plan.training_epochs([], 100, 15), plan.training_epochs([], 10**12, 15)  # a found progress.json's
    halving = 1 + 1 / 2 + 2 / 4 + 4 / 8 + 7 / 16  # a trial's epochs when ASHA keeps exactly 1/eta at each rung
    assert halving < few / 100 < 15 and halving < many / 10**12 <= few / 100
    assert plan.training_s([], 10**12, 15, measured) > 0
