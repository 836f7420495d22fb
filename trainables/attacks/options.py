"""Budget assignments: ``pgd.steps=20`` or ``restarts=2``, set on the attacks of a suite or a training mix.

An assignment names an attack and one of its budget fields (``pgd.steps=20``), or only the field
(``restarts=2``: every attack that has one). It is how command lines and search spaces change an
attack's budget without knowing which attacks exist.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from typing import Any

from .base import SHARED_FIELDS, Attack

__all__ = ["Assignment", "parse_assignments", "set_budget"]

Assignment = tuple[str | None, str, Any]  # (attack name or None for every attack, field, value)


def parse_assignments(texts: str | Iterable[str]) -> tuple[Assignment, ...]:
    """``"pgd.steps=20,restarts=2"`` (or several such strings) as assignments; values stay strings."""
    parts = [texts] if isinstance(texts, str) else list(texts)
    out: list[Assignment] = []
    for part in (p.strip() for text in parts for p in text.split(",")):
        if not part:
            continue
        target, sep, value = part.partition("=")
        name, dot, key = target.strip().rpartition(".")
        if not sep or not key or (dot and not name):
            raise ValueError(f"expected ATTACK.SETTING=VALUE or SETTING=VALUE, got {part!r}")
        out.append((name or None, key, value.strip()))
    return tuple(out)


def _convert(attack: Attack, key: str, value: Any) -> Any:
    """A command-line string as the type of ``attack``'s field ``key``; other values as they are."""
    if not isinstance(value, str):
        return value
    annotation = str(next(f.type for f in fields(attack) if f.name == key))
    if value.lower() == "none" and "None" in annotation:
        return None
    try:
        if "bool" in annotation:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if "int" in annotation:
            return int(value)
        if "float" not in annotation:
            return value
        number = float(value)
    except ValueError:
        raise ValueError(f"{attack.name}.{key} takes {annotation}, got {value!r}") from None
    if not math.isfinite(number):  # e.g. an infinite step: the attack breaks, and robustness reads higher
        raise ValueError(f"{attack.name}.{key} must be finite, got {value!r}")
    return number


def set_budget(attacks: Sequence[Attack], assignments: Iterable[Assignment]) -> tuple[Attack, ...]:
    """``attacks`` with every assignment applied; ValueError when one matches no attack's budget field."""
    out = list(attacks)
    for name, key, value in assignments:
        if key in SHARED_FIELDS:
            raise ValueError(f"{key} is set by the suite or the threat model, not per attack")
        hits = [i for i, a in enumerate(out) if (name is None or a.name == name) and key in a.budget()]
        if not hits:
            have = "; ".join(f"{a.name}: {', '.join(a.budget()) or '-'}" for a in out) or "no attacks"
            target = f"{name}.{key}" if name else key
            raise ValueError(f"cannot set {target}: no attack here has that setting ({have})")
        for i in hits:
            out[i] = replace(out[i], **{key: _convert(out[i], key, value)})
    return tuple(out)
