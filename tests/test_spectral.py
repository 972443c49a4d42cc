"""Tests of ginvariance.spectral against slow per-sample / per-element references."""

from __future__ import annotations

import copy
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from ginvariance.errors import ConfigError, DataError, GroupActionError, ModelError
from ginvariance.groups import get_group
from ginvariance.io import to_json
from ginvariance.spectral import (
    group_sensitivity,
    jacobian,
    jacobian_spectrum,
    saliency_power_spectrum,
    sensitivity,
    spectral_analysis,
)
from ginvariance.spectral.jacobian import _jacobian_vmap

# ---------------------------------------------------------------------------------------
# tiny models


def small_cnn(dtype: torch.dtype, side: int = 5, k: int = 3) -> nn.Module:
    """conv 3×3 → BatchNorm (non-trivial running stats) → tanh → flatten → linear."""
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        bn,
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4 * side * side, k),
    )
    return model.to(dtype)


class Linear(nn.Module):
    """``f(x) = W vec(x) + b`` on inputs of any sample shape."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


class InPlace(nn.Module):
    """Writes batched values into a fresh tensor in place: vmap cannot run it."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 2).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.zeros(x.shape[0], 3, dtype=x.dtype)
        z[:, :2] = self.lin(x)
        z[:, 2] = (x**2).sum(dim=1)
        return z


class C4Averaged(nn.Module):
    """Invariant to c4 by construction, averaging inputs or outputs over the orbit.

    ``inputs``: ``f(x) = h((1/4) Σ_r rot90(x, r))``;
    ``outputs``: ``f(x) = (1/4) Σ_r h(rot90(x, r))``.
    """

    def __init__(self, dtype: torch.dtype, average: str = "outputs") -> None:
        super().__init__()
        torch.manual_seed(2)
        self.h = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
        self.h.to(dtype)
        self.average = average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.average == "inputs":
            return self.h(sum(torch.rot90(x, r, dims=(-2, -1)) for r in range(4)) / 4)
        return sum(self.h(torch.rot90(x, r, dims=(-2, -1))) for r in range(4)) / 4


class CountingModel(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.shape[0])
        return self.inner(x)


def tol(dtype: torch.dtype) -> float:
    return 1e-6 if dtype == torch.float32 else 1e-10


# ---------------------------------------------------------------------------------------
# slow references (float64, one sample and one class / direction / element at a time


def reference_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model = copy.deepcopy(model).double().eval()
    rows = []
    for b in range(x.shape[0]):
        xb = x[b : b + 1].double().clone().requires_grad_(True)
        z = model(xb)[0]
        per_class = []
        for k in range(z.shape[0]):
            (g,) = torch.autograd.grad(z[k], xb, retain_graph=True)
            per_class.append(g.flatten())
        rows.append(torch.stack(per_class))
    return torch.stack(rows)


def reference_directions(n: int, batch: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n * batch, dim, generator=gen, dtype=torch.float64)
    return u / u.norm(dim=1, keepdim=True)


def reference_sensitivity(model, x, eps, n_directions, seed):
    u = reference_directions(n_directions, x.shape[0], x[0].numel(), seed)
    out = []
    with torch.no_grad():
        for e in eps:
            total, count = 0.0, 0
            for j in range(n_directions):
                for b in range(x.shape[0]):
                    xb = x[b : b + 1]
                    ub = u[j * x.shape[0] + b].reshape(xb.shape).to(x.dtype)
                    dz = model(xb + e * ub) - model(xb)
                    total += float(dz.double().norm()) / e
                    count += 1
            out.append(total / count)
    return torch.tensor(out, dtype=torch.float64)


