"""Data sets (:func:`load_dataset`, :func:`load_npz`, the IDX and CSV readers) and named,
seeded distribution shifts (:mod:`ginvariance.data.shifts`).
"""

from __future__ import annotations

from ginvariance.data.datasets import (
    DATASET_NAMES,
    IDX_DATASETS,
    IDX_FILES,
    SPLITS,
    ArrayDataset,
    load_dataset,
    stratified_split,
    validate_arrays,
)
from ginvariance.data.idx import read_idx
from ginvariance.data.mnist5k import read_mnist_csv
from ginvariance.data.npz import load_npz
from ginvariance.data.shifts import DEFAULT_SHIFTS, SHIFT_NAMES, Shift, get_shift

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_SHIFTS",
    "IDX_DATASETS",
    "IDX_FILES",
    "SHIFT_NAMES",
    "SPLITS",
    "ArrayDataset",
    "Shift",
    "get_shift",
    "load_dataset",
    "load_npz",
    "read_idx",
    "read_mnist_csv",
    "stratified_split",
    "validate_arrays",
]
