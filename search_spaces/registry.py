"""Search spaces by name; the tuner's ``--space`` choices come from here."""

from __future__ import annotations

from search_spaces.base import SearchSpace

__all__ = ["get_space", "list_spaces", "register_space"]

_SPACES: dict[str, SearchSpace] = {}


def register_space(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if not cls.name or cls.name in _SPACES:
        raise ValueError(f"search space name {cls.name!r} is empty or already registered")
    _SPACES[cls.name] = cls()
    return cls


def get_space(name: str) -> SearchSpace:
    """The space registered as ``name``."""
    if name not in _SPACES:
        raise ValueError(f"unknown search space {name!r}; choose from {', '.join(list_spaces())}")
    return _SPACES[name]


def list_spaces() -> list[str]:
    """Sorted names of the registered spaces."""
    return sorted(_SPACES)


