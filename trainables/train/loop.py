"""The one training loop every model family and recipe goes through.

Per batch it draws an attack from the configured mix (Madry-style PGD training is the mix
{pgd: 1}), trains on the perturbed batch with SGD, and adds the variational KL of stochastic
layers to the loss (the ELBO, CE + KL / N_train). After each epoch it scores natural and
worst-case robust accuracy on the validation split, writes an atomic checkpoint and hands the
metrics to a callback (the tuner wires it to ``ray.tune.report``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import FGSM, PGD, Attack, CarliniWagnerL2, GaussianNoise, evaluate_robustness
from trainables.data.images import ImageSet, Splits, batches
from trainables.models import RobustModel, StochasticModule, build_model
from trainables.train.checkpoint import CHECKPOINT_FILE, CheckpointError, TrainState, load_checkpoint, save_checkpoint
from trainables.train.config import MIX_ATTACKS, RunSpec, TrainConfig

__all__ = ["FitResult", "TrainingDiverged", "fit", "resolve_device", "training_attacks"]

EpochCallback = Callable[[dict[str, float], Path | None, RobustModel], None]  # (metrics, checkpoint dir, model)
BatchCallback = Callable[[int, int], None]  # (batch index, batches in the epoch)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    """The trained model and one metrics dict per epoch."""

    model: RobustModel
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        """Metrics of the last epoch."""
        return self.history[-1]


def resolve_device(name: str | None = None) -> torch.device:
    """``name``, else $ROBUSTUNE_DEVICE, else CUDA when present, else CPU."""
    name = name or os.environ.get("ROBUSTUNE_DEVICE") or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


def training_attacks(cfg: TrainConfig) -> dict[str, Attack | None]:
    """The attack behind each name of the mix, built once per run."""
    return {
        "none": None,
        "gaussian": GaussianNoise(eps=cfg.eps),
        "fgsm": FGSM(eps=cfg.eps),
        "pgd": PGD(eps=cfg.eps, steps=cfg.steps, step_size=cfg.step_size),
        "cw": CarliniWagnerL2(c=cfg.cw_c, steps=cfg.cw_steps, lr=cfg.cw_lr),
    }


def _no_decay(model: nn.Module) -> set[int]:
    """Ids of parameters kept out of weight decay: variational/noise ones, biases and norms."""
    ids = {id(p) for m in model.modules() if isinstance(m, StochasticModule) for p in m.parameters()}
    ids |= {id(p) for p in model.parameters() if p.dim() <= 1}
    return ids


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    skip = _no_decay(model)
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in skip], "weight_decay": cfg.weight_decay},
        {"params": [p for p in model.parameters() if id(p) in skip], "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    milestones = [cfg.epochs // 2, (3 * cfg.epochs) // 4] if cfg.schedule == "step" else []
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[m for m in milestones if m > 0], gamma=0.1)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _train_epoch(
    model: RobustModel, opt: torch.optim.Optimizer, train: ImageSet, cfg: TrainConfig, epoch: int,
    attacks: dict[str, Attack | None], device: torch.device, on_batch: BatchCallback | None,
) -> dict[str, float]:
    gen = _epoch_generator(cfg.seed, epoch)
    n_batches = math.ceil(len(train) / cfg.batch_size)
    draws = torch.multinomial(torch.tensor(cfg.mix.weights()), n_batches, replacement=True, generator=gen)
    model.train()
    loss_sum = kl_sum = correct = seen = 0.0
    for i, (x, y) in enumerate(batches(train, cfg.batch_size, generator=gen, device=device)):
        attack = attacks[MIX_ATTACKS[int(draws[i])]]
        x_train = attack.perturb(model, x, y) if attack is not None else x
        logits = model(x_train)
        ce = F.cross_entropy(logits, y)
        if cfg.clean_weight > 0:
            ce = cfg.clean_weight * F.cross_entropy(model(x), y) + (1 - cfg.clean_weight) * ce
        kl = model.kl() if cfg.kl_weight > 0 else torch.zeros((), device=device)
        loss = ce + cfg.kl_weight * kl / len(train)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(ce.detach()) * len(y)
        kl_sum += float(kl.detach())
        correct += float((logits.argmax(1) == y).sum())
        seen += len(y)
        if on_batch is not None:
            on_batch(i + 1, n_batches)
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "kl": kl_sum / n_batches}


def _evaluate(model: RobustModel, val: ImageSet, spec: RunSpec, device: torch.device) -> dict[str, float]:
    subset = val.head(spec.train.eval_limit)
    result = evaluate_robustness(model, subset.floats(), subset.labels, spec.suite, device=device)
    return result.as_dict()


def _resume(
    checkpoint_dir: Path | None, spec: RunSpec, model: nn.Module, opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[dict[str, float]]]:
    if checkpoint_dir is None or not (checkpoint_dir / CHECKPOINT_FILE).exists():
        return 0, []
    state = load_checkpoint(checkpoint_dir)
    mine, theirs = spec.to_dict(), dict(state.spec)
    for part in (mine, theirs):  # the number of epochs may grow between runs
        part["train"] = {k: v for k, v in part["train"].items() if k != "epochs"}
    if mine != theirs:
        raise CheckpointError(f"checkpoint in {checkpoint_dir} was written by a different run configuration")
    model.load_state_dict(state.model)
    opt.load_state_dict(state.optimizer)
    sched.load_state_dict(state.scheduler)
    torch.set_rng_state(state.rng)
    if state.cuda_rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state.cuda_rng)
    return state.epoch, list(state.history)


def fit(
    spec: RunSpec,
    splits: Splits,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
    on_batch: BatchCallback | None = None,
    device: torch.device | str | None = None,
) -> FitResult:
    """Train ``spec`` on ``splits``; resumes from ``checkpoint_dir`` when a checkpoint is there."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    cfg = spec.train
    torch.manual_seed(cfg.seed)
    model = build_model(spec.model, splits.info).to(dev)
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg)
    start, history = _resume(checkpoint_dir, spec, model, opt, sched)
    attacks = training_attacks(cfg)
    for epoch in range(start, cfg.epochs):
        began = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        metrics: dict[str, float] = {"epoch": float(epoch + 1), "lr": lr}
        metrics |= _train_epoch(model, opt, splits.train, cfg, epoch, attacks, dev, on_batch)
        sched.step()
        metrics |= _evaluate(model, splits.val, spec, dev)
        metrics["epoch_seconds"] = time.perf_counter() - began
        history.append(metrics)
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir, TrainState(
                epoch=epoch + 1, spec=spec.to_dict(), model=model.state_dict(), optimizer=opt.state_dict(),
                scheduler=sched.state_dict(), rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state_all() if dev.type == "cuda" else [], history=history,
            ))
        if on_epoch is not None:
            on_epoch(metrics, checkpoint_dir, model)
    return FitResult(model.eval(), history)


