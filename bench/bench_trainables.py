"""``python -m bench.bench_trainables``: LWTA vs ReLU train-step time, our PGD vs torchattacks PGD.

On one batch of images of a dataset's shape (``--shape``: Fashion-MNIST's 1x28x28, the default, or
CIFAR-10's 3x32x32, the paper's; batch 128, 10 classes, the dataset's normalisation):

* train step: one SGD step (forward, CE + KL / N_train as in ``trainables.train.loop``, backward,
  step) of ``lwta-wrn`` against ``wrn`` of the same depth and width, and of ``lwta-cnn`` against
  ``cnn``; the ratio is the price of the stochastic LWTA + IBP layers.
* PGD-10: ``trainables.attacks.PGD`` against ``torchattacks.PGD`` with the same budget (eps 0.1,
  step 0.025, random start) on the same ReLU model in eval mode (WRN and CNN); the ratio is the
  overhead of our attack loop. Both start from the same seed and their outputs are compared.
* PGD-20 AT step (``--at-steps N`` > 0, off by default): N adversarial-training steps per side, each
  PGD-20 on the training-mode model (as ``trainables.train.loop`` runs it) then the SGD step, of
  ``lwta-wrn`` against ``wrn``; the note extrapolates each side's median step to an epoch of
  ceil(N_train / batch) steps.

Each pair is timed interleaved (ABBA) after warm-up calls; the quoted ratio is the median of the
per-repeat paired ratios. Random inputs are used: the cost of these models does not depend on pixels.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace

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
from trainables.data.info import DatasetInfo
from trainables.models import ModelConfig, RobustModel, build_model
from trainables.models.fused import compile_on_cuda, compiling_on_cuda, reference_kernels
from trainables.train.compute import Compute, resolve_compute

__all__ = ["SHAPES", "TrainablesBench", "adversarial_step_fn", "main", "pgd_step_fns", "rows", "run", "train_step_fn"]

PROG = "python -m bench.bench_trainables"

# --shape: the dataset whose input shape, classes and normalisation the batch takes, with its usual
# L-inf radius and training-split size (N in CE + KL / N, and the steps of one AT epoch)
SHAPES: dict[str, tuple[float, int]] = {"fashion-mnist": (0.1, 55_000), "cifar10": (8 / 255, 50_000)}


@dataclass(frozen=True)
class TrainablesBench:
    """Sizes of the trainables benchmark; every option of the command line."""

    shape: str = "fashion-mnist"  # a key of SHAPES
    batch: int = 128
    depth: int = 16
    widen: int = 1
    cnn_width: int = QUICK.model.cnn_width
    cnn_kernel: int = QUICK.model.cnn_kernel
    cnn_pool_first: bool = QUICK.model.cnn_pool_first
    n_train: int | None = None  # N in CE + KL / N and the AT epoch's size; None: the shape's training split
    eps: float | None = None  # None: the shape's usual L-inf radius (0.1, 8/255)
    steps: int = 10
    step_size: float | None = None  # None: eps / 4 (0.025 at eps 0.1)
    lr: float = 0.05
    pgd: bool = True  # the ours-vs-torchattacks PGD rows
    compile: bool = False  # on CUDA: LWTA's competition through torch.compile, and a compiled-vs-eager row
    at_steps: int = 0  # measured PGD-AT steps per side; 0: no AT row
    at_pgd_steps: int = 20
    compute: bool = True  # the rows of the loop's default precision and layout (TrainConfig's auto)

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {sorted(SHAPES)}, got {self.shape=}")
        if self.batch < 1 or self.n_samples < 1 or self.steps < 1 or self.at_pgd_steps < 1:
            raise ValueError(f"batch, n_train, steps and at_pgd_steps must be >= 1, got {self.batch=}, "
                             f"{self.n_train=}, {self.steps=}, {self.at_pgd_steps=}")
        if self.at_steps < 0:
            raise ValueError(f"at_steps must be >= 0, got {self.at_steps=}")
        if not (self.radius >= 0 and self.alpha > 0 and self.lr > 0):
            raise ValueError(f"need eps >= 0, step_size > 0, lr > 0, got {self.eps=}, {self.step_size=}, {self.lr=}")

    @property
    def info(self) -> DatasetInfo:
        """The dataset whose shape the batch has."""
        return DATASETS[self.shape][0]

    @property
    def radius(self) -> float:
        """The attacks' eps: ``eps``, else the shape's usual radius."""
        return SHAPES[self.shape][0] if self.eps is None else self.eps

    @property
    def alpha(self) -> float:
        """The PGD step: ``step_size``, else radius / 4."""
        return self.radius / 4 if self.step_size is None else self.step_size

    @property
    def n_samples(self) -> int:
        """N of CE + KL / N and of an AT epoch: ``n_train``, else the shape's training split."""
        return SHAPES[self.shape][1] if self.n_train is None else self.n_train

    def model(self, name: str) -> ModelConfig:
        """The config of model ``name`` at this benchmark's size."""
        return ModelConfig(name=name, depth=self.depth, widen=self.widen, cnn_width=self.cnn_width,
                           cnn_kernel=self.cnn_kernel, cnn_pool_first=self.cnn_pool_first)


