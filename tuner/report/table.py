"""The report's table: Markdown (with provenance and threat model), Parquet, and a rich table for the terminal.

Columns are natural accuracy, one per attack of the suite, the worst case and, for smoothing
models, certified accuracy at each radius: loops over the suite, so a new attack is a new column.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from trainables.atomic import atomic_write, atomic_write_text
from tuner.provenance import collect_provenance

from .config import ReportConfig
from .scoring import ReportRow, check_rows, max_certified_radius

__all__ = ["TABLE_MD", "TABLE_PARQUET", "column_titles", "print_table", "table_markdown", "write_table"]

TABLE_MD = "table.md"
TABLE_PARQUET = "table.parquet"


def column_titles(cfg: ReportConfig) -> dict[str, str]:
    """Accuracy column key -> title: natural, each attack of the suite, worst case."""
    after = " (after)" if cfg.suite.cascade else ""
    return {"natural": "natural", **{key: key + after for key in cfg.suite.outcome_keys()}, "worst": "worst case"}


def _cert_key(radius: float) -> str:
    return f"certified@{radius:g}"


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _certified_cells(row: ReportRow, radii: Sequence[float]) -> list[str]:
    return [_cell(row.certified.get(r)) if row.certified else "–" for r in radii]


def _provenance_lines(command: str, created: str, prov: dict[str, Any]) -> list[str]:
    gpu = prov.get("gpu") or "none (CPU only)"
    return [
        f"- Command: `{command}`",
        f"- Date: {created}",
        f"- Hardware: {prov.get('cpu')} ({prov.get('cpu_count')} logical CPUs), GPU: {gpu}",
        f"- Software: torch {prov.get('torch')}, Python {prov.get('python')}, git revision "
        f"`{prov.get('git_revision')}`",
    ]


def _notes(rows: Sequence[ReportRow], cfg: ReportConfig) -> list[str]:
    suite = cfg.suite
    attacks = "; ".join(f"{name}: {attack.describe()}" for name, attack in suite.bound(cfg.threat, False).items())
    order = ("in a cascade, each attack on the examples still robust (its column is the accuracy after it)"
             if suite.cascade else "each attack on every correctly classified example")
    notes = [
        f"- Test examples per model: {', '.join(map(str, sorted({row.examples for row in rows})))}; accuracies in "
        "percent.",
        f"- Threat model and attacks ({order}): {attacks}; stochastic models attacked with EOT "
        f"{suite.eot_samples} through {' and '.join(suite.gradients)} gradients (`<attack>/<way>`: the same "
        f"attack through every way after the first), predictions averaged over {suite.predict_samples} draws.",
        "- Worst case = correct on clean inputs and under every attack.",
    ]
    sigmas = sorted({row.sigma for row in rows if row.sigma > 0})
    if sigmas:
        reach = ", ".join(f"sigma {s:g}: {max_certified_radius(s, cfg.certify_n, cfg.certify_alpha):.3f}"
                          for s in sigmas)
        limit = "all evaluated" if cfg.certify_limit is None else f"the first {cfg.certify_limit}"
        notes.append(f"- Certified accuracy (Cohen et al. CERTIFY, n0 {cfg.certify_n0}, n {cfg.certify_n}, "
                     f"alpha {cfg.certify_alpha:g}) on {limit} test examples, smoothing models only; the largest "
                     f"radius this budget can certify is {reach}.")
    return notes


def table_markdown(rows: Sequence[ReportRow], cfg: ReportConfig, *, command: str, created: str,
                   provenance: dict[str, Any]) -> str:
    """The table as Markdown, with the command, hardware, date, threat model and certification budget."""
    titles = column_titles(cfg)
    header = ["model", "architecture", "sigma", *titles.values(), *(f"certified r={r:g}" for r in cfg.radii),
              "seconds"]
    lines = ["| " + " | ".join(header) + " |", "| --- | --- |" + " ---: |" * (len(header) - 2)]
    for row in rows:
        accuracies = row.accuracies()
        cells = [row.name, f"`{row.model}`", f"{row.sigma:g}" if row.sigma else "–",
                 *(_cell(accuracies.get(key)) for key in titles), *_certified_cells(row, cfg.radii),
                 f"{row.seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(["# Robustness table", "", *_provenance_lines(command, created, provenance), "",
                      "\n".join(lines), "", *_notes(rows, cfg), ""])


def write_table(rows: Sequence[ReportRow], cfg: ReportConfig, out: Path, *, command: str,
                created: str | None = None) -> tuple[Path, Path]:
    """Check the rows, then write ``table.md`` and ``table.parquet`` into ``out`` (each atomically)."""
    check_rows(rows)
    created = created or datetime.now(UTC).isoformat(timespec="seconds")
    prov = collect_provenance()
    out.mkdir(parents=True, exist_ok=True)
    md = atomic_write_text(out / TABLE_MD, table_markdown(rows, cfg, command=command, created=created,
                                                           provenance=prov))
    columns: dict[str, pa.Array] = {
        "name": pa.array([r.name for r in rows]), "source": pa.array([r.source for r in rows]),
        "model": pa.array([r.model for r in rows]), "sigma": pa.array([r.sigma for r in rows]),
        "examples": pa.array([r.examples for r in rows]),
    }
    for key in column_titles(cfg):
        columns[key] = pa.array([r.accuracies().get(key) for r in rows], type=pa.float64())
    for radius in cfg.radii:
        columns[_cert_key(radius)] = pa.array([r.certified.get(radius) if r.certified else None for r in rows],
                                              type=pa.float64())
    columns["seconds"] = pa.array([r.seconds for r in rows])
    l2 = cfg.threat.l2_eps
    meta = {"command": command, "created": created, "cpu": str(prov.get("cpu")), "gpu": str(prov.get("gpu")),
            "torch": str(prov.get("torch")), "eps": f"{cfg.threat.eps:g}",
            "l2_eps": "none" if l2 is None else f"{l2:g}", "cascade": str(cfg.suite.cascade)}
    table = pa.table(columns).replace_schema_metadata({k: v.encode() for k, v in meta.items()})
    parquet = atomic_write(out / TABLE_PARQUET, lambda f: pq.write_table(table, f))
    return md, parquet


def print_table(rows: Sequence[ReportRow], cfg: ReportConfig) -> None:
    """The table on the terminal (full width in logs: no truncated cells)."""
    from rich.console import Console
    from rich.table import Table

    threat = cfg.threat
    l2 = "no" if threat.l2_eps is None else f"{threat.l2_eps:g}"
    table = Table(title=f"test accuracy (%), eps {threat.eps:g} L-inf / {l2} L2")
    table.add_column("model")
    titles = column_titles(cfg)
    for title in titles.values():
        table.add_column(title, justify="right")
    for r in cfg.radii:
        table.add_column(f"cert r={r:g}", justify="right")
    for row in rows:
        accuracies = row.accuracies()
        table.add_row(row.name, *(_cell(accuracies.get(key)) for key in titles), *_certified_cells(row, cfg.radii))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
