"""Groups: exact actions, inverses, closure, orbits, and the errors of bad use."""

from __future__ import annotations

import pytest
import torch

from ginvariance.errors import GroupActionError, GroupError
from ginvariance.groups import CustomGroup, get_group

EXACT_2D = ["c4", "d4", "flip", "shift", "shift-2"]


@pytest.mark.parametrize("name", EXACT_2D)
def test_exact_groups_pass_their_self_check(name: str, dtype: torch.dtype) -> None:
    x = torch.randn(3, 2, 6, 6, dtype=dtype)
    group = get_group(name, x.shape[1:])
    errors = group.check(x)
    assert errors == {"identity": 0.0, "inverse": 0.0, "closure": 0.0}


def test_group_orders() -> None:
    shape = (1, 8, 8)
    orders = {n: get_group(n, shape).order for n in [*EXACT_2D, "shift-4", "rotation-8"]}
    assert orders == {
        "c4": 4,
        "d4": 8,
        "flip": 2,
        "shift": 64,
        "shift-2": 16,
        "shift-4": 4,
        "rotation-8": 8,
    }
    assert get_group("cyclic1d", (1, 40)).order == 40
    assert get_group("cyclic1d-4", (40,)).order == 10


@pytest.mark.parametrize("name", EXACT_2D)
def test_orbit_is_group_major_and_matches_act(name: str, dtype: torch.dtype) -> None:
    x = torch.randn(5, 1, 6, 6, dtype=dtype)
    group = get_group(name, x.shape[1:])
    orbit = group.orbit(x)
    assert orbit.shape == (group.order * 5, 1, 6, 6)
    for i in range(group.order):
        for b in range(5):
            assert torch.equal(orbit[i * 5 + b], group.act(x[b : b + 1], i)[0])
    back = group.inverse_orbit(orbit)
    assert torch.equal(back, x.repeat(group.order, 1, 1, 1))


def test_actions_are_the_expected_permutations() -> None:
    x = torch.arange(9.0).reshape(1, 3, 3)
    c4, d4 = get_group("c4"), get_group("d4")
    assert torch.equal(c4.act(x, 1), torch.rot90(x, 1, (-2, -1)))
    assert torch.equal(d4.act(x, 4), torch.flip(x, (-1,)))
    # each element of d4 is a distinct permutation
    images = {tuple(d4.act(x, i).flatten().tolist()) for i in range(8)}
    assert len(images) == 8
    shift = get_group("shift", (3, 3))
    assert torch.equal(shift.act(x, 1), torch.roll(x, (0, 1), (-2, -1)))


def test_act_per_sample_applies_one_element_per_sample(dtype: torch.dtype) -> None:
    x = torch.randn(6, 1, 5, 5, dtype=dtype)
    group = get_group("d4")
    idx = torch.tensor([0, 3, 7, 4, 4, 1])
    out = group.act_per_sample(x, idx)
    for b in range(6):
        assert torch.equal(out[b], group.act(x[b : b + 1], int(idx[b]))[0])


def test_cyclic1d_is_exact(dtype: torch.dtype) -> None:
    x = torch.randn(2, 1, 12, dtype=dtype)
    group = get_group("cyclic1d-3", x.shape[1:])
    assert group.check(x)["closure"] == 0.0
    assert torch.equal(group.act(x, 1), torch.roll(x, 3, -1))


def test_rotation_n_is_labelled_not_exact() -> None:
    group = get_group("rotation-8", (1, 9, 9))
    assert not group.exact and group.tolerance > 0
    assert "not" in (type(group).__doc__ or "").lower()
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[..., 4, 4] = 1.0  # the centre pixel is fixed by every rotation
    for i in range(group.order):
        assert abs(float(group.act(x, i)[0, 0, 4, 4]) - 1.0) < 1e-12
    # rotating by 90° equals rot90 (bilinear interpolation on grid points)
    c4 = get_group("c4")
    y = torch.randn(1, 1, 9, 9, dtype=torch.float64)
    assert torch.allclose(group.act(y, 2), c4.act(y, 1), atol=1e-9)


def test_custom_group_checks_itself(dtype: torch.dtype) -> None:
    ok = CustomGroup("negate", [(lambda t: t, lambda t: t), (lambda t: -t, lambda t: -t)])
    x = torch.randn(4, 3, dtype=dtype)
    assert ok.check(x)["inverse"] == 0.0
    assert ok.orbit(x).shape == (8, 3)
    broken = CustomGroup("broken", [(lambda t: t, lambda t: t), (lambda t: 2 * t, lambda t: t)])
    with pytest.raises(GroupError, match="inverse"):
        broken.check(x)
    not_closed = CustomGroup(
        "not-closed", [(lambda t: t, lambda t: t), (lambda t: t + 1, lambda t: t - 1)]
    )
    with pytest.raises(GroupError, match="closure"):
        not_closed.check(x)


@pytest.mark.parametrize(
    ("name", "shape", "match"),
    [
        ("c4", (1, 8, 7), "square"),
        ("d4", (8,), "last 2 axes"),
        ("rotation-4", (3, 5), "square"),
        ("shift-3", (1, 8, 8), "divide"),
        ("cyclic1d-3", (1, 8), "divide"),
    ],
)
def test_group_that_cannot_act_says_why(name: str, shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(GroupActionError, match=match):
        get_group(name, shape)


@pytest.mark.parametrize("name", ["c5", "shift-0", "rotation-x", "", "cyclic1d-"])
def test_unknown_group_lists_choices(name: str) -> None:
    with pytest.raises(GroupError):
        get_group(name)


def test_unbound_shift_group_asks_for_resolve() -> None:
    with pytest.raises(GroupActionError, match="resolve"):
        get_group("shift").orbit(torch.zeros(1, 4, 4))
    bound = get_group("shift", (4, 4))
    with pytest.raises(GroupActionError, match="bound"):
        bound.orbit(torch.zeros(1, 5, 5))
