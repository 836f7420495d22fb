"""Where a search's trials go: each trial's share of the cluster, checked against the cluster before the first trial."""

from __future__ import annotations

from collections.abc import Callable

import ray

from search_spaces import get_space
from trainables.data import DatasetInfo
from tuner.cluster.packing import gpu_share
from tuner.cluster.resources import TrialResources, request_from_autoscaler, wait_until_placeable
from tuner.cluster.storage import check_shared
from tuner.search.config import SearchConfig
from tuner.search.plan import SearchPlan

__all__ = ["place_trials"]


def _gpus_per_trial(cfg: SearchConfig, plan: SearchPlan, info: DatasetInfo, say: Callable[[str], None]) -> float:
    """``--gpus-per-trial`` as a number: as given, or sized by a memory probe for auto (also when unset)."""
    if cfg.gpus_per_trial not in (None, "auto"):
        return cfg.fixed_gpus_per_trial
    space = get_space(cfg.space)
    specs = [plan.base, *(space.apply(plan.base, p) for p in space.points_to_evaluate(plan.preset))]
    share = gpu_share(specs, info, [plan.base.suite, plan.objective_suite, plan.export_suite],
                      has_gpu=ray.cluster_resources().get("GPU", 0) > 0, fallback=plan.preset.gpus_per_trial)
    if share.fraction or cfg.gpus_per_trial == "auto":
        say(share.reason)
    return share.fraction


def place_trials(cfg: SearchConfig, plan: SearchPlan, info: DatasetInfo,
                 say: Callable[[str], None]) -> tuple[TrialResources, int | None]:
    """Each trial's workers and resources, checked against the cluster Ray is connected to, and how many run at once."""
    layout = TrialResources.resolve(cfg.cpus_per_trial, _gpus_per_trial(cfg, plan, info, say), cfg.workers_per_trial)
    joined = cfg.address != ""
    if joined:  # nodes on other hosts must see the experiment folder to checkpoint into it
        check_shared(cfg.folder.path, cfg.folder.remote, ray.nodes())
    wait_s = cfg.resource_wait_s if cfg.resource_wait_s is not None else (600.0 if joined else 0.0)
    wait_until_placeable(layout, ray.nodes, timeout_s=wait_s, request=request_from_autoscaler if joined else None,
                         notify=say)
    max_concurrent = cfg.max_concurrent
    if layout.data_parallel:  # Tune cannot see Train's workers: never start more trials than the cluster holds
        fits = layout.concurrency(ray.cluster_resources())
        max_concurrent = min(max_concurrent or fits, fits)
    return layout, max_concurrent
