"""What the study trains and measures: :class:`StudyConfig` and how each of its models
trains."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from ginvariance.checks import check_int
from ginvariance.data.shifts import DEFAULT_SHIFTS
from ginvariance.errors import ConfigError
from ginvariance.experiments.defaults import (
    FULL_ORBIT_MAX_ORDER,
    QUICK_N_MEASURE,
    SEVERE_SHIFT,
    check_seeds,
    check_training,
    default_epochs,
    default_orbit,
    train_fields,
)

#: ``(training mode, penalty)`` of each trained model.
MODEL_TRAINING: dict[str, tuple[str, str]] = {
    "plain": ("plain", "logit"),
    "augmented": ("augmented", "logit"),
    "regularized": ("regularized", "logit"),
    "regularized-normalized": ("regularized", "logit-normalized"),
    "weight-tied": ("weight-tied", "logit"),
}
#: Orbit inputs measured at most (full study; quick) when a group is large: ``cyclic1d`` on
#: MNIST-1D has 40 elements, so its 1000 test samples would make 40 000 inputs per shift.
MAX_ORBIT_INPUTS = 16384
QUICK_MAX_ORBIT_INPUTS = 4096
#: Test samples of the Jacobian analysis (full study; quick).
FULL_N_SPECTRAL = 256
QUICK_N_SPECTRAL = 64
DEFAULT_EPS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)


@dataclass(frozen=True)
class StudyConfig:
    """What the study trains and measures.

    Parameters
    ----------
    dataset, root, group:
        The data set (:func:`ginvariance.data.load_dataset`), its folder, and the group
        (:func:`ginvariance.groups.get_group`).
    seeds:
        One study per seed; several seeds give mean ± std of every number.
    quick:
        Smaller defaults (fewer epochs, fewer test samples) for a run under a minute.
    shifts:
        The distribution shifts measured (:mod:`ginvariance.data.shifts`); must include
        ``uniform`` for claims C3 and C4.
    epochs:
        Training epochs; ``None``: :data:`FULL_EPOCHS`, or :data:`QUICK_EPOCHS` when quick.
    lam, lam_normalized:
        ``λ`` of the regularized model's logit penalty and of the ``regularized-normalized``
        model's scale-free one (``None``: :data:`~ginvariance.training.CALIBRATED_LAM`).
    n_measure:
        Test samples measured; ``None``: the whole test split, or :data:`QUICK_N_MEASURE`
        when quick; for a group of more than :data:`FULL_ORBIT_MAX_ORDER` elements at most
        ``MAX_ORBIT_INPUTS / |G|`` (quick: ``QUICK_MAX_ORBIT_INPUTS / |G|``) samples.
    n_spectral, eps, n_directions:
        Test samples of the Jacobian analysis (``None``: 256, or 64 when quick), step sizes
        of the sensitivity curves, and random unit directions per sample for the
        random-perturbation sensitivity.
    limit, batch_size, lr, dtype:
        Training samples used (``None``: all), batch size, Adam learning rate, float type.
    n_saliency:
        Test samples whose saliency maps over the orbit are kept for the report's grid.
    orbit:
        The regularized models' penalty runs over the ``"full"`` orbit or over the identity
        and one ``"sample"``d element per sample; ``None``: :func:`default_orbit`.
    """

    dataset: str = "digits"
    group: str = "c4"
    root: str | None = None
    seeds: tuple[int, ...] = (0,)
    quick: bool = False
    shifts: tuple[str, ...] = DEFAULT_SHIFTS
    epochs: int | None = None
    lam: float = 1.0
    lam_normalized: float | None = None
    n_measure: int | None = None
    n_spectral: int | None = None
    eps: tuple[float, ...] = DEFAULT_EPS
    n_directions: int = 8
    limit: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    dtype: str = "float32"
    n_saliency: int = 2
    orbit: str | None = None

    def resolved(self, order: int | None = None) -> StudyConfig:
        """The configuration with every default filled in (what ``results.json`` records).

        ``order``, the order of the group on the data set's samples, settles
        :attr:`orbit` and caps :attr:`n_measure` for large groups; without it they stay as
        they are.
        """
        self.validate()
        n_measure, orbit = self.n_measure, self.orbit
        if n_measure is None and self.quick:
            n_measure = QUICK_N_MEASURE
        if order is not None:
            orbit = orbit or default_orbit(order)
            if order > FULL_ORBIT_MAX_ORDER and self.n_measure is None:
                budget = (QUICK_MAX_ORBIT_INPUTS if self.quick else MAX_ORBIT_INPUTS) // order
                n_measure = max(1, min(n_measure or budget, budget))
        return replace(
            self,
            seeds=tuple(int(s) for s in self.seeds),
            shifts=tuple(str(s) for s in self.shifts),
            eps=tuple(float(e) for e in self.eps),
            epochs=default_epochs(self.epochs, self.quick),
            lam_normalized=self._lam_normalized(),
            n_measure=n_measure,
            orbit=orbit,
            n_spectral=self.n_spectral or (QUICK_N_SPECTRAL if self.quick else FULL_N_SPECTRAL),
        )

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first option that is out of range."""
        check_seeds(tuple(self.seeds), "--seeds 0,1,2")
        check_int(self.n_measure, "n_measure", allow_none=True)
        check_int(self.n_spectral, "n_spectral", allow_none=True)
        check_int(self.n_directions, "n_directions")
        check_int(self.n_saliency, "n_saliency")
        if not self.eps or any(
            not isinstance(e, int | float) or not math.isfinite(e) or e <= 0 for e in self.eps
        ):
            raise ConfigError(f"eps must be positive finite step sizes, got {self.eps!r}")
        if SEVERE_SHIFT not in self.shifts:
            raise ConfigError(
                f"the shifts must include {SEVERE_SHIFT!r} (claims C3 and C4 are judged on it); "
                "add it"
            )
        if len(set(self.shifts)) != len(tuple(self.shifts)):
            raise ConfigError(f"shifts {list(self.shifts)} repeat; give each shift once")
        for name in ("lam", "lam_normalized"):
            value = getattr(self, name)
            if value is None and name == "lam_normalized":
                continue
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite non-negative number, got {value!r}")
        check_training(self, (self.lam,))  # epochs, limit, batch size, lr, dtype, orbit

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def _lam_normalized(self) -> float:
        from ginvariance.training import CALIBRATED_LAM

        if self.lam_normalized is None:
            return float(CALIBRATED_LAM["logit-normalized"])
        return float(self.lam_normalized)

    def train_config(self, model: str, seed: int) -> Any:
        """The :class:`~ginvariance.training.TrainConfig` of one trained model of one seed."""
        from ginvariance.training import TrainConfig

        if model not in MODEL_TRAINING:
            raise ConfigError(
                f"model {model!r} is not trained by the study; choose one of "
                f"{', '.join(MODEL_TRAINING)}"
            )
        mode, penalty = MODEL_TRAINING[model]
        return TrainConfig(
            mode=mode,
            penalty=penalty,
            dataset=self.dataset,
            group=self.group,
            lam=self._lam_normalized() if penalty == "logit-normalized" else float(self.lam),
            seed=int(seed),
            orbit=self.orbit or "full",
            **train_fields(self),
        )


__all__ = ["MODEL_TRAINING", "StudyConfig"]
