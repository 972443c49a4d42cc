"""Labelled arrays from an ``.npz`` file, read without pickle and with its size checked first.

An ``.npz`` is a zip of ``.npy`` arrays, often from an untrusted source: the sizes its
headers declare are checked before anything is decompressed, and no object array is loaded.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ginvariance.checks import check_int
from ginvariance.data.datasets import (
    ArrayDataset,
    _check_input_dtype,
    _to_dataset,
    validate_arrays,
)
from ginvariance.errors import DataError, LabelError

#: The most bytes ``x`` and ``y`` of one ``.npz`` may take once decompressed (4 GiB: a small
#: file can expand a thousandfold); raise it with ``max_bytes`` or ``--max-data-gib``.
MAX_ARRAY_BYTES = 4 * 2**30

_NPZ_FIX = "save one with numpy.savez(path, x=inputs, y=labels)"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a member, or an empty archive


def _size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype from the header of a ``.npy`` stream; ``None`` if it is not one."""
    if fh.read(6) != b"\x93NUMPY":
        return None
    major = fh.read(2)[:1]
    reader = {b"\x01": np.lib.format.read_array_header_1_0}.get(
        major, np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = reader(fh)
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _check_npz_sizes(path: Path, keys: Sequence[str], max_bytes: int) -> None:
    """Refuse an archive whose arrays ``keys`` would pass ``max_bytes`` once decompressed.

    Reads only the zip directory and the first bytes of each member (its ``.npy`` header):
    the decompressed size recorded in the zip header bounds what :mod:`zipfile` will ever
    inflate, and the shape and dtype in the ``.npy`` header bound what numpy allocates.
    """
    total = 0
    with zipfile.ZipFile(path) as archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist()}
        for key in keys:
            if key not in members:
                continue  # reported by the caller, with the names the archive has
            info = archive.getinfo(members[key])
            with archive.open(info) as fh:
                header = _npy_header(fh)
            if header is None:
                raise DataError(
                    f"member {info.filename!r} of {path} is not a .npy array; {_NPZ_FIX}"
                )
            shape, dtype = header
            if dtype.hasobject:
                continue  # refused when read (no pickle)
            claimed = math.prod(shape) * dtype.itemsize
            total += max(info.file_size, claimed)
            if total > max_bytes:
                raise DataError(
                    f"array {key!r} in {path} is too large to load: it would take "
                    f"{_size_text(max(info.file_size, claimed))} once decompressed (shape "
                    f"{shape}, {dtype}), over the limit of "
                    f"{_size_text(max_bytes)} for one data file; pass a smaller array, or raise "
                    "the limit (--max-data-gib, or load_npz(..., max_bytes=...))"
                )


def load_npz(
    path: str | Path, num_classes: int | None = None, *, max_bytes: int = MAX_ARRAY_BYTES
) -> ArrayDataset:
    """Load a labelled data set from a ``.npz`` file holding arrays ``x`` and ``y``.

    ``x`` ``(N, *S)``, floating point, becomes float32 in its shape (no channel axis is
    added); integer inputs are refused, as everywhere: store them on the scale the model was
    trained on, e.g. ``x.astype("float32") / 255``. ``y`` ``(N,)`` becomes int64. Pickled
    objects are never loaded.

    Parameters
    ----------
    path:
        The ``.npz`` file (``numpy.savez(path, x=inputs, y=labels)``).
    num_classes:
        Number of classes ``K``; ``None`` counts them from the labels.
    max_bytes:
        The most bytes ``x`` and ``y`` may take together once decompressed, checked from
        the file's headers first (default :data:`MAX_ARRAY_BYTES`, 4 GiB).

    Raises
    ------
    DataError
        Missing or unreadable file, not an ``.npz`` archive, arrays over ``max_bytes``, ``x``
        missing, empty, of rank < 2, not floating point, not finite or too large for float32.
    LabelError
        ``y`` missing, not 1-D, not integer-valued, negative, ``>= num_classes`` or of another
        length than ``x``.
    """
    path = Path(path)
    fix = _NPZ_FIX
    if not path.exists():
        raise DataError(f"file {path} does not exist; pass an .npz file ({fix})")
    if path.is_dir():
        raise DataError(f"{path} is a folder; pass an .npz file ({fix})")
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise DataError(f"file {path} holds a single .npy array, not an .npz archive; {fix}")
    if not magic.startswith(_ZIP_MAGIC):
        raise DataError(
            f"file {path} is not an .npz archive (an .npz is a zip of .npy arrays; this file "
            f"starts with {magic!r}); {fix}"
        )
    check_int(max_bytes, "max_bytes (a number of bytes)")
    try:
        _check_npz_sizes(path, ("x", "y"), max_bytes)
        archive = np.load(path, allow_pickle=False)
    except MemoryError:
        raise DataError(f"file {path} is too large to load into memory; {fix}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"file {path} is not a readable .npz archive ({exc}); {fix}") from exc
    with archive:
        keys = set(archive.files)
        arrays = {}
        for key, error in (("x", DataError), ("y", LabelError)):
            if key not in keys:
                raise error(f"file {path} has no array {key!r} (it has {sorted(keys)}); {fix}")
            try:
                arrays[key] = archive[key]
            except MemoryError:
                raise error(
                    f"array {key!r} in {path} is too large to load into memory (its header "
                    "may be corrupt); store a smaller array"
                ) from None
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise error(
                    f"array {key!r} in {path} cannot be read without pickle ({exc}); "
                    "store plain numeric arrays"
                ) from exc
    x, y = arrays["x"], arrays["y"]
    _check_input_dtype(x.dtype, f"array 'x' in {path}")
    validate_arrays(x, y, num_classes)
    with np.errstate(over="ignore"):
        x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        big = float(np.abs(arrays["x"]).max())
        raise DataError(
            f"array 'x' in {path} has values too large for float32 (|x| up to {big:.3g}; "
            f"float32 holds up to {float(np.finfo(np.float32).max):.3g}); rescale the inputs "
            "to the range the model was trained on"
        )
    k = int(np.max(y)) + 1 if num_classes is None else num_classes
    return _to_dataset(x, np.asarray(y).astype(np.int64), k, path.stem)


__all__ = ["MAX_ARRAY_BYTES", "load_npz"]
