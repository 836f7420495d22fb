"""The checkpoint a restored trial resumes from: Tune's latest when it is intact, else the newest intact one before it;
and the weights a trial's checkpoint stands for (:func:`trained_weights`).

Every checkpoint file a trial writes is sealed with its sha256 (:mod:`trainables.sealed`). Tune keeps
a trial's last two checkpoints (``checkpoint_000004``, ``checkpoint_000005``, ...: one per epoch, the
index counting from 0); when the latest fails its check the trial falls back to the one before,
says so in one line on its log, and retrains the epochs in between without reporting them again
(Tune holds their reports already, and ASHA's rungs count reports).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs
from torch import Tensor

from trainables.bundle import BundleCheckpointError, load_member
from trainables.sealed import SealError, load_sealed
from trainables.train import CheckpointError, RunSpec, TrainState, load_checkpoint

__all__ = ["Restored", "damage", "restore_intact", "trained_weights"]

_PREFIX = "checkpoint_"


def damage(folder: Path) -> str | None:
    """Why a checkpoint folder cannot be trusted (the first sealed file that fails its check); None when it can."""
    for path in sorted(folder.glob("*.pt")):
        try:
            load_sealed(path)
        except SealError as exc:
            return str(exc)
    return None


def _index(path: str) -> int | None:
    """The index of a Tune checkpoint folder ``.../checkpoint_000004`` (None for another name)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    tail = name.removeprefix(_PREFIX)
    return int(tail) if name.startswith(_PREFIX) and tail.isdigit() else None


def _earlier(checkpoint: Any) -> list[Any]:
    """The trial's other checkpoints older than ``checkpoint``, newest first (same filesystem)."""
    latest = _index(checkpoint.path)
    if latest is None:
        return []
    parent = checkpoint.path.rstrip("/").rsplit("/", 1)[0]
    entries = checkpoint.filesystem.get_file_info(pyarrow.fs.FileSelector(parent))
    indexed = [(_index(e.path), e.path) for e in entries if e.type == pyarrow.fs.FileType.Directory]
    older = sorted(((i, p) for i, p in indexed if i is not None and i < latest), reverse=True)
    return [type(checkpoint)(path=p, filesystem=checkpoint.filesystem) for _, p in older]


@dataclass(frozen=True)
class Restored:
    """What :func:`restore_intact` found: how many epochs Tune holds reports of beyond the copy (0: none)."""

    reported: int = 0

    def silent(self, epoch: int) -> bool:
        """Whether ``epoch``'s report would repeat one Tune already holds (a fallback retrains it silently)."""
        return epoch <= self.reported


def restore_intact(checkpoint: Any, folder: Path) -> Restored:
    """Copy ``checkpoint`` (a ``tune.Checkpoint`` or None) into ``folder``, or the newest intact earlier one.

    With none intact the trial starts over in an empty ``folder``; either way its log gets one line.
    """
    if checkpoint is None:
        return Restored()
    checkpoint.to_directory(str(folder))
    why = damage(folder)
    if why is None:
        return Restored()
    latest = _index(checkpoint.path)
    reported = 0 if latest is None else latest + 1  # one checkpoint per reported epoch
    for older in _earlier(checkpoint):
        _empty(folder)
        older.to_directory(str(folder))
        if damage(folder) is None:
            print(f"robustune: {why}; resuming from the intact {older.path}", file=sys.stderr)
            return Restored(reported)
    _empty(folder)
    print(f"robustune: {why}; no intact earlier checkpoint: the trial starts over", file=sys.stderr)
    return Restored(reported)


def trained_weights(folder: Path, member: int | None = None) -> tuple[RunSpec, dict[str, Tensor]]:
    """The run and the weights a trial's checkpoint in ``folder`` stands for (what its objective scored): its
    ``member``'s own in a fused trial's bundle. CheckpointError (one line) when they cannot be read."""
    try:
        if member is not None:
            return load_member(folder, member)
        state: TrainState = load_checkpoint(folder)
        return RunSpec.from_dict(state.spec), state.trained_weights()
    except BundleCheckpointError as exc:
        raise CheckpointError(str(exc)) from None


def _empty(folder: Path) -> None:
    for path in folder.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
