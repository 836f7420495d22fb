"""``python -m tuner.report``: the seed's robustness table, measured on exported models or freshly trained recipes.

Rows are models (export folders, or recipes trained through :func:`trainables.train.fit` on the quick
preset); columns are test accuracies in percent: natural, PGD (per-example worst case over PGD L-inf
and PGD L2), FGSM, CW, the worst case over every attack and, for smoothing models, certified accuracy
at chosen L2 radii. The table is printed, written as ``table.md`` and ``table.parquet``, and drawn
next to the figures of :mod:`tuner.figures` in ``--out``.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from scipy.stats import norm
from torch import Tensor

from search_spaces.base import preset_model
from search_spaces.presets import PRESETS
from trainables.attacks import SuiteConfig, build_suite, evaluate_robustness
from trainables.cli import OneLineParser, run_main
from trainables.data import DataConfig, DatasetInfo, ImageSet, Splits, load_splits
from trainables.models import RobustModel
from trainables.models.base import predict_proba, surrogate_gradients
from trainables.smoothing.certify import SmoothingConfig, certified_accuracy
from trainables.train import RunSpec, fit
from trainables.train.loop import resolve_device
from trainables.train.recipes import apply_recipe, get_recipe, list_recipes
from tuner import figures
from tuner.export import collect_provenance, load_export, recorded_suite
from tuner.results import read_trials

__all__ = [
    "ACCURACY_COLUMNS",
    "FIGURE_ATTACKS",
    "FIGURE_FILES",
    "REPORT_ATTACKS",
    "Candidate",
    "ReportConfig",
    "ReportRow",
    "build_parser",
    "check_rows",
    "evaluate_candidate",
    "exported_candidates",
    "main",
    "max_certified_radius",
    "pareto_points",
    "quick_base",
    "recipe_candidates",
    "table_markdown",
    "write_table",
]

PROG = "python -m tuner.report"
REPORT_ATTACKS = ("fgsm", "pgd", "pgd-l2", "cw")  # every table uses all four
FIGURE_ATTACKS = ("fgsm", "pgd", "cw")
ACCURACY_COLUMNS = ("natural", "pgd", "fgsm", "cw", "worst")
COLUMN_TITLES = {"natural": "natural", "pgd": "PGD (L-inf+L2)", "fgsm": "FGSM", "cw": "CW", "worst": "worst case"}
FIGURE_FILES = {"probability": "true_class_probability.png", "examples": "adversarial_examples.png",
                "pareto": "pareto.png"}
TABLE_MD = "table.md"
TABLE_PARQUET = "table.parquet"


@dataclass(frozen=True)
class ReportConfig:
    """How every model is scored: the attack suite, certification budget and figure sizes."""

    suite: SuiteConfig = field(default_factory=lambda: replace(PRESETS["quick"].objective_suite,
                                                               attacks=REPORT_ATTACKS))
    radii: tuple[float, ...] = (0.25, 0.5)  # L2 radii of certified accuracy (smoothing models only)
    certify_n0: int = 50
    certify_n: int = 200
    certify_alpha: float = 0.001
    certify_limit: int | None = None  # certify the first N test examples (None: all evaluated ones)
    figure_limit: int = 200  # test examples attacked again for the probability figure
    examples: int = 6  # adversarial examples per attack in the grid

    def __post_init__(self) -> None:
        if set(self.suite.attacks) != set(REPORT_ATTACKS):
            raise ValueError(f"the report suite must run {REPORT_ATTACKS}, got {self.suite.attacks=}")
        bad = [r for r in self.radii if not (r >= 0 and math.isfinite(r))]
        if bad or not self.radii:
            raise ValueError(f"radii must be a non-empty list of finite values >= 0, got {self.radii=}")
        for name in ("certify_n0", "certify_n", "figure_limit", "examples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {name}={getattr(self, name)!r}")
        if self.certify_limit is not None and self.certify_limit < 1:
            raise ValueError(f"certify_limit must be >= 1 or None, got {self.certify_limit=}")
        if not 0 < self.certify_alpha < 1:
            raise ValueError(f"certify_alpha must be in (0, 1), got {self.certify_alpha=}")


@dataclass(frozen=True)
class Candidate:
    """One model to score: its row name, the trained model, its run spec and the test images."""

    name: str
    model: RobustModel
    spec: RunSpec
    info: DatasetInfo
    test: ImageSet
    source: str  # export path or "recipe <name>"
    train_seconds: float = 0.0
    trial_id: str | None = None  # the search trial an export came from, when recorded


@dataclass(frozen=True)
class ReportRow:
    """One table row; accuracies in percent, ``certified`` maps an L2 radius to percent (smoothing only)."""

    name: str
    model: str
    sigma: float
    examples: int
    natural: float
    pgd: float
    fgsm: float
    cw: float
    worst: float
    certified: dict[float, float]
    seconds: float  # training (recipes) + scoring and certification on this machine
    source: str


@dataclass
class _Figures:
    """What the figures need, gathered while each model is scored."""

    probabilities: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    examples: dict[str, list[figures.AdversarialExample]] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    first_model: str = ""


# --------------------------------------------------------------------------------------------- models


def quick_base(*, epochs: int | None = None, train_limit: int | None = None, test_limit: int = 1000,
               seed: int = 0, epsilon: float | None = None, data_dir: str | None = None) -> RunSpec:
    """The quick preset's run: small ``cnn`` at its width/kernel, its data, training and per-epoch suite."""
    preset = PRESETS["quick"]
    data = replace(preset.data, test_limit=test_limit, data_dir=data_dir,
                   train_limit=preset.data.train_limit if train_limit is None else train_limit)
    train = replace(preset.train, epochs=preset.train.epochs if epochs is None else epochs, seed=seed)
    suite = preset.epoch_suite
    if epsilon is not None:
        train = replace(train, eps=epsilon)
        suite = replace(suite, eps=epsilon)
    return RunSpec(data=data, model=preset_model(preset), train=train, suite=suite)


