"""Untrusted files never run code: pickles are refused, broken safetensors fail cleanly.

Each malicious file carries a pickle whose ``__reduce__`` would create a marker file when
unpickled. Every loader (``load_weights``, ``load_checkpoint``, ``load_npz``, ``ginv
measure``, ``ginv train --resume``) must refuse it with a :class:`GinvarianceError`, and
the marker must not exist afterwards. ``--model MODULE:CALLABLE`` is the one option that
imports user code; module names given to any other option are never imported.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ginvariance.errors import (
    CheckpointError,
    DataError,
    GinvarianceError,
    ModelError,
    OutputError,
)
from ginvariance.training import TrainConfig, load_checkpoint, load_weights, train


class Exploit:
    """Unpickling this calls ``open(marker, "w")``: creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (self.marker, "w"))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "PWNED"
    # the exploit really works: plain pickle runs it
    pickle.loads(pickle.dumps(Exploit(path)))
    assert path.exists()
    path.unlink()
    return path


def evil_files(folder: Path, marker: Path) -> dict[str, Path]:
    """The same exploit in every container a user might be handed."""
    state = {**mlp().state_dict(), "0.weight": Exploit(marker)}
    files = {
        "torch.save .pt": folder / "evil.pt",
        "raw pickle .pth": folder / "evil.pth",
        "pickle named .safetensors": folder / "evil.safetensors",
        "nested state_dict .pt": folder / "nested.pt",
    }
    torch.save(state, files["torch.save .pt"])
    files["raw pickle .pth"].write_bytes(pickle.dumps(state, protocol=2))
    files["pickle named .safetensors"].write_bytes(pickle.dumps(state))
    torch.save({"state_dict": state, "epoch": 3}, files["nested state_dict .pt"])
    return files


def test_load_weights_refuses_pickles_and_runs_nothing(tmp_path: Path, marker: Path) -> None:
    for what, path in evil_files(tmp_path, marker).items():
        with pytest.raises(CheckpointError) as exc:
            load_weights(path, mlp())
        assert "\n" not in str(exc.value), what
        assert not marker.exists(), f"{what}: code ran on load"


def test_load_checkpoint_refuses_pickles_and_runs_nothing(tmp_path: Path, marker: Path) -> None:
    for what, path in evil_files(tmp_path, marker).items():
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):
            load_checkpoint(path, mlp())
        assert not marker.exists(), f"{what}: code ran on load"


