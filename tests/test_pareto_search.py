"""``--objective pareto``: the front, the pick rule, the refusals, the two-objective searcher, one tiny search."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from search_spaces import PRESETS, get_space
from trainables.cli import run_main
from tuner.console.leaderboard import leaderboard
from tuner.search import SearchConfig, resolve_run
from tuner.trials import TrialRecord, best_trial, pick_from_front, read_trials, write_trials
from tuner.trials import front_of as pareto_front
from tuner.trials.strategy import build_searcher

TINY = ["--epochs", "1", "--train-limit", "200", "--val-limit", "50", "--test-limit", "50", "--attacks", "fgsm",
        "--no-live", "--max-concurrent", "2"]


def _record(tid: str, robust: float, natural: float, outcome: str = "finished", suspect: float = 0.0,
            evaluated: float = 1.0) -> TrialRecord:
    final = {"objective": robust, "objective_natural": natural, "final/natural_acc": natural,
             "final_evaluated": evaluated, "suspect": suspect}
    return TrialRecord(tid, outcome, {"lr": 0.05}, [{"epoch": 1.0, "natural_acc": natural, "robust_acc": robust}],
                       final)


def _records() -> list[TrialRecord]:
    return [
        _record("a", 0.40, 0.70),
        _record("b", 0.35, 0.80),
        _record("c", 0.30, 0.75),  # beaten by b on both
        _record("d", 0.40, 0.70),  # the same point as a: both on the front
        _record("e", 0.90, 0.95, suspect=1.0),  # would beat everyone, but gradient masking
        _record("f", 0.50, 0.90, outcome="pruned", evaluated=0.0),  # stopped early: never on the front
        _record("g", 0.45, math.nan),  # no natural accuracy
        _record("h", math.nan, math.nan, outcome="failed"),
        _record("i", 0.20, 0.80),  # as natural as b, less robust
    ]


# --- the front and the pick ------------------------------------------------------------------------

def test_front_holds_exportable_unbeaten_trials_most_robust_first() -> None:
    front = pareto_front(_records())
    assert [r.trial_id for r in front] == ["a", "d", "b"]
    assert pareto_front([]) == [] and pareto_front(_records()[4:8]) == []


def test_pick_is_the_most_robust_front_trial_above_the_natural_floor() -> None:
    records = _records()
    assert pick_from_front(records).trial.trial_id == "a"  # no rule: the best, as --objective robust picks it
    assert best_trial([r for r in records if r.trial_id != "g"]).trial_id == "a"
    for floor, expected in ((0.70, "a"), (0.71, "b"), (0.80, "b")):  # the floor is inclusive
        pick = pick_from_front(records, floor)
        assert pick.trial.trial_id == expected and pick.met, floor
        assert [r.trial_id for r in pick.front] == ["a", "d", "b"]
    assert "natural accuracy >= 0.8" in pick_from_front(records, 0.8).rule


def test_pick_falls_back_on_the_most_robust_when_no_front_trial_qualifies() -> None:
    pick = pick_from_front(_records(), 0.9)  # only the pruned and the suspect trial reach 0.9
    assert pick.trial.trial_id == "a" and not pick.met
    empty = pick_from_front(_records()[4:8], 0.5)
    assert empty.trial is None and empty.front == () and not empty.met
    with pytest.raises(ValueError, match="got 1.5"):
        pick_from_front(_records(), 1.5)


def test_results_parquet_marks_the_front(tmp_path: Path) -> None:
    rows = read_trials(write_trials(_records(), tmp_path / "results.parquet")).to_pylist()
    assert {r["trial_id"] for r in rows if r["pareto"]} == {"a", "b", "d"}
    assert rows[1]["natural"] == 0.8 and math.isnan(rows[5]["natural"])  # pruned: no final natural accuracy


def test_leaderboard_shows_and_marks_every_front_trial() -> None:
    from rich.console import Console

    records = _records()
    console = Console(record=True, width=200)
    console.print(leaderboard(records, front=["a", "d", "b"], picked="b", top=2))
    text = console.export_text()
    rows = {line.split("│")[2].strip(): line for line in text.splitlines() if line.count("│") > 3 and "%" in line}
    assert "exported" in rows["b"] and "front" in rows["b"] and "front" in rows["a"] and "front" in rows["d"]
    assert sum("exported" in row for row in rows.values()) == 1
    assert set(rows) == {"e", "g", "a", "d", "b"}  # the top 2 by robust accuracy, and the front below them
    plain = Console(record=True, width=200)
    plain.print(leaderboard(records))
    assert "Pareto" not in plain.export_text()
    narrow = Console(record=True, width=60)  # a narrow terminal wraps the parameters, never a trial id
    long = [replace(r, trial_id=f"{r.trial_id}-0123456789abcdef") for r in records]
    narrow.print(leaderboard(long, params=("lr",), picked=long[0].trial_id))
    text = narrow.export_text()
    assert all(r.trial_id in text for r in long[:5]) and "exported" in text


def test_results_page_draws_the_searchs_own_front(monkeypatch) -> None:
    from tuner.report import figures
    from tuner.report.page import results_page

    drawn: dict = {}
    real = figures.plot_pareto

    def spy(points, path, **kwargs):
        drawn.update(kwargs)
        return real(points, path, **kwargs)

    monkeypatch.setattr(figures, "plot_pareto", spy)
    records = [r for r in _records() if r.trial_id != "g"]  # a finished trial always has a natural accuracy
    text = results_page(records, title="t", command="c", exported="b", front=["a", "d", "b"])
    assert drawn["front"] == ["a", "d", "b"] and drawn["marked"] == "b"  # not the suspect trial e's front
    assert "Natural vs robust" in text


# --- the command line --------------------------------------------------------------------------------

def _cli(tmp_path: Path, capsys, *args: str) -> tuple[int, list[str]]:
    from tuner.search import cli

    argv = ["--storage-path", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "exports"), *args]
    try:
        code = run_main(cli.main, argv, prog=cli.PROG)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--pick-min-natural", "0.5"], "--pick-min-natural picks from the Pareto front and goes with --objective "
                                        "pareto, got --objective robust"),
        (["--objective", "pareto", "--pick-min-natural", "1.5"], "--pick-min-natural must be an accuracy in [0, 1], "
                                                                 "got 1.5"),
        (["--objective", "pareto", "--pick-min-natural", "nan"], "got nan"),
        (["--objective", "both"], "invalid choice: 'both'"),
    ],
)
def test_cli_refuses_bad_pareto_settings_in_one_line(tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    import ray

    code, lines = _cli(tmp_path, capsys, *args)
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert not ray.is_initialized()


def test_resume_under_another_objective_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    import optuna

    experiment = tmp_path / "runs" / "front"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"")  # Tune would find an experiment to restore
    optuna.create_study(study_name="front", storage=f"sqlite:///{experiment / 'optuna.db'}",
                        directions=["maximize", "maximize"])
    code, lines = _cli(tmp_path, capsys, "--name", "front", "--resume", "--trust-experiment")
    assert code == 2 and len(lines) == 1, lines
    assert "was started with --objective pareto; resume it with --objective pareto, not robust" in lines[0]


def test_the_help_documents_the_pick_rule(capsys) -> None:
    from tuner.search.cli import build_parser

    build_parser()[0].print_help()
    text = " ".join(capsys.readouterr().out.split())
    assert "--objective {robust,pareto}" in text
    assert "export the most robust Pareto trial whose natural validation accuracy is >= X" in text


# --- the searcher ------------------------------------------------------------------------------------

def _searcher(cfg: SearchConfig):
    """The searcher a search of ``cfg`` starts with (its plan's preset, strategy and study)."""
    from tuner.cluster.storage import study_storage

    plan = resolve_run(cfg)
    study = study_storage(cfg.folder.path, cfg.study_storage, cfg.optuna_storage, remote=cfg.folder.remote)
    return build_searcher(plan.strategy, cfg.space, plan.preset, study, cfg.folder.name)


def test_searcher_tells_optuna_both_objectives(tmp_path: Path) -> None:
    import optuna

    cfg = SearchConfig(objective="pareto", storage_path=str(tmp_path / "runs"), seed=3)
    searcher = _searcher(cfg)
    assert searcher.metric == ["objective", "objective_natural"]
    first = searcher.suggest("t0")
    assert first == get_space("lwta").points_to_evaluate(PRESETS["quick"])[0]  # the known-good point first
    results = {
        "t0": {"objective": 0.30, "objective_natural": 0.70, "final_evaluated": 1.0, "suspect": 0.0},
        "t1": {"objective": 0.20, "objective_natural": 0.60, "final_evaluated": 0.0, "suspect": 0.0},  # ASHA stop
        "t2": {"objective": math.nan, "objective_natural": math.nan, "diverged": 1.0},
        "t3": {"objective": 0.90, "objective_natural": 0.95, "final_evaluated": 1.0, "suspect": 1.0},
        "t4": {"objective": 0.25, "objective_natural": math.nan, "final_evaluated": 1.0, "suspect": 0.0},
    }
    for i in range(12):  # past TPE's 10 random start-up trials: the multi-objective model sees all of them
        tid = f"t{i}"
        if i:
            assert isinstance(searcher.suggest(tid), dict)
        result = results.get(tid, {"objective": 0.1 + i / 100, "objective_natural": 0.9 - i / 100,
                                   "final_evaluated": 1.0, "suspect": 0.0}) | {"training_iteration": 2}
        searcher.on_trial_result(tid, result)  # no intermediate values for two objectives: no error either
        searcher.on_trial_complete(tid, result)
    study = optuna.load_study(study_name=cfg.folder.name, storage=f"sqlite:///{cfg.folder.path}/optuna.db")
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE] * 2
    trials = {t.user_attrs["tune_trial_id"]: t for t in study.get_trials()}
    assert trials["t0"].state.name == "COMPLETE" and trials["t0"].values == [0.30, 0.70]
    assert trials["t1"].state.name == "PRUNED" and trials["t1"].intermediate_values == {}
    assert [trials[t].state.name for t in ("t2", "t3", "t4")] == ["FAIL"] * 3
    assert trials["t3"].user_attrs["outcome"] == "suspect"
    assert {t.user_attrs["tune_trial_id"] for t in study.best_trials} >= {"t0"}


