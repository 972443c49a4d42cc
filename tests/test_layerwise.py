"""Layer-wise li and equivariance error, against a slow per-element reference."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from ginvariance.errors import ConfigError, DataError
from ginvariance.groups import get_group
from ginvariance.integrations.plots import plot_layerwise
from ginvariance.metrics import invariance_suite
from ginvariance.metrics.layerwise import layerwise_invariance


def c4_symmetric_conv(in_ch: int, out_ch: int) -> nn.Conv2d:
    """A 3×3 conv whose kernels are averaged over rot90: exactly c4-equivariant (1 in-channel)."""
    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
    with torch.no_grad():
        w = conv.weight
        conv.weight.copy_(sum(torch.rot90(w, k, dims=(-2, -1)) for k in range(4)) / 4)
    return conv


def model_for(dtype: torch.dtype, inplace: bool = False) -> nn.Sequential:
    return nn.Sequential(
        c4_symmetric_conv(1, 3),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
    ).to(dtype)


def _inputs(dtype: torch.dtype, b: int = 5) -> torch.Tensor:
    return torch.rand(b, 1, 6, 6, dtype=torch.float64).to(dtype)


def reference_layerwise(model: nn.Sequential, x: torch.Tensor, group_name: str):
    """Per sample, per group element, per entry, in float64 with Python sums."""
    model = copy.deepcopy(model).double().eval()
    x = x.double()
    group = get_group(group_name, tuple(x.shape[1:]))
    n, N = group.order, x.shape[0]
    # outs[layer][b][g] = flat list of the layer's output for g·x_b; maps[layer][b][g] the
    # output mapped back by g⁻¹ (None where the group cannot act on it)
    outs: list[list[list[list[float]]]] = [[[] for _ in range(N)] for _ in model]
    back: list[list[list[list[float] | None]]] = [[[] for _ in range(N)] for _ in model]
    with torch.no_grad():
        for b in range(N):
            for i in range(n):
                h = group.act(x[b : b + 1], i)
                for k, layer in enumerate(model):
                    h = layer(h)
                    outs[k][b].append(h.flatten().tolist())
                    if h.dim() == 4 and h.shape[-1] == h.shape[-2]:
                        back[k][b].append(group.act_inverse(h, i).flatten().tolist())
                    else:
                        back[k][b].append(None)
    rows = []
    for k in range(len(model)):
        D = len(outs[k][0][0])
        mu = [sum(outs[k][b][i][d] for b in range(N) for i in range(n)) / (N * n) for d in range(D)]
        within = total = defect = 0.0
        for b in range(N):
            for d in range(D):
                mean = sum(outs[k][b][i][d] for i in range(n)) / n
                for i in range(n):
                    within += (outs[k][b][i][d] - mean) ** 2
                    total += (outs[k][b][i][d] - mu[d]) ** 2
                    mapped = back[k][b][i]
                    if mapped is not None:
                        defect += (mapped[d] - outs[k][b][0][d]) ** 2
        acts = back[k][0][0] is not None
        rows.append(
            {
                "li": within / total if total > 0 else 0.0,
                "equivariance_error": (defect / total if total > 0 else 0.0) if acts else None,
            }
        )
    return rows


def _tol(dtype: torch.dtype) -> float:
    return 1e-6 if dtype == torch.float32 else 1e-12


def test_matches_the_per_element_reference(dtype: torch.dtype) -> None:
    model, x = model_for(dtype), _inputs(dtype)
    rows = layerwise_invariance(model, x, "c4")
    ref = reference_layerwise(model, x, "c4")
    assert [r["layer"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    assert [r["type"] for r in rows] == ["Conv2d", "ReLU", "Conv2d", "Tanh", "Flatten", "Linear"]
    assert rows[0]["shape"] == [3, 6, 6] and rows[4]["shape"] == [144] and rows[5]["shape"] == [5]
    rel = 1e-5 if dtype == torch.float32 else 1e-10
    for got, want in zip(rows, ref, strict=True):
        assert got["li"] == pytest.approx(want["li"], rel=rel, abs=_tol(dtype))
        if want["equivariance_error"] is None:
            assert got["equivariance_error"] is None
        else:
            assert got["equivariance_error"] == pytest.approx(
                want["equivariance_error"], rel=rel, abs=_tol(dtype)
            )


def test_symmetric_conv_is_equivariant_and_a_random_one_is_not(dtype: torch.dtype) -> None:
    model, x = model_for(dtype), _inputs(dtype)
    rows = {r["layer"]: r for r in layerwise_invariance(model, x, "c4")}
    assert rows["0"]["equivariance_error"] <= _tol(dtype)  # rot90-symmetric kernel
    assert rows["1"]["equivariance_error"] <= _tol(dtype)  # a pointwise ReLU keeps it
    assert rows["2"]["equivariance_error"] > 0.05  # a random 3-channel conv
    assert rows["0"]["li"] > 0.05  # equivariant, not invariant
    assert rows["4"]["equivariance_error"] is None and rows["5"]["equivariance_error"] is None


def test_last_layer_li_equals_the_logit_li(dtype: torch.dtype) -> None:
    model, x = model_for(dtype), _inputs(dtype)
    rows = layerwise_invariance(model, x, "c4")
    expected = invariance_suite(model, x, "c4", saliency=False)["li"]
    assert rows[-1]["li"] == pytest.approx(expected, rel=1e-5 if dtype == torch.float32 else 1e-12)


def test_chunking_and_inplace_activations_do_not_change_the_result(dtype: torch.dtype) -> None:
    model, x = model_for(dtype), _inputs(dtype, b=7)
    whole = layerwise_invariance(model, x, "c4")
    chunked = layerwise_invariance(model, x, "c4", chunk_size=3)
    inplace = model_for(dtype, inplace=True)
    inplace.load_state_dict(model.state_dict())
    in_place = layerwise_invariance(inplace, x, "c4")
    rel = 1e-5 if dtype == torch.float32 else 1e-10  # batch size changes conv rounding
    for a, b, c in zip(whole, chunked, in_place, strict=True):
        for key in ("li", "equivariance_error"):
            if a[key] is None:
                assert b[key] is None and c[key] is None
            else:
                assert b[key] == pytest.approx(a[key], rel=rel, abs=_tol(dtype))
                assert c[key] == pytest.approx(a[key], rel=1e-12, abs=1e-15)


class Tail(nn.Module):
    """A model with a shared activation and a functional tail (no module returns the logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv2(self.act(self.conv1(x))))
        return h.mean(dim=(-2, -1)) * 3.0  # global pooling: c4-invariant logits


