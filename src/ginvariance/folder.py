"""Output folders that ginv owns: a manifest of the files it wrote, and a lock for the run.

What ownership and the lock mean for a user is in the README ("Output folders, locks and
checkpoints"). The manifest ``.ginv-manifest.json`` is ``{"format": 1, "files": {PATH: SHA256 |
null}}``, ``PATH`` relative to the folder and ``/``-separated, ``null`` while a file's first
write is under way; the lock ``.ginv.lock`` holds its holder's pid (where ``fcntl`` does not
exist, as on Windows, the folder is not locked). Only the folder itself is locked: a second
process writing into a subfolder of a held folder is not stopped by the lock, but it cannot
replace the files listed in the outer manifest either.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from ginvariance.errors import OutputError
from ginvariance.io import ensure_dir, is_temporary_of, replace_atomically, to_json

try:
    import fcntl
except ImportError:  # not POSIX (Windows): the manifest still works, the folder is not locked
    fcntl = None  # type: ignore[assignment]

MANIFEST_FILE = ".ginv-manifest.json"
LOCK_FILE = ".ginv.lock"
MANIFEST_FORMAT = 1

_registry: dict[str, OutputFolder] = {}  # realpath of the root → the folder held
_registry_lock = threading.Lock()


def _real_entry(path: str | os.PathLike[str]) -> str:
    """The real path of the folder of ``path``, joined with its name (the entry itself is not
    resolved: a symbolic link in a held folder is an entry of that folder)."""
    head, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(head), name)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _missing_folders(target: Path, stop: str | None = None) -> list[Path]:
    """``target`` and those of its parents that do not exist (below ``stop``), outer first."""
    missing = []
    for folder in (target, *target.parents):
        if folder.exists() or os.path.realpath(folder) == stop:
            break
        missing.append(folder)
    return missing[::-1]


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (listed outer first) from the inside out, each only if empty."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def read_manifest(root: str | os.PathLike[str]) -> dict[str, str | None]:
    """The files listed in ``root``'s manifest (``{}`` when there is none).

    Raises
    ------
    OutputError
        The manifest is not one that ginv wrote (unreadable, not JSON, another shape).
    """
    path = Path(root) / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise OutputError(
            f"cannot read {str(path)!r} ({exc.strerror or exc}); check its permissions"
        ) from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    files = data.get("files") if isinstance(data, dict) else None
    if (
        not isinstance(files, dict)
        or data.get("format") != MANIFEST_FORMAT
        or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in files.items()
        )
        or any(p in ("", ".", "..") for k in files for p in k.split("/"))  # unsafe paths
    ):
        raise OutputError(
            f"{str(path)!r} is not a manifest that ginv wrote, so ginv cannot tell its own "
            "files in this folder from others; restore it, or choose another output folder"
        )
    return dict(files)


def manifest_problems(root: str | os.PathLike[str]) -> list[str]:
    """Listed files that are missing or whose bytes differ from the SHA-256 ginv recorded
    (one listed ``null``, whose first write a dead process left, only if it exists)."""
    problems = []
    for rel, sha in sorted(read_manifest(root).items()):
        path = Path(root) / rel
        if not path.is_file():
            if sha is not None:
                problems.append(f"{rel}: missing")
            continue
        if sha is None or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            problems.append(f"{rel}: changed since ginv wrote it")
    return problems


class OutputFolder:
    """A folder held by this process: its lock, its manifest, and the folders it created.

    Made by :func:`output_folder`; library code reaches it through :func:`owner_of`.
    """

    def __init__(self, root: Path, real: str) -> None:
        self.root = root
        self.real = real
        self.files: dict[str, str | None] = {}
        self._fd: int | None = None
        self._made_root: list[Path] = []  # the folder and parents this run made, outer first
        self._made_sub: list[Path] = []  # folders inside it this run made, outer first
        self._made_lock = False
        self._mutex = threading.RLock()

    def _open(self) -> None:
        self._made_root = _missing_folders(self.root.absolute())
        ensure_dir(self.root)
        lock = self.root / LOCK_FILE
        self._made_lock = not lock.exists()
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            _remove_empty(self._made_root)
            raise OutputError(
                f"cannot create the lock file {str(lock)!r} ({exc.strerror or exc}); "
                "choose a folder you can write to"
            ) from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 32, 0).decode("ascii").strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"pid {holder}" if holder.isdigit() else "another process"
                raise OutputError(
                    f"{str(self.root)!r} is in use by ginv ({who}); wait for it to finish, "
                    "or choose another output folder"
                ) from None
            raise OutputError(
                f"cannot lock {str(lock)!r} ({exc.strerror or exc}); choose another folder"
            ) from None
        self._fd = fd
        pid = f"{os.getpid()}\n".encode("ascii")
        with contextlib.suppress(OSError):
            if os.pread(fd, 64, 0) != pid:  # rewritten only when it changes
                os.ftruncate(fd, 0)
                os.pwrite(fd, pid, 0)
        try:
            self.files = read_manifest(self.root)
            self._remove_temporaries()
        except BaseException:
            self._release()
            raise

    def _remove_temporaries(self) -> None:
        """Remove the temporaries of listed files (and of the manifest) that a kill left."""
        by_folder: dict[str, set[str]] = {"": {MANIFEST_FILE}}
        for rel in self.files:
            head, _, name = rel.rpartition("/")
            by_folder.setdefault(head, set()).add(name)
        for head, names in by_folder.items():
            folder = self.root / head if head else self.root
            try:
                entries = os.listdir(folder)
            except OSError:
                continue
            for entry in entries:
                if is_temporary_of(entry, names):
                    with contextlib.suppress(FileNotFoundError):
                        (folder / entry).unlink()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def _close(self) -> None:
        """Forget listed files that were never written; remove what this run made in vain."""
        try:
            with self._mutex:
                kept = {rel: sha for rel, sha in self.files.items() if self._path(rel).exists()}
                if kept != self.files:
                    self.files = kept
                    with contextlib.suppress(OSError):  # a full disk: keep the first error
                        self._save()
                _remove_empty(self._made_sub)
                if not self.files:  # nothing written: leave the disk as it was found
                    with contextlib.suppress(FileNotFoundError):
                        (self.root / MANIFEST_FILE).unlink()
                    if self._made_lock:  # unlinked while held: a later run makes a new one
                        with contextlib.suppress(FileNotFoundError):
                            (self.root / LOCK_FILE).unlink()
                    _remove_empty(self._made_root)
        finally:
            self._release()

    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` (a file in the folder or below it) relative to the folder, ``/``-separated."""
        real = _real_entry(path)
        if not _within(real, self.real) or real == self.real:
            raise OutputError(f"{os.fspath(path)!r} is not inside {str(self.root)!r}")
        return os.path.relpath(real, self.real).replace(os.sep, "/")

    def _path(self, rel: str) -> Path:
        return self.root.joinpath(*rel.split("/"))

    def check_writable(self, path: str | os.PathLike[str]) -> None:
        """Refuse (:class:`OutputError`) a file that exists and that ginv did not write."""
        rel = self.relative(path)
        if rel not in self.files and os.path.lexists(path):
            raise OutputError(
                f"{os.fspath(path)!r} exists and was not written by ginv (it is not listed in "
                f"{str(self.root / MANIFEST_FILE)!r}); ginv replaces only its own files: move "
                "it away, or choose another output folder"
            )

    def ensure_dir(self, path: str | os.PathLike[str]) -> Path:
        """Create the folder ``path`` inside this one, remembering what was created."""
        missing = _missing_folders(Path(path).absolute(), self.real)
        ensure_dir(path)
        with self._mutex:
            self._made_sub.extend(missing)
        return Path(path)

    def claim(self, path: str | os.PathLike[str]) -> None:
        """List ``path`` before its first write (refusing a file ginv did not write)."""
        with self._mutex:
            self.check_writable(path)
            self.ensure_dir(Path(path).parent)
            rel = self.relative(path)
            if rel not in self.files:
                self.files[rel] = None
                self._save()

    def record(self, path: str | os.PathLike[str], sha256: str) -> None:
        """Record the SHA-256 of what was just written to ``path``."""
        with self._mutex:
            self.files[self.relative(path)] = sha256
            self._save()

    def remove(self, path: str | os.PathLike[str]) -> bool:
        """Delete ``path`` if ginv wrote it; ``False`` (and nothing done) otherwise."""
        with self._mutex:
            rel = self.relative(path)
            if rel not in self.files:
                return False
            with contextlib.suppress(FileNotFoundError):
                Path(path).unlink()
            del self.files[rel]
            self._save()
            return True

    def _save(self) -> None:
        text = to_json({"format": MANIFEST_FORMAT, "files": self.files})
        replace_atomically(
            self.root / MANIFEST_FILE, lambda tmp: Path(tmp).write_text(text, "ascii")
        )


