"""Bridges to the tools people already train with; each imports its tool lazily.

* :mod:`ginvariance.integrations.lightning` — :class:`InvarianceMonitor`, a Lightning
  callback that logs ``pdi``, ``li``, ``sis`` at each validation epoch (needs
  ``pip install lightning``; importing :mod:`ginvariance` does not).
* :mod:`ginvariance.integrations.plots` — :func:`plot_layerwise`, the per-layer
  invariance / equivariance figure of :func:`ginvariance.metrics.layerwise.layerwise_invariance`.
"""

from __future__ import annotations

__all__: list[str] = []
