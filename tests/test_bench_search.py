"""bench.bench_search: the anytime curve, equal trial-epochs, the summary, refusals and one tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import bench_search
from bench.bench_search import RunFigures, anytime_curve, best_within, summarise
from trainables.cli import run_main
from tuner.trials import TrialRecord


def _record(tid: str, epochs: int, objective: float, outcome: str = "finished", suspect: float = 0.0) -> TrialRecord:
    final = {"objective": objective, "final_evaluated": float(outcome == "finished"), "suspect": suspect}
    return TrialRecord(tid, outcome, {}, [{"epoch": float(e + 1)} for e in range(epochs)], final)


def test_anytime_curve_follows_creation_order_and_counts_only_exportable_trials() -> None:
    records = [_record("a", 3, 0.30), _record("b", 1, 0.90, outcome="pruned"), _record("c", 3, 0.90, suspect=1.0),
               _record("d", 2, 0.40), _record("e", 3, 0.35)]
    order = {"d": 0, "b": 1, "a": 2, "c": 3, "e": 4}  # Tune's ids are random: the study's numbers give the order
    assert anytime_curve(records, order) == ((2, 0.40), (3, 0.40), (6, 0.40), (9, 0.40), (12, 0.40))
    curve = anytime_curve(records, {"a": 0, "b": 1})  # d, c and e unknown: after, by id
    assert curve[0] == (3, 0.30) and curve[-1] == (12, 0.40)
    assert math.isnan(anytime_curve([_record("f", 1, 0.2, outcome="failed")], {})[0][1])


def test_best_within_takes_the_longest_prefix_that_fits() -> None:
    curve = ((3, 0.30), (6, 0.30), (9, 0.45), (12, 0.50))
    assert best_within(curve, 9) == (0.45, 3) and best_within(curve, 11) == (0.45, 3)
    assert best_within(curve, 100) == (0.50, 4)
    best, trials = best_within(curve, 2)
    assert math.isnan(best) and trials == 0


def _run(strategy: str, seed: int, objective: float, epochs: int, curve: tuple = ()) -> RunFigures:
    return RunFigures(strategy, seed, objective, epochs, wall_s=10.0 * epochs, trials=4, outcomes={"finished": 4},
                      curve=curve)


def test_summary_compares_at_equal_trials_and_at_equal_trial_epochs() -> None:
    reference_curve = ((3, 0.30), (6, 0.30), (9, 0.40), (12, 0.50))
    runs = [_run("tpe+asha", 0, 0.50, 8), _run("random+fifo", 0, 0.50, 12, reference_curve),
            _run("tpe+asha", 1, 0.40, 6), _run("random+fifo", 1, 0.40, 12, reference_curve)]
    summary = summarise(runs)
    assert summary["tpe+asha"]["objective"]["mean"] == pytest.approx(0.45)
    assert summary["tpe+asha"]["objective"]["std"] == pytest.approx(math.sqrt(0.005))
    assert summary["ratios"]["objective"] == pytest.approx(1.0)
    assert summary["ratios"]["trial_epochs"] == pytest.approx(7 / 12)
    equal = summary["reference_at_equal_trial_epochs"]
    assert equal["trials"] == [2, 2]  # 6 and 8 trial-epochs: random + FIFO's first two trials (3 epochs each)
    assert equal["objective"]["mean"] == pytest.approx(0.30) and equal["ratio"] == pytest.approx(0.45 / 0.30)
    json.dumps(summary)  # the --out file


def test_no_equal_trial_epochs_figure_when_asha_saved_nothing() -> None:
    runs = [_run("tpe+asha", 0, 0.5, 12), _run("random+fifo", 0, 0.4, 12, ((12, 0.4),))]
    summary = summarise(runs)
    assert summary["reference_at_equal_trial_epochs"] is None
    assert math.isnan(summary["tpe+asha"]["objective"]["std"])  # one seed: no spread


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["--num-samples", "0"], "--num-samples must be >= 1, got 0"),
        (["--space", "nope"], "invalid choice: 'nope'"),
        (["--budget", "pgd.stepz=3"], "cannot set pgd.stepz"),
        (["--attacks", "fgsm,deepfool"], "unknown attack 'deepfool'"),
    ],
)
def test_bad_flags_are_one_line_before_any_search(tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    import ray

    try:
        code = run_main(bench_search.main, ["--storage-path", str(tmp_path), *args], prog=bench_search.PROG)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not ray.is_initialized() and not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.ray
def test_tiny_bench_runs_both_strategies_and_writes_json_and_figure(tmp_path: Path, capsys) -> None:
    out, figure = tmp_path / "search.json", tmp_path / "search.png"
    code = run_main(bench_search.main, ["--seeds", "1", "--num-samples", "2", "--epochs", "1", "--train-limit", "200",
                                        "--val-limit", "100", "--test-limit", "50", "--out", str(out),
                                        "--figure", str(figure)], prog=bench_search.PROG)
    assert code == 0
    report = json.loads(out.read_text())
    runs = {r["strategy"]: r for r in report["runs"]}
    assert set(runs) == {"tpe+asha", "random+fifo"}
    for run in runs.values():
        assert run["trials"] == 2 and run["trial_epochs"] == 2 and run["wall_s"] > 0
        assert [spent for spent, _ in run["curve"]] == [1, 2]
        assert run["curve"][-1][1] == run["objective"] or math.isnan(run["objective"])
    assert runs["tpe+asha"]["curve"][0] == runs["random+fifo"]["curve"][0]  # the same known-good point first
    assert report["settings"]["attacks"] == "fgsm,pgd" and figure.stat().st_size > 0
    assert "tpe+asha / random+fifo" in capsys.readouterr().out
