"""Weight-tied G-invariant networks: group convolutions, group pooling, global pooling.

A feature map on a finite group ``G`` of grid symmetries (``c4``, ``d4``, ``flip``) has one
spatial map per element, ``F(h, x)``, on which ``G`` acts by ``(g·F)(h, x) = F(g⁻¹h, g⁻¹x)``.
The lifting and group convolutions commute with that action exactly, each one ``conv2d`` with
filters built from the :class:`~ginvariance.groups.Group` itself. A layer is exact at every
input size with stride 1 and "same" padding (odd ``k``); a strided one only when
``size + 2·pad − k`` is divisible by the stride, so :class:`WeightTiedCNN` pools 2×2 only on
even sides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ginvariance.errors import GroupActionError, GroupError, ModelError
from ginvariance.groups import C4, D4, CyclicShift, Flip, Group, get_group
from ginvariance.models.cnn import (
    POOL_MIN_SIDE,
    SMALL_WIDTH,
    circular_convs,
    conv_layout,
    shape_fix,
)

#: Groups of grid symmetries that :class:`WeightTiedCNN` ties its filters over.
WEIGHT_TIED_2D = (C4, D4, Flip)


def is_signal_shift(group: Group) -> bool:
    """Whether ``group`` cyclically shifts one axis (``cyclic1d``, ``cyclic1d-S``)."""
    return isinstance(group, CyclicShift) and group.ndim == 1


SUPPORTED = "c4, d4, flip (images) or cyclic1d (signals)"


def cayley_table(group: Group) -> Tensor:
    """The multiplication table of ``group`` (:meth:`Group.cayley_table` on its default probe):
    ``T[i, j] = k`` with ``g_i g_j = g_k``; a :class:`ModelError` when it has none."""
    try:
        return group.cayley_table()
    except GroupError:
        raise ModelError(
            f"cannot compute the multiplication table of group {group.name!r} (its "
            f"elements do not act as distinct grid permutations); use one of {SUPPORTED}"
        ) from None


class _GroupConvBase(nn.Module):
    """Weights ``(C_out, C_in, [n,] k, k)`` (a group axis unless :attr:`lifting`), a bias
    shared over the group, and one ``conv2d`` with the bank of :meth:`expanded_weight`."""

    lifting: bool
    group: Group
    perm: Tensor

    def __init__(
        self, in_channels: int, out_channels: int, group: Group, kernel_size: int = 3
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ModelError(f"kernel_size must be odd for exact equivariance, got {kernel_size}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.group = kernel_size, group
        table = cayley_table(group)
        inv = (table == 0).to(torch.long).argmax(dim=1)  # table[g, inv[g]] = e
        # perm[g, h] = index of g⁻¹h: the group axis of the kernel seen by output element g.
        self.register_buffer("perm", table[inv], persistent=False)
        group_axis = () if self.lifting else (group.order,)
        k = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *group_axis, k, k))
        self.bias = nn.Parameter(torch.empty(out_channels))
        bound = 1 / math.sqrt(self.weight[0].numel())
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def expanded_weight(self) -> Tensor:
        """The filter bank for one ``conv2d``: ``(C_out·n, C_in·[n], k, k)``, row ``c·n + g``.

        Lifting: ``W`` transformed by ``g``. Group convolution: column ``c'·n + h`` holds
        ``W[c, c', g⁻¹h]`` transformed by ``g``.
        """
        n, k = self.group.order, self.kernel_size
        bank = [self.group.act(self.weight, g) for g in range(n)]
        if not self.lifting:
            bank = [w[:, :, self.perm[g]] for g, w in enumerate(bank)]
        return torch.stack(bank, dim=1).reshape(self.out_channels * n, -1, k, k)

    def forward(self, x: Tensor) -> Tensor:
        n, b = self.group.order, x.shape[0]
        y = F.conv2d(
            x.flatten(1, -3),  # (B, C_in·n, H, W); a lifting input as it is
            self.expanded_weight(),
            self.bias.repeat_interleave(n),
            padding=self.kernel_size // 2,
        )
        return y.reshape(b, self.out_channels, n, *y.shape[-2:])

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, group={self.group.name}, "
            f"kernel_size={self.kernel_size}"
        )


class LiftingConv2d(_GroupConvBase):
    """Lifting convolution ``(B, C_in, H, W)`` → ``(B, C_out, n, H, W)``.

    ``F(g, x) = b + Σ_y f(x + y) · (g·W)(y)``, with the bias shared over ``g``. Stride 1,
    padding ``(k − 1)/2`` (zeros), odd ``k``: exactly equivariant at every size,
    ``lift(g·f) = g·lift(f)`` with ``(g·F)(h, x) = F(g⁻¹h, g⁻¹x)``.
    """

    lifting = True


class GroupConv2d(_GroupConvBase):
    """Group convolution ``(B, C_in, n, H, W)`` → ``(B, C_out, n, H, W)``.

    ``F'(g, x) = b + Σ_h Σ_y F(h, x + y) · W(g⁻¹h, g⁻¹y)``: for output element ``g`` the
    kernel ``W`` ``(C_out, C_in, n, k, k)`` is transformed spatially by ``g`` and its group
    axis permuted by ``h ↦ g⁻¹h``. Stride 1, zero padding ``(k − 1)/2``: exactly
    equivariant at every size.
    """

    lifting = False


def _resolve_group(
    group: Group | str | None,
    sample_shape: Sequence[int],
    accepts: Callable[[Group], bool],
    what: str,
) -> Group:
    if group is None:
        raise ModelError(f"a weight-tied network needs a group; pass group= one of {SUPPORTED}")
    g = get_group(group)
    if not accepts(g):
        raise ModelError(
            f"weight-tied {what} cannot be built for group {g.name!r}; use group "
            f"{SUPPORTED}, or wrap any model with symmetrize(model, {g.name!r})"
        )
    try:
        return g.resolve(tuple(sample_shape))
    except GroupActionError as err:
        raise ModelError(str(err)) from err


def _check_batch(
    model: nn.Module, x: Tensor, sample_shape: tuple[int, ...], add_channel: bool
) -> Tensor:
    """``x`` of any spatial size but the rank and channels of ``sample_shape``, with a channel
    axis added if ``add_channel`` (fully convolutional)."""
    if x.ndim != len(sample_shape) + 1 or (not add_channel and x.shape[1] != sample_shape[0]):
        dims = ", ".join(map(str, sample_shape))
        raise ModelError(
            f"{type(model).__name__} was built for inputs like (B, {dims}) (any spatial size), "
            f"got {tuple(x.shape)}; {shape_fix(sample_shape, x.shape[1:])}"
        )
    return x.unsqueeze(1) if add_channel else x


def matched_width(n: int, channels: int, h: int, w: int, num_classes: int) -> int:
    """The width of :class:`WeightTiedCNN` whose parameter count is closest to that of the
    small-image :class:`~ginvariance.models.CNN` (width ``v = 32``) for ``(C, H, W)`` images.

    The CNN has ``v(9C + 1) + 2v(9v + 1) + (2v·H·W + 1)K`` parameters, the weight-tied net
    ``9n·w² + (9C + 2 + K)·w + K``; solve for ``w``.
    """
    v = SMALL_WIDTH
    params = v * (channels * 9 + 1) + 2 * v * (v * 9 + 1) + (2 * v * h * w + 1) * num_classes
    a, b, c = 9 * n, 9 * channels + 2 + num_classes, num_classes - params
    return max(4, round((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)))


#: Channels per group element of :class:`WeightTiedCNN` on large images (28×28).
LARGE_WIDTH = 8


class InvariantLinear(nn.Module):
    """A linear map of feature maps ``(B, C, H, W)`` that is invariant to a group of the grid.

    ``y_k = b_k + Σ_{c, x} F_c(x) · W̄_kc(x)`` with ``W̄ = (1/n) Σ_g g·W``: the weight maps are
    averaged over the group, so ``g·W̄ = W̄`` and, for any ``F`` that transforms as an image,
    ``y(g·F) = Σ F · (g⁻¹·W̄) = y(F)`` exactly (the same products, summed in another order).
    Unlike a global pooling it keeps where a feature is, up to the group (for ``c4``: the
    distance from the centre and the position on the ring, modulo quarter turns).

    Parameters
    ----------
    channels, height, width:
        Shape ``(C, H, W)`` of one input.
    num_classes:
        Outputs ``K``.
    group:
        A group of symmetries of the ``H × W`` grid (``c4``, ``d4``, ``flip``).
    """

    def __init__(
        self, channels: int, height: int, width: int, num_classes: int, group: Group
    ) -> None:
        super().__init__()
        self.group = group
        bound = 1 / math.sqrt(channels * height * width)
        self.weight = nn.Parameter(torch.empty(num_classes, channels, height, width))
        self.bias = nn.Parameter(torch.empty(num_classes))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def invariant_weight(self) -> Tensor:
        """``W̄ = (1/n) Σ_g g·W``, shape ``(K, C, H, W)``."""
        n = self.group.order
        return torch.stack([self.group.act(self.weight, g) for g in range(n)]).mean(dim=0)

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.invariant_weight().flatten(1).T + self.bias


class WeightTiedCNN(nn.Module):
    """A weight-tied G-invariant CNN for ``c4``, ``d4`` and ``flip``.

    Small images (``pool=False``, 8×8 digits)::

        lifting conv 3×3 w → ReLU → [max-pool 2] → group conv 3×3 w → ReLU
        → group max-pool over G → global max over space → linear K

    The 2×2 max-pool after the lifting layer is there when both sides of ``sample_shape``
    are even; the model then refuses inputs with an odd side, and without it takes any size.

    Large images (``pool=True``, 28×28 MNIST), the counterpart of the large-image
    :class:`~ginvariance.models.CNN`::

        avg-pool 2 → lifting conv 3×3 w → ReLU → max-pool 2 → group conv 3×3 w → ReLU
        → group max-pool over G → InvariantLinear K

    (28 → 14 → 7; every pool halves an even side, so each is exact). Inputs must have the
    built size. docs/calibration.md has the runs behind the pools and the depth.

    ``f(g·x) = f(x)`` exactly (up to floating-point rounding) for every element and every
    input the model accepts.

    Parameters
    ----------
    sample_shape:
        ``(C, H, W)`` or ``(H, W)``; ``c4``/``d4`` need ``H = W``.
    num_classes:
        Number of classes ``K``.
    group:
        ``"c4"``, ``"d4"``, ``"flip"`` or such a :class:`~ginvariance.groups.Group`.
    width:
        Channels per group element ``w`` in every layer (each layer has ``w·n`` feature
        maps). Default on small images: the width whose parameter count is closest to that
        of :class:`~ginvariance.models.CNN` for the same shape (on 8×8 digits, ``c4``: 40);
        on large images :data:`LARGE_WIDTH` (8).
    pool:
        The large-image architecture; default ``True`` when the shorter side is at least
        16 and both sides are divisible by 4 (28×28), as in :class:`CNN`.

    Examples
    --------
    >>> import torch
    >>> net = WeightTiedCNN((1, 8, 8), 10, group="c4").double()
    >>> x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    >>> bool((net(x) - net(torch.rot90(x, 1, (-2, -1)))).abs().max() < 1e-12)
    True
    """

    def __init__(
        self,
        sample_shape: Sequence[int],
        num_classes: int,
        group: Group | str | None,
        width: int | None = None,
        pool: bool | None = None,
    ) -> None:
        super().__init__()
        self.sample_shape = tuple(int(s) for s in sample_shape)
        channels, (h, w), self._add_channel = conv_layout(self.sample_shape, 2)
        self.group = _resolve_group(
            group, self.sample_shape, lambda g: isinstance(g, WEIGHT_TIED_2D), "CNN"
        )
        n = self.group.order
        if pool is None:
            pool = min(h, w) >= POOL_MIN_SIDE and h % 4 == 0 and w % 4 == 0
        elif pool and (h % 4 or w % 4):
            raise ModelError(
                f"pool=True halves the image twice, which is exact only for sides divisible by "
                f"4, got {h}×{w}; build the model with pool=False"
            )
        self.pool = bool(pool)
        #: Small images: max-pool 2×2 after the lifting layer (both sides even).
        self.halve = not self.pool and h % 2 == 0 and w % 2 == 0
        if width is None:
            width = LARGE_WIDTH if self.pool else matched_width(n, channels, h, w, num_classes)
        self.width = width
        self.lift = LiftingConv2d(channels, width, self.group)
        self.gconv = GroupConv2d(width, width, self.group)
        self.head: nn.Module
        if self.pool:
            self.head = InvariantLinear(width, h // 4, w // 4, num_classes, self.group)
        else:
            self.head = nn.Linear(width, num_classes)

    @staticmethod
    def _max_pool(y: Tensor) -> Tensor:
        """2×2 max-pool of ``(B, C, n, H, W)`` features (even sides) whose gradient is
        equivariant too: ``amax`` splits it among tied maxima, ``max_pool2d`` does not."""
        b, c, n, h, w = y.shape
        return y.reshape(b, c, n, h // 2, 2, w // 2, 2).amax(dim=(4, 6))

    def equivariant_features(self, x: Tensor) -> Tensor:
        """The feature maps before group pooling: ``(B, w, n, H', W')``, equivariant."""
        x = _check_batch(self, x, self.sample_shape, self._add_channel)
        if not self.pool:
            if self.halve and (x.shape[-2] % 2 or x.shape[-1] % 2):
                raise ModelError(
                    f"this model halves its feature maps, which is exact only for even "
                    f"sides, got {x.shape[-2]}×{x.shape[-1]}; pad the images to even sides"
                )
            y = torch.relu(self.lift(x))
            return torch.relu(self.gconv(self._max_pool(y) if self.halve else y))
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ModelError(
                f"this model pools twice, which is exact only for sides divisible by 4, got "
                f"{x.shape[-2]}×{x.shape[-1]}; pad the images or build the model with pool=False"
            )
        if tuple(x.shape[-2:]) != tuple(self.sample_shape[-2:]):
            raise ModelError(
                f"this model was built for {self.sample_shape[-2]}×{self.sample_shape[-1]} "
                f"images (its invariant linear head has that layout), got "
                f"{x.shape[-2]}×{x.shape[-1]}; build the model for "
                f"sample_shape={tuple(x.shape[1:])}"
            )
        y = self._max_pool(torch.relu(self.lift(F.avg_pool2d(x, 2))))
        return torch.relu(self.gconv(y))

    def forward(self, x: Tensor) -> Tensor:
        y = self.equivariant_features(x).amax(dim=2)  # group max-pool: (B, w, H', W')
        if self.pool:
            return self.head(y)
        return self.head(y.amax(dim=(-2, -1)))  # global max-pool


class WeightTiedCNN1d(nn.Module):
    """A network invariant to all cyclic shifts of a 1-D signal (``cyclic1d``).

    circular conv1d 5 ``w`` → ReLU → circular conv1d 5 ``2w`` → ReLU → circular conv1d 5
    ``2w`` → ReLU → global max over the length → linear ``K``.

    A circular convolution with stride 1 commutes exactly with ``torch.roll``, and the
    maximum over the length is invariant to it, so ``f(roll(x, s)) = f(x)`` for every shift ``s``
    and every length. The third layer widens the receptive field (13 samples) that the
    global pool then summarises; the parameter count (≈ 32k for MNIST-1D) is close to that
    of :class:`~ginvariance.models.CNN1d` (≈ 36k).

    Parameters
    ----------
    sample_shape:
        ``(C, L)`` or ``(L,)``.
    num_classes:
        Number of classes ``K``.
    group:
        ``"cyclic1d"`` (or ``cyclic1d-S``, a subgroup: the network is invariant to all shifts).
    width:
        Channels ``w`` of the first layer (default 32).
    """

    def __init__(
        self,
        sample_shape: Sequence[int],
        num_classes: int,
        group: Group | str | None = "cyclic1d",
        width: int | None = None,
    ) -> None:
        super().__init__()
        self.sample_shape = tuple(int(s) for s in sample_shape)
        channels, _, self._add_channel = conv_layout(self.sample_shape, 1)
        self.group = _resolve_group(group, self.sample_shape, is_signal_shift, "CNN1d")
        width = 32 if width is None else width
        self.width = width
        self.features = circular_convs(channels, width, 2 * width, 2 * width)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = _check_batch(self, x, self.sample_shape, self._add_channel)
        return self.head(self.features(x).amax(dim=-1))
