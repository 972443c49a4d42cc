"""What measuring invariance costs, side by side with the model itself and the alternatives.

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
``naive``
    :func:`naive_suite`: one forward and one backward per (sample, group element).
``tmeasures``
    The published library's normalized-variance invariance of the final logits, run in its
    own virtual environment by ``benchmarks/tmeasures_worker.py`` on the same weights, data
    and an exact ``rot90`` transformation set, with the suite's images per chunk as its
    batch size (``tmeasures``, the ratio with a target) and with its default batch size 32
    (``tmeasures_default_batch``). Its result is checked against the same quantity
    computed from our orbit logits (:func:`normalized_variance`).
``train_*``
    One training step (forward, loss, backward, Adam) plain, augmented, regularized with
    one sampled group element, and regularized over the full orbit.
``rss``
    Peak resident memory of a fresh process streaming ``N`` inputs through
    :class:`ginvariance.metrics.InvarianceMetrics`, the inputs generated chunk by chunk.

Every number is checked equal between the implementations before anything is timed.
Variants are timed interleaved, round after round, so that drift of a shared machine
affects all alike; a time is the median over rounds and a ratio the median over rounds of
the per-round ratio.
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
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ginvariance.errors import ConfigError, GinvarianceError
from ginvariance.groups import Group, get_group
from ginvariance.metrics import InvarianceMetrics, eval_mode, invariance_suite
from ginvariance.metrics.orbit import chunk_size_for
from ginvariance.progress import Progress, ensure_progress

#: The version of the published library compared against.
TMEASURES_VERSION = "1.2.11"
#: Where the benchmark keeps the virtual environment for tmeasures, unless told otherwise.
DEFAULT_TMEASURES_VENV = Path.home() / ".cache" / "ginvariance" / "tmeasures-venv"
#: The repository checkout this module sits in (``src/ginvariance/bench.py``), if any.
REPO_ROOT = Path(__file__).resolve().parents[2]
TMEASURES_WORKER = REPO_ROOT / "benchmarks" / "tmeasures_worker.py"

#: Targets of the issue: ratio name → (comparison, bound).
TARGETS: dict[str, tuple[str, float]] = {
    "suite_logit/forward": ("<=", 1.1),
    "suite/forward_backward": ("<=", 1.3),
    "naive/suite": (">=", 20.0),
    "train_regularized_sample/train_plain": ("<=", 2.2),
}
TMEASURES_TARGET = {8: 30.0, 28: 2.5}
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
    model:
        ``cnn``, ``mlp`` or ``resnet`` (:data:`TIMED_MODELS`).
    width:
        The model's width (``None``: its default; ``resnet``: :data:`BENCH_RESNET_WIDTH`).
    device:
        Where the model and the data live (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto``).
    precision:
        ``fp32``, or ``bf16`` / ``fp16`` for the suite's forward under autocast.
    n:
        Number of samples ``N`` (the orbit has ``4·N`` images).
    threads:
        Thread counts to run everything at (``torch.set_num_threads``).
    rounds, warmup:
        Timed rounds (each runs every variant once) and untimed warm-up calls.
    naive_samples:
        The naive loop runs on this many samples and its time is scaled to ``N``; when
        that projects to at most ``naive_full_below_s`` seconds it runs on all ``N``.
    tmeasures_venv, tmeasures_repeats:
        Where tmeasures' virtual environment lives (made on demand), and timed repeats.
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
    naive: bool = True
    naive_samples: int = 100
    naive_full_below_s: float = 30.0
    tmeasures: bool = True
    tmeasures_venv: str = str(DEFAULT_TMEASURES_VENV)
    tmeasures_repeats: int = 3
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
    extra: dict[str, Any] = field(default_factory=dict)

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
        if self.naive_samples < 2:
            raise ConfigError(f"the naive loop needs at least 2 samples, got {self.naive_samples}")
        if any(n < 1 for n in self.rss_n):
            raise ConfigError(f"--rss-n must list positive sample counts, got {self.rss_n}")


# -- model and data ------------------------------------------------------------------------
def build_bench_model(name: str, size: int, seed: int = 0, width: int | None = None) -> nn.Module:
    """Model ``name`` of :data:`TIMED_MODELS` for :data:`BENCH_SHAPES` ``[size]`` inputs and
    10 classes, seeded, in eval mode (``resnet``: :data:`BENCH_RESNET_WIDTH` channels unless
    ``width`` says otherwise)."""
    from ginvariance.models import build_model

    check_bench_model(name)
    if width is None and name == "resnet":
        width = BENCH_RESNET_WIDTH
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(name, BENCH_SHAPES.get(size, (1, size, size)), NUM_CLASSES, width=width)
    return model.eval()


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


# -- the naive loop ------------------------------------------------------------------------
def naive_suite(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, group: Group | str
) -> dict[str, float]:
    """The measures of :func:`~ginvariance.metrics.invariance_suite`, one sample and one
    group element at a time.

    For each sample ``x_b`` and element ``g_i``: one forward ``z_i = f(g_i·x_b)`` with the
    graph kept and one backward ``s_i = ∇_u f(u)[c]`` at ``u = g_i·x_b``, where
    ``c = argmax z_0``; the per-sample maths is done in float64 on the ``(n, K)`` logits
    and the ``n`` saliency maps. ``li`` is pooled in a second pass over the stored logits:
    ``Σ_b Σ_i ‖z_i − z̄_b‖² / Σ_b Σ_i ‖z_i − μ‖²``, and ``li_within`` is its numerator over
    ``N·n``.
    """
    group = get_group(group, tuple(x.shape[1:]))
    n, size = group.order, x.shape[0]
    all_logits = []
    pdi_sum = sis_sum = 0.0
    consistent = correct = orbit_correct = 0.0
    with eval_mode(model), torch.enable_grad():
        for b in range(size):
            xb = x[b : b + 1]
            zs, maps = [], []
            c = 0
            for i in range(n):
                u = group.act(xb, i).detach().requires_grad_(True)
                z = model(u)[0]
                if i == 0:
                    c = int(z.argmax())
                (grad,) = torch.autograd.grad(z[c], u)
                zs.append(z.detach().double())
                maps.append(group.act_inverse(grad, i).flatten().double())
            logits = torch.stack(zs)  # (n, K)
            all_logits.append(logits)
            logp = torch.log_softmax(logits, dim=1)
            p = logp.exp()
            pbar = p.mean(0)
            entropy_pbar = -float((pbar * torch.log(pbar.clamp_min(1e-300))).sum())
            pdi_sum += entropy_pbar - float(-(p * logp).sum(1).mean())
            cos = []
            for i in range(1, n):
                na, nr = float(maps[i].norm()), float(maps[0].norm())
                if na == 0 and nr == 0:
                    cos.append(1.0)
                elif na == 0 or nr == 0:
                    cos.append(0.0)
                else:
                    cos.append(float(maps[i] @ maps[0]) / (na * nr))
            sis_sum += sum(cos) / len(cos) if cos else 1.0
            pred = logits.argmax(1)
            consistent += float(bool((pred == pred[0]).all()))
            if y is not None:
                correct += float(int(pred[0]) == int(y[b]))
                orbit_correct += float((pred == int(y[b])).double().mean())
    stacked = torch.stack(all_logits)  # (N, n, K)
    mu = stacked.mean(dim=(0, 1))
    within = float(((stacked - stacked.mean(1, keepdim=True)) ** 2).sum())
    total = float(((stacked - mu) ** 2).sum())
    out = {
        "pdi": pdi_sum / size,
        "li": within / total if total > 0 else 0.0,
        "li_within": within / (size * n),
        "sis": sis_sum / size,
        "orbit_consistency": consistent / size,
    }
    if y is not None:
        out["accuracy"] = correct / size
        out["orbit_accuracy"] = orbit_correct / size
    return out


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


# -- tmeasures -----------------------------------------------------------------------------
def sequential_spec(model: nn.Module, sample: torch.Tensor) -> tuple[list[dict], nn.Sequential]:
    """Describe ``model`` as a plain ``nn.Sequential`` that another process can rebuild.

    Supports networks whose leaf modules, in registration order, are ``Conv2d``, ``ReLU``,
    ``MaxPool2d``, ``AvgPool2d`` (default stride), ``Flatten`` and ``Linear`` (a ``Flatten``
    is put before the first ``Linear`` if the model flattens in its ``forward``); the rebuilt
    network is checked to give the same logits as ``model`` on ``sample``.
    """
    spec: list[dict] = []
    layers: list[nn.Module] = []
    flat = False
    for name, module in model.named_modules(remove_duplicate=False):
        if any(True for _ in module.children()):
            continue
        if isinstance(module, nn.Conv2d):
            spec.append(
                {
                    "type": "conv2d",
                    "name": name,
                    "in": module.in_channels,
                    "out": module.out_channels,
                    "kernel": list(module.kernel_size),
                    "padding": list(module.padding),
                }
            )
        elif isinstance(module, nn.ReLU):
            spec.append({"type": "relu"})
        elif isinstance(module, nn.MaxPool2d):
            spec.append({"type": "maxpool2d", "kernel": module.kernel_size})
        elif isinstance(module, nn.AvgPool2d):
            spec.append({"type": "avgpool2d", "kernel": module.kernel_size})
        elif (
            isinstance(module, nn.Flatten)
            and not flat
            and (module.start_dim, module.end_dim) == (1, -1)
        ):
            spec.append({"type": "flatten"})
            layers.append(nn.Flatten())
            flat = True
            continue
        elif isinstance(module, nn.Linear):
            if not flat:
                spec.append({"type": "flatten"})
                layers.append(nn.Flatten())
                flat = True
            spec.append(
                {
                    "type": "linear",
                    "name": name,
                    "in": module.in_features,
                    "out": module.out_features,
                }
            )
        else:
            raise ConfigError(
                f"the tmeasures comparison rebuilds plain conv nets only, found "
                f"{type(module).__name__}; run with --skip-tmeasures for this model"
            )
        if spec[-1]["type"] != "flatten":
            layers.append(module)
    seq = nn.Sequential(*layers).eval()
    with torch.no_grad():
        if not torch.equal(seq(sample), model(sample)):
            raise ConfigError(
                "the model is not the plain sequence of its layers; run with --skip-tmeasures"
            )
    return spec, seq


def normalized_variance(logits: torch.Tensor) -> torch.Tensor:
    """tmeasures' normalized-variance invariance per logit unit, from ``(n, N, K)`` logits.

    ``mean_x std_g z / mean_g std_x z`` (standard deviations with ``n − 1`` and ``N − 1``
    degrees of freedom), computed in float64; ``(K,)``.
    """
    z = logits.double()
    return z.std(dim=0).mean(dim=0) / z.std(dim=1).mean(dim=0)


def ensure_tmeasures_venv(venv: Path) -> Path:
    """Create the virtual environment for tmeasures unless it is there; return its python.

    ``python -m venv`` (clean, no system packages), then ``pip install torch==<this torch>
    tmeasures==1.2.11 statsmodels safetensors numpy`` (tmeasures imports ``statsmodels``
    without declaring it), with the checkout's ``constraints.txt`` when there is one.
    """
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import tmeasures, statsmodels, safetensors"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    torch_version = torch.__version__.split("+")[0]
    cmd = [str(python), "-m", "pip", "install", "-q"]
    constraints = REPO_ROOT / "constraints.txt"
    if constraints.exists():
        cmd += ["-c", str(constraints)]
    cmd += [
        f"torch=={torch_version}",
        f"tmeasures=={TMEASURES_VERSION}",
        "statsmodels",
        "safetensors",
        "numpy",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-1:])
        raise RuntimeError(f"pip install failed: {tail}")
    return python


def run_tmeasures(
    model: nn.Module,
    x: torch.Tensor,
    group: Group,
    threads: int,
    batch_size: int,
    repeats: int,
    venv: Path,
    worker: Path = TMEASURES_WORKER,
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """Time tmeasures on ``model`` and ``x`` in its own environment; raise on failure.

    Writes the layer list (JSON), the weights (safetensors) and the data (npz) to a
    temporary folder, runs ``worker`` with the environment's python, with
    ``OMP_NUM_THREADS = threads`` (tmeasures runs the model in a worker thread, which
    does not inherit ``torch.set_num_threads``), and returns its JSON.
    """
    from safetensors.torch import save_file

    if group.name != "c4":
        raise ConfigError(f"the tmeasures comparison knows the group c4 only, got {group.name!r}")
    if not worker.exists():
        raise FileNotFoundError(
            f"worker script {worker} not found; run the bench from a source checkout"
        )
    python = ensure_tmeasures_venv(venv)
    spec, seq = sequential_spec(model, x[:4])
    with tempfile.TemporaryDirectory(prefix="ginv-bench-") as tmp:
        folder = Path(tmp)
        state = {k: v.detach().contiguous() for k, v in seq.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
        np.savez(folder / "data.npz", x=x.numpy())
        config = {
            "layers": spec,
            "threads": threads,
            "batch_size": batch_size,
            "repeats": repeats,
            "order": group.order,
        }
        (folder / "config.json").write_text(json.dumps(config))
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONNOUSERSITE="1")
        env.pop("PYTHONPATH", None)
        done = subprocess.run(
            [str(python), str(worker), str(folder)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-1:])
        raise RuntimeError(f"tmeasures worker failed: {tail}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


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
        "pdi": result["pdi"],
    }
    if where.type == "cuda":
        out["peak_cuda_bytes"] = torch.cuda.max_memory_allocated(where)
    return out


def measure_rss(
    size: int,
    n: int,
    chunk: int,
    threads: int,
    seed: int = 0,
    model_name: str = "cnn",
    width: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run :func:`rss_probe` in a fresh python process and return its result."""
    args = f"{size}, {n}, {chunk}, {threads}, {seed}, {model_name!r}, {width!r}, {device!r}"
    code = (
        "import json; from ginvariance.bench import rss_probe; "
        f"print(json.dumps(rss_probe({args})))"
    )
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
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


