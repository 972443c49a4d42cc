"""Crash safety: training killed with SIGKILL at random moments resumes to the same weights.

A forked child (torch is already imported, so a fork costs milliseconds) trains a small
regularized CNN on digits and checkpoints after every epoch; the parent kills it with
SIGKILL a random (seeded) fraction of an epoch after its first new checkpoint (every other
kill: the moment a checkpoint's temporary file appears), so kills land in the middle of a step, of
the evaluation, and of the checkpoint writes. After each kill every
file in the output folder is either complete (the weights load and pass their checksum,
the sidecar parses) or a leftover temporary file that no loader reads, and the folder's
manifest lists ginv's files; then the child resumes, removing the temporaries left. The
finished run must equal an uninterrupted one tensor for tensor. One more kill goes through
the real ``ginv train`` in a subprocess, resumed with ``--resume``.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ginvariance.folder import LOCK_FILE, MANIFEST_FILE, manifest_problems, read_manifest
from ginvariance.training import TrainConfig, load_checkpoint, train

CONFIG = TrainConfig(mode="regularized", model="cnn", limit=128, epochs=10, batch_size=32, seed=3)
NAME = CONFIG.mode
KILLS = 12
TEMP = re.compile(rf"^\.{NAME}\.(safetensors|json)\.[^/]+\.tmp$")
MANIFEST_TEMP = re.compile(r"^\.\.ginv-manifest\.json\.[^/]+\.tmp$")  # its temporaries

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")


def read_all(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The uninterrupted run, and its time per epoch."""
    out = tmp_path_factory.mktemp("reference")
    began = time.perf_counter()
    train(CONFIG, out)
    return out / f"{NAME}.safetensors", (time.perf_counter() - began) / CONFIG.epochs


def check_folder(out: Path, last_epoch: int) -> tuple[int, int]:
    """Every file is complete or an unread temporary; returns (checkpoint epoch, temporaries)."""
    weights, sidecar = out / f"{NAME}.safetensors", out / f"{NAME}.json"
    temporaries = 0
    for entry in out.iterdir():
        if TEMP.match(entry.name):
            temporaries += 1
        elif entry.name not in (LOCK_FILE, MANIFEST_FILE) and not MANIFEST_TEMP.match(entry.name):
            assert entry in (weights, sidecar), f"unexpected file {entry.name}"
    # ginv's manifest lists what it wrote; only a write a kill cut short can disagree
    listed = read_manifest(out)
    assert set(listed) <= {weights.name, sidecar.name}
    assert all(p.name in listed for p in (weights, sidecar) if p.exists())
    assert len(manifest_problems(out)) <= 1
    if not weights.exists():
        assert not sidecar.exists()  # the sidecar is written after the weights
        return 0, temporaries
    _, meta = load_checkpoint(weights, config=CONFIG)  # checks the SHA-256 of every tensor
    epoch = int(meta["epoch"])
    assert epoch >= last_epoch, "a kill lost a finished epoch"
    assert len(meta["history"]) == epoch
    if sidecar.exists():  # written second: at most one epoch behind the weights
        side = json.loads(sidecar.read_text())
        assert side["epoch"] in (epoch, epoch - 1)
    return epoch, temporaries


def fork_training(out: Path) -> int:
    pid = os.fork()
    if pid == 0:  # the child: train (resuming when there is a checkpoint), then leave at once
        code = 1
        try:
            resume = (out / f"{NAME}.safetensors").exists()
            train(CONFIG, out, resume=resume)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def temporaries_in(out: Path) -> set[str]:
    return {name for name in os.listdir(out) if TEMP.match(name)} if out.exists() else set()


def running(pid: int) -> bool:
    """Whether the child has not exited yet (without reaping it)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def wait_for_temporary(pid: int, out: Path, seconds: float, old: set[str]) -> None:
    """Return once a new temporary (not in ``old``) is in ``out``, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and running(pid):
        try:
            if any(TEMP.match(name) and name not in old for name in os.listdir(out)):
                return
        except FileNotFoundError:
            pass


