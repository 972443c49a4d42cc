"""Classifiers: unconstrained (:class:`MLP`, :class:`CNN`, :class:`CNN1d`, :class:`ResNet`),
weight-tied G-invariant (:class:`WeightTiedCNN`, :class:`WeightTiedCNN1d`), and any model made
exactly invariant by averaging over the orbit (:func:`symmetrize`); :func:`build_model` builds
them by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ginvariance.checks import check_int
from ginvariance.errors import GroupError, ModelError
from ginvariance.groups import Group, get_group
from ginvariance.models.cnn import CNN, CNN1d
from ginvariance.models.mlp import MLP
from ginvariance.models.resnet import ResNet
from ginvariance.models.symmetrize import Symmetrized, symmetrize
from ginvariance.models.weight_tied import (
    GroupConv2d,
    InvariantLinear,
    LiftingConv2d,
    WeightTiedCNN,
    WeightTiedCNN1d,
    cayley_table,
    is_signal_shift,
)
from ginvariance.seeds import seeded

#: The models of the study (every sample shape it uses).
MODEL_NAMES = ("mlp", "cnn", "weight-tied")
#: Every model :func:`build_model` builds: the study's and the image-only ``resnet``.
BUILT_IN_MODELS = (*MODEL_NAMES, "resnet")
#: The layout revision of each built-in model whose layers changed after checkpoints of it
#: were written (others: 1; checkpoints of another revision are refused). ``weight-tied`` 2:
#: the 2×2 max-pool after the lifting layer on small even-sided images.
LAYOUT_REVISIONS = {"weight-tied": 2}


def layout_revision(name: str) -> int:
    """The layout revision of built-in model ``name`` (:data:`LAYOUT_REVISIONS`, else 1)."""
    return LAYOUT_REVISIONS.get(name, 1)


def is_signal(sample_shape: Sequence[int], group: Group | str | None = None) -> bool:
    """Whether ``sample_shape`` is a 1-D signal ``(C, L)`` / ``(L,)`` rather than an image.

    ``(L,)`` is a signal and ``(C, H, W)`` an image. A two-axis shape ``(a, b)`` is a signal
    ``(C, L)`` when the group is ``cyclic1d``; an image ``(H, W)`` for any other named group;
    without a group, a signal when ``a ≤ 4 < b`` (a few channels, a longer length, as
    MNIST-1D's ``(1, 40)``) and an image otherwise.
    """
    shape = tuple(sample_shape)
    if len(shape) != 2:
        return len(shape) == 1
    if group is not None:
        try:
            return is_signal_shift(get_group(group))
        except GroupError:
            pass
    return shape[0] <= 4 < shape[1]


def build_model(
    name: str,
    sample_shape: tuple[int, ...],
    num_classes: int,
    *,
    group: str | Group | None = None,
    width: int | None = None,
) -> nn.Module:
    """Build the classifier ``name`` for inputs of ``sample_shape`` and ``num_classes`` classes.

    Parameters
    ----------
    name:
        ``"mlp"``, ``"cnn"``, ``"weight-tied"`` (:data:`MODEL_NAMES`) or ``"resnet"`` (images
        only; :data:`BUILT_IN_MODELS`).
    sample_shape:
        One input without the batch axis: ``(C, H, W)``, ``(H, W)``, ``(C, L)`` or ``(L,)``
        (see :func:`is_signal` for how a two-axis shape is read).
    num_classes:
        Number of classes ``K ≥ 2``.
    group:
        Required for ``"weight-tied"`` (``c4``, ``d4``, ``flip`` for images, ``cyclic1d`` for
        signals); for the others it only tells images from signals.
    width:
        Hidden units (``mlp``), first-layer channels (``cnn``, ``resnet``), channels per
        group element (``weight-tied``); ``None`` for the defaults (``resnet``: 64).

    Returns
    -------
    nn.Module
        Maps ``(B, *sample_shape)`` → ``(B, K)`` logits (float32; call ``.double()`` for
        float64).
    """
    if not isinstance(name, str) or name not in BUILT_IN_MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(BUILT_IN_MODELS)}")
    try:
        shape = tuple(int(s) for s in sample_shape)
    except (TypeError, ValueError) as err:
        raise ModelError(
            f"sample_shape must be a tuple of positive integers, got {sample_shape!r}"
        ) from err
    if not shape or any(s < 1 for s in shape):
        raise ModelError(
            f"sample_shape must be a non-empty tuple of positive integers, got {shape}; "
            "give the shape of one input without the batch axis, e.g. (1, 8, 8)"
        )
    check_int(num_classes, "num_classes", minimum=2, error=ModelError)
    check_int(width, "width", error=ModelError, allow_none=True)
    if name == "mlp":
        return MLP(shape, num_classes, width or 256)
    if len(shape) > 3:
        raise ModelError(
            f"{name!r} needs an image (C, H, W) / (H, W) or a signal (C, L) / (L,), got shape "
            f"{shape}; reshape the inputs or use 'mlp'"
        )
    signal = is_signal(shape, group)
    if name == "resnet":
        if signal:
            raise ModelError(
                f"'resnet' takes images (C, H, W) or (H, W), got the signal shape {shape}; "
                "use 'cnn' or 'mlp' for signals"
            )
        return ResNet(shape, num_classes, width or 64)
    if name == "cnn":
        return CNN1d(shape, num_classes, width or 32) if signal else CNN(shape, num_classes, width)
    if group is None:
        raise ModelError(
            "'weight-tied' needs a group: pass group= 'c4', 'd4' or 'flip' for images, "
            "'cyclic1d' for signals"
        )
    if is_signal_shift(get_group(group)):
        if len(shape) > 2:
            raise ModelError(
                f"group 'cyclic1d' shifts 1-D signals (C, L) or (L,), got shape {shape}; "
                "for images use group 'c4', 'd4' or 'flip'"
            )
        return WeightTiedCNN1d(shape, num_classes, group=group, width=width)
    return WeightTiedCNN(shape, num_classes, group=group, width=width)


def build_seeded_model(
    name: str,
    sample_shape: Sequence[int],
    num_classes: int,
    *,
    group: Group | str | None = None,
    dtype: str = "float32",
    seed: int = 0,
    width: int | None = None,
) -> nn.Module:
    """:func:`build_model` with weights drawn under ``torch.manual_seed(seed)``, cast to
    ``dtype`` (``"float32"`` or ``"float64"``).

    The global random state is left as it was (:func:`ginvariance.seeds.seeded`), so the
    weights are a function of ``(name, sample_shape, num_classes, group, width, seed)`` alone.
    """
    with seeded(seed):
        model = build_model(name, tuple(sample_shape), num_classes, group=group, width=width)
    return model.to(getattr(torch, dtype))


__all__ = [
    "BUILT_IN_MODELS",
    "CNN",
    "LAYOUT_REVISIONS",
    "MLP",
    "MODEL_NAMES",
    "CNN1d",
    "GroupConv2d",
    "InvariantLinear",
    "LiftingConv2d",
    "ResNet",
    "Symmetrized",
    "WeightTiedCNN",
    "WeightTiedCNN1d",
    "build_model",
    "build_seeded_model",
    "cayley_table",
    "is_signal",
    "symmetrize",
]
