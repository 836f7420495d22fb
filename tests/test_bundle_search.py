"""A fused search: bundles of trials of one shape in one Ray trial each, every member its own Optuna trial."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
import torch

from trainables.bundle import FusionCost
from tuner.bundles import choose

TINY = ["--epochs", "2", "--train-limit", "512", "--val-limit", "60", "--test-limit", "60", "--attacks", "fgsm",
        "--no-live", "--max-concurrent", "2"]


def test_auto_bundles_only_where_it_pays() -> None:
    slower = choose([FusionCost(1, 0.10), FusionCost(2, 0.13)])  # this CPU: a bundle costs more per trial
    assert slower.k == 1 and "does not pay" in slower.reason and "k=2 1.30x" in slower.reason
    assert "used at 0.85x or less" in slower.reason  # a share just under 1 says why it still did not pay
    faster = choose([FusionCost(1, 0.10), FusionCost(2, 0.06), FusionCost(4, 0.03), FusionCost(8, 0.035)])
    assert faster.k == 4 and "bundles of 4" in faster.reason
    assert choose([FusionCost(1, 0.10), FusionCost(2, 0.09)]).k == 1  # 10% cheaper does not pay the bother


def _study(experiment: Path) -> dict[str, optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=experiment.name, storage=f"sqlite:///{experiment / 'optuna.db'}")
    return {t.user_attrs["tune_trial_id"]: t for t in study.get_trials() if "tune_trial_id" in t.user_attrs}


@pytest.mark.slow
@pytest.mark.ray
def test_a_fused_search_trains_bundles_and_records_every_member(search, tmp_path: Path) -> None:
    points = tmp_path / "points.json"
    points.write_text(json.dumps([{"lr": 1.0e6, "mix_none": 0.0, "mix_fgsm": 0.0, "mix_pgd": 1.0},  # diverges
                                  {"eps_scale": -1.0}]))  # no run accepts it: a bundle of its own, failed, not retried
    proc = search.run("--space", "adversarial", "--num-samples", "5", "--fuse", "2", "--points", str(points), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = " ".join(proc.stderr.split())
    assert "--fuse 2: bundles of up to 2 trials of one shape" in said
    experiment = tmp_path / "runs" / "adversarial-quick"
    rows = pq.read_table(experiment / "results.parquet").to_pylist()
    assert len(rows) == 5  # one record per member, not per bundle
    bundles = {r["trial_id"].rsplit(".", 1)[0] for r in rows}
    assert len(bundles) == 3  # 2 + 2 of one shape, and the refused settings alone
    by_outcome = {}
    for row in rows:
        by_outcome.setdefault(row["outcome"], []).append(row)
    errors = sorted(r["error"] for r in by_outcome.get("failed", []))
    assert len(errors) == 2 and "loss became" in errors[1]
    assert errors[0].startswith("invalid training setting eps_scale")
    assert "retrying" not in proc.stderr  # a setting no run accepts fails once
    assert by_outcome.get("finished"), [(r["trial_id"], r["outcome"]) for r in rows]
    study = _study(experiment)  # every member is an Optuna trial of its own, told as such
    assert set(study) == {r["trial_id"] for r in rows}
    states = {"finished": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}
    for row in rows:
        trial = study[row["trial_id"]]
        assert row["study_state"] == trial.state.name == states[row["outcome"]], row
        if row["outcome"] == "finished":  # every epoch but the scored last one, as the pruner saw them
            assert sorted(trial.intermediate_values) == list(range(1, row["epochs"]))
            assert trial.value == pytest.approx(row["objective"])
        if row["outcome"] == "pruned":
            assert sorted(trial.intermediate_values) == list(range(1, row["epochs"] + 1))
    assert json.loads((experiment / "fusion.json").read_text()) == {"k": 2}

    from tuner.export import load_model

    export = tmp_path / "exports" / "adversarial-quick"
    metrics = json.loads((export / "metrics.json").read_text())
    assert metrics["search"]["trial_id"] in {r["trial_id"] for r in by_outcome["finished"]}
    assert load_model(export)(torch.rand(2, 1, 28, 28)).shape == (2, 10)  # an exported member is a single model
    status = search.run("--status", "adversarial-quick")
    assert status.returncode == 0 and all(r["trial_id"] in status.stdout for r in rows)


@pytest.mark.slow
def test_a_fused_search_trains_a_point_for_its_own_epochs_from_its_own_weights(fmnist, tmp_path: Path,
                                                                                monkeypatch) -> None:
    from dataclasses import replace

    from search_spaces import get_space
    from search_spaces.presets import PRESETS
    from trainables.data import Splits
    from trainables.train import fit, load_checkpoint
    from tuner.bundles import trial as bundle_trial
    from tuner.bundles.fuse import bundle_searcher, pruner_of
    from tuner.cluster.storage import StudyStorage
    from tuner.trials.strategy import Strategy, starting_points
    from tuner.trials.trial import TrialContext, trial_spec
    from tuner.trials.warm import POINT_WARM, WarmStart

    preset, space = PRESETS["quick"], get_space("lwta")
    first, second = space.points_to_evaluate(preset)
    splits = Splits(fmnist.train.head(256), fmnist.val.head(32), fmnist.test.head(32), fmnist.info)
    base = space.fixed(preset)
    context = TrialContext(space="lwta", base=replace(base, train=replace(base.train, eval_limit=32)),
                           objective_suite=preset.objective_suite)
    screen = tmp_path / "screen" / "checkpoint_000000"  # the second point's screen run
    fit(trial_spec(context, {**second, "epochs": 1}), splits, checkpoint_dir=screen)
    kept = load_checkpoint(screen).trained_weights()
    warm = WarmStart(str(screen), "s", 1).encode()
    strategy = Strategy(scheduler="fifo", num_samples=3, space_points=False,
                        points=({**first, "epochs": 1}, {**second, "epochs": 1, POINT_WARM: warm}))
    storage = StudyStorage("sqlite", f"sqlite:///{tmp_path / 'optuna.db'}")
    searcher = bundle_searcher(strategy, "lwta", preset, context, storage, "job", optuna.samplers.RandomSampler(0),
                               starting_points(strategy, "lwta", preset), k=2)
    own, warmed = searcher.suggest("a"), searcher.suggest("b")
    assert own == {"members": [{"number": 0, "params": {**first, "epochs": 1}}]}  # what --points asked, kept
    assert warmed == {"members": [{"number": 1, "params": {**second, "epochs": 1, POINT_WARM: warm}}]}

    given, reports = [], []
    real = bundle_trial.fit_bundle
    monkeypatch.setattr(bundle_trial, "fit_bundle", lambda specs, *a, initial, **kw: given.append(
        (specs[0].train.epochs, initial)) or real(specs, *a, initial=initial, **kw))
    monkeypatch.setattr(bundle_trial.tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(bundle_trial.tune, "report", lambda metrics, checkpoint=None: reports.append(metrics))
    bundle = bundle_trial.BundleContext(context, storage, "job", pruner_of(strategy), strategy.metrics)
    for config in (own, warmed):
        bundle_trial.run_bundle_trial(config, bundle, splits)
    assert [epochs for epochs, _ in given] == [1, 1]  # not the preset's 15
    assert given[0][1] == [None]
    assert all(torch.equal(v, given[1][1][0][k]) for k, v in kept.items())  # the screen run's weights
    study = optuna.load_study(study_name="job", storage=storage.open())
    assert [t.state.name for t in study.get_trials()[:2]] == ["COMPLETE", "COMPLETE"]
