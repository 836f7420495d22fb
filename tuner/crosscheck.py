"""``python -m tuner.crosscheck EXPORT_DIR``: check an export's claimed test accuracies with torchattacks' attacks.

The export is loaded as it was scored (``tuner.export.load_export``: the model, its metrics.json and
the recorded suite's threat model), on the same first ``examples["test"]`` images of the test split.
torchattacks then attacks the model's plain forward pass: L-inf FGSM, PGD, APGD-CE and APGD-DLR (and
EOTPGD for a stochastic model, Square where the suite has it, AutoAttack's targeted APGD-T with
``--apgd-t``), L2 PGDL2 and APGD-L2 when the threat model has an L2 radius. Every accuracy is judged
as our suite judges it: ``predict`` averaged over the suite's ``predict_samples`` draws. A claimed
robust accuracy more than ``TOLERANCE`` points above torchattacks' worst case is a defect: the
command prints DISAGREE and exits 1.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainables.atomic import atomic_write_text
from trainables.attacks import NORMS, Norm
from trainables.cli import OneLineParser, run_main
from trainables.data import ImageSet, load_splits
from trainables.evaluation import RobustnessWarning, SuiteConfig
from trainables.models.base import predict
from trainables.rng import private_rng
from trainables.train import resolve_device
from tuner.export import Export, load_export, recorded_suite, recorded_threat
from tuner.provenance import measurement_provenance

__all__ = ["CLAIMED", "TOLERANCE", "CrosscheckConfig", "build_attacks", "build_parser", "disagreements", "main",
           "measure"]

PROG = "python -m tuner.crosscheck"
TOLERANCE = 1.0  # points a claimed robust accuracy may lie above torchattacks' figure (issue 22: within 1 point)
CLAIMED = ("robust_acc/linf", "robust_acc/l2", "robust_acc")  # the claims checked, in the order reported
_STEP_PEERS = ("pgd", "pgd-l2", "apgd-ce", "apgd-dlr")  # our attacks whose steps --steps takes by default

TorchAttack = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class CrosscheckConfig:
    """torchattacks' budget: iterations, EOT draws per gradient, draws per prediction, batch size and seed."""

    steps: int = 20
    eot_iter: int = 1
    predict_samples: int = 1
    batch_size: int = 256
    seed: int = 0
    square_queries: int = 0  # torchattacks' Square with this many queries (0: not run)
    targeted: bool = False  # also AutoAttack's APGD-T: targeted DLR against each other class in turn

    def __post_init__(self) -> None:
        if self.square_queries < 0:
            raise ValueError(f"square_queries must be >= 0, got {self.square_queries}")
        for name in ("steps", "eot_iter", "predict_samples", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)!r}")


def build_attacks(model: nn.Module, eps: float, l2_eps: float | None, cfg: CrosscheckConfig,
                  stochastic: bool, classes: int = 10) -> dict[str, tuple[Norm, TorchAttack]]:
    """torchattacks' attacks on ``model`` by row name: (norm, attack); PGD steps of 2.5 * eps / steps."""
    try:
        import torchattacks as ta
    except ImportError:
        raise ValueError("the crosscheck needs torchattacks, which is not installed: ./setup.sh --dev "
                         "(or pip install 'torchattacks>=3.5')") from None

    s, eot = cfg.steps, cfg.eot_iter if stochastic else 1
    apgd = dict(steps=s, n_restarts=1, seed=cfg.seed, eot_iter=eot)
    attacks: dict[str, tuple[Norm, TorchAttack]] = {
        "FGSM": (Norm.LINF, ta.FGSM(model, eps=eps)),
        "PGD": (Norm.LINF, ta.PGD(model, eps=eps, alpha=2.5 * eps / s, steps=s, random_start=True)),
        "APGD-CE": (Norm.LINF, ta.APGD(model, norm="Linf", eps=eps, loss="ce", **apgd)),
        "APGD-DLR": (Norm.LINF, ta.APGD(model, norm="Linf", eps=eps, loss="dlr", **apgd)),
    }
    if cfg.targeted:  # AutoAttack's standard version runs it in place of the untargeted DLR loss
        attacks["APGD-T"] = (Norm.LINF, ta.APGDT(model, norm="Linf", eps=eps, n_classes=classes, **apgd))
    if stochastic:
        attacks["EOTPGD"] = (Norm.LINF, ta.EOTPGD(model, eps=eps, alpha=2.5 * eps / s, steps=s, eot_iter=eot))
    if cfg.square_queries:  # gradient-free: what masked gradients cannot hide from
        attacks["Square"] = (Norm.LINF, ta.Square(model, norm="Linf", eps=eps, n_queries=cfg.square_queries,
                                                  n_restarts=1, seed=cfg.seed))
    if l2_eps is not None:
        attacks["PGDL2"] = (Norm.L2, ta.PGDL2(model, eps=l2_eps, alpha=2.5 * l2_eps / s, steps=s, random_start=True))
        attacks["APGD-L2"] = (Norm.L2, ta.APGD(model, norm="L2", eps=l2_eps, loss="ce", **apgd))
    return attacks


