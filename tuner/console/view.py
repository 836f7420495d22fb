"""How a search shows itself: a live rich view, or one line per event (``--no-live``), and its phases.

The live view holds an overall bar over trial-epochs with the elapsed time and an ETA, and a row per
running or recently ended trial: its id, its main parameters, a bar over its epochs, its latest
validation accuracies and its state. Phases outside training (starting Ray, scoring the export,
writing files) are named as they happen, with a bar where the work has a known size.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from tuner.console.progress import SearchProgress, TrialView, write_phase
from tuner.trials.outcome import Outcome

__all__ = ["Phases", "TrialEvent", "TrialEventView", "ViewKind", "make_view", "plain", "render"]


class ViewKind(StrEnum):
    """How a search shows its trials on the terminal."""

    LIVE = "live"  # a rich view redrawn twice a second
    LINES = "lines"  # one line per event (--no-live: logs, CI)
    NONE = "none"


class TrialEvent(StrEnum):
    """What just happened to a trial."""

    STARTED = "started"
    EPOCH = "epoch"  # an epoch ended (the last one with the objective)
    RETRYING = "retrying"  # it crashed or lost its node, and starts again from its last checkpoint
    ENDED = "ended"  # finished, pruned, failed (its view's outcome says which)

RECENT = 6  # ended trials kept in the live view


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def plain(value: object) -> str:
    """``value`` as printable text: control characters (terminal escape sequences) dropped.

    Shown through ``rich.text.Text`` it is never read as markup either: a progress.json found on
    shared storage is data, not instructions to the terminal.
    """
    return "".join(ch for ch in str(value) if ch.isprintable())


def _params(view: TrialView) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in view.params.items())


class TrialEventView(Protocol):
    """Where the search's trial events go."""

    def event(self, kind: TrialEvent, view: TrialView) -> None:
        """Something happened to the trial ``view`` shows."""

    def close(self) -> None:
        """Training is over."""


