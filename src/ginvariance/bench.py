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
live beside the package, in ``benchmarks/bench.py``, which builds on this module.

The module stays whole so that every timed variant, its check and the floor it is divided
by can be read side by side.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ginvariance.errors import ConfigError, GinvarianceError
from ginvariance.groups import Group, get_group
from ginvariance.metrics import InvarianceMetrics, invariance_suite, orbit_pass
from ginvariance.metrics.orbit import chunk_size_for
from ginvariance.progress import Progress, ensure_progress

#: Targets of the issue: ratio name → (comparison, bound).
TARGETS: dict[str, tuple[str, float]] = {
    "suite_logit/forward": ("<=", 1.1),
    "suite/forward_backward": ("<=", 1.3),
    "train_regularized_sample/train_plain": ("<=", 2.2),
}
RSS_TARGET = 1.1
NUM_CLASSES = 10
#: The most threads a bench runs at: far past the point where more threads help, and far
#: below the counts at which OpenMP aborts the process (``--threads 100000``).
MAX_THREADS = 256
#: The plain-sequence models the benchmark times (tmeasures can run them too): the study's
#: flatten-head CNN (the default) and the MLP, whose cost per image is small enough that
#: per-call overhead dominates a loop.
BENCH_MODELS = ("cnn", "mlp")
#: Every model the benchmark can time: also the ResNet-18-style ``resnet`` (residual, so
#: not a plain sequence: no tmeasures comparison).
TIMED_MODELS = (*BENCH_MODELS, "resnet")
#: Image sides and the sample shape of each: MNIST-like grey images, CIFAR-like colour.
BENCH_SHAPES = {8: (1, 8, 8), 28: (1, 28, 28), 32: (3, 32, 32)}
#: First-stage channels of the benchmarked ``resnet`` unless ``--width`` says otherwise:
#: a quarter of ResNet-18's 64, so that a bench at N = 1000 fits on a few CPU cores.
BENCH_RESNET_WIDTH = 16


