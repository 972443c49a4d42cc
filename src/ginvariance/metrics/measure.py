"""``measure(model, data, group, shifts=...)``: every measure, in distribution and shifted."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ginvariance.errors import DataError
from ginvariance.groups import Group, get_group
from ginvariance.metrics.functional import finalize, merge_statistics, statistics
from ginvariance.metrics.orbit import DEFAULT_MEMORY_BUDGET
from ginvariance.progress import Progress, ensure_progress
from ginvariance.seeds import check_seed

ShiftFn = Callable[[torch.Tensor, int], torch.Tensor]

#: Shifts whose inputs no longer belong to any class: accuracy is not reported for them.
LABEL_FREE_SHIFTS = frozenset({"uniform", "patches"})


@dataclass
class InvarianceReport:
    """The result of :func:`measure`.

    Attributes
    ----------
    id:
        The measures in distribution (``accuracy``, ``orbit_accuracy``,
        ``orbit_consistency``, ``pdi``, ``li``, ``sis``, ``n_samples``).
    shift:
        The same measures per distribution shift, by shift name. Shifts that make inputs
        that belong to no class (``uniform``, ``patches``) carry no accuracies.
    group:
        The group's name.
    """

    id: dict[str, float]
    shift: dict[str, dict[str, float]] = field(default_factory=dict)
    group: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``{"id": {...}, "shift": {...}}`` form of DESIGN.md."""
        return {"id": dict(self.id), "shift": {k: dict(v) for k, v in self.shift.items()}}


def _batches(data: Any) -> tuple[Iterable[tuple[torch.Tensor, torch.Tensor | None]], int]:
    """Normalize ``data`` to an iterable of ``(x, y)`` batches and the number of batches."""
    if isinstance(data, tuple | list) and len(data) in (1, 2) and isinstance(data[0], torch.Tensor):
        x = data[0]
        y = data[1] if len(data) == 2 else None
        return [(x, y)], 1
    if isinstance(data, torch.Tensor):
        return [(data, None)], 1
    if isinstance(data, DataLoader):
        return (_split(b) for b in data), len(data)
    if isinstance(data, Dataset):
        x_attr, y_attr = getattr(data, "x", None), getattr(data, "y", None)
        if isinstance(x_attr, torch.Tensor):
            return [(x_attr, y_attr if isinstance(y_attr, torch.Tensor) else None)], 1
        loader = DataLoader(data, batch_size=256, shuffle=False)
        return (_split(b) for b in loader), len(loader)
    raise DataError(
        f"data must be an (x, y) pair of tensors, a Dataset or a DataLoader, got "
        f"{type(data).__name__}"
    )


def _split(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, tuple | list) and len(batch) >= 1 and isinstance(batch[0], torch.Tensor):
        return batch[0], batch[1] if len(batch) > 1 else None
    raise DataError(
        f"each batch must be a tensor or an (x, y) pair, got {type(batch).__name__}; "
        "make the dataset return (x, y)"
    )


def _resolve_shifts(
    shifts: Sequence[str] | Mapping[str, ShiftFn] | None,
) -> dict[str, ShiftFn]:
    if not shifts:
        return {}
    if isinstance(shifts, Mapping):
        return dict(shifts)
    from ginvariance.data.shifts import get_shift

    return {name: get_shift(name) for name in shifts}


def measure(
    model: nn.Module,
    data: Any,
    group: Group | str,
    shifts: Sequence[str] | Mapping[str, ShiftFn] | None = None,
    *,
    saliency: bool = True,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    seed: int = 0,
    progress: Progress | None = None,
) -> InvarianceReport:
    """Measure how genuinely invariant ``model`` is to ``group`` on ``data``.

    Parameters
    ----------
    model:
        Any ``nn.Module`` mapping ``(B, *S)`` to ``(B, K)`` logits; run in eval mode,
        its previous mode restored after.
    data:
        An ``(x, y)`` pair of tensors, a ``Dataset`` (of ``(x, y)`` items, or with
        ``.x``/``.y`` tensors) or a ``DataLoader``.
    group:
        A group or its name (see :func:`ginvariance.groups.get_group`).
    shifts:
        Names of distribution shifts (:mod:`ginvariance.data.shifts`), or a mapping from
        name to a callable ``(x, seed) → x``. Each shift is applied to the inputs with
        ``seed`` (per batch: ``seed + batch index``) and measured like the original.
        Shifts act batch by batch: their random draws and the statistics they scale by
        (the noise's standard deviation, the range of ``uniform``) are the batch's, so
        shifted values depend on how ``data`` is batched. Pass an ``(x, y)`` pair (one
        batch) or the same ``DataLoader`` settings to compare runs.
    saliency:
        Also compute ``sis`` (one backward pass over each orbit chunk).
    chunk_size, memory_budget:
        Bound the memory of one orbit pass.
    progress:
        Receives one unit per batch and condition.
    """
    check_seed(seed, "seed", "seed=0")
    batches, n_batches = _batches(data)
    shift_fns = _resolve_shifts(shifts)
    conditions: list[tuple[str, ShiftFn | None]] = [("id", None), *shift_fns.items()]
    progress = ensure_progress(progress)
    progress.start(n_batches * len(conditions), "measuring")
    totals: dict[str, Any] = {name: None for name, _ in conditions}
    resolved: Group | None = None
    for index, (x, y) in enumerate(batches):
        if resolved is None:
            resolved = get_group(group, tuple(x.shape[1:]) if x.dim() >= 2 else None)
        for name, fn in conditions:
            xs, ys = x, y
            if fn is not None:
                xs = fn(x, seed + index)
                if name in LABEL_FREE_SHIFTS or not getattr(fn, "preserves_labels", True):
                    ys = None
            part = statistics(
                model,
                xs,
                resolved,
                ys,
                saliency=saliency,
                chunk_size=chunk_size,
                memory_budget=memory_budget,
            )
            totals[name] = merge_statistics(totals[name], part)
            progress.advance(1)
    progress.finish()
    if totals["id"] is None:
        raise DataError("the data holds no batches; pass at least one sample")
    results = {}
    for name, stats in totals.items():
        values = finalize(stats)
        values["n_samples"] = int(stats["count"])
        results[name] = values
    assert resolved is not None
    return InvarianceReport(
        id=results.pop("id"), shift=results, group=getattr(resolved, "name", str(group))
    )
