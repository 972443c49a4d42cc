"""The ``spectral`` entry of a results file: spectrum, sensitivities, Lie derivative, scale.

Raw figures scale with the logits (``f → α·f + b``), so each is also reported divided by the
logit scale (keys ending in ``_normalized``; docs/definitions.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

from ginvariance.checks import check_batch
from ginvariance.devices import model_device
from ginvariance.errors import ConfigError, DataError
from ginvariance.groups import Group
from ginvariance.spectral._common import Model, check_eps, eval_mode, forward_chunked
from ginvariance.spectral.jacobian import JacobianMethod, jacobian_spectrum
from ginvariance.spectral.lie import lie_derivative_summary, transform_for
from ginvariance.spectral.power import saliency_power_spectrum
from ginvariance.spectral.sensitivity import group_sensitivity, sensitivity


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def logit_scale(model: Model, x: Tensor, *, chunk_size: int | None = None) -> float:
    """``sqrt((1/N) Σ_x ‖z(x) − μ‖²)``, ``z(x) = f(x)``, ``μ = (1/N) Σ_x z(x)`` (float64).

    The spread of the logits over ``x`` ``(N, *S)``; ``f → α·f + b`` multiplies it by ``|α|``.
    """
    x = check_batch(x, "x")
    with eval_mode(model):
        z = forward_chunked(model, x.detach(), chunk_size).double()
    return float((z - z.mean(dim=0)).square().sum(dim=1).mean().sqrt())


def _divide(values: object, scale: float) -> object:
    if values is None or not (scale > 0):
        return None if not isinstance(values, list) else [None] * len(values)
    if isinstance(values, list):
        return [None if v is None else _finite_or_none(v / scale) for v in values]
    return _finite_or_none(float(values) / scale)  # type: ignore[arg-type]


def spectral_analysis(
    model: Model,
    x: Tensor,
    group: str | Group,
    *,
    eps: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0),
    n_directions: int = 8,
    seed: int = 0,
    chunk_size: int | None = None,
    saliency: Tensor | None = None,
    method: JacobianMethod = "auto",
    transform: str | None = None,
) -> dict[str, object]:
    """Spectral decay of a model on a batch, as a JSON-ready dict.

    Parameters
    ----------
    model, x:
        Callable ``(B, *S) → (B, K)`` and in-distribution inputs ``(B, *S)``; ``D = prod(S)``.
    group:
        A group or its name, for the group-direction sensitivity and the default transform.
    eps, n_directions, seed:
        Step sizes, random directions per sample and their seed for :func:`sensitivity`.
    chunk_size:
        Samples per Jacobian chunk and perturbed inputs per forward.
    saliency:
        Optional saliency maps ``(B, *S)``; their :func:`saliency_power_spectrum` is added.
    transform:
        The Lie derivative's transformation (``"rotation"`` or ``"translation"``); ``None``: the
        one that goes with ``group`` (:func:`~ginvariance.spectral.lie.transform_for`), none
        for a group that has none.

    Returns
    -------
    dict
        The keys of docs/definitions.md's "Spectral decay", ``eps``, ``frobenius_std``,
        ``lie_transform`` and ``lie_derivative_generators``: one value per ``ε`` for the
        sensitivities; the ``lie_*`` keys ``None`` without a transform, the ``*_normalized`` ones
        when the logit scale is 0; ``jacobian_ratio = sensitivity_random[ε_min] / (frobenius /
        √D)``; ``saliency_power`` only when ``saliency`` is given.
    """
    x = check_batch(x, "x").to(model_device(model))  # the analysis runs where the model is
    if saliency is not None and saliency.shape[0] != x.shape[0]:
        raise DataError(
            f"saliency has {saliency.shape[0]} maps for {x.shape[0]} inputs; "
            "pass one saliency map per input"
        )
    eps_list = check_eps(eps)
    dim = x[0].numel()
    if transform is None:
        try:
            transform = transform_for(group, tuple(x.shape[1:]))
        except ConfigError:
            transform = None
    spectrum = jacobian_spectrum(model, x, chunk_size=chunk_size, method=method)
    logits_probs = sensitivity(
        model,
        x,
        eps_list,
        n_directions=n_directions,
        seed=seed,
        chunk_size=chunk_size,
        probabilities=True,
    )
    s_group = group_sensitivity(model, x, group, eps_list, chunk_size=chunk_size)
    scale = logit_scale(model, x, chunk_size=chunk_size)
    if transform is not None:
        lie = lie_derivative_summary(model, x, transform, chunk_size=chunk_size)
    else:
        lie = {"lie_transform": None, "lie_derivative": None, "lie_derivative_generators": None}
    random_list = [float(v) for v in logits_probs[0]]
    frobenius = float(spectrum["frobenius"])  # type: ignore[arg-type]
    i_min = min(range(len(eps_list)), key=eps_list.__getitem__)
    ratio = random_list[i_min] / (frobenius / math.sqrt(dim)) if frobenius > 0 else math.nan
    random = [_finite_or_none(v) for v in random_list]
    out: dict[str, object] = {
        **spectrum,
        "eps": eps_list,
        "sensitivity_random": random,
        "sensitivity_probability": [_finite_or_none(float(v)) for v in logits_probs[1]],
        "sensitivity_group": [_finite_or_none(float(v)) for v in s_group],
        "jacobian_ratio": _finite_or_none(ratio),
        **lie,
        "logit_scale": scale,
        "singular_values_normalized": _divide(spectrum["singular_values"], scale),
        "frobenius_normalized": _divide(frobenius, scale),
        "sensitivity_random_normalized": _divide(random, scale),
        "lie_derivative_normalized": _divide(lie["lie_derivative"], scale),
    }
    if saliency is not None:
        out["saliency_power"] = saliency_power_spectrum(saliency.to(x.device))
    return out


#: The keys of :func:`spectral_analysis` that scale with the logits (``f → α·f``), and
#: those that do not change.
SCALED_KEYS = (
    "singular_values",
    "frobenius",
    "sensitivity_random",
    "lie_derivative",
    "logit_scale",
)
SCALE_FREE_KEYS = (
    "singular_values_normalized",
    "frobenius_normalized",
    "sensitivity_random_normalized",
    "lie_derivative_normalized",
    "singular_value_ratios",
    "effective_rank",
)

__all__ = ["SCALED_KEYS", "SCALE_FREE_KEYS", "logit_scale", "spectral_analysis"]
