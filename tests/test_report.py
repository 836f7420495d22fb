"""The report CLI: table from two tiny exports, certified columns for smoothing only, the three figures."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from trainables.attacks import FGSM, PGD
from trainables.cli import run_main
from trainables.data import DATASETS, DataConfig, Splits, batches
from trainables.evaluation import SuiteConfig
from trainables.models import ModelConfig, RobustModel, build_model
from trainables.train import RunSpec, TrainConfig
from tuner import report
from tuner.export import export_model
from tuner.report import cli
from tuner.trials import ParetoPoint, TrialRecord, pareto_front, write_trials

INFO = DATASETS["fashion-mnist"][0]
SUITE = SuiteConfig(attacks=(FGSM(), PGD(steps=2)), eot_samples=2, predict_samples=2)
PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--test-limit", "50", "--budget", "steps=2", "--budget", "cw.steps=3", "--eot-samples", "2",
        "--predict-samples", "2", "--certify-n0", "10", "--certify-n", "40", "--radii", "0.1,0.25",
        "--figure-limit", "30"]
COLUMNS = ("natural", "fgsm", "pgd", "pgd-l2", "cw", "worst")  # the default suite: the quick objective's attacks


def _spec(sigma: float) -> RunSpec:
    model = ModelConfig(name="cnn", cnn_width=8, cnn_kernel=3, input_noise=sigma)
    return RunSpec(data=DataConfig(train_limit=256, val_limit=50, test_limit=50), model=model,
                   train=TrainConfig(epochs=1), suite=SUITE)


def _trained(spec: RunSpec, splits: Splits) -> RobustModel:
    """A tiny CNN after 15 Adam steps on 480 real images (well above chance, far from good)."""
    torch.manual_seed(0)
    model = build_model(spec.model, INFO)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for x, y in batches(splits.train.head(480), 32, generator=torch.Generator().manual_seed(0)):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _record(trial_id: str, outcome: str, natural: float, robust: float) -> TrialRecord:
    final = {"objective": robust, "final_evaluated": 1.0, "final/natural_acc": natural, "final/robust_acc": robust}
    return TrialRecord(trial_id=trial_id, outcome=outcome, params={"lr": 0.05},
                       history=[{"epoch": 1.0, "natural_acc": natural}], final=final)


@pytest.fixture(scope="module")
def folder(fmnist: Splits, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two exports (plain cnn, cnn under sigma-0.25 noise) and a results.parquet of five trials."""
    root = tmp_path_factory.mktemp("report")
    paths = {}
    for name, sigma, trial in (("plain", 0.0, "t2"), ("smooth", 0.25, None)):
        spec = _spec(sigma)
        metrics = {"suite": SUITE.to_dict(), **({"search": {"trial_id": trial}} if trial else {})}
        paths[name] = export_model(_trained(spec, fmnist), spec, root / name, info=INFO, metrics=metrics,
                                   command="test", space="cnn")
    records = [_record("t0", "finished", 0.80, 0.30), _record("t1", "finished", 0.70, 0.40),
               _record("t2", "finished", 0.60, 0.20), _record("t3", "pruned", 0.50, 0.10),
               _record("t4", "failed", float("nan"), float("nan"))]
    paths["results"] = write_trials(records, root / "search" / "results.parquet")
    return paths


