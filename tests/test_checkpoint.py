"""Checkpoints: round trips, refusals of corrupt, mismatched and unsafe files; `ginv train`
refusing bad input with one line and exit status 2."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ginvariance.errors import CheckpointError
from ginvariance.training import (
    TrainConfig,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    sidecar_path,
)


class Net(nn.Module):
    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, hidden)
        self.fc2 = nn.Linear(hidden, 3)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x))) * self.scale


def _trained(dtype: torch.dtype) -> tuple[Net, torch.optim.Adam]:
    torch.manual_seed(0)
    model = Net().to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = model(torch.randn(5, 4, dtype=dtype)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


META = {"config": TrainConfig(mode="plain").to_dict(), "epoch": 3, "history": [], "metrics": {}}


def test_round_trip_with_optimizer(tmp_path: Path, dtype: torch.dtype) -> None:
    model, opt = _trained(dtype)
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, model, optimizer=opt, meta=META)
    side = json.loads(sidecar_path(path).read_text())
    assert side["epoch"] == 3 and {"torch", "numpy", "python", "ginvariance"} <= set(
        side["versions"]
    )
    fresh = Net().to(dtype)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-2)
    loaded, meta = load_checkpoint(path, fresh, optimizer=fresh_opt)
    assert loaded is fresh and meta["epoch"] == 3
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key])
    a, b = opt.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert a.keys() == b.keys()
    for i in a:
        for slot in a[i]:
            assert torch.equal(torch.as_tensor(a[i][slot]), torch.as_tensor(b[i][slot]))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_refuses_mismatched_model(tmp_path: Path) -> None:
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, Net(), meta=META)
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path, Net(hidden=9))

    class Other(Net):
        def __init__(self) -> None:
            super().__init__()
            self.extra = nn.Linear(2, 2)

    with pytest.raises(CheckpointError, match=r"missing extra.bias"):
        load_checkpoint(path, Other())
    with pytest.raises(CheckpointError, match=r"unexpected fc2.bias"):
        load_checkpoint(path, _Smaller())


class _Smaller(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3, bias=False)
        self.register_buffer("scale", torch.tensor(2.0))


def test_refuses_other_configuration(tmp_path: Path) -> None:
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, Net(), meta=META)
    load_checkpoint(path, Net(), config=TrainConfig(mode="plain", epochs=99))  # epochs may grow
    with pytest.raises(CheckpointError, match=r"different configuration.*mode"):
        load_checkpoint(path, Net(), config=TrainConfig(mode="augmented"))


def test_refuses_a_built_in_model_of_an_earlier_layout(tmp_path: Path) -> None:
    """A weight-tied checkpoint from before the max-pool after its lifting layer has the same
    weight shapes as today's net, so only the recorded layout revision tells them apart."""
    from ginvariance.models import build_model, layout_revision
    from ginvariance.training import checkpoint_meta

    model = build_model("weight-tied", (1, 8, 8), 10, group="c4", width=4)
    config = TrainConfig(mode="weight-tied").to_dict()
    desc = {"name": "weight-tied", "sample_shape": [1, 8, 8], "num_classes": 10, "group": "c4"}
    current = tmp_path / "current.safetensors"
    revision = layout_revision("weight-tied")
    save_checkpoint(
        current, model, meta={**META, "config": config, "model": {**desc, "revision": revision}}
    )
    assert checkpoint_meta(current)["model"]["revision"] == revision == 2
    for old in ({}, {"revision": 1}):
        path = tmp_path / f"old{len(old)}.safetensors"
        save_checkpoint(path, model, meta={**META, "config": config, "model": {**desc, **old}})
        with pytest.raises(
            CheckpointError, match=r"weight-tied model of layout revision 1.*train it again"
        ):
            load_checkpoint(path, model)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip", "empty"])
def test_refuses_corrupt_files(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "run.safetensors"
    save_checkpoint(path, Net(), meta=META)
    blob = bytearray(path.read_bytes())
    if damage == "garbage":
        blob = bytearray(b"this is not a safetensors file at all" * 3)
    elif damage == "truncate":
        blob = blob[: len(blob) - 40]
    elif damage == "flip":
        blob[-5] ^= 0xFF  # a byte of tensor data: caught by the checksum
    else:
        blob = bytearray()
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=r"corrupt|not a readable"):
        load_checkpoint(path, Net())


def test_refuses_pickles_and_other_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors", Net())
    pt = tmp_path / "w.pt"
    torch.save(Net().state_dict(), pt)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(pt, Net())
    other = tmp_path / "w.npz"
    other.write_bytes(b"PK")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_weights(other, Net())


def test_load_weights_reads_safetensors_and_plain_state_dicts(tmp_path: Path) -> None:
    model, opt = _trained(torch.float32)
    st = tmp_path / "w.safetensors"
    save_checkpoint(st, model, optimizer=opt, meta=META)  # optimizer entries are skipped
    pt = tmp_path / "w.pth"
    torch.save({"state_dict": model.state_dict()}, pt)
    for path in (st, pt):
        fresh = load_weights(path, Net())
        for key, value in model.state_dict().items():
            assert torch.equal(value, fresh.state_dict()[key])


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"fc1.weight": _Exploit(str(marker))}, protocol=2))
    # the payload works when unpickled unsafely: the test can fail
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Exploit(str(probe)))).close()
    assert probe.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_weights(bad, Net())
    assert not marker.exists()
    torch.save({"fc1.weight": _Exploit(str(marker))}, tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_weights(tmp_path / "evil2.pt", Net())
    assert not marker.exists()


# -- `ginv train` on bad input ------------------------------------------------------------

BAD_ARGS = [
    ["--method", "dropout"],
    ["--model", "resnet999"],
    ["--dataset", "nosuchdata"],
    ["--group", "so3"],
    ["--lam", "-1"],
    ["--lam", "nan"],
    ["--penalty", "kl"],
    ["--epochs", "0"],
    ["--resume"],
]


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from ginvariance.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", *args])
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize("args", BAD_ARGS, ids=lambda a: " ".join(a))
def test_cli_bad_input_one_line_exit_2(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, err = _run_cli(["--out", str(out), "--limit", "32", "--epochs", "1", *args], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("ginv: error:")
    assert not out.exists()  # nothing written, not even the folder


def test_cli_unwritable_out_and_mismatched_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _run_cli(["--out", str(blocker / "sub"), "--limit", "32", "--epochs", "1"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "folder" in err
    out = tmp_path / "out"
    quick = ["--out", str(out), "--limit", "32", "--epochs", "1"]
    from ginvariance.cli import main

    main(["train", *quick, "--json"])  # returns normally on success
    printed = json.loads(capsys.readouterr().out)
    assert printed["metrics"]["epoch"] == 1 and (out / "plain.safetensors").exists()
    before = (out / "plain.safetensors").read_bytes()
    code, err = _run_cli([*quick, "--resume", "--lr", "0.5"], capsys)
    assert code == 2 and "different configuration" in err and len(err.strip().splitlines()) == 1
    code, err = _run_cli(quick, capsys)
    assert code == 2 and "--resume" in err
    assert (out / "plain.safetensors").read_bytes() == before


def test_ginv_entry_point_exit_status(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ginvariance.cli import main; main()",
            "train",
            "--lam",
            "nan",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "lam" in proc.stderr
    assert not (tmp_path / "o").exists()
