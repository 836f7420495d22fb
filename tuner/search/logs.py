"""Keep Ray's, Tune's and Optuna's own output off the terminal and in the experiment's search.log."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna

__all__ = ["quiet_libraries", "route_ray_logs"]

_LOGGERS = ("optuna", "ray", "ray.tune", "ray.train")


@contextmanager
def quiet_libraries(log: Path | None, verbose: bool) -> Iterator[Path | None]:
    """Send the libraries' messages to ``log`` (None: remote storage, nowhere); ``verbose`` leaves them alone.

    The log's handler goes on the "optuna" logger now and on Ray's loggers once Ray is up
    (:func:`route_ray_logs`); it is taken off every logger and closed when the block ends. Yields the log.
    """
    if verbose:
        yield None
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's banner and tables; read when the run starts
    optuna.logging.disable_default_handler()
    if log is None:
        yield None
        return
    handler = _LogFile(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("optuna").addHandler(handler)
    try:
        yield log
    finally:
        for name in _LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        handler.close()


class _LogFile(logging.FileHandler):
    """search.log: a record it cannot write (the disk is full) is dropped, not printed with a traceback.

    The search itself notices a full disk and says so in one line (:mod:`tuner.cluster.disk`).
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Drop the record."""

    def close(self) -> None:
        """Close the file; a last flush that fails for want of space loses only log lines."""
        try:
            super().close()
        except OSError:
            pass


class _NotTune(logging.Filter):
    """Keeps Tune's controller records (a trial's traceback when it fails or its node dies) off the terminal.

    The search says the same in one line per trial event; the traceback stays in ``search.log``.
    So does Ray's "Unhandled error" of a trial's result nobody awaited any more (a stopped search's).
    Tune's other errors (saving the experiment's state, syncing it) still reach the terminal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "ray._private.worker" and str(record.msg).startswith("Unhandled error"):
            return False
        return record.name != "ray.tune.execution.tune_controller"


def route_ray_logs(log: Path | None) -> None:
    """Ray's Python loggers at INFO into ``log``, its terminal handlers at ERROR (after ``ray.init`` set them up)."""
    if log is None:
        return
    handler = next(h for h in logging.getLogger("optuna").handlers if isinstance(h, _LogFile)
                   and Path(h.baseFilename) == log.resolve())
    for name in _LOGGERS[1:]:
        logger = logging.getLogger(name)
        for existing in logger.handlers:
            if existing is handler:
                continue
            existing.setLevel(max(existing.level, logging.ERROR))
            if not any(isinstance(f, _NotTune) for f in existing.filters):
                existing.addFilter(_NotTune())
        logger.setLevel(logging.INFO)
        if handler not in logger.handlers:
            logger.addHandler(handler)
