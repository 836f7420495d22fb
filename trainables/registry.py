"""Things by name: one small registry type behind every "pick it by name" table (attacks, models, spaces...).

A registry is filled when the module defining an entry is imported (a decorator or a call to
:meth:`Registry.add`); its names drive command-line choices and parametrised tests, and an unknown
name is one clear ``ValueError`` listing the choices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Generic, TypeVar

__all__ = ["Registry", "check_choice"]

T = TypeVar("T")
E = TypeVar("E")


def check_choice(setting: str, value: object, choices: Iterable[object]) -> None:
    """ValueError (one line, the setting, its choices and the value) unless ``value`` is one of ``choices``."""
    options = list(choices)
    if value not in options:
        raise ValueError(f"{setting} must be one of {', '.join(map(str, options))}, got {value!r}")


class Registry(Generic[T]):
    """Entries of one kind by unique name, in the order they were added."""

    def __init__(self, kind: str, check_name: Callable[[str], str | None] | None = None) -> None:
        """``kind`` names the entries in messages ("attack"); ``check_name`` returns why a name is refused, or None."""
        self.kind = kind
        self._check_name = check_name
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``; ValueError for an empty, refused or taken name."""
        problem = self._check_name(name) if self._check_name is not None else None
        if not isinstance(name, str) or not name:
            problem = "it is empty"
        elif name in self._entries:
            problem = "it is already registered"
        if problem:
            raise ValueError(f"cannot register {self.kind} {name!r}: {problem}")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[E], E]:
        """Decorator form of :meth:`add`."""

        def decorator(entry: E) -> E:
            self.add(name, entry)  # type: ignore[arg-type]
            return entry

        return decorator

    def get(self, name: str) -> T:
        """The entry ``name``; ValueError (one line, with the choices) for an unknown one."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {', '.join(self.names()) or 'nothing'}")
        return self._entries[name]

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plug-in's or a test's entry); nothing when it is not there."""
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def in_order(self) -> list[str]:
        """The registered names in the order they were added."""
        return list(self._entries)

    def values(self) -> list[T]:
        """The entries, in the order they were added."""
        return list(self._entries.values())

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, in the order they were added."""
        return list(self._entries.items())

    def view(self) -> Mapping[str, T]:
        """A read-only mapping of the entries (it follows later registrations)."""
        return MappingProxyType(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
