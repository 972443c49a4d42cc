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
from ginvariance.experiments.claims import CLAIM_KEYS, claim_statements, regularized_in
from ginvariance.experiments.study import MODELS
from ginvariance.folder import OutputFolder, output_folder
from ginvariance.io import atomic_write_bytes, atomic_write_text
from ginvariance.keys import MEASURE_KEYS
from ginvariance.report.figures import measures_figure, saliency_figure, spectral_figure

REPORT_FILE = "report.html"
#: The order of the study's models in every figure and table (others follow).
MODEL_ORDER = MODELS
#: The routes to genuine invariance that the report compares, with the augmented baseline.
ROUTES = {
    "augmented": "baseline: data augmentation",
    "regularized": "regularization (logit penalty)",
    "regularized-normalized": "regularization (scale-free penalty)",
    "symmetrized": "frame averaging of the augmented net",
    "weight-tied": "weight-tying (group convolutions)",
}
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

#: What to expect of the claims on data sets other than the study's digits: a reader of a
#: report whose claims fail should know whether that is news.
EXPECTATIONS: dict[str, str] = {
    "mnist1d": (
        "What to expect on mnist1d: C2 and C3 have failed on it in this project's runs, so a "
        "fail there is the expected outcome, not a fault of this run. Their thresholds are set "
        "on digits under c4, a group of 4 elements; mnist1d's 1-D signals of 40 samples under "
        "cyclic1d have 40. An augmented net must learn invariance to 40 shifts from 3,600 "
        "signals, so it is far less invariant in distribution already, and C3 asks uniform "
        "noise to make it 5 times worse still (pdi cannot exceed ln K = 2.30 nats for 10 "
        "classes, which caps the ratio); C2 asks its saliency maps to disagree over the orbit "
        "by a clear margin while the weight-tied net's agree. The readings below give this "
        "run's numbers."
    ),
}


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
_SPECTRAL_NUMBERS = (
    "frobenius",
    "jacobian_ratio",
    "logit_scale",
    "frobenius_normalized",
    "lie_derivative",
    "lie_derivative_normalized",
    "effective_rank",
)


def _check_spectral(spectral: Mapping[str, Any], where: str, *, std: bool = False) -> None:
    """The spectral entries the report draws are numbers and lists of numbers."""
    eps = spectral.get("eps")
    if not std:
        if not isinstance(eps, list) or not eps:
            raise _damaged(f"{where} 'eps' is {eps!r}, not a non-empty list of step sizes")
        if not all(_is_number(e) and math.isfinite(e) and e > 0 for e in eps):
            raise _damaged(f"{where} 'eps' is {eps!r}, not a list of positive numbers")
    n = None if std or not isinstance(eps, list) else len(eps)
    _check_list(spectral.get("singular_values"), f"{where} 'singular_values'")
    for key in ("sensitivity_random", "sensitivity_group"):
        _check_list(spectral.get(key), f"{where} {key!r}", n)
    for key in ("sensitivity_random_normalized", "sensitivity_probability"):
        if spectral.get(key) is not None:
            _check_list(spectral.get(key), f"{where} {key!r}", n)
    for key in ("singular_values_normalized", "singular_value_ratios"):
        _check_list(spectral.get(key), f"{where} {key!r}")
    _check_numbers(spectral, where, _SPECTRAL_NUMBERS)
    power = spectral.get("saliency_power")
    if power is not None:
        _check_numbers(power, f"{where} 'saliency_power'", ("high_frequency_fraction",))


def _check_spread(spread: Any, where: str) -> None:
    """A model's ``std`` or ``ci_half`` entry: the shape of its means, numbers or ``None``."""
    if spread is None:
        return
    if not isinstance(spread, Mapping):
        raise _damaged(f"{where} is not a dict")
    _check_numbers(spread.get("id"), f"{where} id")
    shift_spread = spread.get("shift")
    if shift_spread is not None:
        if not isinstance(shift_spread, Mapping):
            raise _damaged(f"{where} shift is not a dict")
        for shift, values in shift_spread.items():
            _check_numbers(values, f"{where} shift {shift!r}")
    spectral_spread = spread.get("spectral")
    if spectral_spread is not None:
        if not isinstance(spectral_spread, Mapping):
            raise _damaged(f"{where} spectral is not a dict")
        _check_spectral(spectral_spread, f"{where} spectral", std=True)


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
        for key in ("singular_values", "eps", "sensitivity_random"):
            if key not in entry["spectral"]:
                raise _fail(f"model {name!r} has no spectral {key!r}")
        _check_numbers(entry["id"], f"model {name!r} id")
        for shift, values in entry["shift"].items():
            _check_numbers(values, f"model {name!r} shift {shift!r}")
        _check_spectral(entry["spectral"], f"model {name!r} spectral")
        for spread_key in ("std", "ci_half"):
            _check_spread(entry.get(spread_key), f"model {name!r} {spread_key}")
    claims = results.get("claims")
    if not isinstance(claims, Mapping):
        raise _fail("no claims")
    for key in claim_statements(regularized_in(models)):
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


