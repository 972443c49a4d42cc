"""A sweep's grid and its trials: :class:`SweepConfig`, :class:`Trial`, :func:`plan_trials`.

``λ = 0`` trains the ``augmented`` model: the regularized objective at ``λ = 0``, without the
orbit pass its zero penalty would cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ginvariance.checks import check_int
from ginvariance.errors import ConfigError, GinvarianceError, ModelError
from ginvariance.experiments.defaults import (
    QUICK_N_MEASURE,
    check_seeds,
    check_training,
    default_epochs,
)

#: Networks whose invariance is learned, and so can be swept over ``λ``.
SWEEP_MODELS: tuple[str, ...] = ("cnn", "mlp")
#: The genuinely invariant reference trained once per (group, data set, seed).
REFERENCE = "weight-tied"


#: The fields of :class:`SweepConfig` that are tuples (lists in JSON).
_TUPLES = ("seeds", "lams", "groups", "datasets", "models", "shifts")


class SweepError(GinvarianceError, RuntimeError):
    """A sweep cannot run (Ray missing or unreachable) or some of its trials failed."""


def _names(what: str, values: Sequence[str]) -> tuple[str, ...]:
    out = tuple(values)
    if not out:
        raise ConfigError(f"give at least one {what}")
    for v in out:
        if not isinstance(v, str) or not v.strip() or v != v.strip():
            raise ConfigError(f"{what} {v!r} is not a name; e.g. --{what}s NAME1,NAME2")
    if len(set(out)) != len(out):
        raise ConfigError(f"{what}s {list(out)} repeat; give each {what} once")
    return out


@dataclass(frozen=True)
class SweepConfig:
    """The grid of a sweep and how each trial trains and measures.

    Parameters
    ----------
    seeds, lams, groups, datasets, models:
        The grid: every combination is one trial. ``lams`` are the weights ``λ ≥ 0`` of the
        invariance penalty (``0``: the augmented model); ``models`` are unconstrained
        networks of :data:`SWEEP_MODELS`.
    shifts:
        Distribution shifts measured beside the test split (:mod:`ginvariance.data.shifts`).
    reference:
        Also train the ``weight-tied`` reference once per (group, data set, seed).
    quick, epochs, limit, n_measure:
        Training epochs (``None``: :data:`FULL_EPOCHS`, or :data:`QUICK_EPOCHS` when
        ``quick``), training samples used (``None``: all) and test samples measured
        (``None``: all, or :data:`QUICK_N_MEASURE` when ``quick``).
    batch_size, lr, dtype, penalty, orbit:
        As in :class:`~ginvariance.training.TrainConfig`; ``orbit=None``:
        :func:`~ginvariance.experiments.defaults.default_orbit`.
    root, saliency:
        Folder of IDX files for the MNIST-format data sets; measure ``sis`` (one backward
        pass per orbit).
    """

    seeds: tuple[int, ...] = (0, 1)
    lams: tuple[float, ...] = (0.0, 0.1, 1.0, 10.0)
    groups: tuple[str, ...] = ("c4",)
    datasets: tuple[str, ...] = ("digits",)
    models: tuple[str, ...] = ("cnn",)
    shifts: tuple[str, ...] = ("uniform",)
    reference: bool = True
    quick: bool = False
    epochs: int | None = None
    limit: int | None = None
    n_measure: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    dtype: str = "float32"
    penalty: str = "logit"
    orbit: str | None = None
    root: str | None = None
    saliency: bool = True

    def validate(self) -> None:
        """Raise :class:`ConfigError` (or :class:`ModelError`) naming the first bad option."""
        check_seeds(tuple(self.seeds), "--seeds 0,1")
        lams = tuple(self.lams)
        if not lams:
            raise ConfigError("give at least one λ, e.g. --lams 0,1")
        check_training(self, lams)  # each λ a finite number ≥ 0, and the training options
        if len({float(v) for v in lams}) != len(lams):
            raise ConfigError(f"λ values {list(lams)} repeat; give each λ once")
        _names("group", self.groups)
        _names("dataset", self.datasets)
        _names("model", self.models)
        if self.shifts:
            _names("shift", self.shifts)
        for m in self.models:
            if m not in SWEEP_MODELS:
                hint = (
                    " (the weight-tied network is the reference every trial is compared with)"
                    if m == REFERENCE
                    else ""
                )
                raise ModelError(
                    f"model {m!r} cannot be swept over λ{hint}; choose from: "
                    f"{', '.join(SWEEP_MODELS)}"
                )
        check_int(self.n_measure, "n_measure", allow_none=True)

    def resolved(self) -> SweepConfig:
        """The configuration with defaults filled in (what ``sweep-config.json`` records)."""
        self.validate()
        return replace(
            self,
            seeds=tuple(int(s) for s in self.seeds),
            lams=tuple(float(v) for v in self.lams),
            groups=tuple(self.groups),
            datasets=tuple(self.datasets),
            models=tuple(self.models),
            shifts=tuple(self.shifts),
            epochs=default_epochs(self.epochs, self.quick),
            n_measure=self.n_measure or (QUICK_N_MEASURE if self.quick else None),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples as lists)."""
        return {k: list(v) if k in _TUPLES else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepConfig:
        """The inverse of :meth:`to_dict`."""
        kw: dict[str, Any] = {k: tuple(v) if k in _TUPLES else v for k, v in d.items()}
        return cls(**kw)


@dataclass(frozen=True)
class Trial:
    """One trial of the grid: which network, trained how, on what.

    ``mode`` is ``"augmented"`` (``λ = 0``), ``"regularized"`` (``λ > 0``) or
    ``"weight-tied"`` (the reference, ``lam`` is ``None``); ``key`` names its folder.
    """

    key: str
    mode: str
    model: str
    lam: float | None
    seed: int
    group: str
    dataset: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lam_text(lam: float) -> str:
    return format(float(lam), "g")


def plan_trials(config: SweepConfig) -> list[Trial]:
    """Every trial of the sweep, in a fixed order (references first per group and data set)."""
    config = config.resolved()
    trials: list[Trial] = []
    for dataset in config.datasets:
        for group in config.groups:
            for seed in config.seeds:
                if config.reference:
                    key = f"{dataset}_{group}_{REFERENCE}_seed{seed}"
                    trials.append(Trial(key, REFERENCE, REFERENCE, None, seed, group, dataset))
                for model in config.models:
                    for lam in config.lams:
                        mode = "augmented" if lam == 0 else "regularized"
                        key = f"{dataset}_{group}_{model}_lam{lam_text(lam)}_seed{seed}"
                        trials.append(Trial(key, mode, model, float(lam), seed, group, dataset))
    return trials


def check_grid(config: SweepConfig) -> list[dict[str, str]]:
    """Check every data set, group and model of the grid before any trial starts.

    Returns the weight-tied references that cannot be built, to be left out of the sweep
    (``{"group", "dataset", "reason"}`` each).
    """
    from ginvariance.data import load_dataset
    from ginvariance.data.shifts import get_shift
    from ginvariance.groups import get_group
    from ginvariance.models import build_model

    for name in config.shifts:
        get_shift(name)
    skipped: list[dict[str, str]] = []
    for dataset in config.datasets:
        test = load_dataset(dataset, "test", root=config.root)
        shape = tuple(test.sample_shape)
        for group in config.groups:
            resolved = get_group(group, shape)
            for model in config.models:
                build_model(model, shape, int(test.num_classes), group=resolved)
            if config.reference:
                try:
                    build_model(REFERENCE, shape, int(test.num_classes), group=resolved)
                except GinvarianceError as exc:
                    skipped.append({"group": group, "dataset": dataset, "reason": str(exc)})
    return skipped


__all__ = ["REFERENCE", "SWEEP_MODELS", "SweepConfig", "SweepError", "Trial", "plan_trials"]
