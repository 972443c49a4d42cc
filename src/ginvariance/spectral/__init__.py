"""Spectral decay: how strongly, and at which frequencies, a classifier reacts to its input.

- :func:`jacobian` / :func:`jacobian_spectrum`: input–logit Jacobians ``J(x) = ∂z/∂x``
  ``(B, K, D)``, their mean singular values and Frobenius norm.
- :func:`sensitivity`: ``E_x E_u ‖f(x + εu) − f(x)‖ / ε`` for ``u`` uniform on the unit
  sphere of ``R^D``; :func:`group_sensitivity`: the same along ``(g·x − x) / ‖g·x − x‖``.
- :func:`lie_derivative`: ``‖d/dt f(T_t x)|_{t=0}‖`` along a continuous rotation or
  sub-pixel translation, by forward-mode autodiff: the local invariance probe.
- :func:`logit_scale`: the spread of the in-distribution logits, which every raw figure
  above scales with; :func:`spectral_analysis` also reports each divided by it.
- :func:`saliency_power_spectrum`: radial power spectrum of saliency maps and the fraction
  of their energy above half the Nyquist frequency.
- :func:`spectral_analysis`: all of it as the JSON-ready ``spectral`` entry.

Jacobians default to ``K`` backward passes over the batch, faster on the CPU than
``vmap(jacrev)`` (``benchmarks/spectral_cost.py`` measures both; the README has the figures).
"""

from __future__ import annotations

from ginvariance.spectral.analysis import (
    SCALE_FREE_KEYS,
    SCALED_KEYS,
    logit_scale,
    spectral_analysis,
)
from ginvariance.spectral.jacobian import DEFAULT_CHUNK_SIZE, jacobian, jacobian_spectrum
from ginvariance.spectral.lie import (
    TRANSFORMS,
    lie_derivative,
    rotate,
    rotation_generator,
    transform_for,
    translate,
    translation_generator,
)
from ginvariance.spectral.power import (
    HIGH_FREQUENCY_CUTOFF,
    radial_frequency,
    saliency_power_spectrum,
)
from ginvariance.spectral.sensitivity import group_sensitivity, random_directions, sensitivity

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "HIGH_FREQUENCY_CUTOFF",
    "SCALED_KEYS",
    "SCALE_FREE_KEYS",
    "TRANSFORMS",
    "group_sensitivity",
    "jacobian",
    "jacobian_spectrum",
    "lie_derivative",
    "logit_scale",
    "radial_frequency",
    "random_directions",
    "rotate",
    "rotation_generator",
    "saliency_power_spectrum",
    "sensitivity",
    "spectral_analysis",
    "transform_for",
    "translate",
    "translation_generator",
]