def claim_verdict(claim: Mapping[str, Any]) -> str:
    """``holds``, ``fails`` or ``unclear`` (results without a verdict: from ``holds``)."""
    verdict = claim.get("verdict")
    if verdict in ("holds", "fails", "unclear"):
        return str(verdict)
    return "holds" if claim.get("holds") else "fails"


def deciding_text(claim: Mapping[str, Any]) -> str:
    """The deciding quantity with its interval and threshold, in plain text."""
    d = claim.get("deciding") or {}
    if not d:
        return ""
    ci = d.get("ci")
    spread = (
        f" [{_number(ci[0])}, {_number(ci[1])}] ({round(100 * d.get('confidence', 0.95))}% CI, "
        f"{len(d.get('values') or [])} seeds)"
        if ci
        else " (one seed: no interval)"
    )
    side = "" if d.get("side_conditions_hold", True) else "; a side condition fails"
    return (
        f"{d.get('name')} = {_number(d.get('mean'))}{spread}; needs {d.get('op')} "
        f"{_number(d.get('threshold'))}{side}"
    )


def _claims_table(claims: Mapping[str, Any], several_seeds: bool = True) -> str:
    rows = []
    for key in [k for k in CLAIM_KEYS if k in claims] + [k for k in claims if k not in CLAIM_KEYS]:
        claim = claims[key]
        numbers = "<br>".join(
            f"{html.escape(k)} = {_number(v)}" for k, v in sorted(claim["numbers"].items())
        )
        verdict = claim_verdict(claim)
        rows.append(
            f"<tr><td class='l'><b>{key}</b></td><td class='l'>{html.escape(claim['statement'])}"
            f"</td><td class='l'>{html.escape(deciding_text(claim))}</td>"
            f"<td class='l'>{numbers}</td><td class='{verdict}'>{verdict}</td></tr>"
        )
    return (
        "<table><tr><th class='l'>claim</th><th class='l'>statement</th>"
        f"<th class='l'>deciding quantity{' over seeds' if several_seeds else ''}</th>"
        f"<th class='l'>measured{' (means over seeds)' if several_seeds else ''}</th>"
        "<th>verdict</th></tr>" + "".join(rows) + "</table>"
    )


def _interval(d: Mapping[str, Any]) -> str:
    ci = d.get("ci")
    if ci:
        return f"[{_number(ci[0])}, {_number(ci[1])}]"
    return "one seed: none"


_OPS = {">=": "≥", "<=": "≤", "<": "<", ">": ">"}


def _threshold(v: Any) -> str:
    return f"{v:g}" if _is_number(v) else html.escape(str(v))


def _verdict_table(claims: Mapping[str, Any]) -> str:
    """The first thing on the page: each claim, its verdict, and the numbers that decide it
    (the deciding quantity's mean, its 95% interval over seeds, and the threshold)."""
    rows = []
    for key in [k for k in CLAIM_KEYS if k in claims] + [k for k in claims if k not in CLAIM_KEYS]:
        claim = claims[key]
        verdict = claim_verdict(claim)
        d = claim.get("deciding") or {}
        if d:
            side = "" if d.get("side_conditions_hold", True) else " (a side condition fails)"
            cells = (
                f"<td class='l q'>{html.escape(str(d.get('name')))}</td>"
                f"<td>{_number(d.get('mean'))}</td><td>{_interval(d)}</td>"
                f"<td>{_OPS.get(str(d.get('op')), html.escape(str(d.get('op'))))} "
                f"{_threshold(d.get('threshold'))}{html.escape(side)}</td>"
            )
        else:
            numbers = ", ".join(
                f"{html.escape(k)} = {_number(v)}" for k, v in sorted(claim["numbers"].items())
            )
            cells = f"<td class='l q' colspan='4'>{numbers}</td>"
        rows.append(
            f"<tr><td class='l'><b>{html.escape(key)}</b></td>"
            f"<td class='{verdict}'>{verdict}</td>{cells}</tr>"
        )
    return (
        "<table class='verdicts'><tr><th class='l'>claim</th><th>verdict</th>"
        "<th class='l'>deciding quantity</th><th>value</th><th>95% interval</th>"
        "<th>needs</th></tr>" + "".join(rows) + "</table>"
    )


