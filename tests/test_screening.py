"""``--screen N --promote M``: short trials first, the best in full; refusals, the rungs' settings, a run, a resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from trainables.evaluation import SuiteOverrides
from tuner.search import SearchConfig, run_search
from tuner.search.screening import PROMOTE, PROMOTED, promoted_config, screen_config, screen_epochs
from tuner.trials import read_trials


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"screen": 1}, "--screen needs at least 2 configurations"),
        ({"screen": 0, "promote": 2}, "go with --screen N, not --screen off"),
        ({"screen": 4, "num_samples": 3}, "--num-samples goes without --screen"),
        ({"screen": 4, "objective": "pareto"}, "not with --objective pareto"),
        ({"screen": 4, "screen_epochs": 0}, "--screen-epochs must be >= 1"),
        ({"screen": 4, "promote": 0}, "--promote must be >= 1"),
    ],
)
def test_bad_screen_settings_are_refused(settings: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        SearchConfig(**settings)


def test_the_quick_main_job_is_screened() -> None:
    from search_spaces.presets import PAPER, QUICK

    assert SearchConfig().screened(QUICK.screen) == 12 and SearchConfig().promoted == 2  # as many as 13 min hold
    assert SearchConfig(screen=0).screened(QUICK.screen) == 0 and PAPER.screen == 0


def test_what_is_screened_explicitly_or_by_the_preset() -> None:
    assert SearchConfig(screen=5).screened(0) == 5 and SearchConfig(screen=0).screened(8) == 0
    assert SearchConfig().screened(8) == 8 and SearchConfig().screened(0) == 0  # the preset's default
    assert SearchConfig(num_samples=4).screened(8) == 0  # --num-samples asks for plain trials
    assert SearchConfig(objective="pareto").screened(8) == 0
    assert SearchConfig(promote=3).screened(8) == 8
    with pytest.raises(ValueError, match="--promote 4 is more than the 3 configurations screened"):
        SearchConfig(screen=3, promote=4).screened(0)
    with pytest.raises(ValueError, match="go with a screened search"):
        SearchConfig(promote=2).screened(0)  # nothing screened: the preset screens nothing
    with pytest.raises(ValueError, match="go with a screened search"):
        SearchConfig(num_samples=4, screen_epochs=2).screened(8)


def test_the_rungs_settings(tmp_path: Path) -> None:
    cfg = SearchConfig(space="lwta", screen=8, storage_path=str(tmp_path), name="job", seed=3, scheduler="asha",
                       suite=SuiteOverrides(eps=0.2))
    assert cfg.promoted == 2 and screen_epochs(cfg, 15) == 3 and screen_epochs(cfg, 2) == 1
    assert screen_epochs(SearchConfig(screen=8, screen_epochs=5), 15) == 5
    screen = screen_config(replace(cfg, promote_from="screen"), 8, 15)  # the screen rung promotes nothing itself
    assert (screen.folder.name, screen.num_samples, screen.epochs, screen.scheduler) == ("job-screen", 8, 3, "fifo")
    assert screen.screened(8) == 0 and screen.seed == 3 and screen.suite.eps == 0.2 and screen.space_points
    verdict = tmp_path / PROMOTED
    verdict.write_text(json.dumps([{"lr": 0.1}, {"lr": 0.2}]))
    full = promoted_config(cfg, verdict, 2)
    assert (full.folder.name, full.num_samples, full.epochs, full.scheduler) == ("job", 2, None, "fifo")
    assert full.screened(8) == 0  # the promote rung screens nothing, whatever the preset says
    strategy = full.strategy(2)
    assert not strategy.space_points and [dict(p) for p in strategy.points] == [{"lr": 0.1}, {"lr": 0.2}]


def test_a_promoted_point_trains_for_its_own_epochs() -> None:
    from search_spaces import get_space
    from search_spaces.presets import PRESETS
    from tuner.trials.strategy import DefineBySpace, PointEpochs, Strategy, build_searcher, point_epochs
    from tuner.trials.trial import TrialContext, trial_spec

    preset, space = PRESETS["quick"], get_space("lwta")
    first, second = space.points_to_evaluate(preset)
    strategy = Strategy(scheduler="fifo", num_samples=3, points=({**first, "epochs": 7}, second), space_points=False)
    assert point_epochs(strategy.points) == (PointEpochs(tuple(first.items()), 7),)
    searcher = build_searcher(strategy, "lwta", preset, None, "job")
    own, plain, sampled = (searcher.suggest(t) for t in ("a", "b", "c"))
    assert own == {**first, "epochs": 7}  # the point's own epochs: a constant of its trial's configuration
    assert plain == second and "epochs" not in sampled  # a point without them, and the sampler's: the run's
    context = TrialContext(space="lwta", base=space.fixed(preset), objective_suite=preset.objective_suite)
    assert trial_spec(context, own).train.epochs == 7 and trial_spec(context, plain).train.epochs == preset.train.epochs
    assert DefineBySpace("lwta", preset, point_epochs(strategy.points)).schedules[0].matches({**first})
    assert not PointEpochs(tuple(first.items()), 7).matches({**first, "lr": first["lr"] * 1.001})
    from tuner.console.eta import TimeBudget
    from tuner.search.budget import PromoteEpochs
    from tuner.search.screening import _promote_line

    line = _promote_line(PromoteEpochs(11, 30.0, 342.0, (17, 11)), 15, TimeBudget(780.0, 3))
    assert line == (" (what the 13-minute --time-budget leaves: 5.7 minutes, each at its own pace on its own slot, "
                    "the slowest at 30 s an epoch; 15 without a budget, at most 30)")
    for bad in (0, 2.5, True, "7"):
        with pytest.raises(ValueError, match="'epochs' must be a whole number >= 1"):
            Strategy(points=({**first, "epochs": bad},))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--screen", "3", "--promote", "5"], "--promote 5 is more than the 3 configurations screened"),
        (["--screen", "some"], "must be a number of configurations or 'off'"),
        (["--screen", "off", "--screen-epochs", "2"], "not --screen off"),
        (["--num-samples", "3", "--promote", "2"], "go with a screened search"),
        (["--screen", "4", "--screen-epochs", "15"], "--screen-epochs 15 is not a short schedule"),
        (["--time-budget", "-3"], "--time-budget must be a finite number of minutes >= 0"),
        (["--time-budget", "soon"], "must be a number of minutes or 'off'"),
        (["--screen", "off", "--time-budget", "10"], "--time-budget go with a screened search"),
        (["--num-samples", "3", "--time-budget", "10"], "--time-budget go with a screened search"),
        (["--screen", "off", "--promote-from", "screen"], "--promote, --promote-from, --screen-epochs"),
    ],
)
def test_the_command_line_refuses_in_one_line(tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    from trainables.cli import run_main
    from tuner.search.cli import PROG, main

    try:
        code = run_main(main, [*args, "--storage-path", str(tmp_path)], prog=PROG)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not any(tmp_path.iterdir())


def _params(row: dict) -> dict:
    """A results.parquet row's sampled settings (the columns ``param/...`` it has)."""
    return {k.removeprefix("param/"): v for k, v in row.items() if k.startswith("param/") and v is not None}


