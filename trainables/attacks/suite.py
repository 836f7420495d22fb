"""Robust accuracy as a per-example worst case over a suite of attacks."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainables.models.base import is_stochastic, predict, surrogate_gradients

from .base import Attack
from .registry import ATTACKS, build_attack

__all__ = ["RobustResult", "SuiteConfig", "build_suite", "evaluate_robustness", "robust_accuracy"]


@dataclass(frozen=True)
class SuiteConfig:
    """Which attacks to run and their budgets; eps is L-inf (fgsm, pgd, gaussian), l2_eps L2 (pgd-l2, cw)."""

    attacks: tuple[str, ...] = ("fgsm", "pgd")
    eps: float = 0.1
    l2_eps: float = 1.5
    steps: int = 10
    restarts: int = 1
    eot_samples: int = 8  # gradient draws per step, used only for stochastic models
    predict_samples: int = 8  # draws averaged into a stochastic model's prediction
    adaptive: bool = True  # attack stochastic models through their surrogate gradients
    cw_c: float = 1.0
    cw_kappa: float = 0.0
    cw_steps: int = 50
    cw_lr: float = 0.01
    batch_size: int = 256
    seed: int | None = 0  # seeds each attack's randomness separately; None uses the global RNG

    def __post_init__(self) -> None:
        if isinstance(self.attacks, str):
            raise ValueError(f"attacks must be a tuple of names, got the string {self.attacks=}")
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown:
            raise ValueError(f"unknown attack(s) {unknown}; choices: {', '.join(ATTACKS)}")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"attacks must not repeat, got {self.attacks=}")
        for name in ("eps", "l2_eps", "cw_c", "cw_kappa"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {name}={getattr(self, name)!r}")
        for name in ("steps", "restarts", "eot_samples", "predict_samples", "cw_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)!r}")
        if not self.cw_lr > 0:
            raise ValueError(f"cw_lr must be > 0, got {self.cw_lr=}")


def build_suite(cfg: SuiteConfig, stochastic: bool) -> dict[str, Attack]:
    """The configured attacks by name; EOT draws only when the model is ``stochastic``."""
    eot = cfg.eot_samples if stochastic else 1
    params = {
        "fgsm": dict(eps=cfg.eps, eot_samples=eot),
        "pgd": dict(eps=cfg.eps, steps=cfg.steps, restarts=cfg.restarts, eot_samples=eot),
        "pgd-l2": dict(eps=cfg.l2_eps, steps=cfg.steps, restarts=cfg.restarts, eot_samples=eot),
        "cw": dict(c=cfg.cw_c, kappa=cfg.cw_kappa, steps=cfg.cw_steps, lr=cfg.cw_lr, eps=cfg.l2_eps,
                   eot_samples=eot),
        "gaussian": dict(eps=cfg.eps),
    }
    return {name: build_attack(name, **params[name]) for name in cfg.attacks}


@dataclass(frozen=True)
class RobustResult:
    """Per-example correctness (bool, (N,)) on clean inputs, under each attack, and in the worst case."""

    n: int
    natural: Tensor  # (N,) bool
    per_attack: dict[str, Tensor]  # name -> (N,) bool
    worst: Tensor  # (N,) bool: natural AND every attack

    def __post_init__(self) -> None:
        assert self.worst.shape == self.natural.shape == (self.n,)

    @classmethod
    def from_outcomes(cls, natural: Tensor, per_attack: dict[str, Tensor]) -> RobustResult:
        """The result of per-example outcomes; worst = natural AND every attack."""
        worst = natural.clone()
        for robust in per_attack.values():
            worst &= robust
        return cls(n=natural.shape[0], natural=natural, per_attack=per_attack, worst=worst)

    @property
    def natural_acc(self) -> float:
        """Fraction of examples classified correctly without attack."""
        return self.natural.float().mean().item()

    def attack_acc(self, name: str) -> float:
        """Fraction of examples still correct under the attack ``name``."""
        if name not in self.per_attack:
            raise ValueError(f"no attack {name!r} in this result; have {list(self.per_attack)}")
        return self.per_attack[name].float().mean().item()

    @property
    def worst_acc(self) -> float:
        """Fraction of examples correct on clean inputs and under every attack (robust accuracy)."""
        return self.worst.float().mean().item()

    def as_dict(self) -> dict[str, float]:
        """Flat metrics: natural_acc, robust_acc (worst case) and acc/<attack> per attack."""
        out = {"natural_acc": self.natural_acc, "robust_acc": self.worst_acc}
        out.update({f"acc/{name}": self.attack_acc(name) for name in self.per_attack})
        return out


@contextmanager
def _seeded(seed: int | None, key: str, device: torch.device) -> Iterator[None]:
    """Run the block on a private RNG stream derived from (seed, key); global RNG state is restored."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(zlib.crc32(f"{seed}/{key}".encode()))
        yield


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def evaluate_robustness(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    suite_cfg: SuiteConfig | None = None,
    device: torch.device | str | None = None,
) -> RobustResult:
    """Evaluate ``model`` on images (N, C, H, W) in [0, 1] (or uint8) under every attack of the suite.

    Each attack runs on the naturally correct examples; worst = natural AND every attack, per example.
    The model is evaluated in eval mode and its training flag restored afterwards.
    """
    cfg = SuiteConfig() if suite_cfg is None else suite_cfg
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"need a non-empty batch with one label per image, got "
                         f"{tuple(images.shape)=}, {tuple(labels.shape)=}")
    device = _model_device(model) if device is None else torch.device(device)
    x_all = images.float() / 255 if images.dtype == torch.uint8 else images.float()  # (N, C, H, W)
    y_all = labels.long()  # (N,)
    n, bs = x_all.shape[0], cfg.batch_size
    stochastic = is_stochastic(model)
    attacks = build_suite(cfg, stochastic)
    was_training = model.training
    model.eval()
    try:
        natural = torch.zeros(n, dtype=torch.bool)
        with _seeded(cfg.seed, "natural", device):
            for i in range(0, n, bs):
                xb, yb = x_all[i:i + bs].to(device), y_all[i:i + bs].to(device)
                natural[i:i + bs] = (predict(model, xb, cfg.predict_samples) == yb).cpu()
        correct = natural.nonzero().squeeze(1)  # (n_correct,)
        per_attack: dict[str, Tensor] = {}
        for name, attack in attacks.items():
            robust = torch.zeros(n, dtype=torch.bool)
            with _seeded(cfg.seed, name, device), surrogate_gradients(model, cfg.adaptive and stochastic):
                for i in range(0, correct.numel(), bs):
                    idx = correct[i:i + bs]
                    xb, yb = x_all[idx].to(device), y_all[idx].to(device)
                    x_adv = attack.perturb(model, xb, yb)
                    robust[idx] = (predict(model, x_adv, cfg.predict_samples) == yb).cpu()
            per_attack[name] = robust
    finally:
        model.train(was_training)
    return RobustResult.from_outcomes(natural, per_attack)


def robust_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    suite_cfg: SuiteConfig | None = None,
    device: torch.device | str | None = None,
) -> float:
    """Worst-case robust accuracy in [0, 1] of ``model`` under the suite."""
    return evaluate_robustness(model, images, labels, suite_cfg, device).worst_acc
