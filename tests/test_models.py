"""Models: shapes and dtypes, exact invariance of weight-tied and symmetrized networks,
group convolutions against a slow per-element reference, and errors on bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ginvariance.errors import GroupError, ModelError
from ginvariance.groups import CustomGroup, get_group
from ginvariance.models import (
    CNN,
    MLP,
    MODEL_NAMES,
    CNN1d,
    GroupConv2d,
    InvariantLinear,
    LiftingConv2d,
    WeightTiedCNN,
    WeightTiedCNN1d,
    build_model,
    cayley_table,
    symmetrize,
)

LOGIT_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
PDI_TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


# -- helpers ---------------------------------------------------------------------------------
def digits_at(images: Tensor, height: int, width: int, dtype: torch.dtype) -> Tensor:
    """Digits resized (nearest) to ``height × width``: in-distribution-like inputs."""
    return F.interpolate(images[:24].float(), size=(height, width), mode="nearest").to(dtype)


def orbit_logits(model: nn.Module, x: Tensor, group_name: str) -> Tensor:
    """``(n, B, K)``: the logits of every element of the orbit of ``x``."""
    group = get_group(group_name, tuple(x.shape[1:]))
    with torch.no_grad():
        z = model(group.orbit(x))
    return z.reshape(group.order, x.shape[0], -1)


def invariance_errors(model: nn.Module, x: Tensor, group_name: str) -> tuple[float, float]:
    """``max_g,x |z_g − z_e|`` and ``max_x |pdi(x)|`` with ``pdi = H(p̄) − mean_g H(p_g)``."""
    z = orbit_logits(model, x, group_name)
    logit_error = float((z - z[0]).abs().max())
    p = torch.softmax(z, dim=-1)
    entropy = -torch.special.xlogy(p, p).sum(-1)  # (n, B)
    p_bar = p.mean(0)
    pdi = -torch.special.xlogy(p_bar, p_bar).sum(-1) - entropy.mean(0)
    return logit_error, float(pdi.abs().max())


def sgd_steps(model: nn.Module, x: Tensor, num_classes: int, steps: int = 3) -> nn.Module:
    """A few SGD steps on random labels, so that the weights carry no accidental symmetry."""
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, num_classes, (x.shape[0],), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def assert_invariant(model: nn.Module, inputs: dict[str, Tensor], group: str, dtype) -> None:
    for kind, x in inputs.items():
        logit_error, pdi = invariance_errors(model, x, group)
        assert logit_error <= LOGIT_TOL[dtype], (kind, logit_error)
        assert pdi <= PDI_TOL[dtype], (kind, pdi)


# -- shapes and dtypes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "group", "expected"),
    [
        ((1, 8, 8), "c4", {"mlp": MLP, "cnn": CNN, "weight-tied": WeightTiedCNN}),
        ((8, 8), "d4", {"mlp": MLP, "cnn": CNN, "weight-tied": WeightTiedCNN}),
        ((3, 9, 9), "c4", {"mlp": MLP, "cnn": CNN, "weight-tied": WeightTiedCNN}),
        ((1, 28, 28), "c4", {"mlp": MLP, "cnn": CNN, "weight-tied": WeightTiedCNN}),
        ((2, 7, 10), "flip", {"mlp": MLP, "cnn": CNN, "weight-tied": WeightTiedCNN}),
        ((1, 40), "cyclic1d", {"mlp": MLP, "cnn": CNN1d, "weight-tied": WeightTiedCNN1d}),
        ((40,), "cyclic1d", {"mlp": MLP, "cnn": CNN1d, "weight-tied": WeightTiedCNN1d}),
    ],
)
def test_build_model_maps_batches_to_logits(shape, group, expected, dtype) -> None:
    for name in MODEL_NAMES:
        model = build_model(name, shape, 7, group=group).to(dtype)
        assert type(model) is expected[name]
        z = model(torch.rand(3, *shape, dtype=dtype))
        assert z.shape == (3, 7) and z.dtype == dtype


def test_two_axis_shapes_without_group() -> None:
    assert isinstance(build_model("cnn", (1, 40), 10), CNN1d)
    assert isinstance(build_model("cnn", (8, 8), 10), CNN)
    assert isinstance(build_model("cnn", (28, 28), 10), CNN)


def test_cnn_architecture_follows_the_prototype() -> None:
    small = build_model("cnn", (1, 8, 8), 10)
    assert isinstance(small, CNN) and not small.pool
    assert small.head.in_features == 64 * 8 * 8
    assert [type(m) for m in small.features] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU]
    assert sum(p.numel() for p in small.parameters()) == 59786  # the study's 8×8 network


def test_large_images_get_the_28x28_architectures() -> None:
    """28×28: a 2×2 average pool, then 14 → 7; the weight-tied net ends in a G-invariant
    linear head."""
    big = build_model("cnn", (1, 28, 28), 10)
    assert isinstance(big, CNN) and big.pool and big.width == 16
    kinds = [nn.AvgPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU]
    assert [type(m) for m in big.features] == kinds
    assert big.head.in_features == 32 * 7 * 7
    assert build_model("cnn", (28, 28), 10, width=8).head.in_features == 16 * 7 * 7
    for group, params in (("c4", 6322), ("d4", 8626), ("flip", 5170)):
        tied = build_model("weight-tied", (1, 28, 28), 10, group=group)
        assert isinstance(tied, WeightTiedCNN) and tied.pool and tied.width == 8
        assert isinstance(tied.head, InvariantLinear)
        assert tuple(tied.head.weight.shape) == (10, 8, 7, 7)
        assert sum(p.numel() for p in tied.parameters()) == params
        features = tied.equivariant_features(torch.rand(2, 1, 28, 28))
        assert features.shape == (2, 8, get_group(group).order, 7, 7)
    small = build_model("weight-tied", (1, 8, 8), 10, group="c4")
    assert not small.pool and small.width == 40 and isinstance(small.head, nn.Linear)


@pytest.mark.parametrize("group", ["c4", "d4", "flip"])
def test_invariant_linear_head_is_exactly_invariant(group, dtype) -> None:
    g_group = get_group(group)
    head = InvariantLinear(3, 6, 6, 5, g_group).to(dtype)
    weight = head.invariant_weight().detach()
    for g in range(g_group.order):
        assert float((g_group.act(weight, g) - weight).abs().max()) <= LOGIT_TOL[dtype] / 100
    x = torch.randn(4, 3, 6, 6, dtype=dtype)
    with torch.no_grad():
        base = head(x)
        for g in range(g_group.order):
            assert float((head(g_group.act(x, g)) - base).abs().max()) <= LOGIT_TOL[dtype]
    # not invariant to what the group does not do: a one-pixel shift changes the output
    with torch.no_grad():
        assert float((head(torch.roll(x, 1, dims=-1)) - base).abs().max()) > 1e-3


def test_weight_tied_parameter_count_matches_cnn() -> None:
    cnn = sum(p.numel() for p in build_model("cnn", (1, 8, 8), 10).parameters())
    for group in ("c4", "d4", "flip"):
        wt = build_model("weight-tied", (1, 8, 8), 10, group=group)
        count = sum(p.numel() for p in wt.parameters())
        assert abs(count - cnn) / cnn < 0.1, (group, count, cnn)


# -- the group convolution against a slow reference ------------------------------------------
def _element(name: str, i: int) -> tuple[int, int]:
    """Element ``i`` as (rotations r, mirror m): the map ``x ↦ rot90^r(flip^m(x))``."""
    if name == "c4":
        return i, 0
    if name == "flip":
        return 0, i
    return i % 4, i // 4


def _index(name: str, r: int, m: int) -> int:
    return {"c4": r % 4, "flip": m, "d4": r % 4 + 4 * m}[name]


def _inverse_times(name: str, g: int, h: int) -> int:
    """Index of ``g⁻¹h`` from ``rot·flip = flip·rot⁻¹``."""
    rg, mg = _element(name, g)
    rh, mh = _element(name, h)
    # g⁻¹ = (-r, 0) if not mirrored, else g itself.
    ri, mi = ((-rg) % 4, 0) if mg == 0 else (rg, 1)
    # (ri, mi)(rh, mh) = rot^(ri + (-1)^mi · rh) flip^(mi + mh)
    return _index(name, ri + (-1) ** mi * rh, (mi + mh) % 2)


def _transform(name: str, kernel: Tensor, g: int) -> Tensor:
    r, m = _element(name, g)
    if m:
        kernel = torch.flip(kernel, dims=(-1,))
    return torch.rot90(kernel, r, dims=(-2, -1))


def reference_group_conv(name: str, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``F'(c, g) = b_c + Σ_c' Σ_h conv2d(F(c', h), g·W[c, c', g⁻¹h])``, element by element."""
    n = weight.shape[2]
    b, c_in, _, hh, ww = x.shape
    out = torch.zeros(b, weight.shape[0], n, hh, ww, dtype=x.dtype)
    for c in range(weight.shape[0]):
        for g in range(n):
            acc = torch.full((b, 1, hh, ww), float(bias[c]), dtype=x.dtype)
            for cp in range(c_in):
                for h in range(n):
                    k = _transform(name, weight[c, cp, _inverse_times(name, g, h)], g)
                    acc = acc + F.conv2d(x[:, cp, h : h + 1], k[None, None], padding=1)
            out[:, c, g] = acc[:, 0]
    return out


