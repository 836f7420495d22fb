"""The search's own settings (what `python -m tuner.search` takes), as one dataclass."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trainables.evaluation import SuiteOverrides
from trainables.registry import check_choice
from trainables.train.compute import MemoryFormat, Precision
from tuner.bundles import FuseChoice
from tuner.cluster.storage import STUDY_STORAGES, StudyChoice
from tuner.experiment import ExperimentFolder, check_name
from tuner.trials.strategy import OBJECTIVES, SAMPLERS, SCHEDULERS, ObjectiveMode, Strategy

__all__ = ["PROMOTE_FROM", "TRACKINGS", "PromoteFrom", "SearchConfig", "Tracking", "read_points"]

Tracking = Literal["none", "mlflow"]  # --tracking
TRACKINGS: tuple[Tracking, ...] = ("none", "mlflow")
PromoteFrom = Literal["screen", "scratch"]  # --promote-from: where a promoted configuration's full run starts
PROMOTE_FROM: tuple[PromoteFrom, ...] = ("screen", "scratch")


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
    objective: ObjectiveMode = "robust"  # a key of tuner.trials.strategy.OBJECTIVES
    sampler: str = "tpe"  # a name in tuner.trials.strategy.SAMPLERS
    scheduler: str = "asha"  # a name in tuner.trials.strategy.SCHEDULERS
    pick_min_natural: float | None = None  # pareto: export the most robust front trial with natural acc >= this
    storage_path: str = "runs"
    name: str | None = None  # None: "<space>-<preset>"
    resume: bool = False
    address: str = ""  # '' starts a local Ray; 'auto' or host:port joins a cluster
    export_dir: str = "exports"
    optuna_storage: str | None = None  # an RDB URL; None: the study is kept in the experiment folder (local storage)
    study_storage: StudyChoice = "auto"  # how the study is kept without --optuna-storage
    suite: SuiteOverrides = field(default_factory=SuiteOverrides)  # threat model and suite changes to the preset's
    epochs: int | None = None
    train_budget: tuple[str, ...] = ()  # the training attacks' budgets (ATTACK.SETTING=VALUE), every trial's
    precision: Precision | None = None  # training's autocast (None: the preset's, auto); see trainables.train.compute
    memory_format: MemoryFormat | None = None  # the model's layout (None: the preset's, auto)
    train_limit: int | None = None
    val_limit: int | None = None
    test_limit: int | None = None
    points: str | None = None  # JSON file of extra configurations to evaluate first
    grace_period: int = 1
    screen: int | None = None  # this many configurations on a short schedule first, the best --promote in full
    # (None: the preset's screen, unless --num-samples or a Pareto search asks for plain trials; 0: no screen)
    promote: int | None = None  # configurations promoted from the screen (None: 2)
    screen_epochs: int | None = None  # the screen's schedule (None: a fifth of the trials' epochs, at least 1)
    promote_from: PromoteFrom = "scratch"  # a promoted configuration starts anew, or from its screen weights
    time_budget: float | None = None  # minutes for a screened search's whole job, screen to export: the screen
    # tries as many of its configurations as fit (None: the preset's; 0: no budget, every one)
    space_points: bool = True  # the space's known-good points first (a promoted phase trains its --points alone)
    fuse: FuseChoice = "auto"  # trials of one shape trained as one bundle: a bundle size (1: off) or measured
    resource_wait_s: float | None = None  # None: 0 for a local Ray, 600 s for a joined cluster (its autoscaler)
    trust_experiment: bool = False  # resume without checking the experiment's integrity record
    tracking: Tracking = "none"  # mlflow: every trial an MLflow run, the export its artifact
    tracking_uri: str | None = None  # the MLflow store (None: a SQLite file in the experiment folder)
    live: bool = True  # a live rich view; False: one plain line per event
    verbose: bool = False  # Ray's, Tune's and Optuna's own output on the terminal too

    def __post_init__(self) -> None:
        if self.name is not None:
            check_name(self.name)
        at_least_one = {"--num-samples": self.num_samples, "--max-concurrent": self.max_concurrent,
                        "--workers-per-trial": self.workers_per_trial, "--epochs": self.epochs,
                        "--train-limit": self.train_limit, "--val-limit": self.val_limit,
                        "--test-limit": self.test_limit, "--grace-period": self.grace_period,
                        "--promote": self.promote, "--screen-epochs": self.screen_epochs}
        for flag, value in at_least_one.items():
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must be in [0, 2**32), got {self.seed}")
        if not (math.isfinite(self.cpus_per_trial) and self.cpus_per_trial > 0):
            raise ValueError(f"--cpus-per-trial must be a finite number > 0, got {self.cpus_per_trial}")
        gpus = self.gpus_per_trial
        if gpus is not None and gpus != "auto" and not (isinstance(gpus, (int, float)) and math.isfinite(gpus)
                                                        and gpus >= 0):
            raise ValueError(f"--gpus-per-trial must be 'auto' or a finite number >= 0, got {gpus}")
        wait = self.resource_wait_s
        if wait is not None and not (math.isfinite(wait) and wait >= 0):
            raise ValueError(f"--wait-for-resources must be a finite number of seconds >= 0, got {wait}")
        for flag, value, choices in (("--objective", self.objective, OBJECTIVES), ("--sampler", self.sampler, SAMPLERS),
                                     ("--scheduler", self.scheduler, SCHEDULERS),
                                     ("--study-storage", self.study_storage, STUDY_STORAGES),
                                     ("--tracking", self.tracking, TRACKINGS),
                                     ("--promote-from", self.promote_from, PROMOTE_FROM)):
            check_choice(flag, value, choices)
        floor = self.pick_min_natural
        if floor is not None and not (math.isfinite(floor) and 0 <= floor <= 1):
            raise ValueError(f"--pick-min-natural must be an accuracy in [0, 1], got {floor}")
        if floor is not None and not self.pareto:
            raise ValueError(f"--pick-min-natural picks from the Pareto front and goes with --objective pareto, "
                             f"got --objective {self.objective}")
        if not (self.fuse == "auto" or (isinstance(self.fuse, int) and self.fuse >= 1)):
            raise ValueError(f"--fuse must be auto or a number of trials >= 1 (1: off), got {self.fuse!r}")
        budget = self.time_budget
        if budget is not None and not (math.isfinite(budget) and budget >= 0):
            raise ValueError(f"--time-budget must be a finite number of minutes >= 0 (or off), got {budget}")
        self._check_screen()
        if self.trust_experiment and not self.resume:
            raise ValueError("--trust-experiment goes with --resume")
        if self.tracking_uri is not None and self.tracking != "mlflow":
            raise ValueError("--tracking-uri goes with --tracking mlflow")

    def _check_screen(self) -> None:
        """An explicit ``--screen`` and what goes with it (ValueError, one line); the preset's: :meth:`screened`."""
        if self.screen is None:
            return
        if self.screen == 0:
            if self.promote is not None or self.screen_epochs is not None:
                raise ValueError("--promote and --screen-epochs go with --screen N, not --screen off")
            return
        if self.screen < 2:
            raise ValueError(f"--screen needs at least 2 configurations to choose from, got {self.screen}")
        if self.num_samples is not None:
            raise ValueError("--num-samples goes without --screen: --screen N and --promote M set the trials")
        if self.pareto:
            raise ValueError("--screen ranks configurations by one objective: not with --objective pareto")

    def screened(self, preset_screen: int) -> int:
        """The configurations screened first (0: none): ``--screen``, else the preset's ``preset_screen`` unless
        ``--num-samples`` or a Pareto search asks for plain trials; ValueError (one line) for a bad ``--promote``."""
        if self.screen is not None:
            screen = self.screen
        else:
            screen = 0 if self.num_samples is not None or self.pareto else preset_screen
        if screen == 0 and (self.promote is not None or self.screen_epochs is not None or self.time_budget
                            or self.promote_from != "scratch"):
            raise ValueError("--promote, --promote-from, --screen-epochs and --time-budget go with a screened search "
                             "(--screen N)")
        if screen and self.promoted > screen:
            raise ValueError(f"--promote {self.promoted} is more than the {screen} configurations screened")
        return screen

    def budget_minutes(self, preset_budget: float | None) -> float | None:
        """A screened job's time budget in minutes: ``--time-budget``, else the preset's (None: none)."""
        budget = preset_budget if self.time_budget is None else self.time_budget
        return budget or None

    @property
    def promoted(self) -> int:
        """How many screened configurations train in full (``--promote``, default 2)."""
        return 2 if self.promote is None else self.promote

    @property
    def data_parallel(self) -> bool:
        """Whether trials may train over several workers (Ray Train), as far as the flags tell."""
        return (self.workers_per_trial or 1) > 1 or self.fixed_gpus_per_trial > 1

    @property
    def fixed_gpus_per_trial(self) -> float:
        """``--gpus-per-trial`` when it is a number; 0 for auto or unset (sized once Ray is up)."""
        return float(self.gpus_per_trial) if isinstance(self.gpus_per_trial, (int, float)) else 0.0

    @property
    def pareto(self) -> bool:
        """Whether the search looks for a front of robust and natural accuracy rather than one best trial."""
        return len(OBJECTIVES[self.objective]) > 1

    @property
    def folder(self) -> ExperimentFolder:
        """The experiment folder: storage_path/name (default name: SPACE-PRESET)."""
        return ExperimentFolder(self.storage_path, self.name or f"{self.space}-{self.preset}")

    def strategy(self, num_samples: int) -> Strategy:
        """How the search explores (``num_samples``: the trials, ``--num-samples`` or the preset's)."""
        return Strategy(objective=self.objective, sampler=self.sampler, scheduler=self.scheduler, seed=self.seed,
                        num_samples=num_samples, grace_period=self.grace_period, points=read_points(self.points),
                        space_points=self.space_points)


def read_points(path: str | None) -> tuple[Mapping[str, Any], ...]:
    """The configurations of a ``--points`` JSON file (a list of objects); ValueError (one line) otherwise."""
    if not path:
        return ()
    try:
        points = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read --points {path}: {exc}") from None
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ValueError(f"--points {path} must hold a JSON list of objects")
    return tuple(points)
