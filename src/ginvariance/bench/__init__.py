"""What measuring invariance costs, side by side with the model itself: ``ginv bench``.

Behind ``ginv bench`` and ``benchmarks/bench.py``. In one run, on the same model (the
``cnn`` of :mod:`ginvariance.models` by default, its ``mlp``, or the ResNet-18-style
``resnet``; untrained, seeded), the same ``N`` seeded synthetic inputs (uniform in
``[0, 1]``, shape ``(1, s, s)`` for ``s`` = 8 or 28, ``(3, 32, 32)`` for ``s`` = 32) and the
group ``c4``, on one device (``--device``, the CPU by default):

``suite`` / ``suite_logit``
    :func:`ginvariance.metrics.invariance_suite` with ``saliency=True`` (``pdi``, ``li``,
    ``sis``, accuracies, consistency) and ``saliency=False`` (the logit-only measures).
    Everything from ``x``: input checks, building the orbit, the passes, the statistics.
``forward`` / ``forward_backward`` / ``forward_backward_params`` (the floor)
    The model alone on a prebuilt orbit tensor ``(n·N, *S)``, chunked exactly as the
    suite chunks it: one forward under ``torch.no_grad``; one forward plus the backward
    to the input that ``sis`` needs (``torch.autograd.grad(z.gather(c).sum(), orbit)``);
    and, for reference, one forward plus ``loss.backward()`` into the parameters.
``train_*``
    One training step (forward, loss, backward, Adam) plain, augmented, regularized with
    one sampled group element, and regularized over the full orbit.
``rss``
    Peak resident memory of a fresh process streaming ``N`` inputs through
    :class:`ginvariance.metrics.InvarianceMetrics`, the inputs generated chunk by chunk.

Every number is checked equal between the implementations before anything is timed.
Variants are timed interleaved, round after round, so that drift of a shared machine
affects all alike; a time is the median over rounds and a ratio the median over rounds of
the per-round ratio. The comparisons with other code (a naive per-sample loop, tmeasures)
live beside the package, in ``benchmarks/bench.py``, which builds on this package.

:mod:`~ginvariance.bench.config` holds the configuration, the seeded model and data and the
check that numbers agree; :mod:`~ginvariance.bench.timing` the floor, the training steps
and the interleaved timing; :mod:`~ginvariance.bench.memory` the RSS probe;
:mod:`~ginvariance.bench.runner` the whole run.
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
