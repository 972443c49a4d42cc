"""Spectral decay: how strongly, and at which frequencies, a classifier reacts to its input.

Jacobian spectra (:mod:`.jacobian`), finite-difference sensitivities (:mod:`.sensitivity`),
the Lie derivative (:mod:`.lie`), saliency power spectra (:mod:`.power`) and all of them as
the ``spectral`` entry of a results file (:mod:`.analysis`); docs/definitions.md defines each.
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
