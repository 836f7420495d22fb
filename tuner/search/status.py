"""``python -m tuner.search --status NAME``: where a running or finished search stands, from its progress.json."""

from __future__ import annotations

import fcntl
import json
import sys
import time
from pathlib import Path
from typing import Any

from tuner.search.lock import LOCK_FILE
from tuner.search.progress import SearchProgress, TrialView, read_progress

__all__ = ["holder", "show_status"]


def holder(experiment: Path) -> dict[str, Any] | None:
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


def _model(data: dict[str, Any]) -> SearchProgress:
    fields = set(TrialView.__dataclass_fields__)
    model = SearchProgress(int(data.get("num_samples", 0)), int(data.get("max_epochs", 1)),
                           space=str(data.get("space", "")), phase=str(data.get("phase", "")),
                           started=float(data.get("updated", time.time())) - float(data.get("elapsed_s", 0.0)))
    for row in data.get("trials", []):
        view = TrialView(**{k: v for k, v in row.items() if k in fields})
        model.trials[view.trial_id] = view
    return model


def show_status(experiment: Path) -> int:
    """Print the experiment's phase, counts, ETA and trials; exit status 0."""
    from rich.console import Console

    from tuner.search.view import render

    data = read_progress(experiment / "progress.json")
    running = holder(experiment)
    model = _model(data)
    console = Console(width=None if sys.stdout.isatty() else 140)
    if running is None:  # nobody trains it now: its clock stopped at the last update
        model.started = time.time() - float(data.get("elapsed_s", 0.0))
    console.print(render(model))
    age = time.time() - float(data.get("updated", time.time()))
    who = (f"running: process {running.get('pid')} on {running.get('host')}" if running else "not running")
    page = experiment / "report.html"
    console.print(f"{experiment}: {who}; phase {data.get('phase')}; last update {age:.0f} s ago"
                  + (f"; results page {page}" if page.is_file() else ""), highlight=False)
    return 0