def _lead(results: Mapping[str, Any], seeds: list[Any]) -> str:
    """One sentence of verdict counts and how they were reached."""
    verdicts = [claim_verdict(c) for c in results["claims"].values()]
    counts = {v: verdicts.count(v) for v in ("holds", "fails", "unclear")}
    how = (
        f"over {len(seeds)} seeds ({', '.join(map(str, seeds))}): a claim holds when the whole "
        "95% interval of its deciding quantity clears the threshold, fails when the whole "
        "interval misses it or a side condition fails in any seed, and is unclear otherwise"
        if len(seeds) > 1
        else f"on one seed ({seeds[0]}): there is no interval, the single value decides; run "
        "with several seeds (--seeds 0,1,2) for intervals"
    )
    return (
        f"<p class='lead'><b>{counts['holds']} of {len(verdicts)} claims hold</b>, "
        f"{counts['fails']} fail, {counts['unclear']} unclear, {how}.</p>"
    )


def _times(v: Any) -> str:
    return "—" if not isinstance(v, int | float) else f"{v:.3g}×"


def claim_readings(claims: Mapping[str, Any]) -> list[str]:
    """One plain sentence for each two-level claim (C3, C5): what its two verdicts say."""
    out = []
    dec, logit = claims["C3-decision"], claims["C3-logit"]
    dn, ln = dec["numbers"], logit["numbers"]
    out.append(
        f"C3 on two levels. Decisions: on uniform noise the augmented net's pdi is "
        f"{_times(dn.get('pdi_ratio'))} its in-distribution value and its orbit consistency goes "
        f"from {_number(dn.get('augmented_consistency_id'))} to "
        f"{_number(dn.get('augmented_consistency_uniform'))} "
        f"({claim_verdict(dec)}). Logits: its within-orbit logit variance "
        f"changes {_times(ln.get('li_within_ratio'))} ({claim_verdict(logit)}); "
        f"li changes {_times(ln.get('li_ratio'))} because its denominator, the spread of the "
        f"logits across inputs, changes {_times(ln.get('total_variance_ratio'))} on noise images."
    )
    raw, free = claims["C5-raw"], claims["C5-scale-free"]
    rn, fn = raw["numbers"], free["numbers"]
    if claim_verdict(raw) == "unclear" or claim_verdict(free) == "unclear":
        meaning = "the seeds do not settle whether it is less sensitive beyond a change of scale"
    elif raw["holds"] and not free["holds"]:
        meaning = (
            "the regularized net is less sensitive only as much as its logits are smaller: the "
            "spectral decay is a change of scale, not a change in what the network reacts to"
        )
    elif raw["holds"] and free["holds"]:
        meaning = (
            "the regularized net is less sensitive beyond the shrinking of its logits: the "
            "spectral decay is more than a change of scale"
        )
    else:
        meaning = "the regularized net is not less sensitive to random perturbations"
    out.append(
        f"C5 raw and scale-free. The regularized net's sensitivity to random perturbations is "
        f"{_times(rn.get('ratio'))} the augmented net's, and its logit scale "
        f"{_times(fn.get('logit_scale_ratio'))}; divided by the logit scale the ratio is "
        f"{_times(fn.get('ratio'))}: {meaning}."
    )
    return out


def _measures_table(results: Mapping[str, Any], models: list[str]) -> str:
    head = "".join(f"<th>{k}</th>" for k in MEASURE_KEYS)
    rows = []
    for name in models:
        entry = results["models"][name]
        std = entry.get("ci_half") or entry.get("std") or {}
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
        spread = (entry.get("ci_half") or entry.get("std") or {}).get("spectral") or {}
        eps = list(spectral["eps"])
        i = min(range(len(eps)), key=eps.__getitem__)
        eps_min = eps[i]

        def at(key: str, index: int = i, s: Mapping[str, Any] = spectral, d: Any = spread) -> str:
            std_list = d.get(key) if isinstance(d, Mapping) else None
            std = std_list[index] if isinstance(std_list, list) else None
            values = s.get(key)
            return _pm(values[index] if isinstance(values, list) else None, std)

        def one(key: str, s: Mapping[str, Any] = spectral, d: Any = spread) -> str:
            return _pm(s.get(key), d.get(key) if isinstance(d, Mapping) else None)

        power = spectral.get("saliency_power") or {}
        power_std = spread.get("saliency_power") if isinstance(spread, Mapping) else None
        ratios = spectral.get("singular_value_ratios") or []
        rows.append(
            f"<tr><td class='l'><b>{html.escape(name)}</b></td>"
            f"<td>{one('logit_scale')}</td>"
            f"<td>{at('sensitivity_random')}</td><td>{at('sensitivity_random_normalized')}</td>"
            f"<td>{at('sensitivity_probability')}</td>"
            f"<td>{one('lie_derivative')}</td><td>{one('lie_derivative_normalized')}</td>"
            f"<td>{one('frobenius')}</td>"
            f"<td>{_number(ratios[1] if len(ratios) > 1 else None)}</td>"
            f"<td>{one('effective_rank')}</td>"
            f"<td>{_pm(power.get('high_frequency_fraction'), (power_std or {}).get('high_frequency_fraction'))}</td></tr>"  # noqa: E501
        )
    transform = next((results["models"][m]["spectral"].get("lie_transform") for m in models), None)
    return (
        "<table><tr><th class='l'>model</th><th>logit scale</th>"
        f"<th>sensitivity, random (ε = {_number(eps_min)})</th><th>÷ logit scale</th>"
        "<th>sensitivity of softmax</th>"
        f"<th>Lie derivative ({html.escape(str(transform))})</th><th>÷ logit scale</th>"
        "<th>‖J‖<sub>F</sub></th><th>σ<sub>2</sub>/σ<sub>1</sub></th><th>effective rank</th>"
        "<th>saliency energy above ½ Nyquist</th></tr>" + "".join(rows) + "</table>"
    )


