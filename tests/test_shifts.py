"""Tests of ginvariance.data.shifts against slow references in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ginvariance.data.shifts import (
    DEFAULT_SHIFTS,
    SHIFT_NAMES,
    Shift,
    get_shift,
    sample_photographs,
)
from ginvariance.errors import ConfigError, DataError

DTYPES = [torch.float32, torch.float64]
SHAPES = [(5, 1, 8, 8), (4, 3, 6, 7), (6, 40), (5, 1, 40), (3, 9, 9), (2, 2, 2, 5, 5)]
RANDOM_SHIFTS = ("noise-0.1", "noise-0.5", "noise-1.0", "uniform", "patches")


def batch(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 3 - 1).to(dtype)


def test_names() -> None:
    assert SHIFT_NAMES == DEFAULT_SHIFTS
    assert SHIFT_NAMES == (
        "noise-0.1",
        "noise-0.5",
        "noise-1.0",
        "uniform",
        "invert",
        "blur",
        "patches",
    )
    for name in SHIFT_NAMES:
        assert get_shift(name).name == name
    shift = get_shift("blur")
    assert get_shift(shift) is shift
    assert get_shift(" Noise-0.25 ").name == "noise-0.25"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", SHIFT_NAMES)
def test_shape_dtype_determinism(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = batch(shape, dtype)
    before = x.clone()
    torch_state = torch.get_rng_state()
    shift = get_shift(name)
    a, b, c = shift(x, seed=3), shift(x, seed=3), shift(x, seed=4)
    assert torch.equal(torch.get_rng_state(), torch_state)  # the global generator is untouched
    assert torch.equal(x, before)  # the input is not modified
    assert a.shape == x.shape and a.dtype == dtype and a.device == x.device
    assert bool(torch.isfinite(a).all())
    assert torch.equal(a, b)
    assert not torch.equal(a, x)
    if name in RANDOM_SHIFTS:
        assert not torch.equal(a, c)
    else:
        assert torch.equal(a, c)


def test_empty_batch() -> None:
    x = torch.zeros(0, 1, 8, 8)
    for name in SHIFT_NAMES:
        assert get_shift(name)(x).shape == x.shape


# -- noise ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sigma", [0.1, 0.5, 1.0, 0.25, 3.0])
def test_noise_std(sigma: float, dtype: torch.dtype) -> None:
    x = batch((200, 1, 10, 10), dtype)  # 20 000 entries: sample std within ~0.5 %
    noise = (get_shift(f"noise-{sigma}")(x, seed=1) - x).double()
    expected = sigma * float(x.double().std(correction=0))
    assert abs(float(noise.std()) / expected - 1) < 0.03
    assert abs(float(noise.mean())) < 0.03 * expected
    # independent of the input beyond its std: shifting x does not change the noise
    moved = (get_shift(f"noise-{sigma}")(x + 5, seed=1) - (x + 5)).double()
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(moved, noise, atol=tol, rtol=0)


def test_noise_on_constant_batch_has_std_sigma() -> None:
    x = torch.full((100, 100), 2.0, dtype=torch.float64)
    noise = get_shift("noise-0.5")(x) - x
    assert abs(float(noise.std()) - 0.5) < 0.02


@pytest.mark.parametrize(
    "bad", ["noise-0", "noise--1", "noise-abc", "noise-inf", "noise-nan", "noise-"]
)
def test_noise_bad_level(bad: str) -> None:
    with pytest.raises(ConfigError, match="positive number"):
        get_shift(bad)


# -- uniform and invert --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform(dtype: torch.dtype) -> None:
    x = batch((100, 1, 12, 12), dtype)
    lo, hi = float(x.min()), float(x.max())
    u = get_shift("uniform")(x, seed=2).double()
    assert float(u.min()) >= lo and float(u.max()) <= hi
    assert abs(float(u.mean()) - (lo + hi) / 2) < 0.01 * (hi - lo)
    assert abs(float(u.std()) - (hi - lo) / math.sqrt(12)) < 0.01 * (hi - lo)
    # pure noise: only min(x) and max(x) matter
    other = torch.full_like(x, lo)
    other[-1, 0, -1, -1] = hi
    assert torch.equal(get_shift("uniform")(other, seed=2), u.to(dtype))
    # and it does not correlate with x
    corr = np.corrcoef(x.double().flatten().numpy(), u.flatten().numpy())[0, 1]
    assert abs(corr) < 0.05


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_invert_exact(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = batch(shape, dtype)
    y = get_shift("invert")(x)
    reference = (x.min() + x.max()) - x
    assert torch.equal(y, reference)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(get_shift("invert")(y), x, atol=tol, rtol=0)
    assert float(y.min()) == pytest.approx(float(x.min()), abs=tol)
    assert float(y.max()) == pytest.approx(float(x.max()), abs=tol)


# -- blur ----------------------------------------------------------------------------------


def reflect(i: int, n: int) -> int:
    """Index of the reflect-padded position ``i`` in an axis of length ``n`` (no edge repeat)."""
    if n == 1:
        return 0
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def blur_reference(x: np.ndarray, spatial: int) -> np.ndarray:
    """Per-pixel Gaussian blur, σ = 1, taps −2..2, reflect padding, in float64."""
    taps = range(-2, 3)
    weights = np.array([math.exp(-(t * t) / 2) for t in taps])
    weights /= weights.sum()
    x = x.astype(np.float64)
    out = np.zeros_like(x)
    if spatial == 1:
        n = x.shape[-1]
        for idx in np.ndindex(*x.shape):
            *lead, j = idx
            out[idx] = sum(
                w * x[(*lead, reflect(j + t, n))] for w, t in zip(weights, taps, strict=True)
            )
        return out
    h, w_ = x.shape[-2:]
    for idx in np.ndindex(*x.shape):
        *lead, i, j = idx
        total = 0.0
        for wu, u in zip(weights, taps, strict=True):
            for wv, v in zip(weights, taps, strict=True):
                total += wu * wv * x[(*lead, reflect(i + u, h), reflect(j + v, w_))]
        out[idx] = total
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "spatial"),
    [((2, 1, 8, 8), 2), ((2, 3, 6, 7), 2), ((3, 5, 9), 2), ((3, 40), 1), ((2, 2, 2, 4, 5), 2)],
)
def test_blur_against_reference(shape: tuple[int, ...], spatial: int, dtype: torch.dtype) -> None:
    x = batch(shape, dtype)
    y = get_shift("blur")(x)
    reference = blur_reference(x.double().numpy(), spatial)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(y.double().numpy(), reference, atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_blur_of_single_row_is_1d_blur(dtype: torch.dtype) -> None:
    """A (1, L) sample (MNIST-1D) is blurred along L only."""
    x = batch((4, 1, 40), dtype)
    y = get_shift("blur")(x)
    reference = blur_reference(x[:, 0].double().numpy(), 1)[:, None, :]
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(y.double().numpy(), reference, atol=tol, rtol=0)
    constant = torch.full((2, 3, 5, 5), 0.7, dtype=dtype)
    torch.testing.assert_close(get_shift("blur")(constant), constant)


# -- patches -------------------------------------------------------------------------------


def test_sample_photographs() -> None:
    photos = sample_photographs()
    assert len(photos) == 2
    for photo in photos:
        assert photo.ndim == 2 and photo.dtype == torch.float64
        assert 0 <= float(photo.min()) and float(photo.max()) <= 1
        assert float(photo.std()) > 0.05


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(12, 3, 8, 8), (12, 40), (6, 1, 28, 28), (2, 1, 500, 700)])
def test_patches_range_channels_variety(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = batch(shape, dtype)
    y = get_shift("patches")(x, seed=0)
    lo, hi = float(x.min()), float(x.max())
    assert float(y.min()) >= lo and float(y.max()) <= hi
    if len(shape) == 4:  # grey repeated over channels
        assert torch.equal(y, y[:, :1].expand_as(y))
    flat = y.reshape(len(y), -1).double()
    assert float(flat.std(dim=1).min()) > 0  # no blank sample
    assert len({tuple(row.tolist()) for row in flat}) == len(y)  # samples differ


def test_patches_are_cut_from_the_photographs() -> None:
    """Rows of length 27 at 1/16 scale need no resizing: some samples are exact photo rows."""
    x = torch.rand(40, 27, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[0, 0], x[0, 1] = 0.0, 1.0  # range [0, 1]: the output is the grey value itself
    y = get_shift("patches")(x, seed=5)
    best = torch.full((len(y),), math.inf, dtype=torch.float64)
    for photo in sample_photographs():
        windows = photo.unfold(1, 27, 1).reshape(-1, 27)  # every row segment of length 27
        best = torch.minimum(best, torch.cdist(y, windows).min(dim=1).values)
    exact = int((best < 1e-9).sum())
    assert 5 <= exact < len(y)  # about a third use the 1/16 scale; the others are resized


# -- bad input -----------------------------------------------------------------------------


def test_unknown_shift() -> None:
    with pytest.raises(ConfigError, match=r"unknown shift 'rotate'.*noise-SIGMA.*uniform.*patches"):
        get_shift("rotate")
    with pytest.raises(ConfigError, match="not a name"):
        get_shift(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("x", "error", "pattern"),
    [
        (torch.zeros(3, 4, dtype=torch.int64), DataError, "floating-point"),
        (torch.zeros(4), DataError, r"batch \(N, \*S\)"),
        (np.zeros((3, 4)), DataError, "takes a tensor"),
        (torch.tensor([[0.0, float("nan")]]), DataError, "NaN or infinite"),
    ],
)
def test_shift_rejects_bad_input(x, error: type, pattern: str) -> None:
    for name in ("noise-0.1", "blur", "patches"):
        with pytest.raises(error, match=pattern):
            get_shift(name)(x)


def test_shift_rejects_bad_seed() -> None:
    with pytest.raises(ConfigError, match="seed"):
        get_shift("uniform")(torch.zeros(2, 3), seed=1.5)  # type: ignore[arg-type]


def test_custom_shift_must_keep_shape() -> None:
    bad = Shift("crop", lambda x, g: x[:, :2])
    with pytest.raises(DataError, match="must keep the shape"):
        bad(torch.zeros(2, 4))
