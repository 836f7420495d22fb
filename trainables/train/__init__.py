"""One training loop for every model family: attack mix, ELBO, checkpoints, per-epoch reports."""

from trainables.train.checkpoint import CHECKPOINT_FILE, CheckpointError, TrainState, load_checkpoint, save_checkpoint
from trainables.train.config import SCHEDULES, RunSpec, TrainConfig
from trainables.train.loop import FitResult, TrainingDiverged, fit, resolve_device
from trainables.train.replicas import Replicas

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "FitResult",
    "Replicas",
    "RunSpec",
    "SCHEDULES",
    "TrainConfig",
    "TrainState",
    "TrainingDiverged",
    "fit",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
]
