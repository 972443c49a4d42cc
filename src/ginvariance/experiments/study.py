"""The study behind ``ginv run``: train the models, measure them, judge claims C1–C5.

Everything in ``results.json`` but its ``"timings"`` is a pure function of the configuration
(:mod:`~ginvariance.experiments.study_config`), the seeds and the software's ``"versions"``:
the same command gives the same checkpoints, ``saliency.npz``, figures and ``report.html``
byte for byte.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ginvariance.checks import json_roundtrip
from ginvariance.errors import ConfigError
from ginvariance.experiments.claims import CLAIM_KEYS, evaluate_claims
from ginvariance.experiments.defaults import MODELS, RESULTS_FILE, SALIENCY_FILE, TRAINED_MODELS
from ginvariance.experiments.stats import aggregate
from ginvariance.experiments.study_config import StudyConfig
from ginvariance.experiments.study_folder import checkpoint_dir, clear_outputs, plan_checkpoints
from ginvariance.progress import NullProgress, Progress

#: The trained models, longest training first: concurrent runs start with them so that the
#: short ones fill the gaps at the end.
LONGEST_FIRST: tuple[str, ...] = (
    "weight-tied",
    "regularized",
    "regularized-normalized",
    "augmented",
    "plain",
)


def _forward_seconds(model: Any, x: Any) -> float:
    """Median wall time of three forwards over ``x`` without gradients (for timings only)."""
    import statistics

    import torch

    from ginvariance.devices import model_device

    x = x.to(model_device(model))
    times = []
    with torch.no_grad():
        for _ in range(3):
            began = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - began)
    return statistics.median(times)


@dataclass
class _Run:
    """One study's fixed inputs; :meth:`task` trains and measures one model of one seed."""

    config: StudyConfig
    out: Path
    plan: dict[tuple[int, str], str]
    x_test: Any
    y_test: Any
    group: Any
    reference: Any  # the shifts' reference set (the training split's statistics)
    device: Any

    def measure(
        self, model: Any, seed: int, progress: Progress | None
    ) -> tuple[dict[str, Any], dict[str, Any], np.ndarray, dict[str, float]]:
        """Measures, spectral entry, saliency grid and timings of one trained model."""
        from ginvariance.metrics import eval_mode, measure, orbit_pass
        from ginvariance.spectral import spectral_analysis

        config, x_test, group = self.config, self.x_test, self.group
        began = time.perf_counter()
        n = config.n_measure or x_test.shape[0]
        report = measure(
            model,
            (x_test[:n], self.y_test[:n]),
            group,
            shifts=list(config.shifts),
            shift_reference=self.reference,
            saliency=True,
            seed=seed,
            progress=progress,
        ).to_dict()
        report.pop("shift_reference", None)  # the same for every model: written once
        report.pop("shift_parameters", None)
        measured = time.perf_counter() - began

        began = time.perf_counter()
        x_spec = x_test[: config.n_spectral]
        with eval_mode(model):
            saliency = orbit_pass(model, x_spec, group, saliency=True).saliency
            assert saliency is not None
            spectral = spectral_analysis(
                model,
                x_spec,
                group,
                eps=config.eps,
                n_directions=config.n_directions,
                seed=seed,
                saliency=saliency[0],
            )
            grid = orbit_pass(model, x_test[: config.n_saliency], group, saliency=True).saliency
        assert grid is not None
        timings = {"measure": measured, "spectral": time.perf_counter() - began}
        return report, spectral, grid.detach().cpu().double().numpy(), timings

    def task(
        self, seed: int, mode: str, progress: Progress | None
    ) -> dict[str, tuple[dict[str, Any], np.ndarray, dict[str, float]]]:
        """Train (or resume) one model of one seed and measure it, and for ``augmented`` also
        ``symmetrized``: ``{model: (per-seed entry, saliency grid, timings)}``."""
        from ginvariance.models import symmetrize
        from ginvariance.training import train

        action = self.plan[(seed, mode)]
        result = train(
            self.config.train_config(mode, seed),
            checkpoint_dir(self.out, seed),
            resume=action == "resume",
            overwrite=action == "overwrite",
            progress=progress,
            name=mode,
            device=self.device,
        )
        nets = {mode: result.model}
        if mode == "augmented":
            nets["symmetrized"] = symmetrize(result.model, self.group).eval()
        measured = {}
        for name, net in nets.items():
            report, spectral, grid, t = self.measure(net, seed, progress)
            trained = name == mode
            metrics = {k: result.metrics[k] for k in sorted(result.metrics)} if trained else {}
            seconds = {"train": result.seconds if trained else 0.0, **t}
            seconds["forward"] = _forward_seconds(net, self.x_test)
            entry = {"seed": seed, **report, "spectral": spectral, "train": metrics}
            measured[name] = (entry, grid, seconds)
        return measured