def check_bench_model(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is one of :data:`TIMED_MODELS`."""
    if name not in TIMED_MODELS:
        raise ConfigError(f"unknown --model {name!r}; choose one of: {', '.join(TIMED_MODELS)}")


class BenchCheckError(GinvarianceError):
    """Two implementations that must agree gave different numbers."""


@dataclass
class BenchConfig:
    """What one ``ginv bench`` run measures.

    Attributes
    ----------
    size:
        Side of the square images, 8 or 28 (one channel) or 32 (three channels).
    model, width:
        ``cnn``, ``mlp`` or ``resnet`` (:data:`TIMED_MODELS`) and its width (``None``: its
        default; ``resnet``: :data:`BENCH_RESNET_WIDTH`).
    device, precision:
        Where the model and the data live (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto``);
        ``fp32``, or ``bf16`` / ``fp16`` for the suite's forward under autocast.
    n, threads:
        Number of samples ``N`` (the orbit has ``4·N`` images); thread counts to run at.
    rounds, warmup:
        Timed rounds (each runs every variant once) and untimed warm-up calls.
    train_batch, train_rounds, train_steps:
        Training-step comparison: batch size, rounds, steps per variant per round.
    rss_n:
        Sample counts whose peak RSS is compared (fresh process each); empty skips it.
    """

    size: int = 8
    model: str = "cnn"
    n: int = 1000
    threads: tuple[int, ...] = (1, 2)
    group: str = "c4"
    seed: int = 0
    rounds: int = 7
    warmup: int = 2
    train: bool = True
    train_batch: int = 64
    train_rounds: int = 10
    train_steps: int = 5
    rss_n: tuple[int, ...] = (10_000, 100_000)
    rss_chunk: int = 1000
    chunk_size: int | None = None
    width: int | None = None
    device: str = "cpu"
    precision: str = "fp32"

    def check(self) -> None:
        if self.size not in BENCH_SHAPES:
            raise ConfigError(
                f"--size must be 8 or 28 (grey images) or 32 (colour), got {self.size}"
            )
        check_bench_model(self.model)
        if self.width is not None and self.width < 1:
            raise ConfigError(f"--width must be a positive integer, got {self.width}")
        if self.n < 2:
            raise ConfigError(f"--n must be at least 2 samples, got {self.n}")
        if not self.threads or any(t < 1 for t in self.threads):
            raise ConfigError(f"--threads must list positive counts, e.g. 1,2; got {self.threads}")
        if max(self.threads) > MAX_THREADS:
            raise ConfigError(
                f"--threads {max(self.threads)} is more than {MAX_THREADS}, the most a bench "
                f"runs at (this machine has {os.cpu_count() or 'an unknown number of'} CPUs); "
                "e.g. --threads 1,2"
            )
        if self.rounds < 1 or self.warmup < 0:
            raise ConfigError("--rounds must be at least 1 and warm-up calls at least 0")
        if any(n < 1 for n in self.rss_n):
            raise ConfigError(f"--rss-n must list positive sample counts, got {self.rss_n}")


# -- model and data ------------------------------------------------------------------------
def build_bench_model(name: str, size: int, seed: int = 0, width: int | None = None) -> nn.Module:
    """Model ``name`` of :data:`TIMED_MODELS` for :data:`BENCH_SHAPES` ``[size]`` inputs and
    10 classes, seeded, in eval mode (``resnet``: :data:`BENCH_RESNET_WIDTH` channels unless
    ``width`` says otherwise)."""
    from ginvariance.models import build_seeded_model

    check_bench_model(name)
    if width is None and name == "resnet":
        width = BENCH_RESNET_WIDTH
    shape = BENCH_SHAPES.get(size, (1, size, size))
    return build_seeded_model(name, shape, NUM_CLASSES, seed=seed, width=width).eval()


def build_cnn(size: int, seed: int = 0) -> nn.Module:
    """The ``cnn`` model for ``(1, size, size)`` inputs and 10 classes, seeded, eval mode."""
    return build_bench_model("cnn", size, seed)


def synthetic_data(
    n: int, size: int, seed: int = 0, start: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded synthetic inputs ``(n, *BENCH_SHAPES[size])`` uniform in [0, 1] and labels
    ``(n,)`` (``(n, 1, size, size)`` for a side not in :data:`BENCH_SHAPES`).

    ``start`` picks a later block of the same stream, so that chunks can be generated
    one at a time (chunk ``k`` of size ``c`` is ``synthetic_data(c, size, seed, k·c)``
    with its own generator seeded by ``(seed, start)``).
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + start)
    x = torch.rand(n, *BENCH_SHAPES.get(size, (1, size, size)), generator=gen)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    return x, y


def compare_measures(
    ours: Mapping[str, float | None], theirs: Mapping[str, float | None], count: int, what: str
) -> dict[str, float]:
    """Largest differences per key; raise :class:`BenchCheckError` past the tolerance.

    Continuous measures agree to ``1e-4`` (absolute, float32 models; relative for
    ``li_within``, which is in squared logit units); the counting ones (accuracies,
    consistency) to one sample in ``count``, since a float32 near-tie can flip one
    prediction between a batched and a single-sample convolution.
    """
    diffs = {}
    for key in sorted(set(ours) & set(theirs)):
        a, b = ours[key], theirs[key]
        if a is None or b is None:  # an undefined measure (sis of a gradient-free model)
            if a is not b:
                raise BenchCheckError(f"{what}: {key} is {a} in one and {b} in the other")
            continue
        diff = abs(a - b)
        if key == "li_within":
            tol = 1e-4 * max(abs(a), abs(b))
        elif key in ("pdi", "li", "sis"):
            tol = 1e-4
        else:
            tol = 1.0 / count + 1e-12
        diffs[key] = diff
        if not diff <= tol:
            raise BenchCheckError(
                f"{what}: {key} differs by {diff:.3g} (ours {a:.6g}, theirs "
                f"{b:.6g}); the implementations disagree, report this as a bug"
            )
    return diffs


# -- the floor -----------------------------------------------------------------------------
def _forward(model: nn.Module, chunks: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for orbit in chunks:
            model(orbit)


def _forward_backward(model: nn.Module, chunks: Sequence[torch.Tensor], n: int) -> list:
    grads = []
    for orbit in chunks:
        u = orbit.detach().requires_grad_(True)
        with torch.enable_grad():
            z = model(u)
            b = z.shape[0] // n
            c = z[:b].detach().argmax(1).repeat(n)  # class predicted on the identity block
            (grad,) = torch.autograd.grad(z.gather(1, c.view(-1, 1)).sum(), u)
        grads.append(grad)
    return grads


def _forward_backward_params(
    model: nn.Module, chunks: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]
) -> None:
    for orbit, y in zip(chunks, labels, strict=True):
        with torch.enable_grad():
            F.cross_entropy(model(orbit), y).backward()
    model.zero_grad(set_to_none=True)


# -- timing --------------------------------------------------------------------------------
def interleaved_times(
    fns: Mapping[str, Callable[[], object]], rounds: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per call of each function, ``rounds`` rounds of one call each, interleaved.

    The order alternates between rounds (forward, then reversed) so that no variant
    always runs right after a particular other one.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    gc.collect()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            began = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - began)
    return times


def ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of ``time[a] / time[b]`` measured in the same round."""
    return statistics.median(ta / tb for ta, tb in zip(times[a], times[b], strict=True))


# -- training step -------------------------------------------------------------------------
def make_train_step(
    model: nn.Module,
    group: Group,
    kind: str,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
) -> Callable[[], None]:
    """One Adam step of ``kind`` on the batch ``(x, y)``, as a callable to time.

    ``plain``: cross-entropy on ``x``; ``augmented``: after one random element per sample;
    ``regularized-sample`` / ``regularized-full``: augmented cross-entropy + the logit
    penalty (λ = 1) on one sampled element or on the full orbit.
    """
    from ginvariance.training import InvarianceRegularizer, regularized_loss

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    reg = InvarianceRegularizer(group, "logit", "sample" if kind.endswith("sample") else "full")

    def step() -> None:
        inputs = x
        if kind != "plain":
            inputs = group.act_per_sample(x, group.sample(x.shape[0], generator))
        if kind.startswith("regularized"):
            loss, _, _ = regularized_loss(model, inputs, y, reg, 1.0, generator=generator)
        else:
            loss = F.cross_entropy(model(inputs), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def train_step_times(
    size: int, x: torch.Tensor, y: torch.Tensor, group: Group, cfg: BenchConfig
) -> dict[str, list[float]]:
    """Seconds per training step of each variant (see ``benchmarks/train_step.py``).

    ``plain``: cross-entropy on ``B`` inputs; ``augmented``: after one random element per
    sample; ``regularized_sample``: cross-entropy + logit penalty on the identity and one
    sampled element (``2B`` inputs); ``regularized_full``: over the full orbit (``n·B``).
    """
    xb, yb = x[: cfg.train_batch], y[: cfg.train_batch]
    gen = torch.Generator().manual_seed(cfg.seed)
    sync = _synchronizer(x.device)

    def make_step(kind: str) -> Callable[[], None]:
        model = build_bench_model(cfg.model, size, cfg.seed, cfg.width).train().to(x.device)
        step = make_train_step(model, group, kind, xb, yb, gen)

        def steps() -> None:
            for _ in range(cfg.train_steps):
                step()
            sync()

        return steps

    kinds = ["plain", "augmented", "regularized_sample", "regularized_full"]
    fns = {f"train_{k}": make_step(k) for k in kinds}
    times = interleaved_times(fns, cfg.train_rounds, 1)
    return {k: [t / cfg.train_steps for t in v] for k, v in times.items()}


# -- memory --------------------------------------------------------------------------------
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
    """Stream ``n`` synthetic inputs through :class:`InvarianceMetrics` (with ``sis``).

    Meant to run in a fresh process (see :func:`measure_rss`). The inputs are generated
    ``chunk`` at a time, so that the process holds one chunk of data, not ``n`` samples:
    its peak memory is the suite's. Returns the peak after the first chunk and at the end
    (on CUDA also the peak of allocated device memory, ``peak_cuda_bytes``).
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


# -- the whole run -------------------------------------------------------------------------
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


def bench_setup(cfg: BenchConfig) -> BenchSetup:
    """Check ``cfg`` and build its seeded model, ``N`` synthetic inputs, group and chunk, the
    model and the data on ``cfg.device``."""
    from ginvariance.devices import check_precision, resolve_device

    cfg.check()
    device = resolve_device(cfg.device)
    check_precision(cfg.precision, device)
    sample_shape = BENCH_SHAPES[cfg.size]
    group = get_group(cfg.group, sample_shape)
    x, y = synthetic_data(cfg.n, cfg.size, cfg.seed)
    chunk = min(cfg.chunk_size or chunk_size_for(group, sample_shape, x.dtype), cfg.n)
    model = build_bench_model(cfg.model, cfg.size, cfg.seed, cfg.width).to(device)
    return BenchSetup(model, x.to(device), y.to(device), group, chunk)


def _synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (CUDA runs asynchronously: a time
    taken without it would be the time to queue the kernels)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _one_thread_count(
    cfg: BenchConfig, threads: int, setup: BenchSetup, progress: Progress
) -> dict[str, Any]:
    from ginvariance.devices import autocast, check_precision

    torch.set_num_threads(threads)
    model, x, y, group, chunk = setup.model, setup.x, setup.y, setup.group, setup.chunk
    n = group.order
    rows = [slice(s, min(s + chunk, x.shape[0])) for s in range(0, x.shape[0], chunk)]
    orbits = [group.orbit(x[r]) for r in rows]
    orbit_labels = [y[r].repeat(n) for r in rows]
    amp = check_precision(cfg.precision, x.device)
    sync = _synchronizer(x.device)
    suite = partial(invariance_suite, model, x, group, y, chunk_size=chunk, precision=amp)

    def timed(fn: Callable[[], object], under: torch.dtype | None = None) -> Callable[[], None]:
        """``fn`` and a wait for the device; ``under`` autocast (the floor runs the bare model
        under the precision the suite passes on)."""

        def run() -> None:
            with autocast(x.device, under):
                fn()
            sync()

        return run

    fns: dict[str, Callable[[], object]] = {
        "suite": timed(lambda: suite(saliency=True)),
        "suite_logit": timed(lambda: suite(saliency=False)),
        "forward": timed(lambda: _forward(model, orbits), amp),
        "forward_backward": timed(lambda: _forward_backward(model, orbits, n), amp),
        "forward_backward_params": timed(
            lambda: _forward_backward_params(model, orbits, orbit_labels), amp
        ),
    }
    progress.start(cfg.rounds + cfg.warmup, f"suite and floor, {threads} thread(s)")
    times = interleaved_times(fns, cfg.rounds, cfg.warmup)
    progress.finish()
    if cfg.train:
        progress.start(1, f"training steps, {threads} thread(s)")
        times.update(train_step_times(cfg.size, x, y, group, cfg))
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
    floor_maps = group.inverse_orbit(_forward_backward(model, [orbit], group.order)[0])
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