def recipe_candidates(names: Sequence[str], base: RunSpec, device: torch.device,
                      log: Callable[[str], None] = print) -> Iterator[Candidate]:
    """Train each recipe on ``base`` through ``fit`` and yield it with the test split, one at a time."""
    specs = {name: apply_recipe(name, base) for name in names}  # raises on an unknown name before training
    splits = load_splits(base.data)
    for i, (name, spec) in enumerate(specs.items(), start=1):
        log(f"[{i}/{len(specs)}] training {name} ({spec.model.name}, sigma {spec.model.input_noise:g}, "
            f"{spec.train.epochs} epochs on {len(splits.train)} images)")
        began = time.perf_counter()
        result = fit(spec, splits, device=device)
        seconds = time.perf_counter() - began
        final = result.final
        log(f"    {seconds:.0f}s; validation natural {100 * final['natural_acc']:.1f}% "
            f"robust {100 * final['robust_acc']:.1f}%")
        yield Candidate(name=name, model=result.model, spec=spec, info=splits.info, test=splits.test,
                        source=f"recipe {name}", train_seconds=seconds)


def _names(paths: Sequence[Path]) -> list[str]:
    short = [p.resolve().name for p in paths]
    return short if len(set(short)) == len(short) else [str(p) for p in paths]


def exported_candidates(paths: Sequence[Path], test_limit: int, device: torch.device,
                        data_dir: str | None = None) -> Iterator[Candidate]:
    """Load each export and its dataset's first ``test_limit`` test images, one at a time."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no export directory at {', '.join(missing)}")
    loaded: dict[DataConfig, Splits] = {}
    for name, path in zip(_names(paths), paths, strict=True):
        export = load_export(path, device=device)
        data = replace(export.spec.data, test_limit=test_limit, train_limit=1, val_limit=1,
                       **({"data_dir": data_dir} if data_dir else {}))
        if data not in loaded:
            loaded[data] = load_splits(data)
        splits = loaded[data]
        shape = (splits.info.channels, splits.info.size, splits.info.classes)
        if shape != (export.info.channels, export.info.size, export.info.classes):
            raise ValueError(f"dataset {splits.info.name!r} (channels, size, classes)={shape} does not fit the "
                             f"export {path}: {export.info}")
        search = export.metrics.get("search")
        trial = str(search["trial_id"]) if isinstance(search, dict) and "trial_id" in search else None
        yield Candidate(name=name, model=export.model, spec=export.spec, info=export.info, test=splits.test,
                        source=str(path), trial_id=trial)


# ------------------------------------------------------------------------------------------ scoring


def max_certified_radius(sigma: float, n: int, alpha: float) -> float:
    """Largest L2 radius ``n`` votes can certify at level ``alpha``: sigma * Phi^-1(alpha ** (1 / n))."""
    return float(sigma * norm.ppf(alpha ** (1.0 / n)))


def _percent(flags: Tensor) -> float:
    return 100.0 * flags.float().mean().item()


def _seeded_attacks(model: RobustModel, x: Tensor, y: Tensor, suite: SuiteConfig,
                    attacks: Sequence[str]) -> dict[str, Tensor]:
    """Adversarial versions (N, C, H, W) of ``x`` under each attack, on a private RNG stream."""
    stochastic = model.stochastic
    built = build_suite(replace(suite, attacks=tuple(attacks)), stochastic)
    out: dict[str, Tensor] = {}
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(0 if suite.seed is None else suite.seed)
        with surrogate_gradients(model, suite.adaptive and stochastic):
            for name, attack in built.items():
                out[name] = torch.cat([attack.perturb(model, x[i:i + suite.batch_size], y[i:i + suite.batch_size])
                                       for i in range(0, len(x), suite.batch_size)])
    return out


def _true_class_proba(model: RobustModel, x: Tensor, y: Tensor, samples: int, batch: int) -> np.ndarray:
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(0)
        probs = torch.cat([predict_proba(model, x[i:i + batch], samples) for i in range(0, len(x), batch)])
    return probs.gather(1, y.view(-1, 1)).squeeze(1).cpu().numpy()  # (N,)


def _figure_data(cand: Candidate, cfg: ReportConfig, device: torch.device, gathered: _Figures) -> None:
    """True-class probabilities under each figure attack; the adversarial examples of the first model."""
    subset = cand.test.head(cfg.figure_limit)
    x, y = subset.floats().to(device), subset.labels.to(device)  # (N, C, H, W), (N,)
    suite = cfg.suite
    model = cand.model.eval()
    adversarial = _seeded_attacks(model, x, y, suite, FIGURE_ATTACKS)
    probs = {"clean": _true_class_proba(model, x, y, suite.predict_samples, suite.batch_size)}
    for name, x_adv in adversarial.items():
        probs[name] = _true_class_proba(model, x_adv, y, suite.predict_samples, suite.batch_size)
    gathered.probabilities[cand.name] = probs
    if gathered.examples:
        return
    k = min(cfg.examples, len(y))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        clean_pred = predict_proba(model, x[:k], suite.predict_samples).argmax(1).tolist()
        for name, x_adv in adversarial.items():
            adv_pred = predict_proba(model, x_adv[:k], suite.predict_samples).argmax(1).tolist()
            gathered.examples[name] = [
                figures.AdversarialExample(clean=x[j].permute(1, 2, 0).cpu().numpy(),
                                           adversarial=x_adv[j].permute(1, 2, 0).cpu().numpy(),
                                           label=int(y[j]), clean_pred=clean_pred[j], adv_pred=adv_pred[j])
                for j in range(k)]
    gathered.class_names = cand.info.class_names
    gathered.first_model = cand.name


def evaluate_candidate(cand: Candidate, cfg: ReportConfig, device: torch.device) -> ReportRow:
    """Natural, per-attack and worst-case test accuracy (percent), plus certified accuracy when smoothed."""
    began = time.perf_counter()
    result = evaluate_robustness(cand.model, cand.test.floats(), cand.test.labels, cfg.suite, device=device)
    per = result.per_attack
    certified: dict[float, float] = {}
    sigma = float(cand.spec.model.input_noise)
    if sigma > 0:
        head = cand.test.head(cfg.certify_limit)
        smoothing = SmoothingConfig(sigma=sigma, n0=cfg.certify_n0, n=cfg.certify_n, alpha=cfg.certify_alpha,
                                    batch_size=max(cfg.certify_n0, min(cfg.certify_n, 1000)))
        fractions = certified_accuracy(cand.model, head.floats().to(device), head.labels, smoothing, cfg.radii)
        certified = {r: 100.0 * v for r, v in fractions.items()}
    return ReportRow(
        name=cand.name, model=cand.spec.model.name, sigma=sigma, examples=result.n,
        natural=_percent(result.natural), pgd=_percent(per["pgd"] & per["pgd-l2"]), fgsm=_percent(per["fgsm"]),
        cw=_percent(per["cw"]), worst=_percent(result.worst), certified=certified,
        seconds=cand.train_seconds + time.perf_counter() - began, source=cand.source,
    )


def check_rows(rows: Sequence[ReportRow]) -> None:
    """Raise AssertionError unless every accuracy lies in [0, 100] and no robust one exceeds natural."""
    for row in rows:
        values = {c: getattr(row, c) for c in ACCURACY_COLUMNS} | {f"certified@{r:g}": v
                                                                  for r, v in row.certified.items()}
        outside = {k: v for k, v in values.items() if not 0.0 <= v <= 100.0}
        if outside:
            raise AssertionError(f"{row.name}: accuracies outside [0, 100]: {outside}")
        above = {c: values[c] for c in ("pgd", "fgsm", "cw", "worst") if values[c] > row.natural + 1e-9}
        if above:
            raise AssertionError(f"{row.name}: robust accuracy above natural {row.natural}: {above}")
        if row.worst > min(row.pgd, row.fgsm, row.cw) + 1e-9:
            raise AssertionError(f"{row.name}: worst case {row.worst} above a single attack's accuracy")


# ------------------------------------------------------------------------------------------- output


def _cert_key(radius: float) -> str:
    return f"certified@{radius:g}"


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _provenance_lines(command: str, created: str, prov: dict[str, Any]) -> list[str]:
    gpu = prov.get("gpu") or "none (CPU only)"
    return [
        f"- Command: `{command}`",
        f"- Date: {created}",
        f"- Hardware: {prov.get('cpu')} ({prov.get('cpu_count')} logical CPUs), GPU: {gpu}",
        f"- Software: torch {prov.get('torch')}, Python {prov.get('python')}, git revision "
        f"`{prov.get('git_revision')}`",
    ]


def table_markdown(rows: Sequence[ReportRow], cfg: ReportConfig, *, command: str, created: str,
                   provenance: dict[str, Any]) -> str:
    """The table as Markdown, with the command, hardware, date, threat model and certification budget."""
    radii = cfg.radii
    suite = cfg.suite
    header = ["model", "architecture", "sigma", *(COLUMN_TITLES[c] for c in ACCURACY_COLUMNS),
              *(f"certified r={r:g}" for r in radii), "seconds"]
    lines = ["| " + " | ".join(header) + " |", "| --- | --- |" + " ---: |" * (len(header) - 2)]
    for row in rows:
        cells = [row.name, f"`{row.model}`", f"{row.sigma:g}" if row.sigma else "–",
                 *(_cell(getattr(row, c)) for c in ACCURACY_COLUMNS),
                 *(_cell(row.certified.get(r)) if row.certified else "–" for r in radii), f"{row.seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    sigmas = sorted({row.sigma for row in rows if row.sigma > 0})
    reach = ", ".join(f"sigma {s:g}: {max_certified_radius(s, cfg.certify_n, cfg.certify_alpha):.3f}"
                      for s in sigmas)
    examples = sorted({row.examples for row in rows})
    notes = [
        f"- Test examples per model: {', '.join(map(str, examples))}; accuracies in percent.",
        f"- Threat model: L-inf eps {suite.eps:g} (FGSM, PGD {suite.steps} steps x {suite.restarts} restarts), "
        f"L2 eps {suite.l2_eps:g} (PGD-L2 {suite.steps} steps, CW c {suite.cw_c:g}, {suite.cw_steps} steps); "
        f"stochastic models attacked with EOT {suite.eot_samples}, predictions averaged over "
        f"{suite.predict_samples} draws, adaptive surrogate gradients {'on' if suite.adaptive else 'off'}.",
        "- PGD = per-example worst case over PGD L-inf and PGD L2; worst case = correct on clean inputs and under "
        "every attack.",
    ]
    if sigmas:
        limit = "all evaluated" if cfg.certify_limit is None else f"the first {cfg.certify_limit}"
        notes.append(f"- Certified accuracy (Cohen et al. CERTIFY, n0 {cfg.certify_n0}, n {cfg.certify_n}, "
                     f"alpha {cfg.certify_alpha:g}) on {limit} test examples, smoothing models only; the largest "
                     f"radius this budget can certify is {reach}.")
    body = "\n".join(lines)
    return "\n".join(["# Robustness table", "", *_provenance_lines(command, created, provenance), "", body, "",
                      *notes, ""])


def write_table(rows: Sequence[ReportRow], cfg: ReportConfig, out: Path, *, command: str,
                created: str | None = None) -> tuple[Path, Path]:
    """Check the rows, then write ``table.md`` and ``table.parquet`` into ``out``."""
    check_rows(rows)
    created = created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    prov = collect_provenance()
    out.mkdir(parents=True, exist_ok=True)
    md = out / TABLE_MD
    md.write_text(table_markdown(rows, cfg, command=command, created=created, provenance=prov), encoding="utf-8")
    columns: dict[str, list[Any]] = {
        "name": [r.name for r in rows], "source": [r.source for r in rows], "model": [r.model for r in rows],
        "sigma": [r.sigma for r in rows], "examples": [r.examples for r in rows],
    }
    for c in ACCURACY_COLUMNS:
        columns[c] = [float(getattr(r, c)) for r in rows]
    for radius in cfg.radii:
        columns[_cert_key(radius)] = [r.certified.get(radius) if r.certified else None for r in rows]
    columns["seconds"] = [r.seconds for r in rows]
    table = pa.table({k: pa.array(v, type=pa.float64() if k.startswith("certified@") else None)
                      for k, v in columns.items()})
    meta = {"command": command, "created": created, "cpu": str(prov.get("cpu")), "gpu": str(prov.get("gpu")),
            "torch": str(prov.get("torch")), "eps": f"{cfg.suite.eps:g}", "l2_eps": f"{cfg.suite.l2_eps:g}"}
    table = table.replace_schema_metadata({k: v.encode() for k, v in meta.items()})
    parquet = out / TABLE_PARQUET
    pq.write_table(table, parquet)
    return md, parquet


def _print_table(rows: Sequence[ReportRow], cfg: ReportConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"test accuracy (%), eps {cfg.suite.eps:g} L-inf / {cfg.suite.l2_eps:g} L2")
    table.add_column("model")
    for c in ACCURACY_COLUMNS:
        table.add_column(COLUMN_TITLES[c], justify="right")
    for r in cfg.radii:
        table.add_column(f"cert r={r:g}", justify="right")
    for row in rows:
        table.add_row(row.name, *(_cell(getattr(row, c)) for c in ACCURACY_COLUMNS),
                      *(_cell(row.certified.get(r)) if row.certified else "–" for r in cfg.radii))
    Console(width=None if sys.stdout.isatty() else 160).print(table)  # no truncated cells in logs


# ------------------------------------------------------------------------------------------- pareto


def pareto_points(path: Path) -> tuple[list[figures.ParetoPoint], str | None]:
    """Finished trials of a search's results.parquet as (natural, objective) points, and the best exportable."""
    records = read_trials(path).to_pylist()
    natural_key = "final_metric/final/natural_acc"
    points = []
    best: tuple[float, float, str] | None = None
    for rec in records:
        natural, robust = rec.get(natural_key), rec.get("objective")
        if rec.get("outcome") != "finished" or natural is None or robust is None:
            continue
        if not (math.isfinite(natural) and math.isfinite(robust)):
            continue
        point = figures.ParetoPoint(str(rec["trial_id"]), float(natural), float(robust))
        points.append(point)
        if rec.get("exportable") and (best is None or (point.robust, point.natural) > best[:2]):
            best = (point.robust, point.natural, point.trial_id)
    return points, None if best is None else best[2]


