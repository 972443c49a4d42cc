"""One trial of a sweep (in a Ray worker or directly): train one network, measure it, write
its ``results.json``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ginvariance.checks import json_roundtrip
from ginvariance.experiments.defaults import (
    TRIAL_RESULTS,
    TRIALS_DIR,
    default_orbit,
    read_json,
    train_fields,
)
from ginvariance.experiments.sweep_config import REFERENCE, SweepConfig, Trial
from ginvariance.progress import Progress
from ginvariance.training.config import TrainConfig


def trial_dir(out_dir: str | Path, trial: Trial) -> Path:
    """``DIR/trials/<key>``: the folder of one trial."""
    return Path(out_dir) / TRIALS_DIR / trial.key


def run_trial(
    config: SweepConfig,
    trial: Trial,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train and measure one trial on ``device``; write ``DIR/trials/<key>/results.json``.

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
    from ginvariance.training import train as train_model
    from ginvariance.training import versions

    began = time.perf_counter()
    config = config.resolved()
    test = load_dataset(trial.dataset, "test", root=config.root)
    group = get_group(trial.group, tuple(test.sample_shape))
    train = TrainConfig(
        mode=trial.mode,
        model=None if trial.mode == REFERENCE else trial.model,
        dataset=trial.dataset,
        group=trial.group,
        lam=float(trial.lam) if trial.lam else 0.0,
        penalty=config.penalty,
        orbit=config.orbit or default_orbit(group.order),
        seed=int(trial.seed),
        **train_fields(config),
    )
    record = {"sweep": config.to_dict(), "trial": trial.to_dict(), "train": train.to_dict()}
    record = json_roundtrip(record, sort_keys=True)
    folder = ensure_dir(trial_dir(out_dir, trial))
    results_path = folder / TRIAL_RESULTS
    done = read_json(results_path)
    if done is not None and done.get("config") == record:
        return done
    checkpoint = folder / f"{trial.mode}.safetensors"
    result = train_model(
        train,
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
    results = json_roundtrip(results, sort_keys=True)
    results["timings"] = {
        "train": result.seconds,
        "measure": time.perf_counter() - trained,
        "total": time.perf_counter() - began,
    }
    atomic_write_json(results_path, results)
    return results


__all__ = ["run_trial", "trial_dir"]
