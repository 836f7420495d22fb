"""``python -m bench.bench_scoring``: the export's scoring in W processes of one thread against one process of W.

The search's export scores its trial with the export suite on the validation head and the test split,
alone on the machine, on the CPU. Ours is :func:`trainables.evaluation.evaluate_in_processes` (what
the export runs: the examples in W contiguous shards, a process of one thread each, start-up
included); the reference is :func:`~trainables.evaluation.evaluate_robustness` in this process with
W torch threads (what the export ran before). Both score the same model under the same suite on the
first ``--images`` test images, ABBA-interleaved (``bench.common.compare``); the ratio (ours /
reference) below 1 is the time saved. The model is ``--export DIR`` (a search's export: a robust
model, so the cascade attacks most examples, as the export's scoring does), else the ``lwta``
space's first starting point at the quick preset after ``--train-steps`` clean steps (not robust:
the first attack breaks most examples and the later ones have little to do).

    python -m bench.bench_scoring --export exports/lwta-quick --images 1000   # what a search's export costs
    python -m bench.bench_scoring --suite objective --images 1000
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench import common
from search_spaces import PRESETS, get_space
from trainables.cli import OneLineParser, run_main
from trainables.data import Splits, load_splits
from trainables.evaluation import evaluate_in_processes, evaluate_robustness, usable_cpus
from trainables.models import build_model
from trainables.train import RunSpec
from tuner.export import load_model

__all__ = ["build_parser", "main"]

PROG = "python -m bench.bench_scoring"


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    p = OneLineParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0].strip("`"))
    p.add_argument("--suite", choices=("export", "objective"), default="export", help="the quick preset's suite")
    p.add_argument("--images", type=int, default=500, help="first N test images scored")
    p.add_argument("--workers", type=int, default=None, help="W (default: the CPUs this process may use)")
    p.add_argument("--export", type=Path, default=None, help="score this export's model (default: one trained here)")
    p.add_argument("--train-steps", type=int, default=200, help="clean training steps of the model trained here")
    common.add_common_options(p, repeats=3, warmup=0)
    return p


def _trained(spec: RunSpec, splits: Splits, steps: int, seed: int) -> nn.Module:
    """``spec``'s model after ``steps`` clean SGD steps on the training split."""
    torch.manual_seed(seed)
    model = build_model(spec.model, splits.info)
    x, y = splits.train.floats(), splits.train.labels
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def main(argv: Sequence[str] | None = None) -> int:
    """Time both sides; print the table (and write ``--json``)."""
    args = build_parser().parse_args(argv)
    common.check_counts(args.repeats, args.warmup)
    workers = args.workers or usable_cpus()
    if args.images < 1 or workers < 1 or args.train_steps < 0:
        raise ValueError("--images and --workers must be >= 1 and --train-steps >= 0")
    preset, space = PRESETS["quick"], get_space("lwta")
    spec = space.apply(space.fixed(preset), space.points_to_evaluate(preset)[0])
    splits = load_splits(spec.data)
    model = load_model(args.export) if args.export is not None else _trained(spec, splits, args.train_steps, args.seed)
    suite = preset.export_suite if args.suite == "export" else preset.objective_suite
    images, labels = splits.test.floats()[:args.images], splits.test.labels[:args.images]
    device = torch.device("cpu")
    torch.set_num_threads(workers)

    def ours() -> None:
        evaluate_in_processes(model, images, labels, suite, preset.threat, workers=workers)

    def reference() -> None:
        evaluate_robustness(model, images, labels, suite, preset.threat, device=device)

    comparison = common.compare(f"{args.suite} suite, {len(images)} images", (f"{workers} processes x 1 thread", ours),
                                (f"1 process x {workers} threads", reference), device, args.repeats, args.warmup)
    header = common.provenance(device, suite=args.suite, images=len(images), workers=workers,
                               model=str(args.export) if args.export else f"{args.train_steps} clean steps")
    common.render("the export's scoring: processes against threads", header, [comparison])
    common.write_json(args.json, {"header": header, "comparison": comparison.as_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
