"""What one trial asks Ray for: how many data-parallel workers, and CPUs and GPUs for each.

``--cpus-per-trial`` and ``--gpus-per-trial`` are totals per trial. One worker takes them as they
are (a GPU fraction lets trials share a GPU); several workers split them, one whole GPU each, since
NCCL cannot put two ranks on one device. A trial with several GPUs gets one worker per GPU; on CPU,
``--workers-per-trial`` asks for gloo workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DRIVER_MEMORY", "TrialResources"]

DRIVER_MEMORY = 256 * 2**20  # bytes Tune reserves for a data-parallel trial's driver, which only waits


@dataclass(frozen=True)
class TrialResources:
    """Workers per trial and what each of them holds."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    @classmethod
    def resolve(cls, cpus_per_trial: float, gpus_per_trial: float, workers_per_trial: int | None) -> TrialResources:
        """The layout for per-trial totals; ValueError for one NCCL cannot run."""
        if gpus_per_trial > 1 and not float(gpus_per_trial).is_integer():
            raise ValueError(f"--gpus-per-trial above 1 must be a whole number of GPUs, got {gpus_per_trial}")
        if workers_per_trial is not None:
            workers = workers_per_trial
        else:
            workers = int(gpus_per_trial) if gpus_per_trial > 1 else 1
        if workers < 1:
            raise ValueError(f"--workers-per-trial must be >= 1, got {workers}")
        if workers == 1:
            return cls(1, cpus_per_trial, gpus_per_trial)
        if gpus_per_trial and gpus_per_trial != workers:
            raise ValueError(f"--gpus-per-trial {gpus_per_trial:g} with --workers-per-trial {workers}: each "
                             f"data-parallel worker needs one whole GPU; use --gpus-per-trial {workers}")
        return cls(workers, cpus_per_trial / workers, 1.0 if gpus_per_trial else 0.0)

    @property
    def data_parallel(self) -> bool:
        """Several workers: the trial runs a Ray Train TorchTrainer."""
        return self.workers > 1

    @property
    def cpus(self) -> float:
        """CPUs of the whole trial."""
        return self.workers * self.cpus_per_worker

    @property
    def gpus(self) -> float:
        """GPUs of the whole trial."""
        return self.workers * self.gpus_per_worker

    def concurrency(self, cluster: dict[str, float]) -> int:
        """How many trials fit in ``cluster`` (``ray.cluster_resources()``) at once; ValueError if none does.

        Ray Train places a data-parallel trial's workers itself, outside Tune's accounting, so Tune
        must not start more trials than there are resources for: their worker groups would wait for
        each other until Train's start-up timeout.
        """
        fits = [math.floor(cluster.get(kind, 0.0) / need + 1e-9) for kind, need in (("CPU", self.cpus),
                                                                                   ("GPU", self.gpus)) if need > 0]
        count = min(fits, default=1)
        if count < 1:
            raise ValueError(f"a trial needs {self.workers} worker(s) with {self.cpus_per_worker:g} CPU and "
                             f"{self.gpus_per_worker:g} GPU each, but the Ray cluster has "
                             f"{cluster.get('CPU', 0):g} CPU and {cluster.get('GPU', 0):g} GPU")
        return count
