"""Streaming invariance measures: ``torchmetrics.Metric`` subclasses whose states are the
float64 sums of :class:`~ginvariance.metrics.functional.OrbitStatistics`, so ``update`` over
any split of the data then ``compute`` equals the functional value on the whole of it."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from ginvariance.devices import check_precision, model_device
from ginvariance.errors import ConfigError
from ginvariance.groups import Group, get_group
from ginvariance.metrics.functional import (
    KEYS,
    OrbitStatistics,
    finalize,
    merge_statistics,
    shift_frame,
    statistics,
)
from ginvariance.metrics.orbit import Model
from ginvariance.seeds import check_seed

#: The states a ``max`` reduces across processes; every other statistic is summed.
_MAX_STATES = ("order", "logit_eps", "li_shift")
_SUM_STATES = tuple(f.name for f in fields(OrbitStatistics) if f.name not in _MAX_STATES)


class InvarianceMetrics(Metric):
    """All invariance measures of a model under a group, accumulated over batches.

    Parameters
    ----------
    model:
        The classifier, ``(B, *S)`` → ``(B, K)`` logits; not registered as a submodule (the
        metric's ``state_dict`` holds statistics only). The states live on its device; each
        batch ``x`` (and ``y``) is moved there chunk by chunk.
    group, saliency, chunk_size, memory_budget, precision:
        As in :func:`ginvariance.measure`.
    shift, shift_reference, seed:
        Measure under a distribution shift (a name or a :class:`~ginvariance.data.shifts.Shift`):
        each batch is shifted with the parameters of ``shift_reference`` (a
        :class:`~ginvariance.data.shifts.ShiftReference`, required: a stream cannot look
        ahead) and the randomness of ``(seed, global sample index)``; the index is the position
        in the stream of ``update`` calls since the last ``reset``, or ``update(...,
        indices=...)`` (for sharded data). The result equals :func:`ginvariance.measure`'s.

    ``update(x, y=None, indices=None)`` adds a batch.

    Examples
    --------
    >>> import torch
    >>> metric = InvarianceMetrics(torch.nn.Flatten(), "c4", saliency=False)
    >>> metric.update(torch.ones(3, 2, 2))
    >>> float(metric.compute()["pdi"])
    0.0
    """

    is_differentiable = False
    higher_is_better: bool | None = None
    full_state_update = False
    keys: tuple[str, ...] = KEYS

    def __init__(
        self,
        model: Model,
        group: Group | str,
        *,
        saliency: bool = True,
        chunk_size: int | None = None,
        memory_budget: int | None = None,
        shift: Any = None,
        shift_reference: Any = None,
        seed: int = 0,
        precision: str = "fp32",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        device = model_device(model)  # one device, or a one-line DeviceError
        self._precision = check_precision(precision, device)
        object.__setattr__(self, "_model", model)
        self._group = get_group(group)
        self.saliency = saliency
        self.chunk_size = chunk_size
        self.memory_budget = memory_budget
        self._shift = None
        if shift is not None:
            from ginvariance.data.shifts import ShiftReference, get_shift

            if not isinstance(shift_reference, ShiftReference):
                raise ConfigError(
                    "a streaming measure under a shift needs shift_reference="
                    "ShiftReference.from_batches(...) of the reference set (e.g. the training "
                    "split)"
                )
            check_seed(seed, "seed", "seed=0")
            self._shift = get_shift(shift)
        self.shift_reference = shift_reference
        self.seed = seed
        self._seen = 0
        # li_shift, the centre of li's sums (functional.orbit_statistics), is set by the first
        # batch and re-centred on 0 before states are summed across processes (_sync_dist)
        for name in (*_SUM_STATES, *_MAX_STATES):
            reduce = "max" if name in _MAX_STATES else "sum"
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx=reduce)
        # the float64 sums live where the model runs; each batch is moved there
        self.to(device)

    @property
    def model(self) -> Model:
        model: Model = self.__dict__["_model"]
        return model

    def update(
        self, x: torch.Tensor, y: torch.Tensor | None = None, indices: torch.Tensor | None = None
    ) -> None:
        if self._shift is not None:
            if indices is None:
                indices = torch.arange(self._seen, self._seen + len(x))
            self._seen += len(x)
            x = self._shift(x, self.seed, reference=self.shift_reference, indices=indices)
            if not self._shift.preserves_labels:  # a Shift decides for itself
                y = None
        first = float(getattr(self, "count")) == 0  # noqa: B009 (a dynamic metric state)
        stats = statistics(
            self.model,
            x,
            self._group,
            y,
            saliency=self.saliency,
            chunk_size=self.chunk_size,
            memory_budget=self.memory_budget,
            li_shift=None if first else getattr(self, "li_shift"),  # noqa: B009
            precision=self._precision,
        )
        total = merge_statistics(None if first else self.statistics(), stats.to(self.device))
        for name, value in total.to_dict().items():
            setattr(self, name, value)

    def statistics(self) -> OrbitStatistics:
        """The summed statistics so far (the metric's states), as one typed object."""
        values = {name: getattr(self, name) for name in self._defaults}
        if float(values["sis_count"]) == 0:  # no saliency computed
            values.update(sis_sum=None, sis_count=None, sis_nonzero=None)
        if float(values["labelled"]) == 0:  # no labels seen
            values.update(correct=None, orbit_correct=None, labelled=None)
        return OrbitStatistics.from_dict(values)

    def _measures(self) -> dict[str, float | None]:
        return finalize(self.statistics())

    def _tensor(self, value: float | None) -> torch.Tensor:
        return torch.tensor(
            math.nan if value is None else value, dtype=torch.float64, device=self.device
        )

    def compute(self) -> dict[str, torch.Tensor]:
        """The measures so far, each a float64 0-d tensor on the metric's device (torchmetrics
        convention); ``sis`` is NaN, with an
        :class:`~ginvariance.errors.UndefinedMeasureWarning`, when it is undefined (the model
        has no input gradient)."""
        return {key: self._tensor(value) for key, value in self._measures().items()}

    def reset(self) -> None:
        super().reset()
        self._seen = 0

    def _sync_dist(
        self, dist_sync_fn: Callable = gather_all_tensors, process_group: Any | None = None
    ) -> None:
        # Each process centred li's sums on its own first batch; sums are only additive in a
        # common frame, so re-centre on 0 (exact algebra) before they are added up.
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        centred = shift_frame(self.statistics(), zero)
        for name in ("li_sum_z", "li_sum_sq", "li_shift"):
            setattr(self, name, centred[name])
        super()._sync_dist(dist_sync_fn, process_group=process_group)


class _OneMeasure(InvarianceMetrics):
    """One measure of :class:`InvarianceMetrics`: subclasses name its ``key`` and direction."""

    key: str

    def __init_subclass__(cls, key: str = "", higher_is_better: bool = False, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.key = key
        cls.higher_is_better = higher_is_better

    def __init__(self, model: Model, group: Group | str, **kwargs: Any) -> None:
        kwargs.setdefault("saliency", self.key == "sis")
        super().__init__(model, group, **kwargs)

    def compute(self) -> torch.Tensor:  # type: ignore[override]
        """The measure as a float64 0-d tensor; NaN when it is undefined (``sis`` of a model
        with no input gradient)."""
        return self._tensor(self._measures()[self.key])


class PredictiveDistributionInvariance(_OneMeasure, key="pdi", higher_is_better=False):
    """Streaming predictive-distribution invariance error (``pdi``, nats)."""


class LogitInvariance(_OneMeasure, key="li", higher_is_better=False):
    """Streaming logit invariance error (``li``, pooled variance ratio)."""


class WithinOrbitLogitVariance(_OneMeasure, key="li_within", higher_is_better=False):
    """Streaming within-orbit logit variance (``li_within``, squared logit units)."""


class SaliencyInvarianceSimilarity(_OneMeasure, key="sis", higher_is_better=True):
    """Streaming saliency invariance similarity (``sis``)."""


class UntransformedAccuracy(_OneMeasure, key="accuracy", higher_is_better=True):
    """Streaming accuracy on the untransformed inputs; ``update(x, y)`` needs labels."""


class OrbitAccuracy(_OneMeasure, key="orbit_accuracy", higher_is_better=True):
    """Streaming orbit accuracy; ``update(x, y)`` needs labels."""


class OrbitConsistency(_OneMeasure, key="orbit_consistency", higher_is_better=True):
    """Streaming orbit consistency: the share of samples predicted alike on the orbit."""


#: Old class names, kept working with a :class:`DeprecationWarning` (``Accuracy`` clashed with
#: ``torchmetrics.Accuracy``; the short names read as the measures' keys, not as classes).
DEPRECATED_NAMES: dict[str, str] = {
    "PDI": "PredictiveDistributionInvariance",
    "LI": "LogitInvariance",
    "LIWithin": "WithinOrbitLogitVariance",
    "SIS": "SaliencyInvarianceSimilarity",
    "Accuracy": "UntransformedAccuracy",
}


def deprecated_name(module: str, name: str) -> type:
    """The class an old name stands for, with a :class:`DeprecationWarning` naming the new one."""
    if name not in DEPRECATED_NAMES:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new = DEPRECATED_NAMES[name]
    warnings.warn(
        f"ginvariance.metrics.{name} is deprecated; use ginvariance.metrics.{new}",
        DeprecationWarning,
        stacklevel=3,
    )
    cls: type = globals()[new]
    return cls


def __getattr__(name: str) -> type:
    return deprecated_name(__name__, name)


__all__ = [
    "InvarianceMetrics",
    "LogitInvariance",
    "OrbitAccuracy",
    "OrbitConsistency",
    "PredictiveDistributionInvariance",
    "SaliencyInvarianceSimilarity",
    "UntransformedAccuracy",
    "WithinOrbitLogitVariance",
]
