"""bench_fused: bundles against the same runs apart, on the quick shape, as its table and JSON say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import bench_fused
from bench.gpu_check_summary import summary_rows


def test_bench_fused_measures_bundles_against_runs_apart_and_feeds_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "fused.json"  # the name bench/gpu_check.sh gives it
    argv = ["--device", "cpu", "--ks", "1,2", "--repeats", "1", "--warmup", "0", "--threads", "1", "--json", str(out)]
    assert bench_fused.main(argv) == 0
    data = json.loads(out.read_text())
    assert [(r["shape"], r["k"]) for r in data["rows"]] == [("quick", 1), ("quick", 2)]
    for row in data["rows"]:
        assert row["fused_trials_per_hour"] > 0 and row["apart_trials_per_hour"] > 0
    assert bench_fused.trial_steps(bench_fused.shape_spec("quick")) == 15 * 430  # 15 epochs of 55000 / 128 batches
    packed = {"trials": 2, "trials_per_hour": 1.0, "steps_per_s": 2.0, "speedup": 1.5}
    (tmp_path / "packing.json").write_text(json.dumps({"trial_steps": 6450, "rows": [packed]}))
    rows = {r.check: r for r in summary_rows(tmp_path)}
    fused = data["rows"][1]["fused_trials_per_hour"]
    assert rows["fused: quick k=2"].result == f"{fused:.1f} trials/h"
    assert f"1.0/h as 2 packed processes: {fused:.2f}x" in rows["fused: quick k=2"].detail


def test_bench_fused_refuses_an_unknown_shape() -> None:
    with pytest.raises(ValueError, match="unknown shape 'vgg'"):
        bench_fused.shape_spec("vgg")
