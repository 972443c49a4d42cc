"""Bridges to the tools people already train with, each imported lazily: the Lightning callback
:class:`~ginvariance.integrations.lightning.InvarianceMonitor` (needs ``pip install lightning``)
and :func:`~ginvariance.integrations.plots.plot_layerwise`, the per-layer figure.
"""

from __future__ import annotations

__all__: list[str] = []
