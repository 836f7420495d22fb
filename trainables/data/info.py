"""What a model needs to know about a dataset."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["DatasetInfo"]


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and normalisation statistics of one dataset."""

    name: str
    channels: int
    size: int  # height == width
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ValueError(f"dataset name must be a string, got {self.name!r}")
        for field, low, high in (("channels", 1, 16), ("size", 1, 4096), ("classes", 2, 100_000)):
            value = getattr(self, field)
            if not _is_int(value) or not low <= value <= high:
                raise ValueError(f"dataset {field} must be a whole number in [{low}, {high}], got {value!r}")
        for field in ("mean", "std"):
            values = getattr(self, field)
            if not (isinstance(values, tuple) and len(values) == self.channels
                    and all(_is_number(v) and math.isfinite(v) for v in values)):
                raise ValueError(f"dataset {field} must hold {self.channels} finite numbers, got {values!r}")
        if not all(v > 0 for v in self.std):
            raise ValueError(f"dataset std must be > 0, got {self.std!r}")
        if not (isinstance(self.class_names, tuple) and all(isinstance(c, str) for c in self.class_names)
                and len(self.class_names) in (0, self.classes)):
            raise ValueError(f"dataset class_names must be {self.classes} strings (or none), got {self.class_names!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