def wait_for_new_checkpoint(pid: int, out: Path, seconds: float) -> None:
    """Return once the child has written a new checkpoint or exited, or after ``seconds``.

    A resumed child first loads its data and checkpoint, which can take longer than an
    epoch of this small run; waiting for its first new checkpoint makes the kills land at
    later and later epochs instead of always before the first one.
    """
    weights = out / f"{NAME}.safetensors"
    before = weights.stat().st_mtime_ns if weights.exists() else None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and running(pid):
        try:
            if weights.stat().st_mtime_ns != before:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.001)


def assert_same_run(path: Path, reference: Path) -> None:
    tensors, meta = read_all(path)
    expected, expected_meta = read_all(reference)
    assert tensors.keys() == expected.keys()
    for key, value in expected.items():  # model weights and Adam's moments alike
        assert torch.equal(tensors[key], value), key
    assert json.loads(meta["ginvariance"]) == json.loads(expected_meta["ginvariance"])


def test_sigkill_at_random_moments_then_resume(
    reference: tuple[Path, float], tmp_path: Path
) -> None:
    ref_path, epoch_seconds = reference
    rng = random.Random(20230611)
    kills = runs = temporaries = 0
    epochs_seen: set[int] = set()
    out = tmp_path / "run0"
    last_epoch = 0
    while True:
        old = temporaries_in(out)
        pid = fork_training(out)
        killed = False
        if kills < KILLS:
            if kills % 2:  # odd kills: the moment a temporary file appears, inside a write
                wait_for_temporary(pid, out, rng.uniform(0.0, 3.0 * epoch_seconds), old)
            else:  # even kills: after the child's first new checkpoint, within the next epoch
                wait_for_new_checkpoint(pid, out, 30.0)
                time.sleep(rng.uniform(0.0, 1.0 * epoch_seconds))
            os.kill(pid, signal.SIGKILL)  # a child that already exited is a zombie: no error
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            assert os.WTERMSIG(status) == signal.SIGKILL
            killed = True
        else:
            assert os.WEXITSTATUS(status) == 0, "the training child failed (see stderr)"
        epoch, _ = check_folder(out, last_epoch)
        temporaries += len(temporaries_in(out) - old)
        if killed:
            kills += 1
            epochs_seen.add(epoch)
            last_epoch = epoch
            continue
        # the run finished: it must be the uninterrupted run, tensor for tensor
        assert epoch == CONFIG.epochs
        assert_same_run(out / f"{NAME}.safetensors", ref_path)
        # the resumed runs removed the temporaries that the kills left, and the manifest
        # records exactly what is on disk
        assert not temporaries_in(out), sorted(temporaries_in(out))
        assert manifest_problems(out) == []
        runs += 1
        if kills >= KILLS:
            break
        out, last_epoch = tmp_path / f"run{runs}", 0  # kills still owed: another run
    assert kills >= 10 and runs >= 1
    assert len(epochs_seen) >= 3, f"kills landed at too few epochs: {sorted(epochs_seen)}"
    assert temporaries >= 1, "no kill landed inside a checkpoint write"


def test_sigkill_real_cli_then_resume(
    reference: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ginv train` in a subprocess, killed after its first checkpoint; `--resume` finishes it."""
    from ginvariance.cli import main

    out = tmp_path / "cli"
    args = ["train", "--method", NAME, "--model", "cnn", "--limit", "128", "--epochs", "10"]
    args += ["--batch-size", "32", "--seed", "3", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ginvariance.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    weights = out / f"{NAME}.safetensors"
    deadline = time.monotonic() + 120
    while not weights.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    epoch, _ = check_folder(out, 1)
    assert 1 <= epoch < CONFIG.epochs
    main([*args, "--resume", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["metrics"]["epoch"] == CONFIG.epochs
    assert_same_run(weights, reference[0])
