"""tuner.crosscheck: torchattacks' check of an export's claims, its table, verdict and exit codes."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_export import COMMAND, INFO, _spec, _trained_cnn

from trainables.attacks import FGSM, PGD, PGDL2, ThreatModel
from trainables.cli import run_main
from trainables.data import Splits
from trainables.evaluation import SuiteConfig
from trainables.models import build_model
from tuner import crosscheck
from tuner.export import METRICS_FILE, evaluate_for_export, export_model

SUITE = SuiteConfig(attacks=(FGSM(), PGD(steps=2), PGDL2(steps=2)))
ROWS = {"natural_acc", "acc/FGSM", "acc/PGD", "acc/APGD-CE", "acc/APGD-DLR", "acc/PGDL2", "acc/APGD-L2",
        "robust_acc/linf", "robust_acc/l2", "robust_acc"}


@pytest.fixture(scope="module")
def tiny_export(fmnist: Splits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cnn export (a few Adam steps) scored on 64 test images under FGSM, PGD-2 and PGD-L2-2."""
    small = Splits(fmnist.train, fmnist.val.head(16), fmnist.test.head(64), fmnist.info)
    model = _trained_cnn(fmnist)
    out = tmp_path_factory.mktemp("crosscheck") / "best"
    export_model(model, replace(_spec(), suite=SUITE), out, info=fmnist.info,
                 metrics=evaluate_for_export(model, small, SUITE, ThreatModel()), command=COMMAND, space="cnn")
    return out


def _claim(export: Path, tmp_path: Path, name: str, test: dict[str, float]) -> Path:
    """A copy of ``export`` whose metrics.json claims ``test`` on top of its own test accuracies."""
    copy = Path(shutil.copytree(export, tmp_path / name))
    metrics = json.loads((copy / METRICS_FILE).read_text())
    metrics["test"] |= test
    (copy / METRICS_FILE).write_text(json.dumps(metrics))
    return copy


def _run(export: Path, *extra: str) -> int:
    return run_main(crosscheck.main, [str(export), "--steps", "2", "--device", "cpu", *extra], prog=crosscheck.PROG)


def test_agrees_with_modest_claims_and_disagrees_with_inflated_ones(tiny_export: Path, tmp_path: Path,
                                                                    capsys) -> None:
    modest = _claim(tiny_export, tmp_path, "modest", {k: 0.0 for k in crosscheck.CLAIMED})
    assert _run(modest, "--out", str(tmp_path / "first.json")) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "AGREE"
    report = json.loads((tmp_path / "first.json").read_text())
    rows = report["rows"]
    assert set(rows) == ROWS and report["verdict"] == "AGREE"
    assert "64 (claims on 64)" in report["header"]["examples"]
    for key, row in rows.items():
        assert 0.0 <= row["torchattacks"] <= rows["natural_acc"]["torchattacks"] <= 1.0, key
    assert rows["robust_acc"]["torchattacks"] <= min(rows[f"robust_acc/{n}"]["torchattacks"] for n in ("linf", "l2"))
    assert rows["robust_acc/linf"]["torchattacks"] <= min(rows[f"acc/{a}"]["torchattacks"] for a in ("PGD", "FGSM"))
    assert rows["acc/FGSM"]["claim"] is None and rows["robust_acc"]["difference"] <= 0.0

    theirs = {k: rows[k]["torchattacks"] for k in crosscheck.CLAIMED}
    inflated = _claim(tiny_export, tmp_path, "inflated", theirs | {"robust_acc": theirs["robust_acc"] + 0.20})
    assert _run(inflated) == 1  # the same seeds: the same torchattacks figures, 20 points below the claim
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("DISAGREE: robust_acc claims") and "robust_acc/linf" not in last


def test_a_stochastic_export_is_attacked_with_eot_and_judged_over_several_draws(fmnist: Splits, tmp_path: Path,
                                                                                capsys) -> None:
    suite = replace(SUITE, eot_samples=2, predict_samples=3)
    torch.manual_seed(0)
    model = build_model(_spec("lwta-cnn").model, INFO).eval()
    small = Splits(fmnist.train, fmnist.val.head(8), fmnist.test.head(16), fmnist.info)
    out = export_model(model, replace(_spec("lwta-cnn"), suite=suite), tmp_path / "lwta", info=INFO,
                       metrics=evaluate_for_export(model, small, suite, ThreatModel()), command=COMMAND,
                       space="lwta")

    assert _run(out, "--limit", "8", "--eot-iter", "2", "--out", str(tmp_path / "lwta.json")) in (0, 1)
    report = json.loads((tmp_path / "lwta.json").read_text())
    assert set(report["rows"]) == ROWS | {"acc/EOTPGD"} and report["header"]["examples"] == "8 (claims on 16)"
    assert report["header"]["judged"].startswith("predictions averaged over 3 draws")
    assert capsys.readouterr().out.strip().splitlines()[-1] == report["verdict"]


def test_apgd_t_adds_autoattacks_targeted_row_to_the_worst_case(tiny_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "targeted.json"
    assert _run(tiny_export, "--apgd-t", "--limit", "16", "--square-queries", "0", "--out", str(out)) in (0, 1)
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == ROWS | {"acc/APGD-T"}
    theirs = {key: row["torchattacks"] for key, row in rows.items()}
    assert theirs["robust_acc/linf"] <= min(theirs["acc/APGD-T"], theirs["acc/APGD-DLR"]) <= theirs["natural_acc"]


@pytest.mark.parametrize("claim, agree", [(0.51, True), (0.50, True), (0.30, True), (0.5101, False), (0.52, False),
                                          (0.9, False)])
def test_a_claim_may_lie_at_most_one_point_above_torchattacks(claim: float, agree: bool) -> None:
    measured = {"natural_acc": 0.9, "robust_acc/linf": 0.5, "robust_acc": 0.5}
    wrong = crosscheck.disagreements({"robust_acc": claim, "natural_acc": 0.99}, measured)
    assert (wrong == []) is agree
    assert crosscheck.disagreements({"robust_acc/l2": 0.99}, measured) == []  # nothing measured: nothing to check


@pytest.mark.parametrize("extra, needle", [(["--limit", "0"], "--limit must be >= 1"),
                                           (["--eot-iter", "0"], "eot_iter must be >= 1")])
def test_bad_flags_are_one_line(tiny_export: Path, capsys, extra: list[str], needle: str) -> None:
    assert _run(tiny_export, *extra) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines


def test_without_torchattacks_it_says_so_in_one_line(tiny_export: Path, capsys,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torchattacks", None)  # what a plain ./setup.sh leaves: not installed
    assert _run(tiny_export) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "needs torchattacks, which is not installed: ./setup.sh --dev" in lines[0], lines
