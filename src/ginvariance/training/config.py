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
"""Training modes: ``plain`` (cross-entropy on the untransformed data), ``augmented`` (on inputs
moved by one random group element per sample and step), ``regularized`` (plus ``lam`` times the
:class:`~ginvariance.training.InvarianceRegularizer` penalty over each batch's orbit) and
``weight-tied`` (the G-invariant model by construction, no augmentation)."""

PENALTIES = ("logit", "js", "logit-normalized")

#: The weight ``λ`` of each penalty in the study (full orbit): ``"logit"`` at 1 (the
#: ``regularized`` row), ``"logit-normalized"`` as calibrated in docs/calibration.md.
CALIBRATED_LAM: dict[str, float] = {"logit": 1.0, "logit-normalized": 10.0}
ORBITS = ("full", "sample")
DTYPES = ("float32", "float64")

#: Fields a resumed run may change: training continues to the new number of epochs.
RESUMABLE_FIELDS = ("epochs",)


#: Epochs when none are given: those of the study's full run (``ginv run``), by which every
#: model's validation accuracy on digits has levelled off.
DEFAULT_EPOCHS = 40


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and so its final weights).

    Parameters
    ----------
    mode, model:
        One of :data:`MODES`, and a name for :func:`ginvariance.models.build_model`; ``None``
        means ``"weight-tied"`` in weight-tied mode, else ``"cnn"`` (1-D data: the 1-D variant).
    dataset, root, group:
        The data set for :func:`ginvariance.data.load_dataset`, its folder, and the group that
        augmentation, regularization, the weight-tied model and the orbit metrics use.
    epochs, batch_size, lr, weight_decay:
        Adam with a constant learning rate; ``epochs`` full passes over the training data.
    lam, penalty, orbit:
        Regularized mode: the penalty's weight ``λ`` (:data:`CALIBRATED_LAM`), kind and orbit
        (:class:`~ginvariance.training.InvarianceRegularizer`).
    seed, dtype, limit:
        Seeds the initialization and, with the epoch, each epoch's order and augmentation;
        ``"float32"`` or ``"float64"``; train on the first ``limit`` samples (``None``: all).
    """

    mode: str = "plain"
    model: str | None = None
    dataset: str = "digits"
    root: str | None = None
    group: str = "c4"
    epochs: int = DEFAULT_EPOCHS
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
        if self.model is not None:
            return self.model
        return "weight-tied" if self.mode == "weight-tied" else "cnn"

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first option that is out of range."""
        check_choice("mode", self.mode, MODES)
        check_choice("penalty", self.penalty, PENALTIES)
        check_choice("orbit", self.orbit, ORBITS)
        check_choice("dtype", self.dtype, DTYPES)
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
        check_int(self.epochs, "epochs")
        check_int(self.batch_size, "batch_size")
        if self.limit is not None:
            check_int(self.limit, "limit")
        check_seed(self.seed, "seed", "--seed 0")
        check_finite(self.lr, "lr", positive=True)
        check_finite(self.weight_decay, "weight_decay")
        check_finite(self.lam, "lam")

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
    """``"key theirs ≠ mine"``, sorted, for each key whose values differ between a stored
    record (a checkpoint's, a study's, a sweep's) and the one a run would write."""
    return [
        f"{key} {theirs.get(key)!r} ≠ {mine.get(key)!r}"
        for key in sorted(set(mine) | set(theirs))
        if key not in ignore and mine.get(key) != theirs.get(key)
    ]


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
