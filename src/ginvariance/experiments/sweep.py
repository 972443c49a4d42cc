"""Sweeps on Ray Tune: seeds × λ × group × model × data set, aggregated over seeds with
confidence intervals; its grid is :mod:`~ginvariance.experiments.sweep_config`, one trial
:mod:`~ginvariance.experiments.sweep_trial`.

A sweep folder holds ``sweep-config.json`` (a folder of another configuration is refused),
``trials/<key>/results.json`` (the ``results.json`` of ``ginv run`` for the trial's one model,
beside its checkpoint), Ray Tune's state in ``tune/`` (run again with the same options, an
interrupted sweep resumes: finished trials are kept, the others continue from their last
epoch) and the aggregate ``sweep.json``. Ray is imported only when a sweep runs; on a cluster
(``address``) every node must see the folder at the same path and have ``ginvariance``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ginvariance.checks import check_int, is_number, json_roundtrip
from ginvariance.errors import ConfigError, OutputError
from ginvariance.experiments.defaults import (
    CONFIDENCE,
    CONFIG_FILE,
    SWEEP_FIGURE,
    SWEEP_FILE,
    SWEEP_PAGE,
    TRIAL_RESULTS,
    TRIALS_DIR,
    TUNE_DIR,
    read_json,
)
from ginvariance.experiments.stats import summarize
from ginvariance.experiments.sweep_config import (
    REFERENCE,
    SWEEP_MODELS,
    SweepConfig,
    SweepError,
    Trial,
    check_grid,
    plan_trials,
)
from ginvariance.experiments.sweep_trial import run_trial, trial_dir
from ginvariance.keys import MEASURE_KEYS
from ginvariance.progress import Progress, ensure_progress


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
    lines = str(exc).strip().splitlines()  # a traceback ends with its message
    return " ".join(lines[-1].split()) if lines else type(exc).__name__


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
    """Run the grid of ``config`` on Ray Tune and aggregate it into ``sweep.json``.

    Parameters
    ----------
    out_dir:
        The sweep folder (see the module's documentation).
    address:
        A running Ray cluster (``ray.init(address=...)``, e.g. ``"auto"`` or
        ``"ray://head:10001"``); ``None`` starts a local instance with ``num_cpus`` CPUs
        (default: the machine's cores). A Ray instance already started in this process is
        used as it is.
    cpus_per_trial:
        CPUs (and torch threads) per trial; trials run in parallel on the rest.
    gpus_per_trial:
        GPUs per trial; a fraction such as 0.25 packs four trials on one GPU. With GPUs each
        trial trains and measures on ``cuda`` (the GPU Ray assigns it through
        ``CUDA_VISIBLE_DEVICES``); 0 keeps every trial on the CPU.
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
    from ginvariance.training import versions
    from ginvariance.training.config import differences

    began = time.perf_counter()
    config = config.resolved()
    check_int(cpus_per_trial, "cpus_per_trial")
    if not is_number(gpus_per_trial) or not 0 <= gpus_per_trial < float("inf"):
        raise ConfigError(f"gpus_per_trial must be a number ≥ 0, got {gpus_per_trial!r}")
    if num_cpus is not None:
        check_int(num_cpus, "--num-cpus")
    skipped = check_grid(config)
    no_reference = {(s["group"], s["dataset"]) for s in skipped}
    trials = [
        t
        for t in plan_trials(config)
        if not (t.mode == REFERENCE and (t.group, t.dataset) in no_reference)
    ]

    out = ensure_dir(out_dir).resolve()
    config_path = out / CONFIG_FILE
    mine = json_roundtrip(config.to_dict(), sort_keys=True)
    exp_dir = out / TUNE_DIR
    if config_path.exists():
        stored = read_json(config_path)
        if stored != mine:
            diffs = (
                differences(mine, stored)
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

    loaded = [read_json(trial_dir(out, t) / TRIAL_RESULTS) for t in trials]
    missing = [t.key for t, data in zip(trials, loaded, strict=True) if data is None]
    if missing:  # Tune stops without an error on Ctrl-C / SIGINT and leaves trials unfinished
        raise SweepError(
            f"the sweep stopped with {len(missing)} of {len(trials)} trials unfinished (first: "
            f"{missing[0]}); run the same command again to resume it"
        )
    trial_results = [data for data in loaded if data is not None]
    summary = {
        "config": mine,
        "confidence": CONFIDENCE,
        "entries": aggregate(trial_results),
        "references_skipped": skipped,
        "trials": [f"{TRIALS_DIR}/{t.key}" for t in trials],
        "versions": {**versions(), "ray": str(ray.__version__)},
    }
    summary = json_roundtrip(summary, sort_keys=True)
    summary["timings"] = {"total": time.perf_counter() - began}
    atomic_write_json(out / SWEEP_FILE, summary)
    return summary


__all__ = [
    "CONFIDENCE",
    "CONFIG_FILE",
    "MEASURE_KEYS",
    "REFERENCE",
    "SWEEP_FIGURE",
    "SWEEP_FILE",
    "SWEEP_MODELS",
    "SWEEP_PAGE",
    "TRIAL_RESULTS",
    "SweepConfig",
    "SweepError",
    "Trial",
    "aggregate",
    "plan_trials",
    "run_sweep",
    "run_trial",
    "summarize",
    "trial_dir",
]
