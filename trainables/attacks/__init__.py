"""Adversarial attacks in pixel space and worst-case robustness evaluation.

Every module of this package is imported here, and each attack class registers itself by name, so a
new attack is one new file (see README, "Extending robustune"): it then shows up in ``--attacks``,
suites, training mixes, reports and exports.
"""

from trainables.discovery import import_modules

from .apgd import APGDCE, APGDDLR, APGDL2
from .base import Attack
from .checks import RobustnessWarning, large_eps_accuracy
from .cw import CarliniWagnerL2
from .evaluation import evaluate_robustness
from .fgsm import FGSM
from .gaussian import GaussianNoise
from .gradients import cross_entropy, eot_logits, input_gradient
from .mix import CLEAN, AttackMix, MixEntry
from .options import parse_assignments, set_budget
from .overrides import SuiteOverrides, add_suite_arguments
from .pgd import PGD, PGDL2
from .registry import ATTACKS, attack_class, attack_from_dict, build_attack, list_attacks, register_attack
from .result import RobustResult
from .sharded import evaluate_sharded
from .suite import SuiteConfig
from .threat import ThreatModel

import_modules(__name__, __path__)

__all__ = [
    "APGDCE",
    "APGDDLR",
    "APGDL2",
    "ATTACKS",
    "CLEAN",
    "Attack",
    "AttackMix",
    "CarliniWagnerL2",
    "FGSM",
    "GaussianNoise",
    "MixEntry",
    "PGD",
    "PGDL2",
    "RobustResult",
    "RobustnessWarning",
    "SuiteConfig",
    "SuiteOverrides",
    "ThreatModel",
    "add_suite_arguments",
    "attack_class",
    "attack_from_dict",
    "build_attack",
    "cross_entropy",
    "eot_logits",
    "evaluate_robustness",
    "evaluate_sharded",
    "input_gradient",
    "large_eps_accuracy",
    "list_attacks",
    "parse_assignments",
    "register_attack",
    "set_budget",
]
