"""Invariance measures: one orbit pass, pure functional maths, streaming classes, ``measure``."""

from __future__ import annotations

from ginvariance.metrics import functional
from ginvariance.metrics.functional import KEYS, OrbitStatistics, invariance_suite
from ginvariance.metrics.measure import InvarianceReport, measure
from ginvariance.metrics.orbit import OrbitOutputs, eval_mode, iter_orbit_passes, orbit_pass
from ginvariance.metrics.streaming import (
    InvarianceMetrics,
    LogitInvariance,
    OrbitAccuracy,
    OrbitConsistency,
    PredictiveDistributionInvariance,
    SaliencyInvarianceSimilarity,
    UntransformedAccuracy,
    WithinOrbitLogitVariance,
    deprecated_name,
)


def __getattr__(name: str) -> type:  # PDI, LI, LIWithin, SIS, Accuracy: deprecated
    return deprecated_name(__name__, name)


__all__ = [
    "KEYS",
    "InvarianceMetrics",
    "InvarianceReport",
    "LogitInvariance",
    "OrbitAccuracy",
    "OrbitConsistency",
    "OrbitOutputs",
    "OrbitStatistics",
    "PredictiveDistributionInvariance",
    "SaliencyInvarianceSimilarity",
    "UntransformedAccuracy",
    "WithinOrbitLogitVariance",
    "eval_mode",
    "functional",
    "invariance_suite",
    "iter_orbit_passes",
    "measure",
    "orbit_pass",
]
