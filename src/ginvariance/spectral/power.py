"""Radial power spectrum of saliency maps (1-D signals or 2-D images).

``P(ω) = |DFT(s)(ω)|²`` with the orthonormal DFT (``Σ_ω P(ω) = Σ s²``), averaged over samples
and binned by the radius ``r(ω)`` in units of Nyquist: bin ``k`` of ``n`` holds
``k/n < r ≤ (k+1)/n``, the corners of a 2-D spectrum (``1 < r ≤ √2``) count in the last bin,
and the DC term (``r = 0``, the map's mean) is reported on its own.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ginvariance.errors import ConfigError, DataError

#: Radius (in units of Nyquist) above which energy counts as high frequency.
HIGH_FREQUENCY_CUTOFF = 0.5

# Slack for radii that lie on a bin edge up to rounding (r = k/n computed as a square root).
_EDGE = 1e-12

# Non-DC energy below this fraction of the total is FFT rounding of a constant map.
_ROUNDING = (64 * torch.finfo(torch.float64).eps) ** 2


def radial_frequency(spatial_shape: tuple[int, ...]) -> Tensor:
    """Radius ``r(ω) = ‖2ω‖₂`` of every DFT frequency in units of Nyquist, float64 ``(*shape)``."""
    axes = [torch.fft.fftfreq(n, dtype=torch.float64) * 2 for n in spatial_shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.sqrt(sum(g**2 for g in grids))  # type: ignore[arg-type]


def saliency_power_spectrum(saliency: Tensor, n_bins: int | None = None) -> dict[str, object]:
    """Radially binned power spectrum of saliency maps and their high-frequency fraction.

    Parameters
    ----------
    saliency:
        Maps ``(B, L)``, ``(B, H, W)`` or ``(B, C, H, W)`` (channels are summed first).
    n_bins:
        Number of equal-width radius bins on ``[0, 1]``; default ``max(spatial size) // 2``
        (at least 1): for ``N × N`` maps bin ``k`` is then the ring of DFT index ``k + 1``.

    Returns
    -------
    dict
        ``"radial_power"``: mean of ``P̄(ω) = mean_x P_x(ω)`` over the non-DC frequencies of
        each bin (0 for an empty bin); ``"frequencies"``: the upper edge ``(k+1)/n`` of each bin;
        ``"high_frequency_fraction"``: ``Σ_{r > 0.5} P̄ / Σ_{r > 0} P̄`` (0 when the maps are
        constant); ``"dc_power"``: ``P̄(0)``.

    Examples
    --------
    >>> checker = (torch.arange(8)[:, None] + torch.arange(8)).remainder(2).float() * 2 - 1
    >>> saliency_power_spectrum(checker[None])["high_frequency_fraction"]
    1.0
    """
    if not isinstance(saliency, Tensor) or not saliency.is_floating_point():
        raise DataError("saliency must be a floating-point torch.Tensor of shape (B, *S)")
    if saliency.ndim not in (2, 3, 4) or saliency.numel() == 0:
        raise DataError(
            f"saliency must have shape (B, L), (B, H, W) or (B, C, H, W), got "
            f"{tuple(saliency.shape)}; pass one map per sample"
        )
    if not bool(torch.isfinite(saliency).all()):
        raise DataError("saliency contains NaN or infinite values; recompute it on finite inputs")
    maps = saliency.detach().to(torch.float64)
    if maps.ndim == 4:
        maps = maps.sum(dim=1)
    spatial = tuple(maps.shape[1:])
    if n_bins is None:
        n_bins = max(1, max(spatial) // 2)
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer or None, got {n_bins!r}")
    dims = tuple(range(1, maps.ndim))
    power = torch.fft.fftn(maps, dim=dims, norm="ortho").abs().square().mean(dim=0).cpu()
    radius = radial_frequency(spatial)
    dc = radius == 0
    total = float(power.sum())
    dc_power = float(power[dc].sum())
    non_dc = float(power[~dc].sum())
    bins = ((radius * n_bins - _EDGE).ceil() - 1).clamp(min=0, max=n_bins - 1).long()
    sums = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins[~dc], power[~dc])
    counts = torch.bincount(bins[~dc], minlength=n_bins).to(torch.float64)
    radial = torch.where(counts > 0, sums / counts.clamp(min=1), torch.zeros_like(sums))
    if non_dc <= _ROUNDING * total or non_dc == 0.0:
        high = 0.0
    else:
        high = float(power[radius > HIGH_FREQUENCY_CUTOFF + _EDGE].sum()) / non_dc
    return {
        "radial_power": [float(v) for v in radial],
        "frequencies": [(k + 1) / n_bins for k in range(n_bins)],
        "high_frequency_fraction": high if math.isfinite(high) else 0.0,
        "dc_power": dc_power,
    }
