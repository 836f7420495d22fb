"""An experiment folder: where one search keeps everything, and the one place the names of its files are spelled.

``runs/<name>/`` holds Ray Tune's experiment (its state and every trial's checkpoints) and, beside
it, what robustune adds: the Optuna study, the live progress, the results table, the log, the
results page, the lock and the integrity record. On remote storage (``s3://``) Tune keeps its part
there and the local files have no folder (their properties are None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

__all__ = ["ExperimentFolder", "check_name", "is_uri"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a folder name on every filesystem and in s3:// keys


def check_name(name: str, flag: str = "--name") -> str:
    """``name`` when it is a plain experiment name; ValueError (one line) for a path, ``..`` or an odd character."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{flag} must be a plain name: letters, digits, '.', '_' and '-', starting with a letter "
                         f"or digit, at most 100 characters, no '..' (it names folders under --storage-path and "
                         f"--export-dir), got {name!r}")
    return name


def is_uri(path: str) -> bool:
    """True for pyarrow filesystem URIs such as s3://bucket/runs (not local paths)."""
    return "://" in path and not path.startswith("file://")


@dataclass(frozen=True)
class ExperimentFolder:
    """``storage_path/name`` and its files."""

    storage_path: str
    name: str

    PROGRESS: ClassVar[str] = "progress.json"  # the live counts `--status` reads
    RESULTS: ClassVar[str] = "results.parquet"  # every trial, written when the search ends
    LOG: ClassVar[str] = "search.log"  # Ray's, Tune's and Optuna's own messages
    PAGE: ClassVar[str] = "report.html"  # the results page (the export folder holds one too)
    LOCK: ClassVar[str] = ".robustune.lock"  # held by the one search that writes the folder
    INTEGRITY: ClassVar[str] = "integrity.json"  # HMAC of the files `--resume` unpickles
    SQLITE: ClassVar[str] = "optuna.db"  # the study on a local disk
    JOURNAL: ClassVar[str] = "optuna-journal.log"  # the study on a network filesystem
    TRAIN_RUNS: ClassVar[str] = "train-runs"  # Ray Train's runs of data-parallel trials
    FUSION: ClassVar[str] = "fusion.json"  # how many trials train as one bundle (--fuse), for --resume

    @property
    def remote(self) -> bool:
        """Whether the experiment lives on remote storage (s3://, gs://)."""
        return is_uri(self.storage_path)

    @property
    def path(self) -> str:
        """``storage_path/name``, absolute for local storage."""
        base = self.storage_path if self.remote else str(Path(self.storage_path).resolve())
        return f"{base.rstrip('/')}/{self.name}"

    @property
    def parent(self) -> str:
        """The folder that holds the experiment (Tune's ``storage_path``)."""
        return self.path.rsplit("/", 1)[0]

    def local(self, name: str) -> Path | None:
        """The local path of the experiment's file ``name``; None on remote storage."""
        return None if self.remote else Path(self.path) / name

    progress = property(lambda self: self.local(self.PROGRESS), doc="progress.json (None on remote storage)")
    results = property(lambda self: self.local(self.RESULTS), doc="results.parquet (None on remote storage)")
    log = property(lambda self: self.local(self.LOG), doc="search.log (None on remote storage)")
    page = property(lambda self: self.local(self.PAGE), doc="report.html (None on remote storage)")
    fusion = property(lambda self: self.local(self.FUSION), doc="fusion.json (None on remote storage)")

    @property
    def train_runs(self) -> str:
        """Where Ray Train keeps data-parallel trials' runs (a URI on remote storage)."""
        return f"{self.path}/{self.TRAIN_RUNS}"
