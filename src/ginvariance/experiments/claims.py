"""The study's claims: statements, thresholds, and verdicts over seeds with intervals.

Each claim's deciding quantity, side conditions and verdict rule are tabled in
``docs/definitions.md`` ("Claims and verdicts"). C3 is judged on the decisions and on
``li_within``, since ``li`` can rise only because its denominator, the spread of the logits
across inputs, shrinks on noise; C5 raw and divided by each net's logit scale, since smaller
logits alone make a net "less sensitive".
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ginvariance.experiments.defaults import CONFIDENCE, SEVERE_SHIFT
from ginvariance.experiments.stats import summarize

# Thresholds of the claims (stated in the claims' text, and in the report).
C1_FRACTION = 0.9
C2_MARGIN = 0.02
C2_WEIGHT_TIED_MIN = 0.99
C3_FACTOR = 5.0
C3_WEIGHT_TIED_MAX = 1e-5
C4_FACTOR = 5.0
#: C5 beyond scale: the regularized net's sensitivity divided by its logit scale must be at
#: most this fraction of the augmented net's (a 10% cut that a change of scale cannot make).
C5_SCALE_FREE_RATIO = 0.9

#: The regularized models whose C4 and C5 are judged, and the suffix of their claim keys.
REGULARIZED: dict[str, str] = {"regularized": "", "regularized-normalized": "-normalized"}

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}


def claim_statements(regularized: Mapping[str, str] = REGULARIZED) -> dict[str, str]:
    """Every claim's key and statement, in the order of the report."""
    out = {
        "C1": (
            f"The augmented net classifies the orbit well in distribution: its orbit accuracy "
            f"is at least {C1_FRACTION:g} × its accuracy."
        ),
        "C2": (
            f"Its saliency invariance similarity (in distribution) is clearly below the "
            f"weight-tied net's: sis(weight-tied) − sis(augmented) ≥ {C2_MARGIN:g}, with "
            f"sis(weight-tied) ≥ {C2_WEIGHT_TIED_MIN:g}."
        ),
        "C3-decision": (
            f"Under the severe shift (uniform noise) the augmented net's decisions lose their "
            f"invariance: its pdi is at least {C3_FACTOR:g}× its in-distribution value and its "
            f"orbit consistency falls, while the weight-tied net keeps |pdi| ≤ "
            f"{C3_WEIGHT_TIED_MAX:g} and orbit consistency 1 on every input condition."
        ),
        "C3-logit": (
            f"Under uniform noise the augmented net's logits vary more over the orbit: its "
            f"within-orbit logit variance (li_within, i.e. li's numerator on the "
            f"in-distribution scale) is at least {C3_FACTOR:g}× its in-distribution value, "
            f"while the weight-tied net keeps li ≤ {C3_WEIGHT_TIED_MAX:g} on every input "
            "condition."
        ),
    }
    for model, suffix in regularized.items():
        out["C4" + suffix] = (
            f"The {model} net's pdi and li on uniform noise are at least {C4_FACTOR:g}× below "
            "the augmented net's (the smaller of the two cuts decides), and its sis (in "
            "distribution) is closer to 1."
        )
    for model, suffix in regularized.items():
        out["C5-raw" + suffix] = (
            f"The {model} net is less sensitive than the augmented one to random perturbations "
            "(E‖f(x+εu) − f(x)‖/ε at the smallest ε): spectral decay, in the paper's raw terms."
        )
        out["C5-scale-free" + suffix] = (
            f"Divided by each net's logit scale (the spread of its in-distribution logits), the "
            f"{model} net's random-perturbation sensitivity is at most {C5_SCALE_FREE_RATIO:g}× "
            "the augmented net's: less sensitive beyond a change of scale."
        )
    return out


#: The claims of the study's models (key → statement); results of fewer regularized
#: models have those of the ones present.
CLAIMS: dict[str, str] = claim_statements()
#: Their keys in the order of the report.
CLAIM_KEYS: tuple[str, ...] = tuple(CLAIMS)


def _ratio(a: float, b: float) -> float | None:
    if b == 0:
        return None if a == 0 else math.inf if a > 0 else -math.inf
    return a / b


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _cut(smaller: float | None, larger: float | None) -> float | None:
    """``smaller / larger`` when both are numbers (``None`` otherwise)."""
    return None if smaller is None or larger is None else _finite(_ratio(smaller, larger))


