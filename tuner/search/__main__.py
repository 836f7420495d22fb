"""``python -m tuner.search``: see :mod:`tuner.search.cli`."""

import sys

from trainables.cli import run_main
from tuner.search.cli import PROG, main

sys.exit(run_main(main, prog=PROG, interrupted="interrupted; finished trials are kept, run again with --resume"))
