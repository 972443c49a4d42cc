"""The invariance measures of docs/definitions.md as functions of one orbit pass.

Pure tensor maths on the :class:`~ginvariance.metrics.orbit.OrbitOutputs` of a pass first
(per sample, per orbit batch, the summed :class:`OrbitStatistics` that :func:`finalize` turns
into the measures); then one function per key and :func:`invariance_suite`. The module stays
whole: each of these definitions is read by the next.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import torch

from ginvariance.checks import check_orbit_logits
from ginvariance.errors import DataError, LabelError, ModelError, UndefinedMeasureWarning
from ginvariance.groups import CustomGroup, Group, get_group
from ginvariance.keys import MEASURE_KEYS
from ginvariance.metrics.orbit import (
    Model,
    OrbitOutputs,
    check_inputs,
    eval_mode,
    iter_orbit_passes,
)

#: The keys a full suite reports.
KEYS = MEASURE_KEYS

#: ``li`` is 0 when the total variance of the logits is below ``(LI_ROUNDING_ULPS · eps)²``
#: times their mean square (``eps`` the rounding unit of the logits' dtype): then every
#: logit equals every other up to rounding, and the variance ratio is noise.
LI_ROUNDING_ULPS = 8.0


# -- pure tensor maths ---------------------------------------------------------------------
def pdi_per_sample(logits: torch.Tensor) -> torch.Tensor:
    """Generalized Jensen–Shannon divergence over the orbit, per sample.

    ``pdi = H(p̄) − (1/n) Σ_g H(p_g)`` with ``p_g = softmax(z_g)`` and ``p̄ = (1/n) Σ_g p_g``.
    ``logits`` ``(n, B, K)`` → ``(B,)`` in nats, computed from log-softmax so that it is
    stable for confident predictions. Bounded by ``log n``.
    """
    n = logits.shape[0]
    logp = torch.log_softmax(logits, dim=-1)  # (n, B, K)
    mean_entropy = -_plogp(logp).sum(-1).mean(0)  # (1/n) Σ_g H(p_g)
    log_pbar = torch.logsumexp(logp, dim=0) - math.log(n)  # log p̄
    entropy_pbar = -_plogp(log_pbar).sum(-1)
    return entropy_pbar - mean_entropy


def _plogp(logp: torch.Tensor) -> torch.Tensor:
    """``p · log p`` from ``log p``, with ``0 · log 0 = 0`` (an underflowed ``-inf``: no NaN)."""
    p = logp.exp()
    return torch.where(p > 0, p * logp, torch.zeros_like(logp))


def sis_per_sample(saliency: torch.Tensor) -> torch.Tensor:
    """Saliency invariance similarity per sample, ``(1/(n−1)) Σ_{g≠e} cos(g⁻¹·s_g, s_e)``.

    ``saliency`` ``(n, B, *S)`` holds the maps already mapped back by the inverse actions
    (as :func:`~ginvariance.metrics.orbit.orbit_pass` returns them). The cosine of two
    zero maps is 1 (the same, empty explanation at every group element), of one zero map and
    a non-zero one 0. For ``n = 1`` the value is 1. Whether the data set's ``sis`` is defined
    is decided by :func:`finalize` (see :func:`saliency_nonzero`).

    The cosines are computed in float64 on maps divided by their largest absolute entry, so
    that gradients of any magnitude (float32 maps of 1e-25 or 1e20) neither underflow to
    "zero maps" nor overflow; returns float64.
    """
    n, b = saliency.shape[0], saliency.shape[1]
    if n == 1:
        return torch.ones(b, dtype=torch.float64, device=saliency.device)
    flat = saliency.reshape(n, b, -1).to(torch.float64)
    peak = flat.abs().amax(dim=-1, keepdim=True)
    flat = flat / torch.where(peak > 0, peak, 1.0)
    ref, others = flat[0], flat[1:]  # (B, D), (n-1, B, D)
    norm_ref, norm_others = ref.norm(dim=-1), others.norm(dim=-1)
    denom = norm_others * norm_ref
    cos = torch.where(denom > 0, (others * ref).sum(-1) / torch.where(denom > 0, denom, 1), 0.0)
    return torch.where((norm_ref == 0) & (norm_others == 0), 1.0, cos).mean(0)


def saliency_nonzero(saliency: torch.Tensor) -> torch.Tensor:
    """Per sample, whether any of its ``n`` saliency maps has a non-zero entry: ``saliency``
    ``(n, B, *S)`` → bool ``(B,)``. ``sis`` is undefined when it is false for every sample."""
    n, b = saliency.shape[0], saliency.shape[1]
    return (saliency.reshape(n, b, -1) != 0).any(dim=-1).any(dim=0)


def warn_undefined_sis(key: str = "sis", stacklevel: int = 3) -> None:
    """Warn (:class:`~ginvariance.errors.UndefinedMeasureWarning`, one line) that ``key``,
    a saliency similarity, is undefined because every saliency map is zero."""
    warnings.warn(
        f"{key} is undefined and reported as None: the model's input gradient is zero on every "
        "input (torch.no_grad() or .detach() inside forward, or an output that does not "
        "depend on the input); remove them to measure saliency",
        UndefinedMeasureWarning,
        stacklevel=stacklevel,
    )


def correct_per_element(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[argmax z_g(x_b) = y_b]``: ``logits`` ``(n, B, K)``, ``y`` ``(B,)`` → bool ``(n, B)``.

    Row 0 (the identity) gives accuracy; the mean over all of it, orbit accuracy.
    """
    return logits.argmax(dim=-1) == y.to(logits.device).unsqueeze(0)


