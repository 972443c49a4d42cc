"""Distribution shifts: named transforms of inputs, each one fixed distribution.

A shift takes its parameters from a reference set (:class:`ShiftReference`) and its
randomness from a counter keyed by ``(seed, stream, global sample index)``
(:func:`sample_uniform`), so a sample is shifted alike in any batch; the transforms are
tabulated in docs/definitions.md. A sample ``(L,)`` is a 1-D signal; otherwise the last two
axes ``(H, W)`` are spatial and any leading ones channels, so a ``(1, L)`` sample (MNIST-1D)
is a 1 × L image.

The module stays whole: a shift's transform, its parameters and its randomness are one
definition.
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ginvariance.checks import is_int
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


@dataclass(frozen=True)
class ShiftReference:
    """The statistics of a reference set that fix every shift's parameters: the smallest and
    largest entry, the mean and population standard deviation of all entries (float64), the
    number of samples, the shape ``S`` of one sample (a shift refuses inputs of another shape)
    and where they come from, for reports (``"training split"``, ...)."""

    min: float
    max: float
    mean: float
    std: float
    n_samples: int
    sample_shape: tuple[int, ...]
    source: str = "measured data"

    @classmethod
    def from_batches(
        cls, batches: Iterable[torch.Tensor], source: str = "measured data"
    ) -> ShiftReference:
        """Statistics of the concatenation of ``batches`` (each ``(B, *S)``), in one pass.

        The sums are taken in float64 about the first batch's mean, so the standard deviation
        does not cancel for data with a large offset.

        Raises
        ------
        DataError
            A batch that is not a finite floating-point tensor, batches of different sample
            shapes, or no sample at all.
        """
        shape: tuple[int, ...] | None = None
        count, lo, hi = 0, math.inf, -math.inf
        centre = s1 = s2 = 0.0
        for x in batches:
            x = _check_batch(x, "the shift reference")
            if x.shape[0] == 0:
                continue
            if shape is None:
                shape = tuple(x.shape[1:])
                centre = float(x.detach().double().mean())
            elif tuple(x.shape[1:]) != shape:
                raise DataError(
                    f"the shift reference has samples of shape {shape} and "
                    f"{tuple(x.shape[1:])}; pass one data set of one sample shape"
                )
            xd = x.detach().double() - centre
            count += x.shape[0]
            lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
            s1 += float(xd.sum())
            s2 += float((xd * xd).sum())
        if shape is None:
            raise DataError("the shift reference holds no samples; pass at least one sample")
        values = count * math.prod(shape)
        mean_c = s1 / values
        var = max(s2 / values - mean_c * mean_c, 0.0)
        return cls(
            min=lo,
            max=hi,
            mean=centre + mean_c,
            std=math.sqrt(var),
            n_samples=count,
            sample_shape=shape,
            source=source,
        )

    @classmethod
    def of(cls, x: torch.Tensor, source: str = "measured data") -> ShiftReference:
        """Statistics of one tensor ``x`` ``(N, *S)``."""
        return cls.from_batches([x], source)

    def check(self, x: torch.Tensor, shift: str) -> None:
        """Raise :class:`DataError` if ``x``'s samples are not of the reference's shape."""
        if tuple(x.shape[1:]) != tuple(self.sample_shape):
            raise DataError(
                f"shift {shift!r} has a reference set of samples {tuple(self.sample_shape)} "
                f"but got samples {tuple(x.shape[1:])}; take the reference from data of the "
                "measured shape"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {**asdict(self), "sample_shape": list(self.sample_shape)}


def _check_batch(x: Any, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise DataError(
            f"{what} takes a tensor, got {type(x).__name__}; convert with torch.as_tensor"
        )
    if not x.is_floating_point():
        raise DataError(f"{what} needs floating-point inputs, got {x.dtype}; convert x to float32")
    if x.ndim < 2:
        raise DataError(
            f"{what} got shape {tuple(x.shape)}; pass a batch (N, *S) with at least one axis "
            "per sample"
        )
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise DataError(f"{what} got NaN or infinite inputs; remove or replace them")
    return x


# -- counter-based randomness --------------------------------------------------------------

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MASK = (1 << 64) - 1


def _mix64(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finalizer on an array of uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _stream_key(seed: int, stream: str) -> int:
    """A 64-bit key of ``(seed, stream)``."""
    return (int(seed) * 0x9E3779B97F4A7C15 + zlib.crc32(stream.encode()) + 1) & _MASK


def sample_uniform(seed: int, stream: str, indices: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` uniform draws in ``[0, 1)`` per sample, keyed by ``(seed, stream, index)``.

    Row ``r`` is a pure function of ``(seed, stream, indices[r])``: the SplitMix64 sequence
    started from a hash of the three (Steele, Lea & Flood 2014), 53 bits per draw.
    Returns float64 ``(len(indices), k)`` on the CPU.
    """
    idx = indices.detach().to("cpu", torch.int64).numpy().astype(np.uint64)
    with np.errstate(over="ignore"):
        start = _mix64(_mix64(idx + np.uint64(_stream_key(seed, stream))) + _GAMMA)
        steps = np.arange(1, k + 1, dtype=np.uint64) * _GAMMA
        bits = _mix64(start[:, None] + steps[None, :])
    return torch.from_numpy((bits >> np.uint64(11)).astype(np.float64) * 2.0**-53)


