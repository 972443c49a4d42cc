"""Cost of the scale-free spectral figures and of the Lie derivative, side by side in one run.

Compared on the study's CNN (8×8 digits-sized inputs, 10 classes) and, with ``--size 28``, its
28×28 variant, all on one batch of random inputs in [0, 1]:

* ``previous``: what the ``spectral`` entry computed before the scale-free figures — the
  Jacobian spectrum, the random-direction sensitivity of the logits and the group-direction
  sensitivity;
* ``spectral``: :func:`ginvariance.spectral.spectral_analysis` as it is now (adds the
  probability sensitivity, the logit scale, the spectrum's shape and the Lie derivative);
  target ≤ 1.5× ``previous``;
* ``forward``: one bare forward over the batch (no gradients);
* ``lie``: :func:`ginvariance.spectral.lie_derivative` (forward-mode, rotation); target ≤ 3×
  ``forward``.

The variants run interleaved, round after round, and the median of each is reported, so that
drift of the machine affects all of them alike.

Usage::

    python benchmarks/spectral_cost.py [--threads 2] [--batch 256] [--size 8] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from ginvariance.models import build_model
from ginvariance.spectral import (
    group_sensitivity,
    jacobian_spectrum,
    lie_derivative,
    sensitivity,
    spectral_analysis,
)

EPS = (1e-3, 1e-2, 1e-1, 1.0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("cnn", (1, args.size, args.size), 10).eval()
    x = torch.rand(args.batch, 1, args.size, args.size)

    def previous() -> None:
        jacobian_spectrum(model, x)
        sensitivity(model, x, EPS, n_directions=8)
        group_sensitivity(model, x, "c4", EPS)

    def spectral() -> None:
        spectral_analysis(model, x, "c4", eps=EPS, n_directions=8)

    @torch.no_grad()
    def forward() -> None:
        model(x)

    def lie() -> None:
        lie_derivative(model, x, "rotation")

    variants: dict[str, Callable[[], None]] = {
        "previous": previous,
        "spectral": spectral,
        "forward": forward,
        "lie": lie,
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up
        fn()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            began = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - began)
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "threads": args.threads,
        "batch": args.batch,
        "size": args.size,
        "rounds": args.rounds,
        "median_seconds": median,
        "spectral_over_previous": median["spectral"] / median["previous"],
        "lie_over_forward": median["lie"] / median["forward"],
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for k, v in median.items():
            print(f"{k:>9}: {v * 1e3:8.2f} ms")
        print(f"spectral / previous = {result['spectral_over_previous']:.2f} (target ≤ 1.5)")
        print(f"lie / forward       = {result['lie_over_forward']:.2f} (target ≤ 3)")
    return result


if __name__ == "__main__":
    main()
