"""``python -m trainables.train``: one training run with a progress bar and its final accuracies."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from trainables.attacks import ThreatModel, parse_assignments
from trainables.cli import OneLineParser, run_main
from trainables.data import DataConfig, list_datasets, load_splits
from trainables.evaluation import SuiteConfig, SuiteOverrides, add_suite_arguments, evaluate_robustness
from trainables.models import LWTA_LAYERS, ModelConfig, list_models
from trainables.train.checkpoint import CHECKPOINT_FILE, load_checkpoint
from trainables.train.compute import MEMORY_FORMATS, PRECISIONS
from trainables.train.config import SCHEDULES, RunSpec, TrainConfig
from trainables.train.loop import fit, resolve_device
from trainables.train.mix import parse_weights


def build_parser() -> OneLineParser:
    """The single-run command line."""
    p = OneLineParser(prog="python -m trainables.train", description="Train one robust classifier.")
    p.add_argument("--model", default="lwta-cnn", choices=list_models())
    p.add_argument("--dataset", default="fashion-mnist", choices=list_datasets())
    p.add_argument("--data-dir", default=None, help="folder holding the dataset (default: Debian package)")
    p.add_argument("--download", action="store_true", help="download torchvision datasets into --data-dir")
    p.add_argument("--train-limit", type=int, default=None, help="use only N training examples")
    p.add_argument("--val-limit", type=int, default=None, help="use only N validation examples")
    p.add_argument("--test-limit", type=int, default=1000, help="test examples scored by --test")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default="cosine", choices=SCHEDULES)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--clean-weight", type=float, default=0.0,
                   help="loss = w * CE(clean) + (1 - w) * CE(attacked), on every batch")
    p.add_argument("--trades-beta", type=float, default=0.0,
                   help="> 0: the TRADES loss CE(clean) + beta * KL(clean || attacked), its PGD climbing the KL")
    p.add_argument("--mart-beta", type=float, default=0.0,
                   help="> 0: the MART loss, boosted CE(attacked) + beta * (1 - p_y(clean)) * KL(clean || attacked)")
    p.add_argument("--ema-decay", type=float, default=0.0,
                   help="> 0: score, keep and export an exponential moving average of the weights (decay per step)")
    p.add_argument("--patience", type=int, default=None,
                   help="stop after N epochs without a better validation robust accuracy")
    p.add_argument("--keep-last", action="store_true",
                   help="end with the last epoch's weights (default: the best epoch's, by validation robust accuracy)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="training's autocast (auto: bf16 on CPUs with native bf16, else fp32; evaluation stays fp32)")
    p.add_argument("--memory-format", default="auto", choices=MEMORY_FORMATS,
                   help="the model's layout (auto: channels_last on CPU, contiguous on CUDA)")
    p.add_argument("--mix", default=str(TrainConfig().mix),
                   help="attack drawn per batch, name:weight pairs, 'none' a clean batch (Madry PGD training: pgd:1)")
    p.add_argument("--mix-budget", action="append", default=None, metavar="[ATTACK.]SETTING=VALUE",
                   help="a training attack's budget (default: the paper's, PGD 7 steps), e.g. pgd.steps=5")
    p.add_argument("--eps-scale", type=float, default=1.0, help="training radii as a multiple of --epsilon")
    p.add_argument("--eps-warmup", type=float, default=0.0,
                   help="the training radii grow linearly from 0 over this share of the run's steps")
    p.add_argument("--kl-weight", type=float, default=1.0)
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--widen", type=int, default=1)
    p.add_argument("--cnn-width", type=int, default=32, help="small CNN: channels of the first conv")
    p.add_argument("--cnn-kernel", type=int, default=5, help="small CNN: conv kernel size")
    p.add_argument("--cnn-pool-first", action="store_true",
                   help="small CNN: conv-pool-act (LWTA competes among pooled maxima; ReLU unchanged)")
    p.add_argument("--competitors", type=int, default=2, help="LWTA units per block (U)")
    p.add_argument("--hidden-blocks", type=int, default=64, help="LWTA blocks in the small CNN's dense layer")
    p.add_argument("--lwta-layers", choices=LWTA_LAYERS, default="all",
                   help="LWTA in every activation, or in the small CNN's dense layer only (ReLU convolutions)")
    p.add_argument("--temperature", type=float, default=0.67)
    p.add_argument("--ibp-alpha", type=float, default=3.0)
    p.add_argument("--no-ibp", action="store_true")
    p.add_argument("--eval-limit", type=int, default=1000, help="validation examples scored each epoch")
    p.add_argument("--test", action="store_true", help="also score the test split at the end")
    p.add_argument("--checkpoint-dir", type=Path, default=None, help="checkpoint here; resume when one is there")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: $ROBUSTUNE_DEVICE or auto)")
    add_suite_arguments(p, eps_aliases=("--eps",))
    return p


def spec_from_args(args) -> RunSpec:  # noqa: ANN001 - argparse.Namespace
    """The RunSpec the command-line arguments describe."""
    data = DataConfig(name=args.dataset, data_dir=args.data_dir, download=args.download,
                      train_limit=args.train_limit, val_limit=args.val_limit, test_limit=args.test_limit)
    model = ModelConfig(name=args.model, depth=args.depth, widen=args.widen, competitors=args.competitors,
                        cnn_width=args.cnn_width, cnn_kernel=args.cnn_kernel, cnn_pool_first=args.cnn_pool_first,
                        hidden_blocks=args.hidden_blocks, lwta_layers=args.lwta_layers, temperature=args.temperature,
                        ibp=not args.no_ibp, ibp_alpha=args.ibp_alpha)
    mix = TrainConfig().mix.reweighted(parse_weights(args.mix)).with_budget(parse_assignments(args.mix_budget or ()))
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                        schedule=args.schedule, mix=mix, eps_scale=args.eps_scale, kl_weight=args.kl_weight,
                        eval_limit=args.eval_limit, seed=args.seed, label_smoothing=args.label_smoothing,
                        patience=args.patience, keep_best=not args.keep_last, precision=args.precision,
                        memory_format=args.memory_format, clean_weight=args.clean_weight,
                        trades_beta=args.trades_beta, mart_beta=args.mart_beta, ema_decay=args.ema_decay,
                        eps_warmup=args.eps_warmup)
    overrides = SuiteOverrides.from_args(args)
    return RunSpec(data=data, model=model, train=train, suite=overrides.apply(SuiteConfig()),
                   threat=overrides.threat(ThreatModel()))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, train, print the final natural and worst-case robust accuracies."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    args = build_parser().parse_args(argv)
    spec = spec_from_args(args)
    device = resolve_device(args.device)
    if args.checkpoint_dir is not None and (args.checkpoint_dir / CHECKPOINT_FILE).exists():
        load_checkpoint(args.checkpoint_dir)  # a corrupt checkpoint fails here, before any output
    console = Console(stderr=True)
    splits = load_splits(spec.data)
    console.print(f"[bold]{spec.model.name}[/] on {spec.data.name}: {len(splits.train)} train, "
                  f"{len(splits.val)} val, {len(splits.test)} test, device {device}")
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("train", total=None, epoch=1, status="")

        def on_batch(i: int, n: int) -> None:
            bar.update(task, completed=i, total=n)

        def on_epoch(m: dict[str, float], _: Path | None, __: object) -> None:
            status = (f"loss {m['train_loss']:.3f}  natural {100 * m['natural_acc']:.1f}%  "
                      f"robust {100 * m['robust_acc']:.1f}%")
            console.print(f"epoch {int(m['epoch'])}/{spec.train.epochs}: {status}")
            bar.update(task, epoch=min(int(m["epoch"]) + 1, spec.train.epochs), status=status)

        result = fit(spec, splits, checkpoint_dir=args.checkpoint_dir, on_epoch=on_epoch, on_batch=on_batch,
                     device=device)
    final = result.final
    attacks = ", ".join(spec.suite.names())
    print(f"validation ({min(len(splits.val), spec.train.eval_limit or len(splits.val))} examples, eps "
          f"{spec.threat.eps}): natural {100 * final['natural_acc']:.2f}%  worst-case robust over "
          f"[{attacks}] {100 * final['robust_acc']:.2f}%")
    if args.test:
        test = evaluate_robustness(result.model, splits.test.floats(), splits.test.labels, spec.suite, spec.threat,
                                  device=device)
        print(f"test ({test.n} examples): natural {100 * test.natural_acc:.2f}%  worst-case robust "
              f"{100 * test.worst_acc:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog="python -m trainables.train"))