def _at(values: Any, i: int) -> float | None:
    return None if values is None or values[i] is None else float(values[i])


def _claim(
    numbers: dict[str, Any], name: str, value: float | None, op: str, threshold: float, side: bool
) -> dict[str, Any]:
    """One seed's claim: its numbers, the deciding quantity and whether the rest holds."""
    deciding = {"name": name, "value": _finite(value), "op": op, "threshold": threshold}
    return {"numbers": numbers, "deciding": deciding, "side": bool(side)}


def _sigma_2(spec: Mapping[str, Any]) -> float | None:
    ratios = spec.get("singular_value_ratios")
    return None if not ratios or len(ratios) < 2 else ratios[1]


def _one_seed(
    models: Mapping[str, Mapping[str, Any]], regularized: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """The claims of one seed (or of seed means): numbers, deciding quantity, side test."""
    aug, wt = models["augmented"], models["weight-tied"]
    claims: dict[str, dict[str, Any]] = {}

    acc, orbit_acc = aug["id"]["accuracy"], aug["id"]["orbit_accuracy"]
    ratio = _ratio(orbit_acc, acc)
    numbers = {
        "augmented_accuracy": acc,
        "augmented_orbit_accuracy": orbit_acc,
        "ratio": _finite(ratio),
        "threshold": C1_FRACTION,
    }
    claims["C1"] = _claim(numbers, "orbit accuracy / accuracy", ratio, ">=", C1_FRACTION, True)

    sis_aug, sis_wt = aug["id"].get("sis"), wt["id"].get("sis")
    gap = None if sis_aug is None or sis_wt is None else sis_wt - sis_aug
    numbers = {"augmented_sis": sis_aug, "weight_tied_sis": sis_wt, "gap": gap, "margin": C2_MARGIN}
    side = sis_wt is not None and sis_wt >= C2_WEIGHT_TIED_MIN
    claims["C2"] = _claim(numbers, "sis(weight-tied) − sis(augmented)", gap, ">=", C2_MARGIN, side)

    aug_id, severe_aug = aug["id"], aug["shift"][SEVERE_SHIFT]
    conditions = [wt["id"], *wt["shift"].values()]
    wt_pdi = max(abs(c["pdi"]) for c in conditions)
    wt_li = max(abs(c["li"]) for c in conditions)
    wt_consistency = min(c["orbit_consistency"] for c in conditions)
    pdi_ratio = _ratio(severe_aug["pdi"], aug_id["pdi"])
    numbers = {
        "augmented_pdi_id": aug_id["pdi"],
        "augmented_pdi_uniform": severe_aug["pdi"],
        "pdi_ratio": _finite(pdi_ratio),
        "augmented_consistency_id": aug_id["orbit_consistency"],
        "augmented_consistency_uniform": severe_aug["orbit_consistency"],
        "factor": C3_FACTOR,
        "weight_tied_max_abs_pdi": wt_pdi,
        "weight_tied_min_consistency": wt_consistency,
        "weight_tied_bound": C3_WEIGHT_TIED_MAX,
    }
    side = (
        severe_aug["orbit_consistency"] < aug_id["orbit_consistency"]
        and wt_pdi <= C3_WEIGHT_TIED_MAX
        and wt_consistency == 1.0
    )
    name = "pdi(uniform) / pdi(in-dist), augmented"
    claims["C3-decision"] = _claim(numbers, name, pdi_ratio, ">=", C3_FACTOR, side)
    within_ratio = _ratio(severe_aug["li_within"], aug_id["li_within"])
    # li = li_within / (total variance per sample and element): the ratio of the
    # denominators says how much of li's move comes from the spread across inputs
    total_id = _ratio(aug_id["li_within"], aug_id["li"])
    total_uniform = _ratio(severe_aug["li_within"], severe_aug["li"])
    numbers = {
        "augmented_li_within_id": aug_id["li_within"],
        "augmented_li_within_uniform": severe_aug["li_within"],
        "li_within_ratio": _finite(within_ratio),
        "augmented_li_id": aug_id["li"],
        "augmented_li_uniform": severe_aug["li"],
        "li_ratio": _finite(_ratio(severe_aug["li"], aug_id["li"])),
        "total_variance_ratio": _cut(_finite(total_uniform), _finite(total_id)),
        "factor": C3_FACTOR,
        "weight_tied_max_li": wt_li,
        "weight_tied_bound": C3_WEIGHT_TIED_MAX,
    }
    name = "li_within(uniform) / li_within(in-dist), augmented"
    side = wt_li <= C3_WEIGHT_TIED_MAX
    claims["C3-logit"] = _claim(numbers, name, within_ratio, ">=", C3_FACTOR, side)

    spec_aug = aug["spectral"]
    eps = list(spec_aug["eps"])
    i_min = min(range(len(eps)), key=eps.__getitem__)  # the smallest ε
    for model, suffix in regularized.items():
        reg = models[model]
        severe_reg = reg["shift"][SEVERE_SHIFT]
        pdi_cut = _finite(_ratio(severe_aug["pdi"], severe_reg["pdi"]))
        li_cut = _finite(_ratio(severe_aug["li"], severe_reg["li"]))
        sis_reg = reg["id"].get("sis")
        smaller = None if pdi_cut is None or li_cut is None else min(pdi_cut, li_cut)
        numbers = {
            "augmented_pdi_uniform": severe_aug["pdi"],
            f"{model}_pdi_uniform": severe_reg["pdi"],
            "pdi_reduction": pdi_cut,
            "augmented_li_uniform": severe_aug["li"],
            f"{model}_li_uniform": severe_reg["li"],
            "li_reduction": li_cut,
            "factor": C4_FACTOR,
            "augmented_sis": sis_aug,
            f"{model}_sis": sis_reg,
        }
        name = f"min of the pdi and li cuts on uniform, augmented / {model}"
        side = sis_reg is not None and sis_aug is not None and abs(1 - sis_reg) < abs(1 - sis_aug)
        claims["C4" + suffix] = _claim(numbers, name, smaller, ">=", C4_FACTOR, side)
        spec_reg = reg["spectral"]
        s_aug = _at(spec_aug["sensitivity_random"], i_min)
        s_reg = _at(spec_reg["sensitivity_random"], i_min)
        raw_ratio = _cut(s_reg, s_aug)
        numbers = {
            "eps": spec_aug["eps"][i_min],
            "augmented_sensitivity": s_aug,
            f"{model}_sensitivity": s_reg,
            "ratio": raw_ratio,
            "augmented_frobenius": spec_aug["frobenius"],
            f"{model}_frobenius": spec_reg["frobenius"],
            "augmented_lie_derivative": spec_aug.get("lie_derivative"),
            f"{model}_lie_derivative": spec_reg.get("lie_derivative"),
        }
        name = f"sensitivity({model}) / sensitivity(augmented)"
        claims["C5-raw" + suffix] = _claim(numbers, name, raw_ratio, "<", 1.0, True)
        n_aug = _at(spec_aug.get("sensitivity_random_normalized"), i_min)
        n_reg = _at(spec_reg.get("sensitivity_random_normalized"), i_min)
        free_ratio = _cut(n_reg, n_aug)
        numbers = {
            "eps": spec_aug["eps"][i_min],
            "augmented_logit_scale": spec_aug.get("logit_scale"),
            f"{model}_logit_scale": spec_reg.get("logit_scale"),
            "logit_scale_ratio": _cut(spec_reg.get("logit_scale"), spec_aug.get("logit_scale")),
            "augmented_sensitivity_normalized": n_aug,
            f"{model}_sensitivity_normalized": n_reg,
            "ratio": free_ratio,
            "threshold": C5_SCALE_FREE_RATIO,
            "augmented_lie_derivative_normalized": spec_aug.get("lie_derivative_normalized"),
            f"{model}_lie_derivative_normalized": spec_reg.get("lie_derivative_normalized"),
            "augmented_sigma2_over_sigma1": _sigma_2(spec_aug),
            f"{model}_sigma2_over_sigma1": _sigma_2(spec_reg),
            "augmented_effective_rank": spec_aug.get("effective_rank"),
            f"{model}_effective_rank": spec_reg.get("effective_rank"),
        }
        name = f"normalized sensitivity({model}) / normalized sensitivity(augmented)"
        claims["C5-scale-free" + suffix] = _claim(
            numbers, name, free_ratio, "<=", C5_SCALE_FREE_RATIO, True
        )
    return claims


def verdict(summary: Mapping[str, Any], op: str, threshold: float, side: bool) -> str:
    """``holds``, ``fails`` or ``unclear`` for a deciding quantity's summary over seeds."""
    if not side or summary["n"] == 0 or summary["mean"] is None:
        return "fails"
    # one seed: the value itself decides; several: both ends of the interval
    ends = [summary["mean"]] if summary["ci"] is None else summary["ci"]
    passed = [_OPS[op](v, threshold) for v in ends]
    return "holds" if all(passed) else "fails" if not any(passed) else "unclear"


def _seed_runs(
    models: Mapping[str, Mapping[str, Any]], names: Sequence[str]
) -> list[dict[str, Any]]:
    """The per-seed measures ``[{NAME: {"id", "shift", "spectral"}}, ...]`` of ``models``
    (their ``per_seed`` lists; the entries themselves when there are none)."""
    counts = {len(models[n].get("per_seed") or []) for n in names}
    if counts == {0} or len(counts) != 1:
        return [{n: models[n] for n in names}]
    return [{n: models[n]["per_seed"][i] for n in names} for i in range(counts.pop())]


def regularized_in(models: Mapping[str, Any]) -> dict[str, str]:
    """The models of :data:`REGULARIZED` in ``models``, with their claim-key suffixes."""
    return {m: s for m, s in REGULARIZED.items() if m in models}


def evaluate_claims(
    models: Mapping[str, Mapping[str, Any]], *, confidence: float = CONFIDENCE
) -> dict[str, dict[str, Any]]:
    """Judge every claim over the seeds.

    Parameters
    ----------
    models:
        ``{NAME: {"id", "shift", "spectral", "per_seed": [...]}}`` with at least
        ``augmented`` and ``weight-tied``; C4 and C5 are judged for each model of
        :data:`REGULARIZED` present. ``per_seed`` holds the same entries for each seed (without
        it the entry is one seed). ``uniform`` must be among the shifts.
    confidence:
        Of the deciding quantities' intervals.

    Returns
    -------
    dict
        ``{KEY: {"statement", "numbers", "deciding", "verdict", "holds"}}``: ``numbers``
        from the seed means; ``deciding`` the deciding quantity (``name``, ``op``,
        ``threshold``, and over seeds ``mean``, ``ci``, ``values``); ``verdict``: ``holds``,
        ``fails`` or ``unclear`` (:func:`verdict`); ``holds`` = (``verdict == "holds"``).
    """
    regularized = regularized_in(models)
    names = ["augmented", "weight-tied", *regularized]
    statements = claim_statements(regularized)
    mean = _one_seed(models, regularized)
    seeds = [_one_seed(run, regularized) for run in _seed_runs(models, names)]
    claims: dict[str, dict[str, Any]] = {}
    for key, claim in mean.items():
        deciding = claim["deciding"]
        values = [s[key]["deciding"]["value"] for s in seeds]
        side = all(s[key]["side"] for s in seeds) and None not in values
        summary = summarize(values, confidence)
        result = verdict(summary, deciding["op"], deciding["threshold"], side)
        claims[key] = {
            "statement": statements[key],
            "numbers": claim["numbers"],
            "deciding": {
                "name": deciding["name"],
                "op": deciding["op"],
                "threshold": deciding["threshold"],
                "mean": summary["mean"],
                "ci": summary["ci"],
                "confidence": confidence,
                "values": summary["values"],
                "side_conditions_hold": side,
            },
            "verdict": result,
            "holds": result == "holds",
        }
    return claims


__all__ = [
    "C1_FRACTION",
    "C2_MARGIN",
    "C2_WEIGHT_TIED_MIN",
    "C3_FACTOR",
    "C3_WEIGHT_TIED_MAX",
    "C4_FACTOR",
    "C5_SCALE_FREE_RATIO",
    "CLAIMS",
    "CLAIM_KEYS",
    "REGULARIZED",
    "SEVERE_SHIFT",
    "claim_statements",
    "evaluate_claims",
    "regularized_in",
    "verdict",
]
