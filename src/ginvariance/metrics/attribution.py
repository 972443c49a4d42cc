"""Saliency invariance similarity under attribution methods beyond the vanilla gradient.

The map of ``u = g·x`` attributes the class ``c = argmax f(x)`` predicted on the untransformed
input, by captum (imported lazily), batched over the orbit ``(n·B, *S)``, mapped back by
``g⁻¹`` and compared by :func:`ginvariance.metrics.functional.sis_per_sample`:

``"gradient"`` (key ``sis``)
    ``∇_u f(u)[c]`` (captum ``Saliency``, signed): the maps of
    :func:`ginvariance.metrics.orbit_pass`.
``"integrated_gradients"`` (key ``sis_ig``)
    ``(u − u₀) ⊙ ∫₀¹ ∇f(u₀ + α(u − u₀))[c] dα``, ``u₀ = 0``, by Gauss–Legendre quadrature with
    ``n_steps`` nodes (captum rounds the weights to float32: ~1e-7 relative in float64). For an
    exact group (a permutation ``P_g``) and an invariant model ``∇f(P_g u) = P_g ∇f(u)`` and
    ``P_g 0 = 0``, so ``IG(g·x) = g·IG(x)``: an invariant model scores 1.
``"smoothgrad"`` (key ``sis_smoothgrad``)
    ``(1/m) Σ_j ∇f(u + ε_j)[c]``, ``ε_j ~ N(0, σ²)``, ``σ = noise_level · (max x − min x)``
    (captum ``NoiseTunnel(Saliency)``, signed), the noise from the global generator inside
    :func:`torch.random.fork_rng` seeded by ``seed``. The noise is not equivariant: even an
    invariant model scores slightly below 1.
a captum ``Attribution`` class or instance (key ``sis_<ClassName>``)
    ``cls(model).attribute(inputs, target=c, **kwargs)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ginvariance.checks import check_logits, import_extra
from ginvariance.errors import ConfigError
from ginvariance.groups import Group, get_group
from ginvariance.metrics.functional import saliency_nonzero, sis_from_saliency, warn_undefined_sis
from ginvariance.metrics.orbit import DEFAULT_MEMORY_BUDGET, check_inputs, chunk_size_for, eval_mode

#: Method names and the keys their ``sis`` is reported under.
METHOD_KEYS: dict[str, str] = {
    "gradient": "sis",
    "integrated_gradients": "sis_ig",
    "smoothgrad": "sis_smoothgrad",
}

#: Default number of quadrature nodes of integrated gradients (captum's default).
IG_STEPS = 50
#: Default number of noisy copies and relative noise level of SmoothGrad.
SMOOTHGRAD_SAMPLES = 16
SMOOTHGRAD_NOISE = 0.15

Method = str | type | Any


def method_key(method: Method) -> str:
    """The result key of ``method``: ``sis``, ``sis_ig``, ``sis_smoothgrad``, ``sis_<Class>``."""
    if isinstance(method, str):
        if method not in METHOD_KEYS:
            raise ConfigError(
                f"unknown attribution method {method!r}; choose one of "
                f"{', '.join(METHOD_KEYS)} or pass a captum Attribution class"
            )
        return METHOD_KEYS[method]
    cls = method if isinstance(method, type) else type(method)
    return f"sis_{cls.__name__}"


def _attribute(
    model: nn.Module,
    orbit: torch.Tensor,
    target: torch.Tensor,
    method: Method,
    stdev: float,
    options: Mapping[str, Any],
) -> torch.Tensor:
    """Attributions of ``target`` for every row of ``orbit`` ``(m, *S)`` → ``(m, *S)``."""
    attr = import_extra("captum.attr", "attribution", "attribution methods")
    kwargs = dict(options)
    if method == "gradient":
        kwargs.setdefault("abs", False)
        out = attr.Saliency(model).attribute(orbit, target=target, **kwargs)
    elif method == "integrated_gradients":
        kwargs.setdefault("n_steps", IG_STEPS)
        kwargs.setdefault("method", "gausslegendre")
        kwargs.setdefault("internal_batch_size", orbit.shape[0])
        kwargs.setdefault("baselines", torch.zeros_like(orbit))
        out = attr.IntegratedGradients(model).attribute(orbit, target=target, **kwargs)
    elif method == "smoothgrad":
        kwargs.setdefault("nt_samples", SMOOTHGRAD_SAMPLES)
        kwargs.setdefault("nt_samples_batch_size", 1)
        kwargs.setdefault("stdevs", stdev)
        kwargs.setdefault("abs", False)
        tunnel = attr.NoiseTunnel(attr.Saliency(model))
        out = tunnel.attribute(orbit, nt_type="smoothgrad", target=target, **kwargs)
    else:
        if isinstance(method, type):
            if not issubclass(method, attr.Attribution):
                raise ConfigError(
                    f"{method.__name__} is not a captum Attribution class; pass a method name "
                    f"({', '.join(METHOD_KEYS)}) or a subclass of captum.attr.Attribution"
                )
            method = method(model)
        elif not isinstance(method, attr.Attribution):
            raise ConfigError(
                f"attribution method must be a name ({', '.join(METHOD_KEYS)}), a captum "
                f"Attribution class or instance, got {type(method).__name__}"
            )
        out = method.attribute(orbit, target=target, **kwargs)
    if isinstance(out, tuple):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.shape != orbit.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"the attribution method returned {shape} for inputs {tuple(orbit.shape)}; use a "
            "method whose attributions have the input's shape (not a layer attribution)"
        )
    return out.detach()


def saliency_orbit(
    model: nn.Module,
    x: torch.Tensor,
    group: Group | str,
    method: Method = "gradient",
    *,
    seed: int = 0,
    noise_level: float = SMOOTHGRAD_NOISE,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    **kwargs: Any,
) -> torch.Tensor:
    """Attribution maps of every orbit element, mapped back by the inverse actions.

    Parameters
    ----------
    model, x, group:
        ``(B, *S)`` → ``(B, K)`` logits, run in eval mode (modes restored after); inputs
        ``(B, *S)``; the group (or its name), resolved to ``x``'s sample shape.
    method:
        ``"gradient"``, ``"integrated_gradients"``, ``"smoothgrad"`` or a captum
        ``Attribution`` class or instance (see the module docstring).
    seed:
        Seeds the global torch generator (inside ``fork_rng``) for methods that draw noise.
    noise_level:
        SmoothGrad's ``σ`` as a fraction of ``max x − min x`` (over all of ``x``).
    chunk_size, memory_budget:
        Samples per orbit chunk (default: from the memory budget, as in ``orbit_pass``).
    **kwargs:
        Passed to captum's ``attribute`` (e.g. ``n_steps``, ``nt_samples``,
        ``internal_batch_size``); they override the defaults above.

    Returns
    -------
    torch.Tensor
        ``(n, B, *S)``: ``out[i, b] = g_i⁻¹ · A(g_i · x_b)[c_b]`` with ``c_b = argmax f(x_b)``.
    """
    check_inputs(x)
    method_key(method)  # validates names early
    group = get_group(group, tuple(x.shape[1:]))
    n, sample_shape = group.order, tuple(x.shape[1:])
    chunk_size = chunk_size_for(group, sample_shape, x.dtype, memory_budget, chunk_size)
    if not (noise_level > 0):
        raise ConfigError(f"noise level must be positive, got {noise_level}")
    stdev = noise_level * float(x.max() - x.min()) or noise_level  # a constant x: the level
    devices = [x.device] if x.device.type == "cuda" else []
    parts = []
    with eval_mode(model), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for xb in x.detach().split(chunk_size):
            b = xb.shape[0]
            with torch.no_grad():
                z = model(xb)
            check_logits(z, b, finite=True)
            target = z.argmax(dim=1).repeat(n)  # c_b for every orbit block
            orbit = group.orbit(xb).detach().requires_grad_(True)
            with torch.enable_grad():
                maps = _attribute(model, orbit, target, method, stdev, kwargs)
            parts.append(group.inverse_orbit(maps).reshape(n, b, *sample_shape))
    return torch.cat(parts, dim=1)


def sis_attribution(
    model: nn.Module,
    x: torch.Tensor,
    group: Group | str,
    methods: Sequence[Method] = ("integrated_gradients", "smoothgrad"),
    *,
    seed: int = 0,
    options: Mapping[Any, Mapping[str, Any]] | None = None,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, float | None]:
    """``sis`` under each attribution method, each under its own key (see the module docstring).

    ``SIS_A(x) = (1/(n−1)) Σ_{g≠e} cos(g⁻¹·A(g·x), A(x))``, mean over samples, for each method
    ``A``; ``None`` (with an :class:`~ginvariance.errors.UndefinedMeasureWarning`) when every
    attribution map is zero, as ``sis`` is for a model with no input gradient.

    Parameters
    ----------
    methods:
        Method names and/or captum ``Attribution`` classes.
    options:
        Extra ``attribute`` keyword arguments per method, keyed by the method (its name or
        class), e.g. ``{"integrated_gradients": {"n_steps": 32}}``.
    seed, chunk_size, memory_budget:
        As in :func:`saliency_orbit`.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> sorted(sis_attribution(model, torch.rand(2, 4, 4), "c4", ["gradient"]))
    ['sis']
    """
    options = dict(options or {})
    if isinstance(methods, str):
        methods = (methods,)
    keys = [method_key(m) for m in methods]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"attribution methods repeat a key ({', '.join(keys)}); list each once")
    result: dict[str, float | None] = {}
    for method, key in zip(methods, keys, strict=True):
        maps = saliency_orbit(
            model,
            x,
            group,
            method,
            seed=seed,
            chunk_size=chunk_size,
            memory_budget=memory_budget,
            **dict(options.get(method, {})),
        )
        if not bool(saliency_nonzero(maps).any()):  # no input gradient: undefined
            result[key] = None
            warn_undefined_sis(key, stacklevel=2)
        else:
            result[key] = float(sis_from_saliency(maps))
    return result


__all__ = ["METHOD_KEYS", "method_key", "saliency_orbit", "sis_attribution"]