def reference_group_sensitivity(model, x, eps):
    out = []
    with torch.no_grad():
        for e in eps:
            total, count = 0.0, 0
            for b in range(x.shape[0]):
                xb = x[b : b + 1]
                for r in range(1, 4):
                    d = torch.rot90(xb, r, dims=(-2, -1)) - xb
                    if float(d.norm()) <= torch.finfo(x.dtype).eps * float(xb.norm()):
                        continue
                    u = d / d.norm()
                    total += float((model(xb + e * u) - model(xb)).double().norm()) / e
                    count += 1
            out.append(total / count)
    return torch.tensor(out, dtype=torch.float64)


def reference_power_spectrum(maps: np.ndarray, n_bins: int) -> dict:
    """Per-sample numpy FFT, then every frequency visited one by one."""
    if maps.ndim == 4:
        maps = maps.sum(axis=1)
    spatial = maps.shape[1:]
    power = np.mean([np.abs(np.fft.fftn(m, norm="ortho")) ** 2 for m in maps], axis=0)  # (*spatial)

    def freq(k: int, n: int) -> Fraction:  # cycles per pixel, as numpy's fftfreq
        return Fraction(k, n) if k <= (n - 1) // 2 else Fraction(k - n, n)

    sums, counts = [0.0] * n_bins, [0] * n_bins
    high, non_dc, dc = 0.0, 0.0, 0.0
    for index in np.ndindex(*spatial):
        # exact squared radius in units of Nyquist: r² = Σ (2ω)²
        r2 = sum((2 * freq(k, n)) ** 2 for k, n in zip(index, spatial, strict=True))
        p = float(power[index])
        if r2 == 0:
            dc += p
            continue
        b = next(
            (
                k
                for k in range(n_bins)
                if Fraction(k, n_bins) ** 2 < r2 <= Fraction(k + 1, n_bins) ** 2
            ),
            n_bins - 1,
        )
        sums[b] += p
        counts[b] += 1
        non_dc += p
        if r2 > Fraction(1, 4):
            high += p
    return {
        "radial_power": [s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)],
        "high_frequency_fraction": high / non_dc if non_dc > 0 else 0.0,
        "dc_power": dc,
    }


# ---------------------------------------------------------------------------------------
# Jacobian


@pytest.mark.parametrize("method", ["auto", "vmap", "backward"])
def test_jacobian_matches_per_sample_per_class_loop(dtype, method):
    model = small_cnn(dtype)
    x = torch.randn(7, 1, 5, 5, dtype=dtype)
    jac = jacobian(model, x, chunk_size=3, method=method)
    ref = reference_jacobian(model, x)
    assert jac.shape == (7, 3, 25) and jac.dtype == dtype
    assert float((jac.double() - ref).abs().max()) < tol(dtype) * float(ref.abs().max())


def test_vmap_failure_falls_back_to_backward_passes(dtype):
    model = InPlace(dtype)
    x = torch.randn(5, 6, dtype=dtype)
    with pytest.raises(RuntimeError):
        _jacobian_vmap(model, x)
    jac = jacobian(model, x, method="vmap")
    ref = reference_jacobian(model, x)
    assert float((jac.double() - ref).abs().max()) < tol(dtype) * float(ref.abs().max())


def test_jacobian_restores_training_mode_and_leaves_batchnorm_stats():
    model = small_cnn(torch.float64)
    model.train()
    model[1].eval()  # a mixed state must come back as it was
    stats = model[1].running_mean.clone()
    x = torch.randn(4, 1, 5, 5, dtype=torch.float64)
    jacobian(model, x)
    sensitivity(model, x, [0.1])
    assert model.training and model[0].training and not model[1].training
    assert torch.equal(model[1].running_mean, stats)


def test_linear_model_spectrum_is_svd_of_weight(dtype):
    weight = torch.randn(4, 12, dtype=dtype)
    model = Linear(weight, torch.randn(4, dtype=dtype))
    x = torch.randn(9, 3, 2, 2, dtype=dtype)
    spec = jacobian_spectrum(model, x, chunk_size=4)
    expected = torch.linalg.svdvals(weight.double())
    assert len(spec["singular_values"]) == 4
    assert spec["singular_values"] == sorted(spec["singular_values"], reverse=True)
    scale = float(expected[0])
    for got, want in zip(spec["singular_values"], expected.tolist(), strict=True):
        assert abs(got - want) < 10 * tol(dtype) * scale
    assert abs(spec["frobenius"] - float(weight.double().norm())) < 10 * tol(dtype) * scale
    assert spec["frobenius_std"] < 10 * tol(dtype) * scale


