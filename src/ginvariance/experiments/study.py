"""The study behind ``ginv run``: four models, every measure, spectral decay, claims C1–C5.

For each seed the study trains (or reuses the checkpoints of) the four models of the paper
on one data set and group:

``plain``
    cross-entropy on the untransformed data — no invariance asked for;
``augmented``
    data augmentation by a random group element per sample — invariance *learned*;
``regularized``
    augmentation plus ``λ`` times the squared deviation of the logits from their orbit
    mean — learned invariance pushed towards the genuine kind;
``weight-tied``
    the G-invariant network (group convolutions, group pooling) — invariance *genuine*.

Each model is measured on the test split in distribution and under every distribution
shift (:func:`ginvariance.metrics.measure`), its input–logit Jacobian is analysed
(:func:`ginvariance.spectral.spectral_analysis`), and the paper's claims C1–C5
(:data:`CLAIMS`) are checked on the numbers (:func:`evaluate_claims`).

Everything in ``results.json`` except its one ``"timings"`` key (wall times) is a pure
function of the configuration, the seeds and the versions of the software (recorded under
``"versions"``): the same command on the same installation gives the same checkpoints (byte
for byte), the same ``saliency.npz``, the same PNG figures and ``report.html`` (byte for
byte: the page carries no time), and a ``results.json`` that is byte-identical once
``"timings"`` is removed (``jq 'del(.timings)'``), every number included.

The study folder is owned by ginv (:mod:`ginvariance.folder`): it is locked for the run,
and only the files listed in its manifest are ever replaced or removed.

The module is longer than most (~680 lines) because it is the one sequence ``ginv run``
follows — configuration, the plan for the folder's checkpoints, training, measuring, the
aggregate over seeds and the files written — read top to bottom; what it shares with the
sweep lives in :mod:`~ginvariance.experiments.defaults` and
:mod:`~ginvariance.experiments.stats`.
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ginvariance.data.shifts import DEFAULT_SHIFTS
from ginvariance.errors import ConfigError, OutputError
from ginvariance.experiments.claims import CLAIM_KEYS, CLAIMS, SEVERE_SHIFT, evaluate_claims
from ginvariance.experiments.defaults import (
    FULL_ORBIT_MAX_ORDER,
    QUICK_N_MEASURE,
    canonical,
    check_positive,
    check_seeds,
    check_training,
    default_epochs,
    default_orbit,
    differences,
    train_fields,
)
from ginvariance.experiments.stats import aggregate
from ginvariance.progress import Progress

#: The models of the study: the paper's four (Figure 1), a second regularized net whose
#: penalty shrinking the logits cannot lower, and the augmented net averaged over the group
#: at inference (frame averaging: invariant without weight-tying, at n forwards per input).
MODELS: tuple[str, ...] = (
    "plain",
    "augmented",
    "regularized",
    "regularized-normalized",
    "weight-tied",
    "symmetrized",
)
#: The models that are trained (``symmetrized`` wraps the trained ``augmented`` net).
TRAINED_MODELS: tuple[str, ...] = tuple(m for m in MODELS if m != "symmetrized")
#: ``(training mode, penalty)`` of each trained model.
MODEL_TRAINING: dict[str, tuple[str, str]] = {
    "plain": ("plain", "logit"),
    "augmented": ("augmented", "logit"),
    "regularized": ("regularized", "logit"),
    "regularized-normalized": ("regularized", "logit-normalized"),
    "weight-tied": ("weight-tied", "logit"),
}

#: Files of a study folder (beside ``checkpoints/``).
RESULTS_FILE = "results.json"
SALIENCY_FILE = "saliency.npz"
REPORT_FILE = "report.html"
CHECKPOINTS_DIR = "checkpoints"

# Full and quick defaults (epochs and test samples: :mod:`~ginvariance.experiments.defaults`).
# Quick: fewer epochs, a subset of the test split and fewer samples for the Jacobian, so
# that ``ginv run --quick`` takes well under a minute on two cores and still shows every claim.
#: Orbit inputs measured at most (full study) when a group is large: ``cyclic1d`` on MNIST-1D
#: has 40 elements, so its 1000 test samples would make 40 000 inputs per shift.
MAX_ORBIT_INPUTS = 16384
QUICK_MAX_ORBIT_INPUTS = 4096
FULL_N_SPECTRAL = 256
QUICK_N_SPECTRAL = 64
DEFAULT_EPS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)


@dataclass(frozen=True)
class StudyConfig:
    """What the study trains and measures.

    Parameters
    ----------
    dataset, root:
        The data set (:func:`ginvariance.data.load_dataset`) and its folder.
    group:
        The group (:func:`ginvariance.groups.get_group`).
    seeds:
        One study per seed; several seeds give mean ± std of every number.
    quick:
        Smaller defaults (fewer epochs, fewer test samples) for a run under a minute.
    shifts:
        The distribution shifts measured (:mod:`ginvariance.data.shifts`); must include
        ``uniform`` for claims C3 and C4.
    epochs:
        Training epochs; ``None``: :data:`FULL_EPOCHS`, or :data:`QUICK_EPOCHS` when quick.
    lam:
        ``λ`` of the regularized model's logit penalty.
    lam_normalized:
        ``λ`` of the ``regularized-normalized`` model's scale-free penalty
        (``logit-normalized``); ``None``: its calibrated value
        (:data:`~ginvariance.training.CALIBRATED_LAM`).
    n_measure:
        Test samples measured; ``None``: the whole test split, or :data:`QUICK_N_MEASURE`
        when quick; for a group of more than :data:`FULL_ORBIT_MAX_ORDER` elements at most
        ``MAX_ORBIT_INPUTS / |G|`` (quick: ``QUICK_MAX_ORBIT_INPUTS / |G|``) samples.
    n_spectral:
        Test samples of the Jacobian analysis; ``None``: 256, or 64 when quick.
    eps:
        Step sizes of the sensitivity curves.
    n_directions:
        Random unit directions per sample for the random-perturbation sensitivity.
    limit:
        Train on the first ``limit`` training samples only; ``None``: all of them.
    batch_size, lr, dtype:
        Training batch size, Adam learning rate, floating-point type.
    n_saliency:
        Test samples whose saliency maps over the orbit are kept for the report's grid.
    orbit:
        The regularized model's penalty runs over the ``"full"`` orbit or over the identity
        and one ``"sample"``d element per sample (:class:`~ginvariance.training.
        InvarianceRegularizer`); ``None``: ``"full"`` for groups of order at most
        :data:`FULL_ORBIT_MAX_ORDER`, ``"sample"`` above (``cyclic1d`` on MNIST-1D has 40
        elements: the full orbit would cost 40 forward passes per step).
    """

    dataset: str = "digits"
    group: str = "c4"
    root: str | None = None
    seeds: tuple[int, ...] = (0,)
    quick: bool = False
    shifts: tuple[str, ...] = DEFAULT_SHIFTS
    epochs: int | None = None
    lam: float = 1.0
    lam_normalized: float | None = None
    n_measure: int | None = None
    n_spectral: int | None = None
    eps: tuple[float, ...] = DEFAULT_EPS
    n_directions: int = 8
    limit: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    dtype: str = "float32"
    n_saliency: int = 2
    orbit: str | None = None

    def resolved(self, order: int | None = None) -> StudyConfig:
        """The configuration with every default filled in (what ``results.json`` records).

        ``order``, the order of the group on the data set's samples, settles
        :attr:`orbit` and caps :attr:`n_measure` for large groups; without it they stay as
        they are.
        """
        self.validate()
        n_measure, orbit = self.n_measure, self.orbit
        if n_measure is None and self.quick:
            n_measure = QUICK_N_MEASURE
        if order is not None:
            orbit = orbit or default_orbit(order)
            if order > FULL_ORBIT_MAX_ORDER and self.n_measure is None:
                budget = (QUICK_MAX_ORBIT_INPUTS if self.quick else MAX_ORBIT_INPUTS) // order
                n_measure = max(1, min(n_measure or budget, budget))
        return replace(
            self,
            seeds=tuple(int(s) for s in self.seeds),
            shifts=tuple(str(s) for s in self.shifts),
            eps=tuple(float(e) for e in self.eps),
            epochs=default_epochs(self.epochs, self.quick),
            lam_normalized=self._lam_normalized(),
            n_measure=n_measure,
            orbit=orbit,
            n_spectral=self.n_spectral or (QUICK_N_SPECTRAL if self.quick else FULL_N_SPECTRAL),
        )

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first option that is out of range."""
        check_seeds(tuple(self.seeds), "--seeds 0,1,2")
        check_positive(self, ("n_measure", "n_spectral"), optional=True)
        check_positive(self, ("n_directions", "n_saliency"))
        if not self.eps or any(
            not isinstance(e, int | float) or not math.isfinite(e) or e <= 0 for e in self.eps
        ):
            raise ConfigError(f"eps must be positive finite step sizes, got {self.eps!r}")
        if SEVERE_SHIFT not in self.shifts:
            raise ConfigError(
                f"the shifts must include {SEVERE_SHIFT!r} (claims C3 and C4 are judged on it); "
                "add it"
            )
        if len(set(self.shifts)) != len(tuple(self.shifts)):
            raise ConfigError(f"shifts {list(self.shifts)} repeat; give each shift once")
        for name in ("lam", "lam_normalized"):
            value = getattr(self, name)
            if value is None and name == "lam_normalized":
                continue
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite non-negative number, got {value!r}")
        check_training(self, (self.lam,))  # epochs, limit, batch size, lr, dtype, orbit

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples as lists)."""
        d = asdict(self)
        for key in ("seeds", "shifts", "eps"):
            d[key] = list(d[key])
        return d

    def _lam_normalized(self) -> float:
        from ginvariance.training import CALIBRATED_LAM

        if self.lam_normalized is None:
            return float(CALIBRATED_LAM["logit-normalized"])
        return float(self.lam_normalized)

    def train_config(self, model: str, seed: int) -> Any:
        """The :class:`~ginvariance.training.TrainConfig` of one trained model of one seed."""
        from ginvariance.training import TrainConfig

        if model not in MODEL_TRAINING:
            raise ConfigError(
                f"model {model!r} is not trained by the study; choose one of "
                f"{', '.join(MODEL_TRAINING)}"
            )
        mode, penalty = MODEL_TRAINING[model]
        return TrainConfig(
            mode=mode,
            penalty=penalty,
            dataset=self.dataset,
            group=self.group,
            lam=self._lam_normalized() if penalty == "logit-normalized" else float(self.lam),
            seed=int(seed),
            orbit=self.orbit or "full",
            **train_fields(self),
        )


# -- folder checks ------------------------------------------------------------------------


def checkpoint_dir(out_dir: str | Path, seed: int) -> Path:
    """``DIR/checkpoints/seed-<seed>``: the checkpoints of one seed."""
    return Path(out_dir) / CHECKPOINTS_DIR / f"seed-{int(seed)}"


def _problem(exc: Exception) -> str:
    """The problem an error message names, without the advice after its last ``;``."""
    return str(exc).rsplit("; ", 1)[0]


def plan_checkpoints(config: StudyConfig, out_dir: str | Path, *, force: bool) -> dict:
    """Decide, before any training, what happens to each checkpoint in ``out_dir``.

    Returns ``{(seed, mode): "resume" | "new" | "overwrite"}``: ``resume`` for a checkpoint
    trained with this configuration (finished or not: training continues), ``new`` where
    there is none, ``overwrite`` when ``force`` is set for one of another configuration or
    one that cannot be read (corrupt, truncated, of an older format: it is trained again).
    Every checkpoint is read in full and checked against its checksum.

    Raises
    ------
    OutputError
        ``out_dir`` holds results or checkpoints of another configuration, or unreadable
        ones, and ``force`` is not set; or a file of the study's names that ginv did not
        write (not in the folder's manifest: never replaced, even with ``force``).
    """
    from ginvariance.errors import CheckpointError
    from ginvariance.folder import MANIFEST_FILE, read_manifest
    from ginvariance.training import checkpoint_meta, sidecar_path

    config = config.resolved()
    out = Path(out_dir)
    owned = read_manifest(out)

    def check_owned(path: Path) -> None:
        rel = path.relative_to(out).as_posix()
        if rel not in owned and (path.exists() or path.is_symlink()):
            raise OutputError(
                f"{str(path)!r} exists and was not written by ginv (it is not listed in "
                f"{str(out / MANIFEST_FILE)!r}); ginv replaces only its own files: move it "
                "away, or choose another --out"
            )

    results_path = out / RESULTS_FILE
    for name in (RESULTS_FILE, SALIENCY_FILE, REPORT_FILE):
        check_owned(out / name)
    if results_path.exists() and not force:
        try:
            existing = json.loads(results_path.read_text(encoding="utf-8"))
            stored = existing.get("config") if isinstance(existing, dict) else None
        except (OSError, ValueError):
            stored = None
        mine = canonical(config.to_dict())
        if not isinstance(stored, dict):
            raise OutputError(
                f"{str(results_path)!r} is not a results file of ginv run; "
                "pass --force to overwrite it, or choose another --out"
            )
        diffs = differences(mine, stored)
        if diffs:
            raise OutputError(
                f"{str(out)!r} holds results of another configuration ({'; '.join(diffs[:3])}); "
                "pass --force to replace them, or choose another --out"
            )
    plan: dict[tuple[int, str], str] = {}
    for seed in config.seeds:
        for mode in TRAINED_MODELS:
            path = checkpoint_dir(out, seed) / f"{mode}.safetensors"
            check_owned(path)
            check_owned(sidecar_path(path))
            if not path.exists():
                plan[(seed, mode)] = "new"
                continue
            mine = canonical(config.train_config(mode, seed).to_dict())
            try:
                stored = checkpoint_meta(path).get("config")
            except CheckpointError as exc:
                if force:
                    plan[(seed, mode)] = "overwrite"
                    continue
                raise OutputError(
                    f"{_problem(exc)}; pass --force to train it again, or choose another --out"
                ) from None
            diffs = (
                differences(mine, stored)
                if isinstance(stored, dict)
                else ["it records no training configuration"]
            )
            if not diffs:
                plan[(seed, mode)] = "resume"
            elif force:
                plan[(seed, mode)] = "overwrite"
            else:
                raise OutputError(
                    f"checkpoint {str(path)!r} belongs to another configuration "
                    f"({'; '.join(diffs[:3])}); pass --force to replace it, or choose another --out"
                )
    return plan


# -- the study -------------------------------------------------------------------------------


def _measure_model(
    model: Any,
    config: StudyConfig,
    x_test: Any,
    y_test: Any,
    group: Any,
    seed: int,
    progress: Progress | None,
    reference: Any = None,
) -> tuple[dict[str, Any], dict[str, Any], Any, dict[str, float]]:
    """Measures, spectral entry and the saliency grid of one trained model.

    ``reference``: the shifts' reference set (the training split's statistics).
    """
    from ginvariance.metrics import eval_mode, measure, orbit_pass
    from ginvariance.spectral import spectral_analysis

    began = time.perf_counter()
    n = config.n_measure or x_test.shape[0]
    report = measure(
        model,
        (x_test[:n], y_test[:n]),
        group,
        shifts=list(config.shifts),
        shift_reference=reference,
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


def _forward_seconds(model: Any, x: Any, repeats: int = 3) -> float:
    """Median wall time of one forward over ``x`` without gradients (for timings only)."""
    import statistics

    import torch

    from ginvariance.devices import model_device

    x = x.to(model_device(model))
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            began = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def _clear_outputs(out: Path) -> None:
    """Remove the results and report files that ginv wrote in ``out`` for an earlier run.

    Only files listed in the folder's manifest go: ``results.json``, ``saliency.npz``,
    ``report.html`` and the report's PNG figures; any other file is left alone.
    """
    from ginvariance.folder import owner_of

    folder = owner_of(out, inclusive=True)
    assert folder is not None, "the study folder is held while the study runs"
    for rel in sorted(folder.files):
        if "/" not in rel and (
            rel in (RESULTS_FILE, SALIENCY_FILE, REPORT_FILE) or rel.endswith(".png")
        ):
            folder.remove(out / rel)


#: The trained models, longest training first: concurrent runs start with them so that the
#: short ones fill the gaps at the end.
LONGEST_FIRST: tuple[str, ...] = (
    "weight-tied",
    "regularized",
    "regularized-normalized",
    "augmented",
    "plain",
)


def _train_and_measure(
    config: StudyConfig,
    out: Path,
    action: str,
    seed: int,
    mode: str,
    test: tuple[Any, Any],
    group: Any,
    reference: Any,
    progress: Progress | None,
    device: Any = None,
) -> dict[str, tuple[dict[str, Any], np.ndarray, dict[str, float]]]:
    """Train (or resume) one model of one seed and measure it.

    Returns ``{model: (per-seed entry, saliency grid, timings)}``: the trained model, and for
    ``augmented`` also ``symmetrized`` (the augmented net averaged over the group).
    """
    from ginvariance.models import symmetrize
    from ginvariance.training import train

    x_test, y_test = test
    result = train(
        config.train_config(mode, seed),
        checkpoint_dir(out, seed),
        resume=action == "resume",
        overwrite=action == "overwrite",
        progress=progress,
        name=mode,
        device=device,
    )
    nets = {mode: result.model}
    if mode == "augmented":
        nets["symmetrized"] = symmetrize(result.model, group).eval()
    measured = {}
    for name, net in nets.items():
        report, spectral, grid, t = _measure_model(
            net, config, x_test, y_test, group, seed, progress, reference
        )
        trained = name == mode
        train_metrics = {k: result.metrics[k] for k in sorted(result.metrics)} if trained else {}
        seconds = {"train": result.seconds if trained else 0.0, **t}
        seconds["forward"] = _forward_seconds(net, x_test)
        entry = {"seed": seed, **report, "spectral": spectral, "train": train_metrics}
        measured[name] = (entry, grid, seconds)
    return measured


class _Stopped(Exception):
    """Raised inside a concurrent task once the study stops (an error or an interrupt)."""


class _StopCheck:
    """The progress of a concurrent task: reports nothing, and stops the task when asked.

    Training checks its progress after every epoch (its checkpoint written), so a stopped
    task ends at its next epoch boundary with nothing lost.
    """

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def _check(self) -> None:
        if self._stop.is_set():
            raise _Stopped

    def start(self, total: int, description: str) -> None:
        self._check()

    def advance(self, amount: int = 1, **info: float) -> None:
        self._check()

    def finish(self) -> None:
        pass


def _run_concurrently(
    task: Any, seeds: tuple[int, ...], jobs: int, progress: Progress | None
) -> dict[tuple[int, str], Any]:
    """Run ``task(seed, mode, progress)`` for every trained model of every seed on ``jobs``
    threads, longest trainings first; the study's progress counts finished tasks.

    On an error or an interrupt (Ctrl-C, SIGTERM) the tasks not started are cancelled, the
    running ones stop at their next epoch boundary (their checkpoints written), and the
    first error is raised.
    """
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
    config:
        The study (:class:`StudyConfig`).
    out_dir:
        The study folder: checkpoints in ``checkpoints/seed-<s>/<model>.safetensors``,
        results in ``results.json``, the orbit saliency maps of the report's grid in
        ``saliency.npz`` (arrays ``x`` ``(m, *S)`` and one ``(n, m, *S)`` per model, first
        seed). Checkpoints of the same configuration are reused (an interrupted run
        continues from its last finished epoch).
    force:
        Replace results and checkpoints of another configuration (and train unreadable
        checkpoints again) instead of refusing. Earlier results and report files are
        removed only once every model is trained, and only those ginv wrote.
    progress:
        Receives the progress of every training and measurement (with ``jobs`` > 1: of the
        finished trainings, one unit each).
    jobs:
        Trainings (each with its measurements) run at a time, each in a thread of this
        process. Every training and measurement runs on one CPU thread
        (``torch.set_num_threads(1)`` for the study, restored afterwards), so the results
        are the same for every ``jobs`` and every machine's core count; ``jobs`` equal to
        the number of cores uses them all.
    device:
        Where to train and measure (``None``: the CPU; see
        :func:`ginvariance.devices.resolve_device`). Not part of the configuration: the
        results of a GPU run match a CPU run to float32 rounding, not bit for bit.

    Returns
    -------
    dict
        The results (the content of ``results.json``): ``models`` (per model ``id``,
        ``shift``, ``spectral`` — means over seeds —, ``std``, ``per_seed``), ``group``,
        ``dataset``, ``seed``, ``seeds``, ``config``, ``versions``, ``claims``, ``timings``.

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

    from ginvariance.data import get_shift, load_dataset
    from ginvariance.devices import resolve_device
    from ginvariance.folder import output_folder
    from ginvariance.groups import get_group

    began = time.perf_counter()
    where = resolve_device("cpu" if device is None else device)
    given = config
    config = config.resolved()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer, got {jobs!r}; e.g. --jobs 2")

    for name in config.shifts:
        get_shift(name)
    test_set = load_dataset(config.dataset, "test", root=config.root)
    group = get_group(config.group, tuple(test_set.sample_shape))
    config = given.resolved(group.order)
    for seed in config.seeds:
        for mode in TRAINED_MODELS:
            config.train_config(mode, seed).validate()
    # every model must be buildable for this group and data before anything is trained
    from ginvariance.models import build_model

    for mode in TRAINED_MODELS:
        tc = config.train_config(mode, config.seeds[0])
        build_model(tc.model_name, tuple(test_set.sample_shape), test_set.num_classes, group=group)
    with output_folder(out_dir):  # locked for the run; only ginv's own files replaced
        return _run_study(
            config, Path(out_dir), test_set, group, force, progress, began, jobs, where
        )


def _run_study(
    config: StudyConfig,
    out: Path,
    test_set: Any,
    group: Any,
    force: bool,
    progress: Progress | None,
    began: float,
    jobs: int,
    device: Any = None,
) -> dict[str, Any]:
    import torch

    from ginvariance.data import get_shift, load_dataset
    from ginvariance.data.shifts import ShiftReference
    from ginvariance.io import atomic_write_bytes, atomic_write_json
    from ginvariance.training import versions

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

    per_model: dict[str, list[dict[str, Any]]] = {m: [] for m in MODELS}
    grids: dict[str, np.ndarray] = {}
    timings: dict[str, Any] = {"seeds": {}, "jobs": jobs}

    def task(seed: int, mode: str, task_progress: Progress | None) -> dict[str, Any]:
        return _train_and_measure(
            config,
            out,
            plan[(seed, mode)],
            seed,
            mode,
            (x_test, y_test),
            group,
            reference,
            task_progress,
            device,
        )

    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread per task: results do not depend on the machine
    try:
        if jobs == 1:
            done = {
                (seed, mode): task(seed, mode, progress)
                for seed in config.seeds
                for mode in TRAINED_MODELS
            }
        else:
            done = _run_concurrently(task, config.seeds, jobs, progress)
    finally:
        torch.set_num_threads(threads_before)
    for seed in config.seeds:
        seed_times: dict[str, Any] = {}
        for mode in MODELS:
            trained_as = "augmented" if mode == "symmetrized" else mode
            entry, grid, seconds = done[(seed, trained_as)][mode]
            per_model[mode].append(entry)
            if seed == config.seeds[0]:
                grids[mode] = grid
            seed_times[mode] = seconds
        timings["seeds"][str(seed)] = seed_times
    if force:  # every model is trained: the results of an earlier run can go
        _clear_outputs(out)

    models: dict[str, Any] = {}
    for mode, runs in per_model.items():
        keys = ("id", "shift", "spectral")
        mean = {k: aggregate([r[k] for r in runs], "mean") for k in keys}
        std = {k: aggregate([r[k] for r in runs], "std") for k in keys}
        half = {k: aggregate([r[k] for r in runs], "half") for k in keys}
        models[mode] = {
            **mean,
            "std": std,
            "ci_half": half,
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
        "shift_parameters": {name: get_shift(name).parameters(reference) for name in config.shifts},
        "group_elements": list(group.elements),
        "sample_shape": list(test_set.sample_shape),
    }
    results = canonical(results)

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


def load_results(out_dir: str | Path) -> dict[str, Any]:
    """Read ``DIR/results.json`` written by :func:`run_study`.

    Raises
    ------
    DataError
        No results file, or one that is not complete JSON of a study.
    """
    from ginvariance.errors import DataError

    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        raise DataError(f"no results at {str(path)!r}; run 'ginv run --out {out_dir}' first")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{str(path)!r} is not readable JSON ({exc}); run 'ginv run --out {out_dir}' again"
        ) from None
    if not isinstance(results, dict) or not isinstance(results.get("models"), dict):
        raise DataError(f"{str(path)!r} is not a results file of ginv run; run it again")
    return results


def load_saliency(out_dir: str | Path) -> dict[str, np.ndarray] | None:
    """Read ``DIR/saliency.npz`` (no pickles); ``None`` when it is absent or unreadable."""
    path = Path(out_dir) / SALIENCY_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError):
        return None


__all__ = [
    "CLAIMS",
    "CLAIM_KEYS",
    "MODELS",
    "MODEL_TRAINING",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SALIENCY_FILE",
    "TRAINED_MODELS",
    "StudyConfig",
    "checkpoint_dir",
    "evaluate_claims",
    "load_results",
    "load_saliency",
    "plan_checkpoints",
    "run_study",
]