class _Stopped(Exception):
    """Raised inside a concurrent task once the study stops (an error or an interrupt)."""


class _StopCheck(NullProgress):
    """A concurrent task's progress: reports nothing, and stops the task at its next epoch
    boundary (its checkpoint written) once ``stop`` is set."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def start(self, total: int, description: str) -> None:
        self.advance()

    def advance(self, amount: int = 1, **info: float) -> None:
        if self._stop.is_set():
            raise _Stopped


def _run_concurrently(
    task: Any, seeds: tuple[int, ...], jobs: int, progress: Progress | None
) -> dict[tuple[int, str], Any]:
    """Run ``task(seed, mode, progress)`` for every trained model and seed on ``jobs`` threads,
    longest first; on an error or an interrupt, cancel the rest, stop the running ones at
    their next epoch and raise the first error."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from ginvariance.progress import ensure_progress, note

    reporter = ensure_progress(progress)
    stop = threading.Event()
    done: dict[tuple[int, str], Any] = {}
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ginv-study") as pool:
        futures = {
            pool.submit(task, seed, mode, _StopCheck(stop)): (seed, mode)
            for mode in LONGEST_FIRST
            for seed in seeds
        }
        try:
            reporter.start(len(futures), f"train and measure ({jobs} at a time)")
            for future in as_completed(futures):
                seed, mode = futures[future]
                done[seed, mode] = future.result()
                reporter.advance(1)
                times = done[seed, mode][mode][2]
                note(
                    reporter,
                    f"seed {seed}, {mode}: trained in {times['train']:.1f} s, measured in "
                    f"{times['measure'] + times['spectral']:.1f} s",
                )
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
        finally:
            reporter.finish()
    return done


