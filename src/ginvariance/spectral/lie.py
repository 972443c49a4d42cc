"""The Lie derivative: how fast the logits change along a continuous transformation.

For transformations ``T_t`` with ``T_0 = id``: ``L f(x) = d/dt f(T_t x)|_{t=0} = J(x) · v(x)``,
``v(x) = d/dt T_t x|_{t=0}`` (Gruver, Finzi, Goldblum & Wilson, ICLR 2023), computed by
forward-mode autodiff; ``‖L f(x)‖`` is 0 for a model invariant to every small transformation.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from ginvariance.checks import check_batch, check_int, check_logits
from ginvariance.errors import ConfigError, GroupActionError, ModelError
from ginvariance.groups import Group
from ginvariance.spectral._common import Model, eval_mode

TRANSFORMS = ("rotation", "translation")

#: Keys' cubic convolution parameter (``a = −1/2``: the interpolant reproduces quadratics).
CUBIC_A = -0.5


def transform_for(group: Group | str | None, sample_shape: Sequence[int]) -> str:
    """The continuous transformation that goes with a group: ``translation`` for the cyclic
    shifts (``shift``, ``cyclic1d``) and for 1-D signals, ``rotation`` for the other built-in
    image groups (``c4``, ``d4``, ``flip``, ``rotation-N``).

    Raises
    ------
    ConfigError
        A user-defined group: name the transformation (``transform="rotation"``).
    """
    name = group if isinstance(group, str) else getattr(group, "name", None)
    key = str(name).strip().lower() if name is not None else ""
    if key.startswith(("shift", "cyclic1d")) or _is_signal(sample_shape):
        return "translation"
    if key in ("c4", "d4", "flip") or key.startswith("rotation-"):
        return "rotation"
    raise ConfigError(
        f"no continuous transformation is known for group {name!r}; pass transform="
        "'rotation' or 'translation'"
    )


def _is_signal(sample_shape: Sequence[int]) -> bool:
    shape = tuple(int(s) for s in sample_shape)
    return len(shape) == 1 or (len(shape) >= 2 and shape[-2] == 1)


def _cubic(s: Tensor) -> Tensor:
    """Keys' cubic convolution kernel ``W(s)`` (support ``|s| < 2``)."""
    a = CUBIC_A
    s = s.abs()
    near = ((a + 2) * s - (a + 3)) * s * s + 1
    far = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return torch.where(s <= 1, near, torch.where(s < 2, far, torch.zeros_like(s)))


def _taps(pos: Tensor) -> tuple[Tensor, Tensor]:
    """The four sample indices ``⌊p⌋−1..⌊p⌋+2`` and their weights ``(4, *pos.shape)``."""
    base = torch.floor(pos)
    offsets = torch.arange(-1, 3, dtype=pos.dtype, device=pos.device).view(4, *[1] * pos.ndim)
    index = base.unsqueeze(0) + offsets
    return index.long(), _cubic(pos.unsqueeze(0) - index)


def _centred_grid(x: Tensor, what: str, batched: bool = False) -> tuple[Tensor, Tensor]:
    """Pixel offsets ``(H, 1)``, ``(1, W)`` from the centre of images ``x``; raise for others."""
    if x.ndim < (3 if batched else 2) or min(x.shape[-2:]) < 2:
        raise GroupActionError(
            f"{what} rotates images (…, H, W) with H, W ≥ 2, got samples of shape "
            f"{tuple(x.shape[1:])}; use transform='translation' for 1-D signals"
        )
    height, width = x.shape[-2:]
    u = torch.arange(height, dtype=x.dtype, device=x.device) - (height - 1) / 2
    v = torch.arange(width, dtype=x.dtype, device=x.device) - (width - 1) / 2
    return u.view(-1, 1), v.view(1, -1)


