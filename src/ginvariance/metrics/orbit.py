"""One pass of a model over the orbit of a batch: the data every measure is made from.

The orbit of a batch ``x`` ``(B, *S)`` under a group of order ``n`` is built once as one
tensor ``(n·B, *S)``; the model runs once forward over it and, when a saliency is asked
for, once backward. Every measure in :mod:`ginvariance.metrics.functional` is a pure
function of the :class:`OrbitOutputs` this pass returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ginvariance.checks import check_batch, check_int, check_logits
from ginvariance.devices import autocast, model_device, move
from ginvariance.devices import memory_budget as device_budget
from ginvariance.errors import ConfigError, DataError, GinvarianceError, ModelError
from ginvariance.groups import Group, get_group

#: A model: any callable from a batch ``(B, *S)`` to logits ``(B, K)`` (an ``nn.Module`` or not).
Model = Callable[[torch.Tensor], torch.Tensor]

#: Default memory budget of one chunk of work on the CPU, in bytes (on CUDA the budget
#: follows the free device memory: :func:`ginvariance.devices.memory_budget`).
DEFAULT_MEMORY_BUDGET = 256 * 2**20

#: Bytes of activations (and their gradients) assumed per byte of orbit input when the
#: chunk size is derived from a memory budget: a conservative round figure.
ACTIVATION_FACTOR = 128


@dataclass
class OrbitOutputs:
    """What one pass over an orbit returns.

    Attributes
    ----------
    logits:
        ``(n, B, K)``: ``logits[i, b] = f(g_i · x_b)``.
    saliency:
        ``(n, B, *S)`` or ``None``: ``saliency[i, b] = g_i⁻¹ · ∇_u f(u)[c_b]`` at
        ``u = g_i · x_b``, with ``c_b = argmax f(x_b)`` — the saliency map of the
        transformed input, mapped back by the inverse action so that a genuinely
        invariant model gives identical maps.
    """

    logits: torch.Tensor
    saliency: torch.Tensor | None = None


def check_inputs(x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """Raise :class:`DataError` for inputs (and labels) that no measure can use."""
    check_batch(x)
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.dim() != 1:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise DataError(f"labels must be a 1-D tensor (N,), got {shape}")
        if y.shape[0] != x.shape[0]:
            raise DataError(
                f"{y.shape[0]} labels for {x.shape[0]} inputs; give one label per input"
            )
        if torch.is_floating_point(y) or y.dtype == torch.bool:
            raise DataError(f"labels must be integers, got {y.dtype}; convert with y.long()")


def chunk_size_for(
    group: Group,
    sample_shape: tuple[int, ...],
    dtype: torch.dtype,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    chunk_size: int | None = None,
) -> int:
    """Number of samples per chunk so that one orbit chunk stays within ``memory_budget``.

    The estimate is ``n · prod(S) · itemsize · ACTIVATION_FACTOR`` bytes per sample. A
    ``chunk_size`` the caller chose is checked and returned instead.
    """
    if chunk_size is not None:
        return check_int(chunk_size, "chunk size")
    if memory_budget <= 0:
        raise ConfigError(f"memory budget must be positive, got {memory_budget} bytes")
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_sample = group.order * math.prod(sample_shape) * itemsize * ACTIVATION_FACTOR
    return max(1, memory_budget // per_sample)


def _forward(
    model: Model, orbit: torch.Tensor, precision: torch.dtype | None = None
) -> torch.Tensor:
    try:
        with autocast(orbit.device, precision):
            return model(orbit)
    except GinvarianceError:
        raise
    except SystemExit as exc:  # a model's forward must not end the program
        raise ModelError(
            f"the model called sys.exit({exc.code!r}) in forward on inputs of shape "
            f"{tuple(orbit.shape[1:])}; a model must return (B, K) logits, not exit"
        ) from None
    except Exception as exc:  # torch's shape and dtype errors, or the model's own
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        raise ModelError(
            f"the model failed on inputs of shape {tuple(orbit.shape[1:])} and dtype "
            f"{orbit.dtype} ({reason}); give inputs of the shape and dtype it was built for, "
            "or fix the model"
        ) from exc


@contextmanager
def eval_mode(model: Model) -> Iterator[Model]:
    """Put every submodule of ``model`` in eval mode for the block, then restore each one's own
    mode (a BatchNorm the caller froze in eval mode stays so). A plain callable is left as is.
    """
    if not isinstance(model, nn.Module):
        yield model
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def orbit_pass(
    model: Model,
    x: torch.Tensor,
    group: Group | str,
    *,
    saliency: bool = False,
    precision: torch.dtype | None = None,
) -> OrbitOutputs:
    """Run ``model`` once over the orbit of ``x`` (and once backward for the saliency).

    Parameters
    ----------
    model:
        Maps ``(B, *S)`` to logits ``(B, K)``; run as it is (put it in eval mode first, as
        ``measure`` does, if it has dropout or batch norm).
    x:
        A batch ``(B, *S)``, moved to the model's device (:func:`ginvariance.devices.move`),
        where the orbit is built and the outputs stay; not chunked (see
        :func:`iter_orbit_passes`).
    group:
        The group; resolved to ``x``'s sample shape.
    saliency:
        Also compute the vanilla-gradient saliency of the class predicted on the
        untransformed input, mapped back by each inverse action.
    precision:
        ``None`` (the model's own dtype), or the dtype the forward is autocast to
        (:func:`ginvariance.devices.check_precision`).
    """
    group = get_group(group, tuple(x.shape[1:]))
    n, b = group.order, x.shape[0]
    x = move(x, model_device(model))
    orbit = group.orbit(x)
    if not saliency:
        with torch.no_grad():
            z = _forward(model, orbit, precision)
        check_logits(z, n * b, finite=True)
        return OrbitOutputs(z.detach().reshape(n, b, -1))
    orbit = orbit.detach().requires_grad_(True)
    with torch.enable_grad():
        z = _forward(model, orbit, precision)
        check_logits(z, n * b, finite=True)
        logits = z.reshape(n, b, -1)
        target = logits[0].detach().argmax(dim=1)  # c = argmax z_e(x)
        chosen = logits.gather(2, target.view(1, b, 1).expand(n, b, 1))
        if chosen.requires_grad:
            (grad,) = torch.autograd.grad(
                chosen.sum(), orbit, allow_unused=True, materialize_grads=True
            )
        else:  # the logits do not depend on the input at all: zero saliency
            grad = torch.zeros_like(orbit)
    maps = group.inverse_orbit(grad).reshape(n, b, *x.shape[1:])
    return OrbitOutputs(logits.detach(), maps)


def iter_orbit_passes(
    model: Model,
    x: torch.Tensor,
    group: Group | str,
    *,
    saliency: bool = False,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    precision: torch.dtype | None = None,
) -> Iterator[tuple[slice, OrbitOutputs]]:
    """Yield ``(rows, outputs)`` for consecutive chunks of ``x``, in bounded memory.

    Each chunk is moved to the model's device on its own (``x`` may stay on the CPU, pinned for
    non-blocking copies). ``memory_budget`` ``None``: the device's
    (:func:`ginvariance.devices.memory_budget`).
    """
    group = get_group(group, tuple(x.shape[1:]))
    device = model_device(model)
    if memory_budget is None:
        memory_budget = device_budget(device, DEFAULT_MEMORY_BUDGET)
    chunk_size = chunk_size_for(group, tuple(x.shape[1:]), x.dtype, memory_budget, chunk_size)
    for start in range(0, x.shape[0], chunk_size):
        rows = slice(start, min(start + chunk_size, x.shape[0]))
        chunk = move(x[rows], device)
        yield rows, orbit_pass(model, chunk, group, saliency=saliency, precision=precision)
