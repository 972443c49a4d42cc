"""Helpers shared by the spectral measures: step sizes, chunked forwards and the one eval mode
(:func:`ginvariance.metrics.orbit.eval_mode`, re-exported)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ginvariance.checks import check_logits
from ginvariance.errors import ConfigError
from ginvariance.metrics.orbit import Model as Model
from ginvariance.metrics.orbit import eval_mode as eval_mode


def check_eps(eps: Sequence[float] | float) -> list[float]:
    """The step sizes ``ε`` as a non-empty list of positive finite floats."""
    values = [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    if not values or not all(math.isfinite(e) and e > 0 for e in values):
        raise ConfigError(f"eps must be a non-empty list of positive finite numbers, got {eps!r}")
    return values


@torch.no_grad()
def forward_chunked(model: Model, inputs: Tensor, chunk_rows: int | None) -> Tensor:
    """Logits of ``inputs`` ``(N, *S)`` → ``(N, K)``, ``chunk_rows`` rows per forward."""
    parts = inputs.split(chunk_rows or inputs.shape[0])
    return torch.cat([check_logits(model(part), part.shape[0]).detach() for part in parts])
