"""Groups from a registry, one cyclic-shift class over any axes, and the Cayley table as a
method of every group."""

from __future__ import annotations

import pytest
import torch

from ginvariance.errors import GroupActionError, GroupError
from ginvariance.groups import (
    CustomGroup,
    Cyclic1d,
    CyclicShift,
    Shift2d,
    get_group,
    register_group,
)
from ginvariance.models import cayley_table


@pytest.mark.parametrize("name", ["shift", "cyclic1d", "shift-2", "cyclic1d-4"])
def test_an_unbound_cyclic_group_has_no_order(name: str) -> None:
    """Before binding to a size its elements are unknown: no order 1, but the fix."""
    group = get_group(name)
    assert group.name == name and "unbound" in repr(group)
    with pytest.raises(GroupActionError, match=r"group.resolve\(x.shape\[1:\]\)"):
        _ = group.order
    with pytest.raises(GroupActionError, match="resolve"):
        group.orbit(torch.zeros(1, 8, 8))


def test_shift_and_cyclic1d_are_one_class_over_any_axes() -> None:
    shift, cyclic = get_group("shift-2", (1, 8, 8)), get_group("cyclic1d", (1, 40))
    assert type(shift) is type(cyclic) is CyclicShift
    assert (shift.ndim, shift.order, shift.name) == (2, 16, "shift-2")
    assert (cyclic.ndim, cyclic.order) == (1, 40)
    x = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64)
    cube = CyclicShift(ndim=3).resolve(x.shape[1:])
    assert cube.order == 4 * 5 * 6
    assert torch.equal(cube.act(x, 7), torch.roll(x, cube.shifts[7], dims=(-3, -2, -1)))
    errors = cube.check(x[:1])
    assert errors == {"identity": 0.0, "inverse": 0.0, "closure": 0.0}


def test_old_cyclic_class_names_still_build_the_same_groups() -> None:
    x = torch.randn(2, 1, 6, 6)
    old, new = Shift2d(step=3).resolve((1, 6, 6)), get_group("shift-3", (1, 6, 6))
    assert isinstance(old, CyclicShift) and old.elements == new.elements
    assert torch.equal(old.orbit(x), new.orbit(x))
    sig = torch.randn(3, 2, 12)
    assert torch.equal(Cyclic1d([0, 5]).act(sig, 1), torch.roll(sig, 5, dims=-1))


def test_register_group_adds_a_name_and_refuses_a_taken_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ginvariance.groups as groups

    monkeypatch.setattr(groups, "_GROUPS", dict(groups._GROUPS))  # leave the registry as it was
    negate = lambda: CustomGroup(  # noqa: E731
        "negate-test", [(lambda t: t, lambda t: t), (lambda t: -t, lambda t: -t)]
    )
    register_group("negate-test", negate)
    assert get_group("negate-test").order == 2
    with pytest.raises(GroupError, match="taken"):
        register_group("c4", negate)
    with pytest.raises(GroupError, match="taken"):
        register_group("shift-7", negate)


@pytest.mark.parametrize("name", ["c4", "d4", "flip"])
def test_the_weight_tied_layers_use_the_groups_own_cayley_table(name: str) -> None:
    group = get_group(name)
    table = group.cayley_table()
    assert torch.equal(table, cayley_table(group))
    probe = torch.rand(1, 5, 5, dtype=torch.float64)
    for i in range(group.order):
        for j in range(group.order):
            composed = group.act(group.act(probe, j), i)
            assert torch.equal(composed, group.act(probe, int(table[i, j])))


def test_a_table_needs_distinct_elements() -> None:
    same = CustomGroup("twice", [(lambda t: t, lambda t: t), (lambda t: t, lambda t: t)])
    with pytest.raises(GroupError, match="multiplication table"):
        same.cayley_table()