@pytest.mark.parametrize("group", ["c4", "d4", "flip"])
def test_cayley_table_matches_the_presentation(group) -> None:
    table = cayley_table(get_group(group))
    n = table.shape[0]
    for g in range(n):
        for h in range(n):
            # g⁻¹(gh) = h
            assert _inverse_times(group, g, int(table[g, h])) == h


@pytest.mark.parametrize("group", ["c4", "d4", "flip"])
@pytest.mark.parametrize("size", [(5, 5), (6, 6)])
def test_group_conv_matches_reference(group, size) -> None:
    if group == "flip":
        size = (size[0], size[1] + 2)
    layer = GroupConv2d(2, 3, get_group(group)).double()
    n = get_group(group).order
    x = torch.randn(2, 2, n, *size, dtype=torch.float64)
    expected = reference_group_conv(group, x, layer.weight.detach(), layer.bias.detach())
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("group", ["c4", "d4", "flip"])
def test_lifting_conv_matches_reference(group) -> None:
    layer = LiftingConv2d(2, 3, get_group(group)).double()
    x = torch.randn(2, 2, 7, 7, dtype=torch.float64)
    n = get_group(group).order
    expected = torch.stack(
        [
            F.conv2d(x, _transform(group, layer.weight.detach(), g), layer.bias.detach(), padding=1)
            for g in range(n)
        ],
        dim=2,
    )
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=0)


