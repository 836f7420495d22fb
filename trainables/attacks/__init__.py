"""Adversarial attacks in pixel space: the attack interface, the threat model, and one file per attack.

Every module of this package is imported here, and each attack class registers itself by name, so a
new attack is one new file (see docs/architecture.md, "Extending"): it then shows up in ``--attacks``,
suites, training mixes, reports and exports. Scoring a model under a suite of attacks is
:mod:`trainables.evaluation`'s job.
"""

from trainables.discovery import import_modules

from .apgd import APGDCE, APGDDLR, APGDL2
from .base import Attack
from .cw import CarliniWagnerL2
from .fgsm import FGSM
from .gaussian import GaussianNoise
from .gradients import cross_entropy, eot_logits, input_gradient
from .options import Assignment, parse_assignments, set_budget
from .pgd import PGD, PGDKL, PGDL2
from .registry import ATTACKS, attack_class, attack_from_dict, build_attack, list_attacks, register_attack
from .square import Square
from .threat import NORMS, Norm, ThreatModel

import_modules(__name__, __path__)

__all__ = [
    "APGDCE",
    "APGDDLR",
    "APGDL2",
    "ATTACKS",
    "NORMS",
    "FGSM",
    "PGD",
    "PGDKL",
    "PGDL2",
    "Square",
    "Assignment",
    "Attack",
    "CarliniWagnerL2",
    "GaussianNoise",
    "Norm",
    "ThreatModel",
    "attack_class",
    "attack_from_dict",
    "build_attack",
    "cross_entropy",
    "eot_logits",
    "input_gradient",
    "list_attacks",
    "parse_assignments",
    "register_attack",
    "set_budget",
]