def test_shared_layers_named_layers_and_the_output_entry(dtype: torch.dtype) -> None:
    model, x = Tail().to(dtype), _inputs(dtype)
    rows = layerwise_invariance(model, x, "c4")
    assert [r["layer"] for r in rows] == ["conv1", "act", "conv2", "act#2", "output"]
    out = rows[-1]
    assert out["li"] == pytest.approx(
        invariance_suite(model, x, "c4", saliency=False)["li"], abs=_tol(dtype)
    )
    assert out["li"] > 0.01  # a random conv stack is not invariant after pooling
    picked = layerwise_invariance(model, x, "c4", layers=["conv2"])
    assert [r["layer"] for r in picked] == ["conv2", "output"]
    assert picked[0]["li"] == pytest.approx(rows[2]["li"], rel=1e-12)
    with pytest.raises(ConfigError, match="no layer named 'conv3'"):
        layerwise_invariance(model, x, "c4", layers=["conv3"])


def test_group_averaged_logits_are_invariant_inside_a_layerwise_run(dtype: torch.dtype) -> None:
    class Averaged(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = model_for(dtype)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            orbit = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
            return self.base(orbit).reshape(4, x.shape[0], -1).mean(0)

    rows = layerwise_invariance(Averaged(), _inputs(dtype), "c4")
    assert rows[-1]["layer"] == "output"
    assert rows[-1]["li"] <= _tol(dtype)
    # the hooked inner layers see 4x the rows: they are reported without measures
    assert all(r["li"] is None for r in rows[:-1])


def test_plot_layerwise_writes_a_png(tmp_path: Any) -> None:
    model, x = model_for(torch.float32), _inputs(torch.float32)
    rows = layerwise_invariance(model, x, "c4")
    other = layerwise_invariance(model_for(torch.float32), x, "c4")
    path = tmp_path / "layers.png"
    png = plot_layerwise({"a": rows, "b": other}, path, title="c4")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and path.read_bytes() == png
    assert plot_layerwise(rows)[:4] == b"\x89PNG"
    with pytest.raises(DataError, match="no layers to plot"):
        plot_layerwise([])
