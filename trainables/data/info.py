"""What a model needs to know about a dataset."""

from __future__ import annotations

from dataclasses import dataclass

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
