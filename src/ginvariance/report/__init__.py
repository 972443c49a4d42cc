"""The study's report: matplotlib figures (PNG) and a self-contained HTML page.

- :func:`render_report` — ``report.html`` with the claims table, the saliency grid (the
  paper's Figure 1), ``pdi``/``li``/``sis`` per model and shift, spectral decay and a table
  of every measure.
- :func:`check_results` — refuses incomplete results before anything is written.
"""

from __future__ import annotations

from ginvariance.report.html import FIGURES, REPORT_FILE, check_results, render_report

__all__ = ["FIGURES", "REPORT_FILE", "check_results", "render_report"]
