"""The study report: a self-contained ``report.html`` and its PNG figures beside it.

The page has inline CSS, no scripts and no external resources; figures are referenced by
their file name. Every file is written atomically, and nothing is written unless the
results are complete (:func:`check_results`), so a folder never holds half a report.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ginvariance.errors import DataError
from ginvariance.folder import OutputFolder, output_folder
from ginvariance.io import atomic_write_bytes, atomic_write_text
from ginvariance.keys import MEASURE_KEYS
from ginvariance.report.figures import measures_figure, saliency_figure, spectral_figure

REPORT_FILE = "report.html"
#: The order of the study's models in every figure and table (others follow).
MODEL_ORDER = ("plain", "augmented", "regularized", "weight-tied")
FIGURES = {
    "saliency": "saliency.png",
    "measures": "measures.png",
    "spectral": "spectral.png",
}
CLAIM_KEYS = ("C1", "C2", "C3", "C4", "C5")

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
td.holds { background: #e3f4e3; color: #165016; font-weight: bold; text-align: center; }
td.fails { background: #fbe3e3; color: #7a1010; font-weight: bold; text-align: center; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f5f5f5; padding: 0 0.2em; }
.note { color: #555; font-size: 0.9em; }
"""


def _fail(what: str) -> DataError:
    return DataError(f"results are incomplete ({what}); run 'ginv run' again to finish them")


def check_results(results: Any) -> list[str]:
    """Check that ``results`` is a complete study; return its model names in order.

    Raises
    ------
    DataError
        A missing model entry, measure, shift, spectral entry or claim.
    """
    if not isinstance(results, Mapping):
        raise _fail("not a dict")
    models = results.get("models")
    if not isinstance(models, Mapping) or not models:
        raise _fail("no models")
    shifts: list[str] | None = None
    for name, entry in models.items():
        if not isinstance(entry, Mapping):
            raise _fail(f"model {name!r} is not a dict")
        for part in ("id", "shift", "spectral"):
            if not isinstance(entry.get(part), Mapping):
                raise _fail(f"model {name!r} has no {part!r}")
        missing = [k for k in ("pdi", "li", "sis") if k not in entry["id"]]
        if missing:
            raise _fail(f"model {name!r} lacks {', '.join(missing)}")
        names = sorted(entry["shift"])
        if shifts is None:
            shifts = names
        elif names != shifts:
            raise _fail(f"model {name!r} was measured under other shifts")
        for key in ("singular_values", "eps", "sensitivity_random", "sensitivity_group"):
            if key not in entry["spectral"]:
                raise _fail(f"model {name!r} has no spectral {key!r}")
    claims = results.get("claims")
    if not isinstance(claims, Mapping):
        raise _fail("no claims")
    for key in CLAIM_KEYS:
        claim = claims.get(key)
        if not isinstance(claim, Mapping) or not {"statement", "numbers", "holds"} <= set(claim):
            raise _fail(f"claim {key} is missing")
    known = [m for m in MODEL_ORDER if m in models]
    return known + [m for m in models if m not in MODEL_ORDER]


