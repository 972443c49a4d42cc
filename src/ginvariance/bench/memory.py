"""Peak resident memory of a fresh process streaming inputs through the suite."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ginvariance.bench.config import build_bench_model, synthetic_data
from ginvariance.metrics import InvarianceMetrics


def _vm_hwm_bytes() -> int:
    """Peak resident set size of this process: ``VmHWM`` on Linux, else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def rss_probe(
    size: int,
    n: int,
    chunk: int,
    threads: int,
    seed: int = 0,
    model_name: str = "cnn",
    width: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Stream ``n`` synthetic inputs, generated ``chunk`` at a time, through
    :class:`InvarianceMetrics` (with ``sis``) in a fresh process (:func:`measure_rss`): its peak
    memory after the first chunk and at the end is the suite's (on CUDA also ``peak_cuda_bytes``).
    """
    from ginvariance.devices import resolve_device

    torch.set_num_threads(threads)
    where = resolve_device(device)
    model = build_bench_model(model_name, size, seed, width).to(where)
    metric = InvarianceMetrics(model, "c4", saliency=True)
    first = 0
    began = time.perf_counter()
    for k, start in enumerate(range(0, n, chunk)):
        xb, yb = synthetic_data(min(chunk, n - start), size, seed, start)
        metric.update(xb, yb)
        if k == 0:
            first = _vm_hwm_bytes()
    result = metric.compute()
    out = {
        "n": n,
        "peak_rss_bytes": _vm_hwm_bytes(),
        "peak_rss_after_first_chunk_bytes": first,
        "seconds": time.perf_counter() - began,
        "pdi": float(result["pdi"]),
    }
    if where.type == "cuda":
        out["peak_cuda_bytes"] = torch.cuda.max_memory_allocated(where)
    return out


def measure_rss(**probe: Any) -> dict[str, Any]:
    """:func:`rss_probe` with these keyword arguments, run in a fresh python process."""
    code = (
        "import json, sys; from ginvariance.bench import rss_probe; "
        "print(json.dumps(rss_probe(**json.loads(sys.argv[1]))))"
    )
    threads = str(probe["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    command = [sys.executable, "-c", code, json.dumps(probe)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-1:])
        raise RuntimeError(f"memory probe failed: {tail}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
