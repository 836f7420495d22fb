"""What a search shows: trial progress, the ETA, log lines, phases, evaluation progress, the results page."""

from __future__ import annotations

import io
import json
import math
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from trainables.attacks import FGSM, PGD, PGDL2, ThreatModel
from trainables.evaluation import GRADIENT_WAYS, SuiteConfig, evaluate_robustness
from tuner.console.callback import LiveProgress
from tuner.console.progress import SearchProgress, TrialView, read_progress
from tuner.console.view import Phases, _LineView, render
from tuner.report.page import PAGE_FILE, results_page, write_results_page
from tuner.trials import Outcome, TrialRecord


def _trial(tid: str, status: str = "RUNNING", last: dict | None = None, **config) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, status=status, last_result=last or {}, config=config)


def test_the_model_counts_epochs_and_estimates_the_time_left() -> None:
    model = SearchProgress(num_samples=4, max_epochs=4, started=time.time() - 60)  # FIFO: every epoch of every trial
    a, b = model.view("a"), model.view("b")
    a.outcome, a.epoch = Outcome.RUNNING, 2
    b.outcome, b.epoch = Outcome.PRUNED, 1
    assert model.eta_s() is None  # nothing timed yet
    for trial, seconds in (("a", 20.0), ("a", 20.0), ("b", 10.0)):
        model.record_epoch(trial, seconds, 1.0, running=2)
    assert model.counts() == {"running": 1, "pruned": 1, "pending": 2}
    assert model.epochs_done() == 3 and model.epochs_expected() == 1 + 3 * 4  # b stopped after 1 of 4
    # a: 2 epochs of 20 s; 2 pending at the trials' mean 15 s, 4 epochs each; side by side in 2 slots
    assert model.eta_s() == pytest.approx((2 * 20 + 2 * 4 * 15) / 2 + model.eta_plan.fixed_s, rel=0.01)
    assert b.state(4) == "pruned at epoch 1"
    a.epoch = 3
    assert a.state(4) == "running (epoch 4 and the objective)"
    assert TrialView("c", outcome=Outcome.FAILED, reason="loss became nan").state(4) == "failed: loss became nan"
    assert SearchProgress(1, 1).eta_s() is None


def _line_callback(progress: Path, max_epochs: int) -> tuple[LiveProgress, io.StringIO]:
    """A set-up callback of 2 trials whose line view writes to the returned buffer."""
    callback = LiveProgress(progress, num_samples=2, max_epochs=max_epochs, params=("lr",), space="lwta", view="none")
    callback.setup()
    out = io.StringIO()
    callback._view = _LineView(callback.progress(), out)
    return callback, out


def test_the_callback_follows_each_trial_into_lines_and_progress_json(tmp_path: Path) -> None:
    progress = tmp_path / "progress.json"
    callback, out = _line_callback(progress, max_epochs=2)
    one, two = _trial("one", lr=0.05), _trial("two", lr=0.2)
    callback.on_trial_start(0, [one], one)
    callback.on_trial_result(0, [one], one, {"epoch": 1.0, "natural_acc": 0.7, "robust_acc": 0.4})
    one.last_result = {"epoch": 2.0, "natural_acc": 0.8, "robust_acc": 0.5, "objective": 0.45, "final_evaluated": 1.0}
    callback.on_trial_result(0, [one], one, one.last_result)
    callback.on_trial_complete(0, [one], one)
    callback.on_trial_start(0, [one, two], two)
    two.last_result = {"epoch": 1.0, "natural_acc": math.nan, "diverged": 1.0, "error": "loss became nan at epoch 1"}
    callback.on_trial_complete(0, [one, two], two)
    lines = out.getvalue().splitlines()
    assert "trial one started: lr=0.05" in lines[0]
    assert "trial one epoch 1/2: natural 70.0% robust 40.0%" in lines[1] and "ETA" in lines[1]
    assert "trial one finished, objective 45.0%" in lines[3]
    assert "trial two failed: loss became nan at epoch 1" in lines[-1]
    data = read_progress(progress)
    assert data["counts"] == {"finished": 1, "failed": 1, "pending": 0}
    assert data["best_trial"] == "one" and data["epochs_done"] == 3
    assert {t["trial_id"]: t["outcome"] for t in data["trials"]} == {"one": "finished", "two": "failed"}
    callback.on_experiment_end([one, two])
    assert read_progress(progress)["phase"] == "training done"


