"""Distribution shifts: named, seeded transforms of a batch of inputs.

A shift maps a batch ``x`` ``(N, *S)`` to a batch of the same shape and dtype. It draws its
randomness from a local ``torch.Generator`` seeded by the caller (never the global
generator), so ``shift(x, seed)`` is a pure function of ``x`` and ``seed``. Its statistics
(``std(x)``, ``min(x)``, ``max(x)``) are those of the whole batch ``x``, so every shift works
for any data: apply it to the whole evaluation set at once, not chunk by chunk.

Spatial axes: a sample of rank 1 ``(L,)`` is a 1-D signal; otherwise the last two axes
``(H, W)`` are spatial and any leading axes are channels. A ``(1, L)`` sample (MNIST-1D) is
thus a 1 × L image, on which every shift below acts as its 1-D version.

=================  ========================================================================
name               transform
=================  ========================================================================
``noise-σ``        ``x + σ · std(x) · ε``, ``ε ~ N(0, 1)`` i.i.d. (any ``σ > 0``)
``uniform``        pure noise: i.i.d. ``U[min(x), max(x)]``, ignoring ``x`` (the severe shift)
``invert``         contrast inversion ``min(x) + max(x) − x`` (exact, no randomness)
``blur``           Gaussian blur, σ = 1 pixel, 5-tap separable kernel, reflect padding
``patches``        another data set of the same shape: grey patches of scikit-learn's sample
                   photographs, resized and mapped to ``[min(x), max(x)]``
=================  ========================================================================
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ginvariance.errors import ConfigError, DataError

SHIFT_NAMES: tuple[str, ...] = (
    "noise-0.1",
    "noise-0.5",
    "noise-1.0",
    "uniform",
    "invert",
    "blur",
    "patches",
)
DEFAULT_SHIFTS: tuple[str, ...] = SHIFT_NAMES

#: Standard deviation (pixels) and half-width of the Gaussian blur kernel.
BLUR_SIGMA: float = 1.0
BLUR_RADIUS: int = 2
#: Side of a photograph patch, as a fraction of the photograph's shorter side.
PATCH_FRACTIONS: tuple[float, ...] = (1 / 16, 1 / 8, 1 / 4)

ShiftFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class Shift:
    """A named, seeded transform of a batch of inputs.

    Parameters
    ----------
    name:
        The shift's key in results (``"noise-0.5"``, ``"blur"``, ...).
    fn:
        ``fn(x, generator) -> x'``: the transform of a CPU batch ``x`` ``(N, *S)``, drawing
        randomness only from ``generator``; must return the same shape.
    description:
        One line for reports.

    Calling ``shift(x, seed)`` checks ``x`` (floating point, ``(N, *S)``, finite), runs
    ``fn`` on a CPU copy with ``torch.Generator().manual_seed(seed)`` and returns a tensor of
    ``x``'s shape, dtype and device.
    """

    def __init__(self, name: str, fn: ShiftFn, description: str = "") -> None:
        self.name = name
        self.description = description
        self._fn = fn

    def __repr__(self) -> str:
        return f"Shift({self.name!r})"

    def __call__(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise DataError(
                f"shift {self.name!r} takes a tensor, got {type(x).__name__}; "
                "convert with torch.as_tensor"
            )
        if not x.is_floating_point():
            raise DataError(
                f"shift {self.name!r} needs floating-point inputs, got {x.dtype}; "
                "convert x to float32"
            )
        if x.ndim < 2:
            raise DataError(
                f"shift {self.name!r} got shape {tuple(x.shape)}; pass a batch (N, *S) "
                "with at least one axis per sample"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ConfigError(f"shift seed={seed!r}; pass an integer in 0..2**63 - 1")
        if x.numel() == 0:
            return x.clone()
        if not torch.isfinite(x).all():
            raise DataError(
                f"shift {self.name!r} got NaN or infinite inputs; remove or replace them"
            )
        generator = torch.Generator().manual_seed(seed)
        out = self._fn(x.detach().cpu(), generator)
        if out.shape != x.shape:
            raise DataError(
                f"shift {self.name!r} returned shape {tuple(out.shape)} for input "
                f"{tuple(x.shape)}; a shift must keep the shape"
            )
        return out.to(device=x.device, dtype=x.dtype)


# -- helpers ------------------------------------------------------------------------------


def _range(x: torch.Tensor) -> tuple[float, float]:
    return float(x.min()), float(x.max())


def gaussian_kernel1d(
    sigma: float = BLUR_SIGMA, radius: int = BLUR_RADIUS, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Normalized 1-D Gaussian ``k[t] ∝ exp(−t² / 2σ²)``, ``t = −r..r``, summing to 1."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return (k / k.sum()).to(dtype)


def _pad_mode(length: int, radius: int) -> str:
    # reflect needs more samples than the pad; shorter axes (e.g. H = 1) are replicated
    return "reflect" if length > radius else "replicate"


def blur(x: torch.Tensor, sigma: float = BLUR_SIGMA, radius: int = BLUR_RADIUS) -> torch.Tensor:
    """Gaussian blur of ``x`` ``(N, *S)`` over its spatial axes (see the module docstring).

    ``y = k ⊛ x`` with the kernel ``k(u, v) = k₁(u) k₁(v)``,
    ``k₁ = gaussian_kernel1d(sigma, radius)``, and reflect padding (``… c b | a b c … | b a``)
    along each spatial axis; axes of length ``≤ radius`` are padded by replication.
    """
    k1 = gaussian_kernel1d(sigma, radius, dtype=x.dtype)
    if x.ndim == 2:  # (N, L) signals
        rows = F.pad(
            x.reshape(-1, 1, x.shape[-1]), (radius, radius), mode=_pad_mode(x.shape[-1], radius)
        )
        return F.conv1d(rows, k1.view(1, 1, -1)).reshape(x.shape)
    height, width = x.shape[-2], x.shape[-1]
    planes = x.reshape(-1, 1, height, width)
    planes = F.pad(planes, (0, 0, radius, radius), mode=_pad_mode(height, radius))
    planes = F.pad(planes, (radius, radius, 0, 0), mode=_pad_mode(width, radius))
    kernel = (k1[:, None] * k1[None, :]).view(1, 1, 2 * radius + 1, 2 * radius + 1)
    return F.conv2d(planes, kernel).reshape(x.shape)


def _noise_fn(sigma: float) -> ShiftFn:
    def fn(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        std = float(x.double().std(correction=0))
        scale = sigma * (std if std > 0 else 1.0)  # a constant batch gets noise of std σ
        return x + scale * torch.randn(x.shape, generator=generator, dtype=x.dtype)

    return fn


def _uniform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    lo, hi = _range(x)
    return lo + (hi - lo) * torch.rand(x.shape, generator=generator, dtype=x.dtype)


def _invert(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    lo, hi = _range(x)
    return (lo + hi) - x


def _blur(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return blur(x)


@functools.lru_cache(maxsize=1)
def sample_photographs() -> tuple[torch.Tensor, ...]:
    """scikit-learn's sample photographs as grey images ``(h, w)`` float64 in ``[0, 1]``.

    Grey is the ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of the 8-bit colours / 255.
    The photographs ship with scikit-learn (no download).
    """
    from sklearn.datasets import load_sample_images

    luma = np.array([0.299, 0.587, 0.114])
    images = load_sample_images().images
    return tuple(
        torch.from_numpy((np.asarray(im, dtype=np.float64) / 255.0) @ luma) for im in images
    )


def _patches(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    if x.ndim == 2:
        height, width = 1, x.shape[1]
    else:
        height, width = x.shape[-2], x.shape[-1]
    photos = sample_photographs()
    which = torch.randint(len(photos), (n,), generator=generator)
    fraction = torch.randint(len(PATCH_FRACTIONS), (n,), generator=generator)
    offset = torch.rand((n, 2), generator=generator, dtype=torch.float64)
    grey = torch.empty((n, height, width), dtype=torch.float64)
    for p, photo in enumerate(photos):
        ph_max, pw_max = photo.shape
        for f, frac in enumerate(PATCH_FRACTIONS):
            members = torch.nonzero((which == p) & (fraction == f)).flatten()
            if len(members) == 0:
                continue
            # patch of the target's aspect ratio whose longer side is frac · shorter photo side
            side = frac * min(ph_max, pw_max) / max(height, width)
            ph = min(ph_max, max(1, round(side * height)))
            pw = min(pw_max, max(1, round(side * width)))
            top = (offset[members, 0] * (ph_max - ph + 1)).long().clamp_max(ph_max - ph)
            left = (offset[members, 1] * (pw_max - pw + 1)).long().clamp_max(pw_max - pw)
            rows = top[:, None] + torch.arange(ph)
            cols = left[:, None] + torch.arange(pw)
            crops = photo[rows[:, :, None], cols[:, None, :]]  # (m, ph, pw)
            resized = F.interpolate(
                crops[:, None],
                size=(height, width),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            grey[members] = resized[:, 0]
    lo, hi = _range(x)
    grey = lo + (hi - lo) * grey.clamp(0.0, 1.0)
    if x.ndim == 2:
        return grey[:, 0, :].to(x.dtype)
    lead = x.shape[1:-2]
    out = grey.view(n, *([1] * len(lead)), height, width).expand(x.shape)
    return out.to(x.dtype).contiguous()


_FIXED: dict[str, tuple[ShiftFn, str]] = {
    "uniform": (_uniform, "pure noise images, i.i.d. uniform in [min(x), max(x)]"),
    "invert": (_invert, "contrast inversion min(x) + max(x) - x"),
    "blur": (_blur, "Gaussian blur, sigma 1 pixel, 5-tap kernel, reflect padding"),
    "patches": (_patches, "grey patches of photographs, resized to the sample's size"),
}
_NOISE = re.compile(r"noise-(.*)")


def get_shift(name: str | Shift) -> Shift:
    """Return the shift called ``name`` (a :class:`Shift` is returned as it is).

    Valid names: ``noise-σ`` for any ``σ > 0`` (e.g. ``noise-0.25``), ``uniform``,
    ``invert``, ``blur``, ``patches``.

    Raises
    ------
    ConfigError
        Unknown name, or a noise level that is not a positive number.

    Examples
    --------
    >>> x = torch.arange(6.0).reshape(2, 3)
    >>> get_shift("invert")(x)
    tensor([[5., 4., 3.],
            [2., 1., 0.]])
    """
    if isinstance(name, Shift):
        return name
    valid = "noise-SIGMA (e.g. noise-0.5), " + ", ".join(_FIXED)
    if not isinstance(name, str):
        raise ConfigError(f"shift {name!r} is not a name; valid shifts: {valid}")
    key = name.strip().lower()
    if key in _FIXED:
        fn, description = _FIXED[key]
        return Shift(key, fn, description)
    match = _NOISE.fullmatch(key)
    if match:
        try:
            sigma = float(match.group(1))
        except ValueError:
            sigma = math.nan
        if not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(
                f"shift {name!r} has noise level {match.group(1)!r}; pass a positive number, "
                "e.g. noise-0.5"
            )
        return Shift(key, _noise_fn(sigma), f"additive Gaussian noise, {sigma:g} x std(x)")
    raise ConfigError(f"unknown shift {name!r}; valid shifts: {valid}")


__all__ = [
    "DEFAULT_SHIFTS",
    "SHIFT_NAMES",
    "Shift",
    "blur",
    "gaussian_kernel1d",
    "get_shift",
    "sample_photographs",
]
