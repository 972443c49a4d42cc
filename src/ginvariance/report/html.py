"""The study's ``report.html`` (inline CSS, no scripts, no external resources; its sections
are :mod:`~ginvariance.report.sections`) and its PNG figures beside it, each written
atomically and only once :func:`check_results` accepts the results."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ginvariance.experiments.claims import CLAIM_KEYS
from ginvariance.experiments.defaults import REPORT_FILE
from ginvariance.folder import output_folder
from ginvariance.io import atomic_write_bytes, atomic_write_text
from ginvariance.report.figures import measures_figure, saliency_figure, spectral_figure
from ginvariance.report.sections import (
    EXPECTATIONS,
    claim_readings,
    claim_verdict,
    claims_table,
    config_table,
    deciding_text,
    lead,
    measures_table,
    routes_table,
    spectral_table,
    verdict_table,
)
from ginvariance.report.validate import check_results

FIGURES = {
    "saliency": "saliency.png",
    "measures": "measures.png",
    "spectral": "spectral.png",
}

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
td.holds { background: #e3f4e3; color: #165016; font-weight: bold; text-align: center; }
td.fails { background: #fbe3e3; color: #7a1010; font-weight: bold; text-align: center; }
td.unclear { background: #fdf3d8; color: #6b4e00; font-weight: bold; text-align: center; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f5f5f5; padding: 0 0.2em; }
.note { color: #555; font-size: 0.9em; }
h1 { margin-bottom: 0.2em; }
p.lead { font-size: 1.15em; margin: 0.3em 0; }
table.verdicts { font-size: 0.92em; }
table.verdicts td { white-space: nowrap; }
table.verdicts td.q { white-space: normal; }
.expect { background: #f4f6fb; border-left: 4px solid #8aa1d1; padding: 0.4em 0.8em; }
"""