def test_a_trial_of_its_own_epochs_shows_them_and_keeps_them_in_progress_json(tmp_path: Path) -> None:
    progress = tmp_path / "progress.json"
    callback, out = _line_callback(progress, max_epochs=10)
    own = _trial("own", lr=0.05, epochs=16)  # a promoted point that trains for 16, the rung's 10
    callback.on_trial_start(0, [own], own)
    callback.on_trial_result(0, [own], own, {"epoch": 1.0, "natural_acc": 0.7, "robust_acc": 0.4})
    assert "trial own epoch 1/16" in out.getvalue()
    view = callback.progress().trials["own"]
    assert view.schedule == 16 and view.state(10) == "running"
    view.epoch = 15
    assert view.state(10) == "running (epoch 16 and the objective)"
    assert {t["trial_id"]: t["schedule"] for t in read_progress(progress)["trials"]} == {"own": 16}
    from tuner.console.progress import from_json

    assert from_json(read_progress(progress)).trials["own"].schedule == 16


def test_the_live_view_shows_a_bar_and_a_row_per_trial() -> None:
    from rich.console import Console

    model = SearchProgress(num_samples=3, max_epochs=4, space="lwta · quick", started=time.time() - 30)
    running = model.view("a1b2c3d4")
    running.outcome, running.epoch, running.natural, running.robust, running.params = Outcome.RUNNING, 2, 0.71, \
        0.42, {"lr": 0.05}
    pruned = model.view("e5f6a7b8")
    pruned.outcome, pruned.epoch, pruned.ended_at = Outcome.PRUNED, 1, time.time()
    console = Console(record=True, width=140)
    console.print(render(model))
    text = console.export_text()
    for needle in ("robustune lwta · quick: training", "3/9 trial-epochs", "ETA", "a1b2c3d4", "lr=0.05", "2/4",
                   "71.0%", "42.0%", "e5f6a7b8", "pruned at epoch 1", "1 running, 1 pruned, 1 pending"):
        assert needle in text, (needle, text)


def test_phases_are_named_with_their_duration_and_counted_work(tmp_path: Path) -> None:
    progress = tmp_path / "progress.json"
    progress.write_text(json.dumps({"counts": {}, "phase": "training"}))
    out = io.StringIO()
    phases = Phases(live=False, progress_file=progress, stream=out)
    with phases.phase("starting a local Ray"):
        assert read_progress(progress)["phase"] == "starting a local Ray"
    with phases.counted("scoring the export") as heard:
        heard("test: natural", 1, 3)
        heard("test: pgd", 2, 3)
        heard("test: pgd", 3, 3)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("starting a local Ray...") and "starting a local Ray: done in" in lines[1]
    assert lines[3].endswith("scoring the export: test: natural") and lines[4].endswith("scoring the export: test: pgd")
    assert "scoring the export: done in" in lines[5] and len(lines) == 6


def test_a_counted_phase_shows_the_run_s_eta_beside_its_work() -> None:
    out = io.StringIO()
    phases = Phases(live=False, stream=out)
    left = {"test: natural": 75.0, "test: pgd": 30.0}
    with phases.counted("scoring the export", eta=left.get) as heard:
        heard("test: natural", 1, 3)
        heard("test: pgd", 2, 3)
        heard("test: cw", 3, 3)  # no estimate: no ETA on its line
    lines = out.getvalue().splitlines()
    assert lines[1].endswith("scoring the export: test: natural (ETA 1:15)")
    assert lines[2].endswith("scoring the export: test: pgd (ETA 0:30)") and lines[3].endswith("test: cw")


def test_evaluation_reports_each_batch_and_ends_at_its_count() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, y = torch.rand(90, 1, 28, 28), torch.randint(0, 10, (90,))
    heard: list[tuple[str, int, int]] = []
    suite = SuiteConfig(attacks=(FGSM(), PGD(steps=2)), batch_size=20, cascade=False)
    evaluate_robustness(model, x, y, suite, ThreatModel(), progress=lambda *event: heard.append(event))
    assert [label for label, _, _ in heard[:5]] == ["natural"] * 5
    assert [done for _, done, _ in heard] == list(range(1, len(heard) + 1))
    assert heard[-1][1] == heard[-1][2]  # the last batch completes the count
    assert all(done <= total for _, done, total in heard)


