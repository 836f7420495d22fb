"""The one training loop every model family and recipe goes through.

Per batch it draws an attack from the configured mix (Madry-style PGD training is the mix
{pgd: 1}), trains on the perturbed batch with SGD, and adds the variational KL of stochastic
layers to the loss (the ELBO, CE + KL / N_train). After each epoch it scores natural and
worst-case robust accuracy on the validation split, writes an atomic checkpoint and hands the
metrics to a callback (the tuner wires it to ``ray.tune.report``).

Inside a torch.distributed process group (Ray Train workers) the same loop trains data-parallel:
each replica takes its shard of every global batch (``batch_size`` stays the global batch, so a
learning rate means the same on one device or eight), runs the attacks on its shard with the bare
model, and DistributedDataParallel averages the gradients. Validation is shared out across the
replicas too; rank 0 writes the checkpoints.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from trainables.attacks import Attack
from trainables.data.images import ImageSet, Splits, batches
from trainables.evaluation import evaluate_sharded
from trainables.models import RobustModel, StochasticModule, build_model
from trainables.train.averaging import WeightAverage
from trainables.train.checkpoint import CHECKPOINT_FILE, CheckpointError, TrainState, load_checkpoint, save_checkpoint
from trainables.train.compute import Compute, resolve_compute
from trainables.train.config import RunSpec, TrainConfig
from trainables.train.losses import needs_clean, run_loss
from trainables.train.mix import radius_share, training_attacks, warmed_up
from trainables.train.replicas import Replicas

__all__ = ["BestEpoch", "FitResult", "OneCycle", "TrainingDiverged", "epoch_score", "evaluate_epoch", "fit",
           "no_decay", "resolve_device", "schedule_factor", "seeded_epoch"]

EpochCallback = Callable[[dict[str, float], Path | None, RobustModel], None]  # (metrics, checkpoint dir, model)
BatchCallback = Callable[[int, int], None]  # (batch index, batches in the epoch)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    """The trained model and one metrics dict per epoch."""

    model: RobustModel  # the best epoch's weights when the run keeps its best, else the last epoch's (EMA if any)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0 when the run keeps its last epoch

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
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: cpu, cuda or cuda:N (or auto)") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: robustune runs on cpu or cuda")
    return device


def no_decay(model: nn.Module) -> set[int]:
    """Ids of parameters kept out of weight decay: variational/noise ones, biases and norms."""
    ids = {id(p) for m in model.modules() if isinstance(m, StochasticModule) for p in m.parameters()}
    ids |= {id(p) for p in model.parameters() if p.dim() <= 1}
    return ids


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    skip = no_decay(model)
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in skip], "weight_decay": cfg.weight_decay},
        {"params": [p for p in model.parameters() if id(p) in skip], "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, batches_per_epoch: int
               ) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule; ``onecycle`` steps every batch, the others every epoch."""
    if cfg.schedule == "onecycle":  # Smith & Topin; the schedule of fast adversarial training (Wong et al. 2020)
        return torch.optim.lr_scheduler.LambdaLR(opt, OneCycle(cfg.epochs * batches_per_epoch))
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=_milestones(cfg), gamma=0.1)