def test_robust_searcher_keeps_one_objective(tmp_path: Path) -> None:
    import optuna

    cfg = SearchConfig(storage_path=str(tmp_path / "runs"))
    searcher = _searcher(cfg)
    assert searcher.metric == "objective"
    searcher.suggest("t0")
    searcher.on_trial_result("t0", {"objective": 0.2, "objective_natural": 0.6, "training_iteration": 1})
    searcher.on_trial_complete("t0", {"objective": 0.3, "objective_natural": 0.7, "final_evaluated": 1.0,
                                      "suspect": 0.0, "training_iteration": 2})
    study = optuna.load_study(study_name=cfg.folder.name, storage=f"sqlite:///{cfg.folder.path}/optuna.db")
    (trial,) = [t for t in study.get_trials() if t.user_attrs.get("tune_trial_id") == "t0"]  # others: enqueued
    assert trial.values == [0.3] and trial.intermediate_values == {1: 0.2}


# --- one tiny search -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.ray
def test_tiny_pareto_search_exports_its_pick_and_records_the_front(search, tmp_path: Path) -> None:
    import optuna

    proc = search.run("--space", "lwta", "--num-samples", "2", "--objective", "pareto", "--pick-min-natural", "0",
                      *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on the Pareto front: validation L-inf robust" in proc.stdout
    assert "Pareto front (validation robust / natural" in proc.stderr and "exporting the most robust" in proc.stderr
    experiment = tmp_path / "runs" / "lwta-quick"
    rows = {r["trial_id"]: r for r in pq.read_table(experiment / "results.parquet").to_pylist()}
    front = {tid for tid, r in rows.items() if r["pareto"]}
    assert front and all(rows[tid]["exportable"] for tid in front)
    metrics = json.loads((tmp_path / "exports" / "lwta-quick" / "metrics.json").read_text())["search"]
    assert metrics["objective_mode"] == "pareto" and metrics["pick"]["min_natural"] == 0.0 and metrics["pick"]["met"]
    assert {p["trial_id"] for p in metrics["front"]} == front and metrics["trial_id"] in front
    def point(tid: str) -> tuple[float, float]:
        return rows[tid]["objective"], rows[tid]["natural"]

    assert point(metrics["trial_id"]) == max(map(point, front))  # the most robust (trials may tie on tiny data)
    study = optuna.load_study(study_name="lwta-quick", storage=f"sqlite:///{experiment / 'optuna.db'}")
    assert len(study.directions) == 2
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        row = rows[trial.user_attrs["tune_trial_id"]]
        assert trial.values == [row["objective"], row["natural"]]

    refused = search.run("--space", "lwta", "--num-samples", "2", "--resume", *TINY, timeout=120)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "was started with --objective pareto" in refused.stderr
