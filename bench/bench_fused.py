"""``python -m bench.bench_fused``: trials per hour of k trials fused into one bundle against the same k trials apart.

For each shape and each k, in one process and interleaved (ABBA, ``bench.common.compare``): ours is
one training step of a bundle of k runs (``trainables.bundle``: each run attacked at its own radius,
its own optimiser); the reference is one training step of each of the k runs trained alone, one
after the other, as fit trains them. Both take the run's PGD training attack on random batches of
the shape's size. The ratio (bundle / apart) below 1 is what bundling saves; trials per hour =
3600 / (seconds per trial-step x steps of one whole trial). This is the device's share of a search:
start-up, data loading and scoring are not in it. On a GPU the trials apart share the device as
packed processes instead (``bench.bench_packing``); ``bench/gpu_check.sh`` runs both.

Shapes: ``quick`` (the quick preset's LWTA starting point: the small CNN, dense-layer LWTA, PGD-3 at
batch 128, Fashion-MNIST 28x28), ``wrn16`` (LWTA WRN-16-1 on 28x28, the same training) and ``paper``
(the paper preset's LWTA WRN-34-1, PGD-20, CIFAR-10 32x32).

    python -m bench.bench_fused                                  # CPU: the quick shape, k = 1, 2, 4, 8
    python -m bench.bench_fused --device cuda --shapes quick,wrn16,paper
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from bench import common
from search_spaces import PRESETS, get_space
from trainables.bundle.measure import training_step
from trainables.cli import OneLineParser, run_main
from trainables.data import DATASETS
from trainables.models import ModelConfig
from trainables.train import RunSpec

__all__ = ["SHAPES", "FusedRow", "build_parser", "main", "shape_spec", "trial_steps"]

PROG = "python -m bench.bench_fused"
TRAIN_IMAGES = {"fashion-mnist": 55_000, "cifar10": 45_000}  # the presets' training splits
SHAPES = ("quick", "wrn16", "paper")


def shape_spec(shape: str) -> RunSpec:
    """The run a shape stands for (the lwta space's first starting point under its preset)."""
    space = get_space("lwta")
    preset = PRESETS["paper" if shape == "paper" else "quick"]
    spec = space.apply(space.fixed(preset), space.points_to_evaluate(preset)[0])
    if shape == "wrn16":
        spec = replace(spec, model=ModelConfig(name="lwta-wrn", depth=16, widen=1, ibp=False))
    elif shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    return spec


def trial_steps(spec: RunSpec) -> int:
    """Training steps of one whole trial of ``spec`` on its preset's training split."""
    return spec.train.epochs * math.ceil(TRAIN_IMAGES[spec.data.name] / spec.train.batch_size)


@dataclass(frozen=True)
class FusedRow:
    """One shape at one k: the comparison and the trials per hour of each side."""

    shape: str
    k: int
    comparison: common.Comparison
    fused_trials_per_hour: float
    apart_trials_per_hour: float


def _apart(steps: Sequence[Callable[[], None]]) -> Callable[[], None]:
    def step() -> None:
        for one in steps:
            one()

    return step


def rows(shape: str, ks: Sequence[int], device: torch.device, repeats: int, warmup: int) -> list[FusedRow]:
    """A row per k: a bundle of k against the k runs apart."""
    spec = shape_spec(shape)
    info = DATASETS[spec.data.name][0]
    out = []
    for k in ks:
        fused = training_step(spec, info, k, device)
        apart = _apart([training_step(spec, info, 1, device) for _ in range(k)])
        c = common.compare(f"{shape} k={k}", (f"bundle of {k}", fused), (f"{k} apart", apart), device, repeats, warmup)
        per_trial = {side: sorted(times)[len(times) // 2] / k for side, times in (("fused", c.ours_s),
                                                                                   ("apart", c.reference_s))}
        hour = {side: 3600 / (seconds * trial_steps(spec)) for side, seconds in per_trial.items()}
        out.append(FusedRow(shape, k, c, hour["fused"], hour["apart"]))
    return out


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    p = OneLineParser(prog=PROG, description="Trials per hour of k trials fused into one bundle against k apart.")
    p.add_argument("--shapes", default=None, help="quick, wrn16, paper (default: quick on CPU, all three on CUDA)")
    p.add_argument("--ks", default="1,2,4,8", help="bundle sizes (default 1,2,4,8)")
    common.add_common_options(p, repeats=5, warmup=1)
    return p


def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v < 1 for v in values):
        raise ValueError(f"--ks takes bundle sizes >= 1, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every shape at every k; print the table, write --json."""
    args = build_parser().parse_args(argv)
    common.check_counts(args.repeats, args.warmup)
    device = common.resolve_bench_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    shapes = (args.shapes or ("quick,wrn16,paper" if device.type == "cuda" else "quick")).split(",")
    found = [row for shape in shapes for row in rows(shape.strip(), _ints(args.ks), device, args.repeats,
                                                     args.warmup)]
    header = common.provenance(device, shapes=shapes, ks=args.ks, repeats=args.repeats, warmup=args.warmup)
    # the last column is the paired figure (1 / the median of the per-repeat ratios), the others each side's median
    table = [(f"{r.shape} k={r.k}", f"{r.fused_trials_per_hour:.2f}", f"{r.apart_trials_per_hour:.2f}",
              f"{1 / r.comparison.ratio:.2f}x") for r in found]
    common.render("robustune bench: fused trials (ratio = bundle / apart per step; trials per hour per device)", header,
                  [r.comparison for r in found])
    common.render("trials per hour", {}, (), rows=table,
                  columns=("shape, k", "fused", "apart", "fused / apart, paired"))
    common.write_json(args.json, {"benchmark": "fused", "provenance": header, "rows": [
        {"shape": r.shape, "k": r.k, "fused_trials_per_hour": r.fused_trials_per_hour,
         "apart_trials_per_hour": r.apart_trials_per_hour, "comparison": r.comparison.as_dict()} for r in found]})
    return 0



if __name__ == "__main__":
    raise SystemExit(run_main(main, prog=PROG))
