"""bench.bench_packing (trials per hour with k trials on one device) and its row in the GPU check's table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.bench_packing import _spec, main, trial_steps
from bench.gpu_check_summary import summary_rows
from search_spaces.presets import QUICK


def test_a_trial_is_the_quick_lwta_run() -> None:
    spec = _spec()
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


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="--counts must be positive"):
        main(["--device", "cpu", "--counts", "0"])
