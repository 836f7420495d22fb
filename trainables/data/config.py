"""Which dataset to load and how much of it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DataConfig"]


@dataclass(frozen=True)
class DataConfig:
    """Dataset name, location and the split sizes a run uses."""

    name: str = "fashion-mnist"
    data_dir: str | None = None  # None: the Debian package for fashion-mnist
    download: bool = False  # torchvision datasets: fetch into data_dir when missing
    val_size: int = 5000  # carved from the training set with split_seed
    split_seed: int = 0
    train_limit: int | None = None  # use only the first N (shuffled) training examples
    val_limit: int | None = None
    test_limit: int | None = None

    def __post_init__(self) -> None:
        if self.val_size < 1:
            raise ValueError(f"val_size must be >= 1, got {self.val_size=}")
        for field in ("train_limit", "val_limit", "test_limit"):
            value = getattr(self, field)
            if value is not None and value < 1:
                raise ValueError(f"{field} must be >= 1 or None, got {value}")