def _pareto_inputs(results: Path | None, marked: str | None) -> tuple[list[figures.ParetoPoint], str | None]:
    """The finished trials of ``results`` and the trial to mark, checked before any model is scored."""
    if results is None:
        if marked is not None:
            raise ValueError(f"--export {marked!r} marks a trial on the Pareto figure and needs --results")
        return [], None
    if not results.is_file():
        raise FileNotFoundError(f"no results file at {results}")
    points, best = pareto_points(results)
    if not points:
        raise ValueError(f"{results} holds no finished trial with a final natural accuracy and objective")
    if marked is not None and marked not in {p.trial_id for p in points}:
        raise ValueError(f"--export trial {marked!r} is not a finished trial in {results}")
    return points, marked or best


def _draw_figures(gathered: _Figures, out: Path, points: Sequence[figures.ParetoPoint], marked: str | None,
                  export_trials: Sequence[str], explicit: bool) -> list[Path]:
    written = [
        figures.plot_true_class_probability(gathered.probabilities, out / FIGURE_FILES["probability"]),
        figures.plot_adversarial_examples(gathered.examples, gathered.class_names, out / FIGURE_FILES["examples"],
                                          title=f"Adversarial examples against {gathered.first_model} "
                                                "(green: correct, red: wrong)"),
    ]
    if points:
        ids = {p.trial_id for p in points}
        if not explicit:  # an export of this search beats the best exportable trial as the marked one
            marked = next((t for t in export_trials if t in ids), marked)
        written.append(figures.plot_pareto(points, out / FIGURE_FILES["pareto"], marked=marked,
                                           title="Search trials: validation natural vs objective (worst case)"))
    return written


