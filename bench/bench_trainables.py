"""``python -m bench.bench_trainables``: LWTA vs ReLU train-step time, our PGD vs torchattacks PGD.

On one batch of 28x28x1 images (batch 128, 10 classes, Fashion-MNIST's shape and statistics):

* train step: one SGD step (forward, CE + KL / N_train as in ``trainables.train.loop``, backward,
  step) of ``lwta-wrn`` against ``wrn`` of the same depth and width, and of ``lwta-cnn`` against
  ``cnn``; the ratio is the price of the stochastic LWTA + IBP layers.
* PGD-10: ``trainables.attacks.PGD`` against ``torchattacks.PGD`` with the same budget (eps 0.1,
  step 0.025, random start) on the same ReLU model in eval mode (WRN and CNN); the ratio is the
  overhead of our attack loop. Both start from the same seed and their outputs are compared.

Each pair is timed interleaved (ABBA) after warm-up calls; the quoted ratio is the median of the
per-repeat paired ratios. Random inputs are used: the cost of these models does not depend on pixels.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from bench.common import (
    Comparison,
    add_common_options,
    check_counts,
    compare,
    provenance,
    render,
    resolve_bench_device,
    write_json,
)
from search_spaces.presets import QUICK
from trainables.attacks import PGD
from trainables.cli import OneLineParser, run_main
from trainables.data import DATASETS
from trainables.models import ModelConfig, RobustModel, build_model

__all__ = ["TrainablesBench", "main", "pgd_step_fns", "train_step_fn"]

PROG = "python -m bench.bench_trainables"


@dataclass(frozen=True)
class TrainablesBench:
    """Sizes of the trainables benchmark; every option of the command line."""

    batch: int = 128
    depth: int = 16
    widen: int = 1
    cnn_width: int = QUICK.model.cnn_width
    cnn_kernel: int = QUICK.model.cnn_kernel
    n_train: int = 55_000  # N in CE + KL / N (Fashion-MNIST's training split)
    eps: float = 0.1
    steps: int = 10
    step_size: float = 0.025
    lr: float = 0.05

    def __post_init__(self) -> None:
        if self.batch < 1 or self.n_train < 1 or self.steps < 1:
            raise ValueError(f"batch, n_train and steps must be >= 1, got {self.batch=}, {self.n_train=}, "
                             f"{self.steps=}")
        if not (self.eps >= 0 and self.step_size > 0 and self.lr > 0):
            raise ValueError(f"need eps >= 0, step_size > 0, lr > 0, got {self.eps=}, {self.step_size=}, {self.lr=}")

    def model(self, name: str) -> ModelConfig:
        """The config of model ``name`` at this benchmark's size."""
        return ModelConfig(name=name, depth=self.depth, widen=self.widen, cnn_width=self.cnn_width,
                           cnn_kernel=self.cnn_kernel)


def _build(cfg: ModelConfig, device: torch.device, seed: int) -> RobustModel:
    torch.manual_seed(seed)
    return build_model(cfg, DATASETS["fashion-mnist"][0]).to(device)


def train_step_fn(model: RobustModel, x: torch.Tensor, y: torch.Tensor, n_train: int,
                  lr: float) -> Callable[[], None]:
    """One SGD step of the training loop's loss (CE + KL / N; the KL is 0 for ReLU models)."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step() -> None:
        loss = F.cross_entropy(model(x), y) + model.kl() / n_train
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def pgd_step_fns(model: RobustModel, x: torch.Tensor, y: torch.Tensor,
                 bench: TrainablesBench) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """(ours, torchattacks) PGD-L-inf calls with the same budget on the same eval-mode model."""
    import torchattacks

    model.eval()
    ours = PGD(eps=bench.eps, steps=bench.steps, step_size=bench.step_size, random_start=True)
    theirs = torchattacks.PGD(model, eps=bench.eps, alpha=bench.step_size, steps=bench.steps, random_start=True)
    return (lambda: ours.perturb(model, x, y)), (lambda: theirs(x, y))


def _agreement(ours: Callable[[], torch.Tensor], theirs: Callable[[], torch.Tensor], seed: int) -> float:
    """Max |x_ours - x_torchattacks| when both start from the same seed."""
    torch.manual_seed(seed)
    a = ours()
    torch.manual_seed(seed)
    b = theirs()
    return (a - b).abs().max().item()


def run(bench: TrainablesBench, device: torch.device, repeats: int, warmup: int, seed: int) -> list[Comparison]:
    """Both train-step pairs, then both PGD pairs."""
    info = DATASETS["fashion-mnist"][0]
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(bench.batch, info.channels, info.size, info.size, generator=gen).to(device)  # (B, 1, 28, 28)
    y = torch.randint(0, info.classes, (bench.batch,), generator=gen).to(device)  # (B,)
    wrn = f"WRN-{bench.depth}-{bench.widen}"
    cnn = f"CNN w{bench.cnn_width} k{bench.cnn_kernel}"
    out = []
    for arch, label in (("wrn", wrn), ("cnn", cnn)):
        lwta = train_step_fn(_build(bench.model(f"lwta-{arch}"), device, seed), x, y, bench.n_train, bench.lr)
        relu = train_step_fn(_build(bench.model(arch), device, seed), x, y, bench.n_train, bench.lr)
        out.append(compare(f"train step {label}", (f"lwta-{arch}", lwta), (arch, relu), device, repeats, warmup))
    for arch, label in (("wrn", wrn), ("cnn", cnn)):
        ours, theirs = pgd_step_fns(_build(bench.model(arch), device, seed), x, y, bench)
        diff = _agreement(ours, theirs, seed)
        out.append(compare(f"PGD-{bench.steps} {label}", ("ours", ours), ("torchattacks", theirs), device,
                           repeats, warmup, note=f"same seed: max |x_ours - x_torchattacks| = {diff:.2e}"))
    return out


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    d = TrainablesBench()
    p = OneLineParser(prog=PROG, description="LWTA vs ReLU train step; our PGD vs torchattacks PGD.")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--depth", type=int, default=d.depth, help="WideResNet depth (6n + 4)")
    p.add_argument("--widen", type=int, default=d.widen, help="WideResNet widen factor")
    p.add_argument("--cnn-width", type=int, default=d.cnn_width)
    p.add_argument("--cnn-kernel", type=int, default=d.cnn_kernel)
    p.add_argument("--n-train", type=int, default=d.n_train, help="N in CE + KL / N")
    p.add_argument("--eps", type=float, default=d.eps)
    p.add_argument("--steps", type=int, default=d.steps, help="PGD steps")
    p.add_argument("--step-size", type=float, default=d.step_size)
    add_common_options(p, repeats=7, warmup=2)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, measure, print the table, write the JSON."""
    args = build_parser().parse_args(argv)
    check_counts(args.repeats, args.warmup)
    bench = TrainablesBench(batch=args.batch, depth=args.depth, widen=args.widen, cnn_width=args.cnn_width,
                            cnn_kernel=args.cnn_kernel, n_train=args.n_train, eps=args.eps, steps=args.steps,
                            step_size=args.step_size)
    device = resolve_bench_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    header = provenance(device, repeats=args.repeats, warmup=args.warmup, seed=args.seed)
    comparisons = run(bench, device, args.repeats, args.warmup, args.seed)
    header["loadavg_after"] = provenance(device)["loadavg_1_5_15"]
    render("robustune bench: trainables (ratio = ours / reference, median of paired repeats)", header, comparisons)
    write_json(args.json, {"benchmark": "trainables", "provenance": header, "settings": asdict(bench),
                           "comparisons": [c.as_dict() for c in comparisons]})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
