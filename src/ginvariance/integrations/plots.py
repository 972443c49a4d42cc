"""Figures of the integrations (matplotlib figures without pyplot), returned as PNG bytes.

:func:`plot_layerwise` draws the result of
:func:`ginvariance.metrics.layerwise.layerwise_invariance`: the logit-style invariance
error ``li`` of each layer's output (top) and the equivariance error of the layers the
group acts on (bottom), in the order the layers run — where genuine invariance is born or
lost inside the network. Several models (e.g. ``augmented`` against ``regularized``) may
share one figure when their layers have the same names.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ginvariance.errors import DataError
from ginvariance.io import atomic_write_bytes

#: Values at or below this are drawn at it on the log axes (exact zeros of invariant layers).
LOG_FLOOR = 1e-12

Rows = Sequence[Mapping[str, Any]]


def _as_models(results: Rows | Mapping[str, Rows]) -> dict[str, Rows]:
    if isinstance(results, Mapping):
        models = dict(results)
    else:
        models = {"": results}
    if not models or any(len(rows) == 0 for rows in models.values()):
        raise DataError("no layers to plot; pass the list that layerwise_invariance returns")
    for rows in models.values():
        for row in rows:
            if not isinstance(row, Mapping) or "layer" not in row or "li" not in row:
                raise DataError(
                    "each layer entry must be a dict with 'layer', 'li' and "
                    "'equivariance_error' (the output of layerwise_invariance)"
                )
    return models


def plot_layerwise(
    results: Rows | Mapping[str, Rows],
    path: str | os.PathLike[str] | None = None,
    *,
    title: str = "",
) -> bytes:
    """Per-layer ``li`` and equivariance error, as a PNG.

    Parameters
    ----------
    results:
        The list of per-layer dicts of ``layerwise_invariance`` for one model, or a mapping
        ``{model name: list}`` to compare models on the same axes (layers matched by name,
        in the order of the first model, then any others).
    path:
        When given, the PNG is also written there (atomically).
    title:
        The figure's title.

    Returns
    -------
    bytes
        The PNG image. Layers without a value (``None``) are left out of that panel; values
        are drawn on log axes, with values ``≤ LOG_FLOOR`` drawn at ``LOG_FLOOR``.
    """
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left alone

    models = _as_models(results)
    names: list[str] = []
    for rows in models.values():
        for row in rows:
            if row["layer"] not in names:
                names.append(str(row["layer"]))
    position = {name: i for i, name in enumerate(names)}
    labels = [
        next(
            f"{n} ({r.get('type', '')})"
            for rows in models.values()
            for r in rows
            if r["layer"] == n
        ).replace(" ()", "")
        for n in names
    ]

    width = max(6.0, 0.45 * len(names) + 2.0)
    fig = Figure(figsize=(width, 6.0))
    axes = fig.subplots(2, 1, sharex=True)
    panels = (
        ("li", "li (within-orbit / total variance)"),
        ("equivariance_error", "equivariance error"),
    )
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        drawn = False
        for model, rows in models.items():
            xs, ys = [], []
            for row in rows:
                value = row.get(key)
                if value is not None:
                    xs.append(position[str(row["layer"])])
                    ys.append(max(float(value), LOG_FLOOR))
            if xs:
                ax.plot(xs, ys, marker="o", label=model or None)
                drawn = True
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        if not drawn:
            ax.text(
                0.5,
                0.5,
                "the group acts on no layer output" if key != "li" else "no values",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        if len(models) > 1 and drawn:
            ax.legend(fontsize="small")
    axes[-1].set_xticks(range(len(names)))
    axes[-1].set_xticklabels(labels, rotation=60, ha="right", fontsize="small")
    axes[-1].set_xlabel("layer (in forward order)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    png = buffer.getvalue()
    if path is not None:
        atomic_write_bytes(path, png)
    return png


__all__ = ["LOG_FLOOR", "plot_layerwise"]
