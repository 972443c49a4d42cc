"""The bench's configuration, its seeded model and data, and the check that two
implementations give the same numbers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ginvariance.errors import ConfigError, GinvarianceError

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
    ``(n,)`` (``(n, 1, size, size)`` for a side not in :data:`BENCH_SHAPES`); a chunk ``k`` of
    size ``c`` is ``synthetic_data(c, size, seed, k·c)``, its generator seeded by ``(seed, start)``.
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
