"""bench.bench_search: the arms' sizing, the paired summary and its targets, refusals and one tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import bench_search
from bench.bench_search import (
    RunFigures,
    alone_epochs,
    alone_pace,
    arm_config,
    fifo_trials,
    is_point,
    parse_epsilons,
    summarise,
)
from trainables.cli import run_main
from trainables.evaluation import SuiteOverrides
from tuner.console.progress import SearchProgress, TrialView
from tuner.search import SearchConfig
from tuner.search.screening import THREAD_GAIN


def _base() -> SearchConfig:
    return SearchConfig(space="lwta", seed=2, suite=SuiteOverrides(eps=0.2), live=False, cpus_per_trial=1.0)


def _run(arm: str, seed: int, robust: float, natural: float, eps: float = 0.1, epochs: int = 48) -> RunFigures:
    return RunFigures(arm, eps, seed, test_natural=natural, test_robust=robust, val_objective=robust,  # type: ignore[arg-type]
                      trial_epochs=epochs, wall_s=100.0, trials=6, epochs_per_trial=15, outcomes={"finished": 6},
                      first_point=True, exported={})


def test_references_are_sized_by_the_search_of_their_task_and_seed() -> None:
    base, search = _base(), _run("search", 2, 0.7, 0.85, eps=0.2, epochs=48)
    main = arm_config("search", base, slots=2, epochs=15, search=None)
    assert main.name == "search-eps0.2-seed2" and main.max_concurrent == 2 and main.sampler == "tpe"
    alone = arm_config("start-alone", base, slots=2, epochs=15, search=search)
    assert (alone.num_samples, alone.max_concurrent, alone.cpus_per_trial, alone.epochs) == (1, 1, 2.0, 24)
    assert alone.scheduler == "fifo" and alone.fuse == 1 and alone.seed == 2 and alone.suite.eps == 0.2
    rand = arm_config("random-fifo", base, slots=2, epochs=15, search=search)
    assert (rand.sampler, rand.scheduler, rand.num_samples, rand.epochs) == ("random", "fifo", 3, None)
    with pytest.raises(ValueError, match="sized by the search"):
        arm_config("random-fifo", base, slots=2, epochs=15, search=None)
    screened = arm_config("screened", base, slots=2, epochs=15, search=None, screen=8)
    assert (screened.screen, screened.promote, screened.time_budget, screened.num_samples) == (8, 2, 0, None)


def test_start_alone_fills_the_searchs_training_minutes_at_the_points_own_pace() -> None:
    """Sized by minutes, not by trial-epochs / slots (which assumed the second thread gains nothing)."""
    base = _base()
    alone_view = TrialView("a", params={"lr": 0.05}, timed=14, seconds=14 * 16.0)
    other = TrialView("b", params={"lr": 0.1}, timed=10, seconds=10 * 12.0)
    assert alone_pace(SearchProgress(num_samples=1, max_epochs=15, trials={"a": alone_view}, slots=1), ["a"]) == 16.0
    shared = SearchProgress(num_samples=2, max_epochs=15, trials={"b": other, "a": alone_view}, slots=2)
    assert alone_pace(shared, ["a"]) == pytest.approx(16.0 / THREAD_GAIN)  # priced as the search prices a widened trial
    assert math.isnan(alone_pace(SearchProgress(num_samples=1, max_epochs=15, trials={"b": other}), ["a"]))
    assert math.isnan(alone_pace(None, ["a"])) and math.isnan(alone_pace(shared, []))
    search = _run("search", 2, 0.7, 0.85, eps=0.2, epochs=35)
    timed = RunFigures(**{**search.__dict__, "train_s": 500.0, "alone_pace_s": 16.0})
    assert arm_config("start-alone", base, slots=2, epochs=20, search=timed).epochs == 31  # 500 s // 16 s
    assert arm_config("start-alone", base, slots=2, epochs=15, search=timed).epochs == 30  # at most twice the preset's
    assert arm_config("start-alone", base, slots=2, epochs=15, search=search).epochs == 18  # no pace: 35 / 2


def test_random_fifo_fills_the_searchs_training_minutes_in_whole_rounds() -> None:
    """The same wall time: rounds of full trials side by side, each at the point's pace on one slot."""
    search = _run("search", 2, 0.7, 0.85, eps=0.2, epochs=45)
    timed = RunFigures(**{**search.__dict__, "train_s": 500.0, "alone_pace_s": 16.0})  # one slot: 18.4 s an epoch
    assert fifo_trials(timed, 2, 15) == 2  # 500 s hold one round of 15 x 18.4 = 276 s, not the 3 of 45 trial-epochs
    long = RunFigures(**{**timed.__dict__, "train_s": 600.0})
    assert fifo_trials(long, 2, 15) == 3  # two rounds fit, but the search trained only 45 trial-epochs
    assert fifo_trials(RunFigures(**{**long.__dict__, "trial_epochs": 90}), 2, 15) == 4
    short = RunFigures(**{**timed.__dict__, "train_s": 100.0})
    assert fifo_trials(short, 2, 15) == 2  # at least a round: the starting points
    assert fifo_trials(search, 2, 15) == 3  # no minutes: trial-epochs / epochs
    assert arm_config("random-fifo", _base(), slots=2, epochs=15, search=timed).num_samples == 2


