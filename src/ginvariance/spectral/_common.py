"""Helpers shared by the spectral measures: their input checks, step sizes and chunked forwards.

The checks themselves live in :mod:`ginvariance.checks` and eval mode in
:mod:`ginvariance.metrics.orbit`; this module gives them the spectral measures' names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ginvariance.checks import check_batch, check_int, check_logits
from ginvariance.errors import ConfigError
from ginvariance.metrics.orbit import Model, eval_mode


def check_inputs(x: object, what: str = "x") -> Tensor:
    """Return ``x`` if it is a finite floating batch ``(B, *S)`` with ``B ≥ 1``; raise otherwise."""
    return check_batch(x, what)


def check_chunk_size(chunk_size: int | None) -> None:
    """Raise :class:`ConfigError` unless ``chunk_size`` is ``None`` or a positive integer."""
    check_int(chunk_size, "chunk_size", allow_none=True)


def check_eps(eps: Sequence[float] | float) -> list[float]:
    """The step sizes ``ε`` as a non-empty list of positive finite floats."""
    values = [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    if not values or not all(math.isfinite(e) and e > 0 for e in values):
        raise ConfigError(f"eps must be a non-empty list of positive finite numbers, got {eps!r}")
    return values


@torch.no_grad()
def forward_chunked(model: Model, inputs: Tensor, chunk_rows: int | None) -> Tensor:
    """Logits of ``inputs`` ``(N, *S)`` → ``(N, K)``, ``chunk_rows`` rows per forward."""
    if chunk_rows is None or chunk_rows >= inputs.shape[0]:
        return check_logits(model(inputs), inputs.shape[0]).detach()
    parts = [check_logits(model(part), part.shape[0]).detach() for part in inputs.split(chunk_rows)]
    return torch.cat(parts, dim=0)


__all__ = [
    "Model",
    "check_chunk_size",
    "check_eps",
    "check_inputs",
    "check_logits",
    "eval_mode",
    "forward_chunked",
]
