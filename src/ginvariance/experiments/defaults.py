"""Defaults and checks that the study (``ginv run``) and the sweep (``ginv sweep``) share.

One place for the numbers both read and that :mod:`ginvariance.report` may quote: the epochs
of a full and a quick run, the test samples of a quick run and the rule that picks the orbit
of the invariance penalty. The checks of the options both configurations hand to
:class:`~ginvariance.training.TrainConfig` are that class's own (:func:`check_training`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ginvariance.errors import ConfigError
from ginvariance.seeds import check_seed
from ginvariance.training.config import differences

#: Training epochs of a full run and of a quick one (``--quick``). On digits (C4, Adam 1e-3,
#: batch 64) every model's validation accuracy has levelled off by epoch 40; the quick run
#: stops at 10, where the augmented and regularized nets are a few points short of it.
FULL_EPOCHS = 40
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
    sets alike for every model it trains: ``root``, ``epochs``, ``batch_size``, ``lr``,
    ``dtype`` and ``limit``."""
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


def canonical(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists, keys strings, keys sorted)."""
    return json.loads(json.dumps(obj, sort_keys=True))


def check_seeds(seeds: Sequence[int], example: str) -> None:
    """At least one seed, each a non-negative integer, none repeated (``example``: the fix)."""
    if not seeds:
        raise ConfigError(f"give at least one seed, e.g. {example}")
    for s in seeds:
        check_seed(s, "seed", example)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {list(seeds)} repeat; give each seed once")


def check_positive(config: Any, names: Iterable[str], optional: bool = False) -> None:
    """Each field ``names`` of ``config`` is a positive integer (or ``None`` if ``optional``)."""
    for name in names:
        value = getattr(config, name)
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            none = " or None" if optional else ""
            raise ConfigError(f"{name} must be a positive integer{none}, got {value!r}")


def check_training(config: Any, lams: Iterable[float]) -> None:
    """Check the training options of a study or sweep ``config`` as a training run would.

    ``epochs``, ``limit``, ``batch_size``, ``lr``, ``dtype``, ``penalty``, ``orbit``
    (``None``: chosen by :func:`default_orbit`) and each ``λ`` of ``lams`` go through
    :meth:`TrainConfig.validate <ginvariance.training.TrainConfig.validate>`.
    """
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
    "FULL_EPOCHS",
    "FULL_ORBIT_MAX_ORDER",
    "QUICK_EPOCHS",
    "QUICK_N_MEASURE",
    "canonical",
    "check_positive",
    "check_seeds",
    "check_training",
    "default_epochs",
    "default_orbit",
    "differences",
    "train_fields",
]
