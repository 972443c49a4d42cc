"""The command line as a user meets it: help text, flag names, model files, progress lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from ginvariance.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# -- --model path/to/file.py:CALLABLE ----------------------------------------------------------


MODEL_FILE = """\
import torch
from torch import nn


def build(sample_shape, num_classes):
    c, h, w = sample_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))
"""


def test_model_given_as_a_file_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "not a package" / "models"
    folder.mkdir(parents=True)
    (folder / "my-net.py").write_text(MODEL_FILE)
    np.savez(tmp_path / "d.npz", x=np.zeros((6, 1, 8, 8), np.float32), y=np.arange(6) % 3)
    monkeypatch.chdir(tmp_path)  # a relative path, from another folder than the file's
    spec = "not a package/models/my-net.py:build"
    code, out, err = _run(
        ["measure", "--model", spec, "--data", "d.npz", "--json", "--no-saliency"], capsys
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["id"]["pdi"] >= 0


def test_model_file_that_does_not_exist_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1, 8, 8), np.float32), y=np.arange(2))
    monkeypatch.chdir(tmp_path)
    code, _out, err = _run(["measure", "--model", "nope/model.py:build", "--data", "d.npz"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "nope/model.py" in err and "does not exist" in err
