"""``python -m tuner.search --status NAME``: where a running or finished search stands, from its progress.json."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console

from tuner.cluster.lock import lock_holder
from tuner.console.progress import from_json, read_progress
from tuner.console.view import plain, render
from tuner.experiment import ExperimentFolder

__all__ = ["show_status"]


def show_status(experiment: Path) -> int:
    """Print the experiment's phase, counts, ETA and trials; exit status 0.

    A search that holds the experiment but has written no progress yet (loading data, starting Ray)
    is shown as starting.
    """
    path = experiment / ExperimentFolder.PROGRESS
    running = lock_holder(experiment) if experiment.is_dir() else None
    if running is not None and not path.is_file():
        Console().print(plain(f"{experiment}: starting (process {running.get('pid')} on {running.get('host')}); "
                              "no trial has started yet"), highlight=False, markup=False, soft_wrap=True)
        return 0
    data = read_progress(path)
    try:
        model = from_json(data)
        age = time.time() - float(data.get("updated", time.time()))
        elapsed = float(data.get("elapsed_s", 0.0))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path} is not a readable robustune progress file ({type(exc).__name__}: {exc})") from None
    console = Console(width=None if sys.stdout.isatty() else 140)
    if running is None:  # nobody trains it now: its clock stopped at the last update
        model.started = time.time() - elapsed
    console.print(render(model))
    who = (f"running: process {running.get('pid')} on {running.get('host')}" if running else "not running")
    page = experiment / ExperimentFolder.PAGE
    console.print(plain(f"{experiment}: {who}; phase {data.get('phase')}; last update {age:.0f} s ago"
                        + (f"; results page {page}" if page.is_file() else "")), highlight=False, markup=False)
    return 0