# ---------------------------------------------------------------------------------------
# sensitivity


def test_linear_model_sensitivity_is_mean_norm_of_w_u(dtype):
    weight = torch.randn(3, 8, dtype=dtype)
    model = Linear(weight, torch.randn(3, dtype=dtype))
    x = torch.randn(5, 8, dtype=dtype)
    eps = [1e-3, 1e-1, 1.0]
    got = sensitivity(model, x, eps, n_directions=4, seed=3)
    ref = reference_sensitivity(model, x, eps, n_directions=4, seed=3)
    u = reference_directions(4, 5, 8, seed=3)
    exact = (u @ weight.double().T).norm(dim=1).mean()
    assert got.shape == (3,) and got.dtype == dtype
    # float32 loses digits to the cancellation f(x + εu) − f(x) at small ε
    rel = 1e-3 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(got.double(), ref, rtol=rel, atol=0)
    torch.testing.assert_close(got.double(), exact.expand(3), rtol=rel, atol=0)


def test_sensitivity_matches_loop_on_cnn_and_runs_one_forward_per_eps(dtype):
    model = CountingModel(small_cnn(dtype))
    x = torch.randn(6, 1, 5, 5, dtype=dtype)
    eps = [1e-2, 0.5]
    got = sensitivity(model, x, eps, n_directions=3, seed=0)
    assert model.rows == [6, 18, 18]
    ref = reference_sensitivity(model.inner.eval(), x, eps, n_directions=3, seed=0)
    rel = 1e-3 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(got.double(), ref, rtol=rel, atol=0)
    chunked = sensitivity(model, x, eps, n_directions=3, seed=0, chunk_size=5)
    torch.testing.assert_close(chunked, got, rtol=rel, atol=0)
    again = sensitivity(model, x, eps, n_directions=3, seed=0)
    assert torch.equal(again, got)
    other = sensitivity(model, x, eps, n_directions=3, seed=1)
    assert not torch.equal(other, got)


def test_group_sensitivity_matches_loop_and_skips_fixed_points(dtype):
    model = C4Averaged(dtype)
    x = torch.randn(5, 1, 4, 4, dtype=dtype)
    x[1] = 0.7  # fixed by every rotation: all three pairs skipped
    x[2] = x[2] + torch.rot90(x[2], 2, dims=(-2, -1))  # fixed by r180 only
    eps = [1e-3, 0.3]
    with torch.no_grad():
        z = model(x)
        for r in range(1, 4):  # the model is invariant, ...
            zr = model(torch.rot90(x, r, dims=(-2, -1)))
            assert float((zr - z).abs().max()) < 10 * tol(dtype)
    got = group_sensitivity(model, x, "c4", eps)
    ref = reference_group_sensitivity(model, x, eps)
    rel = 1e-3 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(got.double(), ref, rtol=rel, atol=0)
    # ... but the straight line from x towards g·x leaves the orbit: not flat
    assert float(got[0]) > 1e-3


def test_group_sensitivity_of_input_averaged_model_is_zero(dtype):
    # (1/n) Σ_h h·(g·x − x) = 0: the orbit mean does not move along g·x − x
    model = C4Averaged(dtype, average="inputs")
    x = torch.randn(6, 1, 4, 4, dtype=dtype)
    got = group_sensitivity(model, x, "c4", [1e-2, 1.0])
    scale = float(sensitivity(model, x, [1e-2, 1.0])[0])
    assert scale > 1e-2
    assert float(got.abs().max()) < 1e3 * tol(dtype) * max(1.0, scale)


