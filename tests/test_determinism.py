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


def test_seeded_blocks_nest_and_threads_take_turns() -> None:
    """``seeded`` may nest in one thread (a seeded build inside a seeded command), and
    threads drawing weights at the same time each get the weights of their own seed."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from ginvariance.seeds import seeded

    with seeded(1):
        outer = torch.rand(3)
        with seeded(2):
            inner = torch.rand(3)
    with seeded(2):
        assert torch.equal(torch.rand(3), inner)
    with seeded(1):
        assert torch.equal(torch.rand(3), outer)

    def draw(seed: int) -> torch.Tensor:
        with seeded(seed):
            return torch.rand(1000)

    alone = {s: draw(s) for s in range(4)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(draw, [s % 4 for s in range(64)]))
    assert all(torch.equal(t, alone[i % 4]) for i, t in enumerate(together))
