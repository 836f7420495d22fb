"""Datasets by name, kept as uint8 tensors in memory; pixels reach models in [0, 1]."""

from trainables.data.config import DataConfig
from trainables.data.idx import read_idx
from trainables.data.images import ImageSet, Splits, batches
from trainables.data.info import DatasetInfo
from trainables.data.loading import load_splits
from trainables.data.sources import DATASETS, FASHION_MNIST_DIR, DataNotFoundError, list_datasets

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DIR",
    "DataConfig",
    "DataNotFoundError",
    "DatasetInfo",
    "ImageSet",
    "Splits",
    "batches",
    "list_datasets",
    "load_splits",
    "read_idx",
]
