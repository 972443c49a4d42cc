"""The report's figures as PNG bytes, each drawn on a bare matplotlib ``Figure`` (no pyplot:
a notebook's backend is left alone)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Colours of the four models (colour-blind safe, fixed so every figure agrees).
MODEL_COLORS: dict[str, str] = {
    "plain": "#7f7f7f",
    "augmented": "#d62728",
    "regularized": "#1f77b4",
    "regularized-normalized": "#17becf",
    "weight-tied": "#2ca02c",
    "symmetrized": "#9467bd",
}
#: The value drawn for ``|pdi|`` or ``li`` at or below it on a log axis (exact zeros).
LOG_FLOOR = 1e-18


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` like ``pyplot.subplots``, on a bare :class:`~matplotlib.figure.Figure`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _color(name: str, index: int) -> str:
    return MODEL_COLORS.get(name, f"C{index % 10}")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a.ravel(), b.ravel()) / (na * nb))


def _as_map(s: np.ndarray) -> np.ndarray:
    """A saliency map of one sample as a 1-D curve or a 2-D image (channels summed)."""
    s = np.asarray(s, dtype=np.float64)
    squeezed = np.squeeze(s)
    if squeezed.ndim <= 2:
        return np.atleast_1d(squeezed)
    return s.reshape(-1, *s.shape[-2:]).sum(axis=0)


def saliency_figure(
    saliency: Mapping[str, np.ndarray],
    models: Sequence[str],
    elements: Sequence[str],
) -> bytes:
    """Saliency maps over the orbit, mapped back to the input's frame (the paper's Figure 1;
    1-D signals as overlaid curves).

    Parameters
    ----------
    saliency:
        ``"x"``: the inputs ``(m, *S)``; per model name, ``(n, m, *S)`` with entry ``[i, b]``
        the map ``g_i⁻¹ · ∇_u f(u)[c_b]`` at ``u = g_i · x_b``.
    models:
        The models to draw, one row (per sample) each.
    elements:
        The names of the ``n`` group elements (column titles).

    Each row shares one symmetric colour scale; the title of each map gives its cosine to
    the identity's map (the terms of ``sis``).
    """
    x = np.asarray(saliency["x"])
    m = x.shape[0]
    one_d = _as_map(x[0]).ndim == 1
    names = [name for name in models if name in saliency]
    rows = [(name, b) for b in range(m) for name in names]
    n = len(elements)
    if one_d:
        fig, axes = subplots(len(rows), 1, figsize=(12, 2.0 * len(rows)), squeeze=False)
        from matplotlib import colormaps

        colors = colormaps["viridis"](np.linspace(0.0, 1.0, n))
        for ax, (name, b) in zip(axes[:, 0], rows, strict=True):
            maps = [_as_map(s) for s in np.asarray(saliency[name])[:, b]]
            vmax = max(max(float(np.abs(s).max()) for s in maps), 1e-30)
            signal = _as_map(x[b]) - float(np.mean(x[b]))
            scale = max(float(np.abs(signal).max()), 1e-30)
            ax.plot(signal / scale * vmax, color="0.75", lw=2, label="input x (scaled)")
            for i, s in enumerate(maps):
                ax.plot(s, color=colors[i], lw=0.8, alpha=0.8)
            mean_cos = float(np.mean([_cosine(s, maps[0]) for s in maps[1:]])) if n > 1 else 1.0
            ax.set_ylabel(f"{name}\nsample {b}", fontsize=8)
            ax.set_title(
                f"{n} maps g⁻¹·s_g overlaid (colour = element); mean cosine to the "
                f"identity's {mean_cos:.3f}",
                fontsize=8,
            )
            ax.tick_params(labelsize=7)
        axes[0, 0].legend(fontsize=7, loc="upper right")
        fig.suptitle("Saliency of g·x mapped back by g⁻¹ (identical curves = genuine)", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.98))
    else:
        fig = _saliency_mosaic(saliency, x, rows, elements)
    return _png(fig)


def _saliency_mosaic(
    saliency: Mapping[str, np.ndarray],
    x: np.ndarray,
    rows: Sequence[tuple[str, int]],
    elements: Sequence[str],
) -> Any:
    """One RGB mosaic on a single axis (fast for many rows): per row the input (grey) and the
    mapped-back maps on one symmetric colour scale, each with its cosine to the identity's."""
    from matplotlib import colormaps

    n = len(elements)
    h, w = _as_map(x[0]).shape
    pad_x, pad_y = max(1, w // 8), max(3, h // 3)
    cell_w, cell_h = w + pad_x, h + pad_y
    mosaic = np.ones((len(rows) * cell_h, (n + 1) * cell_w, 3))
    gray, diverging = colormaps["gray_r"], colormaps["RdBu_r"]
    labels = []
    for r, (name, b) in enumerate(rows):
        top = r * cell_h + pad_y
        image = _as_map(x[b])
        lo, hi = float(image.min()), float(image.max())
        mosaic[top : top + h, :w] = gray((image - lo) / (hi - lo if hi > lo else 1.0))[..., :3]
        maps = [_as_map(m) for m in np.asarray(saliency[name])[:, b]]
        vmax = max(max(float(np.abs(m).max()) for m in maps), 1e-30)
        for i, image in enumerate(maps):
            left = (i + 1) * cell_w
            mosaic[top : top + h, left : left + w] = diverging(0.5 + 0.5 * image / vmax)[..., :3]
            labels.append((left + w / 2, top - 0.6, f"{_cosine(image, maps[0]):.3f}"))
    height, width = mosaic.shape[:2]
    fig, ax = subplots(figsize=(2.0 + 1.5 * (n + 1), 0.8 + 1.6 * len(rows)))
    ax.imshow(mosaic, interpolation="nearest", extent=(0, width, height, 0))
    for cx, cy, text in labels:
        ax.text(cx, cy, text, ha="center", va="bottom", fontsize=8)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(
        ScalarMappable(norm=Normalize(-1.0, 1.0), cmap=diverging),
        ax=ax,
        fraction=0.035,
        pad=0.02,
        ticks=[-1.0, -0.5, 0.0, 0.5, 1.0],
    )
    bar.set_label("saliency ÷ the largest |saliency| of its row", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    ax.set_xticks([w / 2 + k * cell_w for k in range(n + 1)])
    ax.set_xticklabels(["input x", *elements], fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks([r * cell_h + pad_y + h / 2 for r in range(len(rows))])
    ax.set_yticklabels([f"{name} (sample {b})" for name, b in rows], fontsize=9)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(
        "Saliency of g·x mapped back by g⁻¹, cosine to the identity's map above each "
        "(identical across a row = genuine)",
        fontsize=10,
        pad=14,
    )
    return fig


def _value(entry: Mapping[str, Any], condition: str, key: str) -> float:
    values = entry["id"] if condition == "id" else entry["shift"][condition]
    v = values.get(key)
    return math.nan if v is None else float(v)


def _std(entry: Mapping[str, Any], condition: str, key: str) -> float | None:
    std = entry.get("std") or {}
    values = std.get("id") if condition == "id" else (std.get("shift") or {}).get(condition)
    v = values.get(key) if isinstance(values, Mapping) else None
    return None if v is None else abs(float(v))


def measures_figure(results: Mapping[str, Any], models: Sequence[str]) -> bytes:
    """Grouped bars of ``|pdi|``, ``li`` and ``sis`` per input condition and model.

    Error bars are the std over seeds (several seeds only). ``|pdi|`` and ``li`` are drawn
    on a log axis, values at or below :data:`LOG_FLOOR` at the floor.
    """
    conditions = ["id", *results["models"][models[0]]["shift"]]
    keys = (("pdi", "|pdi| (nats)", True), ("li", "li", True), ("sis", "sis", False))
    fig, axes = subplots(3, 1, figsize=(max(7.0, 1.1 * len(conditions)), 8.5), sharex=True)
    width = 0.8 / len(models)
    positions = np.arange(len(conditions))
    for ax, (key, label, log) in zip(axes, keys, strict=True):
        for j, name in enumerate(models):
            entry = results["models"][name]
            values = [_value(entry, c, key) for c in conditions]
            if log:  # |v| on the log axis, at least LOG_FLOOR
                values = [max(abs(v), LOG_FLOOR) if math.isfinite(v) else math.nan for v in values]
            errors = [_std(entry, c, key) or 0.0 for c in conditions]
            ax.bar(
                positions + (j - (len(models) - 1) / 2) * width,
                values,
                width,
                yerr=errors if any(errors) else None,
                color=_color(name, j),
                label=name,
            )
        ax.set_ylabel(label)
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(positions)
    axes[-1].set_xticklabels(["in-dist" if c == "id" else c for c in conditions], rotation=20)
    axes[0].legend(fontsize=8, ncol=len(models), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.suptitle("Invariance measures in distribution and under shift", fontsize=10, y=1.0)
    return _png(fig)


def _scaled(values: Any, scale: Any) -> np.ndarray:
    """``values / scale`` with ``None`` (and a missing or zero scale) as NaN."""
    arr = np.asarray(values, dtype=np.float64)
    if not isinstance(scale, int | float) or not scale > 0:
        return np.full_like(arr, math.nan)
    return arr / float(scale)


def spectral_figure(results: Mapping[str, Any], models: Sequence[str]) -> bytes:
    """Mean Jacobian singular values and random-direction sensitivity against ``ε``, per
    model, raw (solid) and divided by the model's logit scale (dashed)."""
    fig, (left, right) = subplots(1, 2, figsize=(11, 4.8))
    for j, name in enumerate(models):
        spectral = results["models"][name]["spectral"]
        color, scale = _color(name, j), spectral.get("logit_scale")
        sv = np.asarray(spectral["singular_values"], dtype=np.float64)
        for ax, xs, ys in (
            (left, np.arange(1, sv.size + 1), sv),
            (right, np.asarray(spectral["eps"], dtype=np.float64), spectral["sensitivity_random"]),
        ):
            ax.plot(xs, np.maximum(_scaled(ys, 1), LOG_FLOOR), "o-", color=color, label=name)
            ax.plot(xs, np.maximum(_scaled(ys, scale), LOG_FLOOR), "o--", color=color, alpha=0.7)
    left.set_xlabel("index k")
    left.set_ylabel("mean singular value σ_k of ∂z/∂x")
    left.set_title("Jacobian spectrum: raw (solid), ÷ logit scale (dashed)", fontsize=9)
    right.set_xscale("log")
    right.set_xlabel("ε")
    right.set_ylabel("E‖f(x+εu) − f(x)‖ / ε")
    right.set_title("Random-direction sensitivity: raw (solid), ÷ logit scale (dashed)", fontsize=9)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Spectral decay", fontsize=10)
    fig.tight_layout()
    return _png(fig)


__all__ = ["MODEL_COLORS", "measures_figure", "saliency_figure", "spectral_figure"]
