"""Export a trained model as safetensors + JSON + a model card, and load it back verified.

An export directory holds ``model.safetensors`` (the state dict), ``config.json`` (format, run spec,
dataset info, searched hyperparameters, the weights' sha256 and provenance), ``metrics.json``
(validation and test accuracies under the export suite) and ``README.md`` (the model card).
Loading reads JSON and safetensors only, never pickle, and refuses weights whose sha256 differs
from the one recorded in config.json.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from trainables.atomic import atomic_write
from trainables.attacks import SuiteConfig, evaluate_robustness
from trainables.data import DatasetInfo, Splits
from trainables.models import ModelConfig, RobustModel, build_model, is_stochastic
from trainables.train.config import RunSpec

__all__ = [
    "CONFIG_FILE",
    "EXPORT_FORMAT",
    "METRICS_FILE",
    "README_FILE",
    "WEIGHTS_FILE",
    "Export",
    "ExportError",
    "attack_budget",
    "collect_provenance",
    "evaluate_for_export",
    "export_model",
    "load_export",
    "load_model",
    "model_card",
    "recorded_suite",
]

EXPORT_FORMAT = "robustune-export/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
README_FILE = "README.md"


class ExportError(ValueError):
    """An export directory that cannot be loaded: missing files, bad JSON, unknown format or tampered weights."""


@dataclass(frozen=True)
class Export:
    """A loaded export: the model in eval mode, its run spec, dataset info, metrics and raw config."""

    model: RobustModel
    spec: RunSpec
    info: DatasetInfo
    metrics: dict[str, Any]
    config: dict[str, Any]


# ----------------------------------------------------------------------------------------- evaluation


def evaluate_for_export(
    model: RobustModel,
    splits: Splits,
    suite: SuiteConfig,
    device: torch.device | str | None = None,
    val_limit: int | None = None,
) -> dict[str, Any]:
    """Validation (first ``val_limit``) and test accuracies under ``suite``: {"validation", "test", ...}.

    A stochastic model attacked through its surrogate gradients (the adaptive figure, the one that
    counts) is also attacked on the test split through its own sampled gradients, as a non-adaptive
    evaluation would: ``test_plain``. The gap between the two shows what the surrogate uncovers.
    """
    out: dict[str, Any] = {}
    examples: dict[str, int] = {}
    runs = [("validation", splits.val.head(val_limit), suite), ("test", splits.test, suite)]
    if suite.adaptive and is_stochastic(model):
        runs.append(("test_plain", splits.test, replace(suite, adaptive=False)))
    for key, data, scored_with in runs:
        result = evaluate_robustness(model, data.floats(), data.labels, scored_with, device=device)
        metrics = result.as_dict()
        assert 0.0 <= metrics["robust_acc"] <= metrics["natural_acc"] <= 1.0, (key, metrics)
        out[key] = metrics
        examples[key] = result.n
    out["suite"] = asdict(suite)
    out["examples"] = examples
    return out


# ----------------------------------------------------------------------------------------- provenance


def _git_revision() -> str | None:
    """HEAD of the repository holding this file, or None without git or outside a checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def collect_provenance(seed: int | None = None) -> dict[str, Any]:
    """Git revision, library versions, Python, host, CPU/GPU, seed and a UTC timestamp."""
    return {
        "git_revision": _git_revision(),
        "torch": torch.__version__,
        "ray": _version("ray"),
        "optuna": _version("optuna"),
        "safetensors": _version("safetensors"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "seed": seed,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------------------------- write


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(data))


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, default=_json_default) + "\n").encode()


