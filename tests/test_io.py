"""Atomic writes: complete or absent, and with the permissions of an ordinary write."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ginvariance.io import atomic_write, atomic_write_json, atomic_write_text


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=lambda m: f"umask-{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_file_has_the_mode_of_an_ordinary_write(tmp_path: Path, umask: int) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    atomic_write_json(tmp_path / "results.json", {"a": 1})
    assert mode(tmp_path / "atomic.txt") == mode(plain) == 0o666 & ~umask
    assert mode(tmp_path / "results.json") == 0o666 & ~umask
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_folder_or_a_device_is_never_replaced(tmp_path: Path) -> None:
    from ginvariance.errors import OutputError

    folder = tmp_path / "results.json"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        atomic_write_json(folder, {"a": 1})
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        atomic_write_json(fifo, {"a": 1})
    assert folder.is_dir() and stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.json", "results.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "results.json"
    atomic_write_json(dest, {"old": True})
    before = dest.read_bytes()

    def broken(tmp: str) -> None:
        Path(tmp).write_text('{"half": ')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(dest, broken)
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_writing_never_touches_the_process_umask(
    tmp_path: Path, umask: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting and restoring the umask races with other threads creating files: the mode is
    read from /proc/self/status instead."""

    def no_umask(mask: int) -> int:
        raise AssertionError(f"os.umask({mask:o}) called while writing")

    monkeypatch.setattr(os, "umask", no_umask)
    path = tmp_path / "out.json"
    atomic_write_json(path, {"a": 1})
    monkeypatch.undo()
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode(path) == mode(plain) == 0o666 & ~umask
