"""One whole ``ginv bench`` run: check the numbers, time every variant at each thread
count, probe the memory, and return one JSON-ready dict."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ginvariance.bench.config import (
    BENCH_RESNET_WIDTH,
    BENCH_SHAPES,
    RSS_TARGET,
    TARGETS,
    BenchCheckError,
    BenchConfig,
    build_bench_model,
    compare_measures,
    synthetic_data,
)
from ginvariance.bench.memory import measure_rss
from ginvariance.bench.timing import (
    floor_forward,
    floor_forward_backward,
    floor_forward_backward_params,
    interleaved_times,
    ratio,
    synchronizer,
    train_step_times,
)
from ginvariance.groups import Group, get_group
from ginvariance.metrics import invariance_suite, orbit_pass
from ginvariance.metrics.orbit import chunk_size_for
from ginvariance.progress import Progress, ensure_progress


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, torch and python versions, and the load average."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def target(value: float, op: str, bound: float) -> dict[str, Any]:
    """``{"op", "bound", "met"}``: whether ``value`` meets ``op bound`` (``<=`` or ``>=``)."""
    return {"op": op, "bound": bound, "met": value <= bound if op == "<=" else value >= bound}


@dataclass
class BenchSetup:
    """The model, data, group and chunk every variant of a run shares (:func:`bench_setup`)."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    group: Group
    chunk: int
    amp: torch.dtype | None  # the autocast dtype of the precision


def bench_setup(cfg: BenchConfig) -> BenchSetup:
    """Check ``cfg`` and build its seeded model, ``N`` synthetic inputs, group and chunk, the
    model and the data on ``cfg.device``."""
    from ginvariance.devices import check_precision, resolve_device

    cfg.check()
    device = resolve_device(cfg.device)
    amp = check_precision(cfg.precision, device)
    sample_shape = BENCH_SHAPES[cfg.size]
    group = get_group(cfg.group, sample_shape)
    x, y = synthetic_data(cfg.n, cfg.size, cfg.seed)
    chunk = min(cfg.chunk_size or chunk_size_for(group, sample_shape, x.dtype), cfg.n)
    model = build_bench_model(cfg.model, cfg.size, cfg.seed, cfg.width).to(device)
    return BenchSetup(model, x.to(device), y.to(device), group, chunk, amp)


def _one_thread_count(
    cfg: BenchConfig, threads: int, setup: BenchSetup, progress: Progress
) -> dict[str, Any]:
    from ginvariance.devices import autocast

    torch.set_num_threads(threads)
    model, x, y, group, chunk = setup.model, setup.x, setup.y, setup.group, setup.chunk
    n = group.order
    orbits = [group.orbit(xb) for xb in x.split(chunk)]
    orbit_labels = [yb.repeat(n) for yb in y.split(chunk)]
    sync = synchronizer(x.device)
    amp = setup.amp
    suite = partial(invariance_suite, model, x, group, y, chunk_size=chunk, precision=amp)

    def timed(fn: Callable[[], object], under: torch.dtype | None = None) -> Callable[[], None]:
        """``fn`` and a wait for the device, ``under`` autocast (the floor's precision)."""

        def run() -> None:
            with autocast(x.device, under):
                fn()
            sync()

        return run

    fns: dict[str, Callable[[], object]] = {
        "suite": timed(lambda: suite(saliency=True)),
        "suite_logit": timed(lambda: suite(saliency=False)),
        "forward": timed(lambda: floor_forward(model, orbits), amp),
        "forward_backward": timed(lambda: floor_forward_backward(model, orbits, n), amp),
        "forward_backward_params": timed(
            lambda: floor_forward_backward_params(model, orbits, orbit_labels), amp
        ),
    }
    progress.start(cfg.rounds + cfg.warmup, f"suite and floor, {threads} thread(s)")
    times = interleaved_times(fns, cfg.rounds, cfg.warmup)
    progress.finish()
    if cfg.train:
        progress.start(1, f"training steps, {threads} thread(s)")
        times.update(train_step_times(x, y, group, cfg))
        progress.finish()

    median = {k: statistics.median(v) for k, v in times.items()}
    pairs = [
        ("suite_logit", "forward"),
        ("suite", "forward_backward"),
        ("suite", "forward_backward_params"),
        ("forward_backward", "forward"),
    ]
    if "train_plain" in times:
        kinds = ("augmented", "regularized_sample", "regularized_full")
        pairs += [(f"train_{k}", "train_plain") for k in kinds]
    ratios = {f"{a}/{b}": ratio(times, a, b) for a, b in pairs}
    images = n * x.shape[0]
    return {
        "threads": threads,
        "seconds": median,
        "ratios": ratios,
        "targets": {k: target(ratios[k], *t) for k, t in TARGETS.items() if k in ratios},
        "images_per_second": {k: images / median[k] for k in ("suite", "suite_logit", "forward")},
        "notes": {},
    }