def rotate(x: Tensor, angle: float | Tensor) -> Tensor:
    """Rotate images ``(…, H, W)`` by ``angle`` radians about their centre.

    Output pixel ``p`` takes the cubic-convolution interpolant of ``x`` at ``R(−angle) p``
    (zero outside the image), so ``rotate(x, 0) = x`` exactly and the result is smooth
    (C¹) in ``angle``. For tests and figures: the Lie derivative uses its generator.
    """
    u, v = _centred_grid(x, "rotate")
    height, width = x.shape[-2:]
    angle = torch.as_tensor(angle, dtype=x.dtype, device=x.device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rows = cos * u + sin * v + (height - 1) / 2  # R(−t) p, back in pixel coordinates
    cols = -sin * u + cos * v + (width - 1) / 2
    r_index, r_weight = _taps(rows)  # (4, H, W)
    c_index, c_weight = _taps(cols)
    out = torch.zeros_like(x)
    for a in range(4):
        r_ok = (r_index[a] >= 0) & (r_index[a] < height)
        for b in range(4):
            ok = r_ok & (c_index[b] >= 0) & (c_index[b] < width)
            w = torch.where(ok, r_weight[a] * c_weight[b], torch.zeros_like(r_weight[a]))
            values = x[..., r_index[a].clamp(0, height - 1), c_index[b].clamp(0, width - 1)]
            out = out + w * values
    return out


def translate(x: Tensor, shift: float | Tensor, dim: int = -1) -> Tensor:
    """Cyclic sub-pixel translation of ``x`` by ``shift`` pixels along axis ``dim``.

    ``out[i] = x̃(i − shift)``, ``x̃`` the periodic cubic-convolution interpolant of ``x``
    along ``dim``; ``translate(x, 1) = roll(x, 1)`` exactly.
    """
    length = x.shape[dim]
    moved = x.movedim(dim, -1)
    pos = torch.arange(length, dtype=x.dtype, device=x.device) - torch.as_tensor(
        shift, dtype=x.dtype, device=x.device
    )
    index, weight = _taps(pos)  # (4, L)
    out = sum(weight[k] * moved[..., index[k] % length] for k in range(4))
    return out.movedim(-1, dim)  # type: ignore[union-attr]


def _central(x: Tensor, dim: int, periodic: bool) -> Tensor:
    """``(x[i+1] − x[i−1]) / 2`` along ``dim``; zeros outside unless ``periodic``."""
    if periodic:
        return 0.5 * (x.roll(-1, dim) - x.roll(1, dim))
    pad = torch.zeros_like(x.narrow(dim, 0, 1))
    padded = torch.cat([pad, x, pad], dim=dim)
    n = x.shape[dim]
    return 0.5 * (padded.narrow(dim, 2, n) - padded.narrow(dim, 0, n))


def rotation_generator(x: Tensor) -> Tensor:
    """``d/dt rotate(x, t)|_{t=0} = (p_c − c_c) ∂_r x − (p_r − c_r) ∂_c x``, ``c`` the centre.

    ``∂`` is the interpolant's derivative at the pixel centres, the central difference
    ``(x[i+1] − x[i−1]) / 2`` with zeros outside.
    """
    u, v = _centred_grid(x, "the rotation")
    return v * _central(x, -2, periodic=False) - u * _central(x, -1, periodic=False)


def translation_generator(x: Tensor, dim: int = -1) -> Tensor:
    """``d/dt translate(x, t, dim)|_{t=0} = −(x[i+1] − x[i−1]) / 2`` (cyclic)."""
    return -_central(x, dim, periodic=True)


def generators(x: Tensor, transform: str) -> list[Tensor]:
    """The tangent ``v(x)`` of each one-parameter transformation of ``transform``."""
    if transform == "rotation":
        return [rotation_generator(x)]
    if transform == "translation":
        if x.ndim == 2 or _is_signal(x.shape[1:]):
            return [translation_generator(x, -1)]
        return [translation_generator(x, -2), translation_generator(x, -1)]
    raise ConfigError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")


#: Forward-mode levels are global to the process (PyTorch refuses a second level while one
#: is open, in any thread), so threads that differentiate at once take turns.
_DUAL_LEVEL = threading.Lock()


def _jvp(model: Model, x: Tensor, tangent: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(x), J(x) · tangent)`` by forward-mode autodiff (dual tensors: one pass)."""
    try:
        with _DUAL_LEVEL, fwAD.dual_level():
            out = model(fwAD.make_dual(x, tangent))
            if not isinstance(out, Tensor):
                check_logits(out, x.shape[0])
            primal, dz = fwAD.unpack_dual(out)
    except (RuntimeError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        try:
            check_logits(model(x), x.shape[0])
        except (RuntimeError, NotImplementedError, ValueError, TypeError) as plain:
            raise ModelError(
                f"the model fails on inputs of shape {tuple(x.shape)} "
                f"({str(plain).strip()[:160]}); pass inputs of the shape it was built for"
            ) from None
        raise ModelError(
            f"the model cannot be differentiated in forward mode along the transformation "
            f"({first[:160]}); use operations with forward-mode support (torch.func.jvp)"
        ) from None
    z = check_logits(primal, x.shape[0])
    return z, torch.zeros_like(z) if dz is None else dz


def lie_derivative(
    model: Model, x: Tensor, transform: str = "rotation", *, chunk_size: int | None = None
) -> Tensor:
    """Norms of the Lie derivative of the logits, per sample and generator.

    ``‖d/dt f(T_t x)|_{t=0}‖₂ = ‖J(x) v_k(x)‖₂`` for each generator ``v_k`` of ``transform``
    (:func:`generators`: ``"rotation"`` for images or ``"translation"``), by forward-mode
    autodiff over chunks of ``chunk_size`` samples (default: the whole batch). ``model`` runs in
    eval mode (modes restored after); ``x`` ``(B, *S)``, float32 or float64. Returns
    ``(B, n_generators)`` in ``x``'s dtype.

    Raises
    ------
    GroupActionError
        A rotation of inputs that are not images.
    ModelError
        A model without forward-mode support, or one whose outputs change along the
        transformation while its derivative is 0 (it detaches its input).
    """
    x = check_batch(x, "x").detach()
    check_int(chunk_size, "chunk_size", allow_none=True)
    if transform == "rotation":
        _centred_grid(x, "transform 'rotation'", batched=True)
    chunk = chunk_size or x.shape[0]
    columns = []
    with eval_mode(model), torch.no_grad():
        for tangent in generators(x, transform):
            parts = []
            for xc, tc in zip(x.split(chunk), tangent.split(chunk), strict=True):
                z, dz = _jvp(model, xc, tc)
                if not bool(dz.any()) and bool(tc.any()):
                    _check_detached(model, xc, tc, z)
                parts.append(dz.reshape(dz.shape[0], -1).norm(dim=1))
            columns.append(torch.cat(parts))
    return torch.stack(columns, dim=1)


def _check_detached(model: Model, x: Tensor, tangent: Tensor, z: Tensor) -> None:
    """Raise :class:`ModelError` if ``f`` moves along ``tangent`` although its jvp is 0."""
    step = 0.05 * (float(x.abs().max()) or 1.0) / float(tangent.abs().max())
    moved = check_logits(model(x + step * tangent), x.shape[0])
    change = float((moved - z).abs().max())
    if change > 1e3 * torch.finfo(z.dtype).eps * (float(z.abs().max()) or 1.0):
        raise ModelError(
            "the model's logits change along the transformation but their derivative is 0: "
            "its forward detaches the input (.detach(), torch.no_grad(), numpy); keep the "
            "input in the autograd graph"
        )


def lie_derivative_summary(
    model: Model, x: Tensor, transform: str, *, chunk_size: int | None = None
) -> dict[str, object]:
    """``{"transform", "lie_derivative"}``: the mean over samples and generators of
    :func:`lie_derivative`, and its per-generator means ``"lie_derivative_generators"``."""
    norms = lie_derivative(model, x, transform, chunk_size=chunk_size).double()
    value = float(norms.mean())
    return {
        "lie_transform": transform,
        "lie_derivative": value if math.isfinite(value) else None,
        "lie_derivative_generators": [float(v) for v in norms.mean(dim=0)],
    }


__all__ = [
    "CUBIC_A",
    "TRANSFORMS",
    "generators",
    "lie_derivative",
    "lie_derivative_summary",
    "rotate",
    "rotation_generator",
    "transform_for",
    "translate",
    "translation_generator",
]
