"""Train one classifier in one of four modes, deterministically and resumably.

The run is a pure function of its :class:`~ginvariance.training.TrainConfig`:

* the model is initialized under ``torch.manual_seed(seed)`` inside a forked RNG, so the
  global random state is left as it was;
* epoch ``e`` draws its data order and its group elements from a fresh
  ``torch.Generator`` seeded from ``(seed, e)`` — never from a running random state —
  so resuming after epoch ``k`` reproduces the uninterrupted run bit for bit;
* Adam with a constant learning rate; the optimizer's state is checkpointed with the
  weights after every epoch.

Regularized mode augments the cross-entropy input: each sample is first moved by one
random group element (as in augmented mode), then the model runs once over the orbit of
that batch, cross-entropy on the (augmented) first block, penalty on all blocks. With the
full orbit the penalty does not depend on the augmentation (the orbit of ``g·x`` is the
orbit of ``x`` in another order, and both penalties are symmetric in the group elements),
so augmenting costs nothing, makes the regularized model differ from the augmented one by
the penalty alone (the comparison the study makes), and with ``orbit="sample"`` it makes
the penalized pairs ``(h·x, g·h·x)`` cover the whole orbit instead of pairs with the
identity only. (On digits/C4 the two choices reach the same test orbit accuracy within half a
point: accuracy does not decide it.)
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ginvariance.checks import check_logits
from ginvariance.errors import CheckpointError, ConfigError, ModelError, OutputError
from ginvariance.groups import Group, get_group
from ginvariance.metrics.functional import consistent_per_sample, correct_per_element
from ginvariance.metrics.orbit import eval_mode
from ginvariance.models import MODEL_NAMES, build_seeded_model, layout_revision
from ginvariance.progress import Progress, ensure_progress
from ginvariance.training.checkpoint import load_checkpoint, save_checkpoint, sidecar_path
from ginvariance.training.config import TrainConfig
from ginvariance.training.regularizer import InvarianceRegularizer, regularized_terms

EVAL_BATCH = 512


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model:
        The trained model (in eval mode), weights after the last epoch.
    config:
        The configuration it was trained with.
    history:
        One dict per epoch: ``epoch``, ``loss``, ``ce``, ``penalty``, ``train_accuracy``,
        ``val_accuracy``; the last epoch's also ``val_orbit_accuracy`` and
        ``val_orbit_consistency`` (the orbit of the validation split costs ``|G|`` forward
        passes per sample, so it is measured once, after training).
    metrics:
        On the validation split after the last epoch: ``accuracy``, ``orbit_accuracy``,
        ``orbit_consistency``, ``loss`` (cross-entropy), and ``epoch``.
    checkpoint:
        The ``.safetensors`` file written, or ``None`` without an output folder.
    seconds:
        Wall time of this call's training (0 when a finished checkpoint was returned).
    """

    model: nn.Module
    config: TrainConfig
    history: list[dict[str, float]]
    metrics: dict[str, float]
    checkpoint: Path | None
    seconds: float = field(default=0.0)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of epoch ``epoch`` (0-based): a pure function of ``(seed, epoch)``."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    group: Group,
    batch_size: int = EVAL_BATCH,
    *,
    orbit: bool = True,
) -> dict[str, float]:
    """Accuracy, orbit accuracy, orbit consistency and cross-entropy of ``model`` on ``(x, y)``.

    One forward pass over the orbit ``(n·b, *S)`` per chunk of ``b`` samples; the counts are
    those of :mod:`ginvariance.metrics.functional` (:func:`correct_per_element`,
    :func:`consistent_per_sample`), kept as integers. Non-finite logits are not refused here:
    the trainer reports them as a diverged run. ``orbit=False``: the untransformed inputs
    only (``n`` times cheaper), returning ``accuracy`` and ``loss``.
    """
    from ginvariance.devices import model_device, move

    device = model_device(model)
    n = group.order if orbit else 1
    correct = orbit_correct = consistent = 0
    loss = 0.0
    with eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            xb, yb = move((x[start : start + batch_size], y[start : start + batch_size]), device)
            b = xb.shape[0]
            inputs = group.orbit(xb) if orbit else xb
            logits = check_logits(model(inputs), n * b).reshape(n, b, -1)
            hits = correct_per_element(logits, yb)  # (n, b)
            correct += int(hits[0].sum())
            orbit_correct += int(hits.sum())
            consistent += int(consistent_per_sample(logits).sum())
            loss += float(F.cross_entropy(logits[0], yb, reduction="sum"))
    total = max(int(x.shape[0]), 1)
    if not orbit:
        return {"accuracy": correct / total, "loss": loss / total}
    return {
        "accuracy": correct / total,
        "orbit_accuracy": orbit_correct / (total * n),
        "orbit_consistency": consistent / total,
        "loss": loss / total,
    }


#: The longest checkpoint name: ``NAME.safetensors`` and its temporary files must fit the
#: 255-byte limit of common file systems.
MAX_NAME_BYTES = 200


