"""sis under captum attributions: gradient, integrated gradients, SmoothGrad, any class."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient
from torch import nn

from ginvariance.errors import ConfigError
from ginvariance.groups import get_group
from ginvariance.metrics import invariance_suite, orbit_pass
from ginvariance.metrics.attribution import saliency_orbit, sis_attribution

STEPS = 8  # quadrature nodes of integrated gradients in these tests


def small_cnn(dtype: torch.dtype) -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
    )
    return model.to(dtype)


class C4Averaged(nn.Module):
    """``f(x) = (1/4) Σ_k base(rot90(x, k))``: invariant to c4 by construction."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        orbit = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
        return self.base(orbit).reshape(4, x.shape[0], -1).mean(0)


def _inputs(dtype: torch.dtype, b: int = 6) -> torch.Tensor:
    return torch.rand(b, 1, 6, 6, dtype=torch.float64).to(dtype)


def _cos(a: torch.Tensor, r: torch.Tensor) -> float:
    na, nr = math.sqrt(float((a * a).sum())), math.sqrt(float((r * r).sum()))
    if na == 0 and nr == 0:
        return 1.0
    if na == 0 or nr == 0:
        return 0.0
    return float((a * r).sum()) / (na * nr)


def reference_ig(model: nn.Module, x: torch.Tensor, group_name: str, steps: int):
    """Integrated gradients (zero baseline, Gauss–Legendre) one sample, one g at a time."""
    model = copy.deepcopy(model).double()
    x = x.double()
    group = get_group(group_name, tuple(x.shape[1:]))
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    # captum rounds the quadrature weights (not the nodes) to float32; so does the reference
    alphas, step_sizes = 0.5 * (1 + nodes), (0.5 * weights).astype(np.float32)
    maps = torch.zeros(group.order, *x.shape, dtype=torch.float64)
    sis = []
    for b in range(x.shape[0]):
        with torch.no_grad():
            c = int(model(x[b : b + 1])[0].argmax())
        for i in range(group.order):
            u = group.act(x[b : b + 1], i)
            total = torch.zeros_like(u)
            for alpha, w in zip(alphas, step_sizes, strict=True):
                point = (float(alpha) * u).requires_grad_(True)
                (grad,) = torch.autograd.grad(model(point)[0, c], point)
                total = total + float(w) * grad
            maps[i, b] = group.act_inverse(u * total, i)[0]
        sis.append(sum(_cos(maps[i, b], maps[0, b]) for i in range(1, group.order)) / 3)
    return maps, sum(sis) / len(sis)


def test_gradient_method_equals_the_orbit_pass_saliency(dtype: torch.dtype) -> None:
    model, x = small_cnn(dtype), _inputs(dtype)
    maps = saliency_orbit(model, x, "c4", "gradient")
    expected = orbit_pass(model, x, "c4", saliency=True).saliency
    assert expected is not None
    assert maps.shape == (4, *x.shape) and maps.dtype == dtype
    torch.testing.assert_close(maps, expected, rtol=0, atol=0)
    sis = sis_attribution(model, x, "c4", ["gradient"])["sis"]
    assert sis == pytest.approx(invariance_suite(model, x, "c4")["sis"], abs=1e-12)


def test_integrated_gradients_match_a_per_sample_reference(dtype: torch.dtype) -> None:
    model, x = small_cnn(dtype), _inputs(dtype, b=3)
    maps = saliency_orbit(model, x, "c4", "integrated_gradients", n_steps=STEPS)
    ref_maps, ref_sis = reference_ig(model, x, "c4", STEPS)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(maps.double(), ref_maps, rtol=tol, atol=tol)
    got = sis_attribution(
        model,
        x,
        "c4",
        ["integrated_gradients"],
        options={"integrated_gradients": {"n_steps": STEPS}},
    )
    assert got["sis_ig"] == pytest.approx(ref_sis, abs=tol * 10)


def test_integrated_gradients_chunked_equals_whole(dtype: torch.dtype) -> None:
    model, x = small_cnn(dtype), _inputs(dtype, b=5)
    whole = saliency_orbit(model, x, "c4", "integrated_gradients", n_steps=STEPS)
    chunked = saliency_orbit(
        model,
        x,
        "c4",
        "integrated_gradients",
        n_steps=STEPS,
        chunk_size=2,
        internal_batch_size=16,
    )
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(chunked, whole, rtol=tol, atol=tol)


def test_invariant_model_scores_one_under_integrated_gradients(dtype: torch.dtype) -> None:
    x = _inputs(dtype)
    base = small_cnn(dtype)
    bound = 1 - (1e-5 if dtype == torch.float32 else 1e-10)
    invariant = sis_attribution(
        C4Averaged(base),
        x,
        "c4",
        ["integrated_gradients", InputXGradient],
        options={"integrated_gradients": {"n_steps": STEPS}},
    )
    assert invariant["sis_ig"] >= bound
    assert invariant["sis_InputXGradient"] >= bound
    plain = sis_attribution(
        base,
        x,
        "c4",
        ["integrated_gradients"],
        options={"integrated_gradients": {"n_steps": STEPS}},
    )
    assert plain["sis_ig"] < 0.9  # the check can fail: a random CNN is far from invariant


def test_smoothgrad_is_seeded_bounded_and_leaves_the_global_rng_alone(
    dtype: torch.dtype,
) -> None:
    model, x = small_cnn(dtype), _inputs(dtype)
    opts = {"smoothgrad": {"nt_samples": 4}}
    torch.manual_seed(123)
    a = sis_attribution(model, x, "c4", ["smoothgrad"], seed=7, options=opts)["sis_smoothgrad"]
    after = torch.rand(3)
    torch.manual_seed(123)
    b = sis_attribution(model, x, "c4", ["smoothgrad"], seed=7, options=opts)["sis_smoothgrad"]
    assert torch.equal(torch.rand(3), after)  # the caller's random stream is untouched
    c = sis_attribution(model, x, "c4", ["smoothgrad"], seed=8, options=opts)["sis_smoothgrad"]
    assert a == b
    assert a != c
    assert -1.0 <= a <= 1.0 and math.isfinite(a)
    maps = saliency_orbit(C4Averaged(model), x, "c4", "smoothgrad", nt_samples=2)
    assert maps.shape == (4, *x.shape) and bool(torch.isfinite(maps).all())


def test_keys_and_bad_methods() -> None:
    model, x = small_cnn(torch.float32), _inputs(torch.float32, b=2)
    got = sis_attribution(
        model,
        x,
        "c4",
        ["gradient", "smoothgrad", InputXGradient],
        options={"smoothgrad": {"nt_samples": 2}},
    )
    assert set(got) == {"sis", "sis_smoothgrad", "sis_InputXGradient"}
    with pytest.raises(ConfigError, match="unknown attribution method"):
        sis_attribution(model, x, "c4", ["saliency"])
    with pytest.raises(ConfigError, match="not a captum Attribution"):
        sis_attribution(model, x, "c4", [nn.Linear])
    with pytest.raises(ConfigError, match="repeat a key"):
        sis_attribution(model, x, "c4", ["gradient", "gradient"])
