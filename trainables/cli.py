"""What every command-line entry point shares: one-line errors and warnings, and a non-zero exit.

Bad input (a ValueError with the offending value, missing data, an unreachable cluster) is one
line on stderr and exit status 2. Anything else, a CUDA out-of-memory or a bug, keeps its
traceback: it is not the user's input that is wrong.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

__all__ = ["USER_ERRORS", "OneLineParser", "run_main"]

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


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, *,
             prog: str, interrupted: str = "interrupted") -> int:
    """Call ``main(argv)``; user errors become one line on stderr and exit status 2, warnings one line each.

    ``interrupted``: the line Ctrl-C prints (exit status 130), saying what a command can continue from.
    """
    with warnings.catch_warnings():
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