def _records() -> list[TrialRecord]:
    history = [{"epoch": 1.0, "natural_acc": 0.6, "robust_acc": 0.3}, {"epoch": 2.0, "natural_acc": 0.7,
                                                                        "robust_acc": 0.35}]
    final = {"objective": 0.33, "final_evaluated": 1.0, "final/natural_acc": 0.72}
    return [TrialRecord("best", "finished", {"lr": 0.05}, history, final),
            TrialRecord("early", "pruned", {"lr": 0.2}, history[:1], {"objective": 0.3}),
            TrialRecord("broke", "failed", {"lr": 1e6}, [], {}, error="loss became nan")]


def test_the_results_page_holds_leaderboard_figures_export_and_command(tmp_path: Path) -> None:
    suite = SuiteConfig(attacks=(FGSM(), PGD(steps=2), PGDL2(steps=2)), gradients=GRADIENT_WAYS)
    split = {"natural_acc": 0.7, "robust_acc": 0.25, "robust_acc/linf": 0.3, "robust_acc/l2": 0.4, "acc/fgsm": 0.5,
             "acc/fgsm/sampled": 0.45, "acc/pgd": 0.31, "acc/pgd/sampled": 0.3, "acc/pgd-l2": 0.41,
             "acc/pgd-l2/sampled": 0.4}
    metrics = {"validation": split, "test": split | {"acc/pgd": 0.33}, "examples": {"validation": 200, "test": 500},
               "suite": suite.to_dict(), "threat": {"eps": 0.1, "l2_eps": 1.5}, "stochastic": True}
    text = results_page(_records(), title="t", command="python -m tuner.search --space lwta", params=("lr",),
                        exported="best", export_metrics=metrics)
    assert text.count("<img ") == 2 and "data:image/png;base64," in text
    assert "python -m tuner.search --space lwta" in text and "<td>best</td>" in text and "<td>broke</td>" in text
    assert "test (500 examples)" in text and "a cascade per ball" in text
    cells = re.findall(r"<td>([^<]*)</td>", text[text.index("The exported model"):])
    rows = [cells[i:i + 4] for i in range(0, len(cells), 4)]
    assert [r[0] for r in rows] == ["natural", "L-inf ball", "fgsm", "fgsm/sampled", "pgd", "pgd/sampled",
                                    "worst case, L-inf", "L2 ball", "pgd-l2", "pgd-l2/sampled", "worst case, L2",
                                    "worst case, every attack"]  # grouped by ball, in the order the cascade ran
    by_name = {r[0]: r[1:] for r in rows}
    assert by_name["L-inf ball"][0] == "radius 0.1" and by_name["L2 ball"][0] == "radius 1.5"
    assert by_name["pgd"][1:] == ["31.00%", "33.00%"] and "sampled gradients" in by_name["pgd/sampled"][0]
    assert by_name["worst case, L-inf"][1:] == ["30.00%", "30.00%"] and by_name["worst case, L2"][1] == "40.00%"
    assert by_name["worst case, every attack"][1:] == ["25.00%", "25.00%"]
    written = write_results_page([tmp_path / "a", tmp_path / "b"], _records(), title="t", command="c")
    assert [p.name for p in written] == [PAGE_FILE, PAGE_FILE] and "No export" in written[0].read_text()


