"""Reader for the IDX file format of MNIST, Fashion-MNIST and KMNIST.

An IDX file is a big-endian header followed by the raw array, gzip-compressed or not
(detected by content)::

    bytes 0-1   zero
    byte  2     dtype code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
                0x0E float64)
    byte  3     number of dimensions d
    4·d bytes   the d sizes, each a big-endian uint32
    the data    prod(sizes) items, row-major, big-endian
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ginvariance.errors import DataError

#: IDX dtype code → numpy dtype (big-endian where it matters).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_maybe_gzip(path: Path, what: str, redo: str) -> bytes:
    """The bytes of the file ``path`` (``what`` in messages), gunzipped if they are gzip."""
    if not path.exists():
        raise DataError(f"file {path} does not exist; pass the path of {what}")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not {what}; pass the path of the file itself")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror}); check its permissions") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"file {path} is a damaged gzip archive ({exc}); {redo}") from exc
    return raw


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    Parameters
    ----------
    path:
        The file, plain or ``.gz``.
    ndim:
        If given, the number of dimensions the file must have, i.e. the magic number must be
        ``0x000008{ndim:02X}`` (uint8 data): 1 for MNIST labels, 3 for MNIST images.

    Returns
    -------
    numpy.ndarray
        The array of shape ``sizes`` in native byte order (``uint8`` for MNIST files).

    Raises
    ------
    DataError
        The file is missing, not an IDX file (wrong magic number), of the wrong kind
        (``ndim``), truncated, or longer than its header says; the one-line message says which.

    Examples
    --------
    >>> import struct, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> _ = open(f, "wb").write(struct.pack(">II", 0x801, 3) + bytes([7, 2, 1]))
    >>> read_idx(f, ndim=1)
    array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    raw = read_maybe_gzip(path, "an MNIST-format IDX file", "download or decompress it again")
    hint = "pass MNIST-format files"
    if len(raw) < 4:
        raise DataError(f"file {path} is not an IDX file ({len(raw)} bytes, no header); {hint}")
    magic = int.from_bytes(raw[:4], "big")
    code, dims = raw[2], raw[3]
    expected = f"0x{0x800 + ndim:08X}" if ndim is not None else "0x000008XX"
    if raw[:2] != b"\x00\x00" or code not in IDX_DTYPES or dims == 0:
        raise DataError(
            f"file {path} is not an IDX file (magic 0x{magic:08X}, expected {expected}); {hint}"
        )
    if ndim is not None and (code != 0x08 or dims != ndim):
        raise DataError(
            f"file {path} is an IDX file of the wrong kind (magic 0x{magic:08X}, expected "
            f"{expected}: uint8 with {ndim} dimension{'s' if ndim != 1 else ''}); check that "
            "image and label files are not swapped"
        )
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"file {path} is truncated inside its IDX header; download it again")
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(dims))
    dtype = IDX_DTYPES[code]
    need = math.prod(shape) * dtype.itemsize
    have = len(raw) - header
    if have < need:
        raise DataError(
            f"file {path} is truncated: its header declares shape {shape} ({need} bytes of "
            f"data) but it holds {have}; download it again"
        )
    if have > need:
        raise DataError(
            f"file {path} has {have - need} bytes beyond the shape {shape} its header declares; "
            "it is damaged or not an IDX file, download it again"
        )
    array = np.frombuffer(raw, dtype=dtype, count=need // dtype.itemsize, offset=header)
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


__all__ = ["IDX_DTYPES", "read_idx"]
