"""Adversarial attacks in pixel space and worst-case robustness evaluation."""

from .base import Attack
from .cw import CarliniWagnerL2
from .fgsm import FGSM
from .gaussian import GaussianNoise
from .gradients import cross_entropy, eot_logits, input_gradient
from .pgd import PGD, PGDL2
from .registry import ATTACKS, build_attack, list_attacks
from .sharded import evaluate_sharded
from .suite import RobustResult, SuiteConfig, build_suite, evaluate_robustness, robust_accuracy

__all__ = [
    "ATTACKS",
    "Attack",
    "CarliniWagnerL2",
    "FGSM",
    "GaussianNoise",
    "PGD",
    "PGDL2",
    "RobustResult",
    "SuiteConfig",
    "build_attack",
    "build_suite",
    "cross_entropy",
    "eot_logits",
    "evaluate_robustness",
    "evaluate_sharded",
    "input_gradient",
    "list_attacks",
    "robust_accuracy",
]
