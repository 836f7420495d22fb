"""Load a registered dataset and split it into train / validation / test."""

from __future__ import annotations

from pathlib import Path

import torch

from trainables.data.config import DataConfig
from trainables.data.images import Splits
from trainables.data.sources import DATASETS

__all__ = ["load_splits"]


def load_splits(cfg: DataConfig) -> Splits:
    """Read ``cfg.name`` and carve a seeded validation split from its training set."""
    info, source = DATASETS.get(cfg.name)
    full_train, test = source(Path(cfg.data_dir) if cfg.data_dir else None, cfg.download)
    if cfg.val_size >= len(full_train):
        raise ValueError(f"val_size must be < {len(full_train)} training examples, got {cfg.val_size}")
    order = torch.randperm(len(full_train), generator=torch.Generator().manual_seed(cfg.split_seed))
    val = full_train.take(order[:cfg.val_size])
    train = full_train.take(order[cfg.val_size:])
    return Splits(train.head(cfg.train_limit), val.head(cfg.val_limit), test.head(cfg.test_limit), info)


