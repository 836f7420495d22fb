"""The models a report scores: exported ones, or training recipes trained here on the quick preset."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from search_spaces.base import preset_model
from search_spaces.presets import PRESETS
from trainables.data import DataConfig, DatasetInfo, ImageSet, Splits, load_splits
from trainables.models import RobustModel
from trainables.train import RunSpec, fit
from trainables.train.recipes import apply_recipe
from tuner.export import load_export

__all__ = ["Candidate", "exported_candidates", "quick_base", "recipe_candidates"]


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


def quick_base(*, epochs: int | None = None, train_limit: int | None = None, test_limit: int = 1000,
               seed: int = 0, epsilon: float | None = None, data_dir: str | None = None) -> RunSpec:
    """The quick preset's run: small ``cnn`` at its width/kernel, its data, training and per-epoch suite."""
    preset = PRESETS["quick"]
    if epsilon is not None:
        preset = replace(preset, threat=replace(preset.threat, eps=epsilon))
    data = replace(preset.data, test_limit=test_limit, data_dir=data_dir,
                   train_limit=preset.data.train_limit if train_limit is None else train_limit)
    train = replace(preset.train, epochs=preset.train.epochs if epochs is None else epochs, seed=seed)
    return RunSpec(data=data, model=preset_model(preset), train=train, suite=preset.epoch_suite, threat=preset.threat)


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
                        data_dir: str | None = None, download: bool = False) -> Iterator[Candidate]:
    """Load each export and its dataset's first ``test_limit`` test images, one at a time.

    An export is data: the dataset's location and downloads come from the arguments, never from it.
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no export directory at {', '.join(missing)}")
    loaded: dict[DataConfig, Splits] = {}
    for name, path in zip(_names(paths), paths, strict=True):
        export = load_export(path, device=device)
        data = replace(export.spec.data, test_limit=test_limit, train_limit=1, val_limit=1, data_dir=data_dir,
                       download=download)
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
