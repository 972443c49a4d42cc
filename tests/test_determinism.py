"""Determinism: the same seed gives the same bytes.

The study's ``results.json`` (timings excepted) and its checkpoints are compared byte for
byte across two fresh runs in ``tests/test_study.py::test_same_seed_gives_identical_results``;
training alone in ``tests/test_training.py::test_same_seed_same_weights``. This file adds
``ginv measure`` of a built-in model without a checkpoint: ``--seed`` draws its initial
weights and the distribution shifts, so its JSON output is the same bytes on every run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _measure(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from ginvariance.cli import main

    main(["measure", "--model", "cnn", "--dataset", "digits", "--limit", "48", "--json", *args])
    return capsys.readouterr().out


def test_measure_json_is_byte_identical_for_a_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shifts = ["--shift", "all", "--seed", "7"]
    first = _measure([*shifts, "--output", str(tmp_path / "a.json")], capsys)
    second = _measure([*shifts, "--output", str(tmp_path / "b.json")], capsys)
    assert first == second
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.json").read_text() == first
    other = json.loads(_measure(["--shift", "all", "--seed", "8"], capsys))
    assert other != json.loads(first)  # the seed draws the initial weights and the shifts
