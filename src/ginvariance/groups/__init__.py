"""Groups that act on inputs: exact permutations of pixels, and interpolated rotations.

:func:`get_group` finds a group by name (docs/definitions.md lists the built-in ones);
:func:`register_group` adds a name of your own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ginvariance.errors import GroupError
from ginvariance.groups.base import C4, D4, CustomGroup, Cyclic1d, CyclicShift, Flip, Group, Shift2d
from ginvariance.groups.rotation import RotationN

GROUP_NAMES = ("c4", "d4", "flip", "shift", "shift-S", "cyclic1d", "cyclic1d-S", "rotation-N")

#: Groups by name: a factory of no arguments each.
_GROUPS: dict[str, Callable[[], Group]] = {
    "c4": C4,
    "d4": D4,
    "flip": Flip,
    "shift": lambda: CyclicShift(ndim=2, name="shift"),
    "cyclic1d": lambda: CyclicShift(ndim=1, name="cyclic1d"),
}
#: Families of groups by the prefix of their name: a factory of the number after the prefix
#: (a positive integer) and the full name.
_FAMILIES: dict[str, Callable[[int, str], Group]] = {
    "shift-": lambda step, name: CyclicShift(step=step, ndim=2, name=name),
    "cyclic1d-": lambda step, name: CyclicShift(step=step, ndim=1, name=name),
    "rotation-": lambda n, name: RotationN(n),
}


def register_group(name: str, factory: Callable[[], Group]) -> None:
    """Make ``get_group(name)`` return ``factory()`` (a name already known is refused)."""
    key = name.strip().lower()
    if key in _GROUPS or any(key.startswith(prefix) for prefix in _FAMILIES):
        raise GroupError(f"group name {name!r} is taken; register the group under another name")
    _GROUPS[key] = factory


def _suffix(name: str, prefix: str) -> int:
    text = name[len(prefix) :]
    if not text.isdigit() or int(text) < 1:
        raise GroupError(
            f"unknown group {name!r}: {prefix}N needs a positive integer N, e.g. {prefix}2"
        )
    return int(text)


def get_group(name: str | Group, sample_shape: Sequence[int] | None = None) -> Group:
    """Return the group called ``name`` (or ``name`` itself if it is a group).

    With ``sample_shape`` (the shape of one input, without the batch axis) the group is
    checked against it and bound to it (:meth:`Group.resolve`), which groups that list
    all translations of their input need.
    """
    if isinstance(name, Group):
        group = name
    elif not isinstance(name, str):
        raise GroupError(f"a group is a name or a Group, got {type(name).__name__}")
    else:
        key = name.strip().lower()
        if key in _GROUPS:
            group = _GROUPS[key]()
        else:
            prefix = next((p for p in _FAMILIES if key.startswith(p)), None)
            if prefix is None:
                known = ", ".join([*GROUP_NAMES, *(k for k in _GROUPS if k not in GROUP_NAMES)])
                raise GroupError(f"unknown group {name!r}; choose one of: {known}")
            group = _FAMILIES[prefix](_suffix(key, prefix), key)
    if sample_shape is not None:
        group = group.resolve(tuple(sample_shape))
    return group


__all__ = [
    "C4",
    "D4",
    "GROUP_NAMES",
    "CustomGroup",
    "Cyclic1d",
    "CyclicShift",
    "Flip",
    "Group",
    "RotationN",
    "Shift2d",
    "get_group",
    "register_group",
]
