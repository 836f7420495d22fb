"""bench_scoring: the export's scoring in processes against threads, as its JSON says; bad input refused."""

from __future__ import annotations

import json
from pathlib import Path

from bench import bench_scoring
from trainables.cli import run_main


def test_bench_scoring_times_processes_against_threads(tmp_path: Path) -> None:
    out = tmp_path / "scoring.json"
    argv = ["--suite", "objective", "--images", "40", "--workers", "2", "--train-steps", "5", "--repeats", "1",
            "--json", str(out)]
    assert bench_scoring.main(argv) == 0
    data = json.loads(out.read_text())
    header = data["header"]
    assert header["workers"] == 2 and header["images"] == 40 and header["model"] == "5 clean steps"
    comparison = data["comparison"]
    assert comparison["ours"] == "2 processes x 1 thread" and comparison["reference"] == "1 process x 2 threads"
    assert comparison["ratio"] > 0 and len(comparison["ours_s"]) == len(comparison["reference_s"]) == 1


def test_bench_scoring_refuses_bad_counts(capsys) -> None:
    assert run_main(bench_scoring.main, ["--images", "0"], prog=bench_scoring.PROG) == 2
    assert "--images" in capsys.readouterr().err
