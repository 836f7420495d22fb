"""The search's own settings (what `python -m tuner.search` takes), as one dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainables.attacks import SuiteOverrides

__all__ = ["SearchConfig", "is_uri"]


def is_uri(path: str) -> bool:
    """True for pyarrow filesystem URIs such as s3://bucket/runs (not local paths)."""
    return "://" in path and not path.startswith("file://")


@dataclass(frozen=True)
class SearchConfig:
    """One search: which space and preset, how many trials, where they run and where results go."""

    space: str = "lwta"
    preset: str = "quick"
    dataset: str | None = None  # None: the preset's dataset
    data_dir: str | None = None
    download: bool = False
    num_samples: int | None = None  # None: the preset's
    max_concurrent: int | None = None  # None: as many as the resources allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None  # None: the preset's when CUDA is there, else 0
    workers_per_trial: int | None = None  # None: one per GPU when a trial has several, else 1
    seed: int = 0
    storage_path: str = "runs"
    name: str | None = None  # None: "<space>-<preset>"
    resume: bool = False
    address: str = ""  # '' starts a local Ray; 'auto' or host:port joins a cluster
    export_dir: str = "exports"
    optuna_storage: str | None = None  # None: sqlite in the experiment folder (local storage only)
    suite: SuiteOverrides = field(default_factory=SuiteOverrides)  # threat model and suite changes to the preset's
    epochs: int | None = None
    train_limit: int | None = None
    val_limit: int | None = None
    test_limit: int | None = None
    points: str | None = None  # JSON file of extra configurations to evaluate first
    grace_period: int = 1
    live: bool = True

    def __post_init__(self) -> None:
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"--num-samples must be >= 1, got {self.num_samples}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"--max-concurrent must be >= 1, got {self.max_concurrent}")
        if self.cpus_per_trial <= 0:
            raise ValueError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise ValueError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}")
        if self.workers_per_trial is not None and self.workers_per_trial < 1:
            raise ValueError(f"--workers-per-trial must be >= 1, got {self.workers_per_trial}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {self.epochs}")
        if self.grace_period < 1:
            raise ValueError(f"--grace-period must be >= 1, got {self.grace_period}")

    @property
    def data_parallel(self) -> bool:
        """Whether trials may train over several workers (Ray Train), as far as the flags tell."""
        return (self.workers_per_trial or 1) > 1 or (self.gpus_per_trial or 0) > 1

    @property
    def experiment_name(self) -> str:
        """The experiment folder's name."""
        return self.name or f"{self.space}-{self.preset}"

    @property
    def experiment_path(self) -> str:
        """storage_path/name, absolute for local storage."""
        base = self.storage_path if is_uri(self.storage_path) else str(Path(self.storage_path).resolve())
        return f"{base.rstrip('/')}/{self.experiment_name}"
