"""Data-parallel trials: the resource layout, and searches whose trials run a Ray Train TorchTrainer of
2 gloo workers through a real local Ray (the CPU stand-in for several GPUs per trial)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tuner.cluster.resources import TrialResources

TINY = ["--epochs", "2", "--train-limit", "600", "--val-limit", "60", "--test-limit", "60", "--no-live",
        "--workers-per-trial", "2"]


# --- layout ---------------------------------------------------------------------------------------

def test_one_worker_takes_the_trial_as_it_is_and_several_split_it() -> None:
    assert TrialResources.resolve(2.0, 0.5, None) == TrialResources(1, 2.0, 0.5)  # a GPU fraction: one worker
    assert TrialResources.resolve(4.0, 4.0, None) == TrialResources(4, 1.0, 1.0)  # one worker per GPU
    assert TrialResources.resolve(1.0, 0.0, 2) == TrialResources(2, 0.5, 0.0)  # gloo workers on CPU
    assert TrialResources.resolve(2.0, 2.0, 2).data_parallel
    assert not TrialResources.resolve(1.0, 1.0, None).data_parallel


@pytest.mark.parametrize(("cpus", "gpus", "workers", "needle"), [
    (1.0, 1.5, None, "whole number of GPUs, got 1.5"),
    (1.0, 1.0, 2, "each data-parallel worker needs one whole GPU; use --gpus-per-trial 2"),
    (1.0, 4.0, 2, "--gpus-per-trial 4 with --workers-per-trial 2"),
    (1.0, 0.0, 0, "--workers-per-trial must be >= 1, got 0"),
])
def test_layouts_nccl_cannot_run_are_refused(cpus: float, gpus: float, workers: int | None, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        TrialResources.resolve(cpus, gpus, workers)


def test_concurrency_is_what_the_cluster_holds() -> None:
    four_gpus = {"CPU": 16.0, "GPU": 4.0}
    assert TrialResources.resolve(2.0, 2.0, None).concurrency(four_gpus) == 2
    assert TrialResources.resolve(16.0, 2.0, None).concurrency(four_gpus) == 1
    assert TrialResources.resolve(1.0, 0.0, 2).concurrency({"CPU": 2.0}) == 2
    with pytest.raises(ValueError, match="but the Ray cluster has 2 CPU and 0 GPU"):
        TrialResources.resolve(1.0, 4.0, None).concurrency({"CPU": 2.0})


# --- searches through Ray Train ---------------------------------------------------------------------

# A data-parallel search with a diverging trial, its workers on two nodes: tests/test_multinode.py.


def _registered(experiment: Path) -> list[dict[str, float]]:
    """The training history in the newest checkpoint Ray Train has registered for the experiment's only Train run
    ([] before one). A checkpoint folder can reach storage and the run be stopped before Train registers it; a
    resume then starts from the registered one and trains the epochs after it again (on a fast machine, one
    epoch fits between the two)."""
    from trainables.train import CheckpointError, load_checkpoint

    snapshots = sorted((experiment / "train-runs").glob("train-*/checkpoint_manager_snapshot.json"))
    try:
        results = json.loads(snapshots[-1].read_text())["checkpoint_results"] if snapshots else []
        newest = max(results, key=lambda r: r["metrics"]["epoch"]) if results else None
        return load_checkpoint(snapshots[-1].parent / newest["checkpoint_dir_name"]).history if newest else []
    except (CheckpointError, OSError, ValueError, KeyError):  # still being written
        return []


@pytest.mark.slow
@pytest.mark.ray
def test_interrupted_data_parallel_trial_resumes_from_its_train_checkpoint(search, tmp_path: Path) -> None:
    args = [*TINY, "--epochs", "4", "--train-limit", "2000", "--max-concurrent", "1",  # epochs of a few seconds
            "--attacks", "fgsm"]  # the export's suite is not what this tests
    experiment = tmp_path / "runs" / "lwta-quick"
    interrupted = search.interrupt_when(lambda: bool(_registered(experiment)), "--space", "lwta", "--num-samples",
                                        "1", *args, within=300)  # after the first epoch's checkpoint
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    before = _registered(experiment)
    assert 1 <= len(before) < 4

    resumed = search.run("--space", "lwta", "--num-samples", "1", "--resume", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = _registered(experiment)
    assert [row["epoch"] for row in after] == [1.0, 2.0, 3.0, 4.0]
    assert after[:len(before)] == before  # the epochs Train had recorded were kept (same timings), not trained again
    row = pq.read_table(experiment / "results.parquet").to_pylist()[0]
    assert row["outcome"] == "finished" and row["epochs"] == 4  # the epochs before the interrupt are kept too
    assert [h["epoch"] for h in row["history"]] == [1.0, 2.0, 3.0, 4.0]
    assert (tmp_path / "exports" / "lwta-quick" / "model.safetensors").exists()
