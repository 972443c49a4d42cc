"""The sections of the study's report page, each an HTML fragment drawn from the results;
every number goes through one formatter (:func:`_number`), every text is escaped."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from ginvariance.checks import is_number
from ginvariance.experiments.claims import CLAIM_KEYS
from ginvariance.experiments.defaults import SEVERE_SHIFT
from ginvariance.keys import MEASURE_KEYS

#: The routes to genuine invariance that the report compares, with the augmented baseline.
ROUTES = {
    "augmented": "baseline: data augmentation",
    "regularized": "regularization (logit penalty)",
    "regularized-normalized": "regularization (scale-free penalty)",
    "symmetrized": "frame averaging of the augmented net",
    "weight-tied": "weight-tying (group convolutions)",
}

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


def claims_table(claims: Mapping[str, Any], several_seeds: bool = True) -> str:
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


_OPS = {">=": "≥", "<=": "≤", "<": "<", ">": ">"}


def verdict_table(claims: Mapping[str, Any]) -> str:
    """The first thing on the page: each claim, its verdict, and the numbers that decide it
    (the deciding quantity's mean, its 95% interval over seeds, and the threshold)."""
    rows = []
    for key in [k for k in CLAIM_KEYS if k in claims] + [k for k in claims if k not in CLAIM_KEYS]:
        claim = claims[key]
        verdict = claim_verdict(claim)
        d = claim.get("deciding") or {}
        if d:
            side = "" if d.get("side_conditions_hold", True) else " (a side condition fails)"
            ci, t = d.get("ci"), d.get("threshold")
            interval = f"[{_number(ci[0])}, {_number(ci[1])}]" if ci else "one seed: none"
            threshold = f"{t:g}" if is_number(t) else html.escape(str(t))
            cells = (
                f"<td class='l q'>{html.escape(str(d.get('name')))}</td>"
                f"<td>{_number(d.get('mean'))}</td><td>{interval}</td>"
                f"<td>{_OPS.get(str(d.get('op')), html.escape(str(d.get('op'))))} "
                f"{threshold}{html.escape(side)}</td>"
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


def lead(results: Mapping[str, Any], seeds: list[Any]) -> str:
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


def measures_table(results: Mapping[str, Any], models: list[str]) -> str:
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


def _spread(values: Any, spread: Any, key: str, index: int | None = None) -> str:
    """``mean ± spread`` of ``values[key]`` (its ``index``-th entry for a list)."""
    v, d = values.get(key), spread.get(key) if isinstance(spread, Mapping) else None
    if index is not None:
        v = v[index] if isinstance(v, list) else None
        d = d[index] if isinstance(d, list) else None
    return _pm(v, d)


def spectral_table(results: Mapping[str, Any], models: list[str]) -> str:
    rows = []
    eps_min = None
    for name in models:
        entry = results["models"][name]
        spectral = entry["spectral"]
        spread = (entry.get("ci_half") or entry.get("std") or {}).get("spectral") or {}
        eps = list(spectral["eps"])
        i = min(range(len(eps)), key=eps.__getitem__)
        eps_min = eps[i]
        power = spectral.get("saliency_power") or {}
        power_std = spread.get("saliency_power") if isinstance(spread, Mapping) else None
        ratios = spectral.get("singular_value_ratios") or []
        cells = [
            _spread(spectral, spread, "logit_scale"),
            _spread(spectral, spread, "sensitivity_random", i),
            _spread(spectral, spread, "sensitivity_random_normalized", i),
            _spread(spectral, spread, "sensitivity_probability", i),
            _spread(spectral, spread, "lie_derivative"),
            _spread(spectral, spread, "lie_derivative_normalized"),
            _spread(spectral, spread, "frobenius"),
            _number(ratios[1] if len(ratios) > 1 else None),
            _spread(spectral, spread, "effective_rank"),
            _spread(power, power_std, "high_frequency_fraction"),
        ]
        rows.append(
            f"<tr><td class='l'><b>{html.escape(name)}</b></td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
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


def routes_table(results: Mapping[str, Any], models: list[str]) -> str:
    """Accuracy, invariance in and out of distribution and inference cost of each route."""
    present = [m for m in ROUTES if m in models]
    if len(present) < 2:
        return ""
    rows = []
    for name in present:
        entry = results["models"][name]
        severe = entry["shift"].get(SEVERE_SHIFT) or {}
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


def config_table(results: Mapping[str, Any]) -> str:
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


__all__ = [
    "CONFIG_LABELS",
    "EXPECTATIONS",
    "ROUTES",
    "claim_readings",
    "claim_verdict",
    "claims_table",
    "config_table",
    "deciding_text",
    "lead",
    "measures_table",
    "routes_table",
    "spectral_table",
    "verdict_table",
]