@pytest.mark.slow
@pytest.mark.ray
def test_a_screened_search_trains_the_screens_best_in_full_and_resumes_after_the_screen(tmp_path: Path, capsys,
                                                                                        monkeypatch) -> None:
    from trainables.cli import run_main
    from tuner.search import screening
    from tuner.search.cli import PROG, main
    from tuner.trials.warm import POINT_WARM, WarmStart

    # a time budget of 3 s holds none of the 4 configurations: the screen starts the least one may, 3 (promote + 1)
    monkeypatch.setattr(screening, "PROMOTE_MARGIN", 1.0)  # tiny trials score far apart: promote both whatever
    cfg = SearchConfig(space="lwta", screen=4, promote=2, epochs=3, screen_epochs=2, train_limit=200, val_limit=50,
                       test_limit=50, suite=SuiteOverrides(attacks=("fgsm",)), storage_path=str(tmp_path / "runs"),
                       name="job", export_dir=str(tmp_path / "exports"), live=False, fuse=1, max_concurrent=2,
                       time_budget=0.05, promote_from="screen")
    outcome = run_search(cfg)
    assert not outcome.interrupted and outcome.export_path is not None and outcome.best is not None
    err = capsys.readouterr().err
    assert "screened 3 configurations for 2 epochs (of up to 4: the 0.05-minute --time-budget held fewer" in err
    # nothing left of the budget: the promote rung trains the least, one epoch more than the screen
    assert "the best 2 train for 3 epochs more from their screen weights (the least after a 2-epoch screen: the " \
        "0.05-minute --time-budget" in err
    assert json.loads((tmp_path / "runs" / "job-screen" / PROMOTE).read_text())["epochs"] == 3
    screened = read_trials(tmp_path / "runs" / "job-screen" / "results.parquet").to_pylist()
    assert len(screened) == 3 and {row["epochs"] for row in screened} == {2}  # --screen-epochs
    verdict = json.loads((tmp_path / "runs" / "job-screen" / PROMOTED).read_text())
    assert len(verdict) == 2
    starts = [WarmStart.decode(point[POINT_WARM]) for point in verdict]  # each names its screen trial's weights
    chosen = [r for r in screened if _params(r) in [{k: v for k, v in p.items() if k != POINT_WARM} for p in verdict]]
    left = [r for r in screened if r not in chosen]
    assert len(chosen) == 2 and all(r["exportable"] for r in chosen)  # the screen's best two go on
    assert sorted(s.trial_id for s in starts) == sorted(r["trial_id"] for r in chosen)
    assert all(s.epochs == 2 and Path(s.checkpoint).is_dir() and "job-screen" in s.checkpoint for s in starts)
    assert min(r["objective"] for r in chosen) >= max((r["objective"] for r in left if r["exportable"]), default=0)
    assert sorted(map(json.dumps, (r.params for r in outcome.records))) == sorted(map(json.dumps, verdict))
    assert all(len(r.history) == 3 for r in outcome.records)  # promoted: the full schedule, from the screen's weights
    assert json.loads((outcome.export_path / "metrics.json").read_text())["search"]["experiment"].endswith("runs/job")

    with pytest.raises(FileExistsError, match="add --resume"):  # a second run over the first refuses
        run_search(cfg)

    # stopped between the rungs: the screen is done, the promote rung never began; --resume trains the verdict
    import shutil

    shutil.rmtree(tmp_path / "runs" / "job")
    assert run_main(main, ["--status", "job", "--storage-path", str(tmp_path / "runs")], prog=PROG) == 0
    assert "screening first, in" in capsys.readouterr().out  # --status NAME shows the screen before the promote rung
    stamp = (tmp_path / "runs" / "job-screen" / "results.parquet").stat().st_mtime_ns
    # as a screen whose finalists each had a slot of their own writes them: each point with its own epochs
    verdict = [{**point, "epochs": own} for point, own in zip(verdict, (4, 3), strict=True)]
    (tmp_path / "runs" / "job-screen" / PROMOTED).write_text(json.dumps(verdict))
    again = run_search(SearchConfig(**{**cfg.__dict__, "resume": True}))
    assert not again.interrupted and again.export_path is not None
    assert (tmp_path / "runs" / "job-screen" / "results.parquet").stat().st_mtime_ns == stamp  # not screened again
    assert sorted(json.dumps(r.params, sort_keys=True) for r in again.records) == \
        sorted(json.dumps(p, sort_keys=True) for p in verdict)
    assert sorted(len(r.history) for r in again.records) == [3, 4]  # each trained its own epochs