def _correct(model: nn.Module, x: Tensor, y: Tensor, cfg: CrosscheckConfig, device: torch.device) -> Tensor:
    """(N,) bool: the prediction averaged over ``cfg.predict_samples`` draws (as our suite judges) equals y."""
    out = torch.zeros(len(y), dtype=torch.bool)
    for i in range(0, len(y), cfg.batch_size):
        xb, yb = x[i:i + cfg.batch_size].to(device), y[i:i + cfg.batch_size].to(device)
        out[i:i + cfg.batch_size] = (predict(model, xb, cfg.predict_samples) == yb).cpu()
    return out


def _perturbed(attack: TorchAttack, x: Tensor, y: Tensor, norm: str, eps: float, cfg: CrosscheckConfig,
               device: torch.device) -> Tensor:
    """torchattacks' adversarial inputs (N, C, H, W) on the CPU; RuntimeError if one leaves the ball or [0, 1]."""
    x_adv = torch.cat([attack(x[i:i + cfg.batch_size].to(device), y[i:i + cfg.batch_size].to(device)).detach().cpu()
                       for i in range(0, len(y), cfg.batch_size)])
    delta = (x_adv - x).flatten(1)  # (N, C*H*W)
    size = delta.abs().amax(1) if norm == Norm.LINF else delta.norm(dim=1)
    if x_adv.isnan().any() or x_adv.min() < 0 or x_adv.max() > 1 or (size > eps + 1e-4).any():
        raise RuntimeError(f"torchattacks returned inputs outside the {norm} ball of radius {eps:g} or [0, 1]")
    return x_adv


def measure(model: nn.Module, data: ImageSet, attacks: dict[str, tuple[Norm, TorchAttack]], radii: dict[str, float],
            norms: Sequence[str], cfg: CrosscheckConfig, device: torch.device) -> dict[str, float]:
    """natural_acc, acc/<attack>, robust_acc/<norm> and robust_acc (worst case over the attacks of ``norms``)."""
    x, y = data.floats(), data.labels  # (N, C, H, W), (N,)
    with private_rng(cfg.seed, device, key="natural"):
        natural = _correct(model, x, y, cfg, device)
    idx = natural.nonzero().squeeze(1)  # every attack runs on the naturally correct examples
    worst = {norm: natural.clone() for norm in NORMS}
    out = {"natural_acc": natural.float().mean().item()}
    for name, (norm, attack) in attacks.items():
        robust = torch.zeros_like(natural)
        if idx.numel():
            with private_rng(cfg.seed, device, key=name):
                x_adv = _perturbed(attack, x[idx], y[idx], norm, radii[norm], cfg, device)
                robust[idx] = _correct(model, x_adv, y[idx], cfg, device)
        worst[norm] &= robust
        out[f"acc/{name}"] = robust.float().mean().item()
    attacked = [norm for norm in NORMS if any(n == norm for n, _ in attacks.values())]
    out |= {f"robust_acc/{norm}": worst[norm].float().mean().item() for norm in attacked}
    overall = natural.clone()
    for norm in norms:
        overall &= worst[norm]
    return out | {"robust_acc": overall.float().mean().item()}


def disagreements(claims: dict[str, Any], measured: dict[str, float]) -> list[str]:
    """The claimed robust accuracies more than ``TOLERANCE`` points above torchattacks' figure."""
    return [f"{key} claims {100 * claims[key]:.2f}% but torchattacks finds {100 * measured[key]:.2f}%"
            for key in CLAIMED if isinstance(claims.get(key), (int, float)) and key in measured
            and round(100 * (claims[key] - measured[key]), 6) > TOLERANCE]


def build_parser() -> OneLineParser:
    """The cross-check command line."""
    p = OneLineParser(prog=PROG, description="Check an export's claimed test accuracies with torchattacks' attacks.")
    p.add_argument("export_dir", metavar="EXPORT_DIR", type=Path, help="export directory (or its config.json)")
    p.add_argument("--limit", type=int, default=None, help="first N test images (default: as many as were scored)")
    p.add_argument("--steps", type=int, default=None,
                   help="iterations of PGD, APGD, EOTPGD, PGDL2 (default: the export suite's most, else 20)")
    p.add_argument("--eot-iter", type=int, default=None,
                   help="EOT draws per gradient on a stochastic model (default: the export suite's eot_samples)")
    p.add_argument("--square-queries", type=int, default=None,
                   help="queries of torchattacks' Square (default: the export suite's Square with its follow-up, "
                        "else none; 0: none)")
    p.add_argument("--apgd-t", action="store_true",
                   help="also AutoAttack's targeted APGD-T (DLR loss against each other class in turn, as many "
                        "runs as classes less one: that many times APGD-DLR's cost)")
    p.add_argument("--out", type=Path, default=None, help="also write the table and verdict here as JSON")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset (default: as tuner.evaluate)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: $ROBUSTUNE_DEVICE or auto)")
    return p


