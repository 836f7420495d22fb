"""Trials that train data-parallel over several workers: a Tune function that runs a Ray Train TorchTrainer.

This is Ray's documented Train V2 + Tune pattern. Tune runs :func:`run_data_parallel_trial`, a
driver that needs no CPU (it only waits), one per trial. The driver starts a ``TorchTrainer`` whose
workers (one per GPU, or gloo workers on CPU) join one process group and run the same
:func:`trainables.train.fit`, which trains with DistributedDataParallel. Every worker reports each
epoch; ``TuneReportCallback`` hands rank 0's report to Tune, so ASHA and Optuna see the same
metrics as for a single-process trial.

Checkpoints live in Ray Train's own storage, ``<experiment>/train-runs/train-<trial id>``: the
run name is fixed per trial, so a trial that Tune retries (FailureConfig) or resumes (``--resume``)
builds the same run, whose checkpoint manager reloads its last checkpoint, and the workers resume
from it. Tune sees the checkpoint as the ``checkpoint_path`` metric
(:func:`tuner.trials.results.collect_trials` turns it back into a checkpoint for the export).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from trainables.data import Splits
from tuner.cluster.resources import TrialResources
from tuner.trials.trial import TrainSession, TrialContext, train_trial, trial_spec

__all__ = ["SplitsRef", "run_data_parallel_trial", "train_run_name"]

WORKER_START_TIMEOUT_S = "600"  # Train's default 60 s is shorter than an autoscaler's GPU node start


@dataclass(frozen=True)
class SplitsRef:
    """The data, put in Ray's object store once; every worker of every trial reads that copy."""

    ref: Any  # ray.ObjectRef of a Splits

    def get(self) -> Splits:
        """The splits behind the reference."""
        import ray

        return ray.get(self.ref)


def train_run_name(trial_id: str) -> str:
    """Ray Train's run name for a trial: fixed, so that a retried or resumed trial finds its checkpoints."""
    return f"train-{trial_id}"


def run_data_parallel_trial(config: dict[str, Any], context: TrialContext, data: SplitsRef,
                            layout: TrialResources, storage_path: str) -> None:
    """Ray Tune function trainable: one TorchTrainer run of ``layout.workers`` workers for this trial."""
    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_spec(context, config)  # a bad configuration fails here, before any worker starts
    # read by Train's controller, which inherits it from this driver process (an explicit setting wins)
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", WORKER_START_TIMEOUT_S)
    gpu = layout.gpus_per_worker > 0
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"config": config, "context": context, "data": data},
        scaling_config=ray.train.ScalingConfig(
            num_workers=layout.workers, use_gpu=gpu,
            resources_per_worker={"CPU": layout.cpus_per_worker, **({"GPU": 1.0} if gpu else {})}),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=train_run_name(tune.get_context().get_trial_id()), storage_path=storage_path,
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=0),  # Tune's FailureConfig retries the trial
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )
    trainer.fit()


def _train_worker(loop_config: dict[str, Any]) -> None:
    """What every Ray Train worker runs: the trial's body on this worker's device."""
    import ray.train.torch
    import torch

    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    train_trial(loop_config["config"], loop_config["context"], loop_config["data"].get(), TrainSession(device))
