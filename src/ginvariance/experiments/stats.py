"""Statistics over seeds, the one aggregation of the study and the sweep: mean, sample std and
the Student-t confidence interval of the mean."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ginvariance.checks import is_number
from ginvariance.experiments.defaults import CONFIDENCE


@functools.lru_cache(maxsize=64)
def _t_quantile(confidence: float, dof: int) -> float:
    """``t_{(1+c)/2, dof}``, cached: a study asks for the same one many times."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def summarize(values: Sequence[float | None], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean, sample std (``ddof = 1``) and the Student-t confidence interval of the mean.

    Returns ``{"n", "mean", "std", "ci": [mean − half, mean + half], "half", "values"}`` with
    ``half = t_{(1+c)/2, n−1} · std / √n`` at ``confidence`` ``c``; ``None`` values are
    dropped; with ``n = 1``, ``std``, ``ci`` and ``half`` are ``None``.
    """
    vals = [float(v) for v in values if v is not None]
    n = len(vals)
    out: dict[str, Any] = {"n": n, "mean": None, "std": None, "ci": None, "half": None}
    if n:
        out["mean"] = mean = float(np.asarray(vals, dtype=np.float64).mean())
    if n > 1:
        out["std"] = std = float(np.asarray(vals, dtype=np.float64).std(ddof=1))
        out["half"] = half = _t_quantile(confidence, n - 1) * std / math.sqrt(n)
        out["ci"] = [mean - half, mean + half]
    return {**out, "values": vals}


def aggregate(values: Sequence[Any], how: str, confidence: float = CONFIDENCE) -> Any:
    """Mean (``how="mean"``), sample std (``"std"``) or interval half-width (``"half"``) of
    equally shaped nested values, one per seed.

    Dicts are aggregated key by key, lists element by element, numbers over seeds
    (:func:`summarize`); a ``None`` in any seed gives ``None``; ``n_samples`` (a count) is kept
    as it is by the mean and has no spread.
    """
    first = values[0]
    if isinstance(first, dict):
        return {
            k: (first[k] if how == "mean" else None)
            if k == "n_samples"
            else aggregate(
                [v.get(k) if isinstance(v, dict) else None for v in values], how, confidence
            )
            for k in first
        }
    if isinstance(first, list):
        if not all(isinstance(v, list) and len(v) == len(first) for v in values):
            return None
        return [aggregate([v[i] for v in values], how, confidence) for i in range(len(first))]
    if how not in ("mean", "std", "half"):
        raise ValueError(f"unknown aggregation {how!r}")
    if not all(is_number(v) for v in values):
        return None
    return summarize(values, confidence)[how]


__all__ = ["CONFIDENCE", "aggregate", "summarize"]