def test_pt_files_are_read_with_weights_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain state dict still loads, and only ever through torch.load(weights_only=True)."""
    source = mlp()
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    calls: list[dict] = []
    real_load = torch.load

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "load", spy)
    target = load_weights(tmp_path / "plain.pt", mlp())
    assert calls and all(c.get("weights_only") is True for c in calls)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_cli_measure_refuses_evil_checkpoint(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from ginvariance.cli import main

    monkeypatch.chdir(tmp_path)
    files = evil_files(tmp_path, marker)
    for path in files.values():
        for model in (["--model", "mlp"], []):
            with pytest.raises(SystemExit) as exc:
                main(["measure", *model, "--checkpoint", str(path), "--dataset", "digits"])
            err = capsys.readouterr().err
            assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
            assert not marker.exists(), f"{path.name}: code ran"


def test_resume_from_a_pickle_in_place_of_the_checkpoint(tmp_path: Path, marker: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "plain.safetensors").write_bytes(pickle.dumps({"x": Exploit(marker)}))
    config = TrainConfig(model="mlp", limit=16, epochs=1, batch_size=16)
    with pytest.raises(OutputError, match="not written by ginv"):  # not in the manifest
        train(config, out, resume=True)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(out / "plain.safetensors")
    assert not marker.exists()


# -- npz ----------------------------------------------------------------------------------


def test_npz_with_object_array_is_refused(tmp_path: Path, marker: Path) -> None:
    from ginvariance.data import load_npz

    cases = {}
    x = np.empty(4, dtype=object)
    x[:] = [Exploit(marker)] * 4
    np.savez(tmp_path / "object_x.npz", x=x, y=np.zeros(4, dtype=np.int64))
    cases["object x"] = tmp_path / "object_x.npz"
    np.savez(tmp_path / "object_y.npz", x=np.zeros((4, 1, 8, 8)), y=x)
    cases["object y"] = tmp_path / "object_y.npz"
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"x": Exploit(marker)}))
    cases["a pickle named .npz"] = tmp_path / "pickle.npz"
    np.save(tmp_path / "single.npy", x, allow_pickle=True)
    (tmp_path / "single.npz").write_bytes((tmp_path / "single.npy").read_bytes())
    cases["an object .npy named .npz"] = tmp_path / "single.npz"
    for what, path in cases.items():
        with pytest.raises(DataError) as exc:
            load_npz(path)
        assert "\n" not in str(exc.value), what
        assert not marker.exists(), f"{what}: code ran on load"


# -- safetensors with broken headers -------------------------------------------------------


def _safetensors(header: dict | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


BROKEN_SAFETENSORS = {
    "header length 2**62": _safetensors({}, length=2**62),
    "header length past the end": _safetensors({"a": 1}, length=10_000),
    "header length 0": _safetensors(b"", length=0),
    "header not JSON": _safetensors(b"{not json"),
    "header a list": _safetensors(b"[1, 2, 3]"),
    "huge shape, tiny data": _safetensors(
        {"0.weight": {"dtype": "F32", "shape": [2**40, 2**20], "data_offsets": [0, 8]}}, bytes(8)
    ),
    "offsets past the end": _safetensors(
        {"0.weight": {"dtype": "F32", "shape": [10, 64], "data_offsets": [0, 2560]}}, bytes(16)
    ),
    "unknown dtype": _safetensors(
        {"0.weight": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)
    ),
    "negative shape": _safetensors(
        {"0.weight": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)
    ),
    "8 bytes only": struct.pack("<Q", 2),
    "empty file": b"",
    "a zip file": b"PK\x05\x06" + bytes(18),
}


@pytest.mark.parametrize("what", list(BROKEN_SAFETENSORS))
def test_broken_safetensors_is_refused_cleanly(what: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(BROKEN_SAFETENSORS[what])
    for load in (lambda: load_weights(path, mlp()), lambda: load_checkpoint(path)):
        with pytest.raises(CheckpointError) as exc:
            load()
        assert "\n" not in str(exc.value) and len(str(exc.value)) < 400


def test_checkpoint_metadata_cannot_name_code(tmp_path: Path) -> None:
    """The model is rebuilt from a name in the metadata: only built-in names are accepted."""
    from safetensors.torch import save_file

    from ginvariance.training.checkpoint import _digest

    config = TrainConfig(model="mlp", limit=16, epochs=1, batch_size=16)
    train(config, tmp_path)
    path = tmp_path / "plain.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = json.loads(fh.metadata()["ginvariance"])
    meta.pop("sha256")
    meta["model"]["name"] = "os:system"
    meta["config"]["model"] = "os:system"
    save_file(tensors, str(path), metadata={"ginvariance": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="checksum"):  # an edited header
        load_checkpoint(path)
    meta["sha256"] = _digest(tensors, meta)  # the checksum recomputed: a crafted file
    save_file(tensors, str(path), metadata={"ginvariance": json.dumps(meta)})
    with pytest.raises(ModelError, match="unknown model 'os:system'"):
        load_checkpoint(path)


# -- only --model imports user code ---------------------------------------------------------


def test_only_model_option_imports_user_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from ginvariance.cli import main

    marker = tmp_path / "IMPORTED"
    (tmp_path / "evilmod.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "import torch\n\n\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.arange(4))
    data = ["--data", str(tmp_path / "d.npz")]
    for argv in (
        ["measure", "--model", "mlp", "--dataset", "evilmod:build"],
        ["measure", "--model", "mlp", *data, "--group", "evilmod:build"],
        ["measure", "--model", "mlp", *data, "--shift", "evilmod:build"],
        ["measure", "--model", "mlp", *data, "--checkpoint", "evilmod:build"],
        ["train", "--model", "evilmod:build", "--limit", "8", "--epochs", "1"],
        ["train", "--dataset", "evilmod:build", "--limit", "8", "--epochs", "1"],
        ["run", "--group", "evilmod:build", "--out", "study"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
        assert not marker.exists(), f"{argv}: imported user code"
    capsys.readouterr()
    main(["measure", "--model", "evilmod:build", *data, "--json", "--no-saliency"])
    assert marker.exists()  # documented: --model MODULE:CALLABLE runs the user's own code
    assert "pdi" in json.loads(capsys.readouterr().out)["id"]


def test_model_option_is_documented_as_running_code() -> None:
    import typer

    from ginvariance.cli import app

    command = typer.main.get_command(app).commands["measure"]  # type: ignore[attr-defined]
    (option,) = [p for p in command.params if p.name == "model"]
    assert "runs your own code" in option.help and "trusted modules only" in option.help


def test_npz_members_with_escaping_names_write_nothing(tmp_path: Path) -> None:
    """An .npz whose members escape the folder: read in memory, nothing written to disk."""
    from ginvariance.data import load_npz

    path = tmp_path / "escape.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../escaped.npy", b"\x93NUMPY junk")
        zf.writestr("x.npy", b"not an npy")
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    with pytest.raises(GinvarianceError):
        load_npz(path)
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
