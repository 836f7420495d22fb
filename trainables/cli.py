"""What every command-line entry point shares: one-line errors and warnings, and a non-zero exit.

Bad input (a ValueError with the offending value, missing data, an unreachable cluster) is one
line on stderr and exit status 2. Anything else, a CUDA out-of-memory or a bug, keeps its
traceback: it is not the user's input that is wrong. SIGTERM (what ``kill``, ``timeout``, a batch
scheduler or Kubernetes send to stop a job) stops a command as Ctrl-C does: its clean-up runs
(scoring processes, a local Ray), and the exit is the one line Ctrl-C prints (status 130), which
for a search says that ``--resume`` continues. Without it Python dies at once on SIGTERM, and
under Ray with a C stack dump and no such line.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn, TextIO

__all__ = ["USER_ERRORS", "OneLineParser", "keeping_sigterm", "run_main", "sigterm_as_ctrl_c"]

# Errors that mean "bad input or missing data": reported as one line, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                                                PermissionError, ConnectionError)


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, unless it is None or already said in its help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text or not text:
            return text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are a single line on stderr (exit status 2); ``--help`` shows the defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Defaults)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _one_line_warnings(prog: str) -> Callable[..., None]:
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = " ".join(str(message).split())
        print(f"{prog}: warning: {text} ({category.__name__})", file=file or sys.stderr)

    return show


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """SIGTERM's handler: KeyboardInterrupt, Ctrl-C's exception, whatever SIGINT's handler is.

    Not SIGINT's handler itself (in a search, Tune's: a last save of the experiment, then a stop that
    needs Ray): where the whole process group gets SIGTERM (``timeout``, systemd, a batch scheduler)
    Ray's own processes die with it, and that stop would wait a minute for them. Tune saves the
    experiment as trials report, so ``--resume`` continues from what the interrupt left.
    """
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """While inside, SIGTERM stops this process as Ctrl-C does; the handler before is put back after (main thread
    only: elsewhere Python cannot set handlers, and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)


@contextmanager
def keeping_sigterm() -> Iterator[None]:
    """Whatever SIGTERM's handler is on entry, it is again on exit: ``ray.init`` installs its own, which dies at
    once (with a C stack dump) where this process would stop as Ctrl-C does (:func:`sigterm_as_ctrl_c`)."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, *,
             prog: str, interrupted: str = "interrupted") -> int:
    """Call ``main(argv)``; user errors become one line on stderr and exit status 2, warnings one line each.

    ``interrupted``: the line Ctrl-C or SIGTERM prints (exit status 130), saying what a command can continue from.
    """
    with warnings.catch_warnings(), sigterm_as_ctrl_c():
        warnings.showwarning = _one_line_warnings(prog)
        try:
            return main(argv)
        except KeyboardInterrupt:
            print(f"{prog}: {interrupted}", file=sys.stderr)
            return 130
        except USER_ERRORS as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            print(f"{prog}: error: {message}", file=sys.stderr)
            return 2
