"""``python -m tuner.report``: see :mod:`tuner.report.cli`."""

import sys

from trainables.cli import run_main
from tuner.report.cli import PROG, main

sys.exit(run_main(main, prog=PROG))
