"""Unconstrained convolutional networks with a flatten head (no invariance built in).

The flatten head matters: a global-average-pool head makes a network trained with data
augmentation under-fit and hides the gap between learned and genuine invariance, so these
networks keep the spatial layout up to the linear classifier. :class:`CNN` has one layout for
small images and one, pooled twice, for large ones (docs/calibration.md has the timing).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ginvariance.errors import ModelError

#: Images whose shorter side is at least this are "large" and pooled twice (28×28 → 7×7), so
#: that the flatten head stays small (32·7·7 features at the default width 16).
POOL_MIN_SIDE = 16
#: Default first-layer width of :class:`CNN` on small and on large images.
SMALL_WIDTH, LARGE_WIDTH = 32, 16


def conv_layout(sample_shape: Sequence[int], spatial: int) -> tuple[int, tuple[int, ...], bool]:
    """``(C, *size)`` or ``size`` with ``spatial`` axes (2: ``H, W``; 1: ``L``) →
    ``(C, size, add_channel_axis)``."""
    shape = tuple(int(s) for s in sample_shape)
    if len(shape) in (spatial, spatial + 1):
        return (1 if len(shape) == spatial else shape[0]), shape[-spatial:], len(shape) == spatial
    what = (
        "images of shape (C, H, W) or (H, W)" if spatial == 2 else "signals of shape (C, L) or (L,)"
    )
    raise ModelError(
        f"a {spatial}-D convolutional network needs {what}, got {shape}; use 'mlp' for other shapes"
    )


def circular_convs(*channels: int) -> nn.Sequential:
    """Circular conv1d 5 (padding 2, stride 1) → ReLU from each of ``channels`` to the next."""
    layers: list[nn.Module] = []
    for c_in, c_out in itertools.pairwise(channels):
        layers += [nn.Conv1d(c_in, c_out, 5, padding=2, padding_mode="circular"), nn.ReLU()]
    return nn.Sequential(*layers)


def shape_fix(expected: Sequence[int], got: Sequence[int], *, rebuild: bool = True) -> str:
    """What to do when samples of shape ``got`` reach a model built for ``expected``.

    Names the two common layout slips: a missing channel axis (``(H, W)`` for ``(1, H, W)``)
    and a channel axis stored last (``(H, W, C)`` for ``(C, H, W)``); otherwise the model is
    to be built for the data's shape (``rebuild``) or given data of its own shape.
    """
    want, have = tuple(int(v) for v in expected), tuple(int(v) for v in got)
    full = ", ".join(map(str, want))
    if len(want) == len(have) + 1 and want[0] == 1 and want[1:] == have:
        return f"add a channel axis: x[:, None] gives (N, {full})"
    if len(want) == len(have) == 3 and (have[2], have[0], have[1]) == want:
        return (
            f"move the channel axis first: x.permute(0, 3, 1, 2) (torch) or "
            f"x.transpose(0, 3, 1, 2) (numpy) gives (N, {full})"
        )
    if not rebuild:
        return f"give inputs of shape (N, {full}), the shape it was built for"
    return f"build the model for sample_shape={have}, or give inputs of shape (N, {full})"


def _check(
    model: nn.Module, x: Tensor, shape: tuple[int, ...], add_channel: bool = False
) -> Tensor:
    """``x`` ``(B, *shape)``, with a channel axis after the batch one if ``add_channel``."""
    if tuple(x.shape[1:]) != shape:
        dims = ", ".join(map(str, shape))
        raise ModelError(
            f"{type(model).__name__} was built for inputs of shape (B, {dims}), got "
            f"{tuple(x.shape)}; {shape_fix(shape, x.shape[1:])}"
        )
    return x.unsqueeze(1) if add_channel else x


class CNN(nn.Module):
    """Conv 3×3 ``w`` → ReLU → conv 3×3 ``2w`` → ReLU → flatten → linear ``K``.

    Padding 1, stride 1. Large images (shorter side ≥ :data:`POOL_MIN_SIDE`, 28×28 MNIST):
    avg-pool 2 → conv ``w`` → ReLU → max-pool 2 → conv ``2w`` → ReLU → flatten (``2w·7·7``
    at 28×28) → linear. Not invariant to any group (its filters are not tied): the network
    that learns invariance from data.

    Parameters
    ----------
    sample_shape:
        ``(C, H, W)``, or ``(H, W)`` (a channel axis is added in ``forward``).
    num_classes:
        Number of classes ``K``.
    width:
        Channels ``w`` of the first convolution (the second has ``2w``); default
        :data:`SMALL_WIDTH` (32) on small images, :data:`LARGE_WIDTH` (16) on large ones.

    Maps ``(B, *sample_shape)`` → ``(B, K)``.

    Examples
    --------
    >>> import torch
    >>> CNN((1, 8, 8), 10)(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self, sample_shape: Sequence[int], num_classes: int, width: int | None = None
    ) -> None:
        super().__init__()
        self.sample_shape = tuple(int(s) for s in sample_shape)
        channels, (h, w), self._add_channel = conv_layout(self.sample_shape, 2)
        self.pool = min(h, w) >= POOL_MIN_SIDE
        if width is None:
            width = LARGE_WIDTH if self.pool else SMALL_WIDTH
        self.width = width
        layers: list[nn.Module] = []
        if self.pool:
            layers.append(nn.AvgPool2d(2))
            h, w = h // 2, w // 2
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        if self.pool:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        layers += [nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * width * h * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = _check(self, x, self.sample_shape, self._add_channel)
        return self.head(torch.flatten(self.features(x), 1))


class CNN1d(nn.Module):
    """Conv1d 5 ``w`` → ReLU → conv1d 5 ``2w`` → ReLU → flatten → linear ``K``.

    The 1-D analogue of :class:`CNN`. Padding is *circular* (2 on each side, stride 1):
    MNIST-1D translates its signals cyclically and the matching group is ``cyclic1d``,
    so circular convolutions are exactly shift-equivariant and the only thing that is not
    invariant is the flatten head. The unconstrained network then differs from
    :class:`~ginvariance.models.WeightTiedCNN1d` by its head alone, which isolates the
    effect of weight-tying (zero padding would also break equivariance at the ends).

    Parameters
    ----------
    sample_shape:
        ``(C, L)``, or ``(L,)`` (a channel axis is added in ``forward``).
    num_classes:
        Number of classes ``K``.
    width:
        Channels ``w`` of the first convolution (default 32; the second has ``2w``).

    Examples
    --------
    >>> import torch
    >>> CNN1d((1, 40), 10)(torch.zeros(2, 1, 40)).shape
    torch.Size([2, 10])
    """

    def __init__(self, sample_shape: Sequence[int], num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.sample_shape = tuple(int(s) for s in sample_shape)
        channels, (length,), self._add_channel = conv_layout(self.sample_shape, 1)
        self.features = circular_convs(channels, width, 2 * width)
        self.head = nn.Linear(2 * width * length, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = _check(self, x, self.sample_shape, self._add_channel)
        return self.head(torch.flatten(self.features(x), 1))
