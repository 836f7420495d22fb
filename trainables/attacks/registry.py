"""Attacks by name: the registry drives CLI choices, suites, training mixes, reports and tests.

Every module of this package is imported when the package is (see ``__init__``), so a new attack is
one new file whose class carries ``@register_attack("name")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from trainables.registry import Registry

from .base import SHARED_FIELDS, Attack
from .threat import Norm

__all__ = ["ATTACKS", "attack_class", "attack_from_dict", "build_attack", "list_attacks", "register_attack"]

A = TypeVar("A", bound=type[Attack])


def _refused(name: str) -> str | None:
    if name == "none" or any(c in name for c in ",:.="):
        return "'none' is a clean batch in training mixes, and ',:.=' separate names in command lines"
    return None


ATTACKS: Registry[type[Attack]] = Registry("attack", _refused)


def register_attack(name: str) -> Callable[[A], A]:
    """Class decorator: register an :class:`Attack` dataclass under ``name`` (also set as its ``name``)."""

    def decorator(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, Attack)):
            raise TypeError(f"@register_attack needs an Attack subclass, got {cls!r}")
        ATTACKS.add(name, cls)
        cls.name = name
        cls.norm = Norm(cls.norm)  # a plain "linf" / "l2" works too
        return cls

    return decorator


def list_attacks() -> list[str]:
    """Registered attack names, sorted."""
    return ATTACKS.names()


def attack_class(name: str) -> type[Attack]:
    """The class registered as ``name``."""
    return ATTACKS.get(name)


def build_attack(name: str, **params: Any) -> Attack:
    """Instantiate the attack registered as ``name`` with its dataclass fields as keywords."""
    return attack_class(name)(**params)


def attack_from_dict(raw: Mapping[str, Any]) -> Attack:
    """The spec ``Attack.to_dict`` wrote: ``{"name": ..., **budget}``; unknown settings raise ValueError."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise ValueError(f"an attack spec needs a 'name', got {raw!r}")
    cls = attack_class(raw["name"])
    params = {k: v for k, v in raw.items() if k != "name"}
    known = {f.name for f in fields(cls)} - set(SHARED_FIELDS)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"attack {raw['name']!r} has no setting(s) {', '.join(unknown)}; "
                         f"it has {', '.join(sorted(known))}")
    return cls(**params)
