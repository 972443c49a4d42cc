"""Layer-wise invariance and equivariance: where genuine invariance is born or lost.

Forward hooks capture each layer's output ``φ`` from one forward pass over the orbit
``(n·B, *S)`` per chunk; the statistics are summed in float64, so the result does not depend
on the chunk size. Per layer, with ``φ_g(x) = φ(g·x)`` flattened:

``li``
    ``li`` of docs/definitions.md with ``φ`` for the logits (on the logits it is ``li``);
    0 for an invariant layer.
``equivariance_error``
    ``Σ_x Σ_g ‖g⁻¹·φ(g·x) − φ(x)‖² / Σ_x Σ_g ‖φ(g·x) − μ‖²``, over ``li``'s denominator so that
    layers of different scale compare (0 when it is 0); 0 for an equivariant layer. Defined
    only where the group acts on the output (at least ``max(2, rank of a sample)`` axes that
    the group accepts, e.g. square maps for ``c4``), ``None`` elsewhere. Not bounded by 1: for
    unrelated ``g⁻¹·φ(g·x)`` and ``φ(x)`` (a random conv) its expectation is ``2(n−1)/n``,
    where ``li`` is ``(n−1)/n``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ginvariance.checks import check_logits
from ginvariance.errors import ConfigError, GinvarianceError
from ginvariance.groups import Group, get_group
from ginvariance.metrics.orbit import DEFAULT_MEMORY_BUDGET, check_inputs, chunk_size_for, eval_mode

#: Name of the entry for the model's own output when no hooked layer returned it.
OUTPUT = "output"


@dataclass
class _LayerStats:
    """Float64 sufficient statistics of one layer's output over the orbits seen so far."""

    name: str
    kind: str
    shape: list[int]
    equivariant_shape: bool
    count: int = 0  # samples x
    within: float = 0.0  # Σ ‖φ_g − φ̄‖²
    sum_sq: float = 0.0  # n Σ_x ‖φ̄(x) − r‖², for the between-orbit part of the total
    sum_z: torch.Tensor | None = None  # Σ (φ_g − r)  (D,)
    shift: torch.Tensor | None = None  # r: the first chunk's mean output, against cancellation
    defect: float = 0.0  # Σ ‖g⁻¹·φ(g·x) − φ(x)‖²
    order: int = 1
    usable: bool = True

    def result(self) -> dict[str, Any]:
        li: float | None = None
        equivariance: float | None = None
        if self.usable and self.count > 0 and self.sum_z is not None:
            pooled = self.order * self.count
            between = self.sum_sq - float((self.sum_z * self.sum_z).sum()) / pooled
            total = self.within + max(between, 0.0)  # as in functional.finalize
            li = self.within / total if total > 0 else 0.0
            if self.equivariant_shape:
                equivariance = self.defect / total if total > 0 else 0.0
        return {
            "layer": self.name,
            "type": self.kind,
            "shape": self.shape,
            "li": li,
            "equivariance_error": equivariance,
        }


def _group_acts_on(group: Group, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether the group can act on one layer output of ``out_shape`` (see module docstring)."""
    if len(out_shape) < max(2, len(in_shape)):
        return False
    try:
        group.check_shape(out_shape)
        probe = torch.zeros(1, *out_shape)
        for i in range(group.order):
            if group.act_inverse(group.act(probe, i), i).shape != probe.shape:
                return False
    except (GinvarianceError, RuntimeError, IndexError, ValueError):
        return False
    return True


def _update(stats: _LayerStats, out: Any, group: Group, n: int, b: int) -> None:
    """Add one orbit chunk's output ``(n·b, *shape)`` of a layer to its statistics."""
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n * b, *stats.shape):
        stats.usable = False  # not a tensor with one row per orbit input
    if not stats.usable:
        return
    phi = out.detach().to(torch.float64).reshape(n, b, -1)  # (n, b, D)
    mean = phi.mean(0, keepdim=True)
    stats.within += float(((phi - mean) ** 2).sum())
    if stats.shift is None:  # centre the sums as functional.orbit_statistics does
        stats.shift = phi.mean(dim=(0, 1))
    stats.sum_sq += float(n * ((mean - stats.shift) ** 2).sum())
    sum_z = (phi - stats.shift).sum(dim=(0, 1))
    stats.sum_z = sum_z if stats.sum_z is None else stats.sum_z + sum_z
    stats.count += b
    stats.order = n
    if stats.equivariant_shape:
        back = group.inverse_orbit(out.detach()).to(torch.float64).reshape(n, b, -1)
        stats.defect += float(((back - phi[0:1]) ** 2).sum())