@contextlib.contextmanager
def output_folder(path: str | os.PathLike[str]) -> Iterator[OutputFolder]:
    """Hold the output folder ``path`` (creating it) for the ``with`` block.

    Within this process the hold is re-entrant, and a folder inside a held one is the held
    one: its files are listed in the outer manifest. A hold under which no file was written
    leaves the disk as it found it (no manifest, no lock, no folder it created).

    Raises
    ------
    OutputError
        Another process holds the folder, the folder cannot be created or written, or its
        manifest is damaged.
    """
    root = Path(path)
    held = owner_of(root, inclusive=True)
    if held is not None:
        if os.path.realpath(root) != held.real:
            held.ensure_dir(root)
        yield held
        return
    folder = OutputFolder(root, os.path.realpath(root))
    with _registry_lock:
        if folder.real in _registry:  # another thread of this process holds it
            raise OutputError(
                f"{str(root)!r} is in use by ginv (pid {os.getpid()}); wait for it to finish, "
                "or choose another output folder"
            )
        _registry[folder.real] = folder
    try:
        folder._open()
        try:
            yield folder
        finally:
            folder._close()
    finally:
        with _registry_lock:
            _registry.pop(folder.real, None)


def owner_of(path: str | os.PathLike[str], *, inclusive: bool = False) -> OutputFolder | None:
    """The folder held by this process that ``path`` lies in (``None`` when there is none).

    ``inclusive``: ``path`` may be the held folder itself.
    """
    if not _registry:
        return None
    real = os.path.realpath(path) if inclusive else _real_entry(path)
    with _registry_lock:
        for root, folder in _registry.items():
            if folder._fd is not None and _within(real, root) and (inclusive or real != root):
                return folder
    return None


def _forget_in_child() -> None:
    """A forked child does not hold its parent's folders (the lock stays the parent's)."""
    for folder in _registry.values():
        if folder._fd is not None:
            with contextlib.suppress(OSError):
                os.close(folder._fd)  # closing a copy does not release the parent's lock
            folder._fd = None
    _registry.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


__all__ = [
    "LOCK_FILE",
    "MANIFEST_FILE",
    "OutputFolder",
    "manifest_problems",
    "output_folder",
    "owner_of",
    "read_manifest",
]
