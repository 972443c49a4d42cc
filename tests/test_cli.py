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


# -- help and flag names ------------------------------------------------------------------------

COMMANDS = ("run", "train", "measure", "sweep", "bench", "report")


def _params(command: str) -> list:
    import typer

    from ginvariance.cli import app

    return typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_flags_as_flags_and_lists_choices(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run([command, "--help"], capsys)
    assert code == 0
    assert "<bool>" not in out, out
    for param in _params(command):
        if getattr(param, "is_flag", False) and not param.hidden:
            opt = param.opts[0]
            (line,) = [ln for ln in out.splitlines() if ln.startswith(f"  {opt} ")]
            assert "<" not in line.split("  ")[0], line  # no metavar after a flag
        if param.name in ("dataset", "datasets", "group", "groups") and param.help:
            assert "…" not in param.help and "..." not in param.help, param.help
            assert "digits" in param.help or "c4" in param.help, param.help


def test_one_concept_one_flag_name() -> None:
    """--seed, --root/--data-dir, --resume/--no-resume, --force/--no-force, one --out default."""
    from ginvariance.cli.common import DEFAULT_OUT

    for command in ("run", "train", "measure", "sweep"):
        opts = {o for p in _params(command) for o in p.opts}
        assert "--seed" in opts and "--root" in opts and "--data-dir" in opts, command
    for command in ("run", "train", "sweep"):
        by_name = {p.name: p for p in _params(command)}
        assert by_name["out"].default == DEFAULT_OUT, command
        for name in ("resume", "force"):
            if name in by_name:
                assert by_name[name].secondary_opts == [f"--no-{name}"], (command, name)
    train = {p.name: p for p in _params("train")}
    assert "--method" in train["method"].opts and train["mode"].hidden


def test_deprecated_mode_still_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["train", "--mode", "weight-tied", "--model", "mlp"], capsys)
    assert code == 2
    assert "--mode is deprecated; use --method" in err
    assert "weight-tied" in err.splitlines()[-1]


def test_comma_lists_and_repeats_mix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((4, 1, 8, 8)), y=np.arange(4))
    monkeypatch.chdir(tmp_path)
    argv = ["measure", "--model", "mlp", "--data", "d.npz", "--json", "--no-saliency"]
    code, out, err = _run([*argv, "--shift", "uniform,invert", "--shifts", "blur"], capsys)
    assert code == 0, err
    assert sorted(json.loads(out)["shift"]) == ["blur", "invert", "uniform"]
    code, _, err = _run([*argv, "--shift", "uniform,,blur"], capsys)
    assert code == 2 and "empty item" in err


def test_measure_table_fits_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((4, 1, 8, 8)), y=np.arange(4))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = _run(
        ["measure", "--model", "mlp", "--data", "d.npz", "--shift", "all"], capsys
    )
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in out, out
    header = "\n".join(lines[:4])
    for word in ("accuracy", "consist.", "pdi", "li", "within", "sis"):
        assert word in header, header


def test_one_line_per_stage_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--epochs", "2", "--limit", "32", "--out", str(tmp_path / "o")]
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    (line,) = err.splitlines()
    assert line.startswith("ginv: train plain: 2/2 done in ") and " s (loss " in line, line
    code, _, err = _run([*argv, "--force", "--json"], capsys)
    assert code == 0 and err == ""  # --json: nothing but the JSON


def test_rotation_n_states_its_tolerance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ginvariance.groups import get_group

    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((4, 1, 8, 8)), y=np.arange(4))
    monkeypatch.chdir(tmp_path)
    argv = ["measure", "--model", "mlp", "--data", "d.npz", "--json", "--no-saliency"]
    code, _, err = _run([*argv, "--group", "rotation-8"], capsys)
    assert code == 0, err
    tolerance = get_group("rotation-8").tolerance
    assert "rotation-8 interpolates" in err and f"{tolerance:g} nats" in err, err
    code, _, err = _run([*argv, "--group", "c4"], capsys)
    assert code == 0 and "interpolates" not in err