def run_study(
    config: StudyConfig,
    out_dir: str | Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    jobs: int = 1,
    device: Any = None,
) -> dict[str, Any]:
    """Run the whole study and write ``DIR/results.json`` and ``DIR/saliency.npz``.

    Parameters
    ----------
    out_dir:
        The study folder: checkpoints in ``checkpoints/seed-<s>/<model>.safetensors`` (those
        of the same configuration reused: an interrupted run continues from its last finished
        epoch), ``results.json``, and the orbit saliency maps of the report's grid in
        ``saliency.npz`` (``x`` ``(m, *S)`` and one ``(n, m, *S)`` per model, first seed).
    force:
        Replace results and checkpoints of another configuration (and train unreadable
        checkpoints again) instead of refusing; earlier results and report files go once
        every model is trained, and only those ginv wrote.
    progress:
        Receives the progress of every training and measurement (with ``jobs`` > 1: one unit
        per finished training).
    jobs:
        Trainings (each with its measurements) run at a time, in threads of this process and
        each on one CPU thread: the results do not depend on ``jobs`` or the machine's cores.
    device:
        Where to train and measure (``None``: the CPU; :func:`ginvariance.devices.resolve_device`);
        not in the configuration: a GPU run matches a CPU run to float32 rounding only.

    Returns
    -------
    dict
        The results (the content of ``results.json``): ``models`` (per model ``id``,
        ``shift``, ``spectral`` — means over seeds —, ``std``, ``ci_half``, ``per_seed``),
        ``group``, ``dataset``, ``seed``, ``seeds``, ``config``, ``versions``, ``claims``,
        ``timings``.

    Raises
    ------
    OutputError
        ``out_dir`` holds results or checkpoints of another configuration (pass ``force``),
        files of the study's names that ginv did not write, or is in use by another process
        (:mod:`ginvariance.folder`).
    ConfigError, DataError, GroupError
        Bad options (``jobs`` not a positive integer), an unknown data set or a group that
        does not act on its samples.
    """
    import torch

    from ginvariance.data import get_shift, load_dataset
    from ginvariance.data.shifts import ShiftReference
    from ginvariance.devices import resolve_device
    from ginvariance.folder import output_folder
    from ginvariance.groups import get_group
    from ginvariance.io import atomic_write_bytes, atomic_write_json
    from ginvariance.models import build_model
    from ginvariance.training import versions

    began = time.perf_counter()
    device = resolve_device("cpu" if device is None else device)
    given = config
    config = config.resolved()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}; e.g. --jobs 2")

    for name in config.shifts:
        get_shift(name)
    test_set = load_dataset(config.dataset, "test", root=config.root)
    group = get_group(config.group, tuple(test_set.sample_shape))
    config = given.resolved(group.order)
    # every model must be valid and buildable for this group and data before any training
    # (its seed, the one field that differs between seeds, was checked with the config's)
    for mode in TRAINED_MODELS:
        tc = config.train_config(mode, config.seeds[0])
        tc.validate()
        build_model(tc.model_name, tuple(test_set.sample_shape), test_set.num_classes, group=group)
    out = Path(out_dir)
    with output_folder(out):  # locked for the run; only ginv's own files replaced
        plan = plan_checkpoints(config, out, force=force)
        dtype = getattr(torch, config.dtype)
        x_test = torch.as_tensor(test_set.x).to(dtype)
        y_test = torch.as_tensor(test_set.y).long()
        # every shift is one fixed distribution, its parameters those of the training split
        train_x = torch.as_tensor(
            load_dataset(config.dataset, "train", root=config.root).x[: config.limit]
        ).to(dtype)
        reference = ShiftReference.from_batches([train_x], "training split")
        del train_x
        run = _Run(config, out, plan, x_test, y_test, group, reference, device)

        threads_before = torch.get_num_threads()
        torch.set_num_threads(1)  # one thread per task: results do not depend on the machine
        try:
            if jobs == 1:
                done = {
                    (seed, mode): run.task(seed, mode, progress)
                    for seed in config.seeds
                    for mode in TRAINED_MODELS
                }
            else:
                done = _run_concurrently(run.task, config.seeds, jobs, progress)
        finally:
            torch.set_num_threads(threads_before)
        per_model: dict[str, list[dict[str, Any]]] = {m: [] for m in MODELS}
        grids: dict[str, np.ndarray] = {}
        timings: dict[str, Any] = {"seeds": {}, "jobs": jobs}
        for seed in config.seeds:
            seed_times: dict[str, Any] = {}
            for mode in MODELS:
                trained_as = "augmented" if mode == "symmetrized" else mode
                entry, grid, seconds = done[(seed, trained_as)][mode]
                per_model[mode].append(entry)
                grids.setdefault(mode, grid)  # the first seed's
                seed_times[mode] = seconds
            timings["seeds"][str(seed)] = seed_times
        if force:  # every model is trained: the results of an earlier run can go
            clear_outputs(out)

        models: dict[str, Any] = {}
        for mode, runs in per_model.items():
            stat = {
                how: {k: aggregate([r[k] for r in runs], how) for k in ("id", "shift", "spectral")}
                for how in ("mean", "std", "half")
            }
            models[mode] = {
                **stat["mean"],
                "std": stat["std"],
                "ci_half": stat["half"],
                "per_seed": runs,
                # forward passes of the underlying network per input at inference
                "inference_forwards": group.order if mode == "symmetrized" else 1,
            }

        results: dict[str, Any] = {
            "models": models,
            "group": group.name,
            "dataset": config.dataset,
            "seed": config.seeds[0],
            "seeds": list(config.seeds),
            "config": config.to_dict(),
            "versions": versions(),
            "claims": evaluate_claims(models),
            "shift_reference": reference.to_dict(),
            "shift_parameters": {
                name: get_shift(name).parameters(reference) for name in config.shifts
            },
            "group_elements": list(group.elements),
            "sample_shape": list(test_set.sample_shape),
        }
        results = json_roundtrip(results, sort_keys=True)

        buffer = io.BytesIO()
        arrays: dict[str, Any] = {
            "x": x_test[: config.n_saliency].detach().cpu().double().numpy(),
            "y": y_test[: config.n_saliency].numpy(),
            **{mode: grids[mode] for mode in MODELS},
        }
        np.savez(buffer, **arrays)
        atomic_write_bytes(out / SALIENCY_FILE, buffer.getvalue())
        timings["total"] = time.perf_counter() - began
        results["timings"] = timings
        atomic_write_json(out / RESULTS_FILE, results)
        return results


__all__ = ["CLAIM_KEYS", "LONGEST_FIRST", "StudyConfig", "run_study"]
