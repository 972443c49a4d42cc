"""``measure(model, data, group, shifts=...)``: every measure, in distribution and shifted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ginvariance.devices import check_precision, model_device
from ginvariance.errors import DataError
from ginvariance.groups import Group, get_group
from ginvariance.metrics.functional import finalize, merge_statistics, statistics
from ginvariance.metrics.orbit import Model
from ginvariance.progress import Progress, ensure_progress
from ginvariance.seeds import check_seed


@dataclass
class InvarianceReport:
    """The result of :func:`measure`.

    Attributes
    ----------
    id:
        The measures in distribution (``accuracy``, ``orbit_accuracy``,
        ``orbit_consistency``, ``pdi``, ``li``, ``sis``, ``n_samples``).
    shift:
        The same per distribution shift, by name; shifts whose inputs belong to no class
        (``uniform``, ``patches``) carry no accuracies.
    group:
        The group's name.
    shift_reference, shift_parameters:
        The reference set's statistics that fixed the shifts' parameters
        (:class:`~ginvariance.data.shifts.ShiftReference` as a dict; ``None`` without shifts)
        and each shift's parameters under it (noise scale, intensity range, ...).
    """

    id: dict[str, float | None]
    shift: dict[str, dict[str, float | None]] = field(default_factory=dict)
    group: str = ""
    shift_reference: dict[str, Any] | None = None
    shift_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``{"id": {...}, "shift": {...}}`` form of ``ginv measure --json``, with the shifts'
        ``shift_reference`` and ``shift_parameters`` when there are shifts."""
        out: dict[str, Any] = {
            "id": dict(self.id),
            "shift": {k: dict(v) for k, v in self.shift.items()},
        }
        if self.shift:
            out["shift_reference"] = self.shift_reference
            out["shift_parameters"] = {k: dict(v) for k, v in self.shift_parameters.items()}
        return out


def _batches(data: Any) -> tuple[Iterable[tuple[torch.Tensor, torch.Tensor | None]], int]:
    """Normalize ``data`` to an iterable of ``(x, y)`` batches and the number of batches."""
    pair = isinstance(data, tuple | list) and len(data) in (1, 2)
    if isinstance(data, torch.Tensor) or (pair and isinstance(data[0], torch.Tensor)):
        return [_split(data)], 1
    if isinstance(data, DataLoader):
        return (_split(b) for b in data), len(data)
    if isinstance(data, Dataset):
        from ginvariance.data.datasets import ArrayDataset

        # ginvariance's own ArrayDataset is its tensors: one batch. Any other dataset (one with
        # a tensor .x too) is read through its __getitem__, so its transforms apply.
        if type(data).__getitem__ is ArrayDataset.__getitem__:
            return [(data.x, data.y)], 1  # type: ignore[attr-defined]
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


def _reference(data: Any, given: Any) -> Any:
    """The :class:`ShiftReference` of ``given``, or of ``data`` in a first pass (no model)."""
    from ginvariance.data.shifts import ShiftReference

    if isinstance(given, ShiftReference):
        return given
    source = "measured data" if given is None else "given reference set"
    batches, _ = _batches(data if given is None else given)
    return ShiftReference.from_batches((x for x, _ in batches), source)


