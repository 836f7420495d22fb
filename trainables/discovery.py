"""Registries fill themselves: importing a package imports each of its modules, whose decorators register."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

__all__ = ["import_modules"]


def import_modules(package: str, path: Iterable[str], skip: tuple[str, ...] = ()) -> list[str]:
    """Import every module of ``package`` (its ``__path__``) but ``skip``; returns their names, sorted.

    A new attack or architecture is then one new file: nothing else needs to import it.
    """
    found = (m.name for m in pkgutil.iter_modules(list(path)))
    names = sorted(name for name in found if not name.startswith("_") and name not in skip)
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
