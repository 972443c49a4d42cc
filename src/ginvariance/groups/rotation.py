"""Rotations by arbitrary angles, interpolated with ``grid_sample``: not exact."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ginvariance.errors import GroupActionError, GroupError
from ginvariance.groups.base import Group, _require_square

#: The most rotations ``rotation-N`` accepts (steps of 1°); the orbit, and the cost of
#: every measure, grows with ``N``.
MAX_ROTATIONS = 360


class RotationN(Group):
    """``n`` rotations by multiples of ``360°/n``, bilinear interpolation, zero padding.

    **Not** an exact group action: interpolation blurs, corners leave the image, and two
    rotations do not compose exactly into a third, so even a model invariant by construction
    scores a small, non-zero invariance error. Read a ``pdi`` below :attr:`tolerance` (nats) as
    invariant up to interpolation (the README has the errors measured on a model averaged over
    this very orbit); use ``c4`` or ``d4`` to separate genuine from learned invariance exactly.
    """

    exact = False
    tolerance = 5e-3

    def __init__(self, n: int) -> None:
        if n < 1:
            raise GroupError(f"rotation-n needs n ≥ 1, got {n}; use for example rotation-8")
        if n > MAX_ROTATIONS:
            raise GroupError(
                f"rotation-{n} has steps of {360 / n:.2g}°, finer than interpolation on a pixel "
                f"grid can tell apart; use at most rotation-{MAX_ROTATIONS}"
            )
        self.n = n
        self.name = f"rotation-{n}"
        super().__init__([f"rot{360 * k / n:g}" for k in range(n)])

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        _require_square(self, sample_shape)

    def _rotate(self, x: torch.Tensor, angle: float) -> torch.Tensor:
        if not x.is_floating_point():
            raise GroupActionError(
                f"group {self.name!r} interpolates and needs floating-point inputs, got "
                f"{x.dtype}; convert them with x.float()"
            )
        if angle == 0.0:
            return x
        shape, dtype = x.shape, x.dtype
        if dtype not in (torch.float32, torch.float64):  # float16 / bfloat16: interpolate in 32
            x = x.float()
        flat = x.reshape(-1, 1, shape[-2], shape[-1]) if x.dim() != 4 else x
        c, s = math.cos(angle), math.sin(angle)
        theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=x.dtype, device=x.device)
        theta = theta.expand(flat.shape[0], 2, 3)
        grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
        out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.reshape(shape).to(dtype)

    def _act(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self._rotate(x, 2 * math.pi * i / self.n)

    def _act_inverse(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self._rotate(x, -2 * math.pi * i / self.n)
