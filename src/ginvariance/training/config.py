"""The configuration of one training run: what is trained, on what, and how.

A :class:`TrainConfig` is a frozen, JSON-serializable record. It is written into every
checkpoint, and a run is resumed only from a checkpoint whose configuration matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ginvariance.checks import check_finite, check_int
from ginvariance.errors import ConfigError
from ginvariance.seeds import check_seed

MODES = ("plain", "augmented", "regularized", "weight-tied")
"""Training modes.

``plain``
    cross-entropy on the untransformed training data.
``augmented``
    cross-entropy on inputs transformed by one random group element per sample per step.
``regularized``
    cross-entropy plus ``lam`` times the invariance penalty of
    :class:`~ginvariance.training.InvarianceRegularizer` over the orbit of each batch.
``weight-tied``
    cross-entropy on the weight-tied (G-invariant by construction) model, no augmentation.
"""

PENALTIES = ("logit", "js", "logit-normalized")

#: The weight ``λ`` of each penalty that the study uses (full orbit): ``"logit"`` at 1 (the
#: ``regularized`` row) and ``"logit-normalized"`` at 10, calibrated on digits/C4 (seed 0,
#: 60 epochs; the runs are in docs/calibration.md).
CALIBRATED_LAM: dict[str, float] = {"logit": 1.0, "logit-normalized": 10.0}
ORBITS = ("full", "sample")
DTYPES = ("float32", "float64")

# Fields that may differ between a checkpoint and the run that resumes it: training
# continues to the new number of epochs (the learning rate does not depend on it).
RESUMABLE_FIELDS = ("epochs",)


def default_model(mode: str) -> str:
    """The model a mode trains when none is named: ``weight-tied`` or ``cnn``."""
    return "weight-tied" if mode == "weight-tied" else "cnn"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and so its final weights).

    Parameters
    ----------
    mode:
        One of :data:`MODES`.
    model:
        A name for :func:`ginvariance.models.build_model`; ``None`` means ``"cnn"`` for
        plain, augmented and regularized, and ``"weight-tied"`` for weight-tied (on 1-D
        data the model builder picks the 1-D variant of the same name).
    dataset, root:
        The data set for :func:`ginvariance.data.load_dataset` and its folder.
    group:
        The group (name for :func:`ginvariance.groups.get_group`) that augmentation,
        regularization, the weight-tied model and the orbit metrics use.
    epochs, batch_size, lr, weight_decay:
        Adam with a constant learning rate; ``epochs`` full passes over the training data.
    lam, penalty, orbit:
        Regularized mode: the weight ``λ`` of the penalty, its kind (``"logit"``, ``"js"``
        or ``"logit-normalized"``; :data:`CALIBRATED_LAM` has a ``λ`` for each) and
        whether it runs over the full orbit or over the identity and one sampled element
        (see :class:`~ginvariance.training.InvarianceRegularizer`).
    seed:
        Seeds the model's initialization and, with the epoch, the data order and the
        augmentation of every epoch.
    dtype:
        ``"float32"`` or ``"float64"`` for weights and data.
    limit:
        Train on the first ``limit`` training samples only (quick runs and tests);
        ``None`` uses them all.
    """

    mode: str = "plain"
    model: str | None = None
    dataset: str = "digits"
    root: str | None = None
    group: str = "c4"
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    lam: float = 1.0
    penalty: str = "logit"
    orbit: str = "full"
    seed: int = 0
    dtype: str = "float32"
    limit: int | None = None

    @property
    def model_name(self) -> str:
        """The model that is trained: :attr:`model`, or the mode's default."""
        return self.model if self.model is not None else default_model(self.mode)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first option that is out of range."""
        _choice("mode", self.mode, MODES)
        _choice("penalty", self.penalty, PENALTIES)
        _choice("orbit", self.orbit, ORBITS)
        _choice("dtype", self.dtype, DTYPES)
        for name in ("dataset", "group"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{name} must be a non-empty name, got {value!r}")
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ConfigError(f"model must be a model name, got {self.model!r}")
        if self.mode == "weight-tied" and self.model_name != "weight-tied":
            raise ConfigError(
                f"mode 'weight-tied' trains the weight-tied model, not {self.model!r}; "
                "drop --model, or use --mode plain to train that model"
            )
        if self.root is not None and not isinstance(self.root, str):
            raise ConfigError(f"root must be a folder path, got {self.root!r}")
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        if self.limit is not None:
            _positive_int("limit", self.limit)
        check_seed(self.seed, "seed", "--seed 0")
        _finite("lr", self.lr, positive=True)
        _finite("weight_decay", self.weight_decay)
        _finite("lam", self.lam)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serializable dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build a config from :meth:`to_dict`'s output; unknown keys are an error."""
        if not isinstance(d, dict):
            raise ConfigError(f"a training configuration is a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown training option(s) {', '.join(unknown)}; "
                f"known options are {', '.join(sorted(known))}"
            )
        return cls(**d)

    def differences(self, other: TrainConfig, ignore: tuple[str, ...] = ()) -> list[str]:
        """Readable ``"field a ≠ b"`` items for each field (model resolved) that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        mine["model"], theirs["model"] = self.model_name, other.model_name
        return differences(mine, theirs, ignore)


def differences(
    mine: Mapping[str, Any], theirs: Mapping[str, Any], ignore: tuple[str, ...] = ()
) -> list[str]:
    """``"key theirs ≠ mine"`` for each key of either record whose values differ, sorted.

    The one comparison of configurations: a checkpoint's, a study's or a sweep's stored
    record (``theirs``) against the one a run would write (``mine``).
    """
    return [
        f"{key} {theirs.get(key)!r} ≠ {mine.get(key)!r}"
        for key in sorted(set(mine) | set(theirs))
        if key not in ignore and mine.get(key) != theirs.get(key)
    ]


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def _positive_int(name: str, value: object) -> None:
    check_int(value, name)


def _finite(name: str, value: object, positive: bool = False) -> None:
    check_finite(value, name, positive=positive)


__all__ = [
    "CALIBRATED_LAM",
    "DTYPES",
    "MODES",
    "ORBITS",
    "PENALTIES",
    "TrainConfig",
    "default_model",
    "differences",
]
