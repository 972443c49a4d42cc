"""The checks every floor shares (integers that are not booleans, numbers, JSON round trips,
input batches, model outputs): one home for each condition and its message. It sits on the
lowest floor beside :mod:`ginvariance.errors` and imports nothing else of the package.
"""

from __future__ import annotations

import importlib
import json
import math
from types import ModuleType
from typing import Any, TypeGuard

import torch

from ginvariance.errors import (
    ConfigError,
    DataError,
    GinvarianceError,
    MissingExtraError,
    ModelError,
)


def import_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` of the optional extra ``extra``, or raise :class:`MissingExtraError`
    naming the extra to install.

    >>> import_extra("json", "none", "tests").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingExtraError(
            f"{purpose} needs {package}, which is not installed; install the extra with: "
            f'pip install -c constraints.txt "ginvariance[{extra}]"'
        ) from None


def is_int(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is a Python ``int`` and not a ``bool`` (``True`` is an ``int``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is an ``int`` or a ``float`` and not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_int(
    value: Any,
    what: str,
    *,
    minimum: int = 1,
    error: type[GinvarianceError] = ConfigError,
    allow_none: bool = False,
) -> Any:
    """Return ``value`` if it is an ``int`` (not a ``bool``) ``≥ minimum`` (or ``None`` with
    ``allow_none``); else raise ``error``: ``"{what} must be a positive integer, got …"``.

    >>> check_int(3, "epochs")
    3
    """
    if value is None and allow_none:
        return None
    if not is_int(value) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        if allow_none:
            kind += " or None"
        raise error(f"{what} must be {kind}, got {value!r}")
    return value


def check_finite(value: Any, what: str, *, positive: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number ≥ 0 (> 0 with ``positive``)."""
    if not is_number(value):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise ConfigError(f"{what} must be a finite number, got {value!r}; give a finite value")
    if v < 0 or (positive and v == 0):
        kind = "positive" if positive else "zero or positive"
        raise ConfigError(f"{what} must be {kind}, got {value!r}")
    return v


def json_roundtrip(obj: Any, *, sort_keys: bool = False) -> Any:
    """``obj`` as a JSON reader will see it (tuples become lists, keys strings)."""
    return json.loads(json.dumps(obj, sort_keys=sort_keys))


def channel_last_fix(sample_shape: Any) -> str | None:
    """What to do about an image stored channel-last, ``(H, W, C)``; ``None`` if it is not one.

    Groups act on a sample's last axes, so images come ``(C, H, W)``; a sample ``(H, W, C)``
    with ``C ≤ 4 < min(H, W)`` is taken for channel-last and refused everywhere.
    """
    s = tuple(int(v) for v in sample_shape)
    if len(s) == 3 and s[2] <= 4 < min(s[0], s[1]):
        return (
            f"samples of shape {s} look channel-last (H, W, C), but images must be (C, H, W): "
            "move the channel axis first with x.transpose(0, 3, 1, 2) (numpy) or "
            "x.permute(0, 3, 1, 2) (torch)"
        )
    return None


def check_batch(x: Any, what: str = "inputs") -> torch.Tensor:
    """Return ``x`` if it is a finite floating batch ``(N, *S)`` with ``N ≥ 1``.

    Raises :class:`DataError` naming ``what``: not a tensor, no batch axis, empty, integer
    (with the conversion that fixes it), channel-last images, NaN or inf.
    """
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{what} must be a torch.Tensor of shape (N, *S), got {type(x).__name__}")
    if x.dim() < 2:
        raise DataError(
            f"{what} must have shape (N, *S) with at least one axis per sample, got shape "
            f"{tuple(x.shape)}; add a batch axis"
        )
    if x.shape[0] == 0 or x.numel() == 0:
        raise DataError(
            f"{what}: an empty batch (shape {tuple(x.shape)}); pass at least one sample"
        )
    if not torch.is_floating_point(x):
        fix = "x.float() / 255 for 0..255 pixels" if x.dtype == torch.uint8 else "x.float()"
        raise DataError(
            f"{what} must be floating point (float32 or float64) on the scale the model was "
            f"trained on, got {x.dtype}; convert them, e.g. {fix}"
        )
    layout = channel_last_fix(tuple(x.shape[1:]))
    if layout is not None:
        raise DataError(f"{what} of shape {tuple(x.shape)}: {layout}")
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{what}: NaN or infinite values; clean or drop those samples")
    return x


def check_logits(z: Any, rows: int, *, finite: bool = False) -> torch.Tensor:
    """Return ``z`` if it is floating-point logits ``(rows, K)`` with ``K ≥ 1``.

    Raises :class:`ModelError` otherwise; with ``finite``, also for NaN or infinite logits.
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != rows:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ModelError(
            f"the model must return (B, K) logits, got {shape} for a batch of {rows}; "
            "make its forward return one row of class scores per input"
        )
    if not z.is_floating_point():
        raise ModelError(
            f"the model returned logits of dtype {z.dtype}; return floating-point class scores "
            "(B, K)"
        )
    if z.shape[1] < 1:
        raise ModelError("the model returns zero classes (K = 0); it must return (B, K) logits")
    if finite and not bool(torch.isfinite(z).all()):
        raise ModelError(
            "the model returned NaN or infinite logits; check its weights and the inputs' scale"
        )
    return z


def check_orbit_logits(logits: Any) -> torch.Tensor:
    """Return ``logits`` if it is an ``(n, B, K)`` tensor of orbit logits."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(
            f"orbit logits must have shape (n, B, K), got {shape}; reshape model(orbit) to "
            "(n, B, K)"
        )
    return logits


__all__ = [
    "channel_last_fix",
    "check_batch",
    "check_finite",
    "check_int",
    "check_logits",
    "check_orbit_logits",
    "import_extra",
    "is_int",
    "is_number",
    "json_roundtrip",
]
