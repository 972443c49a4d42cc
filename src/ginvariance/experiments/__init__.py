"""The study behind ``ginv run``: train the four models, measure them, check the claims.

- :class:`StudyConfig` — data set, group, seeds, epochs, shifts, sample counts.
- :func:`run_study` — trains (or reuses) ``plain``, ``augmented``, ``regularized`` and
  ``weight-tied`` models per seed, measures them in distribution and under every shift,
  runs the spectral analysis, checks claims C1–C5 and writes ``DIR/results.json``.
- :func:`evaluate_claims` — the verdicts of C1–C5 from the measured numbers.
"""

from __future__ import annotations

from ginvariance.experiments.study import (
    CLAIMS,
    MODELS,
    REPORT_FILE,
    RESULTS_FILE,
    SALIENCY_FILE,
    StudyConfig,
    checkpoint_dir,
    evaluate_claims,
    load_results,
    load_saliency,
    plan_checkpoints,
    run_study,
)

__all__ = [
    "CLAIMS",
    "MODELS",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SALIENCY_FILE",
    "StudyConfig",
    "checkpoint_dir",
    "evaluate_claims",
    "load_results",
    "load_saliency",
    "plan_checkpoints",
    "run_study",
]