def test_resume_continues_an_experiment_begun_without_a_screen(tmp_path: Path, monkeypatch) -> None:
    from tuner.search import screening

    ran: list[SearchConfig] = []
    restorable = {str(tmp_path / "runs" / "job")}  # an experiment of 6 trials under ASHA, from before the screen
    monkeypatch.setattr(screening.tune.Tuner, "can_restore", staticmethod(lambda path: str(path) in restorable))
    stopped = SimpleNamespace(interrupted=True)
    monkeypatch.setattr(screening, "run_experiment", lambda cfg, command, **kw: ran.append(cfg) or stopped)
    cfg = SearchConfig(space="lwta", storage_path=str(tmp_path / "runs"), name="job", resume=True)
    assert run_search(cfg) is stopped and ran == [cfg]  # resumed as it began: no screen rung
    restorable.add(str(tmp_path / "runs" / "job-screen"))  # a screened search stopped in its screen
    ran.clear()
    assert run_search(cfg) is stopped  # stopped again, in the screen
    assert ran[0].folder.name == "job-screen" and ran[0].resume


def _screened(trial_id: str, objective: float, checkpoint: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, objective=objective, natural=0.8, exportable=True,
                           params={"lr": objective}, member=None, final={"epoch": 3.0}, history=[{}] * 3,
                           checkpoint=None if checkpoint is None else SimpleNamespace(path=checkpoint))