def _act_on_group_features(group_name: str, y: Tensor, g: int) -> Tensor:
    """``(g·F)(h, x) = F(g⁻¹h, g⁻¹x)`` on features ``(B, C, n, H, W)``."""
    group = get_group(group_name)
    moved = group.act(y, g)
    index = [_inverse_times(group_name, g, h) for h in range(group.order)]
    return moved[:, :, index]


@pytest.mark.parametrize("group", ["c4", "d4", "flip"])
@pytest.mark.parametrize("size", [7, 8, 28])
def test_weight_tied_features_are_equivariant(group, size, dtype) -> None:
    model = WeightTiedCNN((1, size, size), 10, group=group, width=6).to(dtype)
    x = torch.rand(3, 1, size, size, dtype=dtype)
    g_group = get_group(group)
    with torch.no_grad():
        features = model.equivariant_features(x)
    for g in range(g_group.order):
        with torch.no_grad():
            moved = model.equivariant_features(g_group.act(x, g))
        expected = _act_on_group_features(group, features, g)
        assert float((moved - expected).abs().max()) <= LOGIT_TOL[dtype]


# -- exact invariance ------------------------------------------------------------------------
#: (group, image size, width): narrow networks (invariance does not depend on the width),
#: and the default width on the digits setting.
INVARIANCE_CASES = [
    *[(g, (s, s), 6) for g in ("c4", "d4", "flip") for s in (7, 8, 9, 28)],
    ("flip", (7, 10), 6),
    ("flip", (12, 9), 6),
    ("c4", (8, 8), None),
]


@pytest.mark.parametrize(("group", "size", "width"), INVARIANCE_CASES)
def test_weight_tied_is_exactly_invariant(group, size, width, dtype, digits_images) -> None:
    inputs = {
        "digits": digits_at(digits_images, *size, dtype),
        "uniform": torch.rand(24, 1, *size, dtype=dtype),
    }
    model = build_model("weight-tied", (1, *size), 10, group=group, width=width).to(dtype)
    assert_invariant(model, inputs, group, dtype)
    sgd_steps(model, inputs["digits"], 10)
    assert_invariant(model, inputs, group, dtype)


