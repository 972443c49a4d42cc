"""The study's report: matplotlib figures (PNG) and a self-contained HTML page.

- :func:`render_report` — ``report.html`` with the claims table, the saliency grid (the
  paper's Figure 1), ``pdi``/``li``/``sis`` per model and shift, spectral decay and a table
  of every measure.
- :func:`check_results` — refuses incomplete results before anything is written.
- :func:`render_sweep` — ``sweep.png`` and ``sweep.html`` of a sweep over ``λ``.
"""

from __future__ import annotations

from ginvariance.report.html import FIGURES, REPORT_FILE, check_results, render_report
from ginvariance.report.sweep_page import render_sweep, sweep_figure

__all__ = [
    "FIGURES",
    "REPORT_FILE",
    "check_results",
    "render_report",
    "render_sweep",
    "sweep_figure",
]
