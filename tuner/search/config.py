"""The search's own settings (what `python -m tuner.search` takes), as one dataclass."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from trainables.attacks import SuiteOverrides
from tuner.search.storage import STUDY_STORAGES

__all__ = ["OBJECTIVES", "SAMPLERS", "SCHEDULERS", "SearchConfig", "is_uri"]

# --objective: the metrics of every trial report that Optuna maximises (ASHA always compares robust_acc)
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "robust": ("objective",),  # worst-case robust validation accuracy
    "pareto": ("objective", "objective_natural"),  # and natural validation accuracy: a Pareto front
}

# --sampler and --scheduler: the search's strategy, by name (built in tuner.search.tuner_setup), in words for --help
SAMPLERS: dict[str, str] = {
    "tpe": "Optuna's multivariate TPE, random for its first max(2, trials // 3) trials",
    "random": "Optuna's random sampler",
}
SCHEDULERS: dict[str, str] = {
    "asha": "ASHA stops a trial at epoch 1, 2, 4, ... unless its per-epoch robust accuracy is in the top half "
            "reached there so far",
    "fifo": "every trial runs all its epochs",
}


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
    gpus_per_trial: float | str | None = None  # a share, N GPUs, or "auto" (None: auto when the cluster has GPUs)
    workers_per_trial: int | None = None  # None: one per GPU when a trial has several, else 1
    seed: int = 0
    objective: str = "robust"  # a key of OBJECTIVES
    sampler: str = "tpe"  # a key of SAMPLERS
    scheduler: str = "asha"  # a key of SCHEDULERS
    pick_min_natural: float | None = None  # pareto: export the most robust front trial with natural acc >= this
    storage_path: str = "runs"
    name: str | None = None  # None: "<space>-<preset>"
    resume: bool = False
    address: str = ""  # '' starts a local Ray; 'auto' or host:port joins a cluster
    export_dir: str = "exports"
    optuna_storage: str | None = None  # an RDB URL; None: the study is kept in the experiment folder (local storage)
    study_storage: str = "auto"  # a key of tuner.search.storage.STUDY_STORAGES (without --optuna-storage)
    suite: SuiteOverrides = field(default_factory=SuiteOverrides)  # threat model and suite changes to the preset's
    epochs: int | None = None
    precision: str | None = None  # training's autocast (None: the preset's, auto); see trainables.train.compute
    memory_format: str | None = None  # the model's layout (None: the preset's, auto)
    train_limit: int | None = None
    val_limit: int | None = None
    test_limit: int | None = None
    points: str | None = None  # JSON file of extra configurations to evaluate first
    grace_period: int = 1
    resource_wait_s: float | None = None  # None: 0 for a local Ray, 600 s for a joined cluster (its autoscaler)
    trust_experiment: bool = False  # resume without checking the experiment's integrity record
    live: bool = True  # a live rich view; False: one plain line per event
    verbose: bool = False  # Ray's, Tune's and Optuna's own output on the terminal too

    def __post_init__(self) -> None:
        at_least_one = {"--num-samples": self.num_samples, "--max-concurrent": self.max_concurrent,
                        "--workers-per-trial": self.workers_per_trial, "--epochs": self.epochs,
                        "--train-limit": self.train_limit, "--val-limit": self.val_limit,
                        "--test-limit": self.test_limit, "--grace-period": self.grace_period}
        for flag, value in at_least_one.items():
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        if not (math.isfinite(self.cpus_per_trial) and self.cpus_per_trial > 0):
            raise ValueError(f"--cpus-per-trial must be a finite number > 0, got {self.cpus_per_trial}")
        gpus = self.gpus_per_trial
        if gpus is not None and gpus != "auto" and not (isinstance(gpus, (int, float)) and math.isfinite(gpus)
                                                        and gpus >= 0):
            raise ValueError(f"--gpus-per-trial must be 'auto' or a finite number >= 0, got {gpus}")
        wait = self.resource_wait_s
        if wait is not None and not (math.isfinite(wait) and wait >= 0):
            raise ValueError(f"--wait-for-resources must be a finite number of seconds >= 0, got {wait}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        floor = self.pick_min_natural
        if floor is not None and not (math.isfinite(floor) and 0 <= floor <= 1):
            raise ValueError(f"--pick-min-natural must be an accuracy in [0, 1], got {floor}")
        if floor is not None and not self.pareto:
            raise ValueError(f"--pick-min-natural picks from the Pareto front and goes with --objective pareto, "
                             f"got --objective {self.objective}")
        if self.study_storage not in STUDY_STORAGES:
            raise ValueError(f"--study-storage must be one of {', '.join(STUDY_STORAGES)}, got {self.study_storage!r}")
        if self.trust_experiment and not self.resume:
            raise ValueError("--trust-experiment goes with --resume")

    @property
    def data_parallel(self) -> bool:
        """Whether trials may train over several workers (Ray Train), as far as the flags tell."""
        return (self.workers_per_trial or 1) > 1 or self.fixed_gpus_per_trial > 1

    @property
    def fixed_gpus_per_trial(self) -> float:
        """``--gpus-per-trial`` when it is a number; 0 for auto or unset (sized once Ray is up)."""
        return float(self.gpus_per_trial) if isinstance(self.gpus_per_trial, (int, float)) else 0.0

    @property
    def metrics(self) -> tuple[str, ...]:
        """The report metrics the searcher maximises: one, or two for a Pareto search."""
        return OBJECTIVES[self.objective]

    @property
    def pareto(self) -> bool:
        """Whether the search looks for a front of robust and natural accuracy rather than one best trial."""
        return len(self.metrics) > 1

    @property
    def experiment_name(self) -> str:
        """The experiment folder's name."""
        return self.name or f"{self.space}-{self.preset}"

    @property
    def experiment_path(self) -> str:
        """storage_path/name, absolute for local storage."""
        base = self.storage_path if is_uri(self.storage_path) else str(Path(self.storage_path).resolve())
        return f"{base.rstrip('/')}/{self.experiment_name}"