def _select_layers(model: nn.Module, layers: Sequence[str] | None) -> list[tuple[str, nn.Module]]:
    named = dict(model.named_modules())
    if layers is None:
        leaves = [(name, m) for name, m in named.items() if name and not any(m.children())]
        return leaves or [(type(model).__name__, model)]
    if isinstance(layers, str):
        layers = [layers]
    missing = [name for name in layers if name not in named]
    if missing:
        some = ", ".join(list(named)[1:8])
        raise ConfigError(
            f"the model has no layer named {', '.join(map(repr, missing))}; give names from "
            f"model.named_modules() (e.g. {some})"
        )
    return [(name or type(model).__name__, named[name]) for name in layers]


def layerwise_invariance(
    model: nn.Module,
    x: torch.Tensor,
    group: Group | str,
    layers: Sequence[str] | None = None,
    *,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> list[dict[str, Any]]:
    """``li`` and the equivariance error of every layer's output over the orbit of ``x``.

    Parameters
    ----------
    model, x, group:
        ``(B, *S)`` → ``(B, K)`` logits, run in eval mode without gradients (modes restored
        after); inputs ``(N, *S)``; the group (or its name), resolved to ``x``'s sample shape.
    layers:
        Names from ``model.named_modules()`` to hook; default: every leaf module (a module
        without children), in the order they run.
    chunk_size, memory_budget:
        Samples per orbit chunk (default: from the memory budget).

    Returns
    -------
    list of dict
        One entry per layer output, in the order the layers ran in the forward pass:
        ``{"layer": name, "type": class name, "shape": per-sample output shape,
        "li": float | None, "equivariance_error": float | None}``. A layer called more
        than once gets one entry per call (``name#2``, ...). ``li`` is ``None`` for a layer
        whose output does not have one row per orbit input (or is not a tensor).
        When no hooked layer returned the model's output, a last entry ``"output"`` holds
        the logits, whose ``li`` equals :func:`~ginvariance.metrics.invariance_suite`'s.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Flatten())
    >>> rows = layerwise_invariance(model, torch.rand(3, 1, 4, 4), "c4")
    >>> [(r["layer"], r["shape"]) for r in rows]
    [('0', [2, 4, 4]), ('1', [32])]
    """
    check_inputs(x)
    group = get_group(group, tuple(x.shape[1:]))
    in_shape = tuple(x.shape[1:])
    n = group.order
    chunk_size = chunk_size_for(group, in_shape, x.dtype, memory_budget, chunk_size)
    selected = _select_layers(model, layers)

    by_key: dict[str, _LayerStats] = {}  # in the order of the first forward pass
    state: dict[str, Any] = {"b": 0, "calls": {}, "last": None}

    def make_hook(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, out: Any) -> None:
            calls = state["calls"]
            calls[name] = calls.get(name, 0) + 1
            key = name if calls[name] == 1 else f"{name}#{calls[name]}"
            state["last"] = out
            if key not in by_key:
                tensor = isinstance(out, torch.Tensor)
                shape = list(out.shape[1:]) if tensor else []
                acts = tensor and _group_acts_on(group, in_shape, tuple(shape))
                by_key[key] = _LayerStats(key, type(module).__name__, shape, acts)
            _update(by_key[key], out, group, n, state["b"])

        return hook

    handles = [module.register_forward_hook(make_hook(name)) for name, module in selected]
    output_stats: _LayerStats | None = None  # the logits, when no hooked layer returned them
    try:
        with eval_mode(model), torch.no_grad():
            for index, xb in enumerate(x.split(chunk_size)):
                b = xb.shape[0]
                state["b"], state["calls"], state["last"] = b, {}, None
                z = model(group.orbit(xb))
                check_logits(z, n * b, finite=True)
                if index == 0 and state["last"] is not z:
                    output_stats = _LayerStats(OUTPUT, "logits", list(z.shape[1:]), False)
                if output_stats is not None:
                    _update(output_stats, z, group, n, b)
    finally:
        for handle in handles:
            handle.remove()
    rows = [stats.result() for stats in by_key.values()]
    if output_stats is not None:
        rows.append(output_stats.result())
    return rows


__all__ = ["OUTPUT", "layerwise_invariance"]
