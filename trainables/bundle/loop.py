"""The training loop of a bundle: k runs of one shape trained as one model, each member's run its own.

Per batch every member draws its own training attack from its own mix (at its own radius) and is
attacked on its own inputs (:mod:`.attack`); the bundle's loss is the sum of the members' losses
(cross-entropy with the member's label smoothing and clean weight, plus its KL), so each member's
gradients are its own, and :class:`~.optim.MemberSGD` steps each with its own optimiser settings
under the runs' shared schedule. After each epoch every member is scored as a single model with its
own per-epoch suite, exactly as :func:`trainables.train.fit` scores it, and keeps its best epoch.

Members leave the bundle: when ``on_epoch`` drops them (the search pruned them), when their patience
runs out, when their loss diverges. The bundle is then rebuilt from the members left, so a member
that left stops costing compute. Checkpoints hold every member as a single model (weights, momentum,
history, best epoch) and resume the bundle exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from trainables.data import Splits, batches
from trainables.models import RobustModel, build_model, is_stochastic
from trainables.sealed import SealError, load_format, save_sealed
from trainables.train import RunSpec
from trainables.train.averaging import WeightAverage
from trainables.train.compute import resolve_compute
from trainables.train.loop import (
    BestEpoch,
    epoch_score,
    evaluate_epoch,
    no_decay,
    resolve_device,
    schedule_factor,
    seeded_epoch,
    warm_start,
)
from trainables.train.losses import needs_clean, run_loss
from trainables.train.mix import radius_share, training_attacks, warmed_up

from .attack import attack_members
from .members import check_bundle
from .model import BundledModel, bundle_models
from .optim import MemberSGD

__all__ = ["BUNDLE_CHECKPOINT", "BundleCheckpointError", "MemberEnd", "MemberEpoch", "MemberOutcome", "fit_bundle",
           "load_member"]

BUNDLE_CHECKPOINT = "bundle.pt"
_FORMAT = "robustune-bundle/1"


MemberEnd = Literal["finished", "stopped", "dropped", "diverged"]  # all epochs, patience, on_epoch, a NaN loss


@dataclass
class MemberEpoch:
    """One member's epoch, as the bundle hands it to ``on_epoch``."""

    member: int  # the member's place in the runs given to fit_bundle
    metrics: dict[str, float]  # as fit's: training, the per-epoch suite, timings, last_epoch, best_epoch
    model: RobustModel | None  # the member as a single model: its kept weights after its last epoch (None: diverged)
    last: bool  # the member's last epoch (all its epochs, its patience ran out, or it diverged)
    diverged: str | None = None  # why its loss diverged, then its metrics are NaN


@dataclass
class MemberOutcome:
    """How a member's run ended: its history, best epoch, and why it left the bundle."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    ended: MemberEnd = "finished"
    error: str | None = None
    weights: dict[str, Tensor] | None = None  # its kept weights when it left: its best epoch's, else its last


EpochCallback = Callable[[list[MemberEpoch], Path | None], set[int]]  # -> the members to drop


@dataclass
class _Member:
    """A member's run while it trains: its spec, weights, momentum, history and best epoch."""

    index: int
    spec: RunSpec
    state: dict[str, Tensor]  # its single model's weights (CPU), as of the last time the bundle was built
    momentum: list[Tensor | None] = field(default_factory=list)
    averaged: dict[str, Tensor] | None = None  # the EMA of its weights (runs with ema_decay > 0), what is scored
    outcome: MemberOutcome = field(default_factory=MemberOutcome)
    best: BestEpoch = field(default_factory=BestEpoch)
    active: bool = True


def _single(spec: RunSpec, splits: Splits, state: dict[str, Tensor], device: torch.device) -> RobustModel:
    model = build_model(spec.model, splits.info)
    model.load_state_dict(state)
    return model.to(device)


@dataclass
class _Bundle:
    """The bundle while it trains: the fused model, its optimiser, its weights' average (when a member has one)."""

    model: BundledModel
    opt: MemberSGD
    average: WeightAverage | None

    @property
    def scored(self) -> BundledModel:
        """The weights each epoch scores: the average's when there is one (a member without EMA has its own there)."""
        return self.model if self.average is None else self.average.model  # type: ignore[return-value]


