"""Atomic file writes: a file on disk is either complete or absent.

Every result file is written to a temporary file in the same folder, flushed and
fsync'ed, then renamed over the destination (``os.replace`` is atomic on POSIX), and the
folder is fsync'ed so that the rename survives a crash.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ginvariance.errors import OutputError


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if needed and check that it can be written."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create output folder {str(p)!r} ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from None
    if not p.is_dir():
        raise OutputError(f"output path {str(p)!r} is not a folder; choose a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(
            f"output folder {str(p)!r} is not writable; choose a folder you can write to"
        )
    return p


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: ``0o666`` less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _cannot_write(dest: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"cannot write {str(dest)!r} ({exc.strerror or exc}); choose another file name or folder"
    )


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Write ``path`` atomically; ``write(tmp_path)`` writes the whole content to ``tmp_path``.

    The file gets the permissions an ordinary write would give it (``0o666`` less the
    umask), not the owner-only mode of the temporary file it starts as.
    """
    dest = Path(path)
    folder = ensure_dir(dest.parent if str(dest.parent) else Path("."))
    if dest.is_dir():
        raise OutputError(f"{str(dest)!r} is a folder; give the name of a file to write")
    if dest.exists() and not dest.is_file():
        raise OutputError(
            f"{str(dest)!r} is not a regular file (a device, pipe or socket); give the name of "
            "a file to write"
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _cannot_write(dest, exc) from None
    try:
        try:
            os.fchmod(fd, _file_mode())
        finally:
            os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            raise _cannot_write(dest, exc) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)
    return dest


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> str:
    """Serialize results deterministically (sorted keys, no NaN literals)."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj))
