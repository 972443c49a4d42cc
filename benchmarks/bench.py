"""The cost of measuring invariance next to other code: a naive loop and tmeasures.

``ginv bench`` (:mod:`ginvariance.bench`) times the suite against the bare model, training
steps and peak memory. This script runs that same benchmark and adds, on the same model,
data and thread counts, the comparisons that need code from outside the package:

``naive``
    :func:`naive_suite`: one forward and one backward per (sample, group element), on
    ``--naive-samples`` samples, its time scaled to ``N`` (on all ``N`` when that projects to
    at most 30 s); its numbers are checked against the suite's before anything is timed.
``tmeasures``
    The published library's normalized-variance invariance of the final logits, run in its
    own virtual environment (made on demand, ``--tmeasures-venv``) by ``tmeasures_worker.py``
    on the same weights, data and an exact ``rot90`` transformation set, with the suite's
    images per chunk as its batch size (``tmeasures``, the ratio with a target) and with its
    default batch size 32 (``tmeasures_default_batch``). Its result is checked against the
    same quantity computed from our orbit logits (:func:`normalized_variance`).

Usage (the options of ``ginv bench --help``, and those of the comparisons)::

    python benchmarks/bench.py --size 8 --n 1000 --threads 1,2 --json
    python benchmarks/bench.py --size 28 --json --out benchmarks/results/bench-28x28.json

The figures in ``benchmarks/results/`` come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ginvariance.bench import (
    BenchCheckError,
    BenchConfig,
    BenchSetup,
    bench_setup,
    compare_measures,
    run_bench,
    target,
)
from ginvariance.errors import ConfigError, GinvarianceError
from ginvariance.groups import Group, get_group
from ginvariance.metrics import eval_mode, invariance_suite, orbit_pass
from ginvariance.progress import Progress, ensure_progress

#: The version of the published library compared against.
TMEASURES_VERSION = "1.2.11"
#: Where the benchmark keeps the virtual environment for tmeasures, unless told otherwise.
DEFAULT_TMEASURES_VENV = Path.home() / ".cache" / "ginvariance" / "tmeasures-venv"
REPO_ROOT = Path(__file__).resolve().parents[1]
TMEASURES_WORKER = Path(__file__).resolve().parent / "tmeasures_worker.py"
#: ``naive/suite`` must be at least this; ``tmeasures/suite_logit`` at least the bound of its size.
NAIVE_TARGET = 20.0
TMEASURES_TARGET = {8: 30.0, 28: 2.5}


@dataclass
class Comparisons:
    """What this script adds to ``ginv bench``: the naive loop and tmeasures."""

    naive: bool = True
    naive_samples: int = 100
    naive_full_below_s: float = 30.0
    tmeasures: bool = True
    tmeasures_venv: str = str(DEFAULT_TMEASURES_VENV)
    tmeasures_repeats: int = 3

    def check(self) -> None:
        if self.naive_samples < 2:
            raise ConfigError(f"the naive loop needs at least 2 samples, got {self.naive_samples}")


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


def _time_naive(cmp: Comparisons, setup: BenchSetup) -> tuple[float, int]:
    """Seconds of :func:`naive_suite` over all ``N`` samples (scaled) and the samples run."""
    model, x, y, group = setup.model, setup.x, setup.y, setup.group
    m = min(cmp.naive_samples, x.shape[0])
    began = time.perf_counter()
    naive_suite(model, x[:m], y[:m], group)
    took = time.perf_counter() - began
    if m < x.shape[0] and took * x.shape[0] / m <= cmp.naive_full_below_s:
        began = time.perf_counter()
        naive_suite(model, x, y, group)
        took, m = time.perf_counter() - began, x.shape[0]
    return took * x.shape[0] / m, m


def _add_tmeasures(run: dict[str, Any], tm: dict[str, Any], size: int) -> None:
    seconds, ratios = run["seconds"], run["ratios"]
    seconds["tmeasures"] = tm["median_s"]
    seconds["tmeasures_worker_forward"] = tm["forward_median_s"]
    seconds["tmeasures_default_batch"] = tm["default_batch_median_s"]
    ratios["tmeasures/suite_logit"] = tm["median_s"] / seconds["suite_logit"]
    ratios["tmeasures_default_batch/suite_logit"] = (
        tm["default_batch_median_s"] / seconds["suite_logit"]
    )
    ratios["tmeasures/tmeasures_worker_forward"] = tm["median_s"] / tm["forward_median_s"]
    run["targets"]["tmeasures/suite_logit"] = target(
        ratios["tmeasures/suite_logit"], ">=", TMEASURES_TARGET[size]
    )
    keys = ("version", "measure", "batch_size", "default_batch_size", "value")
    run["notes"]["tmeasures"] = {
        **{k: tm[k] for k in keys},
        "max_rel_diff_to_ours": tm["max_rel_diff_to_ours"],
        "times_s": tm["times_s"],
    }


def run_comparison(
    cfg: BenchConfig, cmp: Comparisons, progress: Progress | None = None
) -> dict[str, Any]:
    """:func:`ginvariance.bench.run_bench` with the naive loop and tmeasures beside it.

    The naive loop's numbers and our normalized variance are computed and checked first;
    then ``ginv bench``'s run; then, per thread count, the naive loop and tmeasures.
    """
    cmp.check()
    setup = bench_setup(cfg)
    progress = ensure_progress(progress)
    model, x, y, group, chunk = setup.model, setup.x, setup.y, setup.group, setup.chunk
    checks: dict[str, Any] = {}
    if cmp.naive:
        m = min(cmp.naive_samples, cfg.n)
        part = invariance_suite(model, x[:m], group, y[:m], saliency=True, chunk_size=chunk)
        naive = naive_suite(model, x[:m], y[:m], group)
        checks["naive_vs_suite"] = compare_measures(naive, part, m, "naive loop")
        checks["naive_vs_suite"]["samples"] = m
    # tmeasures' measure on our logits, to check the worker's result against
    logits = [orbit_pass(model, x[s : s + chunk], group).logits for s in range(0, cfg.n, chunk)]
    ours_nv = normalized_variance(torch.cat(logits, dim=1))

    result = run_bench(cfg, progress)
    result["checks"].update(checks)
    result["config"].update(vars(cmp))
    result["tmeasures_normalized_variance_ours"] = float(ours_nv.mean())
    threads_before = torch.get_num_threads()
    try:
        for run in result["runs"]:
            threads = run["threads"]
            torch.set_num_threads(threads)
            if cmp.naive:
                progress.start(1, f"naive loop, {threads} thread(s)")
                seconds, m = _time_naive(cmp, setup)
                progress.finish()
                run["seconds"]["naive"] = seconds
                run["ratios"]["naive/suite"] = seconds / run["seconds"]["suite"]
                run["targets"]["naive/suite"] = target(
                    run["ratios"]["naive/suite"], ">=", NAIVE_TARGET
                )
                run["notes"]["naive_measured_on"] = m
                run["notes"]["naive_scaled_by"] = cfg.n / m
            if not cmp.tmeasures:
                continue
            progress.start(1, f"tmeasures, {threads} thread(s)")
            try:
                tm = run_tmeasures(
                    model,
                    x,
                    group,
                    threads,
                    batch_size=min(cfg.n, group.order * chunk),
                    repeats=cmp.tmeasures_repeats,
                    venv=Path(cmp.tmeasures_venv),
                )
            except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
                run["notes"]["tmeasures"] = f"unavailable: {exc}"
                continue
            finally:
                progress.finish()
            theirs = torch.tensor(tm["per_unit"], dtype=torch.float64)
            rel = float(((theirs - ours_nv).abs() / ours_nv.abs()).max())
            tm["max_rel_diff_to_ours"] = rel
            if not rel <= 1e-3:
                raise BenchCheckError(
                    f"tmeasures' normalized variance differs from ours by {rel:.3g} (relative); "
                    "the model, data or transformations did not arrive intact"
                )
            _add_tmeasures(run, tm, cfg.size)
    finally:
        torch.set_num_threads(threads_before)
    return result


#: Rows of the table beside ``ginv bench``'s: after its floor rows.
ROWS: list[tuple[str, str, str | None]] = [
    ("naive", "naive loop (per sample, element)", "naive/suite"),
    ("tmeasures", "tmeasures NormalizedVariance", "tmeasures/suite_logit"),
    (
        "tmeasures_default_batch",
        "tmeasures, its default batch 32",
        "tmeasures_default_batch/suite_logit",
    ),
]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8, help="image side: 8 or 28")
    parser.add_argument("--model", default="cnn", help="cnn (the study's) or mlp")
    parser.add_argument("--n", type=int, default=1000, help="number of samples N")
    parser.add_argument("--threads", type=_ints, default=(1, 2), help="e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per variant")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--skip-tmeasures", action="store_true")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--rss-n", type=_ints, default=(10_000, 100_000))
    parser.add_argument("--naive-samples", type=int, default=100)
    parser.add_argument("--tmeasures-venv", type=Path, default=DEFAULT_TMEASURES_VENV)
    args = parser.parse_args(argv)

    from ginvariance.cli.bench import ROWS as GINV_ROWS
    from ginvariance.cli.bench import bench_table
    from ginvariance.cli.common import RichProgress, console, fail
    from ginvariance.io import atomic_write_json, to_json

    cfg = BenchConfig(
        size=args.size,
        model=args.model,
        n=args.n,
        threads=args.threads,
        rounds=args.rounds,
        train=not args.skip_train,
        rss_n=() if args.skip_rss else args.rss_n,
    )
    cmp = Comparisons(
        naive=not args.skip_naive,
        naive_samples=args.naive_samples,
        tmeasures=not args.skip_tmeasures,
        tmeasures_venv=str(args.tmeasures_venv),
    )
    try:
        result = run_comparison(cfg, cmp, progress=RichProgress())
        if args.out is not None:
            atomic_write_json(args.out, result)
    except GinvarianceError as exc:
        fail(str(exc))
    if args.json:
        sys.stdout.write(to_json(result))
    else:
        console.print(bench_table(result, GINV_ROWS[:5] + ROWS + GINV_ROWS[5:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
