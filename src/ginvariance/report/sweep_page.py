"""The sweep's figure and page, ``sweep.png`` and a self-contained ``sweep.html``, drawn from
``sweep.json`` (:func:`ginvariance.experiments.sweep.run_sweep`)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ginvariance.experiments.defaults import CONFIDENCE, SWEEP_FIGURE, SWEEP_PAGE
from ginvariance.experiments.sweep_config import lam_text
from ginvariance.report.figures import _png, subplots


def _x_positions(lams: Sequence[float]) -> tuple[dict[float, float], float | None]:
    """Each λ's place on the log axis (``λ = 0`` one decade below the smallest positive one),
    and that of ``λ = 0`` (``None`` without it)."""
    positive = {v: v for v in lams if v > 0}
    zero = min(positive) / 10.0 if positive else 1.0
    return ({**positive, 0.0: zero}, zero) if 0.0 in lams else (positive, None)


def sweep_figure(summary: Mapping[str, Any]) -> bytes:
    """``pdi``, ``li``, ``sis`` and accuracy against ``λ`` as PNG bytes.

    One panel per measure; one colour per (group, data set, model); in distribution solid,
    under each shift dashed; error bars the confidence intervals over seeds; the weight-tied
    reference as a horizontal line of the same style. ``λ`` is on a log axis with ``λ = 0``
    (the augmented model) drawn one decade left of the smallest positive ``λ``, past a break.
    ``pdi`` and ``li`` are on log axes (their absolute value; values below the smallest
    unconstrained one / 100 — the weight-tied reference's rounding errors — sit on the floor).
    """
    entries = list(summary["entries"])
    swept = [e for e in entries if e["lam"] is not None]
    refs = [e for e in entries if e["lam"] is None]
    lams = sorted({float(e["lam"]) for e in swept})
    pos, zero = _x_positions(lams) if lams else ({}, None)
    shifts = sorted({s for e in entries for s in e["shift"]})
    conditions = [("id", "in distribution", "-", "o")] + [
        (s, f"under {s}", "--", "s") for s in shifts
    ]
    panels = [
        ("pdi", "pdi (nats, 0 = invariant)", True),
        ("li", "li (0 = invariant)", True),
        ("sis", "sis (1 = invariant)", False),
        ("accuracy", "accuracy (test, untransformed)", False),
    ]
    series = sorted({(e["group"], e["dataset"], e["model"]) for e in swept})
    colors = {s: f"C{i % 10}" for i, s in enumerate(series)}
    fig, axes = subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)

    def values(e: Mapping[str, Any], cond: str, key: str) -> dict[str, Any] | None:
        block = e["id"] if cond == "id" else e["shift"].get(cond, {})
        s = block.get(key)
        return s if s and s.get("mean") is not None else None

    for ax, (key, label, log) in zip(axes[0], panels, strict=True):
        floor = -math.inf  # a log axis: the smallest nonzero |value| / 100
        if log:
            mins = [
                abs(s["mean"])
                for e in swept
                for cond, *_ in conditions
                if (s := values(e, cond, key)) and abs(s["mean"]) > 0
            ]
            floor = (min(mins) / 100.0) if mins else 1e-12
        for sid in series:
            cells = sorted(
                (e for e in swept if (e["group"], e["dataset"], e["model"]) == sid),
                key=lambda e: e["lam"],
            )
            for cond, cond_label, style, marker in conditions:
                xs, ys, lo, hi = [], [], [], []
                for e in cells:
                    s = values(e, cond, key)
                    if s is None:
                        continue
                    m = abs(s["mean"]) if log else s["mean"]
                    half = s["half"] or 0.0
                    y = max(m, floor)
                    xs.append(pos[float(e["lam"])])
                    ys.append(y)
                    bottom = max(m - half, floor)
                    lo.append(y - bottom if y >= bottom else 0.0)
                    hi.append(max(m + half, y) - y)
                if not xs:
                    continue
                name = f"{sid[2]} ({sid[0]}, {sid[1]})" if len(series) > 1 else sid[2]
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[lo, hi],
                    fmt=style,
                    marker=marker,
                    color=colors[sid],
                    capsize=3,
                    markersize=4,
                    label=f"{name}, {cond_label}",
                )
        for i, e in enumerate(refs):
            for cond, cond_label, style, _ in conditions:
                s = values(e, cond, key)
                if s is None:
                    continue
                m = abs(s["mean"]) if log else s["mean"]
                note = " (at floor)" if m < floor else ""
                ax.axhline(
                    max(m, floor),
                    color="#2ca02c" if len(refs) == 1 else f"C{(i + 3) % 10}",
                    linestyle=style,
                    linewidth=1.2,
                    alpha=0.8,
                    label=f"weight-tied ({e['group']}, {e['dataset']}), {cond_label}: "
                    f"{m:.2g}{note}",
                )
        if lams and any(v > 0 for v in lams):
            ax.set_xscale("log")
            ax.set_xticks([pos[v] for v in lams])
            ax.set_xticklabels(["0" if v == 0 else lam_text(v) for v in lams])
            ax.minorticks_off()
            if zero is not None and len(lams) > 1:
                gap = math.sqrt(zero * min(v for v in lams if v > 0))
                ax.axvline(gap, color="#999", linewidth=0.8, linestyle=":")
        if log:
            ax.set_yscale("log")
        elif key == "accuracy":
            ax.set_ylim(-0.02, 1.02)  # a CI over few seeds can reach past [0, 1]
        ax.set_xlabel("λ (0 = augmented)")
        ax.set_title(label, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02 - 0.045 * math.ceil(len(labels) / 2)),
    )
    fig.suptitle("Invariance bought by regularization, and its cost in accuracy", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def _cell(s: Mapping[str, Any] | None) -> str:
    if not s or s.get("mean") is None:
        return "—"
    text = f"{s['mean']:.3g}"
    if s.get("std") is not None:
        text += f" ± {s['std']:.2g}"
    if s.get("ci") is not None:
        text += f"<br><small>[{s['ci'][0]:.3g}, {s['ci'][1]:.3g}]</small>"
    return text


def render_sweep(summary: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write ``sweep.png`` and a small self-contained ``sweep.html`` beside it.

    The page has inline CSS, no scripts; it shows the figure and, per cell, mean ± std and
    the confidence interval of each measure in distribution and under each shift.
    """
    from ginvariance.io import atomic_write_bytes, atomic_write_text, ensure_dir

    out = ensure_dir(out_dir)
    atomic_write_bytes(out / SWEEP_FIGURE, sweep_figure(summary))
    entries = list(summary["entries"])
    shifts = sorted({s for e in entries for s in e["shift"]})
    keys = ("pdi", "li", "sis")
    head = "".join(f"<th>{k}</th>" for k in keys)
    header = (
        "<tr><th class='l'>group</th><th class='l'>data</th><th class='l'>model</th>"
        "<th>λ</th><th>seeds</th><th>accuracy</th><th>orbit accuracy</th>"
        + head
        + "".join(f"<th>{k} ({html.escape(s)})</th>" for s in shifts for k in keys)
        + "</tr>"
    )
    rows = []
    for e in entries:
        lam = "—" if e["lam"] is None else lam_text(e["lam"])
        cells = [
            _cell(e["id"].get("accuracy")),
            _cell(e["id"].get("orbit_accuracy")),
            *(_cell(e["id"].get(k)) for k in keys),
            *(_cell(e["shift"][s].get(k)) for s in shifts for k in keys),
        ]
        rows.append(
            f"<tr><td class='l'>{html.escape(e['group'])}</td>"
            f"<td class='l'>{html.escape(e['dataset'])}</td>"
            f"<td class='l'>{html.escape(e['model'])}</td><td>{lam}</td>"
            f"<td>{len(e['seeds'])}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    skipped = "".join(
        f"<li>{html.escape(s['group'])}, {html.escape(s['dataset'])}: "
        f"{html.escape(s['reason'])}</li>"
        for s in summary.get("references_skipped", [])
    )
    skipped_html = f"<p>No weight-tied reference for:</p><ul>{skipped}</ul>" if skipped else ""
    confidence = float(summary.get("confidence", CONFIDENCE))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invariance sweep over λ</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }}
th {{ background: #f3f3f3; }} .l {{ text-align: left; }}
img {{ max-width: 100%; }} .note {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>Invariance sweep over λ</h1>
<img src='{SWEEP_FIGURE}' alt='pdi, li, sis and accuracy against λ'>
<p class='note'>λ = 0 is the augmented model (learned invariance); λ &gt; 0 adds λ times the
invariance penalty over the orbit; weight-tied (λ —) is invariant by construction. Each
cell: mean ± sample std over seeds, and below it the {confidence:.0%} confidence interval of
the mean (Student's t). pdi and li: 0 = invariant; sis: 1 = invariant.</p>
<table>{header}{"".join(rows)}</table>
{skipped_html}
</body></html>
"""
    return atomic_write_text(out / SWEEP_PAGE, page)


__all__ = ["render_sweep", "sweep_figure"]