def _config(args: Any, suite: SuiteConfig) -> CrosscheckConfig:
    """The flags' budget, else the export suite's: most PGD/APGD steps, EOT and prediction draws, batch, seed."""
    steps = max((a.budget()["steps"] for a in suite.attacks if a.name in _STEP_PEERS), default=20)
    square = max((a.budget()["n_queries"] + a.budget().get("follow_up", 0) for a in suite.attacks
                  if a.name == "square"), default=0)  # the most queries ours spends on an example
    return CrosscheckConfig(steps=steps if args.steps is None else args.steps,
                            eot_iter=suite.eot_samples if args.eot_iter is None else args.eot_iter,
                            predict_samples=suite.predict_samples, batch_size=suite.batch_size, seed=suite.seed or 0,
                            square_queries=square if args.square_queries is None else args.square_queries,
                            targeted=args.apgd_t)


def _test_images(export: Export, limit: int | None, data_dir: str | None) -> ImageSet:
    """The first ``limit`` test images of the export's dataset (never downloaded, never from the export's data_dir)."""
    splits = load_splits(replace(export.spec.data, data_dir=data_dir, download=False, test_limit=limit))
    shape = (splits.info.channels, splits.info.size, splits.info.classes)
    if shape != (export.info.channels, export.info.size, export.info.classes):
        raise ValueError(f"dataset {splits.info.name!r} (channels, size, classes)={shape} does not fit the "
                         f"export's {export.info}")
    return splits.test


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) else "–"


def _rows(claims: dict[str, Any], measured: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """Per metric: the export's claim (None when it makes none), torchattacks' figure, their difference in points."""
    rows: dict[str, dict[str, float | None]] = {}
    for key, theirs in measured.items():
        claim = claims.get(key) if isinstance(claims.get(key), (int, float)) else None
        rows[key] = {"claim": claim, "torchattacks": theirs,
                     "difference": None if claim is None else round(100 * (claim - theirs), 2)}
    return rows


def _report(header: dict[str, Any], rows: dict[str, dict[str, float | None]], verdict: str, device: torch.device,
            out: Path | None) -> None:
    """Print the provenance header, the table and the verdict line; write them to ``out`` as JSON."""
    from rich.console import Console
    from rich.table import Table

    prov = measurement_provenance(device)
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print("[bold]torchattacks cross-check of an export's test claims[/]")
    for key, value in (header | prov).items():
        console.print(f"  {key}: {value}", highlight=False)
    table = Table()
    for column in ("metric", "export claims", "torchattacks", "difference (points)"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, row in rows.items():
        table.add_row(key, _percent(row["claim"]), _percent(row["torchattacks"]),
                      "–" if row["difference"] is None else f"{row['difference']:+.2f}")
    console.print(table)
    print(verdict)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps({"header": header, "rows": rows, "verdict": verdict, "provenance": prov},
                                          indent=2, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Attack the export with torchattacks, print claims against torchattacks' figures; exit 1 on DISAGREE."""
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    device = resolve_device(args.device)
    export = load_export(args.export_dir, device=device)
    claims = export.metrics.get("test")
    if not isinstance(claims, dict):
        raise ValueError(f"{args.export_dir} has no test accuracies in metrics.json to check")
    suite, threat = recorded_suite(export.metrics, export.spec), recorded_threat(export.metrics, export.spec)
    cfg = _config(args, suite)
    scored = export.metrics.get("examples", {}).get("test", export.spec.data.test_limit)
    data = _test_images(export, scored if args.limit is None else args.limit, args.data_dir)
    stochastic = export.model.stochastic
    if stochastic and cfg.eot_iter == 1:
        warnings.warn("stochastic model attacked without EOT (--eot-iter 1): torchattacks' figures are likely "
                      "too high", RobustnessWarning, stacklevel=1)
    attacks = build_attacks(export.model, threat.eps, threat.l2_eps, cfg, stochastic, export.info.classes)
    norms = [norm for norm in NORMS if any(a.norm == norm for a in suite.attacks)]
    measured = measure(export.model, data, attacks, {Norm.LINF: threat.eps, Norm.L2: threat.l2_eps or 0.0}, norms,
                       cfg, device)
    wrong = disagreements(claims, measured)
    judged = (f"predictions averaged over {cfg.predict_samples} draws (as our suite); attacks through the sampled "
              f"forward pass, EOT {cfg.eot_iter}" if stochastic else "deterministic model: one forward pass")
    header = {"export": str(args.export_dir), "model": export.spec.model.name, "dataset": export.info.name,
              "examples": f"{len(data)} (claims on {scored})", "threat": f"L-inf {threat.eps:g}, L2 {threat.l2_eps}",
              "steps": cfg.steps, "judged": judged, "robust_acc over": ", ".join(norms) or "natural only",
              "tolerance": f"claims may lie {TOLERANCE:g} point{'' if TOLERANCE == 1 else 's'} above torchattacks"}
    _report(header, _rows(claims, measured), "AGREE" if not wrong else "DISAGREE: " + "; ".join(wrong), device,
            args.out)
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