def test_a_headless_browser_draws_every_figure_of_the_page(tmp_path: Path, rendered_figures) -> None:
    (page,) = write_results_page([tmp_path], _records(), title="t", command="c", exported="best")
    assert rendered_figures(page) == (2, 2)
    page.write_text(page.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    assert rendered_figures(page) == (1, 2)  # a broken figure is seen as one


def test_a_trial_whose_node_died_is_one_line_retrying_from_its_checkpoint(tmp_path: Path) -> None:
    callback = LiveProgress(tmp_path / "progress.json", num_samples=1, max_epochs=2, params=("lr",), space="lwta",
                            view="none")
    callback.setup()
    out = io.StringIO()
    callback._view = _LineView(callback.progress(), out)
    one = _trial("one", lr=0.05)
    callback.on_trial_start(0, [one], one)
    one.error_msg = ("Traceback (most recent call last):\n  ...\n"
                     "ray.exceptions.ActorDiedError: The actor died unexpectedly")
    callback.on_trial_recover(0, [one], one)
    line = out.getvalue().splitlines()[-1]
    assert "trial one stopped (ray.exceptions.ActorDiedError: The actor died unexpectedly); retrying from its last " \
           "checkpoint" in line
    assert read_progress(tmp_path / "progress.json")["counts"].get("running") == 1


def _status(experiment: Path, capsys) -> tuple[int, str, str]:
    from trainables.cli import run_main
    from tuner.search import cli

    code = run_main(cli.main, ["--storage-path", str(experiment.parent), "--status", experiment.name], prog=cli.PROG)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_shows_a_found_progress_file_as_text_never_as_markup_or_escapes(tmp_path: Path, capsys) -> None:
    experiment = tmp_path / "found"
    experiment.mkdir()
    crafted = {"counts": {"running": 1}, "space": "[blink]lwta[/blink]", "phase": "\x1b[2J\x1b[31mtraining",
               "num_samples": 1, "max_epochs": 2, "updated": time.time(),
               "trials": [{"trial_id": "[bold red]t0\x1b]0;title\x07", "params": {"lr": "[link=x]0.1"}, "epoch": 1,
                           "outcome": "failed", "reason": "\x1b[1Aboom [red]"}]}
    (experiment / "progress.json").write_text(json.dumps(crafted))
    code, out, err = _status(experiment, capsys)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "[bold red]t0" in out and "[blink]lwta[/blink]" in out and "boom [red]" in out  # shown as text
    for bad, needle in (({"epoch": "many"}, "not a readable robustune progress file"),
                        ({"params": "lr=1"}, "params must be an object"),
                        ({"outcome": "exploded"}, "not a readable robustune progress file")):
        (experiment / "progress.json").write_text(json.dumps(crafted | {"trials": [{"trial_id": "t", **bad}]}))
        code, _, err = _status(experiment, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], lines


def test_status_of_a_search_that_holds_its_experiment_but_wrote_no_progress_says_it_is_starting(
        tmp_path: Path, capsys) -> None:
    from tuner.cluster.lock import experiment_lock

    experiment = tmp_path / "starting"
    with experiment_lock(str(experiment), "python -m tuner.search"):  # loading data, starting Ray: no progress.json
        code, out, err = _status(experiment, capsys)
    assert code == 0, err
    assert "starting (process" in out and "no trial has started yet" in out
    code, _, err = _status(experiment, capsys)  # nobody holds it and it has no progress: nothing to show
    assert code == 2 and "no readable progress" in err


def test_resuming_a_finished_search_shows_its_trials_as_they_ended_not_interrupted(tmp_path: Path, capsys) -> None:
    callback = LiveProgress(tmp_path / "progress.json", num_samples=3, max_epochs=2, view="none")
    callback.setup()
    finished = _trial("done", "TERMINATED", {"epoch": 2.0, "natural_acc": 0.8, "robust_acc": 0.5, "objective": 0.45,
                                             "final_evaluated": 1.0})
    pruned = _trial("stopped", "TERMINATED", {"epoch": 1.0, "natural_acc": 0.5, "robust_acc": 0.2, "pruned": 1.0})
    running = _trial("cut", "RUNNING", {"epoch": 1.0, "natural_acc": 0.6, "robust_acc": 0.3})
    callback.on_experiment_end([finished, pruned, running])  # Tune restored them; nothing was left to run
    assert "training done: 1 finished, 1 pruned, 1 interrupted" in capsys.readouterr().err
    counts = read_progress(tmp_path / "progress.json")["counts"]
    assert {k: n for k, n in counts.items() if n} == {"finished": 1, "pruned": 1, "interrupted": 1}


def test_no_live_lines_share_one_clock_and_each_is_stamped_when_it_is_printed(monkeypatch) -> None:
    import tuner.console.view as view_module

    now = [1000.0]
    monkeypatch.setattr(view_module.time, "time", lambda: now[0])
    out = io.StringIO()
    phases = Phases(live=False, stream=out)  # the run starts at 1000
    now[0] = 1030.0
    with phases.counted("scoring") as heard:
        now[0] = 1090.0
        heard("test: fgsm", 1, 2)
        now[0] = 1150.0
    callback = LiveProgress(None, num_samples=1, max_epochs=1, view="none", started=phases.started)
    callback.setup()
    callback._view = _LineView(callback.progress(), out)
    one = _trial("one", lr=0.05)
    callback.on_trial_start(0, [one], one)
    stamps = [line.split("]")[0] + "]" for line in out.getvalue().splitlines()]
    assert stamps == ["[0:30]", "[1:30]", "[2:30]", "[2:30]"], out.getvalue()
