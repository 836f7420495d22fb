"""bench_scoring: the export's scoring in processes against threads, as its JSON says; bad input refused."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench import bench_scoring
from trainables.attacks import FGSM
from trainables.cli import run_main
from trainables.data import DataConfig, Splits
from trainables.evaluation import SuiteConfig
from trainables.models import ModelConfig, build_model
from trainables.train import RunSpec, TrainConfig
from tuner.export import export_model


def test_bench_scoring_times_processes_against_threads(fmnist: Splits, tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = RunSpec(data=DataConfig(train_limit=100, val_limit=50, test_limit=50),
                   model=ModelConfig(name="cnn", cnn_width=4, cnn_kernel=3, hidden_blocks=8),
                   train=TrainConfig(epochs=1), suite=SuiteConfig(attacks=(FGSM(),)))
    model = build_model(spec.model, fmnist.info).eval()
    export = export_model(model, spec, tmp_path / "export", info=fmnist.info, command="test", space="cnn",
                          params={}, provenance={},
                          metrics={"suite": spec.suite.to_dict(), "threat": {"eps": 0.1, "l2_eps": 1.5}})
    out = tmp_path / "scoring.json"
    argv = ["--export", str(export), "--images", "40", "--workers", "2", "--repeats", "1", "--json", str(out)]
    assert bench_scoring.main(argv) == 0
    data = json.loads(out.read_text())
    header = data["header"]
    assert header["workers"] == 2 and header["images"] == 40 and header["export"] == str(export)
    comparison = data["comparison"]
    assert comparison["ours"] == "2 processes x 1 thread" and comparison["reference"] == "1 process x 2 threads"
    assert comparison["ratio"] > 0 and len(comparison["ours_s"]) == len(comparison["reference_s"]) == 1


def test_bench_scoring_refuses_bad_counts(tmp_path: Path, capsys) -> None:
    assert run_main(bench_scoring.main, ["--export", str(tmp_path), "--images", "0"], prog=bench_scoring.PROG) == 2
    assert "--images" in capsys.readouterr().err
