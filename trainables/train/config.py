"""Training configuration: optimiser, schedule, attack mix, and the run that ties data, model and suite together."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from trainables.attacks import ThreatModel
from trainables.data.config import DataConfig
from trainables.evaluation import SuiteConfig
from trainables.models.config import ModelConfig
from trainables.registry import check_choice
from trainables.train.compute import MEMORY_FORMATS, PRECISIONS, MemoryFormat, Precision
from trainables.train.mix import AttackMix

__all__ = ["SCHEDULES", "RunSpec", "TrainConfig"]

Schedule = Literal["cosine", "onecycle", "step", "constant"]
SCHEDULES: tuple[Schedule, ...] = get_args(Schedule)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule, loss and per-batch attack settings of one training run.

    The mix's attacks train at ``eps_scale`` times the run's threat model (``RunSpec.threat``), so
    the run's epsilon is set in one place.
    """

    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: Schedule = "cosine"  # onecycle: per batch, warm-up then linear decay; the others per epoch
    label_smoothing: float = 0.0  # cross-entropy label smoothing of the training loss
    kl_weight: float = 1.0  # ELBO: CE + kl_weight * KL / N_train
    clean_weight: float = 0.0  # loss = clean_weight * CE(x) + (1 - clean_weight) * CE(x_train)
    trades_beta: float = 0.0  # > 0: the TRADES loss CE(x) + beta * KL(x, x_train), its PGD on the KL (losses.py)
    mart_beta: float = 0.0  # > 0: the MART loss, boosted CE(x_train) + beta * (1 - p_y(x)) KL(x, x_train) (losses.py)
    ema_decay: float = 0.0  # > 0: epochs are scored, kept and exported on an EMA of the weights (averaging.py)
    mix: AttackMix = field(default_factory=AttackMix)
    eps_scale: float = 1.0  # training radii = eps_scale x the run's threat model
    eps_warmup: float = 0.0  # the training radii grow linearly from 0 over this share of the run's steps
    eval_limit: int | None = 1000  # validation examples scored each epoch (None: all)
    keep_best: bool = True  # the run ends with its best epoch's weights (by validation robust accuracy)
    patience: int | None = None  # stop after this many epochs without a better validation robust accuracy
    seed: int = 0
    precision: Precision = "auto"  # training's autocast (see trainables.train.compute)
    memory_format: MemoryFormat = "auto"  # the model's layout while it trains and is scored

    def __post_init__(self) -> None:
        finite = {name: math.isfinite(getattr(self, name)) for name in ("lr", "weight_decay", "kl_weight", "eps_scale",
                                                                         "trades_beta", "mart_beta")}
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1, "lr": finite["lr"] and self.lr > 0,
            "momentum": 0 <= self.momentum < 1, "weight_decay": finite["weight_decay"] and self.weight_decay >= 0,
            "kl_weight": finite["kl_weight"] and self.kl_weight >= 0, "clean_weight": 0 <= self.clean_weight <= 1,
            "eps_scale": finite["eps_scale"] and self.eps_scale >= 0, "ema_decay": 0 <= self.ema_decay < 1,
            "trades_beta": finite["trades_beta"] and self.trades_beta >= 0,
            "mart_beta": finite["mart_beta"] and self.mart_beta >= 0,
            "eps_warmup": 0 <= self.eps_warmup < 1,
            "eval_limit": self.eval_limit is None or self.eval_limit >= 1,
            "label_smoothing": 0 <= self.label_smoothing < 1,
            "patience": self.patience is None or self.patience >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid training setting {name}={getattr(self, name)!r}")
        if self.trades_beta > 0 and self.clean_weight > 0:
            raise ValueError(f"invalid training setting clean_weight={self.clean_weight!r} with trades_beta="
                             f"{self.trades_beta!r}: the TRADES loss holds its own clean term")
        if self.mart_beta > 0 and (self.clean_weight > 0 or self.trades_beta > 0):
            raise ValueError(f"invalid training setting mart_beta={self.mart_beta!r} with clean_weight="
                             f"{self.clean_weight!r} and trades_beta={self.trades_beta!r}: the MART loss holds its "
                             "own clean term")
        for setting, choices in (("schedule", SCHEDULES), ("precision", PRECISIONS), ("memory_format", MEMORY_FORMATS)):
            check_choice(setting, getattr(self, setting), choices)
        if not isinstance(self.mix, AttackMix):
            raise ValueError(f"mix must be an AttackMix, got {self.mix!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the mix as a list of weighted attack specs)."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"mix": self.mix.to_dict()}


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run: data, model, training, its threat model and the per-epoch suite.

    ``threat`` is the run's one threat model: the per-epoch suite scores under it and the training
    mix attacks at ``train.eps_scale`` times it.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    suite: SuiteConfig = field(default_factory=SuiteConfig)
    threat: ThreatModel = field(default_factory=ThreatModel)

    def __post_init__(self) -> None:
        if not isinstance(self.threat, ThreatModel):
            raise ValueError(f"threat must be a ThreatModel, got {self.threat!r}")
        self.suite.check(self.threat)

    @property
    def train_threat(self) -> ThreatModel:
        """The radii the training attacks use."""
        return self.threat.scaled(self.train.eps_scale)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-safe) of every setting."""
        return {"data": asdict(self.data), "model": asdict(self.model), "train": self.train.to_dict(),
                "suite": self.suite.to_dict(), "threat": asdict(self.threat)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunSpec:
        """Inverse of ``to_dict``; unknown keys raise ValueError."""
        extra_parts = set(raw) - {"data", "model", "train", "suite", "threat"}
        if extra_parts:
            raise ValueError(f"unknown run settings: {', '.join(sorted(extra_parts))}")
        train = dict(raw.get("train", {}))
        if "mix" in train:
            train["mix"] = AttackMix.from_dict(train["mix"])
        threat = raw.get("threat", {})
        if not isinstance(threat, dict):
            raise ValueError(f"bad threat model {threat!r}")
        built: dict[str, Any] = {"suite": SuiteConfig.from_dict(raw.get("suite", {}))}
        parts = (("data", DataConfig, raw.get("data", {})), ("model", ModelConfig, raw.get("model", {})),
                 ("train", TrainConfig, train), ("threat", ThreatModel, threat))
        for name, kind, values in parts:
            extra = set(values) - {f.name for f in fields(kind)}
            if extra:
                raise ValueError(f"unknown {name} settings: {', '.join(sorted(extra))}")
            built[name] = kind(**values)
        return cls(**built)
