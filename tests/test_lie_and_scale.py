"""The Lie derivative against finite differences, and the scale-free spectral figures.

The Lie derivative ``d/dt f(T_t x)|_{t=0}`` is computed by forward-mode autodiff along the
closed-form generator of ``T_t``; the reference is a central finite difference of the model
composed with the transformation itself (:func:`rotate`, :func:`translate`), in float64.
Keys' cubic interpolant is C¹ but not C² at the pixel centres, so a plain central difference
has an O(h) error; the reference cancels it by Richardson extrapolation,
``2 D(h/2) − D(h)``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ginvariance.errors import ConfigError, GroupActionError, ModelError
from ginvariance.groups import CustomGroup
from ginvariance.spectral import (
    SCALE_FREE_KEYS,
    SCALED_KEYS,
    lie_derivative,
    logit_scale,
    rotate,
    rotation_generator,
    spectral_analysis,
    transform_for,
    translate,
    translation_generator,
)


def _cnn(dtype: torch.dtype, side: int = 6, k: int = 5) -> nn.Module:
    torch.manual_seed(2)
    return (
        nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(6, 6, 3, padding=1),
            nn.Softplus(),
            nn.Flatten(),
            nn.Linear(6 * side * side, k),
        )
        .to(dtype)
        .eval()
    )


def _cnn1d(dtype: torch.dtype, length: int = 9, k: int = 4) -> nn.Module:
    torch.manual_seed(2)
    return (
        nn.Sequential(
            nn.Conv1d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * length, k)
        )
        .to(dtype)
        .eval()
    )


def _richardson(fn, h: float = 1e-5) -> torch.Tensor:
    def central(step: float) -> torch.Tensor:
        return (fn(step) - fn(-step)) / (2 * step)

    return 2 * central(h / 2) - central(h)


def test_transformations_are_exact_where_they_should_be(dtype: torch.dtype) -> None:
    x = torch.randn(3, 2, 5, 5, dtype=dtype)
    assert torch.equal(rotate(x, 0.0), x)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(
        rotate(x, math.pi / 2), torch.rot90(x, 1, (-2, -1)), atol=tol, rtol=0
    )
    torch.testing.assert_close(rotate(x, math.pi), torch.rot90(x, 2, (-2, -1)), atol=tol, rtol=0)
    assert torch.equal(translate(x, 0.0, -1), x)
    torch.testing.assert_close(translate(x, 1.0, -1), x.roll(1, -1), atol=tol, rtol=0)
    torch.testing.assert_close(translate(x, -2.0, -2), x.roll(-2, -2), atol=tol, rtol=0)


@pytest.mark.parametrize("shape", [(4, 1, 6, 6), (3, 2, 5, 7)])
def test_generators_are_the_derivatives_of_the_transformations(shape) -> None:
    x = torch.randn(*shape, dtype=torch.float64)
    fd = _richardson(lambda t: rotate(x, t))
    torch.testing.assert_close(rotation_generator(x), fd, atol=1e-7, rtol=1e-7)
    for dim in (-1, -2):
        fd = _richardson(lambda t, d=dim: translate(x, t, d))
        torch.testing.assert_close(translation_generator(x, dim), fd, atol=1e-7, rtol=1e-7)


def _fd_norms(model, x, transform, dim=-1) -> torch.Tensor:
    def moved(t: float) -> torch.Tensor:
        return model(rotate(x, t) if transform == "rotation" else translate(x, t, dim))

    with torch.no_grad():
        return _richardson(moved).norm(dim=1)


def test_lie_derivative_matches_finite_differences_in_float64() -> None:
    x = torch.rand(5, 1, 6, 6, dtype=torch.float64)
    model = _cnn(torch.float64)
    lie = lie_derivative(model, x, "rotation")
    assert lie.shape == (5, 1)
    ref = _fd_norms(model, x, "rotation")
    assert float(((lie[:, 0] - ref) / ref).abs().max()) <= 1e-6
    lie = lie_derivative(model, x, "translation")
    assert lie.shape == (5, 2)  # one generator per spatial axis
    for column, dim in ((0, -2), (1, -1)):
        ref = _fd_norms(model, x, "translation", dim)
        assert float(((lie[:, column] - ref) / ref).abs().max()) <= 1e-6
    signals = torch.rand(4, 1, 9, dtype=torch.float64)
    model1d = _cnn1d(torch.float64)
    lie = lie_derivative(model1d, signals, "translation")
    ref = _fd_norms(model1d, signals, "translation", -1)
    assert lie.shape == (4, 1)
    assert float(((lie[:, 0] - ref) / ref).abs().max()) <= 1e-6


def test_lie_derivative_batched_equals_per_sample_and_dtypes_agree(dtype: torch.dtype) -> None:
    x = torch.rand(6, 1, 6, 6, dtype=torch.float64)
    model = _cnn(torch.float64)
    batched = lie_derivative(model, x, "rotation", chunk_size=4)
    loop = torch.cat([lie_derivative(model, x[i : i + 1], "rotation") for i in range(6)])
    torch.testing.assert_close(batched, loop, atol=1e-12, rtol=1e-12)
    low = lie_derivative(_cnn(dtype), x.to(dtype), "rotation").double()
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(low, batched, atol=tol, rtol=tol)


def test_lie_derivative_from_several_threads_at_once() -> None:
    """Forward-mode AD levels are global to the process: threads take turns, same numbers."""
    from concurrent.futures import ThreadPoolExecutor

    x = torch.rand(4, 1, 6, 6, dtype=torch.float64)
    model = _cnn(torch.float64)
    alone = lie_derivative(model, x, "rotation")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: lie_derivative(model, x, "rotation"), range(64)))
    for got in results:
        assert torch.equal(got, alone)
    # the whole analysis (Jacobians by vmap, Lie derivative, sensitivities) likewise
    first = spectral_analysis(model, x, "c4", seed=0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        again = list(pool.map(lambda _: spectral_analysis(model, x, "c4", seed=0), range(8)))
    assert all(entry == first for entry in again)


def test_lie_derivative_is_zero_for_a_model_invariant_to_the_transformation() -> None:
    """A linear read-out of the pixel sum: cyclic cubic translation keeps every sum."""
    weights = torch.randn(3, dtype=torch.float64)

    def summed(x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(1, 2, 3))[:, None] * weights

    x = torch.rand(4, 1, 6, 6, dtype=torch.float64)
    lie = lie_derivative(summed, x, "translation")
    assert float(lie.max()) <= 1e-12
    assert float(lie_derivative(summed, x, "rotation").max()) > 1e-3  # rotation loses corners


def test_transform_for_groups() -> None:
    assert transform_for("c4", (1, 8, 8)) == "rotation"
    assert transform_for("d4", (1, 8, 8)) == "rotation"
    assert transform_for("flip", (3, 8, 8)) == "rotation"
    assert transform_for("rotation-8", (1, 8, 8)) == "rotation"
    assert transform_for("shift", (1, 8, 8)) == "translation"
    assert transform_for("cyclic1d", (1, 40)) == "translation"
    assert transform_for("cyclic1d", (40,)) == "translation"
    with pytest.raises(ConfigError, match="transform="):
        transform_for(CustomGroup("mine", [(lambda t: t, lambda t: t)]), (1, 8, 8))


def test_lie_derivative_bad_input() -> None:
    model = _cnn1d(torch.float64)
    with pytest.raises(GroupActionError, match="1-D signals"):
        lie_derivative(model, torch.rand(2, 1, 9, dtype=torch.float64), "rotation")
    with pytest.raises(GroupActionError, match="1-D signals"):
        lie_derivative(model, torch.rand(2, 9, dtype=torch.float64), "rotation")
    with pytest.raises(ConfigError, match="unknown transform"):
        lie_derivative(model, torch.rand(2, 1, 9), "shear")
    cnn = _cnn(torch.float32)

    class Detached(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return cnn(x.detach())

    with pytest.raises(ModelError, match="detaches the input"):
        lie_derivative(Detached(), torch.rand(3, 1, 6, 6), "rotation")

    class NoForwardAD(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):  # type: ignore[override]
            return t * 2

        @staticmethod
        def backward(ctx, g):  # type: ignore[override]
            return g * 2

    with pytest.raises(ModelError, match="forward mode"):
        lie_derivative(lambda t: cnn(NoForwardAD.apply(t)), torch.rand(3, 1, 6, 6), "rotation")


@pytest.mark.parametrize("alpha", [0.1, 3.0, 250.0])
def test_raw_figures_scale_with_the_logits_and_normalized_ones_do_not(alpha: float) -> None:
    x = torch.rand(12, 1, 6, 6, dtype=torch.float64)
    model = _cnn(torch.float64)
    bias = torch.randn(5, dtype=torch.float64) * 7

    def scaled(t: torch.Tensor) -> torch.Tensor:
        return alpha * model(t) + bias

    eps = (1e-4,)  # small: a finite step in a nonlinear model is not exactly linear in α
    base = spectral_analysis(model, x, "c4", eps=eps)
    other = spectral_analysis(scaled, x, "c4", eps=eps)

    def close(a, b, factor: float, key: str) -> None:
        if isinstance(a, list):
            for u, v in zip(a, b, strict=True):
                assert v == pytest.approx(factor * u, rel=1e-6, abs=1e-12), key
        else:
            assert b == pytest.approx(factor * a, rel=1e-6, abs=1e-12), key

    for key in SCALED_KEYS:
        close(base[key], other[key], alpha, key)
    for key in SCALE_FREE_KEYS:
        close(base[key], other[key], 1.0, key)
    assert logit_scale(scaled, x) == pytest.approx(alpha * logit_scale(model, x), rel=1e-12)


def test_logit_scale_is_the_rms_spread_of_the_logits(dtype: torch.dtype) -> None:
    x = torch.rand(9, 1, 6, 6, dtype=dtype)
    model = _cnn(dtype)
    with torch.no_grad():
        z = model(x).double()
    loop = 0.0
    mean = [sum(float(z[i, k]) for i in range(9)) / 9 for k in range(5)]
    for i in range(9):
        loop += sum((float(z[i, k]) - mean[k]) ** 2 for k in range(5))
    expected = math.sqrt(loop / 9)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert logit_scale(model, x, chunk_size=4) == pytest.approx(expected, rel=tol)
