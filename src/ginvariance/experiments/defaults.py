"""The one place for the constants, defaults and checks that the study (``ginv run``), the
sweep (``ginv sweep``) and :mod:`ginvariance.report` share."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ginvariance.errors import ConfigError
from ginvariance.seeds import check_seed
from ginvariance.training.config import DEFAULT_EPOCHS

#: The models of the study: the paper's four (Figure 1), a second regularized net whose
#: penalty shrinking the logits cannot lower, and the augmented net averaged over the group
#: at inference (frame averaging: invariant without weight-tying, at n forwards per input).
MODELS: tuple[str, ...] = (
    "plain",
    "augmented",
    "regularized",
    "regularized-normalized",
    "weight-tied",
    "symmetrized",
)
#: The models that are trained (``symmetrized`` wraps the trained ``augmented`` net).
TRAINED_MODELS: tuple[str, ...] = tuple(m for m in MODELS if m != "symmetrized")

#: Files of a study folder (beside ``checkpoints/``).
RESULTS_FILE = "results.json"
SALIENCY_FILE = "saliency.npz"
REPORT_FILE = "report.html"
CHECKPOINTS_DIR = "checkpoints"
#: Files and folders of a sweep folder; each trial writes ``trials/<key>/results.json``.
SWEEP_FILE = "sweep.json"
SWEEP_FIGURE = "sweep.png"
SWEEP_PAGE = "sweep.html"
CONFIG_FILE = "sweep-config.json"
TRIALS_DIR = "trials"
TUNE_DIR = "tune"
TRIAL_RESULTS = "results.json"

#: Confidence of every interval of the study and the sweep.
CONFIDENCE = 0.95
#: The shift on which claims C3 and C4 are judged (the severe shift).
SEVERE_SHIFT = "uniform"

#: Training epochs of a full run (the training default) and of a quick one (``--quick``).
FULL_EPOCHS = DEFAULT_EPOCHS
QUICK_EPOCHS = 10
#: Test samples measured in a quick run.
QUICK_N_MEASURE = 200
#: The penalty runs over the full orbit for groups of at most this order, and over the
#: identity and one sampled element above (``cyclic1d`` on MNIST-1D has 40 elements).
FULL_ORBIT_MAX_ORDER = 8


def default_epochs(epochs: int | None, quick: bool) -> int:
    """``epochs``, or :data:`QUICK_EPOCHS` / :data:`FULL_EPOCHS` when it is ``None``."""
    return (QUICK_EPOCHS if quick else FULL_EPOCHS) if epochs is None else epochs


def train_fields(config: Any) -> dict[str, Any]:
    """The :class:`~ginvariance.training.TrainConfig` fields that a study or sweep ``config``
    sets alike for every model it trains."""
    return {
        "root": config.root,
        "epochs": default_epochs(config.epochs, config.quick),
        "batch_size": config.batch_size,
        "lr": config.lr,
        "dtype": config.dtype,
        "limit": config.limit,
    }


def default_orbit(order: int) -> str:
    """``"full"`` for groups of at most :data:`FULL_ORBIT_MAX_ORDER` elements, else ``"sample"``."""
    return "full" if order <= FULL_ORBIT_MAX_ORDER else "sample"


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_seeds(seeds: Sequence[int], example: str) -> None:
    """At least one seed, each a non-negative integer, none repeated (``example``: the fix)."""
    if not seeds:
        raise ConfigError(f"give at least one seed, e.g. {example}")
    for s in seeds:
        check_seed(s, "seed", example)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {list(seeds)} repeat; give each seed once")


def check_training(config: Any, lams: Iterable[float]) -> None:
    """Check the training options of a study or sweep ``config`` as a training run would:
    each ``λ`` of ``lams`` with the options through :meth:`TrainConfig.validate
    <ginvariance.training.TrainConfig.validate>` (``orbit=None``: :func:`default_orbit`)."""
    from ginvariance.training import TrainConfig

    if config.orbit not in (None, "full", "sample"):
        raise ConfigError(f"orbit must be 'full' or 'sample', got {config.orbit!r}")
    for lam in lams:
        TrainConfig(
            mode="regularized",
            lam=lam,
            penalty=getattr(config, "penalty", "logit"),
            orbit=config.orbit or "full",
            **train_fields(config),
        ).validate()


__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIDENCE",
    "CONFIG_FILE",
    "FULL_EPOCHS",
    "FULL_ORBIT_MAX_ORDER",
    "MODELS",
    "QUICK_EPOCHS",
    "QUICK_N_MEASURE",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SALIENCY_FILE",
    "SEVERE_SHIFT",
    "SWEEP_FIGURE",
    "SWEEP_FILE",
    "SWEEP_PAGE",
    "TRAINED_MODELS",
    "TRIALS_DIR",
    "TRIAL_RESULTS",
    "TUNE_DIR",
    "check_seeds",
    "check_training",
    "default_epochs",
    "default_orbit",
    "read_json",
    "train_fields",
]
