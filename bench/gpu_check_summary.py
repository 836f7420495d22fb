"""``python -m bench.gpu_check_summary DIR``: the one table of ``bench/gpu_check.sh``.

Reads what the script left in DIR: ``steps.tsv`` (one line per step: name, exit status, seconds,
command), the steps' logs, the ``trainables-*.json`` of ``bench.bench_trainables`` (complete or cut
short) and the search's log, and prints one table: each step's outcome and time, every measured
ratio with its range and the issue's target next to it, the AT epoch estimates and the search's
result. Exit status 0 whatever the figures: the table is the result.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.cli import OneLineParser, run_main

__all__ = ["Row", "main", "summary_rows"]

PROG = "python -m bench.gpu_check_summary"

@dataclass(frozen=True)
class Row:
    """One line of the table."""

    check: str
    result: str
    detail: str = ""
    target: str = ""


def _steps(folder: Path) -> list[Row]:
    rows = []
    path = folder / "steps.tsv"
    if not path.exists():
        return [Row("steps", "steps.tsv missing", str(path))]
    for line in path.read_text().splitlines():
        name, rc, seconds, *command = line.split("\t")  # command: the note, for a skipped step
        status = {"0": "ok", "124": "TIMEOUT", "137": "TIMEOUT (killed)"}.get(rc, f"FAILED (exit {rc})")
        if rc == "-":
            status = "skipped"
        rows.append(Row(f"step {name}", status, f"{seconds} s", " ".join(command)[:70] if rc == "-" else ""))
        log = folder / f"{name}.log"
        if name.startswith("pytest") and log.exists():
            rows.append(Row(f"  {name} outcome", _pytest_outcome(log.read_text())))
    return rows


def _pytest_outcome(text: str) -> str:
    """pytest's closing counts ('3 passed, 2 skipped in 4.1s'), or the last line."""
    lines = [ln.strip("= ") for ln in text.splitlines() if ln.strip()]
    found = [ln for ln in lines if re.search(r"\d+ (passed|failed|skipped|error|deselected)", ln)]
    return (found or lines or ["(empty log)"])[-1][:100]


def _target(label: str, ratio: float, gpu: bool) -> str:
    """The issue's target for a row, and whether the ratio meets it ('' for rows without one)."""
    if re.search(r"^train step (WRN|CNN).*lwta-(wrn|cnn)/(wrn|cnn)$", label):
        limit, text = (1.3, "<= 1.3 on GPU") if gpu else (1.4, "<= 1.4 on the 2-core CPU")
    elif re.search(r"^PGD-\d+ .*ours/torchattacks$", label):
        limit, text = 0.8, "<= 0.8"
    else:
        return ""
    return f"{text}: {'met' if ratio <= limit else 'NOT met'}"


def _bench(path: Path) -> list[Row]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return [Row(path.name, f"unreadable: {exc}")]
    prov, settings = data.get("provenance", {}), data.get("settings", {})
    gpu = str(prov.get("device", "")).startswith("cuda")
    where = f"{prov.get('device_name')} ({prov.get('device')}), {prov.get('shape')}"
    state = "complete" if data.get("complete") else "CUT SHORT (rows measured before the stop)"
    compiled = prov.get("lwta_compiled_after", prov.get("lwta_compiled"))
    rows = [Row(f"bench {path.stem}", state, where, f"LWTA compiled: {compiled}")]
    ratios: dict[str, float] = {}
    for c in data.get("comparisons", []):
        label = f"{c['name']} {c['ours']}/{c['reference']}"
        ratios[label] = c["ratio"]
        detail = f"[{c['ratio_min']:.2f}-{c['ratio_max']:.2f}] {1e3 * c['ours_median_s']:.1f} / " \
                 f"{1e3 * c['reference_median_s']:.1f} ms"
        rows.append(Row(f"  {label}", f"{c['ratio']:.2f}", detail, _target(label, c["ratio"], gpu)))
        if " AT step " in c["name"]:
            steps = settings.get("at_epoch_steps", 0)
            rows.append(Row(f"  {c['name']}: epoch estimate", f"{c['ours']} {c['ours_median_s'] * steps:.0f} s, "
                            f"{c['reference']} {c['reference_median_s'] * steps:.0f} s",
                            f"{steps} steps of batch {settings.get('batch')}"))
    wrn = next((k for k in ratios if k.startswith("train step WRN") and k.endswith("lwta-wrn/wrn")), None)
    compiled_row = next((k for k in ratios if k.endswith("compiled/eager fused")), None)
    if wrn and compiled_row:  # the LWTA/ReLU row ran compiled: the eager figure follows from the two
        eager = ratios[wrn] / ratios[compiled_row]
        rows.append(Row("  derived: eager fused lwta-wrn/wrn", f"{eager:.2f}", f"{wrn} / {compiled_row}",
                        _target(wrn, eager, gpu)))
    return rows


def _output(folder: Path, name: str) -> dict[str, Any] | list[Row]:
    """A step's JSON output: its data, or the rows to show instead (none when the step left no file)."""
    path = folder / f"{name}.json"
    if not path.exists():
        return []
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        return [Row(name, f"unreadable: {exc}")]