def _build(cfg: ModelConfig, info: DatasetInfo, device: torch.device, seed: int) -> RobustModel:
    torch.manual_seed(seed)
    return build_model(cfg, info).to(device)


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


def adversarial_step_fn(model: RobustModel, x: torch.Tensor, y: torch.Tensor, bench: TrainablesBench
                        ) -> Callable[[], None]:
    """One PGD adversarial-training step as the training loop runs it: PGD on the training-mode model, then SGD."""
    attack = PGD(eps=bench.radius, steps=bench.at_pgd_steps, step_size=bench.alpha, random_start=True)
    sgd = train_step_fn(model, x, y, bench.n_samples, bench.lr)
    inputs = x.clone()

    def step() -> None:
        x.copy_(attack.perturb(model, inputs, y))  # the SGD step reads x
        sgd()

    return step


def pgd_step_fns(model: RobustModel, x: torch.Tensor, y: torch.Tensor,
                 bench: TrainablesBench) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """(ours, torchattacks) PGD-L-inf calls with the same budget on the same eval-mode model."""
    import torchattacks

    model.eval()
    ours = PGD(eps=bench.radius, steps=bench.steps, step_size=bench.alpha, random_start=True)
    theirs = torchattacks.PGD(model, eps=bench.radius, alpha=bench.alpha, steps=bench.steps, random_start=True)
    return (lambda: ours.perturb(model, x, y)), (lambda: theirs(x, y))


def _agreement(ours: Callable[[], torch.Tensor], theirs: Callable[[], torch.Tensor], seed: int) -> float:
    """Max |x_ours - x_torchattacks| when both start from the same seed."""
    torch.manual_seed(seed)
    a = ours()
    torch.manual_seed(seed)
    b = theirs()
    return (a - b).abs().max().item()


def run(bench: TrainablesBench, device: torch.device, repeats: int, warmup: int, seed: int) -> list[Comparison]:
    """Every row of :func:`rows`."""
    return list(rows(bench, device, repeats, warmup, seed))


def rows(bench: TrainablesBench, device: torch.device, repeats: int, warmup: int, seed: int) -> Iterator[Comparison]:
    """Both train-step pairs, fused vs reference LWTA (and compiled vs eager on CUDA with ``compile``), both PGD
    pairs (unless ``pgd`` is off), then the AT-step pair when ``at_steps`` > 0; each row as soon as it is measured."""
    info = bench.info
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(bench.batch, info.channels, info.size, info.size, generator=gen).to(device)  # (B, C, H, W)
    y = torch.randint(0, info.classes, (bench.batch,), generator=gen).to(device)  # (B,)
    wrn = f"WRN-{bench.depth}-{bench.widen}"
    cnn = f"CNN w{bench.cnn_width} k{bench.cnn_kernel}" + (" pool-first" if bench.cnn_pool_first else "")
    for arch, label in (("wrn", wrn), ("cnn", cnn)):
        lwta = train_step_fn(_build(bench.model(f"lwta-{arch}"), info, device, seed), x, y, bench.n_samples, bench.lr)
        relu = train_step_fn(_build(bench.model(arch), info, device, seed), x, y, bench.n_samples, bench.lr)
        yield compare(f"train step {label}", (f"lwta-{arch}", lwta), (arch, relu), device, repeats, warmup)
    lwta = train_step_fn(_build(bench.model("lwta-wrn"), info, device, seed), x, y, bench.n_samples, bench.lr)
    reference = train_step_fn(_build(bench.model("lwta-wrn"), info, device, seed), x, y, bench.n_samples, bench.lr)
    fused = "fused, compiled" if device.type == "cuda" and compiling_on_cuda() else "fused"
    yield compare(f"train step {wrn} LWTA", (fused, lwta), ("reference code", _with(reference_kernels, reference)),
                  device, repeats, warmup)
    if bench.compile and device.type == "cuda":
        yield compare(f"train step {wrn} LWTA", ("compiled", lwta), ("eager fused", _with(_eager, lwta)),
                      device, repeats, max(warmup, 1))
    for arch, label in (("wrn", wrn), ("cnn", cnn)) if bench.pgd else ():
        ours, theirs = pgd_step_fns(_build(bench.model(arch), info, device, seed), x, y, bench)
        diff = _agreement(ours, theirs, seed)
        yield compare(f"PGD-{bench.steps} {label}", ("ours", ours), ("torchattacks", theirs), device,
                      repeats, warmup, note=f"same seed: max |x_ours - x_torchattacks| = {diff:.2e}")
    if bench.compute:
        yield from compute_rows(bench, x, y, device, repeats, warmup, seed)
    if bench.at_steps:
        lwta = adversarial_step_fn(_build(bench.model("lwta-wrn"), info, device, seed), x.clone(), y, bench)
        relu = adversarial_step_fn(_build(bench.model("wrn"), info, device, seed), x.clone(), y, bench)
        c = compare(f"PGD-{bench.at_pgd_steps} AT step {wrn}", ("lwta-wrn", lwta), ("wrn", relu), device,
                    bench.at_steps, min(warmup, 1))
        yield replace(c, note=_epoch_note(c, bench))


