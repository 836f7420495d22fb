"""What every benchmark shares: device choice, interleaved timing, provenance, a rich table and JSON.

A benchmark compares *ours* against a *reference* measured in the same process, alternating the two
sides (ABBA order) so that load from other processes on a shared machine hits both alike; the figure
quoted is the median of the per-repeat paired ratios.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from trainables.atomic import atomic_write_text
from trainables.cli import OneLineParser
from tuner.provenance import measurement_provenance

__all__ = ["Comparison", "add_common_options", "compare", "provenance", "render", "resolve_bench_device",
           "sync", "write_json"]


def add_common_options(parser: OneLineParser, *, repeats: int, warmup: int,
                       threads_help: str = "torch intra-op threads (default: torch's)") -> None:
    """``--device``, ``--repeats``, ``--warmup``, ``--threads``, ``--seed`` and ``--json``."""
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cuda when torch sees it, else cpu")
    parser.add_argument("--repeats", type=int, default=repeats, help="measured repeats per side (median)")
    parser.add_argument("--warmup", type=int, default=warmup, help="unmeasured calls per side first")
    parser.add_argument("--threads", type=int, default=None, help=threads_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures here")


def check_counts(repeats: int, warmup: int) -> None:
    """ValueError unless repeats >= 1 and warmup >= 0."""
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats=}")
    if warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {warmup=}")


def resolve_bench_device(name: str | None) -> torch.device:
    """``name`` ("cpu" / "cuda"), else CUDA when present, else CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer around it measures the work and not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, synchronised on GPU."""
    sync(device)
    began = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - began


@dataclass(frozen=True)
class Comparison:
    """One ours-vs-reference figure: per-repeat seconds of each side and their paired ratios."""

    name: str
    ours: str
    reference: str
    ours_s: tuple[float, ...]
    reference_s: tuple[float, ...]
    note: str = ""

    @property
    def ratios(self) -> tuple[float, ...]:
        """ours / reference, per repeat (the two sides of a pair ran back to back)."""
        return tuple(a / b for a, b in zip(self.ours_s, self.reference_s, strict=True))

    @property
    def ratio(self) -> float:
        """Median of the paired ratios: the figure a benchmark quotes."""
        return statistics.median(self.ratios)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe figures: medians, the ratio, its range and every raw time."""
        out = asdict(self)
        out |= {"ours_median_s": statistics.median(self.ours_s),
                "reference_median_s": statistics.median(self.reference_s),
                "ratio": self.ratio, "ratio_min": min(self.ratios), "ratio_max": max(self.ratios)}
        return out


def compare(name: str, ours: tuple[str, Callable[[], Any]], reference: tuple[str, Callable[[], Any]],
            device: torch.device, repeats: int, warmup: int, note: str = "") -> Comparison:
    """Time ``ours`` and ``reference`` interleaved: warm-up calls, then ABBA-ordered measured pairs."""
    (ours_name, ours_fn), (ref_name, ref_fn) = ours, reference
    for _ in range(warmup):
        ours_fn()
        ref_fn()
    sync(device)
    ours_s: list[float] = []
    ref_s: list[float] = []
    for i in range(repeats):
        if i % 2 == 0:
            ours_s.append(timed(ours_fn, device))
            ref_s.append(timed(ref_fn, device))
        else:
            ref_s.append(timed(ref_fn, device))
            ours_s.append(timed(ours_fn, device))
    return Comparison(name, ours_name, ref_name, tuple(ours_s), tuple(ref_s), note)


def provenance(device: torch.device, **extra: Any) -> dict[str, Any]:
    """Git revision, versions, host, CPU/GPU, threads, machine load and a UTC timestamp."""
    return measurement_provenance(device, **extra)



def render(title: str, header: dict[str, Any], comparisons: Sequence[Comparison],
           rows: Sequence[tuple[str, ...]] = (), columns: Sequence[str] = ()) -> None:
    """Print the provenance header and a table (comparisons by default, else ``columns`` x ``rows``)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(f"[bold]{title}[/]")
    for key, value in header.items():
        console.print(f"  {key}: {value}", highlight=False)
    if comparisons:
        table = Table(show_lines=False)
        for col in ("benchmark", "ours", "median", "reference", "median", "ratio", "range"):
            table.add_column(col, justify="right" if col in ("median", "ratio", "range") else "left")
        for c in comparisons:
            d = c.as_dict()
            table.add_row(c.name, c.ours, _ms(d["ours_median_s"]), c.reference, _ms(d["reference_median_s"]),
                          f"{c.ratio:.2f}", f"{d['ratio_min']:.2f}-{d['ratio_max']:.2f}")
        console.print(table)
        for c in comparisons:
            if c.note:
                console.print(f"  {c.name}: {c.note}", highlight=False)
    if rows:
        table = Table()
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        console.print(table)


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms"


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON to ``path`` (nothing when None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
