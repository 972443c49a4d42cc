"""Nothing lost, nothing mixed: the output folder ginv owns, its lock, and verified checkpoints.

* ``--force`` replaces or removes only files listed in the folder's manifest (a user's photo
  survives), clears earlier results only once training has succeeded, and trains a corrupt
  checkpoint of the same configuration again.
* A second process on a held folder stops with one line; a killed holder leaves no lock.
* Every loader verifies the checksum over metadata and tensors; crafted header values are
  refused before any model is built; format-1 checkpoints are refused.
* ``ginv measure --output`` never replaces an input, and is checked before any work.
* Paths that are not UTF-8 work end to end; stale temporaries are removed under the lock;
  SIGTERM and a full disk end with one line and leave nothing half-written or empty.
* The same command gives byte-identical files (``results.json`` once ``timings`` is removed).
* A stress test: random interleavings of two ``ginv train`` / ``ginv run`` processes on one
  folder, with random SIGKILLs.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ginvariance.errors import CheckpointError, OutputError
from ginvariance.experiments import (
    MODELS,
    RESULTS_FILE,
    TRAINED_MODELS,
    StudyConfig,
    checkpoint_dir,
    load_results,
    load_saliency,
    plan_checkpoints,
    run_study,
)
from ginvariance.folder import (
    LOCK_FILE,
    MANIFEST_FILE,
    manifest_problems,
    output_folder,
    read_manifest,
)
from ginvariance.io import TEMP_SUFFIX, to_json
from ginvariance.report import render_report
from ginvariance.training import TrainConfig, load_checkpoint, load_weights, train
from ginvariance.training.checkpoint import _digest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

# The smallest study that runs every step: its numbers mean nothing.
MINI = StudyConfig(
    limit=32,
    epochs=1,
    n_measure=8,
    n_spectral=4,
    shifts=("uniform",),
    n_directions=1,
    eps=(1e-3,),
    n_saliency=1,
    batch_size=32,
)
TRAIN = ["--model", "mlp", "--limit", "32", "--epochs", "1", "--batch-size", "32"]
MEASURE = ["--dataset", "digits", "--limit", "8", "--no-saliency"]


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``ginv`` in process: (exit status, stdout, stderr)."""
    from ginvariance.cli import main

    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("ginv: error: ") and "Traceback" not in err


def without_timings(results: dict) -> str:
    return to_json({k: v for k, v in results.items() if k != "timings"})