def _build(members: Sequence[_Member], splits: Splits, device: torch.device, step: int) -> _Bundle:
    """The bundle of ``members``, its optimiser and its weight average, from their single-model states.

    Building draws initial weights that the members' states then replace: it runs on a forked RNG,
    so that a bundle rebuilt (members left, or resumed from a checkpoint) trains on the stream it had.
    """
    compute = resolve_compute(members[0].spec.train.precision, members[0].spec.train.memory_format, device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        bundle = compute.layout(bundle_models([_single(m.spec, splits, m.state, device) for m in members]))
    skip = no_decay(bundle)
    trains = [m.spec.train for m in members]
    opt = MemberSGD([(p, id(p) not in skip) for p in bundle.parameters()], len(members),
                    lr=[t.lr for t in trains], momentum=[t.momentum for t in trains],
                    weight_decay=[t.weight_decay for t in trains], nesterov=[t.nesterov for t in trains])
    if any(m.momentum for m in members):
        opt.load_members([m.momentum if m.momentum else [None] * len(opt.params) for m in members])
    average = None
    if any(t.ema_decay > 0 for t in trains):
        average = WeightAverage(bundle, [t.ema_decay for t in trains], updates=step)
        average.model.load_members([m.averaged if m.averaged is not None else m.state for m in members])
    return _Bundle(bundle, opt, average)


def _save_members(active: Sequence[_Member], bundle: _Bundle) -> None:
    """Copy the bundle's weights, momentum and averages back into its members."""
    for position, member in enumerate(active):
        member.state = bundle.model.member_state_dict(position)
        member.momentum = bundle.opt.member_state(position)
        if bundle.average is not None and member.spec.train.ema_decay > 0:
            member.averaged = bundle.scored.member_state_dict(position)


def _losses(bundle: BundledModel, x_train: Tensor, x: Tensor, y: Tensor, members: Sequence[_Member],
            n_train: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per member: its loss as fit computes it (cross-entropy with its clean term, or TRADES), KL, total loss;
    and the logits (k, B, classes)."""
    logits = bundle(x_train)  # (k, B, classes)
    trains = [m.spec.train for m in members]
    clean_logits = bundle(x) if any(needs_clean(t) for t in trains) else None
    ce = torch.stack([run_loss(logits[i], clean_logits[i] if clean_logits is not None and needs_clean(t) else None,
                               y, t) for i, t in enumerate(trains)])
    with_kl = any(t.kl_weight > 0 for t in trains) and is_stochastic(bundle)
    kl = bundle.kl_members() if with_kl else ce.new_zeros(len(members))
    kl_weight = torch.tensor([t.kl_weight for t in trains], device=ce.device, dtype=ce.dtype)
    return ce, kl, ce + kl_weight * kl / n_train, logits


def _train_epoch(fused: _Bundle, active: list[_Member], splits: Splits, epoch: int,
                 step: int, device: torch.device) -> tuple[dict[int, dict[str, float]], int]:
    """One epoch of the bundle; per member its training metrics, and the schedule's step count after it.

    A member whose loss turns non-finite is taken out of the loss from that batch on and marked diverged.
    """
    cfg = active[0].spec.train  # the shared settings: batch size, epochs, schedule, precision
    bundle, opt = fused.model, fused.opt
    compute = resolve_compute(cfg.precision, cfg.memory_format, device)
    train = splits.train.to(device)
    n_batches = math.ceil(len(train) / cfg.batch_size)
    generators = [seeded_epoch(m.spec.train.seed, epoch) for m in active]
    draws = [m.spec.train.mix.draw(n_batches, g) for m, g in zip(active, generators, strict=True)]  # own draws
    attacks = [training_attacks(m.spec.train.mix, m.spec.train_threat, m.spec.train.trades_beta) for m in active]
    lrs = {m.index: m.spec.train.lr * schedule_factor(cfg, epoch, step, n_batches) for m in active}
    bundle.train()
    sums = torch.zeros(len(active), 4, dtype=torch.float64)  # per member: loss, kl, correct, seen
    diverged: dict[int, str] = {}
    for i, (x, y) in enumerate(batches(train, cfg.batch_size, generator=generators[0], device=device)):
        opt.set_factor(schedule_factor(cfg, epoch, step, n_batches))
        drawn = [None if j in diverged else warmed_up(attacks[j][int(draws[j][i])], radius_share(
            m.spec.train.eps_warmup, step, cfg.epochs * n_batches)) for j, m in enumerate(active)]
        with compute.autocast_context(device):  # the training attacks and forward; the optimiser stays float32
            x_train = attack_members(bundle, x, y, drawn)
            ce, kl, loss, logits = _losses(bundle, x_train, x, y, active, len(train))
        for j in (~torch.isfinite(loss.detach())).nonzero().flatten().tolist():
            diverged.setdefault(j, f"loss became {loss[j].item()} at epoch {epoch + 1}, batch {i + 1}")
        kept = torch.tensor([j not in diverged for j in range(len(active))], device=loss.device)
        opt.zero_grad()
        torch.where(kept, loss, torch.zeros_like(loss)).sum().backward()
        opt.step()
        if fused.average is not None:
            fused.average.update(bundle)
        step += 1
        correct = (logits.detach().argmax(dim=2) == y).sum(dim=1).double().cpu()  # (k,)
        sums += torch.stack([ce.detach().double().cpu() * len(y), kl.detach().double().cpu(), correct,
                             torch.full_like(correct, len(y))], dim=1)
    for j, message in diverged.items():
        active[j].outcome.ended, active[j].outcome.error = "diverged", message
    metrics = {m.index: {"lr": lrs[m.index], "train_loss": float(s[0] / s[3]), "train_acc": float(s[2] / s[3]),
                         "kl": float(s[1] / n_batches)} for m, s in zip(active, sums, strict=True)}
    return metrics, step


def _score(active: list[_Member], scored: BundledModel, splits: Splits, epoch: int, device: torch.device,
           train_metrics: dict[int, dict[str, float]], train_seconds: float) -> list[MemberEpoch]:
    """Every member scored as a single model, as fit scores it; its best epoch kept, its patience counted."""
    out = []
    for position, member in enumerate(active):
        if member.outcome.ended == "diverged":
            nan = math.nan
            out.append(MemberEpoch(member.index, {"epoch": float(epoch + 1), "natural_acc": nan, "robust_acc": nan},
                                   None, last=True, diverged=member.outcome.error))
            continue
        cfg = member.spec.train
        model = _single(member.spec, splits, scored.member_state_dict(position), device)
        began = time.perf_counter()
        metrics = {"epoch": float(epoch + 1)} | train_metrics[member.index]
        metrics |= evaluate_epoch(model, splits.val, member.spec, device)
        metrics["eval_seconds"] = time.perf_counter() - began
        metrics["epoch_seconds"] = train_seconds / len(active) + metrics["eval_seconds"]  # its share of the bundle
        member.outcome.history.append(metrics)
        member.best.offer(epoch + 1, metrics, model)
        stopped = cfg.patience is not None and member.best.stale(epoch + 1) >= cfg.patience and epoch + 1 < cfg.epochs
        last = stopped or epoch + 1 == cfg.epochs
        metrics["last_epoch"] = float(last)
        if cfg.keep_best:
            metrics["best_epoch"] = float(member.best.epoch)
        if last and cfg.keep_best and member.best.weights is not None:
            model.load_state_dict(member.best.weights)  # the objective and the export see the best epoch
        if stopped:
            member.outcome.ended = "stopped"
        out.append(MemberEpoch(member.index, metrics, model.eval(), last))
    return out


def _retire(members: Sequence[_Member], reports: Sequence[MemberEpoch], drop: set[int]) -> bool:
    """Take out of the bundle the members that ended, diverged or were dropped; whether any left."""
    last = {r.member for r in reports if r.last}
    left = False
    for member in members:
        if not member.active:
            continue
        if member.index in drop and member.index not in last and member.outcome.ended == "finished":
            member.outcome.ended = "dropped"
        if member.index in drop or member.index in last or member.outcome.ended != "finished":
            member.active, left = False, True
            member.outcome.weights = _kept(member)
    return left


def _kept(member: _Member) -> dict[str, Tensor]:
    """The weights a member's run stands for: its best epoch's when it keeps the best, else its last."""
    if member.spec.train.keep_best and member.best.weights is not None:
        return member.best.weights
    return member.averaged if member.averaged is not None else member.state


def fit_bundle(specs: Sequence[RunSpec], splits: Splits, *, checkpoint_dir: Path | None = None,
               on_epoch: EpochCallback | None = None, device: torch.device | str | None = None,
               ended: Collection[int] = (),
               initial: Sequence[Mapping[str, Tensor] | None] = ()) -> list[MemberOutcome]:
    """Train the runs of ``specs`` as one bundle; every member's outcome, in the order of ``specs``.

    ``on_epoch`` hears each epoch's members (and the folder of the checkpoint written for it) and
    returns the members to drop. Resumes from ``checkpoint_dir`` when a bundle checkpoint is there;
    ``ended``: members that ended elsewhere (a resumed search's study knows them) and train no more.
    ``initial``: per member, weights a new bundle starts it from instead of its seeded initialisation
    (None, or a list shorter than ``specs``: seeded), as :func:`~trainables.train.fit`'s; a resumed
    bundle keeps its checkpoint's.
    """
    check_bundle(specs)
    if len(initial) > len(specs):
        raise ValueError(f"{len(initial)} initial weights for a bundle of {len(specs)} runs")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    members, epoch, step = _resume(checkpoint_dir, specs, splits, initial)
    for member in members:
        if member.active and member.index in ended:
            member.active, member.outcome.ended = False, "dropped"
    bundle: _Bundle | None = None
    while epoch < specs[0].train.epochs and any(m.active for m in members):
        active = [m for m in members if m.active]
        if bundle is None:
            bundle = _build(active, splits, dev, step)
        began = time.perf_counter()
        train_metrics, step = _train_epoch(bundle, active, splits, epoch, step, dev)
        _save_members(active, bundle)
        reports = _score(active, bundle.scored, splits, epoch, dev, train_metrics, time.perf_counter() - began)
        epoch += 1
        _checkpoint(checkpoint_dir, members, epoch, step, dev)
        drop = on_epoch(reports, checkpoint_dir) if on_epoch is not None else set()
        if _retire(members, reports, drop):
            bundle = None  # rebuilt without the members that left: they stop costing compute
            _checkpoint(checkpoint_dir, members, epoch, step, dev)
    for member in members:
        member.outcome.best_epoch = member.best.epoch if member.spec.train.keep_best else 0
        member.outcome.weights = member.outcome.weights or _kept(member)
    return [m.outcome for m in members]


def _checkpoint(directory: Path | None, members: Sequence[_Member], epoch: int, step: int,
                device: torch.device) -> None:
    """Every member as a single model (weights, momentum, history, best epoch), atomically, with the RNG
    (the CUDA generators' too on a GPU, where stochastic layers draw from them)."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": _FORMAT, "epoch": epoch, "step": step, "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        "members": [{"spec": m.spec.to_dict(), "state": m.state, "momentum": m.momentum, "averaged": m.averaged,
                     "active": m.active,
                     "history": m.outcome.history, "ended": m.outcome.ended, "error": m.outcome.error,
                     "best_weights": m.best.weights, "best_epoch": m.best.epoch} for m in members],
    }
    save_sealed(directory / BUNDLE_CHECKPOINT, payload)


def _resume(directory: Path | None, specs: Sequence[RunSpec], splits: Splits,
            initial: Sequence[Mapping[str, Tensor] | None] = ()) -> tuple[list[_Member], int, int]:
    """The members from a bundle checkpoint in ``directory``, else built fresh (each from its own seed, or
    from its ``initial`` weights)."""
    path = None if directory is None else directory / BUNDLE_CHECKPOINT
    if path is None or not path.is_file():
        members = []
        for i, spec in enumerate(specs):
            torch.manual_seed(spec.train.seed)  # as fit builds it: the member's initial weights are its run's
            model = build_model(spec.model, splits.info)
            start = initial[i] if i < len(initial) else None
            if start is not None:  # a warm start: checked against the member's architecture, as fit checks it
                warm_start(model, start, spec)
            members.append(_Member(i, spec, model.state_dict()))
        return members, 0, 0
    payload = _load(path)
    if [RunSpec.from_dict(m["spec"]) for m in payload["members"]] != list(specs):
        raise BundleCheckpointError(f"bundle checkpoint {path} was written for other runs")
    members = []
    for i, (spec, raw) in enumerate(zip(specs, payload["members"], strict=True)):
        best = BestEpoch(raw["best_weights"], raw["best_epoch"],
                         epoch_score(raw["history"][raw["best_epoch"] - 1]) if raw["best_epoch"] else None)
        members.append(_Member(i, spec, raw["state"], raw["momentum"], raw.get("averaged"),
                               MemberOutcome(raw["history"], raw["best_epoch"], raw["ended"], raw["error"]), best,
                               raw["active"]))
    torch.set_rng_state(payload["rng"])
    cuda_rng = payload.get("cuda_rng") or []  # written on a GPU; a bundle resumed on a CPU has no use for it
    if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)
    return members, int(payload["epoch"]), int(payload["step"])


class BundleCheckpointError(ValueError):
    """A bundle checkpoint that cannot be read or belongs to other runs."""


def load_member(directory: Path, member: int) -> tuple[RunSpec, dict[str, Tensor]]:
    """A member of the bundle checkpointed in ``directory``: its run and the weights it stands for."""
    payload = _load(directory / BUNDLE_CHECKPOINT)
    members = payload["members"]
    if not 0 <= member < len(members):
        raise BundleCheckpointError(f"no member {member} in the bundle checkpoint in {directory}")
    raw = members[member]
    spec = RunSpec.from_dict(raw["spec"])
    if spec.train.keep_best and raw["best_weights"] is not None:
        return spec, raw["best_weights"]
    return spec, raw["state"] if raw.get("averaged") is None else raw["averaged"]


def _load(path: Path) -> dict[str, Any]:
    try:
        return load_format(path, _FORMAT, "robustune bundle checkpoint")
    except SealError as exc:
        raise BundleCheckpointError(f"bundle checkpoint {exc}") from None