def test_group_sensitivity_is_nan_when_the_group_fixes_every_sample(dtype):
    model = C4Averaged(dtype)
    x = torch.ones(3, 1, 4, 4, dtype=dtype)
    got = group_sensitivity(model, x, "c4", [0.1, 1.0])
    assert got.shape == (2,) and bool(torch.isnan(got).all())


# ---------------------------------------------------------------------------------------
# saliency power spectrum


def test_constant_map_has_all_energy_at_dc(dtype):
    for shape in [(2, 8, 8), (2, 7, 7), (3, 9)]:
        maps = torch.full(shape, 0.3, dtype=dtype)
        out = saliency_power_spectrum(maps)
        assert out["high_frequency_fraction"] == 0.0
        assert abs(out["dc_power"] - 0.09 * math.prod(shape[1:])) < 1e-5
        assert max(out["radial_power"]) < 1e-20
    zero = saliency_power_spectrum(torch.zeros(2, 6, 6, dtype=dtype))
    assert zero["high_frequency_fraction"] == 0.0 and zero["dc_power"] == 0.0


def test_checkerboard_has_all_energy_at_the_highest_frequency(dtype):
    idx = torch.arange(8)
    board = ((idx[:, None] + idx[None, :]) % 2).to(dtype) * 2 - 1
    out = saliency_power_spectrum(torch.stack([board, 2 * board]))
    assert out["high_frequency_fraction"] == pytest.approx(1.0, abs=1e-12)
    assert out["radial_power"][-1] > 0 and max(out["radial_power"][:-1]) < 1e-20
    signal = (torch.arange(10) % 2).to(dtype) - 0.5  # 1-D alternating
    assert saliency_power_spectrum(signal[None])["high_frequency_fraction"] == pytest.approx(1.0)


def test_smooth_gaussian_bump_is_low_frequency(dtype):
    coords = torch.arange(16, dtype=dtype) - 7.5
    bump = torch.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * 3.0**2))
    out = saliency_power_spectrum(bump[None, None])  # (B, C, H, W)
    assert out["high_frequency_fraction"] < 1e-3
    assert out["frequencies"] == [(k + 1) / 8 for k in range(8)]
    assert all(p > 0 for p in out["radial_power"])
    assert out["radial_power"] == sorted(out["radial_power"], reverse=True)


@pytest.mark.parametrize(
    ("shape", "n_bins"),
    [
        ((4, 8, 8), None),
        ((3, 7, 9), 5),
        ((2, 3, 6, 6), 3),
        ((2, 20, 20), None),
        ((5, 16), None),
        ((3, 15), 3),
    ],
)
def test_power_spectrum_matches_numpy_loop(dtype, shape, n_bins):
    maps = torch.randn(shape, dtype=dtype)
    bins = n_bins if n_bins is not None else max(shape[-2:] if len(shape) > 2 else shape[-1:]) // 2
    out = saliency_power_spectrum(maps, n_bins=n_bins)
    ref = reference_power_spectrum(maps.double().numpy(), bins)
    assert len(out["radial_power"]) == len(out["frequencies"]) == bins
    np.testing.assert_allclose(out["radial_power"], ref["radial_power"], rtol=1e-10, atol=1e-12)
    assert out["high_frequency_fraction"] == pytest.approx(ref["high_frequency_fraction"], 1e-10)
    assert out["dc_power"] == pytest.approx(ref["dc_power"], rel=1e-10, abs=1e-12)
    assert 0.0 < out["high_frequency_fraction"] < 1.0


# ---------------------------------------------------------------------------------------
# the whole analysis


