"""Shifts as fixed distributions: parameters from a reference set, randomness per sample.

The numbers of :func:`ginvariance.measure` under every shift must not depend on how the data
is batched (DataLoaders of batch size 1, 7, 64 and the whole set, and the streaming class),
and a shift's parameters must be those of its reference set, reported with the results.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ginvariance.data.shifts import (
    SHIFT_NAMES,
    ShiftReference,
    get_shift,
    sample_normal,
    sample_uniform,
)
from ginvariance.errors import ConfigError, DataError
from ginvariance.metrics import InvarianceMetrics, measure

N = 70


def _model(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(3)
    return (
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(4 * 64, 10),
        )
        .to(dtype)
        .eval()
    )


def _data(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    # standardized-looking data with an offset: batch statistics differ from the set's
    x = (torch.randn(N, 1, 8, 8, generator=g, dtype=torch.float64) * 2 + 1).to(dtype)
    x[: N // 2] *= 0.2  # the first half has a much smaller spread than the whole set
    y = torch.randint(0, 10, (N,), generator=g)
    return x, y


def test_reference_statistics_are_the_whole_sets(dtype: torch.dtype) -> None:
    x, _ = _data(dtype)
    whole = ShiftReference.of(x)
    chunked = ShiftReference.from_batches(x.split(7))
    xd = x.double()
    for ref in (whole, chunked):
        assert ref.min == float(x.min()) and ref.max == float(x.max())
        assert ref.mean == pytest.approx(float(xd.mean()), rel=1e-12, abs=1e-12)
        assert ref.std == pytest.approx(float(xd.std(correction=0)), rel=1e-12)
        assert ref.n_samples == N and ref.sample_shape == (1, 8, 8)
    # sums about the first batch's mean: a large offset does not cancel the variance
    far = ShiftReference.from_batches((x.double() + 1e8).split(7))
    assert far.std == pytest.approx(float(xd.std(correction=0)), rel=1e-6)


def test_per_sample_draws_depend_only_on_seed_stream_and_index() -> None:
    idx = torch.arange(50)
    u = sample_uniform(4, "noise", idx, 9)
    assert u.shape == (50, 9) and u.dtype == torch.float64
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    # any subset, in any order, gets the same rows
    perm = torch.tensor([17, 3, 49, 0])
    assert torch.equal(sample_uniform(4, "noise", perm, 9), u[perm])
    assert not torch.equal(sample_uniform(5, "noise", idx, 9), u)
    assert not torch.equal(sample_uniform(4, "uniform", idx, 9), u)
    # uniform and normal moments on many draws
    big = sample_uniform(0, "s", torch.arange(20000), 10)
    assert abs(float(big.mean()) - 0.5) < 0.005 and abs(float(big.var()) - 1 / 12) < 0.002
    z = sample_normal(0, "s", torch.arange(20000), 9)  # odd k: Box–Muller pairs cut to k
    assert z.shape == (20000, 9)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float(torch.corrcoef(z[:, :2].T)[0, 1])) < 0.02


@pytest.mark.parametrize("name", SHIFT_NAMES)
def test_shift_of_a_sample_does_not_depend_on_its_batch(name: str, dtype: torch.dtype) -> None:
    x, _ = _data(dtype)
    shift = get_shift(name)
    ref = ShiftReference.of(x)
    whole = shift(x, seed=2, reference=ref)
    parts = torch.cat(
        [
            shift(part, seed=2, reference=ref, indices=torch.arange(i, i + len(part)))
            for i, part in zip(range(0, N, 7), x.split(7), strict=True)
        ]
    )
    assert torch.equal(whole, parts)


def test_parameters_come_from_the_reference_not_the_batch(dtype: torch.dtype) -> None:
    x, _ = _data(dtype)
    ref = ShiftReference.of(x)
    small = x[:8]  # from the low-spread half: its own std and range are far smaller
    noise = get_shift("noise-1.0")(small, seed=0, reference=ref) - small
    eps = sample_normal(0, "noise", torch.arange(8), 64).reshape(small.shape)
    torch.testing.assert_close(noise.double(), (ref.std * eps).to(dtype).double())
    u = get_shift("uniform")(small, seed=0, reference=ref).double()
    assert float(u.min()) < float(small.min()) or float(u.max()) > float(small.max())
    assert float(u.min()) >= ref.min and float(u.max()) <= ref.max
    inv = get_shift("invert")(small, reference=ref)
    torch.testing.assert_close(inv, (ref.min + ref.max) - small)
    params = get_shift("noise-0.5").parameters(ref)
    assert params["sigma"] == 0.5 and params["scale"] == pytest.approx(0.5 * ref.std)
    assert get_shift("uniform").parameters(ref)["low"] == ref.min


def _close(a: dict, b: dict, tol: float) -> None:
    assert set(a) == set(b)
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], abs=tol, rel=tol), key
        else:
            assert a[key] == b[key], key


def test_measure_does_not_depend_on_batching(dtype: torch.dtype) -> None:
    """DataLoaders of batch size 1, 7, 64 and N, and the streaming class, agree."""
    x, y = _data(dtype)
    model = _model(dtype)
    shifts = list(SHIFT_NAMES)
    tol = 1e-6 if dtype == torch.float64 else 2e-4
    whole = measure(model, (x, y), "c4", shifts=shifts, seed=5).to_dict()
    assert whole["shift_reference"]["std"] == pytest.approx(float(x.double().std(correction=0)))
    assert whole["shift_reference"]["source"] == "measured data"
    assert set(whole["shift_parameters"]) == set(shifts)
    for batch_size in (1, 7, 64, N):
        loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)
        got = measure(model, loader, "c4", shifts=shifts, seed=5).to_dict()
        _close(got["id"], whole["id"], tol)
        for name in shifts:
            _close(got["shift"][name], whole["shift"][name], tol)
        _close(got["shift_reference"], whole["shift_reference"], 1e-12)
    ref = ShiftReference.of(x)
    for name in ("noise-0.5", "uniform", "patches"):
        metric = InvarianceMetrics(model, "c4", shift=name, shift_reference=ref, seed=5)
        for xb, yb in zip(x.split(7), y.split(7), strict=True):
            metric.update(xb, yb)
        streamed = {k: float(v) for k, v in metric.compute().items()}
        expected = {k: v for k, v in whole["shift"][name].items() if k != "n_samples"}
        _close(streamed, expected, tol)
        metric.reset()  # the sample counter starts again
        for xb, yb in zip(x.split(64), y.split(64), strict=True):
            metric.update(xb, yb)
        _close({k: float(v) for k, v in metric.compute().items()}, expected, tol)


def test_measure_with_a_given_reference(dtype: torch.dtype) -> None:
    x, y = _data(dtype)
    model = _model(dtype)
    train = x * 3 + 2
    a = measure(model, (x, y), "c4", shifts=["noise-0.5"], shift_reference=train).to_dict()
    b = measure(
        model, (x, y), "c4", shifts=["noise-0.5"], shift_reference=ShiftReference.of(train)
    ).to_dict()
    assert a["shift_reference"]["source"] == "given reference set"
    assert a["shift_reference"]["std"] == pytest.approx(3 * float(x.double().std(correction=0)))
    assert a["shift"]["noise-0.5"]["pdi"] == b["shift"]["noise-0.5"]["pdi"]
    c = measure(model, (x, y), "c4", shifts=["noise-0.5"]).to_dict()
    assert a["shift"]["noise-0.5"]["pdi"] != c["shift"]["noise-0.5"]["pdi"]


def test_bad_references() -> None:
    x = torch.randn(5, 1, 8, 8)
    shift = get_shift("noise-0.5")
    with pytest.raises(DataError, match=r"reference set of samples \(1, 6, 6\)"):
        shift(x, reference=ShiftReference.of(torch.randn(3, 1, 6, 6)))
    with pytest.raises(DataError, match="NaN or infinite"):
        ShiftReference.of(torch.tensor([[0.0, math.inf]]))
    with pytest.raises(DataError, match="one sample shape"):
        ShiftReference.from_batches([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(DataError, match="no samples"):
        ShiftReference.from_batches([])
    with pytest.raises(DataError, match="one global sample index"):
        shift(x, indices=torch.arange(3))
    model = _model(torch.float32)
    with pytest.raises(DataError, match="reference set of samples"):
        measure(model, (x, None), "c4", shifts=["uniform"], shift_reference=torch.zeros(2, 5))
    with pytest.raises(ConfigError, match="shift_reference"):
        InvarianceMetrics(model, "c4", shift="uniform")


def test_cli_measure_takes_a_shift_reference(tmp_path, capsys) -> None:
    import json

    import numpy as np

    from ginvariance.cli import main

    args = ["measure", "--model", "cnn", "--dataset", "digits", "--limit", "20", "--group", "c4"]
    main([*args, "--shift", "noise-0.5", "--shift-reference", "train", "--json", "--no-saliency"])
    result = json.loads(capsys.readouterr().out)
    reference = result["shift_reference"]
    assert reference["source"] == "given reference set" and reference["n_samples"] == 1085
    assert result["shift_parameters"]["noise-0.5"]["scale"] == pytest.approx(0.5 * reference["std"])
    main([*args, "--shift", "noise-0.5", "--json", "--no-saliency"])
    default = json.loads(capsys.readouterr().out)
    assert default["shift_reference"]["n_samples"] == 20  # the measured data themselves
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros((3, 1, 6, 6), np.float32), y=np.zeros(3, np.int64))
    with pytest.raises(SystemExit) as exc:
        main([*args, "--shift", "uniform", "--shift-reference", str(other)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shift-reference holds samples of shape (1, 6, 6)" in err[0]


def test_cli_measure_says_when_it_measures_untrained_weights(capsys) -> None:
    from ginvariance.cli import main

    args = ["measure", "--dataset", "digits", "--limit", "8", "--no-saliency", "--json"]
    main([*args, "--model", "cnn"])
    err = capsys.readouterr().err
    assert "randomly initialised weights" in err and len(err.strip().splitlines()) == 1
