"""Write an export: ``model.safetensors``, ``metrics.json``, ``README.md`` and, last, ``config.json``.

``config.json`` holds the format, run spec, dataset info, searched hyperparameters, the weights'
sha256 and provenance; it is written last, so a folder with a config.json is a complete export.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import Tensor

from trainables.atomic import atomic_write_bytes, atomic_write_text
from trainables.data import DatasetInfo
from trainables.models import RobustModel, build_model
from trainables.rng import private_rng
from trainables.train.config import RunSpec
from tuner.provenance import collect_provenance

from .card import model_card

__all__ = ["CONFIG_FILE", "EXPORT_FORMAT", "METRICS_FILE", "README_FILE", "WEIGHTS_FILE", "Export", "ExportError",
           "export_model", "json_bytes"]

EXPORT_FORMAT = "robustune-export/2"  # /2: the run's threat model beside its suites, not inside them
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


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def json_bytes(obj: Any) -> bytes:
    """``obj`` as indented JSON (paths, tuples and numeric scalars converted)."""
    return (json.dumps(obj, indent=2, default=_json_default) + "\n").encode()


def _cpu_tensors(model: RobustModel) -> dict[str, Tensor]:
    """The state dict as contiguous CPU tensors, none sharing storage (safetensors refuses aliases)."""
    out: dict[str, Tensor] = {}
    storages: set[int] = set()
    for name, value in model.state_dict().items():
        tensor = value.detach().to("cpu").contiguous()
        if tensor.untyped_storage().data_ptr() in storages:
            tensor = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def _check_matches_spec(tensors: dict[str, Tensor], spec: RunSpec, info: DatasetInfo) -> None:
    """Raise ValueError unless a model built from the spec takes exactly these tensors."""
    if info.name != spec.data.name:
        raise ValueError(f"dataset info is for {info.name!r} but the spec trains on {spec.data.name!r}")
    with private_rng(0):  # building initialises weights: keep the caller's RNG stream
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
    config = {
        "format": EXPORT_FORMAT,
        "space": space,
        "spec": spec.to_dict(),
        "dataset_info": asdict(info),
        "params": params,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "provenance": {**collect_provenance(spec.train.seed), **(provenance or {})},
    }
    atomic_write_bytes(out_dir / WEIGHTS_FILE, weights)
    atomic_write_bytes(out_dir / METRICS_FILE, json_bytes(metrics))
    card = model_card(model, spec, info, metrics=metrics, config=config, command=command, location=out_dir)
    atomic_write_text(out_dir / README_FILE, card)
    atomic_write_bytes(out_dir / CONFIG_FILE, json_bytes(config))
    return out_dir