def _cpu_tensors(model: RobustModel) -> dict[str, Tensor]:
    """The state dict as contiguous CPU tensors, none sharing storage (safetensors refuses aliases)."""
    out: dict[str, Tensor] = {}
    storages: set[int] = set()
    for name, value in model.state_dict().items():
        tensor = value.detach().to("cpu").contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in storages:
            tensor = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def _check_matches_spec(tensors: dict[str, Tensor], spec: RunSpec, info: DatasetInfo) -> None:
    """Raise ValueError unless a model built from the spec takes exactly these tensors."""
    if info.name != spec.data.name:
        raise ValueError(f"dataset info is for {info.name!r} but the spec trains on {spec.data.name!r}")
    with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the caller's RNG stream
        fresh = build_model(spec.model, info).state_dict()
    want = {k: tuple(v.shape) for k, v in fresh.items()}
    have = {k: tuple(v.shape) for k, v in tensors.items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
        raise ValueError(f"model does not match spec.model={spec.model}; differing entries: {diff[:5]}")


def export_model(
    model: RobustModel,
    spec: RunSpec,
    out_dir: Path,
    *,
    info: DatasetInfo,
    metrics: dict[str, Any],
    command: str,
    space: str,
    params: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write model.safetensors, metrics.json, README.md and (last) config.json into ``out_dir``."""
    out_dir = Path(out_dir)
    tensors = _cpu_tensors(model)
    _check_matches_spec(tensors, spec, info)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = safetensors.torch.save(tensors, metadata={"format": "pt", "robustune": EXPORT_FORMAT})
    sha256 = hashlib.sha256(weights).hexdigest()
    config = {
        "format": EXPORT_FORMAT,
        "space": space,
        "spec": spec.to_dict(),
        "dataset_info": asdict(info),
        "params": params,
        "sha256": sha256,
        "provenance": {**collect_provenance(spec.train.seed), **(provenance or {})},
    }
    _write_atomic(out_dir / WEIGHTS_FILE, weights)
    _write_atomic(out_dir / METRICS_FILE, _json_bytes(metrics))
    card = model_card(model, spec, info, metrics=metrics, config=config, command=command, location=out_dir)
    _write_atomic(out_dir / README_FILE, card.encode())
    _write_atomic(out_dir / CONFIG_FILE, _json_bytes(config))
    return out_dir


# ----------------------------------------------------------------------------------------- model card


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) else "–"


def _accuracy_table(metrics: dict[str, Any]) -> str:
    splits = [s for s in ("validation", "test", "test_plain") if isinstance(metrics.get(s), dict)]
    if not splits:
        return "_No accuracies recorded._"
    attacks: list[str] = []
    for split in splits:
        attacks += [k for k in metrics[split] if k.startswith("acc/") and k not in attacks]
    examples = metrics.get("examples", {})
    names = {"test_plain": "test, plain gradients"}
    header = [f"{names.get(s, s)} ({examples[s]} examples)" if s in examples else names.get(s, s) for s in splits]
    rows = [("natural", "natural_acc")] + [(k.removeprefix("acc/"), k) for k in attacks]
    rows.append(("**worst case**", "robust_acc"))
    lines = ["| accuracy | " + " | ".join(header) + " |", "| --- |" + " ---: |" * len(splits)]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(_percent(metrics[s].get(key)) for s in splits) + " |")
    return "\n".join(lines)


def attack_budget(name: str, suite: SuiteConfig) -> str:
    """Human-readable budget of attack ``name`` in ``suite`` ("L-inf eps 0.1, 10 steps x 1 restarts")."""
    budgets = {
        "fgsm": f"L-inf eps {suite.eps:g}",
        "pgd": f"L-inf eps {suite.eps:g}, {suite.steps} steps x {suite.restarts} restarts",
        "pgd-l2": f"L2 eps {suite.l2_eps:g}, {suite.steps} steps x {suite.restarts} restarts",
        "cw": f"L2 eps {suite.l2_eps:g}, c {suite.cw_c:g}, kappa {suite.cw_kappa:g}, {suite.cw_steps} steps",
        "gaussian": f"L-inf eps {suite.eps:g} (random noise)",
    }
    return budgets.get(name, "")


def recorded_suite(metrics: dict[str, Any], spec: RunSpec) -> SuiteConfig:
    """The suite an export was scored with: metrics["suite"] when present, else ``spec.suite``."""
    raw = metrics.get("suite")
    if isinstance(raw, dict):
        known = {f.name for f in fields(SuiteConfig)}
        return RunSpec.from_dict({"suite": {k: v for k, v in raw.items() if k in known}}).suite
    return spec.suite


def model_card(
    model: RobustModel,
    spec: RunSpec,
    info: DatasetInfo,
    *,
    metrics: dict[str, Any],
    config: dict[str, Any],
    command: str,
    location: Path,
) -> str:
    """The README.md of an export: model, data, threat model, accuracies, hyperparameters, usage."""
    suite = recorded_suite(metrics, spec)
    stochastic = is_stochastic(model)
    n_params = sum(p.numel() for p in model.parameters())
    model_settings = ", ".join(f"{k}={v}" for k, v in asdict(spec.model).items())
    eot = (f"{suite.eot_samples} gradient draws per attack step, predictions averaged over "
           f"{suite.predict_samples} draws" if stochastic else "not used (the model is deterministic)")
    attacks = "\n".join(f"  - `{a}`: {attack_budget(a, suite)}" for a in suite.attacks) or "  - none"
    params = config.get("params") or {}
    param_rows = "\n".join(f"| `{k}` | `{v}` |" for k, v in params.items())
    params_md = f"| hyperparameter | value |\n| --- | --- |\n{param_rows}" if params else "_None searched._"
    train = asdict(spec.train)
    train_md = ", ".join(f"{k}={v}" for k, v in train.items())
    prov = config.get("provenance", {})
    plain_note = ("\n- Stochastic models are attacked through their straight-through surrogate gradients (adaptive). "
                  "The column\n  \"test, plain gradients\" attacks the sampled forward pass directly, as a "
                  "non-adaptive evaluation\n  would; it is shown for comparison, the adaptive figures count."
                  if "test_plain" in metrics else "")
    return f"""# {spec.model.name} on {info.name}

Adversarially robust classifier exported by robustune from the search space `{config.get("space")}`.

## Model

- Architecture: `{spec.model.name}` ({type(model).__name__}, {n_params:,} parameters, \
{"stochastic" if stochastic else "deterministic"} forward pass)
- Settings: {model_settings}
- Dataset: {info.name}, {info.channels}x{info.size}x{info.size} images, {info.classes} classes; inputs are \
pixels in [0, 1], normalisation (mean {info.mean}, std {info.std}) happens inside the model
- Weights: `{WEIGHTS_FILE}`, sha256 `{config["sha256"]}`

## Threat model

- L-inf epsilon: {suite.eps:g} (pixel units, {255 * suite.eps:.1f}/255)
- L2 epsilon: {suite.l2_eps:g}
- Attacks:
{attacks}
- EOT samples: {eot}
- Robust accuracy is the per-example worst case: an example counts only when it is classified correctly
  without attack and under every attack.{plain_note}

## Accuracy

{_accuracy_table(metrics)}

## Hyperparameters

{params_md}

Training: {train_md}

The full run spec is in `config.json` under `spec`.

## Reproduce

```bash
{command}
```

Git revision `{prov.get("git_revision")}`, torch {prov.get("torch")}, seed {prov.get("seed")}, \
created {prov.get("created")}.

## Load

```python
from tuner.export import load_model

model = load_model("{location}")  # eval mode; refuses weights whose sha256 differs from config.json
```

Re-evaluate under another suite: `python -m tuner.evaluate {location} --attacks fgsm,pgd --epsilon {suite.eps:g}`.
"""


# ----------------------------------------------------------------------------------------------- load


def _export_dir(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file() and p.name == CONFIG_FILE:
        return p.parent
    if p.is_file():
        raise ExportError(f"{p} is neither an export directory nor its {CONFIG_FILE}")
    if not p.is_dir():
        raise ExportError(f"no export directory at {p}")
    return p


def _read_json(directory: Path, name: str) -> dict[str, Any]:
    path = directory / name
    if not path.is_file():
        raise ExportError(f"{name} is missing from the export at {directory}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _read_config(directory: Path) -> dict[str, Any]:
    config = _read_json(directory, CONFIG_FILE)
    if config.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{directory / CONFIG_FILE} has format {config.get('format')!r}, "
                          f"expected {EXPORT_FORMAT!r}")
    missing = [k for k in ("spec", "dataset_info", "sha256") if k not in config]
    if missing or not isinstance(config["spec"], dict) or not isinstance(config["spec"].get("model"), dict):
        raise ExportError(f"{directory / CONFIG_FILE} lacks {', '.join(missing) or 'spec.model'}")
    return config


def _dataset_info(raw: Any) -> DatasetInfo:
    if not isinstance(raw, dict):
        raise ExportError(f"dataset_info in {CONFIG_FILE} must be an object, got {raw!r}")
    values = dict(raw)
    for key in ("mean", "std", "class_names"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    try:
        return DatasetInfo(**values)
    except TypeError as exc:
        raise ExportError(f"bad dataset_info in {CONFIG_FILE}: {exc}") from None


def _verified_tensors(directory: Path, sha256: str) -> dict[str, Tensor]:
    """Read the weights once, check their sha256 and parse those same bytes."""
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise ExportError(f"{WEIGHTS_FILE} is missing from the export at {directory}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ExportError(f"{WEIGHTS_FILE} does not match the sha256 in {CONFIG_FILE} (tampered or corrupt): "
                          f"{directory}")
    try:
        return safetensors.torch.load(data)
    except (safetensors.SafetensorError, ValueError, RuntimeError) as exc:
        raise ExportError(f"{path} is not a readable safetensors file: {exc}") from None


def _build(directory: Path, config: dict[str, Any], device: torch.device | str) -> RobustModel:
    info = _dataset_info(config["dataset_info"])
    try:
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten; keep the caller's RNG
            model = build_model(ModelConfig(**config["spec"]["model"]), info)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"cannot build the model described in {directory / CONFIG_FILE}: {exc}") from None
    tensors = _verified_tensors(directory, str(config["sha256"]))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportError(f"{WEIGHTS_FILE} does not fit spec.model in {directory}: {first}") from None
    return model.to(device).eval()


def load_model(path: str | Path, device: torch.device | str = "cpu") -> RobustModel:
    """The exported model in eval mode, from the export directory or its config.json."""
    directory = _export_dir(path)
    return _build(directory, _read_config(directory), device)


def load_export(path: str | Path, device: torch.device | str = "cpu") -> Export:
    """Model, run spec, dataset info, metrics and raw config of an export directory."""
    directory = _export_dir(path)
    config = _read_config(directory)
    try:
        spec = RunSpec.from_dict(config["spec"])
    except (TypeError, ValueError) as exc:
        raise ExportError(f"bad spec in {directory / CONFIG_FILE}: {exc}") from None
    metrics = _read_json(directory, METRICS_FILE)
    model = _build(directory, config, device)
    return Export(model=model, spec=spec, info=_dataset_info(config["dataset_info"]), metrics=metrics,
                  config=config)
