"""The results page of a search: one self-contained HTML file, its figures embedded.

It holds the leaderboard, the natural-vs-robust figure of every trial with the exported one marked,
the per-epoch curves of every trial, the export's per-attack table, and the command that
reproduces the search. The search writes it into the experiment folder and the export folder.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainables.atomic import atomic_write_text
from trainables.attacks import NORMS, Norm, ThreatModel
from trainables.evaluation import SuiteConfig
from tuner.experiment import ExperimentFolder
from tuner.trials.outcome import Outcome
from tuner.trials.pareto import ParetoPoint
from tuner.trials.record import TrialRecord

from . import figures

__all__ = ["PAGE_FILE", "results_page", "write_results_page"]

PAGE_FILE = ExperimentFolder.PAGE

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child,table.attacks td:nth-child(2){text-align:left}
code,pre{background:#f4f4f4;padding:.15em .3em}
img{max-width:100%;border:1px solid #eee}.note{color:#555;font-size:.9em}"""

# Once the page has loaded, it counts the figures the browser could draw and says whether the page is
# wider than the window (a headless test reads both).
_RENDER_CHECK = """<script>window.addEventListener("load", () => {
  const imgs = [...document.images];
  document.body.dataset.figuresDrawn = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.figures = imgs.length;
  document.body.dataset.pageWidth = document.documentElement.scrollWidth;
  document.body.dataset.windowWidth = window.innerWidth;
});</script>"""


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _png(draw: Any, *args: Any, **kwargs: Any) -> str:
    """A figure drawn by ``draw(..., path)``, as a data: URI."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        draw(*args, path, **kwargs)
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _leaderboard(records: Sequence[TrialRecord], params: Sequence[str]) -> str:
    def key(r: TrialRecord) -> tuple[bool, float]:
        return (math.isfinite(r.objective), r.objective if math.isfinite(r.objective) else -1.0)

    rows = []
    for rank, r in enumerate(sorted(records, key=key, reverse=True), start=1):
        report = r.report
        natural = report.natural
        outcome = r.outcome + (" (suspect)" if report.suspect else "")
        rows.append([rank, r.trial_id, outcome, _pct(r.objective), _pct(natural), len(r.history),
                     *(r.params.get(p, "-") if not isinstance(r.params.get(p), float) else f"{r.params[p]:.3g}"
                       for p in params)])
    return _table(["#", "trial", "outcome", "robust (objective)", "natural", "epochs", *params], rows)


def _balls(metrics: dict[str, Any]) -> list[tuple[Norm, float | None, list[tuple[str, str]]]]:
    """The export suite's runs by ball, as they cascaded: (norm, radius, [(outcome key, budget)]).

    A run that repeats its attack's first (a gradient-free attack's other way, or any second way of a
    deterministic model) is left out, as ``tuner.evaluate`` leaves it out.
    """
    try:
        suite, threat = SuiteConfig.from_dict(metrics["suite"]), ThreatModel(**metrics["threat"])
    except (KeyError, TypeError, ValueError):
        return []
    stochastic = bool(metrics.get("stochastic", True))
    passes = suite.passes(threat, stochastic)
    out = []
    for norm in NORMS:
        runs = [(key, attack.describe() + (f" ({way} gradients)" if stochastic and attack.uses_gradients else ""))
                for key, way, attack in passes if attack.norm == norm and not suite.repeats(way, attack, stochastic)]
        if runs:
            out.append((norm, threat.radius(norm), runs))
    return out


def _export_table(metrics: dict[str, Any]) -> str:
    """The export's accuracies per split, grouped by ball as the cascade ran: each ball's radius and worst case."""
    splits = [s for s in ("validation", "test") if isinstance(metrics.get(s), dict)]
    rows: list[list[Any]] = [["natural", "", *(_pct(metrics[s].get("natural_acc")) for s in splits)]]
    balls = _balls(metrics)
    if not balls:  # metrics without their suite: each outcome as it was recorded
        keys = list(dict.fromkeys(k for s in splits for k in metrics[s] if k.startswith("acc/")))
        rows += [[k.removeprefix("acc/"), "", *(_pct(metrics[s].get(k)) for s in splits)] for k in keys]
    for norm, radius, runs in balls:
        rows.append([f"{norm.title} ball", f"radius {radius:g}", *("" for _ in splits)])
        rows += [[key, budget, *(_pct(metrics[s].get(f"acc/{key}")) for s in splits)] for key, budget in runs]
        rows.append([f"worst case, {norm.title}", "per example, over the rows above",
                     *(_pct(metrics[s].get(f"robust_acc/{norm}", metrics[s].get("robust_acc"))) for s in splits)])
    if len(balls) != 1:
        rows.append(["worst case, every attack", "", *(_pct(metrics[s].get("robust_acc")) for s in splits)])
    examples = metrics.get("examples", {})
    table = _table(["accuracy", "budget", *(f"{s} ({examples.get(s, '?')} examples)" for s in splits)], rows)
    return table.replace("<table>", '<table class="attacks">', 1)


def results_page(records: Sequence[TrialRecord], *, title: str, command: str, params: Sequence[str] = (),
                 exported: str | None = None, export_metrics: dict[str, Any] | None = None,
                 export_path: Path | None = None, front: Sequence[str] | None = None) -> str:
    """The page as HTML text (figures embedded as PNG data); ``front``: a Pareto search's front, drawn as such."""
    finished = [r for r in records if r.outcome == Outcome.FINISHED and math.isfinite(r.objective)
                and math.isfinite(r.natural)]
    early = [r for r in records if r.outcome != Outcome.FINISHED and r.history]
    sections = [f"<h1>{html.escape(title)}</h1>",
                f"<p>Reproduce: <code>{html.escape(command)}</code></p>",
                "<h2>Leaderboard</h2>", _leaderboard(records, params),
                "<p class=note>Robust = per-example worst case over the objective suite on the validation split; "
                "a suspect trial (gradient masking) is never exported.</p>"]
    if finished:
        points = [ParetoPoint(r.trial_id, r.natural, r.objective) for r in finished]
        others = [ParetoPoint(r.trial_id, r.history[-1].get("natural_acc", 0.0), r.history[-1].get("robust_acc", 0.0))
                  for r in early]
        src = _png(figures.plot_pareto, points, marked=exported, others=others, front=front,
                   title="Natural vs robust accuracy of every trial (validation)")
        sections += ["<h2>Natural vs robust</h2>", f'<img alt="natural vs robust accuracy" src="{src}">']
    histories = {r.trial_id: r.history for r in records if r.history}
    if histories:
        src = _png(figures.plot_epoch_curves, histories, marked=exported)
        sections += ["<h2>Per-epoch curves</h2>", f'<img alt="per-epoch validation accuracy" src="{src}">']
    if export_metrics is not None:
        where = "" if export_path is None else f" in <code>{html.escape(str(export_path))}</code>"
        order = ("a row: the accuracy once this attack and those above it in its ball have run (a cascade per "
                 "ball)" if export_metrics.get("suite", {}).get("cascade") else "a row: the accuracy under this "
                 "attack alone")
        sections += [f"<h2>The exported model: trial {html.escape(str(exported))}{where}</h2>",
                     _export_table(export_metrics), f"<p class=note>Export suite, {order}; "
                     "<code>&lt;attack&gt;/sampled</code>: the same attack through the model's sampled gradients."
                     "</p>"]
    else:
        sections.append("<h2>No export</h2><p>No trial finished without failing or being flagged as suspect, or "
                        "the search was interrupted.</p>")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(sections)}{_RENDER_CHECK}</body></html>")


def write_results_page(folders: Sequence[Path], records: Sequence[TrialRecord], **page: Any) -> list[Path]:
    """Write ``report.html`` into each of ``folders``; the paths written."""
    text = results_page(records, **page)
    written = []
    for folder in map(Path, folders):
        folder.mkdir(parents=True, exist_ok=True)
        written.append(atomic_write_text(folder / PAGE_FILE, text))
    return written
