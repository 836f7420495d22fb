"""A promoted configuration's warm start: the weights its screen run ended with, found again from any node.

A screened search (:mod:`tuner.search.screening`) trains each configuration on a short schedule,
then trains the best again in full. Started from scratch, the promoted run throws its screen
epochs away; warm-started, it begins from the weights its screen run was ranked by (its kept epoch,
what the screen's objective scored) and trains a new schedule from there. Where those weights are
travels with the promoted point as one string (:data:`POINT_WARM`): the screen trial's last
checkpoint, a local path or a storage URI every node of the cluster reads, as Tune's own checkpoints.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ray import tune
from torch import Tensor

from trainables.train import CheckpointError
from tuner.trials.checkpoints import trained_weights
from tuner.trials.record import TrialRecord

__all__ = ["POINT_WARM", "WarmStart", "warm_start_of", "warm_weights"]

POINT_WARM = "warm_from"  # a promoted point's constant: its WarmStart, encoded


@dataclass(frozen=True)
class WarmStart:
    """Where a promoted configuration's screen weights are: a trial's checkpoint (and its member in a bundle)."""

    checkpoint: str  # a local path or a pyarrow URI (s3://...)
    trial_id: str  # the screen trial
    epochs: int  # the epochs its screen run trained
    member: int | None = None  # its place in a fused screen trial's bundle

    def encode(self) -> str:
        """As a trial configuration carries it (one JSON string: a results.parquet column like any parameter)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, text: Any) -> WarmStart:
        """The warm start ``text`` encodes; ValueError (one line) for anything else."""
        try:
            fields = json.loads(text) if isinstance(text, str) else None
            start = cls(**fields) if isinstance(fields, dict) else None
        except (TypeError, ValueError):
            start = None
        if start is None or not isinstance(start.checkpoint, str) or not start.checkpoint \
                or isinstance(start.epochs, bool) or not isinstance(start.epochs, int) \
                or not (start.member is None or isinstance(start.member, int)):
            raise ValueError(f"a point's {POINT_WARM!r} must name a screen trial's checkpoint, got {text!r}")
        return start


def warm_start_of(record: TrialRecord, scheme: str = "") -> WarmStart | None:
    """Where ``record``'s screen weights are (None: it left no checkpoint); ``scheme`` is its storage's URI scheme
    ('' on a local or shared filesystem), since Tune names a remote checkpoint without it."""
    if record.checkpoint is None:
        return None
    path = str(record.checkpoint.path)
    epochs = int(record.final.get("epoch", 0)) or len(record.history)
    return WarmStart(f"{scheme}://{path}" if scheme else path, record.trial_id, epochs, record.member)


def warm_weights(start: WarmStart) -> dict[str, Tensor]:
    """The weights ``start`` names, read from its checkpoint; CheckpointError (one line) when it cannot be read."""
    with tempfile.TemporaryDirectory(prefix="robustune-warm-") as tmp:
        try:
            tune.Checkpoint(start.checkpoint).to_directory(tmp)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"screen trial {start.trial_id}'s checkpoint {start.checkpoint} cannot be read: "
                                  f"{exc}") from None
        try:
            return trained_weights(Path(tmp), start.member)[1]
        except CheckpointError as exc:
            raise CheckpointError(f"screen trial {start.trial_id}: {str(exc).replace(tmp, start.checkpoint)}") from None
