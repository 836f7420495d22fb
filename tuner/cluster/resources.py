"""What one trial asks Ray for: how many data-parallel workers, and CPUs and GPUs for each.

``--cpus-per-trial`` and ``--gpus-per-trial`` are totals per trial. One worker takes them as they
are (a GPU fraction lets trials share a GPU); several workers split them, one whole GPU each, since
NCCL cannot put two ranks on one device. A trial with several GPUs gets one worker per GPU; on CPU,
``--workers-per-trial`` asks for gloo workers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["DRIVER_MEMORY", "TrialResources", "describe_nodes", "placeable", "request_from_autoscaler",
           "wait_until_placeable"]

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
        if not (math.isfinite(cpus_per_trial) and cpus_per_trial > 0):
            raise ValueError(f"--cpus-per-trial must be a finite number > 0, got {cpus_per_trial}")
        if not (math.isfinite(gpus_per_trial) and gpus_per_trial >= 0):
            raise ValueError(f"--gpus-per-trial must be a finite number >= 0, got {gpus_per_trial}")
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


def _per_node(nodes: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(CPU, GPU) of every alive node of ``ray.nodes()``."""
    return [(float(n.get("Resources", {}).get("CPU", 0.0)), float(n.get("Resources", {}).get("GPU", 0.0)))
            for n in nodes if n.get("Alive", n.get("alive", False))]


def placeable(layout: TrialResources, nodes: list[dict[str, Any]]) -> bool:
    """Whether one trial of ``layout`` can be placed on the alive ``nodes`` (each worker on a single node)."""
    slots = 0
    for cpus, gpus in _per_node(nodes):
        by_cpu = math.floor(cpus / layout.cpus_per_worker + 1e-9) if layout.cpus_per_worker > 0 else layout.workers
        by_gpu = math.floor(gpus / layout.gpus_per_worker + 1e-9) if layout.gpus_per_worker > 0 else layout.workers
        slots += min(by_cpu, by_gpu)
    return slots >= layout.workers


def describe_nodes(nodes: list[dict[str, Any]]) -> str:
    """``"2 nodes: 2 CPU 0 GPU, 4 CPU 1 GPU"`` for a refusal."""
    sizes = _per_node(nodes)
    return f"{len(sizes)} node(s): " + (", ".join(f"{c:g} CPU {g:g} GPU" for c, g in sizes) or "none alive")


def wait_until_placeable(layout: TrialResources, nodes: Callable[[], list[dict[str, Any]]], *, timeout_s: float,
                         request: Callable[[TrialResources], None] | None = None, poll_s: float = 5.0,
                         notify: Callable[[str], None] = lambda message: None) -> None:
    """Return once a trial of ``layout`` fits the cluster; ValueError after ``timeout_s`` seconds (0: at once).

    ``request`` asks an autoscaler for the trial's resources first (it only adds nodes for demand).
    """
    if placeable(layout, nodes()):
        return
    need = (f"a trial needs {layout.workers} worker(s) with {layout.cpus_per_worker:g} CPU and "
            f"{layout.gpus_per_worker:g} GPU each, on a single node per worker")
    if timeout_s > 0:
        if request is not None:
            request(layout)
        notify(f"{need}; waiting up to {timeout_s:g} s for the cluster to grow")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))
            if placeable(layout, nodes()):
                return
    waited = f" after waiting {timeout_s:g} s" if timeout_s > 0 else ""
    raise ValueError(f"{need}, but the Ray cluster has {describe_nodes(nodes())}{waited}; lower --cpus-per-trial / "
                     "--gpus-per-trial or add nodes")


def request_from_autoscaler(layout: TrialResources) -> None:
    """Ask Ray's autoscaler (if the cluster has one) for one trial's worth of bundles."""
    from ray.autoscaler.sdk import request_resources

    bundle = {"CPU": layout.cpus_per_worker, **({"GPU": layout.gpus_per_worker} if layout.gpus_per_worker else {})}
    request_resources(bundles=[bundle] * layout.workers)
