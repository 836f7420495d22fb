"""Robust evaluation on a CPU split across worker processes of one thread each.

Why processes and not threads: the small models this project scores on a CPU leave a second torch
thread little to do, while two processes of one thread each run apart (bench_scoring: the export
suite in 0.86x the time of one process of two threads on the 2-core machine).
Shard s of W scores the contiguous examples [s*N/W, (s+1)*N/W) with :func:`evaluate_robustness`;
outcomes are per example, so the worst case stays a per-example AND over the attacks, exactly as in
one process. Each shard draws from the same seeded streams as a whole run would, so the figures
depend on W (the random starts and samples an example meets), never on the machine's load.
"""

from __future__ import annotations

import os
import queue
from multiprocessing import get_context
from multiprocessing.queues import Queue

import numpy as np
import torch
from torch import Tensor, nn

from trainables.attacks import ThreatModel
from trainables.models.base import model_device

from .result import RobustResult
from .robustness import ProgressFn, evaluate_robustness
from .suite import SuiteConfig

__all__ = ["ShardFailed", "evaluate_in_processes", "scoring_workers", "usable_cpus"]

_POLL_S = 2.0  # how often the parent looks for a worker that died without a word


class ShardFailed(RuntimeError):
    """A worker process failed or died while scoring its shard (the message says which and why, in one line)."""


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it, else the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _score_shard(model: nn.Module, images: Tensor, labels: Tensor, suite: SuiteConfig, threat: ThreatModel,
                 shard: int, out: Queue) -> None:
    """A worker process of one thread: shard ``shard``'s outcomes on ``out`` (shard 0 its progress too)."""
    torch.set_num_threads(1)
    try:
        heard = (lambda label, done, total: out.put(("progress", shard, (label, done, total)))) if shard == 0 \
            else None
        result = evaluate_robustness(model, images, labels, suite, threat, device="cpu", progress=heard)
        # as numpy arrays: a torch tensor would travel as a shared-memory handle that dies with this process
        out.put(("done", shard, (result.natural.numpy(), {k: v.numpy() for k, v in result.per_attack.items()})))
    except BaseException as exc:  # noqa: BLE001 - told to the parent in one line, which raises it there
        # bad input reaches the parent as its kind, so a CLI says it in one line; as the base class, which
        # one message builds (a subclass such as UnicodeDecodeError takes other arguments)
        kind = next((base for base in (OSError, ValueError) if isinstance(exc, base)), ShardFailed)
        out.put(("failed", shard, (kind, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")))


def scoring_workers(workers: int, device: torch.device, n: int) -> int:
    """The shards :func:`evaluate_in_processes` scores ``n`` examples in on ``device``: 1 off the CPU."""
    return max(1, min(workers, n)) if device.type == "cpu" else 1


def evaluate_in_processes(model: nn.Module, images: Tensor, labels: Tensor, suite: SuiteConfig,
                          threat: ThreatModel, *, workers: int, device: torch.device | str | None = None,
                          progress: ProgressFn | None = None) -> RobustResult:
    """:func:`evaluate_robustness` on a CPU with the examples in ``workers`` contiguous shards, one process each.

    One worker (or one example), or a ``device`` that is no CPU (None: the model's), scores in this
    process. ``progress`` hears the first shard's batches (the shards are of one size, so its share
    done is the whole run's). A worker that fails or dies stops the others and raises :class:`ShardFailed`
    (a worker's ValueError or OSError, bad input, as the same kind).
    """
    device = model_device(model) if device is None else torch.device(device)
    n = images.shape[0]
    workers = scoring_workers(workers, device, n)
    if workers == 1:
        return evaluate_robustness(model, images, labels, suite, threat, device=device, progress=progress)
    bounds = [n * s // workers for s in range(workers + 1)]
    context = get_context("spawn")
    out: Queue = context.Queue()
    processes = [context.Process(target=_score_shard, daemon=True,
                                 args=(model, images[lo:hi], labels[lo:hi], suite, threat, s, out))
                 for s, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False))]
    for process in processes:
        process.start()
    shards: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    try:
        while len(shards) < workers:
            try:
                kind, shard, body = out.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [s for s, p in enumerate(processes) if s not in shards and p.exitcode not in (None, 0)]
                if dead:
                    raise ShardFailed(f"scoring worker {dead[0]} of {workers} died (exit code "
                                      f"{processes[dead[0]].exitcode}) before it reported") from None
                continue  # (a worker that exits 0 has put its outcome or its failure first)
            if kind == "failed":
                error, reason = body
                raise error(f"scoring worker {shard} of {workers} failed: {reason}")
            if kind == "progress" and progress is not None:
                progress(*body)
            elif kind == "done":
                shards[shard] = body
    finally:
        for process in processes:
            if process.is_alive() and len(shards) < workers:
                process.terminate()
            process.join()
        out.close()
    natural = torch.cat([torch.from_numpy(shards[s][0]) for s in range(workers)])
    per_attack = {key: torch.cat([torch.from_numpy(shards[s][1][key]) for s in range(workers)])
                  for key in shards[0][1]}
    return RobustResult.from_outcomes(natural, per_attack)