def sample_normal(seed: int, stream: str, indices: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` standard normal draws per sample (Box–Muller on :func:`sample_uniform`)."""
    u = sample_uniform(seed, stream, indices, 2 * ((k + 1) // 2))
    u1, u2 = 1.0 - u[:, 0::2], u[:, 1::2]  # u1 in (0, 1]
    radius = torch.sqrt(-2.0 * torch.log(u1))
    z = torch.cat([radius * torch.cos(2 * math.pi * u2), radius * torch.sin(2 * math.pi * u2)], 1)
    return z[:, :k]


@dataclass(frozen=True)
class ShiftDraws:
    """What a shift's transform may draw on: the reference set and per-sample randomness."""

    reference: ShiftReference
    seed: int
    indices: torch.Tensor

    def uniform(self, stream: str, k: int) -> torch.Tensor:
        """``(N, k)`` float64 uniform draws, one row per sample (:func:`sample_uniform`)."""
        return sample_uniform(self.seed, stream, self.indices, k)

    def normal(self, stream: str, k: int) -> torch.Tensor:
        """``(N, k)`` float64 standard normal draws, one row per sample."""
        return sample_normal(self.seed, stream, self.indices, k)


ShiftTransform = Callable[[torch.Tensor, ShiftDraws], torch.Tensor]


class Shift:
    """A named transform of inputs whose parameters come from a reference set.

    Parameters
    ----------
    name:
        The shift's key in results (``"noise-0.5"``, ``"blur"``, ...).
    fn:
        ``fn(x, draws) -> x'``: the transform of a CPU batch ``x`` ``(N, *S)``, taking its
        parameters from ``draws.reference`` and its randomness only from ``draws``
        (:class:`ShiftDraws`: per-sample draws keyed by the global sample index); must return
        the same shape.
    description:
        One line for reports.
    preserves_labels:
        Whether a shifted input keeps its class (false for pure noise and other data sets).
    parameters:
        ``parameters(reference) -> dict``: the shift's parameters as numbers, for reports.
    """

    def __init__(
        self,
        name: str,
        fn: ShiftTransform,
        description: str = "",
        *,
        preserves_labels: bool = True,
        parameters: Callable[[ShiftReference], dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.preserves_labels = preserves_labels
        self._fn = fn
        self._parameters = parameters

    def __repr__(self) -> str:
        return f"Shift({self.name!r})"

    def parameters(self, reference: ShiftReference) -> dict[str, Any]:
        """The shift's parameters under ``reference``, JSON-ready (with its description)."""
        values = self._parameters(reference) if self._parameters is not None else {}
        return {"description": self.description, **values}

    def __call__(
        self,
        x: torch.Tensor,
        seed: int = 0,
        *,
        reference: ShiftReference | None = None,
        indices: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Shift the batch ``x`` ``(N, *S)``.

        Parameters
        ----------
        x:
            Floating-point, finite inputs.
        seed:
            Seed of the per-sample randomness, ``0 ≤ seed < 2**63``.
        reference:
            The reference set's statistics; ``None``: those of ``x`` itself.
        indices:
            The global index of each sample of ``x`` ``(N,)`` (its position in the whole
            data set); ``None``: ``0..N−1``. Sample ``i`` is shifted alike in any batch.

        Returns
        -------
        Tensor
            ``x``'s shape, dtype and device.
        """
        x = _check_batch(x, f"shift {self.name!r}")
        if not is_int(seed) or not 0 <= seed < 2**63:
            raise ConfigError(f"shift seed={seed!r}; pass an integer in 0..2**63 - 1")
        if x.numel() == 0:
            return x.clone()
        if reference is None:
            reference = ShiftReference.of(x, "the shifted batch itself")
        reference.check(x, self.name)
        if indices is None:
            indices = torch.arange(x.shape[0])
        elif not isinstance(indices, torch.Tensor) or indices.shape != (x.shape[0],):
            raise DataError(
                f"shift {self.name!r} got indices of shape "
                f"{tuple(getattr(indices, 'shape', ()))} for {x.shape[0]} samples; pass one "
                "global sample index per sample"
            )
        draws = ShiftDraws(reference=reference, seed=int(seed), indices=indices)
        out = self._fn(x.detach().cpu(), draws)
        if out.shape != x.shape:
            raise DataError(
                f"shift {self.name!r} returned shape {tuple(out.shape)} for input "
                f"{tuple(x.shape)}; a shift must keep the shape"
            )
        return out.to(device=x.device, dtype=x.dtype)


# -- the transforms ------------------------------------------------------------------------


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


def _noise_scale(sigma: float, reference: ShiftReference) -> float:
    # a constant reference set gets noise of standard deviation σ
    return sigma * (reference.std if reference.std > 0 else 1.0)


def _noise_fn(sigma: float) -> ShiftTransform:
    def fn(x: torch.Tensor, draws: ShiftDraws) -> torch.Tensor:
        eps = draws.normal("noise", math.prod(x.shape[1:])).reshape(x.shape)
        return x + (_noise_scale(sigma, draws.reference) * eps).to(x.dtype)

    return fn


def _uniform(x: torch.Tensor, draws: ShiftDraws) -> torch.Tensor:
    lo, hi = draws.reference.min, draws.reference.max
    u = draws.uniform("uniform", math.prod(x.shape[1:])).reshape(x.shape)
    return (lo + (hi - lo) * u).to(x.dtype)


def _invert(x: torch.Tensor, draws: ShiftDraws) -> torch.Tensor:
    return (draws.reference.min + draws.reference.max) - x


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


def _patches(x: torch.Tensor, draws: ShiftDraws) -> torch.Tensor:
    n = x.shape[0]
    height, width = (1, x.shape[1]) if x.ndim == 2 else (x.shape[-2], x.shape[-1])
    photos = sample_photographs()
    u = draws.uniform("patches", 4)
    which = (u[:, 0] * len(photos)).long().clamp_max(len(photos) - 1)
    fraction = (u[:, 1] * len(PATCH_FRACTIONS)).long().clamp_max(len(PATCH_FRACTIONS) - 1)
    offset = u[:, 2:4]
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
    lo, hi = draws.reference.min, draws.reference.max
    grey = lo + (hi - lo) * grey.clamp(0.0, 1.0)
    if x.ndim == 2:
        return grey[:, 0, :].to(x.dtype)
    lead = x.shape[1:-2]
    out = grey.view(n, *([1] * len(lead)), height, width).expand(x.shape)
    return out.to(x.dtype).contiguous()


def _range(reference: ShiftReference) -> dict[str, Any]:
    return {"low": reference.min, "high": reference.max}


_FIXED: dict[str, tuple[ShiftTransform, str, bool, Callable[[ShiftReference], dict]]] = {
    "uniform": (
        _uniform,
        "pure noise images, i.i.d. uniform in [min, max] of the reference set",
        False,
        _range,
    ),
    "invert": (_invert, "contrast inversion min + max - x (reference set's range)", True, _range),
    "blur": (
        lambda x, draws: blur(x),
        "Gaussian blur, sigma 1 pixel, 5-tap kernel, reflect padding",
        True,
        lambda r: {"sigma_pixels": BLUR_SIGMA, "radius": BLUR_RADIUS},
    ),
    "patches": (
        _patches,
        "grey patches of photographs, resized to the sample's size, in [min, max]",
        False,
        lambda r: {**_range(r), "fractions": list(PATCH_FRACTIONS)},
    ),
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
        fn, description, keeps, params = _FIXED[key]
        return Shift(key, fn, description, preserves_labels=keeps, parameters=params)
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
        return Shift(
            key,
            _noise_fn(sigma),
            f"additive Gaussian noise, {sigma:g} x the reference set's std",
            parameters=lambda r: {"sigma": sigma, "scale": _noise_scale(sigma, r)},
        )
    raise ConfigError(f"unknown shift {name!r}; valid shifts: {valid}")


#: Built-in shifts whose inputs belong to no class (no accuracy is reported for them).
LABEL_FREE_SHIFTS = frozenset(k for k, v in _FIXED.items() if not v[2])

#: A user's own shift as a plain callable ``(x, seed) → x`` (``measure(shifts={name: fn})``).
ShiftFn = Callable[[torch.Tensor, int], torch.Tensor]


def preserves_labels(shift: Shift | ShiftFn, name: str | None = None) -> bool:
    """Whether inputs under ``shift`` keep their class, so that accuracies are reported.

    The one place that decides it: a :class:`Shift` says so itself; a plain callable keeps
    its labels unless it has ``preserves_labels = False`` or is measured under the name of a
    label-free built-in shift (``name`` in :data:`LABEL_FREE_SHIFTS`, e.g. a user's own
    ``"uniform"``).
    """
    if isinstance(shift, Shift):
        return shift.preserves_labels
    return name not in LABEL_FREE_SHIFTS and bool(getattr(shift, "preserves_labels", True))


__all__ = [
    "DEFAULT_SHIFTS",
    "LABEL_FREE_SHIFTS",
    "SHIFT_NAMES",
    "Shift",
    "ShiftDraws",
    "ShiftFn",
    "ShiftReference",
    "blur",
    "gaussian_kernel1d",
    "get_shift",
    "preserves_labels",
    "sample_normal",
    "sample_photographs",
    "sample_uniform",
]
