"""Load an export back, verified: JSON and safetensors only (never pickle), weights checked against their sha256."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from trainables.data import DatasetInfo
from trainables.models import ModelConfig, RobustModel, build_model
from trainables.rng import private_rng
from trainables.train.config import RunSpec

from .files import CONFIG_FILE, EXPORT_FORMAT, METRICS_FILE, WEIGHTS_FILE, Export, ExportError

__all__ = ["load_export", "load_model"]


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


FORMAT_1 = "robustune-export/1"  # what robustune wrote until 2026-12: still read, see _from_format_1


def _from_format_1(config: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
    """Bring a format-1 export's config (and metrics) to format 2, in place.

    Format 1 kept the threat model inside each suite and called sampled gradients "plain". Exports
    of that format were handed to users (the main job's), so they still load; older run-spec
    formats were never exported by a released main job and are not read.
    """
    def move(holder: dict[str, Any]) -> None:
        suite = holder.get("suite")
        if isinstance(suite, dict):
            if "threat" in suite:
                holder.setdefault("threat", suite.pop("threat"))
            if isinstance(suite.get("gradients"), list):
                suite["gradients"] = ["sampled" if w == "plain" else w for w in suite["gradients"]]

    if isinstance(config.get("spec"), dict):
        move(config["spec"])
    if metrics is not None:
        move(metrics)
    config["format"] = EXPORT_FORMAT


def _read_config(directory: Path) -> tuple[dict[str, Any], bool]:
    """The export's config.json in the current format, and whether it was written in format 1."""
    config = _read_json(directory, CONFIG_FILE)
    format_1 = config.get("format") == FORMAT_1
    if format_1:
        _from_format_1(config)
    if config.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{directory / CONFIG_FILE} has format {config.get('format')!r}, "
                          f"expected {EXPORT_FORMAT!r}")
    missing = [k for k in ("spec", "dataset_info", "sha256") if k not in config]
    if missing or not isinstance(config["spec"], dict) or not isinstance(config["spec"].get("model"), dict):
        raise ExportError(f"{directory / CONFIG_FILE} lacks {', '.join(missing) or 'spec.model'}")
    return config, format_1


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


def _weight_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in the export's weights, from the safetensors header alone (no tensor is read)."""
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise ExportError(f"{WEIGHTS_FILE} is missing from the export at {directory}")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 - not a dict
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise ExportError(f"{path} is not a readable safetensors file: {exc}") from None


def _check_fit(directory: Path, config: ModelConfig, info: DatasetInfo) -> None:
    """The model config.json describes holds exactly the weights' tensors, checked before any is allocated.

    The model is built on the meta device (shapes, no memory), so an edited size (``hidden_blocks``
    10^6) is refused in one line instead of allocating what it asks for.
    """
    try:
        with torch.device("meta"):
            skeleton = build_model(config, info)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"cannot build the model described in {directory / CONFIG_FILE}: {exc}") from None
    wanted = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    held = _weight_shapes(directory)
    for name in sorted(wanted.keys() | held.keys()):
        if wanted.get(name) != held.get(name):
            said = "absent" if name not in wanted else f"{list(wanted[name])}"
            has = "absent" if name not in held else f"{list(held[name])}"
            raise ExportError(f"spec.model in {directory / CONFIG_FILE} does not fit {WEIGHTS_FILE}: {name} is "
                              f"{said} by the config, {has} in the weights")


def _build(directory: Path, config: dict[str, Any], device: torch.device | str) -> RobustModel:
    info = _dataset_info(config["dataset_info"])
    try:
        model_config = ModelConfig(**config["spec"]["model"])
    except (TypeError, ValueError) as exc:
        raise ExportError(f"cannot build the model described in {directory / CONFIG_FILE}: {exc}") from None
    _check_fit(directory, model_config, info)
    with private_rng(0):  # the initial weights are overwritten; keep the caller's RNG stream
        model = build_model(model_config, info)
    tensors = _verified_tensors(directory, str(config["sha256"]))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportError(f"{WEIGHTS_FILE} does not fit spec.model in {directory}: {first}") from None
    return model.to(device).eval()


def load_model(path: str | Path, device: torch.device | str = "cpu") -> RobustModel:
    """The exported model in eval mode, from the export directory or its config.json.

    A stochastic model's (LWTA, PNI) forward pass is one random draw; the export's figures average
    ``predict_samples`` draws (its README's "Load" section): ``trainables.models.predict(model, x, samples=N)``.
    """
    directory = _export_dir(path)
    return _build(directory, _read_config(directory)[0], device)


def load_export(path: str | Path, device: torch.device | str = "cpu") -> Export:
    """Model, run spec, dataset info, metrics and raw config of an export directory."""
    directory = _export_dir(path)
    config, format_1 = _read_config(directory)
    metrics = _read_json(directory, METRICS_FILE)
    if format_1:
        _from_format_1({}, metrics)
    try:
        spec = RunSpec.from_dict(config["spec"])
    except (TypeError, ValueError) as exc:
        raise ExportError(f"bad spec in {directory / CONFIG_FILE}: {exc}") from None
    model = _build(directory, config, device)
    return Export(model=model, spec=spec, info=_dataset_info(config["dataset_info"]), metrics=metrics,
                  config=config)
