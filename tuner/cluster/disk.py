"""A disk filling up under a running search: stop it in time, keep what it did, and say so in one line.

:class:`DiskWatch` polls the free space of the experiment's local disk while Tune runs; when it
falls below :data:`LOW_FREE_BYTES` it stops the run as Ctrl-C would (Tune's SIGINT handler saves
the experiment's state and stops its trials, which ``--resume`` continues). :func:`disk_full_in`
recognises a write that failed for want of space anyway (the disk filled faster than a poll,
inside Tune, Optuna's SQLite or pyarrow), so the search can end with :class:`DiskFull`, one line
naming the folder, instead of a wall of tracebacks.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

__all__ = ["LOW_FREE_BYTES", "DiskFull", "DiskWatch", "disk_full_in", "free_bytes", "nearest_existing"]

LOW_FREE_BYTES = 64 << 20  # below this a search stops: room for Tune's state, the study and the trials' last writes

_FULL_WORDS = ("No space left on device", "[Errno 28]", "database or disk is full", "Disk quota exceeded")


class DiskFull(ValueError):
    """The disk of a search's experiment filled up: the search stopped, its work kept for ``--resume``."""

    def __init__(self, folder: str | Path, free: int) -> None:
        super().__init__(f"the disk holding {folder} is full ({free >> 20} MiB free): the search stopped and kept "
                         f"its finished trials and checkpoints; free some space, then run again with --resume")


def disk_full_in(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or during, is a write that failed for want of space.

    Tune re-raises its trials' and its own errors as text (``TuneError``), so their words count too.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(word in str(current) for word in _FULL_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False


def nearest_existing(path: str | Path) -> Path:
    """``path`` made absolute, or its nearest parent that exists (where a folder to be made will live)."""
    here = Path(path).absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    return here


def free_bytes(folder: str | Path) -> int:
    """Free bytes on the disk of ``folder`` (of its nearest existing parent)."""
    return shutil.disk_usage(nearest_existing(folder)).free


class DiskWatch:
    """While the block runs, stop the search (SIGINT to this process, once) when ``folder``'s disk runs low.

    ``free`` reads the free bytes (a test passes its own); ``every`` is the poll interval in seconds.
    After the block, :attr:`tripped` holds the free bytes it saw when it stopped the search, else None.
    """

    def __init__(self, folder: str | Path, low: int = LOW_FREE_BYTES, every: float = 0.5,
                 free: Callable[[], int] | None = None) -> None:
        self.folder, self.low, self.every = Path(folder), low, every
        self._free = free or (lambda: free_bytes(self.folder))
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="robustune-disk-watch", daemon=True)
        self.tripped: int | None = None

    def _watch(self) -> None:
        while not self._done.wait(self.every):
            try:
                free = self._free()
            except OSError:
                continue
            if free < self.low:
                self.tripped = free
                os.kill(os.getpid(), signal.SIGINT)  # Tune's handler: save the state, stop the trials
                return

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join()

    def full(self) -> DiskFull:
        """The one-line error of a search this watch stopped, or whose writes failed for want of space."""
        return DiskFull(self.folder, self._safe_free() if self.tripped is None else self.tripped)

    def _safe_free(self) -> int:
        try:
            return self._free()
        except OSError:
            return 0