def test_is_point_compares_the_points_keys() -> None:
    point = {"lr": 0.05, "ibp": False, "mix": "pgd"}
    assert is_point({"lr": 0.05 * (1 + 1e-12), "ibp": False, "mix": "pgd", "extra": 3}, point)
    assert not is_point({"lr": 0.0500001, "ibp": False, "mix": "pgd"}, point)
    assert not is_point({"lr": 0.05, "ibp": False}, point) and not is_point({"lr": 0.05}, {})


def test_summary_pairs_each_reference_with_the_search_of_its_seed() -> None:
    runs = [_run("search", 0, 0.75, 0.86), _run("start-alone", 0, 0.74, 0.866), _run("random-fifo", 0, 0.70, 0.88),
            _run("search", 1, 0.77, 0.86), _run("start-alone", 1, 0.74, 0.86),
            _run("search", 0, 0.60, 0.80, eps=0.2)]
    summary = summarise(runs)
    task = summary["0.1"]
    assert task["search"]["test_robust"]["mean"] == pytest.approx(0.76)
    assert task["search"]["test_robust"]["std"] == pytest.approx(math.sqrt(2e-4))
    alone = task["search-start-alone"]
    assert alone["seeds"] == 2 and alone["robust"]["mean"] == pytest.approx(0.02)
    assert alone["natural"]["mean"] == pytest.approx(-0.003)
    rand = task["search-random-fifo"]
    assert rand["seeds"] == 1 and rand["robust"]["mean"] == pytest.approx(0.05)
    assert task["targets"] == {"search_beats_start_alone": True, "search_at_least_random_fifo": True,
                               "screened_beats_start_alone": None, "screened_at_least_random_fifo": None}
    assert set(summary["0.2"]["targets"].values()) == {None}
    assert task["screened-search"]["seeds"] == 0
    runs[4] = _run("start-alone", 1, 0.74, 0.88)  # the search now 1.3 natural points below it
    assert summarise(runs)["0.1"]["targets"]["search_beats_start_alone"] is False
    runs.append(_run("screened", 1, 0.78, 0.88))
    task = summarise(runs)["0.1"]
    assert task["screened-search"]["seeds"] == 1 and task["screened-search"]["robust"]["mean"] == pytest.approx(0.01)
    assert task["targets"]["screened_beats_start_alone"] is True  # +4 robust points, equal natural
    json.dumps(summary)  # the --out file


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["--epsilons", "0.1,-0.2"], "--epsilons takes radii > 0"),
        (["--epsilons", "a"], "--epsilons takes comma-separated"),
        (["--epsilon", "0.3"], "from --epsilons, not --epsilon"),
        (["--arms", "start-alone"], "sized by the search"),
        (["--resume-from", "/nonexistent.json"], "not a bench_search --out file"),
        (["--screen", "1", "--arms", "screened"], "--screen must be >= 2"),
        (["--arms", "search,grid"], "--arms takes names from"),
        (["--slots", "0"], "--slots must be >= 1"),
        (["--num-samples", "0"], "--num-samples must be >= 1, got 0"),
        (["--space", "nope"], "invalid choice: 'nope'"),
        (["--budget", "pgd.stepz=3"], "cannot set pgd.stepz"),
        (["--attacks", "fgsm,deepfool"], "unknown attack 'deepfool'"),
    ],
)
def test_bad_flags_are_one_line_before_any_run(tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    import ray

    try:
        code = run_main(bench_search.main, ["--storage-path", str(tmp_path), *args], prog=bench_search.PROG)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not ray.is_initialized() and not any(tmp_path.iterdir())


def test_epsilons_parse() -> None:
    assert parse_epsilons("0.1, 0.2,") == (0.1, 0.2)


@pytest.mark.slow
@pytest.mark.ray
def test_tiny_bench_runs_every_arm_and_writes_json_and_figure(tmp_path: Path, capsys) -> None:
    out, figure = tmp_path / "search.json", tmp_path / "search.png"
    code = run_main(bench_search.main, ["--seeds", "1", "--epsilons", "0.2", "--num-samples", "2", "--epochs", "2",
                                        "--train-limit", "200", "--val-limit", "100", "--test-limit", "50",
                                        "--slots", "2", "--fuse", "off", "--attacks", "fgsm,pgd",
                                        "--budget", "pgd.steps=3",
                                        "--out", str(out), "--figure", str(figure)], prog=bench_search.PROG)
    assert code == 0
    report = json.loads(out.read_text())
    runs = {r["arm"]: r for r in report["runs"]}
    assert set(runs) == {"search", "start-alone", "random-fifo"}
    search, alone, rand = runs["search"], runs["start-alone"], runs["random-fifo"]
    assert search["trials"] == 2 and 3 <= search["trial_epochs"] <= 4 and search["epsilon"] == 0.2  # ASHA may stop one
    # the search's minutes and the point's pace (its timed epochs: each trial's first; a last one is not timed)
    assert search["train_s"] > 0 and search["alone_pace_s"] > 0
    assert alone["trials"] == 1 and alone["first_point"]
    assert alone["epochs_per_trial"] == alone_epochs(RunFigures(**search), 2, 4) == min(  # 4: twice the search's epochs
        4, math.floor(search["train_s"] / search["alone_pace_s"]))
    assert rand["trials"] == fifo_trials(RunFigures(**search), 2, 2) and rand["epochs_per_trial"] == 2
    for run in runs.values():
        assert 0 <= run["test_robust"] <= run["test_natural"] <= 1 and run["wall_s"] > 0
    summary = report["summary"]["0.2"]
    assert summary["search-start-alone"]["seeds"] == 1 and summary["search-random-fifo"]["seeds"] == 1
    assert figure.stat().st_size > 0
    assert "search - start-alone" in capsys.readouterr().out


def test_ctrl_c_says_what_each_command_continues_from(capsys) -> None:
    def stopped(argv: object) -> int:
        raise KeyboardInterrupt

    assert run_main(stopped, [], prog="p") == 130
    assert capsys.readouterr().err.strip() == "p: interrupted"  # no --resume to point at
    assert run_main(stopped, [], prog="p", interrupted="interrupted; continue with --resume-from it") == 130
    assert capsys.readouterr().err.strip() == "p: interrupted; continue with --resume-from it"
