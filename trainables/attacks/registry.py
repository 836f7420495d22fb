"""Attacks by name: the registry drives CLI choices, suites and parametrised tests."""

from __future__ import annotations

from typing import Any

from .base import Attack
from .cw import CarliniWagnerL2
from .fgsm import FGSM
from .gaussian import GaussianNoise
from .pgd import PGD, PGDL2

__all__ = ["ATTACKS", "build_attack", "list_attacks"]

ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "pgd-l2": PGDL2,
    "cw": CarliniWagnerL2,
    "gaussian": GaussianNoise,
}


def list_attacks() -> list[str]:
    """Registered attack names, in registration order."""
    return list(ATTACKS)


def build_attack(name: str, **params: Any) -> Attack:
    """Instantiate the attack registered as ``name`` with its dataclass fields as keywords."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choices: {', '.join(ATTACKS)}")
    return ATTACKS[name](**params)