# ---------------------------------------------------------------------------------------------- CLI


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> OneLineParser:
    """The report command line."""
    suite = PRESETS["quick"].objective_suite
    p = OneLineParser(prog=PROG, description="Robustness table and figures of exported models or trained recipes.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--exports", nargs="+", type=Path, metavar="DIR", help="exported model folders")
    src.add_argument("--recipes", help=f"'all' or comma-separated, from {','.join(list_recipes())}")
    p.add_argument("--out", type=Path, default=Path("report"), help="folder for table.md, table.parquet, PNGs")
    p.add_argument("--epochs", type=int, default=None, help="recipes: training epochs (default: the quick preset's)")
    p.add_argument("--train-limit", type=int, default=None, help="recipes: training images (default: quick's)")
    p.add_argument("--seed", type=int, default=0, help="recipes: training seed")
    p.add_argument("--test-limit", type=int, default=1000, help="score the first N test images")
    p.add_argument("--epsilon", type=float, default=None,
                   help=f"L-inf eps of the suite, and of training for recipes (default {suite.eps:g}; exports: "
                        "the first export's recorded suite)")
    p.add_argument("--l2-epsilon", type=float, default=None, help=f"L2 eps of PGD-L2 and CW (default {suite.l2_eps:g})")
    p.add_argument("--steps", type=int, default=suite.steps, help="PGD steps")
    p.add_argument("--cw-steps", type=int, default=suite.cw_steps, help="CW optimisation steps")
    p.add_argument("--eot-samples", type=int, default=suite.eot_samples, help="gradient draws (stochastic models)")
    p.add_argument("--predict-samples", type=int, default=suite.predict_samples, help="draws averaged per prediction")
    p.add_argument("--radii", default="0.25,0.5", help="L2 radii of certified accuracy (smoothing models)")
    p.add_argument("--certify-n0", type=int, default=50, help="selection samples of CERTIFY")
    p.add_argument("--certify-n", type=int, default=200, help="estimation samples of CERTIFY")
    p.add_argument("--certify-alpha", type=float, default=0.001, help="failure probability of a certificate")
    p.add_argument("--certify-limit", type=int, default=None, help="certify the first N test images (default: all)")
    p.add_argument("--figure-limit", type=int, default=200, help="test images attacked for the probability figure")
    p.add_argument("--results", type=Path, default=None, help="a search's results.parquet: draw the Pareto front")
    p.add_argument("--export", default=None, help="trial id marked on the Pareto figure (default: best exportable)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset")
    p.add_argument("--device", default=None, help="cpu, cuda (default: $ROBUSTUNE_DEVICE or auto)")
    return p


