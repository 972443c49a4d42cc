"""The result keys of the invariance measures (docs/definitions.md), in the order reports show them.

Kept apart from :mod:`ginvariance.metrics` so that reports, sweeps and the command line can
name the measures without loading the measuring code (torchmetrics).
"""

from __future__ import annotations

#: Every measure a full suite reports.
MEASURE_KEYS: tuple[str, ...] = (
    "accuracy",
    "orbit_accuracy",
    "orbit_consistency",
    "pdi",
    "li",
    "li_within",
    "sis",
)

__all__ = ["MEASURE_KEYS"]