def test_a_runner_up_far_below_the_best_is_not_promoted_and_the_best_takes_its_slot(tmp_path: Path, monkeypatch,
                                                                                    capsys) -> None:
    from tuner.search import screening

    ran: list[SearchConfig] = []
    screen = SimpleNamespace(interrupted=False, records=[_screened("b", 0.285), _screened("a", 0.67)],
                             progress=SimpleNamespace(slots=2, budget_s=None))
    done = SimpleNamespace(interrupted=False)
    monkeypatch.setattr(screening, "run_experiment",
                        lambda cfg, command, **kw: ran.append(cfg) or (screen if len(ran) == 1 else done))
    monkeypatch.setattr(screening.torch.cuda, "is_available", lambda: False)
    cfg = SearchConfig(space="lwta", storage_path=str(tmp_path / "runs"), name="job", screen=4)
    assert run_search(cfg) is done
    full = ran[1]
    assert full.num_samples == 1 and full.cpus_per_trial == 2  # the best alone, on both slots
    assert json.loads((tmp_path / "runs" / "job-screen" / PROMOTED).read_text()) == [{"lr": 0.67}]
    err = capsys.readouterr().err
    assert "; the best 1 trains for 15 epochs in" in err
    assert "not promoted: b 38.5 points below the best after the screen (margin 5); the promoted take their slots " \
        "too (2 each, priced at 1.15x the pace)" in err
    assert json.loads((tmp_path / "runs" / "job-screen" / PROMOTE).read_text())["cpus_per_trial"] == 2
    again = run_search(SearchConfig(**{**cfg.__dict__, "resume": True}))  # resumed after the screen: as recorded
    assert again is done and len(ran) == 3 and ran[2].cpus_per_trial == 2 and ran[2].num_samples == 1


def test_the_promote_margin_and_who_takes_the_free_slots(monkeypatch) -> None:
    from tuner.search import screening
    from tuner.search.screening import widened, within_margin

    ranked = [_screened("a", 0.70), _screened("b", 0.66), _screened("c", 0.64)]
    assert [r.trial_id for r in within_margin(ranked)] == ["a", "b"]  # 4 points behind: on; 6: off
    assert [r.trial_id for r in within_margin(ranked[:1])] == ["a"]
    monkeypatch.setattr(screening.torch.cuda, "is_available", lambda: False)
    two = SimpleNamespace(slots=2)
    assert widened(SearchConfig(), 1, two) == 2 and widened(SearchConfig(), 2, two) == 1
    assert widened(SearchConfig(), 1, SimpleNamespace(slots=1)) == 1 and widened(SearchConfig(), 1, None) == 1
    assert widened(SearchConfig(promote=3), 1, SimpleNamespace(slots=3)) == 2
    assert widened(SearchConfig(address="auto"), 1, two) == 1  # a cluster's: not known to pay
    assert widened(SearchConfig(gpus_per_trial=1), 1, two) == 1  # a GPU trial would hold CPUs it does not use
    monkeypatch.setattr(screening.torch.cuda, "is_available", lambda: True)
    assert widened(SearchConfig(), 1, two) == 1