def _report_config(args: Any, eps: float, l2_eps: float) -> ReportConfig:
    for flag in ("test_limit", "epochs", "train_limit"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    suite = replace(PRESETS["quick"].objective_suite, attacks=REPORT_ATTACKS, eps=eps, l2_eps=l2_eps,
                    steps=args.steps, cw_steps=args.cw_steps, eot_samples=args.eot_samples,
                    predict_samples=args.predict_samples)
    return ReportConfig(suite=suite, radii=_floats(args.radii), certify_n0=args.certify_n0, certify_n=args.certify_n,
                        certify_alpha=args.certify_alpha, certify_limit=args.certify_limit,
                        figure_limit=args.figure_limit)


def _recipe_names(text: str) -> list[str]:
    names = list_recipes() if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--recipes needs 'all' or recipe names, got {text!r}")
    for name in names:
        get_recipe(name)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Score every model, print the table, write table.md / table.parquet and the figures into --out."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = f"{PROG} {shlex.join(argv)}"
    points, marked = _pareto_inputs(args.results, args.export)
    device = resolve_device(args.device)
    default = PRESETS["quick"].objective_suite
    if args.exports is not None:
        given = [flag for flag in ("epochs", "train_limit") if getattr(args, flag) is not None]
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} trains recipes and does not apply to --exports")
        missing = [str(p) for p in args.exports if not p.exists()]
        if missing:
            raise FileNotFoundError(f"no export directory at {', '.join(missing)}")
        eps, l2_eps = default.eps, default.l2_eps
        if args.epsilon is None or args.l2_epsilon is None:
            first = load_export(args.exports[0])
            recorded = recorded_suite(first.metrics, first.spec)
            eps, l2_eps = recorded.eps, recorded.l2_eps
        cfg = _report_config(args, args.epsilon if args.epsilon is not None else eps,
                             args.l2_epsilon if args.l2_epsilon is not None else l2_eps)
        candidates = exported_candidates(args.exports, args.test_limit, device, args.data_dir)
    else:
        cfg = _report_config(args, args.epsilon if args.epsilon is not None else default.eps,
                             args.l2_epsilon if args.l2_epsilon is not None else default.l2_eps)
        base = quick_base(epochs=args.epochs, train_limit=args.train_limit, test_limit=args.test_limit,
                          seed=args.seed, epsilon=args.epsilon, data_dir=args.data_dir)
        candidates = recipe_candidates(_recipe_names(args.recipes), base, device)
    rows: list[ReportRow] = []
    gathered = _Figures()
    export_trials: list[str] = []
    for cand in candidates:
        if cand.model.stochastic and cfg.suite.eot_samples == 1:
            print(f"{PROG}: warning: {cand.name} is stochastic and attacked without EOT (--eot-samples 1); "
                  "robust accuracy is likely overestimated", file=sys.stderr)
        row = evaluate_candidate(cand, cfg, device)
        _figure_data(cand, cfg, device, gathered)
        rows.append(row)
        if cand.trial_id is not None:
            export_trials.append(cand.trial_id)
        print(f"    {row.name}: natural {row.natural:.1f}% worst case {row.worst:.1f}% ({row.seconds:.0f}s)")
    md, parquet = write_table(rows, cfg, args.out, command=command)
    pngs = _draw_figures(gathered, args.out, points, marked, export_trials, explicit=args.export is not None)
    _print_table(rows, cfg)
    print(f"wrote {md}, {parquet}, {', '.join(str(p) for p in pngs)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, prog=PROG))