def _number(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if 1e-3 <= abs(v) < 1e4:
            return f"{v:.4f}"
        return f"{v:.3e}"
    return html.escape(str(v))


def _pm(mean: Any, std: Any) -> str:
    text = _number(mean)
    if std is not None and mean is not None:
        text += f" ± {_number(std)}"
    return text


def _claims_table(claims: Mapping[str, Any]) -> str:
    rows = []
    for key in CLAIM_KEYS:
        claim = claims[key]
        numbers = "<br>".join(
            f"{html.escape(k)} = {_number(v)}" for k, v in sorted(claim["numbers"].items())
        )
        verdict = "holds" if claim["holds"] else "fails"
        rows.append(
            f"<tr><td class='l'><b>{key}</b></td><td class='l'>{html.escape(claim['statement'])}"
            f"</td><td class='l'>{numbers}</td><td class='{verdict}'>{verdict}</td></tr>"
        )
    return (
        "<table><tr><th class='l'>claim</th><th class='l'>statement</th>"
        "<th class='l'>measured (mean over seeds)</th><th>verdict</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _measures_table(results: Mapping[str, Any], models: list[str]) -> str:
    head = "".join(f"<th>{k}</th>" for k in MEASURE_KEYS)
    rows = []
    for name in models:
        entry = results["models"][name]
        std = entry.get("std") or {}
        conditions = [("in-dist", entry["id"], std.get("id") or {})]
        for shift, values in entry["shift"].items():
            conditions.append((shift, values, (std.get("shift") or {}).get(shift) or {}))
        for i, (label, values, spread) in enumerate(conditions):
            first = f"<td class='l' rowspan='{len(conditions)}'><b>{html.escape(name)}</b></td>"
            cells = "".join(f"<td>{_pm(values.get(k), spread.get(k))}</td>" for k in MEASURE_KEYS)
            rows.append(
                f"<tr>{first if i == 0 else ''}<td class='l'>{html.escape(label)}</td>{cells}</tr>"
            )
    return (
        f"<table><tr><th class='l'>model</th><th class='l'>inputs</th>{head}</tr>"
        + "".join(rows)
        + "</table>"
    )


def _spectral_table(results: Mapping[str, Any], models: list[str]) -> str:
    rows = []
    eps_min = None
    for name in models:
        entry = results["models"][name]
        spectral = entry["spectral"]
        spread = (entry.get("std") or {}).get("spectral") or {}
        eps = list(spectral["eps"])
        i = min(range(len(eps)), key=eps.__getitem__)
        eps_min = eps[i]

        def at(key: str, index: int = i, s: Mapping[str, Any] = spectral, d: Any = spread) -> str:
            std_list = d.get(key) if isinstance(d, Mapping) else None
            std = std_list[index] if isinstance(std_list, list) else None
            return _pm(s[key][index], std)

        power = spectral.get("saliency_power") or {}
        power_std = spread.get("saliency_power") if isinstance(spread, Mapping) else None
        sv = spectral["singular_values"]
        rows.append(
            f"<tr><td class='l'><b>{html.escape(name)}</b></td>"
            f"<td>{_pm(spectral.get('frobenius'), spread.get('frobenius'))}</td>"
            f"<td>{_number(sv[0] if sv else None)}</td>"
            f"<td>{at('sensitivity_random')}</td><td>{at('sensitivity_group')}</td>"
            f"<td>{_number(spectral.get('jacobian_ratio'))}</td>"
            f"<td>{_pm(power.get('high_frequency_fraction'), (power_std or {}).get('high_frequency_fraction'))}</td></tr>"  # noqa: E501
        )
    return (
        "<table><tr><th class='l'>model</th><th>‖J‖<sub>F</sub></th><th>σ<sub>1</sub></th>"
        f"<th>sensitivity, random (ε = {_number(eps_min)})</th>"
        f"<th>sensitivity, group (ε = {_number(eps_min)})</th><th>ratio to ‖J‖<sub>F</sub>/√D</th>"
        "<th>saliency energy above ½ Nyquist</th></tr>" + "".join(rows) + "</table>"
    )


def _config_list(results: Mapping[str, Any]) -> str:
    config = results.get("config") or {}
    items = "".join(
        f"<tr><td class='l'>{html.escape(str(k))}</td><td class='l'><code>"
        f"{html.escape(str(v))}</code></td></tr>"
        for k, v in sorted(config.items())
    )
    versions = ", ".join(
        f"{html.escape(k)} {html.escape(str(v))}"
        for k, v in sorted((results.get("versions") or {}).items())
    )
    # no wall time: the same results give the same page, byte for byte
    return f"<table>{items}</table><p class='note'>Versions: {versions}.</p>" if items else ""


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

    with output_folder(out_dir) as held:  # locked; only ginv's own files are replaced
        return _write_report(results, Path(out_dir), figures, held)


def _write_report(
    results: Mapping[str, Any], out: Path, figures: dict[str, bytes], held: OutputFolder
) -> Path:
    models = check_results(results)
    for key, data in figures.items():
        atomic_write_bytes(out / FIGURES[key], data)
    if "saliency" not in figures:  # an earlier run's grid would not match these results
        held.remove(out / FIGURES["saliency"])

    dataset = html.escape(str(results.get("dataset", "")))
    group = html.escape(str(results.get("group", "")))
    seeds = results.get("seeds") or [results.get("seed")]
    holds = sum(bool(results["claims"][k]["holds"]) for k in CLAIM_KEYS)
    seed_note = (
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): every number is the mean, ± the "
        "sample standard deviation over seeds"
        if len(seeds) > 1
        else f"one seed ({seeds[0]}): run with several seeds for mean ± std"
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
<p>Four classifiers of the same data: <b>plain</b> (no augmentation), <b>augmented</b> (a random
group element per sample), <b>regularized</b> (augmentation plus a penalty on the logits'
deviation from their orbit mean) and <b>weight-tied</b> (group convolutions and group pooling:
invariant by construction). {seed_note}. {holds} of {len(CLAIM_KEYS)} claims hold.</p>

<h2>Claims</h2>
{_claims_table(results["claims"])}

<h2>Saliency over the orbit</h2>
{saliency_html}

<h2>Invariance in distribution and under shift</h2>
<img src='{FIGURES["measures"]}' alt='pdi, li and sis per model and input condition'>
<p class='note'><b>pdi</b>: Jensen–Shannon divergence of the predictive distributions over the
orbit (nats, 0 = invariant; log scale, its absolute value, exact zeros drawn at 1e-18); <b>li</b>:
pooled within-orbit variance of the logits over their total variance (0 = invariant; log
scale); <b>sis</b>: mean cosine of the mapped-back saliency maps to the identity's (1 =
invariant). <code>uniform</code> (pure noise) is the severe shift.</p>
{_measures_table(results, models)}

<h2>Spectral decay</h2>
<img src='{FIGURES["spectral"]}' alt='Jacobian singular values and sensitivity curves'>
<p class='note'>Left: singular values of the input–logit Jacobian, averaged over test samples.
Right: E‖f(x+εu) − f(x)‖/ε for random unit directions u (solid) and for group directions
(g·x − x)/‖g·x − x‖ (dashed). Compare models of the same architecture.</p>
{_spectral_table(results, models)}

<h2>Configuration</h2>
{_config_list(results)}
</body></html>
"""
    return atomic_write_text(out / REPORT_FILE, page)


__all__ = ["FIGURES", "REPORT_FILE", "check_results", "render_report"]
