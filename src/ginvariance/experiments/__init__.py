"""The study behind ``ginv run`` (:func:`run_study`, :class:`StudyConfig`,
:func:`evaluate_claims`) and the sweep behind ``ginv sweep``
(:mod:`~ginvariance.experiments.sweep`)."""

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
