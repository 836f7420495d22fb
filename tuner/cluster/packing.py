"""``--gpus-per-trial auto``: the share of a GPU each trial asks Ray for, sized from a short memory probe.

A small model (the quick preset's CNN, a WRN-16-1) uses a sliver of a modern card and leaves its
compute idle, so several trials should share one. Before the search, one Ray task on a GPU node
runs a training step with each of the mix's attacks and one scoring batch for the base run and the
space's starting points (:func:`trainables.train.footprint.measure_footprint`). Each trial is then
given 1/k of a GPU, with k the number of such processes that fit in 90% of the card when each
allocator peak is doubled (sampled models may be larger than the ones probed, and fragmentation
grows over a run), at most :data:`MAX_PER_GPU`. Without GPUs in the cluster, auto is 0 (CPU trials).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainables.data.info import DatasetInfo
from trainables.evaluation import SuiteConfig
from trainables.train import RunSpec
from trainables.train.footprint import Footprint, measure_footprint

__all__ = ["MAX_PER_GPU", "GpuShare", "gpu_share", "probe_on_cluster", "trials_per_gpu"]

MAX_PER_GPU = 8  # more processes than this contend for the SMs more than they fill them (bench/gpu_check.sh)
USABLE = 0.9  # of the card's memory; the rest for the driver and what the probe cannot see
HEADROOM = 2.0  # multiplies each trial's allocator peak
PROBE_TIMEOUT_S = 300.0

Probe = Callable[[list[RunSpec], DatasetInfo, list[SuiteConfig]], Footprint]


def trials_per_gpu(footprint: Footprint, max_per_gpu: int = MAX_PER_GPU) -> int:
    """How many trials of ``footprint`` share one card: at least 1, at most ``max_per_gpu``."""
    per_trial = footprint.peak_bytes * HEADROOM + footprint.overhead_bytes
    fits = math.floor(footprint.total_bytes * USABLE / per_trial) if per_trial > 0 else max_per_gpu
    return max(1, min(max_per_gpu, fits))


@dataclass(frozen=True)
class GpuShare:
    """The fraction each trial asks for and why, in one line for the terminal."""

    fraction: float
    reason: str


def gpu_share(specs: list[RunSpec], info: DatasetInfo, suites: list[SuiteConfig], has_gpu: bool,
              fallback: float, probe: Probe | None = None) -> GpuShare:
    """The share of a GPU per trial for ``--gpus-per-trial auto``; ``fallback`` when the probe fails."""
    if not has_gpu:
        return GpuShare(0.0, "--gpus-per-trial auto: no GPU in the cluster, trials train on CPUs")
    try:
        footprint = (probe or probe_on_cluster)(specs, info, suites)
    except Exception as exc:  # noqa: BLE001 (a failed probe must not stop the search: it falls back)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return GpuShare(fallback, f"--gpus-per-trial auto: the memory probe failed ({reason}); "
                                  f"using the preset's {fallback:g} GPU per trial")
    k = trials_per_gpu(footprint)
    fraction = math.floor(10_000 / k) / 10_000  # Ray keeps 4 decimals; k shares must fit in 1
    gib = footprint.per_process_bytes / 2**30
    return GpuShare(fraction, f"--gpus-per-trial auto: {k} trial(s) per GPU ({fraction:g} each): one needs "
                              f"{gib:.2f} GiB at its peak on the {footprint.device_name or 'GPU'} "
                              f"({footprint.total_bytes / 2**30:.0f} GiB)")


def _probe_task(specs: list[dict[str, Any]], info: DatasetInfo, suites: list[dict[str, Any]]) -> Footprint:
    """Runs on a GPU node: the footprint of the specs (sent as dicts) there."""
    return measure_footprint([RunSpec.from_dict(s) for s in specs], info,
                             [SuiteConfig.from_dict(s) for s in suites])


def probe_on_cluster(specs: list[RunSpec], info: DatasetInfo, suites: list[SuiteConfig],
                     timeout_s: float = PROBE_TIMEOUT_S) -> Footprint:
    """:func:`~trainables.train.footprint.measure_footprint` in one Ray task holding one whole GPU."""
    import ray

    task = ray.remote(num_gpus=1, num_cpus=1, max_retries=0)(_probe_task)
    ref = task.remote([s.to_dict() for s in specs], info, [s.to_dict() for s in suites])
    try:
        return ray.get(ref, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        ray.cancel(ref, force=True)
        raise TimeoutError(f"no answer within {timeout_s:.0f} s") from None