def _routes_table(results: Mapping[str, Any], models: list[str]) -> str:
    """Accuracy, invariance in and out of distribution and inference cost of each route."""
    present = [m for m in ROUTES if m in models]
    if len(present) < 2:
        return ""
    rows = []
    for name in present:
        entry = results["models"][name]
        severe = entry["shift"].get("uniform") or {}
        rows.append(
            f"<tr><td class='l'><b>{html.escape(name)}</b></td>"
            f"<td class='l'>{html.escape(ROUTES[name])}</td>"
            f"<td>{_number(entry['id'].get('accuracy'))}</td>"
            f"<td>{_number(entry['id'].get('orbit_consistency'))}</td>"
            f"<td>{_number(entry['id'].get('pdi'))}</td>"
            f"<td>{_number(severe.get('pdi'))}</td>"
            f"<td>{_number(severe.get('orbit_consistency'))}</td>"
            f"<td>{_number(entry['id'].get('sis'))}</td>"
            f"<td>{_number(entry.get('inference_forwards'))}</td></tr>"
        )
    return (
        "<table><tr><th class='l'>model</th><th class='l'>route</th><th>accuracy</th>"
        "<th>orbit consistency</th><th>pdi</th><th>pdi, uniform noise</th>"
        "<th>orbit consistency, uniform noise</th><th>sis</th>"
        "<th>forwards of the network per input</th></tr>" + "".join(rows) + "</table>"
        f"<p class='note'>{'Means over seeds. ' if len(results.get('seeds') or []) > 1 else ''}"
        "Frame averaging runs the augmented network on the "
        "whole orbit of each input (n forwards); the weight-tied network's one forward is "
        "itself heavier than the plain CNN's. Wall times of one forward over the test split "
        "are in results.json under timings (they vary with the machine).</p>"
    )


#: Readable names of the study's configuration keys in the report.
CONFIG_LABELS = {
    "batch_size": "batch size",
    "dtype": "floating-point type",
    "eps": "step sizes ε of the sensitivity",
    "lam": "λ of the logit penalty",
    "lam_normalized": "λ of the scale-free penalty",
    "limit": "training samples used",
    "lr": "learning rate",
    "n_directions": "random directions per sample (sensitivity)",
    "n_measure": "test samples measured",
    "n_saliency": "test samples in the saliency figure",
    "n_spectral": "test samples in the spectral analysis",
    "orbit": "penalty over the orbit",
    "quick": "--quick",
    "root": "data folder",
}


def _config_list(results: Mapping[str, Any]) -> str:
    config = results.get("config") or {}

    def shown(v: Any) -> str:
        if isinstance(v, list | tuple):
            return ", ".join(map(str, v))
        if isinstance(v, bool):
            return "yes" if v else "no"
        return str(v)

    # an option left unset (no --root, no --limit) is not configuration a reader needs
    items = "".join(
        f"<tr><td class='l'>{html.escape(CONFIG_LABELS.get(str(k), str(k)))}</td>"
        f"<td class='l'><code>{html.escape(shown(v))}</code></td></tr>"
        for k, v in sorted(config.items())
        if v is not None
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
{_lead(results, list(seeds))}
{_verdict_table(results["claims"])}
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
{_claims_table(results["claims"], len(seeds) > 1)}

<h2>Three routes to genuine invariance</h2>
{_routes_table(results, models)}

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
{_spectral_table(results, models)}

<h2>Configuration</h2>
{_config_list(results)}
</body></html>
"""
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
