"""Atomic, sealed training checkpoints that resume a run exactly where it stopped (a corrupt one is refused)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainables.sealed import SealError, load_format, save_sealed

__all__ = ["CHECKPOINT_FILE", "CheckpointError", "TrainState", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FILE = "checkpoint.pt"
_FORMAT = "robustune-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: truncated, corrupt or of another format."""


@dataclass
class TrainState:
    """What a checkpoint holds: the next epoch to run and every state needed to run it."""

    epoch: int  # epochs completed
    spec: dict[str, Any]
    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: torch.Tensor  # torch's global CPU generator state after the last completed epoch
    cuda_rng: list[torch.Tensor]
    history: list[dict[str, float]]
    replica_rng: list[torch.Tensor] = field(default_factory=list)  # every replica's CPU state (data-parallel runs)
    best_model: dict[str, Any] | None = None  # weights of the best epoch so far (None: keep the last)
    best_epoch: int = 0  # 1-based; 0 when the run keeps its last epoch
    stopped: bool = False  # early stopping ended the run before its last epoch
    averaged: dict[str, Any] | None = None  # the EMA of the weights (runs with ema_decay > 0), what is scored
    averaged_updates: int = 0  # optimiser steps the average has taken

    def trained_weights(self) -> dict[str, Any]:
        """The weights the run stands for: its best epoch's when it keeps the best, else the last (averaged ones)."""
        if self.best_model is not None:
            return self.best_model
        return self.averaged if self.averaged is not None else self.model


def save_checkpoint(directory: Path, state: TrainState) -> Path:
    """Write ``state`` to directory/checkpoint.pt atomically (temp file, fsync, rename), sealed with its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    return save_sealed(directory / CHECKPOINT_FILE, {"format": _FORMAT, **state.__dict__})


def load_checkpoint(path: Path) -> TrainState:
    """Read a checkpoint written by ``save_checkpoint`` (tensors and plain data only, never code), its seal checked."""
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = load_format(path, _FORMAT, "robustune checkpoint")
    except SealError as exc:
        raise CheckpointError(f"checkpoint {exc}") from None
    try:
        return TrainState(**payload)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint {path} has unexpected content: {exc}") from None
