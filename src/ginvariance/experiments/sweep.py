"""Sweeps on Ray Tune: seeds × λ × group × model × data set, aggregated with confidence intervals.

What one trial is
-----------------
A trial trains one unconstrained network (``cnn`` or ``mlp``) on one data set for one group,
seed and ``λ``, and measures it on the test split in distribution and under the shifts
(``uniform`` by default, the severe shift) with :func:`ginvariance.metrics.measure`:

``λ = 0``
    the ``augmented`` model (cross-entropy on one random group element per sample). The
    regularized objective at ``λ = 0`` *is* this objective; training it as ``augmented``
    skips the orbit forward pass whose penalty would be multiplied by zero. So the left
    end of every curve is the learned-invariance baseline of the paper.
``λ > 0``
    the ``regularized`` model: the same augmented cross-entropy plus ``λ`` times the
    invariance penalty over the orbit (:class:`~ginvariance.training.InvarianceRegularizer`).

Beside the grid, once per (group, data set, seed), the ``weight-tied`` network (genuinely
invariant by construction) is trained and measured as the reference every curve is read
against; it has no ``λ``. It is left out (and the aggregate says why) where the group has
no weight-tied network (for example ``shift``).

Where things go
---------------
``DIR/trials/<key>/results.json``
    the ``results.json`` format of ``ginv run`` for the trial's one model
    (``{"models": {NAME: {"id", "shift"}}, "group", "dataset", "seed", "config",
    "versions"}``), written atomically at the end of the trial, beside the model's
    checkpoint (``<NAME>.safetensors``, saved after every epoch).
``DIR/tune/``
    Ray Tune's experiment state. A sweep that was interrupted (Ctrl-C, a lost node, a
    failed trial) continues with ``Tuner.restore(..., resume_errored=True)`` when it is run
    again with the same options: finished trials are kept, unfinished or failed ones run
    again and continue from their last saved epoch.
``DIR/sweep-config.json``
    the configuration; a folder holding a sweep of another configuration is refused.
``DIR/sweep.json``, ``DIR/sweep.png``, ``DIR/sweep.html``
    the aggregate (:func:`aggregate`) and its figure and page (:func:`render_sweep`).

Statistics
----------
For each (group, data set, model, ``λ``) and each measure, over the ``n`` seeds:
mean ``m``, sample standard deviation ``s`` (``ddof = 1``) and the two-sided 95 % confidence
interval of the mean from Student's t distribution, ``m ± t_{0.975, n−1} · s / √n``
(``None`` with a single seed).

Ray is imported only when a sweep runs: importing :mod:`ginvariance` does not import it.
On a multi-node cluster (``address``) every node must see ``DIR`` at the same path (a shared
file system) and have ``ginvariance`` installed.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ginvariance.errors import ConfigError, GinvarianceError, ModelError, OutputError
from ginvariance.experiments.stats import CONFIDENCE, summarize
from ginvariance.keys import MEASURE_KEYS
from ginvariance.progress import Progress, ensure_progress
from ginvariance.seeds import check_seed

SWEEP_FILE = "sweep.json"
SWEEP_FIGURE = "sweep.png"
SWEEP_PAGE = "sweep.html"
CONFIG_FILE = "sweep-config.json"
TRIALS_DIR = "trials"
TUNE_DIR = "tune"
TRIAL_RESULTS = "results.json"

#: Networks whose invariance is learned, and so can be swept over ``λ``.
SWEEP_MODELS: tuple[str, ...] = ("cnn", "mlp")
#: The genuinely invariant reference trained once per (group, data set, seed).
REFERENCE = "weight-tied"

FULL_EPOCHS = 60
QUICK_EPOCHS = 20
QUICK_N_MEASURE = 200
FULL_ORBIT_MAX_ORDER = 8


class SweepError(GinvarianceError, RuntimeError):
    """A sweep cannot run (Ray missing or unreachable) or some of its trials failed."""


# -- configuration ------------------------------------------------------------------------


def _names(what: str, values: Sequence[str]) -> tuple[str, ...]:
    out = tuple(values)
    if not out:
        raise ConfigError(f"give at least one {what}")
    for v in out:
        if not isinstance(v, str) or not v.strip() or v != v.strip():
            raise ConfigError(f"{what} {v!r} is not a name; e.g. --{what}s NAME1,NAME2")
    if len(set(out)) != len(out):
        raise ConfigError(f"{what}s {list(out)} repeat; give each {what} once")
    return out


@dataclass(frozen=True)
class SweepConfig:
    """The grid of a sweep and how each trial trains and measures.

    Parameters
    ----------
    seeds, lams, groups, datasets, models:
        The grid: every combination is one trial. ``lams`` are the weights ``λ ≥ 0`` of the
        invariance penalty (``0``: the augmented model); ``models`` are unconstrained
        networks of :data:`SWEEP_MODELS`.
    shifts:
        Distribution shifts measured beside the test split (:mod:`ginvariance.data.shifts`).
    reference:
        Also train the ``weight-tied`` reference once per (group, data set, seed).
    quick:
        :data:`QUICK_EPOCHS` epochs and :data:`QUICK_N_MEASURE` test samples.
    epochs, limit, n_measure:
        Training epochs (``None``: 60, quick 20), training samples used (``None``: all) and
        test samples measured (``None``: all, quick 200).
    batch_size, lr, dtype, penalty, orbit:
        As in :class:`~ginvariance.training.TrainConfig`; ``orbit=None`` runs the penalty over
        the full orbit for groups of order ≤ 8 and over one sampled element above.
    root:
        Folder of IDX files for the MNIST-format data sets.
    saliency:
        Measure ``sis`` (one backward pass per orbit).
    """

    seeds: tuple[int, ...] = (0, 1)
    lams: tuple[float, ...] = (0.0, 0.1, 1.0, 10.0)
    groups: tuple[str, ...] = ("c4",)
    datasets: tuple[str, ...] = ("digits",)
    models: tuple[str, ...] = ("cnn",)
    shifts: tuple[str, ...] = ("uniform",)
    reference: bool = True
    quick: bool = False
    epochs: int | None = None
    limit: int | None = None
    n_measure: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    dtype: str = "float32"
    penalty: str = "logit"
    orbit: str | None = None
    root: str | None = None
    saliency: bool = True

    def validate(self) -> None:
        """Raise :class:`ConfigError` (or :class:`ModelError`) naming the first bad option."""
        seeds = tuple(self.seeds)
        if not seeds:
            raise ConfigError("give at least one seed, e.g. --seeds 0,1")
        for s in seeds:
            check_seed(s, "seed", "--seeds 0,1")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds {list(seeds)} repeat; give each seed once")
        lams = tuple(self.lams)
        if not lams:
            raise ConfigError("give at least one λ, e.g. --lams 0,1")
        for lam in lams:
            if (
                isinstance(lam, bool)
                or not isinstance(lam, int | float)
                or not math.isfinite(lam)
                or lam < 0
            ):
                raise ConfigError(
                    f"λ {lam!r} is not a finite non-negative number; e.g. --lams 0,0.1,1,10"
                )
        if len({float(v) for v in lams}) != len(lams):
            raise ConfigError(f"λ values {list(lams)} repeat; give each λ once")
        _names("group", self.groups)
        _names("dataset", self.datasets)
        _names("model", self.models)
        if self.shifts:
            _names("shift", self.shifts)
        for m in self.models:
            if m not in SWEEP_MODELS:
                hint = (
                    " (the weight-tied network is the reference every trial is compared with)"
                    if m == REFERENCE
                    else ""
                )
                raise ModelError(
                    f"model {m!r} cannot be swept over λ{hint}; choose from: "
                    f"{', '.join(SWEEP_MODELS)}"
                )
        for name in ("epochs", "limit", "n_measure"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not isinstance(self.lr, int | float) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.penalty not in ("logit", "js"):
            raise ConfigError(f"penalty must be 'logit' or 'js', got {self.penalty!r}")
        if self.orbit not in (None, "full", "sample"):
            raise ConfigError(f"orbit must be 'full' or 'sample', got {self.orbit!r}")

    def resolved(self) -> SweepConfig:
        """The configuration with defaults filled in (what ``sweep-config.json`` records)."""
        self.validate()
        return replace(
            self,
            seeds=tuple(int(s) for s in self.seeds),
            lams=tuple(float(v) for v in self.lams),
            groups=tuple(self.groups),
            datasets=tuple(self.datasets),
            models=tuple(self.models),
            shifts=tuple(self.shifts),
            epochs=self.epochs or (QUICK_EPOCHS if self.quick else FULL_EPOCHS),
            n_measure=self.n_measure or (QUICK_N_MEASURE if self.quick else None),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples as lists)."""
        d = asdict(self)
        for key in ("seeds", "lams", "groups", "datasets", "models", "shifts"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepConfig:
        """The inverse of :meth:`to_dict`."""
        kw = dict(d)
        for key in ("seeds", "lams", "groups", "datasets", "models", "shifts"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


@dataclass(frozen=True)
class Trial:
    """One trial of the grid: which network, trained how, on what.

    ``mode`` is ``"augmented"`` (``λ = 0``), ``"regularized"`` (``λ > 0``) or
    ``"weight-tied"`` (the reference, ``lam`` is ``None``); ``key`` names its folder.
    """

    key: str
    mode: str
    model: str
    lam: float | None
    seed: int
    group: str
    dataset: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lam_text(lam: float) -> str:
    return format(float(lam), "g")


def plan_trials(config: SweepConfig) -> list[Trial]:
    """Every trial of the sweep, in a fixed order (references first per group and data set)."""
    config = config.resolved()
    trials: list[Trial] = []
    for dataset in config.datasets:
        for group in config.groups:
            for seed in config.seeds:
                if config.reference:
                    key = f"{dataset}_{group}_{REFERENCE}_seed{seed}"
                    trials.append(Trial(key, REFERENCE, REFERENCE, None, seed, group, dataset))
                for model in config.models:
                    for lam in config.lams:
                        mode = "augmented" if lam == 0 else "regularized"
                        key = f"{dataset}_{group}_{model}_lam{_lam_text(lam)}_seed{seed}"
                        trials.append(Trial(key, mode, model, float(lam), seed, group, dataset))
    return trials


def _check_grid(config: SweepConfig) -> tuple[SweepConfig, list[dict[str, str]]]:
    """Check every data set, group and model of the grid before any trial starts.

    Returns the configuration without the references that cannot be built, and the list of
    those left out (``{"group", "dataset", "reason"}``).
    """
    from ginvariance.data import load_dataset
    from ginvariance.data.shifts import get_shift
    from ginvariance.groups import get_group
    from ginvariance.models import build_model

    for name in config.shifts:
        get_shift(name)
    skipped: list[dict[str, str]] = []
    for dataset in config.datasets:
        test = load_dataset(dataset, "test", root=config.root)
        shape = tuple(test.sample_shape)
        for group in config.groups:
            resolved = get_group(group, shape)
            for model in config.models:
                build_model(model, shape, int(test.num_classes), group=resolved)
            if config.reference:
                try:
                    build_model(REFERENCE, shape, int(test.num_classes), group=resolved)
                except GinvarianceError as exc:
                    skipped.append({"group": group, "dataset": dataset, "reason": str(exc)})
    return config, skipped


# -- one trial -----------------------------------------------------------------------------


def trial_dir(out_dir: str | Path, trial: Trial) -> Path:
    """``DIR/trials/<key>``: the folder of one trial."""
    return Path(out_dir) / TRIALS_DIR / trial.key


def _train_config(config: SweepConfig, trial: Trial, order: int) -> Any:
    from ginvariance.training import TrainConfig

    orbit = config.orbit or ("full" if order <= FULL_ORBIT_MAX_ORDER else "sample")
    return TrainConfig(
        mode=trial.mode,
        model=None if trial.mode == REFERENCE else trial.model,
        dataset=trial.dataset,
        root=config.root,
        group=trial.group,
        epochs=int(config.epochs or FULL_EPOCHS),
        batch_size=config.batch_size,
        lr=float(config.lr),
        lam=float(trial.lam) if trial.lam else 0.0,
        penalty=config.penalty,
        orbit=orbit,
        seed=int(trial.seed),
        dtype=config.dtype,
        limit=config.limit,
    )


def run_trial(
    config: SweepConfig,
    trial: Trial,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train and measure one trial; write ``DIR/trials/<key>/results.json`` atomically.

    ``device``: where the trial trains and measures (a trial given GPUs by Ray sees them as
    ``cuda``).

    A trial whose ``results.json`` holds the same configuration is returned as it is; one
    with a checkpoint of the same configuration continues from its last epoch.

    Returns
    -------
    dict
        ``{"models": {mode: {"id", "shift"}}, "group", "dataset", "seed", "lam", "model",
        "config": {"sweep", "trial", "train"}, "train", "versions", "timings"}``.
    """
    import torch

    from ginvariance.data import load_dataset
    from ginvariance.groups import get_group
    from ginvariance.io import atomic_write_json, ensure_dir
    from ginvariance.metrics import measure
    from ginvariance.training import train, versions

    began = time.perf_counter()
    config = config.resolved()
    test = load_dataset(trial.dataset, "test", root=config.root)
    group = get_group(trial.group, tuple(test.sample_shape))
    train_config = _train_config(config, trial, group.order)
    record = json.loads(
        json.dumps(
            {"sweep": config.to_dict(), "trial": trial.to_dict(), "train": train_config.to_dict()}
        )
    )
    folder = ensure_dir(trial_dir(out_dir, trial))
    results_path = folder / TRIAL_RESULTS
    if results_path.is_file():
        try:
            done = json.loads(results_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            done = None
        if isinstance(done, dict) and done.get("config") == record:
            return done
    checkpoint = folder / f"{trial.mode}.safetensors"
    result = train(
        train_config,
        folder,
        resume=checkpoint.exists(),
        progress=progress,
        name=trial.mode,
        device=device,
    )
    dtype = getattr(torch, config.dtype)
    n = config.n_measure or len(test.y)
    x = torch.as_tensor(test.x[:n]).to(dtype)
    y = torch.as_tensor(test.y[:n]).long()
    trained = time.perf_counter()
    report = measure(
        result.model,
        (x, y),
        group,
        shifts=list(config.shifts),
        saliency=config.saliency,
        seed=int(trial.seed),
    ).to_dict()
    results = {
        "models": {trial.mode: {"id": report["id"], "shift": report["shift"]}},
        "group": group.name,
        "dataset": trial.dataset,
        "seed": int(trial.seed),
        "lam": trial.lam,
        "model": trial.model,
        "mode": trial.mode,
        "config": record,
        "train": {k: result.metrics[k] for k in sorted(result.metrics)},
        "versions": versions(),
    }
    results = json.loads(json.dumps(results))
    results["timings"] = {
        "train": result.seconds,
        "measure": time.perf_counter() - trained,
        "total": time.perf_counter() - began,
    }
    atomic_write_json(results_path, results)
    return results


def _tune_trainable(params: dict[str, Any]) -> None:
    """The Ray Tune function trainable: run one trial, report its measures to Tune."""
    import torch
    from ray import tune

    torch.set_num_threads(int(params.get("threads", 1)))
    config = SweepConfig.from_dict(params["sweep"])
    trial = Trial(**params["trial"])
    results = run_trial(config, trial, params["out"], device=str(params.get("device", "cpu")))
    entry = results["models"][trial.mode]
    metrics: dict[str, float] = {}
    for cond, values in [("id", entry["id"]), *entry["shift"].items()]:
        for k in MEASURE_KEYS:
            v = values.get(k)
            if isinstance(v, int | float):
                metrics[f"{cond}/{k}"] = float(v)
    tune.report(metrics)


def _trial_dirname(trial: Any) -> str:
    return str(trial.config["trial"]["key"])


# -- statistics ----------------------------------------------------------------------------


def aggregate(
    trial_results: Sequence[Mapping[str, Any]],
    confidence: float = CONFIDENCE,
) -> list[dict[str, Any]]:
    """Group trial results by (group, data set, model, λ) and summarize every measure.

    Returns
    -------
    list of dict
        One entry per cell, sorted by group, data set, model and λ (the reference, ``λ``
        ``None``, first): ``{"group", "dataset", "model", "mode", "lam", "seeds",
        "id": {KEY: summary}, "shift": {SHIFT: {KEY: summary}}}`` with the summaries of
        :func:`summarize` over seeds.
    """
    cells: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in trial_results:
        key = (r["group"], r["dataset"], r["model"], r["mode"], r["lam"])
        cells.setdefault(key, []).append(r)
    entries = []
    for (group, dataset, model, mode, lam), runs in cells.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        measured = [r["models"][mode] for r in runs]
        shifts = sorted(measured[0]["shift"])

        def block(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
            keys = [k for k in MEASURE_KEYS if any(k in p for p in parts)]
            return {k: summarize([p.get(k) for p in parts], confidence) for k in keys}

        entries.append(
            {
                "group": group,
                "dataset": dataset,
                "model": model,
                "mode": mode,
                "lam": lam,
                "seeds": [int(r["seed"]) for r in runs],
                "id": block([m["id"] for m in measured]),
                "shift": {s: block([m["shift"][s] for m in measured]) for s in shifts},
            }
        )
    entries.sort(
        key=lambda e: (
            e["group"],
            e["dataset"],
            e["model"] != REFERENCE,
            e["model"],
            -1.0 if e["lam"] is None else e["lam"],
        )
    )
    return entries


# -- running on Ray -------------------------------------------------------------------------


def _import_ray() -> tuple[Any, Any]:
    # Tune's console reporter prints even at verbose=0 with its new output engine, and its
    # default loggers write TensorBoard/CSV files nobody asked for: library code stays silent.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SweepError(
            "ginv sweep needs Ray Tune, which is not installed; install it with: "
            "pip install -c constraints.txt 'ginvariance[sweep]'"
        ) from None
    return ray, tune


def _probe(address: str) -> None:
    """Fail fast on a ``host:port`` (or ``ray://host:port``) where nothing listens.

    Ray itself retries an unreachable head for minutes, logging from C++ all the while.
    """
    import socket

    target = address.removeprefix("ray://")
    if address == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        raise ConfigError(
            f"--address {address!r} is not host:port, ray://host:port or auto; "
            "e.g. --address 10.0.0.1:6379"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except OSError as exc:
        raise SweepError(
            f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); start it "
            "with 'ray start --head' or drop --address to run locally"
        ) from None


def _start_ray(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Start (or connect to) Ray; return whether this call started it (and must stop it)."""
    import logging

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    if address is not None:
        if num_cpus is not None:
            raise ConfigError(
                "--num-cpus sets up a local Ray instance; drop it with --address (the "
                "cluster has its own CPUs)"
            )
        _probe(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SweepError(
                f"cannot connect to the Ray cluster at {address!r} ({first}); start it with "
                "'ray start --head' or drop --address to run locally"
            ) from None
        return True
    cpus = num_cpus if num_cpus is not None else (os.cpu_count() or 1)
    # address="local": a fresh instance even where `ray start` left a cluster address behind
    # (plain ray.init() would join that cluster, or fail on a stale address).
    ray.init(address="local", num_cpus=int(cpus), **kwargs)
    return True


def _watch(folder: Path, trials: Sequence[Trial], progress: Progress, stop: threading.Event):
    """Advance ``progress`` as trial results appear (works the same after a restore)."""
    seen: set[str] = set()

    def poll() -> None:
        while True:
            done = {t.key for t in trials if (trial_dir(folder, t) / TRIAL_RESULTS).is_file()}
            new = done - seen
            if new:
                seen.update(new)
                progress.advance(len(new))
            if stop.wait(0.5):
                return

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread


def _first_line(error: Any) -> str:
    cause = getattr(error, "cause", None)
    exc = cause if isinstance(cause, BaseException) else error
    text = str(exc).strip()
    for line in reversed(text.splitlines()):  # a traceback ends with its message
        if line.strip():
            return " ".join(line.split())
    return type(exc).__name__


def _load_trial(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_sweep(
    config: SweepConfig,
    out_dir: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_trial: int = 1,
    resume: bool = False,
    progress: Progress | None = None,
    gpus_per_trial: float = 0,
) -> dict[str, Any]:
    """Run the grid of ``config`` on Ray Tune, aggregate it and draw its report.

    Parameters
    ----------
    config:
        The grid (:class:`SweepConfig`).
    out_dir:
        The sweep folder (see the module's documentation). Running again on a folder with
        a sweep of the same configuration resumes it (Tune's restore): finished trials are
        kept, unfinished and failed ones run again from their last saved epoch.
    address:
        A running Ray cluster (``ray.init(address=...)``, e.g. ``"auto"`` or
        ``"ray://head:10001"``); ``None`` starts a local instance with ``num_cpus`` CPUs
        (default: the machine's cores). A Ray instance already started in this process is
        used as it is.
    cpus_per_trial:
        CPUs (and torch threads) per trial; trials run in parallel on the rest.
    gpus_per_trial:
        GPUs per trial (Tune's ``resources_per_trial``: ``tune.with_resources(trainable,
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})``); a fraction such as 0.25 packs four
        trials on one GPU. With GPUs each trial trains and measures on ``cuda`` (the GPU Ray
        assigned it, through ``CUDA_VISIBLE_DEVICES``); 0 keeps every trial on the CPU.
    resume:
        Require an experiment to resume in ``out_dir`` (without it one is resumed when present).
    progress:
        Receives one unit per finished trial.

    Returns
    -------
    dict
        The content of ``sweep.json``: ``config``, ``entries`` (:func:`aggregate`),
        ``references_skipped``, ``trials`` (folders relative to ``out_dir``), ``confidence``,
        ``versions``, ``timings``.

    Raises
    ------
    ConfigError, DataError, GroupError, ModelError
        A bad option, data set, group or model (before any trial starts).
    OutputError
        ``out_dir`` cannot be written, or holds a sweep of another configuration.
    SweepError
        Ray is missing or unreachable, or trials failed (their message is given; run
        again to resume).
    """
    from ginvariance.io import atomic_write_json, ensure_dir

    began = time.perf_counter()
    config = config.resolved()
    if isinstance(cpus_per_trial, bool) or not isinstance(cpus_per_trial, int):
        raise ConfigError(f"cpus_per_trial must be a positive integer, got {cpus_per_trial!r}")
    if cpus_per_trial < 1:
        raise ConfigError(f"cpus_per_trial must be a positive integer, got {cpus_per_trial!r}")
    if isinstance(gpus_per_trial, bool) or not isinstance(gpus_per_trial, int | float):
        raise ConfigError(f"gpus_per_trial must be a number ≥ 0, got {gpus_per_trial!r}")
    if not (0 <= gpus_per_trial < float("inf")):
        raise ConfigError(f"gpus_per_trial must be a number ≥ 0, got {gpus_per_trial!r}")
    if num_cpus is not None and (
        isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1
    ):
        raise ConfigError(f"--num-cpus must be a positive integer, got {num_cpus!r}")
    config, skipped = _check_grid(config)
    trials = plan_trials(config)
    skipped_pairs = {(s["group"], s["dataset"]) for s in skipped}
    trials = [
        t for t in trials if not (t.mode == REFERENCE and (t.group, t.dataset) in skipped_pairs)
    ]

    out = ensure_dir(out_dir).resolve()
    config_path = out / CONFIG_FILE
    mine = json.loads(json.dumps(config.to_dict()))
    exp_dir = out / TUNE_DIR
    if config_path.exists():
        stored = _load_trial(config_path)
        if stored != mine:
            diffs = (
                [
                    f"{k} {stored.get(k)!r} ≠ {mine.get(k)!r}"
                    for k in sorted(set(stored) | set(mine))
                    if stored.get(k) != mine.get(k)
                ]
                if isinstance(stored, dict)
                else ["unreadable configuration"]
            )
            raise OutputError(
                f"{str(out)!r} holds a sweep of another configuration ({'; '.join(diffs[:3])}); "
                "run it with the same options to resume it, or choose another --out"
            )
    elif any(out.iterdir()):
        raise OutputError(
            f"{str(out)!r} is not empty and holds no sweep; choose an empty or new --out"
        )

    ray, tune = _import_ray()
    restorable = tune.Tuner.can_restore(str(exp_dir))
    if resume and not restorable:
        raise ConfigError(
            f"there is no interrupted sweep in {str(out)!r} to resume; drop --resume to start it"
        )
    atomic_write_json(config_path, mine)

    reporter = ensure_progress(progress)
    started = _start_ray(ray, address, num_cpus)
    stop = threading.Event()
    watcher = None
    try:
        param_space = {
            "trial": tune.grid_search([t.to_dict() for t in trials]),
            "sweep": config.to_dict(),
            "out": str(out),
            "threads": cpus_per_trial,
        }
        resources: dict[str, float] = {"cpu": cpus_per_trial}
        if gpus_per_trial > 0:  # resources_per_trial: the trial runs on the GPU Ray gives it
            resources["gpu"] = gpus_per_trial
            param_space["device"] = "cuda"
        trainable = tune.with_resources(_tune_trainable, resources)
        if restorable:
            tuner = tune.Tuner.restore(
                str(exp_dir), trainable, resume_errored=True, param_space=param_space
            )
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    num_samples=1,
                    reuse_actors=True,
                    trial_name_creator=_trial_dirname,
                    trial_dirname_creator=_trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=TUNE_DIR,
                    storage_path=str(out),
                    verbose=0,
                    failure_config=tune.FailureConfig(max_failures=0),
                ),
            )
        reporter.start(len(trials), "sweep")
        watcher = _watch(out, trials, reporter, stop)
        grid = tuner.fit()
        errors = [(r.config or {}, r.error) for r in grid if r.error is not None]
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        reporter.finish()
        if started:
            ray.shutdown()
    if errors:
        key = errors[0][0].get("trial", {}).get("key", "?")
        raise SweepError(
            f"{len(errors)} of {len(trials)} trials failed (first, {key}: "
            f"{_first_line(errors[0][1])}); fix it and run the same command again to resume"
        )

    loaded = [_load_trial(trial_dir(out, t) / TRIAL_RESULTS) for t in trials]
    missing = [t.key for t, data in zip(trials, loaded, strict=True) if data is None]
    if missing:  # Tune stops without an error on Ctrl-C / SIGINT and leaves trials unfinished
        raise SweepError(
            f"the sweep stopped with {len(missing)} of {len(trials)} trials unfinished (first: "
            f"{missing[0]}); run the same command again to resume it"
        )
    trial_results = [data for data in loaded if data is not None]
    from ginvariance.training import versions

    summary = {
        "config": mine,
        "confidence": CONFIDENCE,
        "entries": aggregate(trial_results),
        "references_skipped": skipped,
        "trials": [f"{TRIALS_DIR}/{t.key}" for t in trials],
        "versions": {**versions(), "ray": str(ray.__version__)},
    }
    summary = json.loads(json.dumps(summary))
    render_sweep(summary, out)
    summary["timings"] = {"total": time.perf_counter() - began}
    atomic_write_json(out / SWEEP_FILE, summary)
    return summary


# -- figure and page ------------------------------------------------------------------------


def _x_positions(lams: Sequence[float]) -> tuple[dict[float, float], float | None]:
    """Where each λ sits on the log axis: ``λ > 0`` at itself, ``λ = 0`` one decade below.

    Returns the map and the position of ``λ = 0`` (``None`` without it).
    """
    positive = sorted(v for v in lams if v > 0)
    if not positive:
        return {0.0: 1.0}, 1.0
    zero = positive[0] / 10.0
    pos = {v: v for v in positive}
    if 0.0 in lams:
        pos[0.0] = zero
        return pos, zero
    return pos, None


def sweep_figure(summary: Mapping[str, Any]) -> bytes:
    """``pdi``, ``li``, ``sis`` and accuracy against ``λ`` as PNG bytes.

    One panel per measure; one colour per (group, data set, model); in distribution solid,
    under each shift dashed; error bars the confidence intervals over seeds; the weight-tied
    reference as a horizontal line of the same style. ``λ`` is on a log axis with ``λ = 0``
    (the augmented model) drawn one decade left of the smallest positive ``λ``, past a break.
    ``pdi`` and ``li`` are on log axes (their absolute value; values below the smallest
    unconstrained one / 100 — the weight-tied reference's rounding errors — sit on the floor).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    entries = list(summary["entries"])
    swept = [e for e in entries if e["lam"] is not None]
    refs = [e for e in entries if e["lam"] is None]
    lams = sorted({float(e["lam"]) for e in swept})
    pos, zero = _x_positions(lams) if lams else ({}, None)
    shifts = sorted({s for e in entries for s in e["shift"]})
    conditions = [("id", "in distribution", "-", "o")] + [
        (s, f"under {s}", "--", "s") for s in shifts
    ]
    panels = [
        ("pdi", "pdi (nats, 0 = invariant)", True),
        ("li", "li (0 = invariant)", True),
        ("sis", "sis (1 = invariant)", False),
        ("accuracy", "accuracy (test, untransformed)", False),
    ]
    series = sorted({(e["group"], e["dataset"], e["model"]) for e in swept})
    colors = {s: f"C{i % 10}" for i, s in enumerate(series)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)

    def values(e: Mapping[str, Any], cond: str, key: str) -> dict[str, Any] | None:
        block = e["id"] if cond == "id" else e["shift"].get(cond, {})
        s = block.get(key)
        return s if s and s.get("mean") is not None else None

    for ax, (key, label, log) in zip(axes[0], panels, strict=True):
        floor = None
        if log:
            mins = [
                abs(s["mean"])
                for e in swept
                for cond, *_ in conditions
                if (s := values(e, cond, key)) and abs(s["mean"]) > 0
            ]
            floor = (min(mins) / 100.0) if mins else 1e-12
        for sid in series:
            cells = sorted(
                (e for e in swept if (e["group"], e["dataset"], e["model"]) == sid),
                key=lambda e: e["lam"],
            )
            for cond, cond_label, style, marker in conditions:
                xs, ys, lo, hi = [], [], [], []
                for e in cells:
                    s = values(e, cond, key)
                    if s is None:
                        continue
                    m = abs(s["mean"]) if log else s["mean"]
                    half = s["half"] or 0.0
                    y = max(m, floor) if floor is not None else m
                    xs.append(pos[float(e["lam"])])
                    ys.append(y)
                    bottom = m - half
                    if floor is not None:
                        bottom = max(bottom, floor)
                    lo.append(y - bottom if y >= bottom else 0.0)
                    hi.append(max(m + half, y) - y)
                if not xs:
                    continue
                name = f"{sid[2]} ({sid[0]}, {sid[1]})" if len(series) > 1 else sid[2]
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[lo, hi],
                    fmt=style,
                    marker=marker,
                    color=colors[sid],
                    capsize=3,
                    markersize=4,
                    label=f"{name}, {cond_label}",
                )
        for i, e in enumerate(refs):
            for cond, cond_label, style, _ in conditions:
                s = values(e, cond, key)
                if s is None:
                    continue
                m = abs(s["mean"]) if log else s["mean"]
                y = max(m, floor) if floor is not None else m
                note = " (at floor)" if floor is not None and m < floor else ""
                ax.axhline(
                    y,
                    color="#2ca02c" if len(refs) == 1 else f"C{(i + 3) % 10}",
                    linestyle=style,
                    linewidth=1.2,
                    alpha=0.8,
                    label=f"weight-tied ({e['group']}, {e['dataset']}), {cond_label}: "
                    f"{m:.2g}{note}",
                )
        if lams and any(v > 0 for v in lams):
            ax.set_xscale("log")
            ticks = [pos[v] for v in lams]
            ax.set_xticks(ticks)
            ax.set_xticklabels(["0" if v == 0 else _lam_text(v) for v in lams])
            ax.minorticks_off()
            if zero is not None and len(lams) > 1:
                gap = math.sqrt(zero * min(v for v in lams if v > 0))
                ax.axvline(gap, color="#999", linewidth=0.8, linestyle=":")
        if log:
            ax.set_yscale("log")
        elif key == "accuracy":
            ax.set_ylim(-0.02, 1.02)  # a CI over few seeds can reach past [0, 1]
        ax.set_xlabel("λ (0 = augmented)")
        ax.set_title(label, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02 - 0.045 * math.ceil(len(labels) / 2)),
    )
    fig.suptitle("Invariance bought by regularization, and its cost in accuracy", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _cell(s: Mapping[str, Any] | None) -> str:
    if not s or s.get("mean") is None:
        return "—"
    text = f"{s['mean']:.3g}"
    if s.get("std") is not None:
        text += f" ± {s['std']:.2g}"
    if s.get("ci") is not None:
        text += f"<br><small>[{s['ci'][0]:.3g}, {s['ci'][1]:.3g}]</small>"
    return text


def render_sweep(summary: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write ``sweep.png`` and a small self-contained ``sweep.html`` beside it.

    The page has inline CSS, no scripts; it shows the figure and, per cell, mean ± std and
    the confidence interval of each measure in distribution and under each shift.
    """
    from ginvariance.io import atomic_write_bytes, atomic_write_text, ensure_dir

    out = ensure_dir(out_dir)
    atomic_write_bytes(out / SWEEP_FIGURE, sweep_figure(summary))
    entries = list(summary["entries"])
    shifts = sorted({s for e in entries for s in e["shift"]})
    keys = ("pdi", "li", "sis")
    head = "".join(f"<th>{k}</th>" for k in keys)
    header = (
        "<tr><th class='l'>group</th><th class='l'>data</th><th class='l'>model</th>"
        "<th>λ</th><th>seeds</th><th>accuracy</th><th>orbit accuracy</th>"
        + head
        + "".join(f"<th>{k} ({html.escape(s)})</th>" for s in shifts for k in keys)
        + "</tr>"
    )
    rows = []
    for e in entries:
        lam = "—" if e["lam"] is None else _lam_text(e["lam"])
        cells = [
            _cell(e["id"].get("accuracy")),
            _cell(e["id"].get("orbit_accuracy")),
            *(_cell(e["id"].get(k)) for k in keys),
            *(_cell(e["shift"][s].get(k)) for s in shifts for k in keys),
        ]
        rows.append(
            f"<tr><td class='l'>{html.escape(e['group'])}</td>"
            f"<td class='l'>{html.escape(e['dataset'])}</td>"
            f"<td class='l'>{html.escape(e['model'])}</td><td>{lam}</td>"
            f"<td>{len(e['seeds'])}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    skipped = "".join(
        f"<li>{html.escape(s['group'])}, {html.escape(s['dataset'])}: "
        f"{html.escape(s['reason'])}</li>"
        for s in summary.get("references_skipped", [])
    )
    skipped_html = f"<p>No weight-tied reference for:</p><ul>{skipped}</ul>" if skipped else ""
    confidence = float(summary.get("confidence", CONFIDENCE))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invariance sweep over λ</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }}
th {{ background: #f3f3f3; }} .l {{ text-align: left; }}
img {{ max-width: 100%; }} .note {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>Invariance sweep over λ</h1>
<img src='{SWEEP_FIGURE}' alt='pdi, li, sis and accuracy against λ'>
<p class='note'>λ = 0 is the augmented model (learned invariance); λ &gt; 0 adds λ times the
invariance penalty over the orbit; weight-tied (λ —) is invariant by construction. Each
cell: mean ± sample std over seeds, and below it the {confidence:.0%} confidence interval of
the mean (Student's t). pdi and li: 0 = invariant; sis: 1 = invariant.</p>
<table>{header}{"".join(rows)}</table>
{skipped_html}
</body></html>
"""
    return atomic_write_text(out / SWEEP_PAGE, page)


__all__ = [
    "CONFIDENCE",
    "REFERENCE",
    "SWEEP_FIGURE",
    "SWEEP_FILE",
    "SWEEP_MODELS",
    "SWEEP_PAGE",
    "SweepConfig",
    "SweepError",
    "Trial",
    "aggregate",
    "plan_trials",
    "render_sweep",
    "run_sweep",
    "run_trial",
    "summarize",
    "sweep_figure",
    "trial_dir",
]