_PACKINGS = ("packing", "packing-wrn16")  # gpu_check.sh's bench_packing outputs: the quick shape, WRN-16-1


def _packing(folder: Path, name: str) -> list[Row]:
    data = _output(folder, name)
    if isinstance(data, list):
        return data
    device = str(data.get("provenance", {}).get("device", "device")).split(":")[0]
    shape = "" if data.get("shape", "quick") == "quick" else f" {data['shape']}"
    return [Row(f"packing: {r['trials']}{shape} trial(s) on one {device}", f"{r['trials_per_hour']:.1f} trials/h",
                f"{r['steps_per_s']:.1f} steps/s together, {r['speedup']:.2f}x one trial "
                f"({data.get('trial_steps')} steps a trial)") for r in data.get("rows", [])]


_FUSED_TARGETS = {("wrn16", 8): 4.0, ("paper", 8): 3.0}  # issue 21's, on a GPU: k = 8 fused against 8 trials
# packed on the GPU (judged against the trials apart, one after another, where no packing of the shape was measured)


def _fused(folder: Path, packed: dict[tuple[str, int], float]) -> list[Row]:
    """bench_fused's rows; each also against the same number of packed processes of its shape (bench_packing)."""
    data = _output(folder, "fused")
    if isinstance(data, list):
        return data
    gpu = str(data.get("provenance", {}).get("device", "")).startswith("cuda")
    rows = []
    for r in data.get("rows", []):
        fused, apart, shape, k = r["fused_trials_per_hour"], r["apart_trials_per_hour"], r["shape"], r["k"]
        detail = f"{apart:.1f}/h apart: {fused / apart:.2f}x" if apart else ""
        together = packed.get((shape, k))
        if together:
            detail += f"; {together:.1f}/h as {k} packed processes: {fused / together:.2f}x"
        limit = _FUSED_TARGETS.get((shape, k))
        target = ""
        if limit is not None and gpu and together:
            target = f">= {limit:g}x packed: {'met' if fused / together >= limit else 'NOT met'}"
        elif limit is not None and gpu and apart:
            target = f">= {limit:g}x apart: {'met' if fused / apart >= limit else 'NOT met'} (no packing measured)"
        rows.append(Row(f"fused: {shape} k={k}", f"{fused:.1f} trials/h", detail, target))
    return rows


def _packed(folder: Path) -> dict[tuple[str, int], float]:
    """bench_packing's trials per hour by shape and the number of trials sharing the device (every packing file)."""
    out: dict[tuple[str, int], float] = {}
    for name in _PACKINGS:
        data = _output(folder, name)
        if isinstance(data, list) or not data:
            continue
        shape = str(data.get("shape", "quick"))
        out |= {(shape, int(r["trials"])): float(r["trials_per_hour"]) for r in data.get("rows", [])}
    return out


def _search(folder: Path) -> list[Row]:
    log = folder / "search.log"
    if not log.exists():
        return []
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    best = next((ln for ln in reversed(lines) if ln.startswith("best trial") or "Pareto front" in ln), None)
    share = next((ln for ln in lines if ln.startswith("--gpus-per-trial auto")), None)
    fuse = next((ln for ln in lines if ln.startswith("--fuse auto")), None)
    rows = [Row("search: GPU share", share[:160])] if share else []
    rows += [Row("search: bundles", fuse[:160])] if fuse else []
    return [*rows, Row("search result", (best or (lines[-1] if lines else "(empty log)"))[:160])]


def summary_rows(folder: Path, quick: bool = False) -> list[Row]:
    """Every row of the table for the outputs in ``folder``; ``quick``: no target judged (tiny sizes)."""
    rows = _steps(folder)
    for path in sorted(folder.glob("trainables-*.json")):
        rows += _bench(path)
    for name in _PACKINGS:
        rows += _packing(folder, name)
    rows += _fused(folder, _packed(folder))
    rows += _search(folder)
    if quick:
        rows = [Row(r.check, r.result, r.detail, "(QUICK sizes: not judged)" if r.target.endswith("met") else r.target)
                for r in rows]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table of ``DIR``."""
    p = OneLineParser(prog=PROG, description="The summary table of bench/gpu_check.sh.")
    p.add_argument("folder", type=Path)
    p.add_argument("--quick", action="store_true", help="the run used tiny sizes: show the figures, judge no target")
    args = p.parse_args(argv)
    if not args.folder.is_dir():
        raise ValueError(f"not a folder: {args.folder}")
    from rich.console import Console
    from rich.table import Table

    device = (args.folder / "device.txt").read_text().strip() if (args.folder / "device.txt").exists() else "?"
    table = Table(title=f"robustune GPU check: {args.folder} ({device}){' QUICK' if args.quick else ''}")
    for col in ("check", "result", "detail", "target"):
        table.add_column(col)
    for row in summary_rows(args.folder, args.quick):
        table.add_row(row.check, row.result, row.detail, row.target)
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
