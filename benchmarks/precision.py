"""How far the measures move under autocast (bf16, fp16) from fp32, on the CPU.

Trains the study's CNN on digits (augmented, 20 epochs, seed 0), measures it on the test
split in distribution and under two shifts with ``precision`` fp32, bf16 and fp16, and
writes the largest absolute difference of each measure from fp32 to
``benchmarks/results/precision-cpu.json``. Usage: ``python benchmarks/precision.py [OUT]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ginvariance.data import load_dataset
from ginvariance.io import atomic_write_json
from ginvariance.metrics import measure
from ginvariance.training import TrainConfig, train

KEYS = ("pdi", "li", "li_within", "sis", "accuracy", "orbit_accuracy", "orbit_consistency")


def main(out: Path) -> None:
    torch.set_num_threads(1)
    model = train(TrainConfig(mode="augmented", epochs=20, seed=0)).model.eval()
    test = load_dataset("digits", "test")
    results, seconds = {}, {}
    for precision in ("fp32", "bf16", "fp16"):
        began = time.process_time()
        report = measure(
            model, (test.x, test.y), "c4", shifts=["uniform", "noise-0.1"], precision=precision
        )
        seconds[precision] = time.process_time() - began
        results[precision] = {"id": report.id, **report.shift}
    diffs: dict[str, dict[str, float]] = {}
    for precision in ("bf16", "fp16"):
        diffs[precision] = {}
        for key in KEYS:
            worst = 0.0
            for cond, ref in results["fp32"].items():
                a, b = results[precision][cond].get(key), ref.get(key)
                if a is not None and b is not None:
                    worst = max(worst, abs(a - b) / (abs(b) if key == "li_within" else 1.0))
            diffs[precision][key] = worst
    atomic_write_json(
        out,
        {
            "model": "cnn, digits, augmented, 20 epochs, seed 0 (float32 weights)",
            "data": f"digits test, N = {len(test.y)}, c4; in distribution, uniform, noise-0.1",
            "max_abs_diff_from_fp32": diffs,
            "note": "li_within: relative difference",
            "values": results,
            "cpu_seconds": seconds,
            "torch": torch.__version__,
        },
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/precision-cpu.json"))
