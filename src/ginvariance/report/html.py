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
from ginvariance.io import atomic_write_bytes, atomic_write_text, ensure_dir
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


def _damaged(what: str) -> DataError:
    return DataError(
        f"results are damaged ({what}); run 'ginv run' again to measure them anew, or restore "
        "results.json"
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_numbers(values: Any, where: str, keys: tuple[str, ...] = MEASURE_KEYS) -> None:
    """The entries ``keys`` of the mapping ``values``, where present, are numbers or ``None``
    (an undefined measure); ``values`` may be ``None``."""
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise _damaged(f"{where} is {type(values).__name__}, not a dict")
    for key in keys:
        v = values.get(key)
        if not (v is None or _is_number(v)):
            raise _damaged(f"{where} {key!r} is {v!r}, not a number")


def _check_list(values: Any, where: str, length: int | None = None) -> None:
    if values is None and length is None:
        return
    if not isinstance(values, list) or not all(v is None or _is_number(v) for v in values):
        raise _damaged(f"{where} is {values!r}, not a list of numbers")
    if length is not None and len(values) != length:
        raise _damaged(f"{where} has {len(values)} values for {length} step sizes")


#: The spectral entries the report draws, besides its lists.
_SPECTRAL_NUMBERS = ("frobenius", "jacobian_ratio")


def _check_spectral(spectral: Mapping[str, Any], where: str, *, std: bool = False) -> None:
    """The spectral entries the report draws are numbers and lists of numbers."""
    eps = spectral.get("eps")
    if not std:
        if not isinstance(eps, list) or not eps:
            raise _damaged(f"{where} 'eps' is {eps!r}, not a non-empty list of step sizes")
        if not all(_is_number(e) and math.isfinite(e) and e > 0 for e in eps):
            raise _damaged(f"{where} 'eps' is {eps!r}, not a list of positive numbers")
    n = None if std else len(eps)
    _check_list(spectral.get("singular_values"), f"{where} 'singular_values'")
    for key in ("sensitivity_random", "sensitivity_group"):
        _check_list(spectral.get(key), f"{where} {key!r}", n)
    _check_numbers(spectral, where, _SPECTRAL_NUMBERS)
    power = spectral.get("saliency_power")
    if power is not None:
        _check_numbers(power, f"{where} 'saliency_power'", ("high_frequency_fraction",))


def check_results(results: Any) -> list[str]:
    """Check that ``results`` is a complete study; return its model names in order.

    Every value the report draws is checked for its type too (a number, or ``None`` where a
    measure is undefined; non-empty lists of step sizes), so that a hand-edited or damaged
    ``results.json`` is refused before anything is written.

    Raises
    ------
    DataError
        A missing model entry, measure, shift, spectral entry or claim, or a value of the
        wrong type.
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
        _check_numbers(entry["id"], f"model {name!r} id")
        for shift, values in entry["shift"].items():
            _check_numbers(values, f"model {name!r} shift {shift!r}")
        _check_spectral(entry["spectral"], f"model {name!r} spectral")
        std = entry.get("std")
        if std is not None:
            if not isinstance(std, Mapping):
                raise _damaged(f"model {name!r} std is not a dict")
            _check_numbers(std.get("id"), f"model {name!r} std id")
            shift_std = std.get("shift")
            if shift_std is not None:
                if not isinstance(shift_std, Mapping):
                    raise _damaged(f"model {name!r} std shift is not a dict")
                for shift, values in shift_std.items():
                    _check_numbers(values, f"model {name!r} std shift {shift!r}")
            spectral_std = std.get("spectral")
            if spectral_std is not None:
                if not isinstance(spectral_std, Mapping):
                    raise _damaged(f"model {name!r} std spectral is not a dict")
                _check_spectral(spectral_std, f"model {name!r} std spectral", std=True)
    claims = results.get("claims")
    if not isinstance(claims, Mapping):
        raise _fail("no claims")
    for key in CLAIM_KEYS:
        claim = claims.get(key)
        if not isinstance(claim, Mapping) or not {"statement", "numbers", "holds"} <= set(claim):
            raise _fail(f"claim {key} is missing")
        if not isinstance(claim["statement"], str) or not isinstance(claim["holds"], bool):
            raise _damaged(f"claim {key} has a statement or verdict of the wrong type")
        if not isinstance(claim["numbers"], Mapping):
            raise _damaged(f"claim {key} numbers are not a dict")
    for key in ("dataset", "group"):
        if not isinstance(results.get(key), str):
            raise _damaged(f"{key!r} is {results.get(key)!r}, not a name")
    seeds = results.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(_is_number(s) for s in seeds):
        raise _damaged(f"'seeds' is {seeds!r}, not a list of seeds")
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
    total = (results.get("timings") or {}).get("total")
    timing = f" Wall time of the run: {total:.1f} s." if isinstance(total, int | float) else ""
    return (
        f"<table>{items}</table><p class='note'>Versions: {versions}.{timing}</p>" if items else ""
    )


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

    out = ensure_dir(out_dir)
    for key, data in figures.items():
        atomic_write_bytes(out / FIGURES[key], data)

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