def test_weight_tied_halves_even_sided_small_images_only() -> None:
    even = build_model("weight-tied", (1, 8, 8), 10, group="c4", width=4)
    assert isinstance(even, WeightTiedCNN) and even.halve and not even.pool
    assert even.equivariant_features(torch.rand(2, 1, 8, 8)).shape == (2, 4, 4, 4, 4)
    with pytest.raises(ModelError, match=r"halves its feature maps.*got 9×9; pad the images"):
        even(torch.rand(2, 1, 9, 9))
    for shape in ((1, 7, 7), (1, 7, 10)):
        odd = build_model("weight-tied", shape, 10, group="flip", width=4)
        assert isinstance(odd, WeightTiedCNN) and not odd.halve
        assert odd(torch.rand(2, 1, 9, 9)).shape == (2, 10)  # fully convolutional


@pytest.mark.parametrize(
    ("group", "size"), [("c4", 8), ("d4", 8), ("flip", 8), ("c4", 28), ("flip", 28)]
)
def test_weight_tied_saliency_is_equivariant_on_a_constant_background(
    group, size, dtype, digits_images
) -> None:
    """The digits' zero background ties every window of the 2×2 max-pools; the gradient must
    still be split symmetrically, so every element's saliency, mapped back, is the same map.

    Not ``d4`` at 28×28: there the group max-pool meets values equal in exact arithmetic
    that rounding makes unequal in some orientations only (the sums run in another order),
    and the gradient follows the rounding (a spread of 0.25; 4e-16 once noise breaks the ties).
    """
    from ginvariance.metrics import orbit_pass

    model = build_model("weight-tied", (1, size, size), 10, group=group, width=4).to(dtype)
    with torch.no_grad():
        model.lift.bias.abs_()  # the background passes the ReLU: ties, not zeros
    maps = orbit_pass(model, digits_at(digits_images, size, size, dtype), group, saliency=True)
    assert maps.saliency is not None
    spread = (maps.saliency - maps.saliency[:1]).abs().max() / maps.saliency.abs().max()
    assert float(spread) <= PDI_TOL[dtype]


def test_weight_tied_pooled_model_is_exact_at_28() -> None:
    model = build_model("weight-tied", (1, 28, 28), 10, group="c4")
    assert isinstance(model, WeightTiedCNN) and model.pool


@pytest.mark.parametrize("shape", [(1, 40), (40,), (2, 37)])
def test_weight_tied_1d_is_invariant_to_cyclic_shifts(shape, dtype) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(12, *shape, generator=gen).to(dtype)
    model = build_model("weight-tied", shape, 10, group="cyclic1d").to(dtype)
    inputs = {"signals": x, "uniform": torch.rand(12, *shape, dtype=dtype)}
    assert_invariant(model, inputs, "cyclic1d", dtype)
    sgd_steps(model, x, 10)
    assert_invariant(model, inputs, "cyclic1d", dtype)


@pytest.mark.parametrize(
    ("name", "shape", "group"),
    [
        ("cnn", (1, 8, 8), "c4"),
        ("cnn", (1, 8, 8), "d4"),
        ("cnn", (1, 9, 9), "d4"),
        ("cnn", (1, 28, 28), "c4"),
        ("cnn", (1, 28, 28), "d4"),
        ("cnn", (1, 7, 10), "flip"),
        ("cnn", (1, 6, 6), "shift"),
        ("mlp", (1, 8, 8), "c4"),
        ("cnn", (1, 40), "cyclic1d"),
    ],
)
def test_symmetrized_model_is_exactly_invariant(name, shape, group, dtype, digits_images) -> None:
    model = build_model(name, shape, 10, group=group, width=8).to(dtype)
    if len(shape) == 3:
        data = digits_at(digits_images, *shape[1:], dtype)[:8]
    else:
        data = torch.randn(8, *shape, generator=torch.Generator().manual_seed(3)).to(dtype)
    inputs = {"data": data, "uniform": torch.rand(8, *shape, dtype=dtype)}
    wrapped = symmetrize(model, group)
    assert list(wrapped.parameters()) == list(model.parameters())
    assert_invariant(wrapped, inputs, group, dtype)
    sgd_steps(wrapped, data, 10)
    assert_invariant(wrapped, inputs, group, dtype)


def test_symmetrize_is_the_orbit_mean_of_logits(dtype, digits_images) -> None:
    model = build_model("cnn", (1, 8, 8), 10).to(dtype)
    x = digits_images[:5].to(dtype)
    group = get_group("d4")
    expected = torch.stack([model(group.act(x, g)) for g in range(group.order)]).mean(0)
    torch.testing.assert_close(symmetrize(model, "d4")(x), expected)