def render_report(
    results: Mapping[str, Any],
    out_dir: str | Path,
    saliency: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Draw the figures and write ``out_dir/report.html`` beside them.

    Parameters
    ----------
    results:
        The results of :func:`ginvariance.experiments.run_study` (or ``results.json``).
    out_dir:
        The folder of the report (``saliency.png``, ``measures.png``, ``spectral.png``,
        ``report.html``).
    saliency:
        The saliency maps of the grid (the arrays of ``saliency.npz``: ``x`` and one
        ``(n, m, *S)`` per model); without them the grid is left out and the page says so.

    Returns
    -------
    Path
        The ``report.html`` written.

    Raises
    ------
    DataError
        The results are incomplete (nothing is written).
    OutputError
        Another process holds the folder, or a file of the report's names exists that ginv
        did not write (:mod:`ginvariance.folder`).
    """
    models = check_results(results)
    elements = list(results.get("group_elements") or [])
    figures: dict[str, bytes] = {}
    if saliency is not None and "x" in saliency and any(m in saliency for m in models):
        n = next(np.asarray(saliency[m]).shape[0] for m in models if m in saliency)
        if len(elements) != n:
            elements = [f"g{i}" for i in range(n)]
        figures["saliency"] = saliency_figure(saliency, models, elements)
    figures["measures"] = measures_figure(results, models)
    figures["spectral"] = spectral_figure(results, models)

    dataset = html.escape(str(results.get("dataset", "")))
    group = html.escape(str(results.get("group", "")))
    seeds = results.get("seeds") or [results.get("seed")]
    expect = EXPECTATIONS.get(str(results.get("dataset", "")))
    expect_html = f"<p class='expect'>{html.escape(expect)}</p>" if expect else ""
    seed_note = (
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): every number is the mean over "
        "seeds ± the half-width of its 95% Student-t confidence interval"
        if len(seeds) > 1
        else f"one seed ({seeds[0]}): run with several seeds for means and intervals"
    )
    if "saliency" in figures:
        saliency_html = (
            f"<img src='{FIGURES['saliency']}' alt='saliency maps over the orbit'>"
            "<p class='note'>Each row: one model and one test input. Column <i>g</i> shows the "
            "vanilla-gradient saliency of the class predicted on <i>x</i>, taken at "
            "<i>g·x</i> and mapped back by <i>g</i>⁻¹; the title gives its cosine to the "
            "identity's map (the terms of sis). A genuinely invariant model shows one map "
            "repeated; learned invariance shows maps that drift.</p>"
        )
    else:
        saliency_html = (
            "<p class='note'>No saliency maps were found (saliency.npz); run "
            "<code>ginv run</code> again to draw them.</p>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Genuine vs learned invariance: {dataset}, {group}</title>
<style>{_CSS}</style></head>
<body>
<h1>Genuine vs learned invariance: {dataset}, group {group}</h1>
{lead(results, list(seeds))}
{verdict_table(results["claims"])}
{expect_html}
<h2>What the verdicts say</h2>
{"".join(f"<p>{html.escape(t)}</p>" for t in claim_readings(results["claims"]))}

<h2>The study</h2>
<p>Classifiers of the same data: <b>plain</b> (no augmentation), <b>augmented</b> (a random
group element per sample), <b>regularized</b> (augmentation plus a penalty on the logits'
deviation from their orbit mean), <b>regularized-normalized</b> (the same deviation divided by
the spread of the logits across the batch, which shrinking the logits cannot lower),
<b>weight-tied</b> (group convolutions and group pooling: invariant by construction) and
<b>symmetrized</b> (the augmented net averaged over the group at inference). {seed_note}.</p>

<h2>Claims in detail</h2>
{claims_table(results["claims"], len(seeds) > 1)}

<h2>Three routes to genuine invariance</h2>
{routes_table(results, models)}

<h2>Saliency over the orbit</h2>
{saliency_html}

<h2>Invariance in distribution and under shift</h2>
<img src='{FIGURES["measures"]}' alt='pdi, li and sis per model and input condition'>
<p class='note'><b>pdi</b>: Jensen–Shannon divergence of the predictive distributions over the
orbit (nats, 0 = invariant; log scale, its absolute value, exact zeros drawn at 1e-18); <b>li</b>:
pooled within-orbit variance of the logits over their total variance (0 = invariant; log
scale); <b>sis</b>: mean cosine of the mapped-back saliency maps to the identity's (1 =
invariant). <code>uniform</code> (pure noise) is the severe shift.</p>
{measures_table(results, models)}

<h2>Spectral decay</h2>
<img src='{FIGURES["spectral"]}' alt='Jacobian singular values and sensitivity curves'>
<p class='note'>Left: singular values σ<sub>k</sub> of the input–logit Jacobian, averaged over
test samples, raw (solid) and divided by the model's logit scale (dashed). Right:
E‖f(x+εu) − f(x)‖/ε for random unit directions u, raw (solid) and divided by the logit scale
(dashed). Every raw figure scales with the logits (f → α·f multiplies it by α); the
<b>logit scale</b> is the spread of a model's in-distribution logits,
sqrt(mean ‖z(x) − μ‖²), and the columns "÷ logit scale" do not change under f → α·f + b, nor do
σ<sub>2</sub>/σ<sub>1</sub> and the effective rank (exp of the entropy of the normalized
singular values). The <b>Lie derivative</b> is mean ‖d/dt f(T<sub>t</sub>x)‖ at t = 0 along a
continuous transformation (rotation by t radians for images, sub-pixel cyclic translation for
shifts): local invariance, which exact invariance to a finite group does not imply. The
saliency energy above half the Nyquist radius is reported without an expected direction (white
noise scores 0.81 on 8×8). Compare models of the same architecture.</p>
{spectral_table(results, models)}

<h2>Configuration</h2>
{config_table(results)}
</body></html>
"""
    out = Path(out_dir)
    with output_folder(out) as held:  # locked; only ginv's own files are replaced
        for key, data in figures.items():
            atomic_write_bytes(out / FIGURES[key], data)
        if "saliency" not in figures:  # an earlier run's grid would not match these results
            held.remove(out / FIGURES["saliency"])
        return atomic_write_text(out / REPORT_FILE, page)


__all__ = [
    "CLAIM_KEYS",
    "FIGURES",
    "REPORT_FILE",
    "check_results",
    "claim_readings",
    "claim_verdict",
    "deciding_text",
    "render_report",
]
