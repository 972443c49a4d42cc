"""The per-layer figure of :func:`ginvariance.metrics.layerwise.layerwise_invariance`: where, in
forward order, genuine invariance is born or lost inside the network.
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


def plot_layerwise(
    results: Rows | Mapping[str, Rows],
    path: str | os.PathLike[str] | None = None,
    *,
    title: str = "",
) -> bytes:
    """Per-layer ``li`` (top) and equivariance error (bottom) on log axes, as PNG bytes.

    ``results`` is the list of per-layer dicts of ``layerwise_invariance`` for one model, or
    ``{model name: list}`` to compare models on the same axes (layers matched by name, in the
    order first seen). Values ``None`` are left out, values ``≤ LOG_FLOOR`` drawn at it. With
    ``path`` the PNG is also written there (atomically); ``title`` heads the figure.
    """
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left alone

    models = dict(results) if isinstance(results, Mapping) else {"": results}
    if not models or any(len(rows) == 0 for rows in models.values()):
        raise DataError("no layers to plot; pass the list that layerwise_invariance returns")
    for rows in models.values():
        for row in rows:
            if not isinstance(row, Mapping) or "layer" not in row or "li" not in row:
                raise DataError(
                    "each layer entry must be a dict with 'layer', 'li' and "
                    "'equivariance_error' (the output of layerwise_invariance)"
                )
    names: list[str] = []  # in the order first seen, each labelled with its type
    labels: list[str] = []
    for rows in models.values():
        for row in rows:
            if str(row["layer"]) not in names:
                names.append(str(row["layer"]))
                labels.append(f"{row['layer']} ({row.get('type', '')})".replace(" ()", ""))
    position = {name: i for i, name in enumerate(names)}

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
            xy = [
                (position[str(row["layer"])], max(float(row[key]), LOG_FLOOR))
                for row in rows
                if row.get(key) is not None
            ]
            if xy:
                ax.plot(*zip(*xy, strict=True), marker="o", label=model or None)
                drawn = True
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        if not drawn:
            note = "the group acts on no layer output" if key != "li" else "no values"
            ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
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
