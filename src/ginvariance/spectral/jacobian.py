"""Input–logit Jacobians ``J(x) = ∂z/∂x`` ``(B, K, D)`` and their singular-value spectrum.

A random unit direction ``u`` gives ``E ‖J u‖² = ‖J‖_F² / D``: for small steps the
random-direction sensitivity (:mod:`ginvariance.spectral.sensitivity`) is near ``‖J‖_F / √D``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ginvariance.checks import check_batch, check_int, check_logits
from ginvariance.errors import ConfigError
from ginvariance.spectral._common import Model, eval_mode

JacobianMethod = Literal["auto", "vmap", "backward"]

#: Samples per chunk when ``chunk_size`` is ``None``.
DEFAULT_CHUNK_SIZE = 256


def _jacobian_vmap(model: Model, x: Tensor) -> Tensor:
    """``(b, K, D)`` by ``vmap(jacrev(f))``, ``f`` mapping one sample to its ``K`` logits."""

    def single(xi: Tensor) -> Tensor:
        return model(xi.unsqueeze(0)).squeeze(0)

    jac = torch.func.vmap(torch.func.jacrev(single))(x)  # (b, K, *S)
    return jac.reshape(x.shape[0], jac.shape[1], -1)


def _jacobian_backward(model: Model, x: Tensor, n_classes: int) -> Tensor:
    """``(b, K, D)`` by ``K`` backward passes of ``Σ_b f(x_b)_k`` (samples do not interact)."""
    b = x.shape[0]
    xg = x.detach().requires_grad_(True)
    z = check_logits(model(xg), b)
    if not z.requires_grad:  # the logits do not depend on anything differentiable
        return x.new_zeros(b, n_classes, x[0].numel())
    rows = []
    for k in range(n_classes):
        (grad,) = torch.autograd.grad(
            z[:, k].sum(), xg, retain_graph=k < n_classes - 1, allow_unused=True
        )
        rows.append(torch.zeros_like(x) if grad is None else grad)
    return torch.stack(rows, dim=1).reshape(b, n_classes, -1)


def jacobian(
    model: Model, x: Tensor, *, chunk_size: int | None = None, method: JacobianMethod = "auto"
) -> Tensor:
    """Input–logit Jacobians of a batch, one ``K × D`` matrix per sample.

    Parameters
    ----------
    model, x:
        Any callable ``(B, *S) → (B, K)``, run in eval mode (each submodule's mode restored
        after), and inputs ``(B, *S)`` in the model's dtype.
    chunk_size:
        Samples per chunk (default :data:`DEFAULT_CHUNK_SIZE`); bounds the memory.
    method:
        ``"vmap"``: ``torch.func.vmap(torch.func.jacrev(f))`` over samples, falling back to
        ``"backward"`` where vmap fails (in-place operations, data-dependent control flow);
        ``"backward"``: ``K`` backward passes over the whole chunk (a loop over classes, not
        samples); ``"auto"`` (default): ``"backward"``, faster on the CPU.

    Returns
    -------
    Tensor
        ``J`` ``(B, K, D)``, ``D = prod(S)``, ``J[b, k, d] = ∂f(x_b)_k / ∂x_{b,d}``, detached,
        in ``x``'s dtype.

    Examples
    --------
    >>> lin = torch.nn.Linear(3, 2)
    >>> J = jacobian(lin, torch.randn(4, 3))
    >>> J.shape, bool(torch.allclose(J[0], lin.weight))
    (torch.Size([4, 2, 3]), True)
    """
    x = check_batch(x, "x")
    check_int(chunk_size, "chunk_size", allow_none=True)
    if method not in ("auto", "vmap", "backward"):
        raise ConfigError(
            f"unknown Jacobian method {method!r}; choose 'auto', 'vmap' or 'backward'"
        )
    chunk = chunk_size or DEFAULT_CHUNK_SIZE
    with eval_mode(model), torch.enable_grad():
        with torch.no_grad():
            n_classes = check_logits(model(x[:1]), 1).shape[1]
        parts = []
        for xc in x.detach().split(chunk):
            if method == "vmap":
                try:
                    jac = _jacobian_vmap(model, xc)
                except (RuntimeError, NotImplementedError):
                    jac = _jacobian_backward(model, xc, n_classes)
            else:
                jac = _jacobian_backward(model, xc, n_classes)
            parts.append(jac.detach())
    return torch.cat(parts, dim=0)


def jacobian_spectrum(
    model: Model, x: Tensor, *, chunk_size: int | None = None, method: JacobianMethod = "auto"
) -> dict[str, object]:
    """Mean singular values and Frobenius norm of the input–logit Jacobians.

    Per sample ``σ(x) = svdvals(J(x))`` (``min(K, D)`` values, descending) and ``‖J(x)‖_F``; and
    the spectrum's shape, which ``f → α·f`` leaves alone: ``σ_k(x)/σ_1(x)`` and the effective
    rank ``exp(−Σ_k p_k log p_k)``, ``p_k = σ_k / Σ_j σ_j`` (Roy & Vetterli 2007; 1 for rank one,
    ``min(K, D)`` for a flat spectrum), averaged over the samples whose Jacobian is not zero.

    Returns
    -------
    dict
        ``{"singular_values": [mean_x σ_1(x), …] (descending), "frobenius": mean_x ‖J(x)‖_F,
        "frobenius_std": population standard deviation of ‖J(x)‖_F over samples,
        "singular_value_ratios": [mean_x σ_k(x)/σ_1(x), …], "effective_rank": float}``
        (the last two ``None`` when every Jacobian is zero).
    """
    jac = jacobian(model, x, chunk_size=chunk_size, method=method)
    sv = torch.linalg.svdvals(jac)  # (B, min(K, D)), descending per sample
    fro = torch.linalg.matrix_norm(jac, ord="fro")  # (B,)
    svd = sv.double()
    alive = svd[:, 0] > 0
    ratios: list[float] | None = None
    effective_rank: float | None = None
    if bool(alive.any()):
        live = svd[alive]
        ratios = [float(v) for v in (live / live[:, :1]).mean(dim=0)]
        p = live / live.sum(dim=1, keepdim=True)
        entropy = -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum(dim=1)
        effective_rank = float(torch.exp(entropy).mean())
    return {
        "singular_values": [float(v) for v in sv.mean(dim=0)],
        "frobenius": float(fro.mean()),
        "frobenius_std": float(fro.std(correction=0)),
        "singular_value_ratios": ratios,
        "effective_rank": effective_rank,
    }
