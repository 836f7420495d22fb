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
from tuner.experiment import ExperimentFolder
from tuner.trials.outcome import Outcome
from tuner.trials.pareto import ParetoPoint
from tuner.trials.record import TrialRecord

from . import figures

__all__ = ["PAGE_FILE", "results_page", "write_results_page"]

PAGE_FILE = ExperimentFolder.PAGE

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}code,pre{background:#f4f4f4;padding:.15em .3em}
img{max-width:100%;border:1px solid #eee}.note{color:#555;font-size:.9em}"""

# Once the page has loaded, it counts the figures the browser could draw (a headless test reads it).
_RENDER_CHECK = """<script>window.addEventListener("load", () => {
  const imgs = [...document.images];
  document.body.dataset.figuresDrawn = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.figures = imgs.length;
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


def _export_table(metrics: dict[str, Any]) -> str:
    splits = [s for s in ("validation", "test") if isinstance(metrics.get(s), dict)]
    keys: list[str] = []
    for split in splits:
        keys += [k for k in metrics[split] if k.startswith("acc/") and k not in keys]
    rows = [["natural", *(_pct(metrics[s].get("natural_acc")) for s in splits)]]
    rows += [[k.removeprefix("acc/"), *(_pct(metrics[s].get(k)) for s in splits)] for k in keys]
    rows.append(["worst case", *(_pct(metrics[s].get("robust_acc")) for s in splits)])
    examples = metrics.get("examples", {})
    return _table(["accuracy", *(f"{s} ({examples.get(s, '?')} examples)" for s in splits)], rows)


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
        order = ("in a cascade: each row is the robust accuracy after that attack"
                 if export_metrics.get("suite", {}).get("cascade") else "each attack on every correct example")
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
