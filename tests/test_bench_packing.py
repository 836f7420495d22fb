"""bench.bench_packing (trials per hour with k trials on one device) and its row in the GPU check's table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.bench_fused import shape_spec, trial_steps
from bench.bench_packing import main
from bench.gpu_check_summary import summary_rows
from search_spaces.presets import QUICK


def test_a_trial_is_the_quick_lwta_run() -> None:
    spec = shape_spec("quick")  # what a packed trial of the default shape trains, as bench_fused's runs apart
    assert spec.model.name == "lwta-cnn" and spec.train.mix.names() and spec.train.epochs == QUICK.train.epochs
    assert spec.model.lwta_layers == "dense" and spec.train.clean_weight == 0.2  # the space's first starting point
    assert trial_steps(spec) == QUICK.train.epochs * 430  # ceil(55000 / 128) steps an epoch


@pytest.mark.slow
def test_packing_runs_on_cpu_and_feeds_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "packing.json"
    assert main(["--device", "cpu", "--counts", "1,2", "--seconds", "0.5", "--warmup", "0", "--threads", "1",
                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["trials"] for r in rows] == [1, 2]
    assert all(r["steps_per_s"] > 0 and r["trials_per_hour"] > 0 for r in rows)
    assert rows[0]["speedup"] == 1.0
    table = summary_rows(tmp_path)
    assert [r.check for r in table if r.check.startswith("packing")] == [
        "packing: 1 trial(s) on one cpu", "packing: 2 trial(s) on one cpu"]


def test_the_summary_judges_a_bundle_against_packed_processes_of_its_shape(tmp_path: Path) -> None:
    cuda = {"device": "cuda:0"}
    (tmp_path / "packing-wrn16.json").write_text(json.dumps(
        {"provenance": cuda, "shape": "wrn16", "trial_steps": 6450,
         "rows": [{"trials": 8, "steps_per_s": 1.0, "trials_per_hour": 10.0, "speedup": 3.0}]}))
    (tmp_path / "fused.json").write_text(json.dumps({"provenance": cuda, "rows": [
        {"shape": "wrn16", "k": 8, "fused_trials_per_hour": 30.0, "apart_trials_per_hour": 4.0},
        {"shape": "paper", "k": 8, "fused_trials_per_hour": 4.0, "apart_trials_per_hour": 1.0}]}))
    rows = {r.check: r for r in summary_rows(tmp_path)}
    assert rows["packing: 8 wrn16 trial(s) on one cuda"].result == "10.0 trials/h"
    assert "10.0/h as 8 packed processes: 3.00x" in rows["fused: wrn16 k=8"].detail
    assert rows["fused: wrn16 k=8"].target == ">= 4x packed: NOT met"  # 7.5x apart, 3x packed
    assert rows["fused: paper k=8"].target == ">= 3x apart: met (no packing measured)"


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="--counts must be positive"):
        main(["--device", "cpu", "--counts", "0"])
