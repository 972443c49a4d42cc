"""What measuring invariance costs, side by side with the model itself: ``ginv bench``.

One run, on one seeded untrained model (:data:`TIMED_MODELS`), ``N`` seeded synthetic inputs
(:func:`synthetic_data`) and the group ``c4``, checks that every implementation gives the same
numbers, then times the suite (:func:`ginvariance.metrics.invariance_suite`, with and without
``sis``) against the bare model over the prebuilt orbit (the floor), the training steps of
:func:`make_train_step`, and the peak memory of streaming (:func:`rss_probe`). Variants are
timed interleaved, round after round, so that drift of a shared machine affects all alike.
The comparisons with other code (a naive per-sample loop, tmeasures) live beside the package,
in ``benchmarks/bench.py``.
"""

from __future__ import annotations

from ginvariance.bench.config import (
    BENCH_MODELS,
    BENCH_SHAPES,
    TIMED_MODELS,
    BenchCheckError,
    BenchConfig,
    build_bench_model,
    build_cnn,
    compare_measures,
    synthetic_data,
)
from ginvariance.bench.memory import measure_rss, rss_probe
from ginvariance.bench.runner import BenchSetup, bench_setup, run_bench, target
from ginvariance.bench.timing import (
    interleaved_times,
    make_train_step,
    ratio,
)

__all__ = [
    "BENCH_MODELS",
    "BENCH_SHAPES",
    "TIMED_MODELS",
    "BenchCheckError",
    "BenchConfig",
    "BenchSetup",
    "bench_setup",
    "build_bench_model",
    "build_cnn",
    "compare_measures",
    "interleaved_times",
    "make_train_step",
    "measure_rss",
    "ratio",
    "rss_probe",
    "run_bench",
    "synthetic_data",
    "target",
]
