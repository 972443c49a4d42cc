"""The study's report (:func:`render_report`: ``report.html`` and its PNG figures, written
only once :func:`check_results` accepts the results) and the sweep's (:func:`render_sweep`)."""

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
