"""The result keys of the measures (docs/definitions.md) in report order, apart from
:mod:`ginvariance.metrics` so that reports and the command line need not load torchmetrics.
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