def render(model: SearchProgress) -> Any:
    """The live view of ``model``: an overall bar and a table of running and recent trials."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    done, expected = model.epochs_done(), max(model.epochs_expected(), 1)
    counts = model.counts()
    best = model.best()
    head = Table.grid(padding=(0, 2))
    head.add_row(Text(plain(f"robustune {model.space}: {model.phase}"), style="bold"),
                 Text(f"elapsed {_duration(time.time() - model.started)}  ETA {_duration(model.eta_s())}"))
    head.add_row(ProgressBar(total=expected, completed=done, width=40), Text(f"{done}/{expected} trial-epochs"))
    shown = (Outcome.RUNNING, Outcome.FINISHED, Outcome.PRUNED, Outcome.FAILED, Outcome.PENDING)
    summary = ", ".join(f"{counts.get(k, 0)} {k}" for k in shown if counts.get(k))
    best_text = "" if best is None else f"; best {_pct(best.objective)} ({best.trial_id})"
    head.add_row(Text(plain(f"{summary}{best_text}")), Text(""))
    table = Table(show_header=True, header_style="bold", expand=False)
    for column, justify in (("trial", "left"), ("parameters", "left"), ("epochs", "left"), ("natural", "right"),
                            ("robust", "right"), ("state", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    running = [t for t in model.trials.values() if t.outcome == Outcome.RUNNING]
    ended = sorted((t for t in model.trials.values() if t.outcome.ended), key=lambda t: t.ended_at or 0.0)
    for view in running + ended[-RECENT:]:
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=view.epochs(model.max_epochs), completed=view.epoch, width=12),
                    Text(f"{view.epoch}/{view.epochs(model.max_epochs)}"))
        shown = view.objective if view.outcome == Outcome.FINISHED else view.robust
        table.add_row(Text(plain(view.trial_id)), Text(plain(_params(view))), bar, _pct(view.natural), _pct(shown),
                      Text(plain(view.state(model.max_epochs))))
    return Group(head, table)


class _LiveView:
    """The rich live view, redrawn twice a second on stderr."""

    def __init__(self, model: SearchProgress) -> None:
        from rich.console import Console
        from rich.live import Live

        self.model = model
        self.live = Live(get_renderable=lambda: render(self.model), console=Console(stderr=True),
                         refresh_per_second=2, transient=False)
        self.live.start()

    def event(self, kind: TrialEvent, view: TrialView) -> None:
        self.live.refresh()

    def close(self) -> None:
        self.live.stop()


class _LineView:
    """One line per event on stderr, for logs and CI."""

    def __init__(self, model: SearchProgress, stream: Any = None) -> None:
        self.model, self.stream = model, stream or sys.stderr

    def event(self, kind: TrialEvent, view: TrialView) -> None:
        m = self.model
        if kind == TrialEvent.STARTED:
            what = f"started: {_params(view)}"
        elif kind == TrialEvent.EPOCH:
            what = (f"epoch {view.epoch}/{view.epochs(m.max_epochs)}: natural {_pct(view.natural)} "
                    f"robust {_pct(view.robust)}")
        elif kind == TrialEvent.RETRYING:
            what = f"stopped ({view.reason or 'its worker was lost'}); retrying from its last checkpoint"
        else:
            what = view.state(m.max_epochs)
        if kind != TrialEvent.STARTED and view.objective is not None:
            what += f", objective {_pct(view.objective)}"
        print(f"[{_duration(m.clock())}] trial {view.trial_id} {what} "
              f"({m.epochs_done()}/{m.epochs_expected()} trial-epochs, ETA {_duration(m.eta_s())})",
              file=self.stream, flush=True)

    def close(self) -> None:
        pass


class _NoView:
    def event(self, kind: TrialEvent, view: TrialView) -> None:
        pass

    def close(self) -> None:
        pass


def make_view(kind: ViewKind, model: SearchProgress) -> TrialEventView:
    """The view of ``kind`` drawing ``model``."""
    if kind == ViewKind.LIVE:
        return _LiveView(model)
    if kind == ViewKind.LINES:
        return _LineView(model)
    return _NoView()


class Phases:
    """Names each phase of a search as it happens, with its duration; a bar where its size is known."""

    def __init__(self, live: bool, progress_file: Path | None = None, stream: Any = None) -> None:
        from rich.console import Console

        self.live = live
        self.progress_file = progress_file
        self.console = Console(file=stream or sys.stderr, width=None if (stream or sys.stderr).isatty() else 140)
        self.started = time.time()  # the run's one clock: every stamped line counts from here (trials' too)

    def say(self, text: str) -> None:
        """One line, as is (never wrapped: a path or a setting stays whole for whoever greps the log)."""
        self.console.print(text, highlight=False, soft_wrap=True)

    def clock(self) -> str:
        """``[m:ss]`` since the run started, now."""
        return f"[{_duration(time.time() - self.started)}]"

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Announce ``name``; on the way out, its duration (or that it failed)."""
        write_phase(self.progress_file, name)
        began = time.time()
        if self.live:
            with self.console.status(f"{name}...", spinner="dots"):
                yield
        else:
            self.say(f"{self.clock()} {name}...")
            yield
        self.say(f"{self.clock()} {name}: done in {time.time() - began:.1f} s")

    @contextmanager
    def counted(self, name: str, eta: Callable[[str], float | None] | None = None
                ) -> Iterator[Callable[[str, int, int], None]]:
        """A phase whose work reports (label, done, total): a bar when live, a line per label otherwise.

        ``eta(label)``, when given, is the whole run's time left once ``label`` runs: shown beside the bar,
        and on each line.
        """
        write_phase(self.progress_file, name)
        began = time.time()

        def left(label: str) -> str:
            seconds = None if eta is None else eta(label)
            return "" if seconds is None else f"ETA {_duration(seconds)}"

        if not self.live:
            seen: set[str] = set()

            def line(label: str, done: int, total: int) -> None:
                if label not in seen:
                    seen.add(label)
                    when = left(label)
                    self.say(f"{self.clock()} {name}: {label}" + (f" ({when})" if when else ""))

            self.say(f"{self.clock()} {name}...")
            yield line
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[label]}"), TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                          console=self.console, transient=True) as bar:
                task = bar.add_task(name, total=None, label="", eta="")

                def update(label: str, done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total, label=label, eta=left(label))

                yield update
        self.say(f"{self.clock()} {name}: done in {time.time() - began:.1f} s")