def _milestones(cfg: TrainConfig) -> list[int]:
    """The epochs at which the ``step`` schedule divides the learning rate by 10 (none for the others)."""
    milestones = [cfg.epochs // 2, (3 * cfg.epochs) // 4] if cfg.schedule == "step" else []
    return [m for m in milestones if m > 0]


def schedule_factor(cfg: TrainConfig, epoch: int, step: int, batches_per_epoch: int) -> float:
    """The factor of ``cfg.lr`` the schedule gives batch ``step`` of the run (in ``epoch``), in closed form.

    What :func:`_scheduler`'s torch schedulers set, for loops that step their own optimiser (bundles).
    """
    if cfg.schedule == "onecycle":
        return OneCycle(cfg.epochs * batches_per_epoch)(step)
    if cfg.schedule == "cosine":
        return (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
    return 0.1 ** sum(epoch >= m for m in _milestones(cfg))


@dataclass(frozen=True)
class OneCycle:
    """One-cycle learning-rate factor per batch: linear warm-up from 4% over a quarter of the steps, linear decay to 0.

    A callable object rather than torch's OneCycleLR, which divides by zero on runs of four steps
    or fewer; its state is its two numbers, so a checkpoint holds it.
    """

    total: int  # batches in the whole run
    warmup_share: float = 0.25

    def __call__(self, step: int) -> float:
        warmup = max(1, round(self.warmup_share * self.total))
        if step < warmup:
            return 0.04 + 0.96 * step / warmup
        return max(0.0, (self.total - step) / max(1, self.total - warmup))


def seeded_epoch(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class _LossForward(nn.Module):
    """One training forward: the loss (cross-entropy with its optional clean term, or TRADES), logits and the KL.

    One module, so that DistributedDataParallel sees a single forward per step whose graph holds
    every parameter, the IBP sticks that only the KL uses included.
    """

    def __init__(self, model: RobustModel, cfg: TrainConfig, with_kl: bool) -> None:
        super().__init__()
        self.model, self.cfg, self.with_kl = model, cfg, with_kl

    def forward(self, x_train: Tensor, y: Tensor, x_clean: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        logits = self.model(x_train)  # (B, K)
        ce = run_loss(logits, None if x_clean is None else self.model(x_clean), y, self.cfg)
        kl = self.model.kl() if self.with_kl else logits.new_zeros(())
        return ce, logits, kl


def _loss_forward(model: RobustModel, cfg: TrainConfig, replicas: Replicas, device: torch.device) -> nn.Module:
    """The training forward, wrapped in DistributedDataParallel when there are several replicas."""
    step = _LossForward(model, cfg, with_kl=cfg.kl_weight > 0 or replicas.parallel)
    if not replicas.parallel:
        return step
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(step, device_ids=ids)


def _train_epoch(
    model: RobustModel, step: nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
    train: ImageSet, cfg: TrainConfig, epoch: int, attacks: tuple[Attack | None, ...], device: torch.device,
    on_batch: BatchCallback | None, replicas: Replicas, compute: Compute, average: WeightAverage | None = None,
) -> dict[str, float]:
    gen = seeded_epoch(cfg.seed, epoch)
    n_batches = math.ceil(len(train) / cfg.batch_size)
    draws = cfg.mix.draw(n_batches, gen)  # (n_batches,) index into the mix
    step.train()
    loss_sum = kl_sum = correct = seen = 0.0
    steps = 0
    shard = batches(train, cfg.batch_size, generator=gen, device=device, shard=replicas.shard)
    for i, (x, y) in enumerate(shard):
        attack = warmed_up(attacks[int(draws[i])], radius_share(cfg.eps_warmup, epoch * n_batches + i,
                                                                cfg.epochs * n_batches))
        # autocast per step, never around the optimiser: it caches the weights' casts until the region ends
        with compute.autocast_context(device):  # the training attack and forward; evaluation stays float32
            x_train = attack.perturb(model, x, y) if attack is not None else x  # the bare model: no DDP hooks
            ce, logits, kl = step(x_train, y, x if needs_clean(cfg) else None)
        loss = ce + cfg.kl_weight * kl / len(train)
        if not replicas.all_finite(loss.detach()):
            value = loss.item() if not torch.isfinite(loss) else "non-finite on another replica"
            raise TrainingDiverged(f"loss became {value} at epoch {epoch + 1}, batch {i + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if average is not None:
            average.update(model)
        if cfg.schedule == "onecycle":
            sched.step()
        loss_sum += float(ce.detach()) * len(y)
        kl_sum += float(kl.detach())
        correct += float((logits.argmax(1) == y).sum())
        seen += len(y)
        steps += 1
        if on_batch is not None:
            on_batch(i + 1, n_batches)
    loss_sum, kl_sum, correct, seen = replicas.sum([loss_sum, kl_sum, correct, seen], device)
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen,
            "kl": kl_sum / (steps * replicas.world_size)}


def evaluate_epoch(model: RobustModel, val: ImageSet, spec: RunSpec, device: torch.device) -> dict[str, float]:
    subset = val.head(spec.train.eval_limit)
    result = evaluate_sharded(model, subset.floats(), subset.labels, spec.suite, spec.threat, device=device)
    return result.as_dict()


def warm_start(model: nn.Module, initial: Mapping[str, Tensor], spec: RunSpec) -> None:
    """Load ``initial`` into ``model``; CheckpointError (one line) when they are another architecture's weights."""
    try:
        model.load_state_dict(dict(initial))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"the warm-start weights do not fit the {spec.model.name} model: {first}") from None


def _resume(
    checkpoint_dir: Path | None, spec: RunSpec, model: nn.Module, opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler, replicas: Replicas, average: WeightAverage | None,
) -> tuple[int, list[dict[str, float]], BestEpoch]:
    if checkpoint_dir is None or not (checkpoint_dir / CHECKPOINT_FILE).exists():
        return 0, [], BestEpoch()
    state = load_checkpoint(checkpoint_dir)
    try:
        theirs = RunSpec.from_dict(dict(state.spec)).to_dict()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint in {checkpoint_dir} holds an unreadable run configuration: {exc}") from None
    mine = spec.to_dict()
    for part in (mine, theirs):  # the number of epochs may grow between runs
        part["train"] = {k: v for k, v in part["train"].items() if k != "epochs"}
    if mine != theirs:
        raise CheckpointError(f"checkpoint in {checkpoint_dir} was written by a different run configuration")
    model.load_state_dict(state.model)
    if average is not None and state.averaged is not None:
        average.load_state_dict(state.averaged, state.averaged_updates)
    opt.load_state_dict(state.optimizer)
    sched.load_state_dict(state.scheduler)
    if replicas.rank == 0:
        torch.set_rng_state(state.rng)
    elif len(state.replica_rng) == replicas.world_size:
        torch.set_rng_state(state.replica_rng[replicas.rank])
    else:  # written by a run with another number of replicas: a fresh stream for this one
        replicas.seed(spec.train.seed + state.epoch)
    if state.cuda_rng and torch.cuda.is_available() and not replicas.parallel:
        torch.cuda.set_rng_state_all(state.cuda_rng)
    best = BestEpoch(state.best_model, state.best_epoch, epoch_score(state.history[state.best_epoch - 1])
                 if state.best_epoch else None)
    return (spec.train.epochs if state.stopped else state.epoch), list(state.history), best


def epoch_score(metrics: dict[str, float]) -> tuple[float, float]:
    """How epochs rank for ``keep_best`` and ``patience``: validation robust accuracy, then natural."""
    return metrics["robust_acc"], metrics["natural_acc"]


@dataclass
class BestEpoch:
    """The best epoch so far: its weights (CPU copies), 1-based number and score."""

    weights: dict[str, Tensor] | None = None
    epoch: int = 0
    score: tuple[float, float] | None = None


    def offer(self, epoch: int, metrics: dict[str, float], model: nn.Module) -> None:
        """Keep ``model``'s weights when ``epoch`` scores at least as well as the best so far (later wins ties)."""
        score = epoch_score(metrics)
        if self.score is None or score >= self.score:
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.epoch, self.score = epoch, score

    def stale(self, epoch: int) -> int:
        """Epochs run since the best one."""
        return epoch - self.epoch


def fit(
    spec: RunSpec,
    splits: Splits,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: EpochCallback | None = None,
    on_batch: BatchCallback | None = None,
    device: torch.device | str | None = None,
    initial: Mapping[str, Tensor] | None = None,
) -> FitResult:
    """Train ``spec`` on ``splits``; resumes from ``checkpoint_dir`` when a checkpoint is there.

    ``initial``: weights a new run starts from instead of its seeded initialisation (a promoted
    configuration's screen weights: a warm start); a resumed run ignores them for its checkpoint's.

    In a torch.distributed process group every rank calls ``fit`` with the same arguments; rank 0
    writes the checkpoints and is the only one whose ``on_epoch`` gets the checkpoint folder.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    replicas = Replicas.current()
    cfg = spec.train
    torch.manual_seed(cfg.seed)
    compute = resolve_compute(cfg.precision, cfg.memory_format, dev)
    model = compute.layout(build_model(spec.model, splits.info).to(dev))
    if initial is not None and not (checkpoint_dir is not None and (checkpoint_dir / CHECKPOINT_FILE).exists()):
        warm_start(model, initial, spec)
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg, math.ceil(len(splits.train) / cfg.batch_size))
    replicas.seed(cfg.seed)
    average = WeightAverage(model, [cfg.ema_decay]) if cfg.ema_decay > 0 else None
    scored = model if average is None else average.model  # what each epoch is scored, kept and handed on as
    start, history, best = _resume(checkpoint_dir, spec, model, opt, sched, replicas, average)
    step = _loss_forward(model, cfg, replicas, dev)
    attacks = training_attacks(cfg.mix, spec.train_threat, cfg.trades_beta)
    writes = checkpoint_dir if replicas.rank == 0 else None
    train = splits.train.to(dev)  # resident on the device: batches are gathered there, no copy per step
    for epoch in range(start, cfg.epochs):
        began = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        metrics: dict[str, float] = {"epoch": float(epoch + 1), "lr": lr}
        metrics |= _train_epoch(model, step, opt, sched, train, cfg, epoch, attacks, dev, on_batch, replicas, compute,
                                average)
        if cfg.schedule != "onecycle":
            sched.step()
        replicas.broadcast_buffers(model, dev)
        if average is not None:  # each replica averaged its own BatchNorm statistics
            replicas.broadcast_buffers(average.model, dev)
        scoring = time.perf_counter()
        metrics |= evaluate_epoch(scored, splits.val, spec, dev)
        metrics["eval_seconds"] = time.perf_counter() - scoring
        metrics["epoch_seconds"] = time.perf_counter() - began  # training and the per-epoch scoring
        history.append(metrics)
        best.offer(epoch + 1, metrics, scored)
        stopped = cfg.patience is not None and best.stale(epoch + 1) >= cfg.patience and epoch + 1 < cfg.epochs
        last = stopped or epoch + 1 == cfg.epochs
        metrics["last_epoch"] = float(last)
        if cfg.keep_best:
            metrics["best_epoch"] = float(best.epoch)
        rng = replicas.gather_rng_states()  # a collective: every replica takes part
        if writes is not None:
            save_checkpoint(writes, TrainState(
                epoch=epoch + 1, spec=spec.to_dict(), model=model.state_dict(), optimizer=opt.state_dict(),
                scheduler=sched.state_dict(), rng=rng[0],
                cuda_rng=torch.cuda.get_rng_state_all() if dev.type == "cuda" else [], history=history,
                replica_rng=rng if replicas.parallel else [],
                best_model=best.weights if cfg.keep_best else None, best_epoch=best.epoch if cfg.keep_best else 0,
                stopped=stopped, averaged=None if average is None else average.state_dict(),
                averaged_updates=0 if average is None else average.updates,
            ))
        if last and cfg.keep_best and best.weights is not None:
            scored.load_state_dict(best.weights)  # the objective and the export see the best epoch
        if on_epoch is not None:
            on_epoch(metrics, writes, scored)
        if stopped:
            break
    else:
        if start >= cfg.epochs and cfg.keep_best and best.weights is not None:  # resumed a finished run
            scored.load_state_dict(best.weights)
    scored = scored.to(memory_format=torch.contiguous_format)  # hand back the layout every caller expects
    return FitResult(scored.eval(), history, best.epoch if cfg.keep_best else 0)
