"""One training loop for every model family: the attack mix, the ELBO, checkpoints, per-epoch reports."""

from trainables.train.checkpoint import CHECKPOINT_FILE, CheckpointError, TrainState, load_checkpoint, save_checkpoint
from trainables.train.config import SCHEDULES, RunSpec, TrainConfig
from trainables.train.loop import FitResult, TrainingDiverged, fit, resolve_device
from trainables.train.mix import CLEAN, AttackMix, MixEntry, paper_mix, parse_weights
from trainables.train.replicas import Replicas

__all__ = [
    "CHECKPOINT_FILE",
    "CLEAN",
    "SCHEDULES",
    "AttackMix",
    "CheckpointError",
    "FitResult",
    "MixEntry",
    "Replicas",
    "RunSpec",
    "TrainConfig",
    "TrainState",
    "TrainingDiverged",
    "fit",
    "load_checkpoint",
    "paper_mix",
    "parse_weights",
    "resolve_device",
    "save_checkpoint",
]