def compute_rows(bench: TrainablesBench, x: torch.Tensor, y: torch.Tensor, device: torch.device, repeats: int,
                 warmup: int, seed: int) -> Iterator[Comparison]:
    """The training loop's default compute (``precision`` and ``memory_format`` auto) on the small CNN.

    A PGD-3 adversarial-training step (as the quick preset trains) of ``lwta-cnn`` at the default
    against float32 contiguous, and of ``lwta-cnn`` against ``cnn`` both at the default; then our
    PGD as training runs it (the default) against torchattacks' PGD on the same weights, float32 and
    contiguous as a user would call it.
    """
    auto = resolve_compute("auto", "auto", device)
    at3 = replace(bench, at_pgd_steps=3)
    cnn = f"CNN w{bench.cnn_width}"

    def at_step(name: str, compute: Compute) -> Callable[[], None]:
        step = adversarial_step_fn(compute.layout(_build(bench.model(name), info, device, seed)), x.clone(), y, at3)
        return _with(lambda: compute.autocast_context(device), step)

    info, plain = bench.info, Compute()
    label = auto.describe()
    yield compare(f"PGD-3 AT step {cnn} LWTA", (label, at_step("lwta-cnn", auto)),
                  ("fp32 contiguous", at_step("lwta-cnn", plain)), device, repeats, warmup)
    yield compare(f"PGD-3 AT step {cnn}, {label}", ("lwta-cnn", at_step("lwta-cnn", auto)),
                  ("cnn", at_step("cnn", auto)), device, repeats, warmup)
    if bench.pgd:
        model = _build(bench.model("cnn"), info, device, seed).train()
        ours_model = auto.layout(_build(bench.model("cnn"), info, device, seed).train())
        ours = PGD(eps=bench.radius, steps=bench.steps, step_size=bench.alpha, random_start=True)
        import torchattacks

        theirs = torchattacks.PGD(model, eps=bench.radius, alpha=bench.alpha, steps=bench.steps, random_start=True)
        theirs.set_model_training_mode(model_training=True)  # both attack the training-mode model
        yield compare(f"PGD-{bench.steps} {cnn} as training runs it", (f"ours, {label}", _with(
            lambda: auto.autocast_context(device), lambda: ours.perturb(ours_model, x, y))),
            ("torchattacks fp32", lambda: theirs(x, y)), device, repeats, warmup)


def _with(context: Callable[[], contextlib.AbstractContextManager[object]], fn: Callable[[], None]
          ) -> Callable[[], None]:
    """``fn`` called inside ``context()``."""

    def call() -> None:
        with context():
            fn()

    return call


@contextlib.contextmanager
def _eager() -> Iterator[None]:
    """The compiled CUDA path switched off for the block."""
    before = compiling_on_cuda()
    compile_on_cuda(False)
    try:
        yield
    finally:
        compile_on_cuda(before)


def _epoch_note(c: Comparison, bench: TrainablesBench) -> str:
    """Each side's median AT step times the steps of one epoch over the shape's training split."""
    steps = math.ceil(bench.n_samples / bench.batch)
    ours, ref = statistics.median(c.ours_s) * steps, statistics.median(c.reference_s) * steps
    return (f"epoch estimate ({steps} steps = ceil({bench.n_samples} / {bench.batch})): "
            f"{c.ours} {ours:.0f} s, {c.reference} {ref:.0f} s")


