"""``python -m tuner.search --status NAME``: where a running or finished search stands, from its progress.json."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console

from tuner.cluster.lock import lock_holder
from tuner.console.progress import from_json, read_progress
from tuner.console.view import render
from tuner.experiment import ExperimentFolder

__all__ = ["show_status"]


def show_status(experiment: Path) -> int:
    """Print the experiment's phase, counts, ETA and trials; exit status 0."""
    data = read_progress(experiment / ExperimentFolder.PROGRESS)
    running = lock_holder(experiment)
    model = from_json(data)
    console = Console(width=None if sys.stdout.isatty() else 140)
    if running is None:  # nobody trains it now: its clock stopped at the last update
        model.started = time.time() - float(data.get("elapsed_s", 0.0))
    console.print(render(model))
    age = time.time() - float(data.get("updated", time.time()))
    who = (f"running: process {running.get('pid')} on {running.get('host')}" if running else "not running")
    page = experiment / ExperimentFolder.PAGE
    console.print(f"{experiment}: {who}; phase {data.get('phase')}; last update {age:.0f} s ago"
                  + (f"; results page {page}" if page.is_file() else ""), highlight=False)
    return 0
