"""Checks and helpers shared by the spectral measures (input checks, eval mode, forwards)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ginvariance.errors import ConfigError, DataError, ModelError

Model = Callable[[Tensor], Tensor]


def check_inputs(x: object, what: str = "x") -> Tensor:
    """Return ``x`` if it is a finite floating batch ``(B, *S)`` with ``B ≥ 1``; raise otherwise."""
    if not isinstance(x, Tensor):
        raise DataError(f"{what} must be a torch.Tensor of shape (B, *S), got {type(x).__name__}")
    if x.ndim < 2:
        raise DataError(
            f"{what} must have shape (B, *S) with a batch axis, got shape {tuple(x.shape)}; "
            "add a batch axis with x.unsqueeze(0)"
        )
    if x.shape[0] == 0 or x.numel() == 0:
        raise DataError(f"{what} is empty (shape {tuple(x.shape)}); pass at least one sample")
    if not x.is_floating_point():
        raise DataError(
            f"{what} must be float32 or float64, got {x.dtype}; convert it with .float()"
        )
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{what} contains NaN or infinite values; clean or drop those samples")
    return x


def check_chunk_size(chunk_size: int | None) -> None:
    """Raise :class:`ConfigError` unless ``chunk_size`` is ``None`` or a positive integer."""
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ConfigError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")


def check_eps(eps: Sequence[float] | float) -> list[float]:
    """The step sizes ``ε`` as a non-empty list of positive finite floats."""
    values = [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    if not values or not all(math.isfinite(e) and e > 0 for e in values):
        raise ConfigError(f"eps must be a non-empty list of positive finite numbers, got {eps!r}")
    return values


def check_logits(z: object, batch: int) -> Tensor:
    """Check that the model returned logits ``(batch, K)``."""
    if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[0] != batch:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ModelError(
            f"the model must map (B, *S) to logits (B, K), got {shape} for B={batch}; "
            "return one row of class scores per sample"
        )
    return z


@contextmanager
def eval_mode(model: Model) -> Iterator[None]:
    """Put every submodule of ``model`` in eval mode, restoring each one's mode afterwards."""
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@torch.no_grad()
def forward_chunked(model: Model, inputs: Tensor, chunk_rows: int | None) -> Tensor:
    """Logits of ``inputs`` ``(N, *S)`` → ``(N, K)``, ``chunk_rows`` rows per forward."""
    if chunk_rows is None or chunk_rows >= inputs.shape[0]:
        return check_logits(model(inputs), inputs.shape[0]).detach()
    parts = [check_logits(model(part), part.shape[0]).detach() for part in inputs.split(chunk_rows)]
    return torch.cat(parts, dim=0)
