"""Training configuration: optimiser, schedule, attack mix and the run that ties them together."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from trainables.attacks.suite import SuiteConfig
from trainables.data.config import DataConfig
from trainables.models.config import ModelConfig

__all__ = ["MIX_ATTACKS", "AttackMix", "RunSpec", "TrainConfig"]

MIX_ATTACKS = ("none", "gaussian", "fgsm", "pgd", "cw")


@dataclass(frozen=True)
class AttackMix:
    """Relative weights of the attack drawn for each training batch.

    The default is the seed's: a uniform draw from 0..7 where 0-3 are gaussian, fgsm, pgd, cw
    and 4-7 mean no attack. Pure PGD training (Madry et al.) is ``AttackMix(none=0, gaussian=0,
    fgsm=0, pgd=1, cw=0)``.
    """

    none: float = 4.0
    gaussian: float = 1.0
    fgsm: float = 1.0
    pgd: float = 1.0
    cw: float = 1.0

    def __post_init__(self) -> None:
        weights = self.weights()
        if any(w < 0 or not math.isfinite(w) for w in weights):
            raise ValueError(f"attack mix weights must be finite and >= 0, got {self}")
        if sum(weights) <= 0:
            raise ValueError(f"attack mix needs a positive weight, got {self}")

    def weights(self) -> tuple[float, ...]:
        """Weights in the order of ``MIX_ATTACKS``."""
        return tuple(float(getattr(self, name)) for name in MIX_ATTACKS)

    @classmethod
    def parse(cls, text: str) -> AttackMix:
        """Parse ``"pgd:1,none:1"``; attacks not named get weight 0."""
        weights = dict.fromkeys(MIX_ATTACKS, 0.0)
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition(":")
            if name not in weights:
                raise ValueError(f"unknown attack {name!r} in mix {text!r}; choose from {', '.join(MIX_ATTACKS)}")
            try:
                weights[name] = float(value) if value else 1.0
            except ValueError:
                raise ValueError(f"bad weight {value!r} for {name!r} in mix {text!r}") from None
        return cls(**weights)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule, loss and per-batch attack settings of one training run."""

    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | step | constant
    kl_weight: float = 1.0  # ELBO: CE + kl_weight * KL / N_train
    clean_weight: float = 0.0  # loss = clean_weight * CE(x) + (1 - clean_weight) * CE(x_train)
    mix: AttackMix = field(default_factory=AttackMix)
    eps: float = 0.1  # training epsilon (L-inf, pixel units)
    step_size: float | None = None  # PGD step; None: 2.5 * eps / steps
    steps: int = 7  # PGD steps while training
    cw_c: float = 1.0
    cw_steps: int = 10
    cw_lr: float = 0.01
    eval_limit: int | None = 1000  # validation examples scored each epoch (None: all)
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "momentum": 0 <= self.momentum < 1, "weight_decay": self.weight_decay >= 0,
            "kl_weight": self.kl_weight >= 0, "clean_weight": 0 <= self.clean_weight <= 1,
            "eps": self.eps >= 0, "steps": self.steps >= 1, "cw_c": self.cw_c > 0,
            "cw_steps": self.cw_steps >= 1, "cw_lr": self.cw_lr > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid training setting {name}={getattr(self, name)!r}")
        if self.step_size is not None and self.step_size <= 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size=}")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ValueError(f"schedule must be cosine, step or constant, got {self.schedule=}")


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run: data, model, training and evaluation suite."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    suite: SuiteConfig = field(default_factory=SuiteConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-safe) of every setting."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunSpec:
        """Inverse of ``to_dict``; unknown keys raise ValueError."""
        train = dict(raw.get("train", {}))
        if isinstance(train.get("mix"), dict):
            train["mix"] = AttackMix(**train["mix"])
        suite = dict(raw.get("suite", {}))
        if isinstance(suite.get("attacks"), list):
            suite["attacks"] = tuple(suite["attacks"])
        parts = {"data": (DataConfig, raw.get("data", {})), "model": (ModelConfig, raw.get("model", {})),
                 "train": (TrainConfig, train), "suite": (SuiteConfig, suite)}
        built = {}
        for name, (kind, values) in parts.items():
            known = {f.name for f in fields(kind)}
            extra = set(values) - known
            if extra:
                raise ValueError(f"unknown {name} settings: {', '.join(sorted(extra))}")
            built[name] = kind(**values)
        return cls(**built)
