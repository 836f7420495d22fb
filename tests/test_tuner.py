"""The search: spaces to suggestions, the objective, results, and the CLI through a real local Ray."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from search_spaces import PRESETS, get_space
from trainables.attacks import FGSM, PGD, ThreatModel
from trainables.cli import run_main
from trainables.data import ImageSet
from trainables.evaluation import SuiteConfig, SuiteOverrides
from trainables.models import RobustModel
from tuner.search import SearchConfig, resolve_run
from tuner.trials import DefineBySpace, TrialRecord, TrialReport, best_trial, read_trials, trial_outcome, write_trials
from tuner.trials.objective import score_objective
from tuner.trials.results import merge_history
from tuner.trials.strategy import SAMPLERS, SCHEDULERS, Strategy, build_scheduler, build_searcher

TINY = ["--epochs", "2", "--train-limit", "1000", "--val-limit", "100", "--test-limit", "100", "--no-live",
        "--max-concurrent", "2"]


# --- suggestions -------------------------------------------------------------------------------

def _suggestions(seed: int, n: int = 4) -> list[dict]:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    preset = PRESETS["quick"]
    from search_spaces import get_space

    searcher = OptunaSearch(space=DefineBySpace("lwta", preset), metric="objective", mode="max",
                            points_to_evaluate=get_space("lwta").points_to_evaluate(preset),
                            sampler=optuna.samplers.TPESampler(seed=seed))
    return [searcher.suggest(f"t{i}") for i in range(n)]


def test_same_seed_gives_the_same_suggested_configs() -> None:
    a, b, c = _suggestions(0), _suggestions(0), _suggestions(1)
    assert a == b
    assert a[0] == c[0]  # the known-good starting point comes first either way
    assert a[1:] != c[1:]
    assert a[0]["competitors"] == 2 and a[0]["lwta_layers"] == "dense" and a[0]["ibp"] is False
    assert a[1]["lwta_layers"] == "dense" and a[1]["ibp_alpha"] == 3.0 and a[1]["mix_none"] == 1.0  # the paper's draw


def test_the_searcher_samples_the_preset_the_search_runs() -> None:
    """Every suggestion is drawn against the search's own preset, overrides included.

    Until the architecture's second step the define-by-run function looked its preset up by name
    (``PRESETS["quick"]``) while the starting points used the overridden one: a search whose preset
    differs from the registered one (here its architecture) was sampled from the wrong space.
    """
    from dataclasses import replace

    from trainables.models import ModelConfig

    plan = resolve_run(SearchConfig(num_samples=6))
    wrn = replace(plan.preset, model=ModelConfig(name="wrn", depth=10, widen=1))  # what PRESETS["quick"] is not
    searcher = build_searcher(plan.strategy, "lwta", wrn, None, "wrn")
    for i in range(4):  # the two starting points, then the sampler's own
        params = searcher.suggest(f"t{i}")
        assert "widen" in params and "hidden_blocks" not in params and "lwta_layers" not in params, params


def test_overrides_reach_the_base_run() -> None:
    overrides = SuiteOverrides(eps=0.2, budgets=(("pgd", "steps", "12"),), cascade=False)
    plan = resolve_run(SearchConfig(epochs=3, train_limit=500, suite=overrides, seed=7))
    base, objective, export = plan.base, plan.objective_suite, plan.export_suite
    assert base.train.epochs == 3 and base.data.train_limit == 500 and base.train.seed == 7
    assert base.threat == plan.threat == plan.preset.threat == ThreatModel(0.2, 1.5)  # one threat model
    assert base.train_threat.eps == 0.2  # the training attacks follow the one epsilon
    assert base.model.name == "lwta-cnn" and plan.preset.name == "quick"
    assert objective.names() == ("fgsm", "pgd")  # the objective is the L-inf ball's worst case
    assert objective.attacks[1].steps == export.attacks[1].steps == 12 and not objective.cascade
    assert base.suite.attacks == PRESETS["quick"].epoch_suite.attacks  # the per-epoch suite stays cheap
    assert base.train.mix == PRESETS["quick"].train.mix  # --budget is the suites', not training's


def test_train_budget_reaches_every_trials_training_attacks_and_no_suite() -> None:
    plan = resolve_run(SearchConfig(train_budget=("pgd.steps=1,pgd.step_ratio=1.25", "cw.steps=4")))
    space = get_space("lwta")
    for point in space.points_to_evaluate(plan.preset):  # PGD alone, then the paper's mix: the budget rides along
        attacks = {e.name: e.attack for e in space.apply(plan.base, point).train.mix.entries if e.attack}
        assert (attacks["pgd"].steps, attacks["pgd"].step_ratio, attacks["cw"].steps) == (1, 1.25, 4)
    assert plan.export_suite.attacks[1].steps == PRESETS["quick"].export_suite.attacks[1].steps


@pytest.mark.parametrize("kwargs", [{"num_samples": 0}, {"cpus_per_trial": 0},
                                    {"gpus_per_trial": -1.0}, {"epochs": 0}, {"sampler": "grid"},
                                    {"scheduler": "pbt"}])
def test_bad_search_settings_raise_with_the_value(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=str(next(iter(kwargs.values())))):
        SearchConfig(**kwargs)


# --- the strategy: --sampler and --scheduler ------------------------------------------------------

def test_every_strategy_name_has_a_factory_and_a_line_of_help() -> None:
    assert SAMPLERS.in_order() == ["tpe", "random"] and SCHEDULERS.in_order() == ["asha", "fifo"]
    for registry in (SAMPLERS, SCHEDULERS):
        assert all(callable(registry[name]) and registry[name].__doc__ for name in registry)


def _searcher(cfg: SearchConfig):
    """The searcher a search of ``cfg`` starts with (its plan's preset, strategy and study)."""
    from tuner.cluster.storage import study_storage

    plan = resolve_run(cfg)
    study = study_storage(cfg.folder.path, cfg.study_storage, cfg.optuna_storage, remote=cfg.folder.remote)
    return build_searcher(plan.strategy, cfg.space, plan.preset, study, cfg.folder.name)


@pytest.mark.parametrize("space", ["lwta", "adversarial"])
def test_random_sampler_still_tries_the_known_good_points_first(tmp_path: Path, space: str) -> None:
    import optuna

    from search_spaces import get_space

    def suggestions(seed: int, name: str) -> list[dict]:
        cfg = SearchConfig(space=space, sampler="random", seed=seed, storage_path=str(tmp_path), name=name)
        searcher = _searcher(cfg)
        assert isinstance(searcher._sampler, optuna.samplers.RandomSampler)
        return [searcher.suggest(f"t{i}") for i in range(3)]

    known = get_space(space).points_to_evaluate(PRESETS["quick"])
    a, b, c = suggestions(0, "a"), suggestions(0, "b"), suggestions(1, "c")
    assert a[:len(known)] == c[:len(known)] == known
    assert a == b and a[len(known):] != c[len(known):]


@pytest.mark.parametrize(("num_samples", "startup"), [(None, 2), (2, 2), (8, 2), (20, 6), (60, 20)])
def test_tpe_models_the_trials_after_a_third_of_the_search(tmp_path: Path, num_samples: int | None,
                                                           startup: int) -> None:
    import optuna

    cfg = SearchConfig(num_samples=num_samples, storage_path=str(tmp_path))  # None: the quick preset's 6
    sampler = _searcher(cfg)._sampler
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._n_startup_trials == startup and sampler._multivariate  # Optuna keeps no public getters


def test_scheduler_is_asha_on_robust_acc_or_fifo() -> None:
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    asha = build_scheduler(Strategy(grace_period=2), epochs=3)
    assert isinstance(asha, AsyncHyperBandScheduler)
    assert (asha.metric, asha._mode, asha._max_t, asha._reduction_factor) == ("robust_acc", "max", 3, 2)
    assert [milestone for milestone, _ in asha._brackets[0]._rungs] == [2]  # the grace period: its only rung
    fifo = build_scheduler(Strategy(scheduler="fifo"), epochs=3)
    assert type(fifo) is FIFOScheduler


# --- objective ---------------------------------------------------------------------------------

class _Constant(RobustModel):
    """Always class 0, with no gradient to follow: the shape of a gradient-masked model."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10, device=x.device) + self.bias
        logits[:, 0] = 10.0
        return logits + 0 * x.flatten(1).sum(1, keepdim=True)


def test_objective_flags_a_model_whose_accuracy_survives_a_huge_epsilon() -> None:
    data = ImageSet(torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8), torch.zeros(40, dtype=torch.int64))
    suite = SuiteConfig(attacks=(FGSM(), PGD(steps=3)), eot_samples=1, predict_samples=1)
    score = score_objective(_Constant(), data, suite, ThreatModel())
    metrics = TrialReport.scored_with({}, score.metrics, score.masking, 0.0).to_metrics()
    assert metrics["objective"] == 1.0 and metrics["final/natural_acc"] == 1.0
    assert metrics["suspect"] == 1.0 and metrics["suspect_large_eps"] == 1.0


def test_objective_of_a_trained_model_is_honest(fmnist) -> None:
    from trainables.data import DataConfig
    from trainables.models import ModelConfig
    from trainables.train import AttackMix, RunSpec, TrainConfig, fit

    spec = RunSpec(data=DataConfig(), model=ModelConfig(name="cnn", cnn_width=16, cnn_kernel=3, hidden_blocks=32),
                   train=TrainConfig(epochs=1, mix=AttackMix.parse("none:1"), eval_limit=50),
                   suite=SuiteConfig(attacks=(FGSM(),)))
    model = fit(spec, fmnist).model
    score = score_objective(model, fmnist.val.head(200), SuiteConfig(attacks=(FGSM(), PGD(steps=5))), spec.threat)
    metrics = TrialReport.scored_with({}, score.metrics, score.masking, 0.0).to_metrics()
    assert 0.0 <= metrics["objective"] <= metrics["final/natural_acc"] <= 1.0
    assert metrics["final/natural_acc"] > 0.5
    assert metrics["final/masking_acc"] <= 0.15 and metrics["suspect"] == 0.0


# --- results -----------------------------------------------------------------------------------

def _record(tid: str, outcome: str, objective: float, suspect: float = 0.0, evaluated: float = 1.0) -> TrialRecord:
    final = {"objective": objective, "final_evaluated": evaluated, "suspect": suspect, "final/natural_acc": 0.8}
    history = [{"epoch": 1.0, "natural_acc": 0.7, "robust_acc": 0.2}]
    return TrialRecord(tid, outcome, {"lr": 0.05, "competitors": 2}, history, final)


def test_best_trial_skips_suspect_pruned_and_failed_trials() -> None:
    records = [_record("a", "finished", 0.30), _record("b", "finished", 0.90, suspect=1.0),
               _record("c", "pruned", 0.95, evaluated=0.0), _record("d", "failed", math.nan),
               _record("e", "finished", 0.35)]
    assert best_trial(records).trial_id == "e"
    assert best_trial([records[1], records[2], records[3]]) is None


def test_trial_outcomes() -> None:
    def outcome(status: str, last: dict | None) -> str:
        return trial_outcome(status, TrialReport.from_metrics(last))

    assert outcome("TERMINATED", {"final_evaluated": 1.0, "objective": 0.3}) == "finished"
    assert outcome("TERMINATED", {"final_evaluated": 0.0, "objective": 0.3}) == "pruned"
    assert outcome("TERMINATED", {"diverged": 1.0, "objective": math.nan}) == "failed"
    assert outcome("ERROR", None) == "failed"
    assert outcome("RUNNING", {}) == "running"


def test_trials_round_trip_through_parquet(tmp_path: Path) -> None:
    records = [_record("a", "finished", 0.3), _record("d", "failed", math.nan)]
    table = read_trials(write_trials(records, tmp_path / "results.parquet"))
    rows = table.to_pylist()
    assert [r["trial_id"] for r in rows] == ["a", "d"] and rows[0]["outcome"] == "finished"
    assert rows[0]["param/lr"] == 0.05 and rows[0]["history"][0]["robust_acc"] == 0.2
    assert json.loads(rows[0]["config_json"])["competitors"] == 2


# --- the command line ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--space", "nope"], "invalid choice: 'nope'"),
        (["--num-samples", "0"], "--num-samples must be >= 1, got 0"),
        (["--epsilon", "-0.5"], "eps must be a finite number in [0, 1] (pixel units), got eps=-0.5"),
        (["--epsilon", "inf"], "got eps=inf"),
        (["--epsilon", "1e9"], "eps must be a finite number in [0, 1]"),
        (["--budget", "pgd.stepz=3"], "cannot set pgd.stepz"),
        (["--attacks", "fgsm,deepfool"], "unknown attack 'deepfool'"),
        (["--gradients", "plain", "--no-cascade"], "--gradients takes ways from surrogate, sampled, got 'plain'"),
        (["--train-limit", "0"], "--train-limit must be >= 1, got 0"),
        (["--cpus-per-trial", "nan"], "--cpus-per-trial must be a finite number > 0"),
        (["--trust-experiment"], "--trust-experiment goes with --resume"),
        (["--wait-for-resources", "-1"], "--wait-for-resources must be a finite number of seconds >= 0"),
        (["--address", "127.0.0.1:9"], "cannot reach a Ray cluster at 127.0.0.1:9"),
        (["--address", "not an address"], "--address must be empty, 'auto' or host:port"),
        (["--resume", "--name", "never-ran"], "nothing to resume"),
        (["--workers-per-trial", "0"], "--workers-per-trial must be >= 1, got 0"),
        (["--gpus-per-trial", "1.5"], "--gpus-per-trial above 1 must be a whole number of GPUs, got 1.5"),
        (["--gpus-per-trial", "lots"], "must be 'auto' or a number, got 'lots'"),
        (["--sampler", "grid"], "invalid choice: 'grid'"),
        (["--scheduler", "pbt"], "invalid choice: 'pbt'"),
        (["--name", "../../x"], "--name must be a plain name"),
        (["--name", "/tmp/abs"], "--name must be a plain name"),
        (["--name", "x" * 101], "at most 100 characters"),
        (["--status", "../elsewhere"], "--status must be a plain name"),
        (["--budget", "pgd.step_size=inf"], "pgd.step_size must be finite"),
        (["--train-budget", "foo.steps=1"], "--train-budget: cannot set foo.steps: no attack here has that setting"),
        (["--train-budget", "pgd.steps=0"], "--train-budget: steps must be >= 1"),
        (["--fuse", "many"], "--fuse must be off, auto or a number of trials >= 1, got 'many'"),
        (["--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
        (["--storage-path", "/proc/robustune-runs"], "--storage-path /proc/robustune-runs: cannot write in /proc"),
        (["--export-dir", "/proc/robustune-exports"], "--export-dir /proc/robustune-exports: cannot write in /proc"),
        (["--optuna-storage", "nosuchdb://x"], "cannot open the study storage nosuchdb://x"),
        (["--tracking", "mlflow", "--tracking-uri", "http://127.0.0.1:9"],
         "--tracking-uri http://127.0.0.1:9: no MLflow tracking server answers there"),
        (["--tracking-uri", "http://127.0.0.1:9"], "--tracking-uri goes with --tracking mlflow"),
        (["--tracking", "wandb"], "invalid choice: 'wandb'"),
    ],
)
def test_cli_bad_input_is_one_line_before_ray_starts(tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    import ray

    from tuner.search import cli

    argv = ["--storage-path", str(tmp_path / "runs"), "--export-dir", str(tmp_path / "exports"), *args]
    try:
        code = run_main(cli.main, argv, prog=cli.PROG)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert not ray.is_initialized()
    assert not any((tmp_path / "runs").glob("*")), "a refused run left an experiment folder"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cpus-per-trial", "8"], "a trial needs 1 worker(s) with 8 CPU and 0 GPU each, on a single node"),
        (["--gpus-per-trial", "1"], "a trial needs 1 worker(s) with 1 CPU and 1 GPU each"),
        (["--gpus-per-trial", "4"], "a trial needs 4 worker(s) with 0.25 CPU and 1 GPU each, on a single node "
                                    "per worker, but the Ray cluster has 1 node(s)"),
    ],
)
def test_cli_refuses_trials_the_local_ray_cannot_hold_in_one_line(search, args: list[str], needle: str) -> None:
    proc = search.run(*args, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()  # after the phases that ran (data, Ray start and stop): one error line
    errors = [line for line in lines if "error" in line.lower() or "Traceback" in line]
    assert errors == [lines[-1]] and needle in lines[-1], proc.stderr
    assert all(line.startswith(("[", "Ray's, Tune's")) for line in lines[:-1]), proc.stderr
    assert not any((search.folder / "runs").glob("lwta-quick*")), "a refused run left its experiment folder"


def test_joining_an_address_that_is_not_ray_fails_in_bounded_time(search) -> None:
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        began = time.monotonic()
        proc = search.run("--address", f"127.0.0.1:{server.server_address[1]}", timeout=120)
    finally:
        server.shutdown()
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "no Ray cluster answers at 127.0.0.1" in lines[0], proc.stderr
    assert time.monotonic() - began < 60


def _study(experiment: Path) -> dict[str, tuple[str, dict, dict]]:
    """Tune trial id -> (Optuna state, user attributes, intermediate values) of the search's study."""
    import optuna

    storage = f"sqlite:///{experiment / 'optuna.db'}"
    [name] = optuna.get_all_study_names(storage)  # the experiment's name when it began (a copy keeps it)
    study = optuna.load_study(study_name=name, storage=storage)
    return {t.user_attrs.get("tune_trial_id", f"#{t.number}"): (t.state.name, t.user_attrs, t.intermediate_values)
            for t in study.get_trials()}


@pytest.mark.slow
@pytest.mark.ray
def test_search_end_to_end_with_failing_trials_then_export_and_evaluate(search, tmp_path: Path,
                                                                       rendered_figures) -> None:
    points = tmp_path / "points.json"
    points.write_text(json.dumps([{"lr": 1.0e6, "mix_none": 1.0, "mix_gaussian": 0.0, "mix_fgsm": 0.0,
                                   "mix_pgd": 0.0, "mix_cw": 0.0},  # diverges: NaN loss
                                  {"eps_scale": -1.0}]))  # raises: negative training epsilon
    proc = search.run("--space", "lwta", "--num-samples", "4", "--points", str(points), "--gpus-per-trial", "auto",
                      "--fuse", "auto", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best trial" in proc.stdout
    said = " ".join(proc.stderr.split())  # the phases, on stderr; rich wraps long lines at the terminal's width
    assert "--gpus-per-trial auto: no GPU in the cluster, trials train on CPUs" in said
    assert re.search(r"--fuse auto: (bundles of \d trials|every trial alone) \(.*k=2 \d+\.\d\dx", said), said
    assert "trials' time, summed over them: training " in said
    experiment = tmp_path / "runs" / "lwta-quick"
    rows = pq.read_table(experiment / "results.parquet").to_pylist()
    assert len(rows) == 4
    outcomes = sorted(r["outcome"] for r in rows)
    assert outcomes.count("failed") == 2, [(r["trial_id"], r["outcome"], r["error"]) for r in rows]
    assert any((r["error"] or "").startswith("invalid training setting eps_scale") for r in rows)
    assert "retrying" not in proc.stderr  # fused or not, a setting no run accepts fails once, not three times
    assert any(r["exportable"] for r in rows)

    study = _study(experiment)  # the study tells the same story as results.parquet, trial by trial
    assert set(study) == {r["trial_id"] for r in rows}
    expected = {"finished": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}
    for row in rows:
        state, attrs, intermediate = study[row["trial_id"]]
        assert row["study_state"] == state == expected[row["outcome"]], row
        if row["outcome"] == "pruned":  # told PRUNED with its per-epoch values, not COMPLETE with the last one
            assert sorted(intermediate) == list(range(1, row["epochs"] + 1))
        if row["outcome"] == "finished":
            assert attrs["outcome"] == "finished"

    export = tmp_path / "exports" / "lwta-quick"  # filed per experiment, with a stable pointer
    assert (tmp_path / "exports" / "latest").resolve() == export.resolve()
    from tuner.export import load_model

    model = load_model(export)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    metrics = json.loads((export / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert 0.0 <= metrics[split]["robust_acc"] <= metrics[split]["natural_acc"] <= 1.0
    evaluated = subprocess.run([sys.executable, "-m", "tuner.evaluate", str(export), "--limit", "50",
                                "--attacks", "fgsm"], capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "worst-case robust" in evaluated.stdout

    # what the user saw: phases and one line per trial event, none of Ray's, Tune's or Optuna's own banners
    for needle in ("starting a local Ray: done in", "trial ", "epoch 1/2", "trial-epochs, ETA",
                   "training done: ", "scoring trial", "results page: "):
        assert needle in proc.stderr, needle
    for banner in ("Configuration for experiment", "A new study created", "TensorBoard", "View detailed results"):
        assert banner not in proc.stderr + proc.stdout, banner
    assert (experiment / "search.log").is_file()
    for page in (experiment / "report.html", export / "report.html"):
        drawn, figures = rendered_figures(page)
        assert drawn == figures == 2, page
    status = subprocess.run([sys.executable, "-m", "tuner.search", "--storage-path", str(tmp_path / "runs"),
                             "--status", "lwta-quick"], capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "not running; phase done" in status.stdout
    assert all(row["trial_id"] in status.stdout for row in rows)


def _progress(path: Path) -> dict:
    """A running search's progress.json ({} before it is there, or while it is being written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _finished(progress: Path) -> int:
    """Finished trials in a running search's progress.json (0 before it is there)."""
    return _progress(progress).get("counts", {}).get("finished", 0)


@pytest.mark.slow
@pytest.mark.ray
def test_interrupted_search_resumes_without_losing_or_rerunning_trials(search, tmp_path: Path) -> None:
    experiment = tmp_path / "runs" / "lwta-quick"
    progress = experiment / "progress.json"
    second: list[subprocess.CompletedProcess[str]] = []

    def ready() -> bool:
        if not second and progress.exists():  # meanwhile, a second search of the same experiment is refused
            second.append(search.run("--space", "lwta", "--num-samples", "3", *TINY, timeout=60))
        return _finished(progress) >= 1

    interrupted = search.interrupt_when(ready, "--space", "lwta", "--num-samples", "3", *TINY, "--max-concurrent", "1")
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    assert "--resume" in interrupted.stderr.strip().splitlines()[-1]
    assert second[0].returncode == 2 and "is in use by process" in second[0].stderr, second[0].stderr[-2000:]
    assert len(second[0].stderr.strip().splitlines()) == 1
    first = {r["trial_id"]: r for r in pq.read_table(experiment / "results.parquet").to_pylist()}
    done = {tid: r for tid, r in first.items() if r["outcome"] == "finished"}
    assert 1 <= len(done) < 3
    for row in first.values():  # Ctrl-C stopped it: interrupted, not pruned, and the study agrees
        assert row["outcome"] in ("finished", "pruned", "interrupted")
        assert (row["outcome"] == "interrupted") == (row["study_state"] == "RUNNING"), row

    tampered = tmp_path / "runs" / "tampered"  # a copy whose pickles someone changed is never unpickled
    shutil.copytree(experiment, tampered)
    next(tampered.glob("searcher-state-*.pkl")).write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    refused = search.run("--space", "lwta", "--num-samples", "3", "--resume", "--name", "tampered", *TINY)
    assert refused.returncode == 2 and "changed since this machine's search wrote it" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    # the experiment resumes where it now is: a copy under another name, never writing into the original
    moved = tmp_path / "runs" / "moved"
    shutil.copytree(experiment, moved)
    untouched = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in experiment.iterdir() if p.is_file()}
    resumed = search.run("--space", "lwta", "--num-samples", "3", "--resume", "--name", "moved", *TINY)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert untouched == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in experiment.iterdir()
                         if p.is_file()}
    experiment = moved
    final = {r["trial_id"]: r for r in pq.read_table(experiment / "results.parquet").to_pylist()}
    assert len(final) == 3
    for tid, row in done.items():  # finished trials kept as they were, not run again
        assert final[tid]["objective"] == row["objective"] and final[tid]["epochs"] == row["epochs"]
    assert all(r["outcome"] in ("finished", "pruned") for r in final.values())
    for row in final.values():  # no epoch lost from a trial that Tune restored
        assert [h["epoch"] for h in row["history"]] == [float(e) for e in range(1, row["epochs"] + 1)], row
    assert "RUNNING" not in {state for state, _, _ in _study(experiment).values()}  # none left behind
    assert (tmp_path / "exports" / "moved" / "model.safetensors").exists()


@pytest.mark.ray
def test_sigterm_to_the_whole_process_group_stops_a_search_with_one_line(search, tmp_path: Path) -> None:
    """As `timeout`, systemd or a batch scheduler stop a job: Ray's own processes get the signal too."""
    progress = tmp_path / "runs" / "lwta-quick" / "progress.json"
    proc = subprocess.Popen(search.argv("--space", "lwta", "--num-samples", "2", *TINY), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=search.folder, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not _progress(progress).get("trials"):
            assert proc.poll() is None and time.time() < deadline, "no trial started"
            time.sleep(0.25)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err[-3000:]
    assert "SIGTERM received" not in err  # Ray's own handler: a C stack dump
    assert err.strip().splitlines()[-1] == ("python -m tuner.search: interrupted; finished trials are kept, "
                                            "run again with --resume")
    time.sleep(2)
    with pytest.raises(ProcessLookupError):  # nothing of the search is left: no Ray process, no scoring worker
        os.killpg(proc.pid, 0)


def test_trials_without_any_report_still_write_parquet(tmp_path: Path) -> None:
    records = [TrialRecord("a", "running", {"lr": 0.05})]  # interrupted before its first epoch ended
    rows = read_trials(write_trials(records, tmp_path / "results.parquet")).to_pylist()
    assert rows[0]["trial_id"] == "a" and rows[0]["history"] == [] and math.isnan(rows[0]["objective"])


def test_a_restored_trial_gets_back_the_epochs_tune_forgot() -> None:
    reported = [{"epoch": 3.0, "robust_acc": 0.5, "objective": 0.48}]  # all Tune kept after --resume
    trained = [{"epoch": 1.0, "robust_acc": 0.3}, {"epoch": 2.0, "robust_acc": 0.4}, {"epoch": 3.0, "robust_acc": 0.5}]
    merged = merge_history(reported, trained)
    assert [row["epoch"] for row in merged] == [1.0, 2.0, 3.0]
    assert merged[-1] == reported[0] and merged[0] == trained[0]  # Tune's own row wins for the epochs it has


def test_a_trial_still_pending_when_the_search_was_interrupted_is_recorded() -> None:
    from types import SimpleNamespace

    from tuner.trials import collect_trials

    pending = SimpleNamespace(metrics=None, config=None, path="/runs/exp/run_trial_ab12", metrics_dataframe=None,
                              checkpoint=None, error=None)
    [record] = collect_trials([pending])
    assert record.params == {} and record.history == [] and record.outcome != "finished"


def test_time_spent_sums_training_scoring_and_objective() -> None:
    from tuner.trials import TrialRecord, time_spent

    rows = [{"epoch": 1.0, "epoch_seconds": 10.0, "eval_seconds": 2.0},
            {"epoch": 2.0, "epoch_seconds": 12.0, "eval_seconds": 3.0}]
    records = [TrialRecord("a", "finished", {}, history=rows, final={"objective_seconds": 4.0}),
               TrialRecord("b", "pruned", {}, history=rows[:1], final={}),
               TrialRecord("c", "failed", {}, history=[{"epoch": 1.0}], final={})]  # written before the timers
    assert time_spent(records) == {"training": 32.0 - 7.0, "epoch_scoring": 7.0, "objective": 4.0,
                                   "trial_epochs": 4.0}
