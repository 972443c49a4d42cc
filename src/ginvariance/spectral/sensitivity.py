"""Finite-difference sensitivity of the logits to input perturbations, along random
directions or towards the transformed copies of each input (docs/definitions.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ginvariance.checks import check_batch, check_int
from ginvariance.groups import Group, get_group
from ginvariance.spectral._common import Model, check_eps, eval_mode, forward_chunked


def random_directions(
    n_directions: int,
    batch: int,
    sample_shape: Sequence[int],
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Directions uniform on the unit sphere of ``R^D``: ``(n_directions·batch, *sample_shape)``.

    Normalised standard Gaussians, drawn in float64 on the CPU from ``seed`` and then cast,
    so float32 and float64 runs use the same directions. Row ``j·batch + b`` is direction
    ``j`` of sample ``b`` (direction-major, like ``x.repeat(n_directions, ...)``).
    """
    dim = math.prod(int(s) for s in sample_shape)
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.randn(n_directions * batch, dim, generator=gen, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    return u.to(device=device, dtype=dtype).reshape(n_directions * batch, *sample_shape)


def _mean_sensitivity(
    model: Model,
    base: Tensor,
    directions: Tensor,
    z_base: Tensor,
    eps: list[float],
    chunk_size: int | None,
) -> Tensor:
    """``(2, len(eps))``: ``mean ‖f(base + ε·u) − z_base‖ / ε``, and the same of ``softmax(f)``."""
    logit_rows, prob_rows = [], []
    p_base = torch.softmax(z_base.double(), dim=1)
    for e in eps:
        z = forward_chunked(model, base + e * directions, chunk_size)
        logit_rows.append(((z - z_base).norm(dim=1) / e).mean())
        p = torch.softmax(z.double(), dim=1)
        prob_rows.append(((p - p_base).norm(dim=1) / e).mean().to(z.dtype))
    return torch.stack([torch.stack(logit_rows), torch.stack(prob_rows)])


def sensitivity(
    model: Model,
    x: Tensor,
    eps: Sequence[float],
    *,
    n_directions: int = 8,
    seed: int = 0,
    chunk_size: int | None = None,
    probabilities: bool = False,
) -> Tensor:
    """Sensitivity of the logits to random perturbations of size ``ε``.

    ``s(ε) = (1 / (n·B)) Σ_b Σ_j ‖f(x_b + ε u_{jb}) − f(x_b)‖₂ / ε`` with ``n = n_directions``
    independent directions ``u_{jb}`` uniform on the unit sphere of ``R^D`` per sample
    (:func:`random_directions`; the same directions for every ``ε``).

    Parameters
    ----------
    model, x:
        Callable ``(B, *S) → (B, K)``, run in eval mode (modes restored after), and inputs
        ``(B, *S)``, float32 or float64.
    eps, n_directions, seed:
        Step sizes ``ε > 0``, directions per sample and their seed.
    chunk_size:
        Perturbed inputs per forward (default: all ``n·B`` of one ``ε`` at once).
    probabilities:
        Also the same sensitivity of ``softmax(f)``, from the same forwards (softmax in float64).

    Returns
    -------
    Tensor
        ``(len(eps),)`` in ``x``'s dtype; ``(2, len(eps))`` (logits, probabilities) with
        ``probabilities``.
    """
    x = check_batch(x, "x")
    eps_list = check_eps(eps)
    check_int(chunk_size, "chunk_size", allow_none=True)
    check_int(n_directions, "n_directions")
    b = x.shape[0]
    x = x.detach()
    u = random_directions(n_directions, b, x.shape[1:], seed=seed, dtype=x.dtype, device=x.device)
    with eval_mode(model):
        z0 = forward_chunked(model, x, chunk_size)
        base = x.repeat(n_directions, *([1] * (x.ndim - 1)))
        both = _mean_sensitivity(model, base, u, z0.repeat(n_directions, 1), eps_list, chunk_size)
    return both if probabilities else both[0]


def group_sensitivity(
    model: Model,
    x: Tensor,
    group: str | Group,
    eps: Sequence[float],
    *,
    chunk_size: int | None = None,
) -> Tensor:
    """Sensitivity of the logits along the directions towards transformed inputs.

    For every sample ``x`` and every ``g ≠ e``: ``u = (g·x − x) / ‖g·x − x‖``, and
    ``s(ε) = mean over the pairs (x, g) of ‖f(x + ε u) − f(x)‖₂ / ε``. Pairs with
    ``‖g·x − x‖ ≤ eps_mach · ‖x‖`` (``g`` fixes ``x``, e.g. a constant image) are skipped.
    The line leaves the orbit: this is not an invariance probe (the Lie derivative is).
    ``group`` is bound to ``x``'s sample shape; the other arguments are as in
    :func:`sensitivity`. Returns ``(len(eps),)`` in ``x``'s dtype, NaN when no pair is left
    (the group fixes every sample, or has only the identity).
    """
    x = check_batch(x, "x").detach()
    eps_list = check_eps(eps)
    check_int(chunk_size, "chunk_size", allow_none=True)
    group = get_group(group, x.shape[1:])
    b, n = x.shape[0], group.order
    with torch.no_grad():
        moved = group.orbit(x)[b:]  # (n−1)·B, group-major; empty for the trivial group
        base = x.repeat(n - 1, *[1] * (x.ndim - 1))
        diff = (moved - base).flatten(1)
        norm = diff.norm(dim=1)
        x_norm = x.flatten(1).norm(dim=1).repeat(n - 1)
        keep = norm > torch.finfo(x.dtype).eps * x_norm
    if not bool(keep.any()):
        return torch.full((len(eps_list),), float("nan"), dtype=x.dtype, device=x.device)
    u = (diff[keep] / norm[keep, None]).reshape(-1, *x.shape[1:])
    with eval_mode(model):
        z0 = forward_chunked(model, x, chunk_size)
        z0 = z0.repeat(n - 1, 1)[keep]
        return _mean_sensitivity(model, base[keep], u, z0, eps_list, chunk_size)[0]
