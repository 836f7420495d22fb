"""One training loop for every model family: attack mix, ELBO, checkpoints, per-epoch reports."""

from trainables.train.checkpoint import CHECKPOINT_FILE, CheckpointError, TrainState, load_checkpoint, save_checkpoint
from trainables.train.config import MIX_ATTACKS, AttackMix, RunSpec, TrainConfig
from trainables.train.loop import FitResult, TrainingDiverged, fit, resolve_device, training_attacks
from trainables.train.replicas import Replicas

__all__ = [
    "CHECKPOINT_FILE",
    "MIX_ATTACKS",
    "AttackMix",
    "CheckpointError",
    "FitResult",
    "Replicas",
    "RunSpec",
    "TrainConfig",
    "TrainState",
    "TrainingDiverged",
    "fit",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "training_attacks",
]
