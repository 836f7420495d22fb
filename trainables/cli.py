"""What every command-line entry point shares: one-line errors and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = ["USER_ERRORS", "OneLineParser", "run_main"]

# Errors that mean "bad input or missing data": reported as one line, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                                                PermissionError, ConnectionError, RuntimeError)


class OneLineParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are a single line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, *,
             prog: str) -> int:
    """Call ``main(argv)``; user errors become one line on stderr and exit status 2."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished work is kept, run again with --resume", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
