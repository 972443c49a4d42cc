"""Refuse incomplete or damaged study results, each value the report draws checked for its
type too, with one :class:`~ginvariance.errors.DataError` before any report file is written."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ginvariance.checks import is_number
from ginvariance.errors import DataError
from ginvariance.experiments.claims import claim_statements, regularized_in
from ginvariance.experiments.defaults import MODELS
from ginvariance.keys import MEASURE_KEYS


def _fail(what: str) -> DataError:
    return DataError(f"results are incomplete ({what}); run 'ginv run' again to finish them")


def _damaged(what: str) -> DataError:
    return DataError(
        f"results are damaged ({what}); run 'ginv run' again to measure them anew, or restore "
        "results.json"
    )


def _check_numbers(values: Any, where: str, keys: tuple[str, ...] = MEASURE_KEYS) -> None:
    """The entries ``keys`` of the mapping ``values``, where present, are numbers or ``None``
    (an undefined measure); ``values`` may be ``None``."""
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise _damaged(f"{where} is {type(values).__name__}, not a dict")
    for key in keys:
        v = values.get(key)
        if not (v is None or is_number(v)):
            raise _damaged(f"{where} {key!r} is {v!r}, not a number")


def _check_list(values: Any, where: str, length: int | None = None) -> None:
    if values is None and length is None:
        return
    if not isinstance(values, list) or not all(v is None or is_number(v) for v in values):
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
        if not all(is_number(e) and math.isfinite(e) and e > 0 for e in eps):
            raise _damaged(f"{where} 'eps' is {eps!r}, not a list of positive numbers")
    n = None if std or not isinstance(eps, list) else len(eps)
    for key in ("singular_values", "singular_values_normalized", "singular_value_ratios"):
        _check_list(spectral.get(key), f"{where} {key!r}")
    for key in ("sensitivity_random", "sensitivity_group"):
        _check_list(spectral.get(key), f"{where} {key!r}", n)
    for key in ("sensitivity_random_normalized", "sensitivity_probability"):
        if spectral.get(key) is not None:
            _check_list(spectral.get(key), f"{where} {key!r}", n)
    _check_numbers(spectral, where, _SPECTRAL_NUMBERS)
    power = spectral.get("saliency_power")
    _check_numbers(power, f"{where} 'saliency_power'", ("high_frequency_fraction",))


def _check_measures(block: Mapping[str, Any], where: str, *, std: bool = False) -> None:
    """``id``, ``shift`` and ``spectral`` of a model (or, with ``std``, of its ``std`` or
    ``ci_half``): numbers or ``None``, in dicts where present."""
    _check_numbers(block.get("id"), f"{where} id")
    shifts, spectral = block.get("shift"), block.get("spectral")
    if shifts is not None:
        if not isinstance(shifts, Mapping):
            raise _damaged(f"{where} shift is not a dict")
        for shift, values in shifts.items():
            _check_numbers(values, f"{where} shift {shift!r}")
    if spectral is not None:
        if not isinstance(spectral, Mapping):
            raise _damaged(f"{where} spectral is not a dict")
        _check_spectral(spectral, f"{where} spectral", std=std)


def check_results(results: Any) -> list[str]:
    """Check that ``results`` is a complete study; return its model names in the order of
    :data:`~ginvariance.experiments.defaults.MODELS` (others after them).

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
        _check_measures(entry, f"model {name!r}")
        for key in ("std", "ci_half"):
            spread = entry.get(key)
            if spread is not None and not isinstance(spread, Mapping):
                raise _damaged(f"model {name!r} {key} is not a dict")
            _check_measures(spread or {}, f"model {name!r} {key}", std=True)
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
    if not isinstance(seeds, list) or not seeds or not all(is_number(s) for s in seeds):
        raise _damaged(f"'seeds' is {seeds!r}, not a list of seeds")
    return [m for m in MODELS if m in models] + [m for m in models if m not in MODELS]


__all__ = ["check_results"]