def study_with_report(config: StudyConfig, out: Path, **kwargs) -> dict:
    """What ``ginv run`` does: the study and its report under one hold of the folder."""
    with output_folder(out):
        results = run_study(config, out, **kwargs)
        render_report(results, out, load_saliency(out))
    return results


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mini") / "study"
    return out, study_with_report(MINI, out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder written by ``train``: a 2-epoch CNN checkpoint and its sidecar."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(TrainConfig(model="cnn", limit=32, epochs=2, batch_size=32), out)
    return out


def copy_folder(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def read_header(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, json.loads(fh.metadata()["ginvariance"])


def rewrite_header(path: Path, edit, *, sign: bool) -> None:
    """Edit the metadata of a checkpoint; ``sign`` recomputes its checksum (a crafted file)."""
    tensors, meta = read_header(path)
    digest = meta.pop("sha256")
    edit(meta)
    meta["sha256"] = _digest(tensors, json.loads(json.dumps(meta))) if sign else digest
    save_file(tensors, str(path), metadata={"ginvariance": json.dumps(meta, sort_keys=True)})


class InterruptDuring:
    """A progress reporter that raises KeyboardInterrupt in ``task``."""

    def __init__(self, task: str) -> None:
        self.task, self.current = task, ""

    def start(self, total: int, description: str) -> None:
        self.current = description

    def advance(self, amount: int = 1, **info: float) -> None:
        if self.current == self.task:
            raise KeyboardInterrupt

    def finish(self) -> None:
        pass


# -- 1. --force and files ginv did not write ------------------------------------------------


def test_force_never_touches_a_file_ginv_did_not_write(mini: tuple[Path, dict], tmp_path: Path):
    out = copy_folder(mini[0], tmp_path / "u")
    photo = out / "holiday-photo.png"
    photo.write_bytes(b"\x89PNG a holiday")
    (out / "notes.txt").write_text("mine")
    other = dataclasses.replace(MINI, n_measure=6)  # other results, the same checkpoints
    with pytest.raises(OutputError, match=r"another configuration.*--force"):
        run_study(other, out)
    results = study_with_report(other, out, force=True)
    assert photo.read_bytes() == b"\x89PNG a holiday" and (out / "notes.txt").read_text() == "mine"
    assert results["config"]["n_measure"] == 6 and (out / "measures.png").is_file()
    assert manifest_problems(out) == []
    # A user's file under a name that ginv writes is never replaced, even with --force ...
    user = tmp_path / "user"
    user.mkdir()
    (user / "report.html").write_text("my report")
    with pytest.raises(OutputError, match="not written by ginv"):
        run_study(MINI, user, force=True)
    assert (user / "report.html").read_text() == "my report"
    assert sorted(p.name for p in user.iterdir()) == ["report.html"]  # nothing was trained
    # ... nor by the report alone
    (user / "report.html").unlink()
    (user / "measures.png").write_bytes(b"my figure")
    with pytest.raises(OutputError, match="not written by ginv"):
        render_report(mini[1], user)
    assert (user / "measures.png").read_bytes() == b"my figure"


def test_force_clears_earlier_results_only_once_training_succeeded(
    mini: tuple[Path, dict], tmp_path: Path
) -> None:
    out = copy_folder(mini[0], tmp_path / "u")
    before = {n: (out / n).read_bytes() for n in (RESULTS_FILE, "report.html", "measures.png")}
    other = dataclasses.replace(MINI, n_measure=6)
    with pytest.raises(KeyboardInterrupt):
        run_study(other, out, force=True, progress=InterruptDuring("train regularized"))
    assert {n: (out / n).read_bytes() for n in before} == before


def test_force_trains_a_corrupt_checkpoint_of_the_same_configuration_again(
    mini: tuple[Path, dict], tmp_path: Path
) -> None:
    out = copy_folder(mini[0], tmp_path / "u")
    path = checkpoint_dir(out, 0) / "augmented.safetensors"
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[-3] ^= 0xFF  # one byte of the weights; its header still reads fine
    path.write_bytes(bytes(damaged))
    with pytest.raises(OutputError) as refused:
        run_study(MINI, out)
    message = str(refused.value)
    assert "checksum" in message and "--force" in message and "--resume" not in message
    results = run_study(MINI, out, force=True)
    assert path.read_bytes() == original  # trained again, to the same bytes
    assert without_timings(results) == without_timings(mini[1])


def test_a_sidecar_without_its_weights_does_not_block_a_run(
    mini: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sidecar is ginv's own copy of the metadata: it is written again, not in the way."""
    out = copy_folder(mini[0], tmp_path / "u")
    (checkpoint_dir(out, 0) / "plain.safetensors").unlink()
    results = run_study(MINI, out)  # `ginv run` has no --resume: nothing to ask for
    assert without_timings(results) == without_timings(mini[1])
    folder = tmp_path / "t"
    assert cli(["train", *TRAIN, "--out", str(folder)], capsys)[0] == 0
    (folder / "plain.safetensors").unlink()
    code, _, err = cli(["train", *TRAIN, "--out", str(folder)], capsys)
    assert code == 0, err
    assert load_checkpoint(folder / "plain.safetensors")[1]["epoch"] == 1


# -- 2. the lock -----------------------------------------------------------------------------


def test_a_second_process_on_a_held_folder_gets_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "cc"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom ginvariance.folder import output_folder\n"
            "with output_folder(sys.argv[1]):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.read()\n",
            str(folder),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        for args in (["train", *TRAIN], ["run", "--quick"]):
            began = time.perf_counter()
            code, out, err = cli([*args, "--out", str(folder)], capsys)
            assert code == 2 and one_line(err), err
            assert f"in use by ginv (pid {holder.pid})" in err and out == ""
            assert time.perf_counter() - began < 30  # refused before any training
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]
    finally:
        holder.kill()  # SIGKILL: the kernel releases its lock
        holder.wait()
    code, _, err = cli(["train", *TRAIN, "--out", str(folder)], capsys)
    assert code == 0, err


# -- 3. one checkpoint reader that verifies every byte ---------------------------------------


def test_a_flipped_tensor_byte_is_refused_by_every_loader(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ginvariance.models import build_model

    path = tmp_path / "f.safetensors"
    blob = bytearray((trained / "plain.safetensors").read_bytes())
    blob[-7] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="checksum"):
        load_weights(path, build_model("cnn", (1, 8, 8), 10, group="c4"))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)
    for model in (["--model", "cnn"], []):
        code, _, err = cli(["measure", *model, "--checkpoint", str(path), *MEASURE], capsys)
        assert code == 2 and one_line(err) and "checksum" in err, err


EDITS = {
    "epoch": lambda m: m.update(epoch=1),
    "accuracy": lambda m: m["metrics"].update(accuracy=0.99),
    "history": lambda m: m["history"].pop(),
    "learning rate": lambda m: m["config"].update(lr=0.5),
}


@pytest.mark.parametrize("what", list(EDITS))
def test_edited_metadata_is_refused(
    what: str, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_folder(trained, tmp_path / "run")
    path = folder / "plain.safetensors"
    rewrite_header(path, EDITS[what], sign=False)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)
    resume = ["train", "--model", "cnn", "--limit", "32", "--batch-size", "32", "--resume"]
    code, _, err = cli([*resume, "--epochs", "3", "--out", str(folder)], capsys)
    assert code == 2 and one_line(err) and "checksum" in err, err


CRAFTED = {
    "num_classes 1e10": lambda m: m["model"].update(num_classes=1e10),
    "num_classes 10**10": lambda m: m["model"].update(num_classes=10**10),
    "sample_shape 1e6": lambda m: m["model"].update(sample_shape=[1, 1000, 1000]),
    "sample_shape of another model": lambda m: m["model"].update(sample_shape=[1, 12, 12]),
    "sample_shape text": lambda m: m["model"].update(sample_shape="big"),
    "dtype int8": lambda m: m["config"].update(dtype="int8"),
    "seed x": lambda m: m["config"].update(seed="x"),
    "epoch -1": lambda m: m.update(epoch=-1),
    "metrics text": lambda m: m["metrics"].update(accuracy="high"),
    "config list": lambda m: m.update(config=[1, 2]),
}


@pytest.mark.parametrize("what", list(CRAFTED))
def test_crafted_header_values_are_refused_before_any_model_is_built(
    what: str,
    trained: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A header with valid JSON and a recomputed checksum, but values ginv never writes."""
    import ginvariance.models as models

    path = tmp_path / "crafted.safetensors"
    shutil.copy(trained / "plain.safetensors", path)
    rewrite_header(path, CRAFTED[what], sign=True)
    real_build = models.build_seeded_model

    def only_on_meta(*args, **kwargs):  # a real model of a crafted size could take gigabytes
        if torch.get_default_device().type != "meta":
            raise AssertionError(f"a model was built from a crafted header: {args}")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(models, "build_seeded_model", only_on_meta)
    code, out, err = cli(["measure", "--checkpoint", str(path), *MEASURE], capsys)
    assert code == 2 and one_line(err) and out == "", err
    assert "crafted.safetensors" in err


def test_a_format_1_checkpoint_is_refused_with_a_message_to_train_again(
    trained: Path, tmp_path: Path
) -> None:
    """Format 1 (the checksum covered the tensors only) cannot prove its metadata: refused."""
    from ginvariance.models import build_model

    path = tmp_path / "old.safetensors"
    tensors, meta = read_header(trained / "plain.safetensors")
    meta["format"] = 1
    old = __import__("hashlib").sha256()
    for key in sorted(tensors):  # the format-1 checksum, as ginvariance 0.1.0 wrote it
        t = tensors[key].contiguous()
        old.update(key.encode())
        old.update(str(t.dtype).encode())
        old.update(str(tuple(t.shape)).encode())
        old.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    meta["sha256"] = old.hexdigest()
    save_file(tensors, str(path), metadata={"ginvariance": json.dumps(meta, sort_keys=True)})
    for load in (
        lambda: load_checkpoint(path),
        lambda: load_weights(path, build_model("cnn", (1, 8, 8), 10, group="c4")),
    ):
        with pytest.raises(CheckpointError, match=r"older ginvariance.*train it again"):
            load()


def test_a_safetensors_file_of_another_program_loads_as_weights(trained: Path, tmp_path: Path):
    from ginvariance.models import build_model

    model = load_checkpoint(trained / "plain.safetensors")[0]
    path = tmp_path / "plain-weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    fresh = load_weights(path, build_model("cnn", (1, 8, 8), 10, group="c4"))
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())


# -- 4. ginv measure --output ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["same path", "relative path", "symbolic link"])
@pytest.mark.parametrize("flag", ["--data", "--checkpoint"])
def test_measure_output_that_is_an_input_is_refused_before_any_work(
    how: str,
    flag: str,
    trained: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ginvariance.metrics as metrics

    data = tmp_path / "d.npz"
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    np.savez(data, x=x, y=np.arange(4))
    checkpoint = tmp_path / "w.safetensors"
    shutil.copy(trained / "plain.safetensors", checkpoint)
    target = data if flag == "--data" else checkpoint
    monkeypatch.chdir(tmp_path)
    if how == "same path":
        output = str(target)
    elif how == "relative path":
        output = os.path.join(".", "sub", "..", target.name)
        (tmp_path / "sub").mkdir()
    else:
        (tmp_path / "link.json").symlink_to(target)
        output = str(tmp_path / "link.json")
    before = target.read_bytes()
    monkeypatch.setattr(metrics, "measure", lambda *a, **k: pytest.fail("measured"))
    args = ["measure", "--checkpoint", str(checkpoint), "--data", str(data), "--output", output]
    code, _, err = cli(args, capsys)
    assert code == 2 and one_line(err) and "--output" in err and flag in err, err
    assert target.read_bytes() == before


def test_measure_output_names_up_to_255_bytes_work_and_longer_are_refused_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "r" * 240 + ".json"  # 245 bytes: a valid name, whose temporary must still fit
    code, out, err = cli(
        ["measure", "--model", "mlp", *MEASURE, "--output", str(tmp_path / name), "--json"],
        capsys,
    )
    assert code == 0, err
    assert json.loads((tmp_path / name).read_text()) == json.loads(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    import ginvariance.metrics as metrics

    monkeypatch.setattr(metrics, "measure", lambda *a, **k: pytest.fail("measured"))
    long = tmp_path / ("é" * 128 + ".json")  # 261 bytes
    code, _, err = cli(["measure", "--model", "mlp", *MEASURE, "--output", str(long)], capsys)
    assert code == 2 and one_line(err) and "255" in err, err


# -- 8. paths that are not UTF-8 -------------------------------------------------------------


def test_an_output_path_that_is_not_utf8_works_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/out\xff\xfe"))
    assert cli(["train", *TRAIN, "--out", str(out)], capsys)[0] == 0
    again = [*TRAIN[:-4], "--epochs", "2", "--batch-size", "32", "--resume", "--json"]
    code, printed, err = cli(["train", *again, "--out", str(out)], capsys)
    assert code == 0 and json.loads(printed)["metrics"]["epoch"] == 2, err
    result = Path(os.fsdecode(os.fsencode(out) + b"/m\xe9.json"))
    args = ["measure", "--checkpoint", str(out / "plain.safetensors"), *MEASURE]
    code, _, err = cli([*args, "--output", str(result)], capsys)
    assert code == 0, err
    assert set(json.loads(result.read_bytes())) >= {"id"}
    # a study folder that is not UTF-8 can be resumed: its checkpoints are read back
    study = Path(os.fsdecode(os.fsencode(tmp_path) + b"/study\xff"))
    with output_folder(study):  # as `ginv run` holds it
        train(MINI.train_config("plain", 0), checkpoint_dir(study, 0), name="plain")
    plan = plan_checkpoints(MINI, study, force=False)
    assert plan[(0, "plain")] == "resume" and plan[(0, "augmented")] == "new"


# -- 11. leftovers: stale temporaries, SIGTERM, a full disk ----------------------------------


def test_a_run_removes_ginvs_own_stale_temporaries_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    assert cli(["train", *TRAIN, "--out", str(folder)], capsys)[0] == 0
    own = [".plain.safetensors.k3j4h5g6" + TEMP_SUFFIX, ".plain.json.abcdefgh" + TEMP_SUFFIX]
    own.append(f".{MANIFEST_FILE}.x_1y2z3w{TEMP_SUFFIX}")
    others = [
        ".holiday.png.abcdefgh" + TEMP_SUFFIX,  # ginv's pattern, but not a file ginv wrote
        ".plain.safetensors.abcdefgh.tmp",  # another program's pattern
        "plain.safetensors" + TEMP_SUFFIX,
    ]
    for name in own + others:
        (folder / name).write_bytes(b"left by a kill")
    resume = [*TRAIN[:-4], "--epochs", "2", "--batch-size", "32", "--resume"]
    assert cli(["train", *resume, "--out", str(folder)], capsys)[0] == 0
    names = {p.name for p in folder.iterdir()}
    assert not names & set(own) and names >= set(others)
    assert manifest_problems(folder) == []


def test_sigterm_ends_with_one_line_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    args = ["train", "--model", "cnn", "--limit", "256", "--epochs", "50", "--batch-size", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ginvariance.cli", *args, "--out", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    weights = folder / "plain.safetensors"
    deadline = time.monotonic() + 120
    while not weights.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 143, text
    assert text.count("\n") == 1 and "terminated" in text and "Traceback" not in text
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert 1 <= load_checkpoint(weights)[1]["epoch"] < 50
    with output_folder(folder):  # the lock was released
        pass


def test_a_full_disk_names_the_file_and_leaves_no_empty_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    filled: list[bool] = []

    def full(fd: int) -> None:  # the disk fills up with the first large file, and stays full
        if filled or os.fstat(fd).st_size > 4096:
            filled.append(True)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "new" / "run"
    code, _, err = cli(["train", *TRAIN, "--out", str(out)], capsys)
    assert code == 2 and one_line(err), err
    assert "No space left on device" in err and str(out / "plain.safetensors") in err
    assert not (tmp_path / "new").exists()
    filled.clear()
    study = tmp_path / "study"
    with pytest.raises(OutputError, match=r"plain\.safetensors.*No space left"):
        run_study(MINI, study)
    assert not study.exists()  # no empty checkpoints/seed-0 left behind


# -- 13. the same command gives the same files ----------------------------------------------


def test_the_same_command_gives_byte_identical_files(mini: tuple[Path, dict], tmp_path: Path):
    """Checkpoints, sidecars, PNGs, saliency.npz and report.html byte for byte; results.json
    byte for byte once its one "timings" key is removed."""
    first = mini[0]
    second = tmp_path / "again"
    study_with_report(MINI, second)
    files = read_manifest(first)
    assert set(files) == set(read_manifest(second))
    assert {"report.html", "measures.png", "saliency.npz", RESULTS_FILE} <= set(files)
    assert f"checkpoints/seed-0/{MODELS[0]}.safetensors" in files
    for rel in sorted(files):
        a, b = (first / rel).read_bytes(), (second / rel).read_bytes()
        if rel == RESULTS_FILE:
            a_json, b_json = json.loads(a), json.loads(b)
            assert a_json.pop("timings") != b_json.pop("timings")  # wall times differ ...
            assert to_json(a_json) == to_json(b_json)  # ... and nothing else does
        else:
            assert a == b, rel
    assert without_timings(load_results(second)) == without_timings(mini[1])


# -- the stress test -------------------------------------------------------------------------

# `ginv run` in a child runs this study (the command line cannot make one this small)
MICRO = dataclasses.replace(MINI, limit=16, batch_size=16, n_measure=4, n_spectral=2)
STRESS_TRAIN = ["train", "--model", "mlp", "--limit", "32", "--epochs", "2", "--batch-size", "16"]
COMMANDS = {
    "train lr=1e-3": [*STRESS_TRAIN, "--lr", "0.001"],
    "train lr=3e-4": [*STRESS_TRAIN, "--lr", "0.0003"],
    "train lr=3e-4 --force": [*STRESS_TRAIN, "--lr", "0.0003", "--force"],
    "run": ["run", "--epochs", "1"],
    "run --epochs 2": ["run", "--epochs", "2"],
    "run --epochs 2 --force": ["run", "--epochs", "2", "--force"],
}
CRASHED = 70  # a child that ended with an exception instead of an exit status


def spawn(args: list[str], folder: Path, log: Path) -> int:
    """Fork a child that runs ``ginv ARGS --out FOLDER`` (torch is imported: forks are cheap)."""
    pid = os.fork()
    if pid:
        return pid
    code = CRASHED
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = sys.stderr = open(fd, "w", closefd=False)
        torch.set_num_threads(1)
        if args[0] == "run":
            import ginvariance.experiments as experiments

            experiments.StudyConfig = lambda **kw: dataclasses.replace(MICRO, **kw)
        from ginvariance.cli import main

        try:
            main([*args, "--out", str(folder)])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else CRASHED
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)


def reap(pids: list[int]) -> dict[int, int]:
    """Wait for ``pids``: their statuses (negative: killed by that signal), in finishing order."""
    done: dict[int, int] = {}
    while len(done) < len(pids):
        for pid in pids:
            if pid in done:
                continue
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                done[pid] = (
                    -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                )
        time.sleep(0.002)
    return done


def check_outcome(name: str, code: int, log: Path) -> None:
    text = log.read_text(errors="replace")
    assert code in (0, 2, -signal.SIGKILL), f"{name} ended with {code}: {text}"
    if code == 2:  # refused: exactly one line
        assert one_line(text), f"{name}: {text}"


def check_folder(folder: Path, killed: bool) -> list[str]:
    """Lock free, every file listed, the manifest right (one write may be cut by a kill)."""
    lock = folder / LOCK_FILE
    if lock.exists():
        with open(lock) as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
    listed = read_manifest(folder)
    temporaries = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_dir() or rel in (LOCK_FILE, MANIFEST_FILE):
            continue
        if path.name.endswith(TEMP_SUFFIX):
            temporaries.append(rel)
        else:
            assert rel in listed, f"{rel} is not in the manifest"
    problems = manifest_problems(folder)
    assert len(problems) <= 1, problems  # a kill between a rename and its record
    assert killed or not temporaries, temporaries
    return problems


def check_train(folder: Path, name: str) -> None:
    """The checkpoint is the one this command trained, finished, and verified."""
    meta = load_checkpoint(folder / "plain.safetensors")[1]
    lr = float(COMMANDS[name][COMMANDS[name].index("--lr") + 1])
    assert meta["config"]["lr"] == lr and meta["epoch"] == 2, (name, meta["config"])


def check_run(folder: Path, name: str) -> None:
    """results.json is this command's study, and each model's numbers are its checkpoint's."""
    epochs = int(COMMANDS[name][COMMANDS[name].index("--epochs") + 1])
    results = load_results(folder)
    assert results["config"]["epochs"] == epochs, name
    config = StudyConfig(**{**results["config"], "seeds": (0,), "shifts": ("uniform",)})
    for mode in TRAINED_MODELS:
        meta = load_checkpoint(checkpoint_dir(folder, 0) / f"{mode}.safetensors")[1]
        assert meta["config"] == config.train_config(mode, 0).to_dict()
        assert results["models"][mode]["per_seed"][0]["train"] == {
            k: meta["metrics"][k] for k in sorted(meta["metrics"])
        }, mode


def held(folder: Path) -> tuple[bool, int | None]:
    """What a folder holds: a training checkpoint?, the epochs of its study's results."""
    try:
        epochs = load_results(folder)["config"]["epochs"]
    except Exception:
        epochs = None
    return (folder / "plain.safetensors").exists(), epochs


def check_successes(before: tuple[bool, int | None], done: list[str]) -> None:
    """The commands that finished (in that order) were allowed to: a training without
    --force only into a folder without a checkpoint, a study without --force only over
    results of its own configuration. Two runs that both succeed in one folder without a
    lock break this: the later replaced the earlier's model and both said they wrote it."""
    trained, epochs = before
    for name in done:
        args = COMMANDS[name]
        force = "--force" in args
        if name.startswith("train"):
            assert force or not trained, f"{name} replaced a checkpoint without --force"
            trained = True
        else:
            mine = int(args[args.index("--epochs") + 1])
            assert force or epochs in (None, mine), f"{name} replaced other results"
            epochs = mine


def test_two_processes_on_one_folder_with_random_kills(tmp_path: Path) -> None:
    """20 random interleavings of two `ginv train` / `ginv run` processes on one folder, one of
    them SIGKILLed at a random moment in half of them. Each process finishes, is refused with
    one line, or is killed; a process that finished was allowed to (no one's model replaced
    without --force); the folder then holds only files listed in its manifest, whose bytes
    are what ginv recorded (one write may be cut by a kill), and what the last command to
    finish wrote, never a mixture. After a kill, running the killed command again finishes it
    or refuses with one line, and removes the kill's temporaries."""
    import ginvariance.cli
    import ginvariance.report.html  # noqa: F401

    # Imported once here, not in every child: the first Adam step and the first study's
    # imports take seconds, a forked child's training a fraction of one.
    train(TrainConfig(model="mlp", limit=16, epochs=1, batch_size=16))
    rng = random.Random(2023)
    trainings = [name for name in COMMANDS if name.startswith("train")]
    studies = [name for name in COMMANDS if name.startswith("run")]
    folder = tmp_path / "f0"
    outcomes_seen: set[int] = set()
    in_use = 0
    for i in range(20):
        if i and rng.random() < 0.6:
            folder = tmp_path / f"f{i}"
        pair = rng.choices(trainings, k=2)
        if i % 6 == 3:  # a study costs seconds, a training a fraction of one: three studies
            pair[rng.randrange(2)] = rng.choice(studies)
        before = held(folder)
        logs = [tmp_path / f"{i}-{k}.log" for k in range(2)]
        pids = [spawn(COMMANDS[pair[0]], folder, logs[0])]
        # mostly together (before the first one's first write), now and then one after the other
        time.sleep(rng.uniform(0.0, 0.05) if i % 3 else rng.uniform(0.0, 0.5))
        pids.append(spawn(COMMANDS[pair[1]], folder, logs[1]))
        victim = rng.choice([None, 0, 1])
        if victim is not None:
            time.sleep(rng.uniform(0.0, 1.5))
            os.kill(pids[victim], signal.SIGKILL)  # a child that already exited: no effect
        statuses = reap(pids)  # in the order they finished
        codes = [statuses[pid] for pid in pids]
        outcomes_seen.update(codes)
        for name, code, log in zip(pair, codes, logs, strict=True):
            check_outcome(name, code, log)
            in_use += "in use by ginv" in log.read_text(errors="replace")
        done = [pair[pids.index(pid)] for pid, code in statuses.items() if code == 0]
        check_successes(before, done)
        killed = -signal.SIGKILL in codes
        check_folder(folder, killed)
        if not killed:  # the last to finish of each kind is what the folder holds
            for kind, check in (("train", check_train), ("run", check_run)):
                last = [name for name in done if name.startswith(kind)][-1:]
                for name in last:
                    check(folder, name)
            continue
        name = pair[codes.index(-signal.SIGKILL)]
        log = tmp_path / f"{i}-again.log"
        before = held(folder)
        code = next(iter(reap([spawn(COMMANDS[name], folder, log)]).values()))
        check_outcome(name, code, log)
        check_successes(before, [name] if code == 0 else [])
        problems = check_folder(folder, killed=False)  # the kill's temporaries are gone
        if code == 0:
            assert problems == []
            (check_train if name.startswith("train") else check_run)(folder, name)
    assert {0, 2, -signal.SIGKILL} <= outcomes_seen  # finished, refused and killed all seen
    assert in_use >= 1, "no two processes overlapped"
