"""The two presets every space starts from: ``quick`` (2-core laptop, minutes) and ``paper``."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainables.attacks import SuiteConfig
from trainables.data import DataConfig
from trainables.train import AttackMix, TrainConfig

__all__ = ["PRESETS", "Preset"]


@dataclass(frozen=True)
class Preset:
    """Fixed data, training length, per-epoch suite and the objective's stronger final suite."""

    name: str
    dataset: str
    data: DataConfig
    train: TrainConfig
    epoch_suite: SuiteConfig  # cheap: scored every epoch, drives early stopping
    objective_suite: SuiteConfig  # the objective: scored once, after the last epoch
    export_suite: SuiteConfig  # the exported model's test-split evaluation
    export_val_limit: int | None = 200  # validation examples re-scored with the export suite (None: all)
    cnn: bool = True  # small CNN (quick) or WideResNet (paper)
    cnn_width: int = 16  # small CNN channels (the seed's 32 x 5x5 costs ~4x more per step on CPU)
    cnn_kernel: int = 3
    depth: int = 16
    widen: int = 1
    num_samples: int = 8
    gpus_per_trial: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)


_QUICK_EVAL = dict(eps=0.1, l2_eps=1.5, eot_samples=4, predict_samples=4, batch_size=500)

QUICK = Preset(
    name="quick",
    dataset="fashion-mnist",
    data=DataConfig(name="fashion-mnist", train_limit=8000, val_limit=500, test_limit=500),
    train=TrainConfig(epochs=4, batch_size=128, lr=0.05, eps=0.1, steps=5, cw_steps=10, eval_limit=300,
                      mix=AttackMix()),
    epoch_suite=SuiteConfig(attacks=("fgsm", "pgd"), steps=5, **_QUICK_EVAL),
    objective_suite=SuiteConfig(attacks=("fgsm", "pgd", "pgd-l2", "cw"), steps=10, cw_steps=30, **_QUICK_EVAL),
    export_suite=SuiteConfig(attacks=("fgsm", "pgd", "pgd-l2", "cw"), steps=20, restarts=1, cw_steps=30,
                             eps=0.1, l2_eps=1.5, eot_samples=8, predict_samples=8, batch_size=500),
    num_samples=8,
)

PAPER = Preset(
    name="paper",
    dataset="cifar10",
    data=DataConfig(name="cifar10", val_size=5000),
    train=TrainConfig(epochs=30, batch_size=128, lr=0.1, eps=8 / 255, step_size=0.007, steps=20, schedule="step",
                      weight_decay=5e-4, eval_limit=1000, mix=AttackMix(none=0, gaussian=0, fgsm=0, pgd=1, cw=0)),
    epoch_suite=SuiteConfig(attacks=("fgsm", "pgd"), eps=8 / 255, l2_eps=0.5, steps=10, eot_samples=8,
                            predict_samples=8),
    objective_suite=SuiteConfig(attacks=("fgsm", "pgd", "pgd-l2", "cw"), eps=8 / 255, l2_eps=0.5, steps=20,
                                eot_samples=16, predict_samples=16, cw_steps=100),
    export_suite=SuiteConfig(attacks=("fgsm", "pgd", "pgd-l2", "cw"), eps=8 / 255, l2_eps=0.5, steps=50,
                             restarts=3, eot_samples=32, predict_samples=32, cw_steps=200),
    export_val_limit=None,
    cnn=False,
    depth=34,
    widen=1,
    num_samples=20,
    gpus_per_trial=1.0,
    notes=("the seed's setting: WRN-34 widen 1, 30 epochs, SGD lr 0.1, PGD eps 8/255 step 0.007 x 20",),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (QUICK, PAPER)}
