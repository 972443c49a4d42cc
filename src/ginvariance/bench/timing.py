"""The timed variants: the floor (the bare model over a prebuilt orbit), training steps,
and the interleaved rounds that time them."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ginvariance.bench.config import BenchConfig, build_bench_model
from ginvariance.errors import ConfigError
from ginvariance.groups import Group


def floor_forward(model: nn.Module, chunks: Sequence[torch.Tensor]) -> None:
    """One forward of ``model`` over each orbit chunk ``(n·B, *S)``, without gradients."""
    with torch.no_grad():
        for orbit in chunks:
            model(orbit)


def floor_forward_backward(model: nn.Module, chunks: Sequence[torch.Tensor], n: int) -> list:
    """Saliency of each orbit chunk: the gradient to the input of the logit of the class
    predicted on the identity block (the first ``B`` rows of the ``n·B``)."""
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


def floor_forward_backward_params(
    model: nn.Module, chunks: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]
) -> None:
    """Cross-entropy ``backward()`` into the parameters over each chunk (for reference)."""
    for orbit, y in zip(chunks, labels, strict=True):
        with torch.enable_grad():
            F.cross_entropy(model(orbit), y).backward()
    model.zero_grad(set_to_none=True)


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


def make_train_step(
    model: nn.Module,
    group: Group,
    kind: str,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
) -> Callable[[], None]:
    """One Adam step of ``kind`` on the batch ``(x, y)`` of ``B`` samples, as a callable to time.

    ``plain``: cross-entropy on ``x``; ``augmented``: after one random element per sample;
    ``regularized-sample`` / ``regularized-full`` (or ``_``): augmented cross-entropy + the logit
    penalty (λ = 1) on the identity and one sampled element (``2B`` inputs) or on the full
    orbit (``n·B``).
    """
    from ginvariance.training import InvarianceRegularizer, regularized_loss

    kinds = ("plain", "augmented", "regularized-sample", "regularized-full")
    if kind.replace("_", "-") not in kinds:
        raise ConfigError(f"unknown training step {kind!r}; choose one of {', '.join(kinds)}")
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
    x: torch.Tensor, y: torch.Tensor, group: Group, cfg: BenchConfig
) -> dict[str, list[float]]:
    """Seconds per step of each :func:`make_train_step` kind on the first ``cfg.train_batch``
    samples (see ``benchmarks/train_step.py``)."""
    xb, yb = x[: cfg.train_batch], y[: cfg.train_batch]
    gen = torch.Generator().manual_seed(cfg.seed)
    sync = synchronizer(x.device)

    def make_step(kind: str) -> Callable[[], None]:
        model = build_bench_model(cfg.model, cfg.size, cfg.seed, cfg.width).train().to(x.device)
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


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (CUDA runs asynchronously: a time
    taken without it would be the time to queue the kernels)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
