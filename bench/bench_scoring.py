"""``python -m bench.bench_scoring``: the export's scoring in W processes of one thread against one process of W.

The search's export scores its trial with the export suite on the validation head and the test split,
alone on the machine, on the CPU. Ours is :func:`trainables.evaluation.evaluate_in_processes` (what
the export runs: the examples in W contiguous shards, a process of one thread each, start-up
included); the reference is :func:`~trainables.evaluation.evaluate_robustness` in this process with
W torch threads (what the export ran before). Both score the same model under the same suite on the
first ``--images`` test images, ABBA-interleaved (``bench.common.compare``); the ratio (ours /
reference) below 1 is the time saved. The model is a search's export (``--export DIR``): a robust
model, so that the cascade attacks most examples as the export's scoring does (a model that is not
robust loses most examples to the first attack, and the later ones have little to do).

    python -m bench.bench_scoring --export exports/lwta-quick --images 1000
    python -m bench.bench_scoring --export exports/lwta-quick --suite objective --images 1000
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from bench import common
from search_spaces import PRESETS
from trainables.cli import OneLineParser, run_main
from trainables.data import load_splits
from trainables.evaluation import evaluate_in_processes, evaluate_robustness, usable_cpus
from tuner.export import load_export, recorded_suite, recorded_threat

__all__ = ["build_parser", "main"]

PROG = "python -m bench.bench_scoring"


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    p = OneLineParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0].strip("`"))
    p.add_argument("--suite", choices=("export", "objective"), default="export",
                   help="the export's own suite, or the quick preset's objective suite")
    p.add_argument("--images", type=int, default=500, help="first N test images scored")
    p.add_argument("--workers", type=int, default=None, help="W (default: the CPUs this process may use)")
    p.add_argument("--export", type=Path, required=True, help="the export whose model is scored (exports/latest)")
    common.add_common_options(p, repeats=3, warmup=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Time both sides; print the table (and write ``--json``)."""
    args = build_parser().parse_args(argv)
    common.check_counts(args.repeats, args.warmup)
    workers = args.workers or usable_cpus()
    if args.images < 1 or workers < 1:
        raise ValueError("--images and --workers must be >= 1")
    export = load_export(args.export)
    model, threat = export.model, recorded_threat(export.metrics, export.spec)
    suite = recorded_suite(export.metrics, export.spec) if args.suite == "export" else PRESETS["quick"].objective_suite
    splits = load_splits(replace(export.spec.data, data_dir=None, download=False, test_limit=args.images))
    images, labels = splits.test.floats(), splits.test.labels
    device = torch.device("cpu")
    torch.set_num_threads(workers)

    def ours() -> None:
        evaluate_in_processes(model, images, labels, suite, threat, workers=workers)

    def reference() -> None:
        evaluate_robustness(model, images, labels, suite, threat, device=device)

    comparison = common.compare(f"{args.suite} suite, {len(images)} images", (f"{workers} processes x 1 thread", ours),
                                (f"1 process x {workers} threads", reference), device, args.repeats, args.warmup)
    header = common.provenance(device, suite=args.suite, images=len(images), workers=workers,
                               export=str(args.export))
    common.render("the export's scoring: processes against threads", header, [comparison])
    common.write_json(args.json, {"header": header, "comparison": comparison.as_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