def _synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (CUDA runs asynchronously: a time
    taken without it would be the time to queue the kernels)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _met(value: float, op: str, bound: float) -> bool:
    return value <= bound if op == "<=" else value >= bound


def _one_thread_count(
    cfg: BenchConfig,
    threads: int,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    group: Group,
    chunk: int,
    ours_nv: torch.Tensor,
    progress: Progress,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    n = group.order
    rows = [slice(s, min(s + chunk, x.shape[0])) for s in range(0, x.shape[0], chunk)]
    orbits = [group.orbit(x[r]) for r in rows]
    orbit_labels = [y[r].repeat(n) for r in rows]
    times: dict[str, list[float]] = {}
    notes: dict[str, Any] = {}

    from ginvariance.devices import autocast, check_precision

    amp = check_precision(cfg.precision, x.device)
    sync = _synchronizer(x.device)

    def suite() -> None:
        invariance_suite(model, x, group, y, saliency=True, chunk_size=chunk, precision=amp)

    def suite_logit() -> None:
        invariance_suite(model, x, group, y, saliency=False, chunk_size=chunk, precision=amp)

    def floor(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with autocast(x.device, amp):  # the bare model under the suite's precision
                fn()
            sync()

        return run

    def synced(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            fn()
            sync()

        return run

    fns: dict[str, Callable[[], object]] = {
        "suite": synced(suite),
        "suite_logit": synced(suite_logit),
        "forward": floor(lambda: _forward(model, orbits)),
        "forward_backward": floor(lambda: _forward_backward(model, orbits, n)),
        "forward_backward_params": floor(
            lambda: _forward_backward_params(model, orbits, orbit_labels)
        ),
    }
    progress.start(cfg.rounds + cfg.warmup, f"suite and floor, {threads} thread(s)")
    timed = interleaved_times(fns, cfg.rounds, cfg.warmup)
    progress.finish()
    times.update(timed)

    if cfg.naive:
        progress.start(1, f"naive loop, {threads} thread(s)")
        m = min(cfg.naive_samples, x.shape[0])
        began = time.perf_counter()
        naive_suite(model, x[:m], y[:m], group)
        took = time.perf_counter() - began
        projected = took * x.shape[0] / m
        if m < x.shape[0] and projected <= cfg.naive_full_below_s:
            began = time.perf_counter()
            naive_suite(model, x, y, group)
            took, m = time.perf_counter() - began, x.shape[0]
        times["naive"] = [took * x.shape[0] / m]
        notes["naive_measured_on"] = m
        notes["naive_scaled_by"] = x.shape[0] / m
        progress.finish()

    if cfg.train:
        progress.start(1, f"training steps, {threads} thread(s)")
        times.update(train_step_times(cfg.size, x, y, group, cfg))
        progress.finish()

    tm: dict[str, Any] | None = None
    if cfg.tmeasures and (
        cfg.model not in BENCH_MODELS or cfg.size not in TMEASURES_TARGET or x.device.type != "cpu"
    ):
        notes["tmeasures"] = (
            "not run: tmeasures is compared on the plain-sequence models "
            f"({', '.join(BENCH_MODELS)}) at sizes {', '.join(map(str, TMEASURES_TARGET))} "
            "on the CPU"
        )
    elif cfg.tmeasures:
        progress.start(1, f"tmeasures, {threads} thread(s)")
        try:
            tm = run_tmeasures(
                model,
                x,
                group,
                threads,
                batch_size=min(x.shape[0], n * chunk),
                repeats=cfg.tmeasures_repeats,
                venv=Path(cfg.tmeasures_venv),
            )
        except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
            notes["tmeasures"] = f"unavailable: {exc}"
        progress.finish()
        if tm is not None:
            theirs = torch.tensor(tm["per_unit"], dtype=torch.float64)
            rel = float(((theirs - ours_nv).abs() / ours_nv.abs()).max())
            tm["max_rel_diff_to_ours"] = rel
            if not rel <= 1e-3:
                raise BenchCheckError(
                    f"tmeasures' normalized variance differs from ours by {rel:.3g} (relative); "
                    "the model, data or transformations did not arrive intact"
                )

    median = {k: statistics.median(v) for k, v in times.items()}
    ratios: dict[str, float] = {
        "suite_logit/forward": ratio(times, "suite_logit", "forward"),
        "suite/forward_backward": ratio(times, "suite", "forward_backward"),
        "suite/forward_backward_params": ratio(times, "suite", "forward_backward_params"),
        "forward_backward/forward": ratio(times, "forward_backward", "forward"),
    }
    if "naive" in median:
        ratios["naive/suite"] = median["naive"] / median["suite"]
    if "train_plain" in times:
        for kind in ("augmented", "regularized_sample", "regularized_full"):
            ratios[f"train_{kind}/train_plain"] = ratio(times, f"train_{kind}", "train_plain")
    targets = {k: v for k, v in TARGETS.items() if k in ratios}
    if tm is not None:
        median["tmeasures"] = tm["median_s"]
        median["tmeasures_worker_forward"] = tm["forward_median_s"]
        median["tmeasures_default_batch"] = tm["default_batch_median_s"]
        ratios["tmeasures/suite_logit"] = tm["median_s"] / median["suite_logit"]
        ratios["tmeasures_default_batch/suite_logit"] = (
            tm["default_batch_median_s"] / median["suite_logit"]
        )
        ratios["tmeasures/tmeasures_worker_forward"] = tm["median_s"] / tm["forward_median_s"]
        targets["tmeasures/suite_logit"] = (">=", TMEASURES_TARGET[cfg.size])
        notes["tmeasures"] = {
            "version": tm["version"],
            "measure": tm["measure"],
            "batch_size": tm["batch_size"],
            "default_batch_size": tm["default_batch_size"],
            "value": tm["value"],
            "max_rel_diff_to_ours": tm["max_rel_diff_to_ours"],
            "times_s": tm["times_s"],
        }
    images = n * x.shape[0]
    return {
        "threads": threads,
        "seconds": median,
        "ratios": ratios,
        "targets": {
            k: {"op": op, "bound": b, "met": _met(ratios[k], op, b)}
            for k, (op, b) in targets.items()
        },
        "images_per_second": {
            "suite": images / median["suite"],
            "suite_logit": images / median["suite_logit"],
            "forward": images / median["forward"],
        },
        "notes": notes,
    }


def run_bench(cfg: BenchConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run every comparison of the module docstring and return one JSON-ready dict."""
    cfg.check()
    progress = ensure_progress(progress)
    threads_before = torch.get_num_threads()
    sample_shape = BENCH_SHAPES[cfg.size]
    group = get_group(cfg.group, sample_shape)
    from ginvariance.devices import check_precision, resolve_device

    device = resolve_device(cfg.device)
    check_precision(cfg.precision, device)
    model = build_bench_model(cfg.model, cfg.size, cfg.seed, cfg.width).to(device)
    x, y = synthetic_data(cfg.n, cfg.size, cfg.seed)
    x, y = x.to(device), y.to(device)
    chunk = cfg.chunk_size or chunk_size_for(group, sample_shape, x.dtype)
    chunk = min(chunk, cfg.n)
    machine = machine_info()

    # -- numbers first: every implementation must agree before anything is timed --------
    progress.start(1, "checking that the implementations agree")
    checks: dict[str, Any] = {}
    suite = invariance_suite(model, x, group, y, saliency=True, chunk_size=chunk)
    logit = invariance_suite(model, x, group, y, saliency=False, chunk_size=chunk)
    checks["suite_logit_vs_suite"] = compare_measures(logit, suite, cfg.n, "logit-only suite")
    m = min(cfg.naive_samples, cfg.n)
    part = invariance_suite(model, x[:m], group, y[:m], saliency=True, chunk_size=chunk)
    checks["naive_vs_suite"] = compare_measures(
        naive_suite(model, x[:m], y[:m], group), part, m, "naive loop"
    )
    checks["naive_vs_suite"]["samples"] = m
    from ginvariance.metrics import orbit_pass

    first = orbit_pass(model, x[:chunk], group, saliency=True)
    orbit = group.orbit(x[:chunk])
    with torch.no_grad():
        floor_logits = model(orbit).reshape(first.logits.shape)
    floor_maps = group.inverse_orbit(_forward_backward(model, [orbit], group.order)[0])
    assert first.saliency is not None
    checks["floor_logits_max_abs_diff"] = float((floor_logits - first.logits).abs().max())
    checks["floor_saliency_max_abs_diff"] = float(
        (floor_maps.reshape(first.saliency.shape) - first.saliency).abs().max()
    )
    if checks["floor_logits_max_abs_diff"] > 1e-5 or checks["floor_saliency_max_abs_diff"] > 1e-5:
        raise BenchCheckError(
            "the bare model pass and the suite's orbit pass give different logits or saliency; "
            "report this as a bug"
        )
    # tmeasures' measure on our logits, to check the worker's result against
    logits_all = torch.cat(
        [orbit_pass(model, x[s : s + chunk], group).logits for s in range(0, cfg.n, chunk)], dim=1
    )
    ours_nv = normalized_variance(logits_all)
    progress.finish()

    runs = []
    try:
        for threads in cfg.threads:
            runs.append(
                _one_thread_count(cfg, threads, model, x, y, group, chunk, ours_nv, progress)
            )
    finally:
        torch.set_num_threads(threads_before)

    memory: dict[str, Any] | None = None
    if cfg.rss_n:
        threads = max(cfg.threads)
        progress.start(len(cfg.rss_n), "peak memory (fresh processes)")
        probes = []
        for count in cfg.rss_n:
            probes.append(
                measure_rss(
                    cfg.size,
                    count,
                    cfg.rss_chunk,
                    threads,
                    cfg.seed,
                    cfg.model,
                    cfg.width,
                    str(device),
                )
            )
            progress.advance(1)
        progress.finish()
        memory = {
            "threads": threads,
            "chunk": cfg.rss_chunk,
            "probes": probes,
            "target": {"op": "<=", "bound": RSS_TARGET},
        }
        if len(probes) >= 2:
            lo, hi = probes[0], probes[-1]
            rss_ratio = hi["peak_rss_bytes"] / lo["peak_rss_bytes"]
            memory["ratio"] = rss_ratio
            memory["growth_bytes"] = hi["peak_rss_bytes"] - lo["peak_rss_bytes"]
            memory["target"]["met"] = rss_ratio <= RSS_TARGET

    config = asdict(cfg)
    config.pop("extra")
    config["chunk_size"] = chunk
    config["data"] = "synthetic uniform [0, 1], seeded"
    config["dtype"] = "float32"
    config["sample_shape"] = list(sample_shape)
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
        "tmeasures_normalized_variance_ours": float(ours_nv.mean()),
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
    "build_bench_model",
    "build_cnn",
    "compare_measures",
    "interleaved_times",
    "measure_rss",
    "naive_suite",
    "normalized_variance",
    "rss_probe",
    "run_bench",
    "run_tmeasures",
    "synthetic_data",
]
