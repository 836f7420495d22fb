"""Search spaces by name; the tuner's ``--space`` choices come from here."""

from __future__ import annotations

from search_spaces.base import SearchSpace
from trainables.registry import Registry

__all__ = ["SPACES", "get_space", "list_spaces", "register_space"]

SPACES: Registry[SearchSpace] = Registry("search space")


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    SPACES.add(cls.name, cls())
    return cls


def get_space(name: str) -> SearchSpace:
    """The space registered as ``name``."""
    return SPACES.get(name)


def list_spaces() -> list[str]:
    """Sorted names of the registered spaces."""
    return SPACES.names()
