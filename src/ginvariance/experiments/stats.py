"""Statistics over seeds, shared by the study and the sweep: mean, sample std and the
Student-t confidence interval of the mean.

For values ``v_1..v_n`` over ``n`` seeds: ``mean = (1/n) Σ v_i``, ``std`` the sample standard
deviation (``ddof = 1``), and the interval ``mean ± half`` with
``half = t_{(1+c)/2, n−1} · std / √n`` at confidence ``c`` (95% by default). With one seed
there is no spread and no interval (``None``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Confidence of every interval of the study and the sweep.
CONFIDENCE = 0.95


@functools.lru_cache(maxsize=64)
def _t_quantile(confidence: float, dof: int) -> float:
    """``t_{(1+c)/2, dof}`` (scipy's ``ppf`` costs ~0.1 ms; a study asks for one value)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def t_half_width(values: Sequence[float], confidence: float = CONFIDENCE) -> float | None:
    """``t_{(1+c)/2, n−1} · s / √n`` of ``values`` (``None`` for fewer than two)."""
    n = len(values)
    if n < 2:
        return None
    std = float(np.asarray(values, dtype=np.float64).std(ddof=1))
    return _t_quantile(confidence, n - 1) * std / math.sqrt(n)


def summarize(values: Sequence[float | None], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean, sample std and the Student-t confidence interval of the mean of ``values``.

    ``ci = [mean − half, mean + half]``. With ``n = 1``: ``std``, ``ci`` and ``half`` are
    ``None``. ``None`` values are dropped.
    """
    vals = [float(v) for v in values if v is not None]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci": None, "half": None, "values": []}
    mean = float(np.asarray(vals, dtype=np.float64).mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci": None, "half": None, "values": vals}
    half = t_half_width(vals, confidence)
    assert half is not None
    return {
        "n": n,
        "mean": mean,
        "std": float(np.asarray(vals, dtype=np.float64).std(ddof=1)),
        "ci": [mean - half, mean + half],
        "half": half,
        "values": vals,
    }


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def aggregate(values: Sequence[Any], how: str, confidence: float = CONFIDENCE) -> Any:
    """Mean (``how="mean"``), sample std (``"std"``) or interval half-width (``"half"``) of
    equally shaped nested values, one per seed.

    Dicts are aggregated key by key, lists element by element, numbers over seeds; a
    ``None`` in any seed gives ``None``; ``n_samples`` (a count) is kept as it is by the
    mean and has no spread. The spread of one seed is ``None`` (undefined).
    """
    first = values[0]
    if isinstance(first, dict):
        return {
            k: (
                (first[k] if how == "mean" else None)
                if k == "n_samples"
                else aggregate(
                    [v.get(k) if isinstance(v, dict) else None for v in values], how, confidence
                )
            )
            for k in first
        }
    if isinstance(first, list):
        if not all(isinstance(v, list) and len(v) == len(first) for v in values):
            return None
        return [aggregate([v[i] for v in values], how, confidence) for i in range(len(first))]
    if how not in ("mean", "std", "half"):
        raise ValueError(f"unknown aggregation {how!r}")
    if any(v is None for v in values) or not all(_is_number(v) for v in values):
        return None
    return summarize(values, confidence)[how]


__all__ = ["CONFIDENCE", "aggregate", "summarize", "t_half_width"]