def build_parser() -> OneLineParser:
    """The benchmark's command line."""
    d = TrainablesBench()
    p = OneLineParser(prog=PROG, description="LWTA vs ReLU train step; our PGD vs torchattacks PGD.")
    p.add_argument("--shape", choices=sorted(SHAPES), default=d.shape,
                   help="input shape, classes and normalisation of this dataset (1x28x28 or 3x32x32)")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--depth", type=int, default=d.depth, help="WideResNet depth (6n + 4)")
    p.add_argument("--widen", type=int, default=d.widen, help="WideResNet widen factor")
    p.add_argument("--cnn-width", type=int, default=d.cnn_width)
    p.add_argument("--cnn-kernel", type=int, default=d.cnn_kernel)
    p.add_argument("--cnn-pool-first", action=argparse.BooleanOptionalAction, default=d.cnn_pool_first,
                   help="small CNN in conv-pool-act order (default: the quick preset's)")
    p.add_argument("--n-train", type=int, default=None,
                   help="N in CE + KL / N and of an AT epoch (default: the shape's training split)")
    p.add_argument("--eps", type=float, default=None, help="default: the shape's usual L-inf radius")
    p.add_argument("--steps", type=int, default=d.steps, help="PGD steps")
    p.add_argument("--step-size", type=float, default=None, help="default: eps / 4")
    p.add_argument("--pgd", action=argparse.BooleanOptionalAction, default=d.pgd,
                   help="the ours-vs-torchattacks PGD rows (--no-pgd: train steps only)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=d.compile,
                   help="on CUDA: LWTA's competition through torch.compile (ROBUSTUNE_COMPILE_LWTA=1), and a "
                        "compiled-vs-eager row")
    p.add_argument("--at-steps", type=int, default=d.at_steps,
                   help="measured PGD adversarial-training steps per side (0: no AT row)")
    p.add_argument("--at-pgd-steps", type=int, default=d.at_pgd_steps, help="PGD steps of an AT step")
    p.add_argument("--compute", action=argparse.BooleanOptionalAction, default=d.compute,
                   help="rows of the training loop's default precision and layout (auto) against float32 contiguous")
    add_common_options(p, repeats=7, warmup=2)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, measure, print the table, write the JSON."""
    args = build_parser().parse_args(argv)
    check_counts(args.repeats, args.warmup)
    bench = TrainablesBench(shape=args.shape, batch=args.batch, depth=args.depth, widen=args.widen,
                            cnn_width=args.cnn_width, cnn_kernel=args.cnn_kernel, cnn_pool_first=args.cnn_pool_first,
                            n_train=args.n_train, eps=args.eps, steps=args.steps, step_size=args.step_size,
                            pgd=args.pgd, compile=args.compile, at_steps=args.at_steps, at_pgd_steps=args.at_pgd_steps,
                            compute=args.compute)
    device = resolve_bench_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if bench.compile:
        compile_on_cuda(True)
    info = bench.info
    header = provenance(device, repeats=args.repeats, warmup=args.warmup, seed=args.seed,
                        shape=f"{bench.shape} {bench.batch}x{info.channels}x{info.size}x{info.size}",
                        lwta_compiled=device.type == "cuda" and compiling_on_cuda())
    settings = asdict(bench) | {"eps_used": bench.radius, "step_size_used": bench.alpha, "n_samples": bench.n_samples,
                                "at_epoch_steps": math.ceil(bench.n_samples / bench.batch)}
    comparisons: list[Comparison] = []
    for c in rows(bench, device, args.repeats, args.warmup, args.seed):
        comparisons.append(c)  # the JSON so far after every row: a run cut short keeps what it measured
        write_json(args.json, {"benchmark": "trainables", "provenance": header, "settings": settings,
                               "comparisons": [c.as_dict() for c in comparisons], "complete": False})
    header["loadavg_after"] = provenance(device)["loadavg_1_5_15"]
    header["lwta_compiled_after"] = device.type == "cuda" and compiling_on_cuda()  # False if compiling failed
    render("robustune bench: trainables (ratio = ours / reference, median of paired repeats)", header, comparisons)
    write_json(args.json, {"benchmark": "trainables", "provenance": header, "settings": settings,
                           "comparisons": [c.as_dict() for c in comparisons], "complete": True})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
