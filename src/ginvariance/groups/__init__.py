"""Groups that act on inputs: exact permutations of pixels, and interpolated rotations.

``get_group(name)`` knows these names:

========================  ==================================================  =======
name                      elements                                            exact
========================  ==================================================  =======
``c4``                    rotations by 0°, 90°, 180°, 270° (``rot90``)        yes
``d4``                    ``c4`` and its four reflections                     yes
``flip``                  identity and left–right mirror                      yes
``shift``                 all cyclic 2-D translations of the image            yes
``shift-S``               cyclic 2-D translations by multiples of ``S``       yes
``cyclic1d``              all cyclic shifts of a 1-D signal                   yes
``cyclic1d-S``            cyclic shifts by multiples of ``S``                 yes
``rotation-N``            ``N`` rotations by ``360°/N``, interpolated         no
========================  ==================================================  =======
"""

from __future__ import annotations

from collections.abc import Sequence

from ginvariance.errors import GroupError
from ginvariance.groups.base import C4, D4, CustomGroup, Cyclic1d, Flip, Group, Shift2d
from ginvariance.groups.rotation import RotationN

GROUP_NAMES = ("c4", "d4", "flip", "shift", "shift-S", "cyclic1d", "cyclic1d-S", "rotation-N")


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
        group_: Group
        if key == "c4":
            group_ = C4()
        elif key == "d4":
            group_ = D4()
        elif key == "flip":
            group_ = Flip()
        elif key == "shift":
            group_ = Shift2d()
        elif key.startswith("shift-"):
            group_ = Shift2d(step=_suffix(key, "shift-"))
            group_.name = key
        elif key == "cyclic1d":
            group_ = Cyclic1d()
        elif key.startswith("cyclic1d-"):
            group_ = Cyclic1d(step=_suffix(key, "cyclic1d-"))
            group_.name = key
        elif key.startswith("rotation-"):
            group_ = RotationN(_suffix(key, "rotation-"))
        else:
            raise GroupError(f"unknown group {name!r}; choose one of: {', '.join(GROUP_NAMES)}")
        group = group_
    if sample_shape is not None:
        group = group.resolve(tuple(sample_shape))
    return group


__all__ = [
    "C4",
    "D4",
    "GROUP_NAMES",
    "CustomGroup",
    "Cyclic1d",
    "Flip",
    "Group",
    "RotationN",
    "Shift2d",
    "get_group",
]
