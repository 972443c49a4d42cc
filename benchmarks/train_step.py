"""Cost of one regularized training step against a plain one, side by side in one run.

A step is forward, loss, backward and an Adam update on one batch. Compared:

* ``plain``: cross-entropy on the batch (``B`` inputs);
* ``augmented``: the same after one random group element per sample;
* ``regularized-sample``: cross-entropy + logit penalty over the identity and one sampled
  element (``2B`` inputs), target ≤ 2.2× plain;
* ``regularized-full``: cross-entropy + logit penalty over the full orbit (``n·B``
  inputs), target ≤ (n + 1.2)× plain.

The variants run interleaved, round after round, and the median time per step of each is
reported, so that drift of the machine affects all of them alike.

Usage::

    python benchmarks/train_step.py [--threads 2] [--batch-size 64] [--rounds 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from ginvariance.bench import make_train_step
from ginvariance.data import load_dataset
from ginvariance.groups import get_group
from ginvariance.training.trainer import build_training_model


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10, help="steps per variant per round")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--group", default="c4")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset, "train")
    group = get_group(args.group, data.sample_shape)
    x = torch.as_tensor(data.x[: args.batch_size]).float()
    y = torch.as_tensor(data.y[: args.batch_size]).long()
    gen = torch.Generator().manual_seed(0)

    def make_step(kind: str) -> Callable[[], None]:
        model = build_training_model(
            args.model, data.sample_shape, data.num_classes, group=group, seed=0
        )
        return make_train_step(model, group, kind, x, y, gen)

    kinds = ["plain", "augmented", "regularized-sample", "regularized-full"]
    steps = {kind: make_step(kind) for kind in kinds}
    for step in steps.values():  # warm up
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            began = time.perf_counter()
            for _ in range(args.steps):
                steps[kind]()
            times[kind].append((time.perf_counter() - began) / args.steps)
    median = {kind: statistics.median(values) for kind, values in times.items()}
    n = group.order
    result = {
        "threads": args.threads,
        "batch_size": args.batch_size,
        "group": group.name,
        "order": n,
        "model": args.model,
        "ms_per_step": {k: 1e3 * v for k, v in median.items()},
        "ratio_to_plain": {k: v / median["plain"] for k, v in median.items()},
        "targets": {"regularized-sample": 2.2, "regularized-full": n + 1.2},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.model} on {args.dataset}, {group.name} (n={n}), batch {args.batch_size}, "
            f"{args.threads} threads, median of {args.rounds} rounds × {args.steps} steps"
        )
        for kind in kinds:
            target = result["targets"].get(kind)
            note = f"   (target ≤ {target:.1f}×)" if target else ""
            print(
                f"  {kind:<20} {result['ms_per_step'][kind]:8.3f} ms   "
                f"{result['ratio_to_plain'][kind]:5.2f}×{note}"
            )
    return result


if __name__ == "__main__":
    main()