def measure(
    model: Model,
    data: Any,
    group: Group | str,
    shifts: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    shift_reference: Any = None,
    saliency: bool = True,
    chunk_size: int | None = None,
    memory_budget: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    precision: str = "fp32",
) -> InvarianceReport:
    """Measure how genuinely invariant ``model`` is to ``group`` on ``data``.

    Parameters
    ----------
    model:
        Any callable (an ``nn.Module`` or a function) mapping ``(B, *S)`` to ``(B, K)``
        logits; it runs where its parameters are (on one device, or
        :class:`~ginvariance.errors.DeviceError`), a module in eval mode, every submodule's own
        mode restored after.
    data:
        An ``(x, y)`` pair of tensors, a ``Dataset`` of ``(x, y)`` items (read through its
        ``__getitem__``, transforms and all; an :class:`~ginvariance.data.ArrayDataset` is
        taken whole) or a ``DataLoader``. Each batch is shifted where it is and moved to the
        model's device chunk by chunk, non-blocking from pinned memory.
    group:
        A group or its name (see :func:`ginvariance.groups.get_group`).
    shifts:
        Distribution shifts (names or :class:`~ginvariance.data.shifts.Shift` objects), or a
        mapping from name to a shift. Each is one fixed distribution: its parameters come from
        ``shift_reference`` and its randomness from ``(seed, global sample index)``, so the
        numbers do not depend on how ``data`` is batched. A mapping may also hold a plain
        callable ``(x, seed) → x``, called per batch with ``seed + batch index`` (then the
        numbers depend on the batching unless the callable's result does not).
    shift_reference:
        A :class:`~ginvariance.data.shifts.ShiftReference`, or data in any form ``data`` takes
        (e.g. the training split); ``None``: the measured ``data``, read in a first pass without
        the model (a ``DataLoader`` is iterated twice).
    saliency:
        Also compute ``sis`` (one backward pass over each orbit chunk).
    chunk_size, memory_budget:
        Bound the memory of one orbit pass; ``memory_budget`` ``None``: the budget of the
        model's device (:func:`ginvariance.devices.memory_budget`).
    progress:
        Receives one unit per batch and condition.
    precision:
        ``"fp32"`` (the model's own dtype), ``"bf16"`` or ``"fp16"``: the forward runs under
        ``torch.autocast`` in that dtype, the measures are still reduced in float64; a
        precision the device cannot run raises :class:`~ginvariance.errors.DeviceError`.
    """
    from ginvariance.data.shifts import Shift, get_shift, preserves_labels

    check_seed(seed, "seed", "seed=0")
    autocast_dtype = check_precision(precision, model_device(model))
    if isinstance(shifts, Mapping):
        shift_fns = {
            k: get_shift(v) if isinstance(v, str | Shift) else v for k, v in shifts.items()
        }
    else:
        shift_fns = {shift.name: shift for shift in map(get_shift, shifts or ())}
    reference = _reference(data, shift_reference) if shift_fns else None
    batches, n_batches = _batches(data)
    conditions: list[tuple[str, Any]] = [("id", None), *shift_fns.items()]
    progress = ensure_progress(progress)
    progress.start(n_batches * len(conditions), "measuring")
    totals: dict[str, Any] = {name: None for name, _ in conditions}
    resolved: Group | None = None
    offset = 0
    for index, (x, y) in enumerate(batches):
        if resolved is None:
            resolved = get_group(group, tuple(x.shape[1:]) if x.dim() >= 2 else None)
        indices = torch.arange(offset, offset + (x.shape[0] if x.dim() else 0))
        offset += len(indices)
        for name, fn in conditions:
            xs, ys = x, y
            if isinstance(fn, Shift):
                xs = fn(x, seed, reference=reference, indices=indices)
            elif fn is not None:
                xs = fn(x, seed + index)
            if fn is not None and not preserves_labels(fn, name):
                ys = None
            part = statistics(
                model,
                xs,
                resolved,
                ys,
                saliency=saliency,
                chunk_size=chunk_size,
                memory_budget=memory_budget,
                precision=autocast_dtype,
            )
            totals[name] = merge_statistics(totals[name], part)
            progress.advance(1)
    progress.finish()
    if totals["id"] is None:
        raise DataError("the data holds no batches; pass at least one sample")
    results = {k: {**finalize(v), "n_samples": int(v["count"])} for k, v in totals.items()}
    assert resolved is not None
    return InvarianceReport(
        id=results.pop("id"),
        shift=results,
        group=getattr(resolved, "name", str(group)),
        shift_reference=None if reference is None else reference.to_dict(),
        shift_parameters={
            name: fn.parameters(reference) if isinstance(fn, Shift) and reference else {}
            for name, fn in shift_fns.items()
        },
    )
