"""Where each registered dataset's raw train and test sets come from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainables.data.idx import read_idx
from trainables.data.images import ImageSet
from trainables.data.info import DatasetInfo
from trainables.registry import Registry

__all__ = ["DataNotFoundError", "DATASETS", "FASHION_MNIST_DIR", "Source", "list_datasets"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are not where they were looked for."""


# A source: (data_dir or None, download) -> (train, test)
Source = Callable[[Path | None, bool], tuple[ImageSet, ImageSet]]


def _as_set(images: np.ndarray, labels: np.ndarray) -> ImageSet:
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.dim() == 3:  # (N, H, W) -> (N, 1, H, W)
        x = x.unsqueeze(1)
    elif x.shape[-1] == 3:  # (N, H, W, 3) -> (N, 3, H, W)
        x = x.permute(0, 3, 1, 2).contiguous()
    return ImageSet(x, torch.as_tensor(np.asarray(labels), dtype=torch.int64))


def _find_idx(directory: Path, stem: str) -> Path | None:
    for folder in (directory, directory / "FashionMNIST" / "raw", directory / "fashion-mnist"):
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def _fashion_mnist(data_dir: Path | None, download: bool) -> tuple[ImageSet, ImageSet]:
    directory = data_dir or FASHION_MNIST_DIR
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    paths = [_find_idx(directory, s) for s in stems]
    if any(p is None for p in paths):
        if download:
            return _torchvision("FashionMNIST", directory, True)
        raise DataNotFoundError(
            f"Fashion-MNIST IDX files not found in {directory}: install Debian's "
            "'dataset-fashion-mnist' package (apt-get install dataset-fashion-mnist), or pass "
            "--data-dir with the four *-ubyte.gz files, or --download")
    tr_x, tr_y, te_x, te_y = (read_idx(p) for p in paths)  # type: ignore[arg-type]
    return _as_set(tr_x, tr_y), _as_set(te_x, te_y)


def _torchvision(cls_name: str, data_dir: Path | None, download: bool) -> tuple[ImageSet, ImageSet]:
    from torchvision import datasets  # imported here: only these datasets need torchvision

    if data_dir is None:
        raise DataNotFoundError(f"{cls_name} needs --data-dir (add --download to fetch it there)")
    cls = getattr(datasets, cls_name)
    try:
        train = cls(str(data_dir), train=True, download=download)
        test = cls(str(data_dir), train=False, download=download)
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        hint = "" if download else " (add --download to fetch it)"
        raise DataNotFoundError(f"{cls_name} not found in {data_dir}{hint}: {exc}") from None
    except OSError as exc:
        raise DataNotFoundError(f"{cls_name} could not be loaded from {data_dir}: {exc}") from None
    sets = []
    for ds in (train, test):
        data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else ds.data
        sets.append(_as_set(data, np.asarray(ds.targets)))
    return sets[0], sets[1]


DATASETS: Registry[tuple[DatasetInfo, Source]] = Registry("dataset")
DATASETS.add("fashion-mnist", (DatasetInfo("fashion-mnist", 1, 28, 10, (0.2860,), (0.3530,), FASHION_CLASSES),
                               _fashion_mnist))
DATASETS.add("mnist", (DatasetInfo("mnist", 1, 28, 10, (0.1307,), (0.3081,), tuple(str(i) for i in range(10))),
                       lambda d, dl: _torchvision("MNIST", d, dl)))
DATASETS.add("cifar10", (DatasetInfo("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                                     CIFAR_CLASSES),
                         lambda d, dl: _torchvision("CIFAR10", d, dl)))


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return DATASETS.names()