def _check_floor(setup: BenchSetup) -> dict[str, float]:
    """The bare model pass and the suite's orbit pass give the same logits and saliency maps
    on the first chunk (largest absolute differences), or :class:`BenchCheckError`."""
    model, x, group = setup.model, setup.x[: setup.chunk], setup.group
    first = orbit_pass(model, x, group, saliency=True)
    orbit = group.orbit(x)
    with torch.no_grad():
        floor_logits = model(orbit).reshape(first.logits.shape)
    floor_maps = group.inverse_orbit(floor_forward_backward(model, [orbit], group.order)[0])
    assert first.saliency is not None
    checks = {
        "floor_logits_max_abs_diff": float((floor_logits - first.logits).abs().max()),
        "floor_saliency_max_abs_diff": float(
            (floor_maps.reshape(first.saliency.shape) - first.saliency).abs().max()
        ),
    }
    if any(v > 1e-5 for v in checks.values()):
        raise BenchCheckError(
            "the bare model pass and the suite's orbit pass give different logits or saliency; "
            "report this as a bug"
        )
    return checks


def _memory(cfg: BenchConfig, device: torch.device, progress: Progress) -> dict[str, Any]:
    """Peak RSS of :func:`rss_probe` at each of ``cfg.rss_n`` samples, and their ratio."""
    threads = max(cfg.threads)
    probe = {
        "size": cfg.size,
        "chunk": cfg.rss_chunk,
        "threads": threads,
        "seed": cfg.seed,
        "model_name": cfg.model,
        "width": cfg.width,
        "device": str(device),
    }
    progress.start(len(cfg.rss_n), "peak memory (fresh processes)")
    probes = []
    for count in cfg.rss_n:
        probes.append(measure_rss(n=count, **probe))
        progress.advance(1)
    progress.finish()
    memory: dict[str, Any] = {"threads": threads, "chunk": cfg.rss_chunk, "probes": probes}
    memory["target"] = {"op": "<=", "bound": RSS_TARGET}
    if len(probes) >= 2:
        lo, hi = probes[0]["peak_rss_bytes"], probes[-1]["peak_rss_bytes"]
        memory["ratio"] = hi / lo
        memory["growth_bytes"] = hi - lo
        memory["target"] = target(memory["ratio"], "<=", RSS_TARGET)
    return memory


def run_bench(cfg: BenchConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run every comparison of the module docstring and return one JSON-ready dict."""
    setup = bench_setup(cfg)
    progress = ensure_progress(progress)
    threads_before = torch.get_num_threads()
    model, x, y, group, chunk = setup.model, setup.x, setup.y, setup.group, setup.chunk
    device = x.device
    machine = machine_info()

    # numbers first: every implementation must agree before anything is timed
    progress.start(1, "checking that the implementations agree")
    suite = invariance_suite(model, x, group, y, saliency=True, chunk_size=chunk)
    logit = invariance_suite(model, x, group, y, saliency=False, chunk_size=chunk)
    checks: dict[str, Any] = {
        "suite_logit_vs_suite": compare_measures(logit, suite, cfg.n, "logit-only suite"),
        **_check_floor(setup),
    }
    progress.finish()

    runs = []
    try:
        for threads in cfg.threads:
            runs.append(_one_thread_count(cfg, threads, setup, progress))
    finally:
        torch.set_num_threads(threads_before)
    memory = _memory(cfg, device, progress) if cfg.rss_n else None

    config = asdict(cfg)
    config["chunk_size"] = chunk
    config["data"] = "synthetic uniform [0, 1], seeded"
    config["dtype"] = "float32"
    config["sample_shape"] = list(BENCH_SHAPES[cfg.size])
    config["device"] = str(device)
    config["device_name"] = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else machine["cpu"]
    )
    config["parameters"] = sum(p.numel() for p in model.parameters())
    if cfg.model == "resnet":
        config["width"] = cfg.width or BENCH_RESNET_WIDTH
    return {
        "machine": machine,
        "load_average_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "config": config,
        "measures": suite,
        "checks": checks,
        "runs": runs,
        "memory": memory,
        "floor": (
            "forward, forward_backward and forward_backward_params run the model alone on the "
            "prebuilt orbit tensor, in the suite's chunks; suite and suite_logit start from x "
            "and include input checks, building the orbit and the statistics"
        ),
    }
