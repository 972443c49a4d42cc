"""Atomic file writes: a file on disk is either complete or absent.

A file is written to a temporary ``.NAME.XXXXXXXX.ginv.tmp`` in its folder (at most 255 bytes,
however long ``NAME`` is), fsync'ed, renamed over the destination (``os.replace``) and the
folder fsync'ed; the next run that holds the folder removes a killed write's temporary
(:mod:`ginvariance.folder`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable
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
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _cannot_write(dest: Path, exc: OSError) -> OutputError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space, or choose a folder on another disk"
    else:
        fix = "choose another file name or folder"
    return OutputError(f"cannot write {str(dest)!r} ({exc.strerror or exc}); {fix}")


#: The end of every temporary name: ``.NAME.XXXXXXXX.ginv.tmp`` (eight random characters).
TEMP_SUFFIX = ".ginv.tmp"
#: The longest file name (in bytes) that common file systems accept.
MAX_NAME_BYTES = 255
_TEMP_RANDOM = 8  # hexadecimal digits between prefix and suffix
_TEMP_NAME = re.compile(r"^\.(?P<stem>.*)\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + r"$", re.S)


def temporary_prefix(name: str) -> str:
    """The prefix ``.NAME.`` of ``name``'s temporaries, ``NAME`` cut so they fit 255 bytes."""
    room = MAX_NAME_BYTES - 2 - _TEMP_RANDOM - len(TEMP_SUFFIX)
    raw = os.fsencode(name)[:room]
    return f".{os.fsdecode(raw)}."


def is_temporary_of(entry: str, names: Iterable[str]) -> bool:
    """Whether the file name ``entry`` is a temporary that :func:`atomic_write` made for one of
    ``names`` (files of the same folder)."""
    match = _TEMP_NAME.match(entry)
    if match is None:
        return False
    stem = os.fsencode(match.group("stem"))
    return any(os.fsencode(temporary_prefix(name)) == b"." + stem + b"." for name in names)


def check_file_name(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """Refuse, before any work, a file name the file system cannot hold (over 255 bytes)."""
    dest = Path(path)
    size = len(os.fsencode(dest.name))
    if size > MAX_NAME_BYTES:
        raise OutputError(
            f"{what} name {dest.name[:40]!r}... is {size} bytes long, more than the "
            f"{MAX_NAME_BYTES} a file name may have; choose a shorter name"
        )
    return dest


def check_destination(dest: Path, what: str = "output file") -> Path:
    """Refuse a ``dest`` that cannot be written as a file (its name too long, a folder, not a
    regular file), creating its folder; return that folder."""
    check_file_name(dest, what)
    folder = ensure_dir(dest.parent if str(dest.parent) else Path("."))
    if dest.is_dir():
        raise OutputError(f"{str(dest)!r} is a folder; give the name of a file to write")
    if dest.exists() and not dest.is_file():
        raise OutputError(
            f"{str(dest)!r} is not a regular file (a device, pipe or socket); give the name of "
            "a file to write"
        )
    return folder


def _create_temporary(dest: Path, folder: Path) -> str:
    """A new empty temporary for ``dest`` in ``folder``, of mode ``0o666`` less the umask (the
    kernel applies it: setting the umask would race with other threads creating files)."""
    while True:
        name = f"{temporary_prefix(dest.name)}{secrets.token_hex(_TEMP_RANDOM // 2)}{TEMP_SUFFIX}"
        try:
            os.close(os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return str(folder / name)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name the same file (through links and relative paths too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def replace_atomically(
    dest: Path, write: Callable[[str], object], *, digest: bool = False
) -> str | None:
    """Write ``dest`` through a temporary file, fsync and rename; return its SHA-256 if asked.

    The low-level half of :func:`atomic_write`: no check of who owns the folder.
    """
    folder = check_destination(dest)
    try:
        tmp = _create_temporary(dest, folder)
    except OSError as exc:
        raise _cannot_write(dest, exc) from None
    try:
        try:
            write(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            sha = _sha256_file(tmp) if digest else None
            os.replace(tmp, dest)
        except OutputError:
            raise
        except OSError as exc:  # a full disk, a quota: name the file that was being written
            raise _cannot_write(dest, exc) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)
    return sha


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Write ``path`` atomically; ``write(tmp_path)`` writes the whole content to ``tmp_path``.

    Inside an output folder that this process holds (:func:`ginvariance.folder.output_folder`),
    the file must be one that ginv wrote before or a new name (else :class:`OutputError`), and
    the folder's manifest records it with its SHA-256.
    """
    from ginvariance.folder import owner_of  # the folder module writes through this one

    dest = Path(path)
    owner = owner_of(dest)
    if owner is None:
        replace_atomically(dest, write)
        return dest
    owner.claim(dest)
    sha = replace_atomically(dest, write, digest=True)
    assert sha is not None
    owner.record(dest, sha)
    return dest


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj: Any) -> str:
    """Serialize results deterministically (sorted keys, no NaN literals)."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj))