def test_symmetrize_binds_the_group_to_each_input_size(dtype) -> None:
    """One wrapper serves inputs of several sizes: ``shift`` is resolved per input."""
    inner = nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    wrapped = symmetrize(inner, "shift").to(dtype)
    for size in (4, 5):
        x = torch.rand(2, 1, size, size, dtype=dtype)
        logit_error, _ = invariance_errors(wrapped, x, "shift")
        assert logit_error <= LOGIT_TOL[dtype]
        with torch.no_grad():
            assert float((inner(x) - inner(torch.roll(x, 1, -1))).abs().max()) > 1e-3


@pytest.mark.parametrize(("shape", "group"), [((1, 8, 8), "c4"), ((1, 40), "cyclic1d")])
def test_unconstrained_models_are_not_invariant(shape, group, dtype, digits_images) -> None:
    """The check above can fail: the same test on an unconstrained network does."""
    for name in ("cnn", "mlp"):
        model = build_model(name, shape, 10, group=group).to(dtype)
        x = digits_images[:24].to(dtype) if len(shape) == 3 else torch.rand(24, *shape).to(dtype)
        sgd_steps(model, x, 10)
        logit_error, pdi = invariance_errors(model, x, group)
        assert logit_error > 1e-3 and pdi > 1e-6, (name, logit_error, pdi)


# -- bad input -------------------------------------------------------------------------------
BAD_INPUT = [
    ({"name": "vgg"}, ModelError, "unknown model 'vgg'; choose one of"),
    ({"name": "weight-tied"}, ModelError, "needs a group"),
    ({"name": "weight-tied", "group": "shift"}, ModelError, "symmetrize"),
    ({"name": "weight-tied", "sample_shape": (1, 40), "group": "c4"}, ModelError, "square"),
    ({"name": "weight-tied", "sample_shape": (1, 8, 8), "group": "cyclic1d"}, ModelError, "c4"),
    ({"name": "weight-tied", "group": "rotation-8"}, ModelError, "use group"),
    ({"name": "weight-tied", "sample_shape": (1, 7, 10), "group": "c4"}, ModelError, "square"),
    ({"name": "weight-tied", "group": "nope"}, GroupError, "unknown group 'nope'; choose"),
    ({"sample_shape": (1, 2, 8, 8)}, ModelError, "use 'mlp'"),
    ({"sample_shape": (0, 8)}, ModelError, "positive integers"),
    ({"num_classes": 1}, ModelError, "num_classes"),
    ({"width": 0}, ModelError, "width"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_INPUT)
def test_bad_input_raises_a_one_line_error(kwargs, error, match) -> None:
    args = {"name": "cnn", "sample_shape": (1, 8, 8), "num_classes": 10, **kwargs}
    with pytest.raises(error, match=match) as info:
        build_model(args.pop("name"), args.pop("sample_shape"), args.pop("num_classes"), **args)
    assert "\n" not in str(info.value)


def test_custom_group_is_not_weight_tied() -> None:
    negate = CustomGroup("negate", [(lambda x: x, lambda x: x), (lambda x: -x, lambda x: -x)])
    with pytest.raises(ModelError, match="symmetrize"):
        build_model("weight-tied", (1, 8, 8), 10, group=negate)


def test_wrong_input_shape_raises_model_error() -> None:
    with pytest.raises(ModelError, match=r"sample_shape=\(1, 9, 9\)"):
        build_model("cnn", (1, 8, 8), 10)(torch.rand(2, 1, 9, 9))
    with pytest.raises(ModelError, match="any spatial size"):
        build_model("weight-tied", (1, 8, 8), 10, group="c4")(torch.rand(2, 3, 8, 8))
    with pytest.raises(ModelError, match="divisible by 4"):
        build_model("weight-tied", (1, 28, 28), 10, group="c4")(torch.rand(2, 1, 30, 30))
    with pytest.raises(ModelError, match=r"built for 28×28 images.*sample_shape=\(1, 32, 32\)"):
        build_model("weight-tied", (1, 28, 28), 10, group="c4")(torch.rand(2, 1, 32, 32))
    with pytest.raises(ModelError, match="pool=False"):
        WeightTiedCNN((1, 30, 30), 10, group="c4", pool=True)