@pytest.mark.parametrize("promote_from", ["screen", "scratch"])
def test_a_promoted_configuration_starts_from_its_screen_weights(tmp_path: Path, monkeypatch, capsys,
                                                                 promote_from: str) -> None:
    from tuner.search import screening
    from tuner.trials.warm import POINT_WARM, WarmStart

    ran: list[SearchConfig] = []
    where = str(tmp_path / "runs" / "job-screen" / "trial_a" / "checkpoint_000002")
    screen = SimpleNamespace(interrupted=False, records=[_screened("a", 0.67, where), _screened("b", 0.66)],
                             progress=SimpleNamespace(slots=2, budget_s=None))
    done = SimpleNamespace(interrupted=False)
    monkeypatch.setattr(screening, "run_experiment",
                        lambda cfg, command, **kw: ran.append(cfg) or (screen if len(ran) == 1 else done))
    cfg = SearchConfig(space="lwta", storage_path=str(tmp_path / "runs"), name="job", screen=4, fuse="auto",
                       promote_from=promote_from)
    assert run_search(cfg) is done
    verdict = json.loads((tmp_path / "runs" / "job-screen" / PROMOTED).read_text())
    err = capsys.readouterr().err
    assert ran[1].fuse == 1  # each its own weights and epochs: the promote rung is never fused
    if promote_from == "scratch":
        assert verdict == [{"lr": 0.67}, {"lr": 0.66}] and "screen weights" not in err
        return
    # the best left a checkpoint: it starts from there; the runner-up left none (lost): from scratch
    assert verdict[1] == {"lr": 0.66} and set(verdict[0]) == {"lr", POINT_WARM}
    assert WarmStart.decode(verdict[0][POINT_WARM]) == WarmStart(where, "a", 3)
    assert "; the best 2 train for 15 epochs more from their screen weights in" in err
    strategy = ran[1].strategy(2)  # the promote rung's searcher hands the point's warm start to its trial
    from search_spaces import get_space
    from search_spaces.presets import PRESETS
    from tuner.trials.strategy import build_searcher

    point = {**get_space("lwta").points_to_evaluate(PRESETS["quick"])[0], POINT_WARM: verdict[0][POINT_WARM]}
    strategy = type(strategy)(scheduler="fifo", num_samples=1, points=(point,), space_points=False)
    assert build_searcher(strategy, "lwta", PRESETS["quick"], None, "job").suggest("t") == point


def test_where_a_warm_start_is_kept_and_what_is_refused() -> None:
    from tuner.trials.strategy import Strategy
    from tuner.trials.warm import POINT_WARM, WarmStart, warm_start_of

    record = _screened("a", 0.7, "bucket/runs/job-screen/trial_a/checkpoint_000002")
    assert warm_start_of(record, "s3").checkpoint == "s3://bucket/runs/job-screen/trial_a/checkpoint_000002"
    assert warm_start_of(record).checkpoint == "bucket/runs/job-screen/trial_a/checkpoint_000002"
    assert warm_start_of(_screened("b", 0.7)) is None
    start = WarmStart("/x/checkpoint_000001", "t", 2, member=1)
    assert WarmStart.decode(start.encode()) == start
    for bad in ("", "nonsense", '{"checkpoint": ""}', '{"checkpoint": "/x", "trial_id": "t", "epochs": "2"}', 7):
        with pytest.raises(ValueError, match="'warm_from' must name a screen trial's checkpoint"):
            Strategy(points=({"lr": 0.1, POINT_WARM: bad},)) if bad else WarmStart.decode(bad)


def test_a_trial_reads_its_screen_weights_and_starts_over_without_them(fmnist, tmp_path: Path, capsys) -> None:
    import torch

    from trainables.data import DataConfig, Splits
    from trainables.models import ModelConfig
    from trainables.train import RunSpec, TrainConfig, fit, load_checkpoint
    from tuner.trials.trial import warm_weights_of
    from tuner.trials.warm import POINT_WARM, WarmStart

    spec = RunSpec(data=DataConfig(train_limit=256, val_limit=50), model=ModelConfig(name="cnn"),
                   train=TrainConfig(epochs=1, eval_limit=50))
    folder = tmp_path / "trial_a" / "checkpoint_000000"
    fit(spec, Splits(fmnist.train.head(256), fmnist.val.head(50), fmnist.test.head(50), fmnist.info),
        checkpoint_dir=folder)
    kept = load_checkpoint(folder).trained_weights()
    config = {"lr": 0.1, POINT_WARM: WarmStart(str(folder), "a", 1).encode()}
    weights = warm_weights_of(config, restored_any=False)
    assert weights is not None and all(torch.equal(v, weights[k]) for k, v in kept.items())
    assert warm_weights_of(config, restored_any=True) is None  # resumed from its own checkpoint: that one
    assert warm_weights_of({"lr": 0.1}, restored_any=False) is None
    (folder / "checkpoint.pt").write_bytes((folder / "checkpoint.pt").read_bytes()[:500])  # damaged since
    assert warm_weights_of(config, restored_any=False) is None
    lost = {POINT_WARM: WarmStart(str(tmp_path / "gone"), "b", 1).encode()}
    assert warm_weights_of(lost, restored_any=False) is None
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.endswith("; the trial starts from scratch") for line in lines), lines
    assert lines[0].startswith("robustune: screen trial a: ") and "screen trial b's checkpoint" in lines[1]
