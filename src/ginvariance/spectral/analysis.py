"""The ``spectral`` entry of a results file: spectrum, sensitivities, saliency spectrum."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

from ginvariance.errors import DataError
from ginvariance.groups import Group
from ginvariance.spectral._common import Model, check_eps, check_inputs
from ginvariance.spectral.jacobian import JacobianMethod, jacobian_spectrum
from ginvariance.spectral.power import saliency_power_spectrum
from ginvariance.spectral.sensitivity import group_sensitivity, sensitivity


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


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
) -> dict[str, object]:
    """Spectral decay of a model on a batch, as a JSON-ready dict.

    Parameters
    ----------
    model, x:
        Callable ``(B, *S) → (B, K)`` and inputs ``(B, *S)``; ``D = prod(S)``.
    group:
        A group or its name, for the group-direction sensitivity.
    eps, n_directions, seed:
        Step sizes, random directions per sample and their seed for :func:`sensitivity`.
    chunk_size:
        Samples per Jacobian chunk and perturbed inputs per forward.
    saliency:
        Optional saliency maps ``(B, *S)``; their :func:`saliency_power_spectrum` is added.

    Returns
    -------
    dict
        ``singular_values``, ``frobenius``, ``frobenius_std`` (:func:`jacobian_spectrum`);
        ``eps``; ``sensitivity_random`` and ``sensitivity_group`` (one value per ``ε``;
        ``None`` where undefined, e.g. a group that fixes every sample);
        ``jacobian_ratio = sensitivity_random[ε_min] / (frobenius / √D)`` (about 0.8–1 for
        any model: a random unit direction sees ``‖J‖_F / √D`` on average; ``None`` when
        ``frobenius`` is 0); ``saliency_power`` when ``saliency`` is given.
    """
    x = check_inputs(x)
    eps_list = check_eps(eps)
    dim = x[0].numel()
    spectrum = jacobian_spectrum(model, x, chunk_size=chunk_size, method=method)
    s_random = sensitivity(
        model, x, eps_list, n_directions=n_directions, seed=seed, chunk_size=chunk_size
    )
    s_group = group_sensitivity(model, x, group, eps_list, chunk_size=chunk_size)
    random_list = [float(v) for v in s_random]
    frobenius = float(spectrum["frobenius"])  # type: ignore[arg-type]
    i_min = min(range(len(eps_list)), key=eps_list.__getitem__)
    ratio = random_list[i_min] / (frobenius / math.sqrt(dim)) if frobenius > 0 else math.nan
    out: dict[str, object] = {
        **spectrum,
        "eps": eps_list,
        "sensitivity_random": [_finite_or_none(v) for v in random_list],
        "sensitivity_group": [_finite_or_none(float(v)) for v in s_group],
        "jacobian_ratio": _finite_or_none(ratio),
    }
    if saliency is not None:
        if saliency.shape[0] != x.shape[0]:
            raise DataError(
                f"saliency has {saliency.shape[0]} maps for {x.shape[0]} inputs; "
                "pass one saliency map per input"
            )
        out["saliency_power"] = saliency_power_spectrum(saliency)
    return out
