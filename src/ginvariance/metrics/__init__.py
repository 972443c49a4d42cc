"""Invariance measures: one orbit pass, pure functional maths, streaming classes, ``measure``."""

from __future__ import annotations

from ginvariance.metrics import functional
from ginvariance.metrics.functional import KEYS, invariance_suite
from ginvariance.metrics.measure import InvarianceReport, measure
from ginvariance.metrics.orbit import OrbitOutputs, eval_mode, iter_orbit_passes, orbit_pass
from ginvariance.metrics.streaming import (
    LI,
    PDI,
    SIS,
    Accuracy,
    InvarianceMetrics,
    LIWithin,
    OrbitAccuracy,
    OrbitConsistency,
)

__all__ = [
    "KEYS",
    "LI",
    "PDI",
    "SIS",
    "Accuracy",
    "InvarianceMetrics",
    "InvarianceReport",
    "LIWithin",
    "OrbitAccuracy",
    "OrbitConsistency",
    "OrbitOutputs",
    "eval_mode",
    "functional",
    "invariance_suite",
    "iter_orbit_passes",
    "measure",
    "orbit_pass",
]
