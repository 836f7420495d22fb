"""How much GPU memory one run of a spec needs: one training step with each of its attacks, one scoring batch.

What ``--gpus-per-trial auto`` sizes a trial's share of a GPU from (:mod:`tuner.cluster.packing`).
Random inputs of the dataset's shape stand in for data, so no dataset has to be on the GPU node.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainables.attacks import cross_entropy, input_gradient
from trainables.data.info import DatasetInfo
from trainables.evaluation import SuiteConfig
from trainables.models import build_model
from trainables.train.compute import resolve_compute
from trainables.train.config import RunSpec
from trainables.train.loop import _LossForward
from trainables.train.losses import needs_clean

__all__ = ["Footprint", "measure_footprint"]


@dataclass(frozen=True)
class Footprint:
    """Bytes on one GPU: the allocator's peak, what the process holds beside it, and the card's total."""

    peak_bytes: int  # torch's caching allocator at its highest (reserved, not only allocated)
    overhead_bytes: int  # the CUDA context and libraries: held by every process that uses the GPU
    total_bytes: int  # the card's memory
    device_name: str = ""

    @property
    def per_process_bytes(self) -> int:
        """What one more trial on the card costs."""
        return self.peak_bytes + self.overhead_bytes


def _training_step(spec: RunSpec, info: DatasetInfo, device: torch.device) -> None:
    """One step per attack of the mix (the costliest decides the peak), as the training loop runs it."""
    compute = resolve_compute(spec.train.precision, spec.train.memory_format, device)
    model = compute.layout(build_model(spec.model, info).to(device)).train()
    cfg = spec.train
    step = _LossForward(model, cfg, with_kl=cfg.kl_weight > 0)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=cfg.momentum)
    x = torch.rand(cfg.batch_size, info.channels, info.size, info.size, device=device)  # (B, C, H, W)
    y = torch.randint(0, info.classes, (cfg.batch_size,), device=device)  # (B,)
    for attack in cfg.mix.bound(spec.train_threat):
        with compute.autocast_context(device):
            x_train = attack.perturb(model, x, y) if attack is not None else x
            ce, _, kl = step(x_train, y, x if needs_clean(cfg) else None)  # the loop's forward, clean term too
        opt.zero_grad(set_to_none=True)
        (ce + cfg.kl_weight * kl / 1e4).backward()  # the KL's scale (1 / N_train) does not change the memory
        opt.step()


def _scoring_batch(spec: RunSpec, info: DatasetInfo, suite: SuiteConfig, device: torch.device) -> None:
    """One input gradient at the suite's batch size, what each scoring step holds (EOT draws run one by one)."""
    compute = resolve_compute(spec.train.precision, spec.train.memory_format, device)
    model = compute.layout(build_model(spec.model, info).to(device)).eval()
    x = torch.rand(suite.batch_size, info.channels, info.size, info.size, device=device)
    y = torch.randint(0, info.classes, (suite.batch_size,), device=device)
    input_gradient(model, x, y, cross_entropy, eot_samples=1)


def measure_footprint(specs: list[RunSpec], info: DatasetInfo, suites: list[SuiteConfig],
                      device: torch.device | str = "cuda") -> Footprint:
    """The largest footprint of ``specs``' training steps and of scoring with ``suites``, on a CUDA ``device``."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ValueError(f"measuring GPU memory needs a CUDA device, got {device}")
    if device.index is None:  # torch's memory queries and set_device want an index ('cuda' alone: ValueError)
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    for spec in specs:
        _training_step(spec, info, device)
        for suite in suites:
            _scoring_batch(spec, info, suite, device)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_reserved(device)
    free, total = torch.cuda.mem_get_info(device)
    # what the process holds that the allocator does not count (context, cuBLAS/cuDNN workspaces);
    # other processes on the card count here too, which only makes the estimate safer
    overhead = max(0, total - free - torch.cuda.memory_reserved(device))
    return Footprint(peak_bytes=peak, overhead_bytes=overhead, total_bytes=total,
                     device_name=torch.cuda.get_device_name(device))
