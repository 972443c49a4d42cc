"""The study behind ``ginv run``: train the models, measure them, judge the claims.

- :class:`StudyConfig` — data set, group, seeds, epochs, shifts, sample counts.
- :func:`run_study` — trains (or reuses) the models of :data:`MODELS` per seed, measures
  them, judges the claims and writes ``DIR/results.json``.
- :func:`evaluate_claims` (:mod:`~ginvariance.experiments.claims`) — each claim's verdict
  over seeds from its deciding quantity's 95% interval.
- :mod:`~ginvariance.experiments.stats` — mean, std and Student-t intervals over seeds.
"""

from __future__ import annotations

from ginvariance.experiments.claims import CLAIMS, evaluate_claims
from ginvariance.experiments.defaults import (
    MODELS,
    REPORT_FILE,
    RESULTS_FILE,
    SALIENCY_FILE,
    TRAINED_MODELS,
)
from ginvariance.experiments.study import run_study
from ginvariance.experiments.study_config import StudyConfig
from ginvariance.experiments.study_folder import (
    checkpoint_dir,
    load_results,
    load_saliency,
    plan_checkpoints,
)

__all__ = [
    "CLAIMS",
    "MODELS",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SALIENCY_FILE",
    "TRAINED_MODELS",
    "StudyConfig",
    "checkpoint_dir",
    "evaluate_claims",
    "load_results",
    "load_saliency",
    "plan_checkpoints",
    "run_study",
]