def consistent_per_sample(logits: torch.Tensor) -> torch.Tensor:
    """Whether sample ``b`` is predicted the same class for every ``g``: ``(n, B, K)`` → bool
    ``(B,)``."""
    pred = logits.argmax(dim=-1)  # (n, B)
    return (pred == pred[0:1]).all(0)


# -- functional twins on one orbit's tensors: device- and dtype-preserving, differentiable
# (the real-valued ones), so the regularizers' losses call them ---------------------------
def pdi_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``pdi`` of one orbit batch: the mean over ``B`` of :func:`pdi_per_sample`.

    ``logits`` ``(n, B, K)`` → a 0-d tensor (nats), differentiable, in ``logits``' dtype (the
    data-set measure casts to float64 first; do the same for an exact comparison).
    """
    return pdi_per_sample(check_orbit_logits(logits)).mean()


def li_within_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``li_within`` of one orbit batch: ``(1/(n·B)) Σ_b Σ_g ‖z_g(b) − z̄(b)‖²``.

    ``logits`` ``(n, B, K)`` → a 0-d tensor, differentiable (the ``"logit"`` penalty).
    """
    logits = check_orbit_logits(logits)
    return (logits - logits.mean(dim=0, keepdim=True)).square().sum(dim=-1).mean()


def li_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``li`` of one orbit batch, ``W / S``: within-orbit over total sum of squares.

    ``W = Σ_{g,b} ‖z_g(b) − z̄(b)‖²``, ``S = Σ_{g,b} ‖z_g(b) − μ‖²`` with ``z̄(b)`` the mean
    over ``g`` (axis 0) and ``μ`` over ``g`` and ``b``. ``logits`` ``(n, B, K)`` → a 0-d tensor
    in ``[0, 1]``, differentiable, unchanged by ``z → α·z + c``; its gradient
    ``∂R/∂z_g(b) = 2 (z_g(b) − z̄(b)) / S − 2 R (z_g(b) − μ) / S`` is orthogonal to ``z − μ``,
    so no change of scale lowers it. 0 when every logit is the same (``S`` clamped to the
    dtype's smallest normal number); the data-set ``li`` (:func:`finalize`) is also 0 when
    ``S`` is at the rounding level of the logits' dtype.
    """
    logits = check_orbit_logits(logits)
    within = (logits - logits.mean(dim=0, keepdim=True)).square().sum()
    spread = (logits - logits.mean(dim=(0, 1), keepdim=True)).square().sum()
    return within / spread.clamp_min(torch.finfo(spread.dtype).tiny)


def sis_from_saliency(saliency: torch.Tensor) -> torch.Tensor:
    """``sis`` of one orbit batch: the mean over ``B`` of :func:`sis_per_sample`.

    ``saliency`` ``(n, B, *S)`` (maps already mapped back by the inverse actions) → a float64
    0-d tensor on ``saliency``'s device, differentiable.
    """
    return sis_per_sample(saliency).mean()


def accuracy_from_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy on the untransformed inputs (row 0 of ``logits`` ``(n, B, K)``), float64."""
    return correct_per_element(check_orbit_logits(logits)[:1], y).to(torch.float64).mean()


def orbit_accuracy_from_logits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over ``g`` and ``b`` of ``[argmax z_g(x_b) = y_b]``, float64."""
    return correct_per_element(check_orbit_logits(logits), y).to(torch.float64).mean()


def orbit_consistency_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Share of the ``B`` samples predicted alike on their whole orbit, float64."""
    return consistent_per_sample(check_orbit_logits(logits)).to(torch.float64).mean()


@dataclass
class OrbitStatistics:
    """Sufficient statistics of measured samples, summed over them (float64 0-d tensors unless
    said otherwise): what :func:`orbit_statistics` returns, :func:`merge_statistics` adds up,
    the streaming classes keep as their states and :func:`finalize` turns into the measures.

    Attributes
    ----------
    count, order:
        Samples ``N`` and group order ``n``.
    logit_eps:
        The rounding unit of the logits' dtype: below it, ``li``'s variances are noise.
    pdi_sum:
        ``Σ_x pdi(x)``, from float64 logits.
    li_within:
        ``Σ_x Σ_g ‖z_g(x) − z̄(x)‖²``.
    li_shift, li_sum_z, li_sum_sq:
        The centre ``r`` ``(K,)`` of ``li``'s sums, ``Σ_x Σ_g (z_g(x) − r)`` ``(K,)`` and
        ``n Σ_x ‖z̄(x) − r‖²`` (see :func:`orbit_statistics`).
    consistent:
        Samples predicted alike on their whole orbit.
    sis_sum, sis_count, sis_nonzero:
        ``Σ_x SIS(x)``, the samples it was taken over and those with a non-zero saliency map;
        ``None`` when no saliency was computed.
    correct, orbit_correct, labelled:
        Correct predictions on ``x``, ``Σ_x`` of the share of the orbit predicted correctly,
        and labelled samples; ``None`` without labels.

    Read access by key (``stats["pdi_sum"]``, ``"sis_sum" in stats``, ``stats.get(...)``) works
    as it did when the statistics were a dict; a field that is ``None`` counts as absent.
    """

    count: torch.Tensor
    order: torch.Tensor
    logit_eps: torch.Tensor
    pdi_sum: torch.Tensor
    li_within: torch.Tensor
    li_shift: torch.Tensor
    li_sum_z: torch.Tensor
    li_sum_sq: torch.Tensor
    consistent: torch.Tensor
    sis_sum: torch.Tensor | None = None
    sis_count: torch.Tensor | None = None
    sis_nonzero: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    orbit_correct: torch.Tensor | None = None
    labelled: torch.Tensor | None = None

    @classmethod
    def from_dict(cls, values: Mapping[str, torch.Tensor]) -> OrbitStatistics:
        """The statistics from a mapping of field name to tensor (missing optional fields:
        ``None``); names that are not fields raise ``KeyError``."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise KeyError(f"not statistics fields: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, torch.Tensor]:
        """The fields that are set, by name."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def to(self, device: torch.device | str) -> OrbitStatistics:
        """A copy with every tensor on ``device``."""
        return OrbitStatistics.from_dict({k: v.to(device) for k, v in self.to_dict().items()})

    def clone(self) -> OrbitStatistics:
        return OrbitStatistics.from_dict({k: v.clone() for k, v in self.to_dict().items()})

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.to_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def keys(self) -> list[str]:
        return list(self.to_dict())

    def items(self) -> list[tuple[str, torch.Tensor]]:
        return list(self.to_dict().items())

    def measures(self) -> dict[str, float | None]:
        """The measures these statistics support (:func:`finalize`)."""
        return finalize(self)


#: The old name of :class:`OrbitStatistics`.
Stats = OrbitStatistics


def orbit_statistics(
    out: OrbitOutputs, y: torch.Tensor | None = None, *, li_shift: torch.Tensor | None = None
) -> OrbitStatistics:
    """Sufficient statistics of one chunk, summed over its samples (float64).

    The sums behind ``li``'s total variance are taken of ``z − r`` for a shift ``r``
    (``li_shift``, ``(K,)``; the chunk's own mean logit when ``None``), stored as
    ``li_shift``: the variance is ``S2 − ‖S1‖²/(nN)``, which cancels catastrophically when
    the logits' mean is large next to their spread (a large bias, or inputs the model
    barely tells apart), unless the sums are centred near the mean.
    """
    logits = out.logits
    n, b = logits.shape[0], logits.shape[1]
    f64, dev = torch.float64, logits.device  # the sums stay on the logits' device
    z = logits.to(f64)
    shift = z.mean(dim=(0, 1)) if li_shift is None else li_shift.to(dev, f64).expand(z.shape[-1])
    zc = z - shift
    stats = OrbitStatistics(
        count=torch.tensor(float(b), dtype=f64, device=dev),
        order=torch.tensor(float(n), dtype=f64, device=dev),
        logit_eps=torch.tensor(torch.finfo(logits.dtype).eps, dtype=f64, device=dev),
        pdi_sum=pdi_per_sample(z).sum(),  # from float64 logits: no float32 rounding
        li_within=((z - z.mean(0, keepdim=True)) ** 2).sum(),
        li_shift=shift.clone(),
        li_sum_z=zc.sum(dim=(0, 1)),  # Σ_x Σ_g (z_g(x) − r)
        li_sum_sq=n * (zc.mean(0) ** 2).sum(),  # n Σ_x ‖z̄(x) − r‖², for the between part
        consistent=consistent_per_sample(logits).to(f64).sum(),
    )
    if out.saliency is not None:
        stats.sis_sum = sis_per_sample(out.saliency).to(f64).sum()
        stats.sis_count = torch.tensor(float(b), dtype=f64, device=dev)
        stats.sis_nonzero = saliency_nonzero(out.saliency).to(f64).sum()
    if y is not None:
        correct = correct_per_element(logits, y.to(dev))
        stats.correct = correct[0].to(f64).sum()
        stats.orbit_correct = correct.to(f64).mean(0).sum()
        stats.labelled = torch.tensor(float(b), dtype=f64, device=dev)
    return stats


_Frame = TypeVar("_Frame", OrbitStatistics, dict[str, torch.Tensor])


def shift_frame(stats: _Frame, shift: torch.Tensor) -> _Frame:
    """``stats`` with ``li``'s sums re-centred on ``shift`` (exact algebra, a copy).

    With ``d = r − r*``: ``S1(r*) = S1(r) + nN·d`` and
    ``S2(r*) = S2(r) + 2 d·S1(r) + nN‖d‖²``. ``stats`` is an :class:`OrbitStatistics` or a
    dict holding at least ``count``, ``order``, ``li_shift``, ``li_sum_z`` and ``li_sum_sq``
    (the streaming states); the copy is of the same kind.
    """
    old = stats.get("li_shift", torch.zeros((), dtype=torch.float64))
    d = old - shift
    pooled = stats["order"] * stats["count"]
    s1 = stats["li_sum_z"]
    moved = {
        "li_sum_z": s1 + pooled * d,
        "li_sum_sq": stats["li_sum_sq"] + 2 * (d * s1).sum() + pooled * (d * d).sum(),
        "li_shift": shift.clone(),
    }
    if isinstance(stats, OrbitStatistics):
        return replace(stats, **moved)
    return {**stats, **moved}


def merge_statistics(total: OrbitStatistics | None, part: OrbitStatistics) -> OrbitStatistics:
    """Add the statistics of one chunk to a running total (in place) and return it.

    Both should be centred on the same ``li_shift`` (pass the total's to
    :func:`orbit_statistics`); a part centred elsewhere is re-centred first.
    """
    if total is None:
        return part.clone()
    if not torch.equal(part.li_shift, total.li_shift):
        part = shift_frame(part, total.li_shift)
    for k, v in part.to_dict().items():
        mine = getattr(total, k)
        if k == "logit_eps":
            total.logit_eps = torch.maximum(mine, v)
        elif k not in ("order", "li_shift"):  # the total keeps its centre
            setattr(total, k, v.clone() if mine is None else mine + v)
    total.order = part.order
    return total


def finalize(stats: OrbitStatistics | Mapping[str, torch.Tensor]) -> dict[str, float | None]:
    """Turn summed statistics into the measures (only those the statistics support).

    ``sis`` is ``None`` (with an :class:`~ginvariance.errors.UndefinedMeasureWarning`) when
    saliency was computed but no sample had a non-zero saliency map.
    """
    if not isinstance(stats, OrbitStatistics):
        stats = OrbitStatistics.from_dict(stats)
    count = float(stats["count"])
    if count == 0:
        raise DataError("no samples were measured; pass at least one sample")
    n = float(stats["order"])
    result: dict[str, float | None] = {
        "pdi": float(stats["pdi_sum"]) / count,
        "orbit_consistency": float(stats["consistent"]) / count,
    }
    pooled = n * count
    sum_z = stats["li_sum_z"]
    between = float(stats["li_sum_sq"] - (sum_z * sum_z).sum() / pooled)  # n Σ_x ‖z̄(x) − μ‖²
    within = float(stats["li_within"])
    if not (math.isfinite(between) and math.isfinite(within)):
        raise ModelError(
            "the logits are too large to measure li (their squares overflow float64); "
            "scale the model's outputs down"
        )
    total = within + max(between, 0.0)  # only the between part cancels: 0 <= li <= 1
    # every logit equal up to a few units of rounding: the variances are noise and li is 0
    eps = float(stats.get("logit_eps", torch.tensor(0.0)))
    uncentred = shift_frame(stats, torch.zeros((), dtype=torch.float64))
    sum_sq_all = within + float(uncentred["li_sum_sq"])  # Σ_x Σ_g ‖z_g(x)‖²
    floor = (LI_ROUNDING_ULPS * eps) ** 2 * sum_sq_all
    result["li"] = within / total if total > floor and total > 0 else 0.0
    result["li_within"] = within / pooled
    if "sis_sum" in stats and float(stats["sis_count"]) > 0:
        if "sis_nonzero" in stats and float(stats["sis_nonzero"]) == 0:
            result["sis"] = None
            warn_undefined_sis()
        else:
            result["sis"] = float(stats["sis_sum"]) / float(stats["sis_count"])
    if "correct" in stats and float(stats["labelled"]) > 0:
        result["accuracy"] = float(stats["correct"]) / float(stats["labelled"])
        result["orbit_accuracy"] = float(stats["orbit_correct"]) / float(stats["labelled"])
    return result


# -- one function per key -----------------------------------------------------------------
def check_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Return ``y``; raise :class:`LabelError` for labels outside ``[0, num_classes)``."""
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise LabelError(
            f"labels must lie in [0, {num_classes - 1}] for a model with {num_classes} "
            f"classes, found {int(y.min())}..{int(y.max())}; fix the labels or the model"
        )
    return y


def statistics(
    model: Model,
    x: torch.Tensor,
    group: Group | str,
    y: torch.Tensor | None = None,
    *,
    saliency: bool = True,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    li_shift: torch.Tensor | None = None,
    precision: torch.dtype | None = None,
) -> OrbitStatistics:
    """Summed statistics of the whole of ``x``, chunk by chunk, in eval mode.

    ``li_shift`` centres ``li``'s sums (see :func:`orbit_statistics`); by default the first
    chunk's mean logit, and every later chunk uses the same. The chunks are those of
    :func:`~ginvariance.metrics.orbit.iter_orbit_passes`; the sums are float64 on the model's
    device.
    """
    check_inputs(x, y)
    group = get_group(group, tuple(x.shape[1:]))
    total: OrbitStatistics | None = None
    with eval_mode(model):
        for rows, out in iter_orbit_passes(
            model,
            x,
            group,
            saliency=saliency,
            chunk_size=chunk_size,
            memory_budget=memory_budget,
            precision=precision,
        ):
            part_y = None if y is None else check_labels(y[rows], out.logits.shape[-1])
            shift = total.li_shift if total is not None else li_shift
            total = merge_statistics(total, orbit_statistics(out, part_y, li_shift=shift))
    assert total is not None
    return total


def invariance_suite(
    model: Model,
    x: torch.Tensor,
    group: Group | str,
    y: torch.Tensor | None = None,
    *,
    saliency: bool = True,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    precision: torch.dtype | None = None,
) -> dict[str, float | None]:
    """All measures from one forward (and one backward, for ``sis``) over the orbit.

    Returns ``pdi``, ``li``, ``li_within``, ``orbit_consistency``; ``sis`` when ``saliency``;
    and ``accuracy`` and ``orbit_accuracy`` when labels ``y`` are given. The keywords are
    :func:`statistics`'s.
    """
    return finalize(
        statistics(
            model,
            x,
            group,
            y,
            saliency=saliency,
            chunk_size=chunk_size,
            memory_budget=memory_budget,
            precision=precision,
        )
    )


def _measure(key: str, model: Model, x: torch.Tensor, group: Any, **kwargs: Any) -> torch.Tensor:
    """Measure ``key`` of ``x`` as a 0-d tensor in ``x``'s precision and device; ``None``: NaN."""
    value = finalize(statistics(model, x, group, saliency=key == "sis", **kwargs))[key]
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.tensor(math.nan if value is None else value, dtype=dtype, device=x.device)


def pdi(model: Model, x: torch.Tensor, group: Group | str, **kwargs: Any) -> torch.Tensor:
    """Predictive-distribution invariance error (nats), mean over samples; 0 if invariant."""
    return _measure("pdi", model, x, group, **kwargs)


def li(model: Model, x: torch.Tensor, group: Group | str, **kwargs: Any) -> torch.Tensor:
    """Logit invariance error: the pooled within-orbit / total variance ratio, in [0, 1]."""
    return _measure("li", model, x, group, **kwargs)


def li_within(model: Model, x: torch.Tensor, group: Group | str, **kwargs: Any) -> torch.Tensor:
    """Within-orbit logit variance ``(1/(N·n)) Σ_x Σ_g ‖z_g(x) − z̄(x)‖²``; 0 if invariant."""
    return _measure("li_within", model, x, group, **kwargs)


def sis(model: Model, x: torch.Tensor, group: Group | str, **kwargs: Any) -> torch.Tensor:
    """Saliency invariance similarity, mean over samples; 1 if invariant. NaN, with an
    :class:`~ginvariance.errors.UndefinedMeasureWarning`, for a model whose input gradient is
    zero on every sample."""
    return _measure("sis", model, x, group, **kwargs)


def orbit_consistency(
    model: Model, x: torch.Tensor, group: Group | str, **kwargs: Any
) -> torch.Tensor:
    """Fraction of samples whose predicted class is the same for every group element."""
    return _measure("orbit_consistency", model, x, group, **kwargs)


def accuracy(
    model: Model, x: torch.Tensor, group: Group | str | None, y: torch.Tensor, **kwargs: Any
) -> torch.Tensor:
    """Accuracy on the untransformed inputs (``group`` is not used; ``None`` is fine)."""
    trivial = CustomGroup("trivial", [(lambda t: t, lambda t: t)])
    return _measure("accuracy", model, x, trivial, y=y, **kwargs)


def orbit_accuracy(
    model: Model, x: torch.Tensor, group: Group | str, y: torch.Tensor, **kwargs: Any
) -> torch.Tensor:
    """Mean over samples and group elements of ``[argmax f(g·x) = y]``."""
    return _measure("orbit_accuracy", model, x, group, y=y, **kwargs)


__all__ = [
    "KEYS",
    "OrbitStatistics",
    "accuracy",
    "accuracy_from_logits",
    "consistent_per_sample",
    "correct_per_element",
    "finalize",
    "invariance_suite",
    "li",
    "li_from_logits",
    "li_within",
    "li_within_from_logits",
    "merge_statistics",
    "orbit_accuracy",
    "orbit_accuracy_from_logits",
    "orbit_consistency",
    "orbit_consistency_from_logits",
    "orbit_statistics",
    "pdi",
    "pdi_from_logits",
    "pdi_per_sample",
    "saliency_nonzero",
    "shift_frame",
    "sis",
    "sis_from_saliency",
    "sis_per_sample",
    "statistics",
    "warn_undefined_sis",
]