def test_spectral_analysis_is_json_ready_seeded_and_consistent(dtype):
    model = small_cnn(dtype, side=4)
    x = torch.randn(16, 1, 4, 4, dtype=dtype)
    saliency = torch.randn(16, 1, 4, 4, dtype=dtype)
    out = spectral_analysis(model, x, "c4", eps=(1e-2, 1e-3, 0.1), saliency=saliency)
    keys = {
        "singular_values",
        "frobenius",
        "frobenius_std",
        "eps",
        "sensitivity_random",
        "sensitivity_group",
        "saliency_power",
        "jacobian_ratio",
        "singular_value_ratios",
        "effective_rank",
        "sensitivity_probability",
        "lie_transform",
        "lie_derivative",
        "lie_derivative_generators",
        "logit_scale",
        "singular_values_normalized",
        "frobenius_normalized",
        "sensitivity_random_normalized",
        "lie_derivative_normalized",
    }
    assert set(out) == keys
    assert out["lie_transform"] == "rotation"
    json.loads(to_json(out))  # finite, plain Python types
    assert len(out["singular_values"]) == 3 and len(out["sensitivity_group"]) == 3
    ratio = out["sensitivity_random"][1] / (out["frobenius"] / math.sqrt(16))
    assert out["jacobian_ratio"] == pytest.approx(ratio)
    # informational: E‖J u‖ ≈ 0.96 ‖J‖_F / √D for any model; only a loose bound holds
    assert 0.5 < out["jacobian_ratio"] < 1.2
    assert out == spectral_analysis(model, x, "c4", eps=(1e-2, 1e-3, 0.1), saliency=saliency)
    other = spectral_analysis(model.double(), x.double(), get_group("c4"), eps=(1e-2, 1e-3, 0.1))
    assert "saliency_power" not in other
    assert other["frobenius"] == pytest.approx(out["frobenius"], rel=1e-5)


def test_undefined_values_become_none():
    model = C4Averaged(torch.float64)
    out = spectral_analysis(model, torch.ones(2, 1, 4, 4, dtype=torch.float64), "c4", eps=[0.1])
    assert out["sensitivity_group"] == [None]
    zero = Linear(torch.zeros(2, 16, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    out = spectral_analysis(zero, torch.randn(3, 1, 4, 4, dtype=torch.float64), "c4", eps=[0.1])
    assert out["jacobian_ratio"] is None and out["frobenius"] == 0.0
    # a constant model has no logit scale: nothing can be normalized by it
    assert out["logit_scale"] == 0.0 and out["frobenius_normalized"] is None
    assert out["singular_values_normalized"] == [None, None]
    assert out["effective_rank"] is None and out["singular_value_ratios"] is None
    json.loads(to_json(out))


# ---------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_precise_errors():
    model = small_cnn(torch.float32)
    x = torch.randn(3, 1, 5, 5)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        jacobian(model, bad)
    with pytest.raises(DataError, match="batch axis"):
        sensitivity(model, torch.randn(5), [0.1])
    with pytest.raises(DataError, match="float32 or float64"):
        jacobian(model, x.long())
    with pytest.raises(ConfigError, match="eps"):
        sensitivity(model, x, [0.1, -1.0])
    with pytest.raises(ConfigError, match="eps"):
        group_sensitivity(model, x, "c4", [])
    with pytest.raises(ConfigError, match="n_directions"):
        sensitivity(model, x, [0.1], n_directions=0)
    with pytest.raises(ConfigError, match="chunk_size"):
        jacobian(model, x, chunk_size=0)
    with pytest.raises(ConfigError, match="method"):
        jacobian(model, x, method="loop")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=r"\(B, K\)"):
        jacobian(lambda t: t.sum(), x)
    with pytest.raises(GroupActionError, match="square"):
        group_sensitivity(model, torch.randn(2, 1, 5, 4), "c4", [0.1])
    with pytest.raises(DataError, match="saliency"):
        saliency_power_spectrum(torch.randn(2, 3, 4, 4, 4))
    with pytest.raises(ConfigError, match="n_bins"):
        saliency_power_spectrum(torch.randn(2, 4, 4), n_bins=0)
    with pytest.raises(DataError, match="one saliency map per input"):
        spectral_analysis(model, x, "c4", saliency=torch.randn(2, 1, 5, 5))
