"""One search at a time per experiment: an exclusive lock held for the whole search.

The lock is ``fcntl.flock`` on a file in the experiment folder, so the kernel releases it when the
holding process ends, however it ends (a SIGKILL included): a lock left by a dead process is no lock.
The file also records who holds it, for the one-line refusal a second search gets, and is left
behind with a note when its holder died without cleaning up, which the next search reports.
Experiments on remote storage (s3://) are locked on this machine only, under the user's cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tuner.experiment import ExperimentFolder

__all__ = ["LOCK_FILE", "ExperimentLock", "experiment_lock", "lock_holder"]

LOCK_FILE = ExperimentFolder.LOCK


def _lock_path(experiment_path: str, remote: bool) -> Path:
    if not remote:
        return Path(experiment_path) / LOCK_FILE
    digest = hashlib.sha256(experiment_path.encode()).hexdigest()[:16]
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "robustune" / "locks" / digest


def _holder(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        data = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


class ExperimentLock:
    """The held lock of one experiment; :func:`experiment_lock` takes it."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path, self._handle = path, handle

    def release(self) -> None:
        """Mark the lock released and let it go (idempotent)."""
        if self._handle.closed:
            return
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.flush()
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


@contextlib.contextmanager
def experiment_lock(experiment_path: str, command: str, remote: bool = False) -> Iterator[ExperimentLock]:
    """Hold the experiment's lock for the block; FileExistsError (one line) when another search holds it."""
    path = _lock_path(experiment_path, remote)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole search
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(handle)
        handle.close()
        who = (f"process {holder.get('pid')} on {holder.get('host')} since {holder.get('started')} "
               f"({holder.get('command')})") if holder else "another process"
        raise FileExistsError(f"experiment {experiment_path} is in use by {who}: wait for it to end, or pick "
                              "another --name") from None
    previous = _holder(handle)
    if previous:  # the last holder ended without releasing (killed): the kernel released its flock
        warnings.warn(f"the previous search of {experiment_path} (process {previous.get('pid')} on "
                      f"{previous.get('host')}, started {previous.get('started')}) ended without releasing its "
                      "lock; it is taken over", stacklevel=3)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
    handle.flush()
    os.fsync(handle.fileno())
    lock = ExperimentLock(path, handle)
    try:
        yield lock
    finally:
        lock.release()


def lock_holder(experiment: Path) -> dict[str, Any] | None:
    """Who holds the experiment's lock (pid, host, command), or None when no search runs it."""
    path = experiment / LOCK_FILE
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(handle.read() or "{}") or {"pid": "?"}
            except json.JSONDecodeError:
                return {"pid": "?"}
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
