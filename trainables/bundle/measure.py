"""What a training step costs per run, alone and in bundles of k: whether bundling pays on this device.

Fusing k runs into one model pays where one run leaves the device idle (a small model on a GPU)
and costs where the device was busy already (the quick preset's CNN on a CPU core: grouped
convolutions are no cheaper per run there, and k times the activations leave the caches). So the
search measures before it bundles (``--fuse auto``): one training step of the run (its own training
attack drawn from its mix, the loss, the optimiser step) alone and as bundles of k, on random data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainables.data import DatasetInfo
from trainables.models import build_model
from trainables.train import RunSpec
from trainables.train.compute import resolve_compute
from trainables.train.loop import no_decay

from .attack import attack_members
from .model import bundle_models
from .optim import MemberSGD

__all__ = ["FusionCost", "fusion_costs", "training_step"]


@dataclass(frozen=True)
class FusionCost:
    """Seconds per run of one training step in a bundle of ``k`` (k = 1: the run alone)."""

    k: int
    seconds_per_run: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_step(spec: RunSpec, info: DatasetInfo, k: int, device: torch.device) -> Callable[[], None]:
    """One training step of ``spec`` on random data: alone (k = 1, as fit trains) or as a bundle of k.

    The step attacks with the mix's costliest attack (the most steps), as the loop does when it draws it.
    """
    cfg = spec.train
    compute = resolve_compute(cfg.precision, cfg.memory_format, device)
    attacks = [a for a in cfg.mix.bound(spec.train_threat) if a is not None]
    attack = max(attacks, key=lambda a: getattr(a, "steps", 1), default=None)
    x = torch.rand(cfg.batch_size, info.channels, info.size, info.size, device=device)
    y = torch.randint(0, info.classes, (cfg.batch_size,), device=device)
    if k == 1:  # the run alone, as fit trains it: torch's SGD on the single model
        model = compute.layout(build_model(spec.model, info).to(device)).train()
        single = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)

        def step() -> None:
            with compute.autocast_context(device):
                x_train = x if attack is None else attack.perturb(model, x, y)
                loss = F.cross_entropy(model(x_train), y)
            single.zero_grad(set_to_none=True)
            loss.backward()
            single.step()
    else:
        bundle = compute.layout(bundle_models([build_model(spec.model, info) for _ in range(k)]).to(device)).train()
        skip = no_decay(bundle)
        opt = MemberSGD([(p, id(p) not in skip) for p in bundle.parameters()], k, [cfg.lr] * k, [cfg.momentum] * k,
                        [cfg.weight_decay] * k, [cfg.nesterov] * k)

        def step() -> None:
            with compute.autocast_context(device):
                x_train = attack_members(bundle, x, y, [attack] * k)
                loss = sum(F.cross_entropy(logits, y) for logits in bundle(x_train))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return step


def _seconds(step: Callable[[], None], device: torch.device) -> float:
    """Wall seconds of one call of ``step``."""
    _sync(device)
    began = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - began


def fusion_costs(spec: RunSpec, info: DatasetInfo, ks: Sequence[int], device: torch.device | str,
                 repeats: int = 5) -> list[FusionCost]:
    """Per-run seconds of a training step alone and in bundles of ``ks``, smallest first.

    Each size is timed in turns with the run alone (alone, bundle, alone, bundle, ...), its cost the
    median of its ``repeats`` against the median of the alone steps beside them: timed one size after
    the other, three steps each, the same step of the quick CNN on the 2-core VM read k=2 at 0.82x,
    0.93x and 1.33x of a run alone in three searches, and a bundle that did not pay was chosen (it
    trained at 1.7x the time); in turns, 1.03-1.14x in four readings. Stops at the first size that
    costs more per run than the one before (larger ones only cost more).
    """
    dev = torch.device(device)
    alone = training_step(spec, info, 1, dev)
    alone()  # warm-up: allocator, oneDNN primitives, CUDA kernels
    alone_times: list[float] = []
    costs: list[FusionCost] = []
    for k in sorted(set(ks) - {1}):
        bundle = training_step(spec, info, k, dev)
        bundle()
        beside, times = [], []
        for _ in range(repeats):
            beside.append(_seconds(alone, dev))
            times.append(_seconds(bundle, dev))
        alone_times += beside
        costs.append(FusionCost(k, _median(times) / k / _median(beside)))  # per run, against alone: a ratio
        if costs[-1].seconds_per_run > (costs[-2].seconds_per_run if len(costs) > 1 else 1.0):
            break
    if not alone_times:
        alone_times = [_seconds(alone, dev) for _ in range(repeats)]
    seconds = _median(alone_times)
    return [FusionCost(1, seconds), *(FusionCost(c.k, c.seconds_per_run * seconds) for c in costs)]


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]