def _check_name(name: str) -> str:
    if not name or any(c in name for c in "/\\\0") or name in (".", ".."):
        raise ConfigError(f"checkpoint name {name!r} must be a plain file name; pick another")
    size = len(os.fsencode(name))
    if size > MAX_NAME_BYTES:
        raise ConfigError(
            f"checkpoint name of {size} bytes is too long for a file name; "
            f"use at most {MAX_NAME_BYTES}"
        )
    return name


def train(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    name: str | None = None,
    overwrite: bool = False,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train one model as ``config`` says; checkpoint after every epoch into ``out_dir``.

    Parameters
    ----------
    config:
        The run (validated here).
    out_dir:
        Folder for ``<name>.safetensors`` and ``<name>.json``; ``None`` writes nothing.
    resume:
        Continue from the checkpoint in ``out_dir`` (which must exist and have been
        trained with the same configuration; ``epochs`` may be raised). A finished
        checkpoint is returned without training.
    progress:
        Receives ``start(epochs)`` and one ``advance(1, loss=..., acc=...)`` per epoch
        (mean training loss, validation accuracy).
    name:
        The checkpoint's file stem; default: the mode.
    overwrite:
        Replace an existing checkpoint instead of refusing (:class:`OutputError`).
    device:
        Where to train: ``"cpu"`` (``None``), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or
        ``"auto"`` (:func:`ginvariance.devices.resolve_device`). The data stay on the CPU and
        each batch is moved there after the CPU-seeded shuffling and augmentation, so the
        sequence of batches is the same on every device. On CUDA, deterministic kernels are
        requested (:func:`ginvariance.devices.deterministic`), so that a rerun on the same
        GPU repeats itself; a GPU run differs from a CPU run by float32 rounding, not bit for
        bit (a tolerance not yet measured on a GPU).

    Returns
    -------
    TrainResult
    """
    from ginvariance.data import load_dataset
    from ginvariance.devices import deterministic, resolve_device

    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train() takes a TrainConfig, got {type(config).__name__}")
    config.validate()
    where = resolve_device("cpu" if device is None else device)
    deterministic(where)
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other; choose one")
    if resume and out_dir is None:
        raise ConfigError("resuming needs the output folder of the run; pass out_dir (--out)")
    name = _check_name(name if name is not None else config.mode)
    _check_model_name(config.model_name)
    get_group(config.group)  # unknown names fail before any data is read

    dtype = getattr(torch, config.dtype)
    train_set = load_dataset(config.dataset, "train", root=config.root, seed=config.seed)
    val_set = load_dataset(config.dataset, "val", root=config.root, seed=config.seed)
    sample_shape = tuple(train_set.sample_shape)
    group = get_group(config.group, sample_shape)
    x_train = torch.as_tensor(train_set.x).to(dtype)
    y_train = torch.as_tensor(train_set.y).long()
    if config.limit is not None:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
    x_val = torch.as_tensor(val_set.x).to(dtype)
    y_val = torch.as_tensor(val_set.y).long()
    num_classes = int(train_set.num_classes)

    model = build_seeded_model(
        config.model_name,
        sample_shape,
        num_classes,
        group=group,
        dtype=config.dtype,
        seed=config.seed,
    ).to(where)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    regularizer = (
        InvarianceRegularizer(group, config.penalty, config.orbit)
        if config.mode == "regularized"
        else None
    )

    run = _Run(config, name, model, optimizer, regularizer, group, sample_shape, num_classes)
    data = (x_train, y_train, x_val, y_val)
    if out_dir is None:
        return run.fit(data, None, progress)
    from ginvariance.folder import output_folder

    with output_folder(out_dir) as folder:  # locked, and only ginv's own files replaced
        path = Path(out_dir) / f"{name}.safetensors"
        folder.check_writable(path)
        folder.check_writable(sidecar_path(path))
        if resume:
            if not path.exists():
                raise CheckpointError(
                    f"no checkpoint {str(path)!r} to resume from; drop --resume to start a new run"
                )
            run.resume(path)
        elif path.exists() and not overwrite:
            raise OutputError(
                f"checkpoint {str(path)!r} exists; pass --resume to continue it, --force to "
                "replace it, or choose another --out"
            )
        # A sidecar without its weights is ginv's own copy of metadata: it is replaced.
        return run.fit(data, path, progress)


class _Run:
    """One training run's state: model, optimizer, history; :meth:`fit` trains the epochs."""

    def __init__(
        self,
        config: TrainConfig,
        name: str,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        regularizer: InvarianceRegularizer | None,
        group: Group,
        sample_shape: tuple[int, ...],
        num_classes: int,
    ) -> None:
        self.config, self.name, self.model, self.optimizer = config, name, model, optimizer
        self.regularizer, self.group = regularizer, group
        self.history: list[dict[str, float]] = []
        self.metrics: dict[str, float] = {}
        self.start_epoch = 0
        self.model_desc = {
            "name": config.model_name,
            "sample_shape": list(sample_shape),
            "num_classes": num_classes,
            "group": group.name,
            "revision": layout_revision(config.model_name),
        }

    def resume(self, path: Path) -> None:
        """Continue from the checkpoint at ``path`` (verified, same configuration)."""
        config = self.config
        _, meta = load_checkpoint(path, self.model, config=config, optimizer=self.optimizer)
        self.start_epoch = int(meta.get("epoch", 0))
        self.history = list(meta.get("history", []))
        self.metrics = dict(meta.get("metrics", {}))
        if self.start_epoch > config.epochs:
            raise CheckpointError(
                f"checkpoint {str(path)!r} is at epoch {self.start_epoch}, past the "
                f"{config.epochs} asked for; raise --epochs or use another --out"
            )

    def fit(
        self,
        data: tuple[Tensor, Tensor, Tensor, Tensor],
        path: Path | None,
        progress: Progress | None,
    ) -> TrainResult:
        config, model, optimizer, group = self.config, self.model, self.optimizer, self.group
        x_train, y_train, x_val, y_val = data
        history, metrics = self.history, self.metrics
        reporter = ensure_progress(progress)
        reporter.start(config.epochs, f"train {self.name}")
        began = time.perf_counter()
        try:
            if self.start_epoch:
                reporter.advance(self.start_epoch)
            for epoch in range(self.start_epoch, config.epochs):
                stats = _train_epoch(
                    model, optimizer, x_train, y_train, group, self.regularizer, config, epoch
                )
                # the orbit of the validation split after the last epoch only (n× the cost)
                last = epoch + 1 == config.epochs
                val = evaluate(model, x_val, y_val, group, orbit=last)
                finite_weights = all(bool(torch.isfinite(p).all()) for p in model.parameters())
                if not (
                    math.isfinite(stats["loss"]) and math.isfinite(val["loss"]) and finite_weights
                ):
                    what = (
                        "weights became NaN or inf"
                        if not finite_weights
                        else f"training loss {stats['loss']:.3g}, validation loss {val['loss']:.3g}"
                    )
                    raise ConfigError(
                        f"training diverged ({what} in epoch {epoch + 1}); lower --lr or --lam"
                    )
                entry = {"epoch": epoch + 1, **stats, "val_accuracy": val["accuracy"]}
                if last:
                    entry["val_orbit_accuracy"] = val["orbit_accuracy"]
                    entry["val_orbit_consistency"] = val["orbit_consistency"]
                history.append(entry)
                metrics = {**val, "epoch": epoch + 1}
                if path is not None:
                    save_checkpoint(
                        path,
                        model,
                        optimizer=optimizer,
                        meta={
                            "config": config.to_dict(),
                            "epoch": epoch + 1,
                            "history": history,
                            "metrics": metrics,
                            "model": self.model_desc,
                            "name": self.name,
                        },
                    )
                reporter.advance(1, loss=stats["loss"], acc=val["accuracy"])
        finally:
            reporter.finish()
        seconds = time.perf_counter() - began
        if not metrics:  # resumed a finished run whose metadata lacks metrics
            metrics = {**evaluate(model, x_val, y_val, group), "epoch": config.epochs}
        model.eval()
        return TrainResult(model, config, history, metrics, path, seconds)


def _check_model_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    group: Group,
    regularizer: InvarianceRegularizer | None,
    config: TrainConfig,
    epoch: int,
) -> dict[str, float]:
    """One pass over ``(x, y)`` in the order and with the group elements of ``(seed, epoch)``."""
    from ginvariance.devices import model_device, move

    device = model_device(model)
    generator = epoch_generator(config.seed, epoch)
    order = torch.randperm(x.shape[0], generator=generator)
    model.train()
    sums = {"loss": 0.0, "ce": 0.0, "penalty": 0.0}
    correct = 0
    for start in range(0, x.shape[0], config.batch_size):
        index = order[start : start + config.batch_size]
        xb, yb = x[index], y[index]
        if config.mode in ("augmented", "regularized"):
            xb = group.act_per_sample(xb, group.sample(xb.shape[0], generator))
        xb, yb = move((xb, yb), device)
        if regularizer is not None:
            loss, ce, penalty, logits_orbit = regularized_terms(
                model, xb, yb, regularizer, config.lam, generator=generator
            )
            logits_e = logits_orbit[0]
        else:
            logits_e = check_logits(model(xb), xb.shape[0])
            ce = F.cross_entropy(logits_e, yb)
            penalty = torch.zeros((), dtype=ce.dtype)
            loss = ce
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        b = xb.shape[0]
        sums["loss"] += float(loss.detach()) * b
        sums["ce"] += float(ce.detach()) * b
        sums["penalty"] += float(penalty.detach()) * b
        correct += int((logits_e.detach().argmax(dim=1) == yb).sum())
    n = x.shape[0]
    return {**{key: value / n for key, value in sums.items()}, "train_accuracy": correct / n}


#: The old name of :func:`ginvariance.models.build_seeded_model`.
build_training_model = build_seeded_model

__all__ = ["TrainResult", "build_training_model", "epoch_generator", "evaluate", "train"]