@pytest.fixture(scope="module")
def produced(folder: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    argv = ["--exports", str(folder["plain"]), str(folder["smooth"]), "--results", str(folder["results"]),
            "--out", str(out), *FAST]
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        assert cli.main(argv) == 0
    (out / "said.txt").write_text(said.getvalue())
    return out


def test_each_model_s_attacks_are_announced_as_they_run(produced: Path) -> None:
    said = (produced / "said.txt").read_text().splitlines()
    assert any(line.endswith("attacking plain (50 test images): natural") for line in said), said
    assert any("attacking smooth (50 test images): done in" in line for line in said), said


def test_table_has_a_row_per_export_with_honest_accuracies(produced: Path) -> None:
    rows = pq.read_table(produced / "table.parquet").to_pylist()
    assert [r["name"] for r in rows] == ["plain", "smooth"]
    for r in rows:
        assert r["examples"] == 50
        for column in COLUMNS:
            assert 0.0 <= r[column] <= 100.0, (r["name"], column, r[column])
        for column in COLUMNS[1:]:
            assert r[column] <= r["natural"], (r["name"], column)
        assert r["worst"] <= min(r[c] for c in COLUMNS[1:-1])
    assert rows[0]["natural"] > 20.0  # the briefly trained cnn beats chance (10%)


def test_certified_columns_only_for_the_smoothing_model(produced: Path) -> None:
    rows = {r["name"]: r for r in pq.read_table(produced / "table.parquet").to_pylist()}
    for radius in ("0.1", "0.25"):
        assert rows["plain"][f"certified@{radius}"] is None
        value = rows["smooth"][f"certified@{radius}"]
        assert value is not None and 0.0 <= value <= 100.0
    assert rows["smooth"]["certified@0.1"] >= rows["smooth"]["certified@0.25"]  # larger radius, fewer certified
    assert rows["smooth"]["sigma"] == 0.25 and rows["plain"]["sigma"] == 0.0


def test_markdown_has_rows_command_hardware_and_date(produced: Path) -> None:
    md = (produced / "table.md").read_text()
    assert "| plain | `cnn` | – |" in md and "| smooth | `cnn` | 0.25 |" in md
    assert "python -m tuner.report --exports" in md and "--test-limit 50" in md
    assert "Hardware:" in md and "torch " + torch.__version__ in md and "Date: 20" in md
    assert "certified r=0.25" in md


def test_three_figures_are_valid_pngs(produced: Path) -> None:
    for name in cli.FIGURE_FILES.values():
        data = (produced / name).read_bytes()
        assert len(data) > 1000 and data.startswith(PNG), name


def test_pareto_front_keeps_only_undominated_trials() -> None:
    points = [ParetoPoint("a", 0.8, 0.3), ParetoPoint("b", 0.7, 0.4), ParetoPoint("c", 0.6, 0.2),
              ParetoPoint("d", 0.8, 0.3)]
    assert [p.trial_id for p in pareto_front(points)] == ["b", "a", "d"]


def test_pareto_points_read_finished_trials_and_best_exportable(folder: dict[str, Path]) -> None:
    found = report.pareto_points(folder["results"])
    assert sorted(p.trial_id for p in found.points) == ["t0", "t1", "t2"]
    assert found.marked == "t1"
    assert sorted(found.front) == ["t0", "t1"]  # the exportable front, by the search's own rule


def test_check_rows_refuses_robust_above_natural() -> None:
    row = report.ReportRow(name="x", model="cnn", sigma=0.0, examples=10, natural=50.0,
                           attacks={"pgd": 60.0, "fgsm": 40.0}, worst=40.0, certified={}, seconds=1.0, source="test")
    with pytest.raises(AssertionError, match="above natural"):
        report.check_rows([row])
    with pytest.raises(AssertionError, match="outside"):
        report.check_rows([report.ReportRow(**{**row.__dict__, "attacks": {"pgd": 40.0}, "natural": 120.0})])
    with pytest.raises(AssertionError, match="above a single attack"):
        report.check_rows([report.ReportRow(**{**row.__dict__, "attacks": {"pgd": 30.0}})])


def test_missing_export_dir_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--exports", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]
    assert run_main(cli.main, argv, prog=cli.PROG) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"{cli.PROG}: error:") and "nope" in err
    assert not (tmp_path / "out").exists()


def test_exports_and_recipes_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--exports", "a", "--recipes", "regular"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_unknown_marked_trial_fails_before_scoring(folder: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--exports", str(folder["plain"]), "--results", str(folder["results"]), "--export", "t9",
            "--out", str(tmp_path / "out")]
    assert run_main(cli.main, argv, prog=cli.PROG) == 2
    assert "'t9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--test-limit", "0"], "--test-limit must be >= 1"),
    (["--epsilon", "1.5"], "in [0, 1]"),
    (["--certify-n", "0"], "certify_n must be >= 1"),
    (["--radii", "0.25,inf"], "radii must be"),
])
def test_bad_numbers_are_refused_before_anything_is_scored(extra, needle, folder, tmp_path, capsys) -> None:
    argv = ["--exports", str(folder["plain"]), "--out", str(tmp_path / "out"), *extra]
    assert run_main(cli.main, argv, prog=cli.PROG) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "out").exists()
