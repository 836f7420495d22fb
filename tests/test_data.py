"""Dataset registry, IDX reading, splits and batching."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables.data import DataConfig, DataNotFoundError, ImageSet, batches, list_datasets, load_splits, read_idx


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _tiny_fashion(folder: Path, n_train: int = 60, n_test: int = 20) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    return folder


def test_registry_lists_the_three_datasets() -> None:
    assert {"fashion-mnist", "mnist", "cifar10"} <= set(list_datasets())


def test_real_fashion_mnist_split_shapes_and_ranges(fmnist) -> None:
    assert fmnist.train.images.shape[1:] == (1, 28, 28) and fmnist.train.images.dtype == torch.uint8
    assert len(fmnist.train) == 4000 and len(fmnist.val) == 500 and len(fmnist.test) == 500
    x, y = next(batches(fmnist.val, 64))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.shape == (64, 1, 28, 28)
    assert set(y.unique().tolist()) <= set(range(10))
    assert fmnist.info.classes == 10 and len(fmnist.info.class_names) == 10


def test_validation_split_is_fixed_by_seed_and_disjoint_from_train(tmp_path: Path) -> None:
    folder = _tiny_fashion(tmp_path)
    cfg = DataConfig(data_dir=str(folder), val_size=10)
    a, b = load_splits(cfg), load_splits(cfg)
    assert torch.equal(a.val.images, b.val.images)
    assert len(a.train) == 50 and len(a.val) == 10 and len(a.test) == 20
    train_rows = {bytes(r.numpy()) for r in a.train.images.flatten(1)}
    assert not any(bytes(r.numpy()) in train_rows for r in a.val.images.flatten(1))
    other = load_splits(DataConfig(data_dir=str(folder), val_size=10, split_seed=1))
    assert not torch.equal(a.val.images, other.val.images)


def test_shuffled_batches_cover_every_example_once() -> None:
    data = ImageSet(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10))
    seen = torch.cat([y for _, y in batches(data, 3, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))


def test_missing_data_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="dataset-fashion-mnist"):
        load_splits(DataConfig(data_dir=str(tmp_path)))


def test_torchvision_dataset_without_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="--download"):
        load_splits(DataConfig(name="mnist", data_dir=str(tmp_path)))


def test_unknown_dataset_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        load_splits(DataConfig(name="svhn"))


def test_truncated_idx_file_is_rejected(tmp_path: Path) -> None:
    folder = _tiny_fashion(tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


@pytest.mark.parametrize("field", ["train_limit", "val_limit", "test_limit", "val_size"])
def test_non_positive_sizes_are_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DataConfig(**{field: 0})
