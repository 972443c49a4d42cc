"""Train one classifier in one of four modes, deterministically and resumably.

The model is initialized under the config's seed and epoch ``e`` draws its order and group
elements from :func:`epoch_generator` of ``(seed, e)`` alone, so a run resumed after epoch
``k`` repeats the uninterrupted one bit for bit. Regularized mode augments too, then runs the
model once over the batch's orbit: a full-orbit penalty is symmetric in the elements, so it is
blind to that augmentation; with ``orbit="sample"`` the penalized pairs ``(h·x, g·h·x)`` cover
the whole orbit.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ginvariance.checks import check_logits
from ginvariance.devices import deterministic, model_device, move, resolve_device
from ginvariance.errors import CheckpointError, ConfigError, ModelError, OutputError
from ginvariance.folder import output_folder
from ginvariance.groups import Group, get_group
from ginvariance.metrics.functional import consistent_per_sample, correct_per_element
from ginvariance.metrics.orbit import eval_mode
from ginvariance.models import MODEL_NAMES, build_seeded_model, layout_revision
from ginvariance.progress import Progress, ensure_progress
from ginvariance.training.checkpoint import load_checkpoint, save_checkpoint, sidecar_path
from ginvariance.training.config import TrainConfig
from ginvariance.training.regularizer import InvarianceRegularizer, regularized_terms

EVAL_BATCH = 512
#: The longest checkpoint name: ``NAME.safetensors`` and its temporary files must fit the
#: 255-byte limit of common file systems.
MAX_NAME_BYTES = 200


@dataclass
class TrainResult:
    """What :func:`train` returns: ``model`` (trained, in eval mode) and its ``config``;
    ``history``, one dict per epoch (``epoch``, ``loss``, ``ce``, ``penalty``, ``train_accuracy``,
    ``val_accuracy``, and on the last, whose validation orbit alone is measured,
    ``val_orbit_accuracy`` and ``val_orbit_consistency``); ``metrics``, :func:`evaluate` on the
    validation split after the last epoch with its ``epoch``; ``checkpoint``, the file written
    (``None`` without an output folder); ``seconds``, this call's training time (0 when a
    finished checkpoint was returned).
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

    One forward pass over the orbit ``(n·b, *S)`` per chunk of ``b`` samples, hits counted as
    integers; non-finite logits are left to the trainer. ``orbit=False``: accuracy and loss.
    """
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
    """Train one model as ``config`` (validated here) says; checkpoint after every epoch.

    Parameters
    ----------
    out_dir, name:
        Folder for ``<name>.safetensors`` and ``<name>.json`` (``None`` writes nothing); the
        file stem, by default the mode.
    resume, overwrite:
        Continue from the checkpoint in ``out_dir``, trained with the same configuration
        (``epochs`` may be raised; a finished one is returned without training); or replace
        an existing checkpoint instead of refusing (:class:`OutputError`).
    progress:
        Receives ``start(epochs)`` and one ``advance(1, loss=..., acc=...)`` per epoch.
    device:
        Where to train (``None``: the CPU); batches move there after the CPU-seeded shuffling
        and augmentation, so every device sees the same ones; on CUDA deterministic kernels
        are requested.
    """
    from ginvariance.data import load_dataset

    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train() takes a TrainConfig, got {type(config).__name__}")
    config.validate()
    where = resolve_device("cpu" if device is None else device)
    deterministic(where)
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other; choose one")
    if resume and out_dir is None:
        raise ConfigError("resuming needs the output folder of the run; pass out_dir (--out)")
    name = name if name is not None else config.mode
    if not name or any(c in name for c in "/\\\0") or name in (".", ".."):
        raise ConfigError(f"checkpoint name {name!r} must be a plain file name; pick another")
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise ConfigError(
            f"checkpoint name of {len(os.fsencode(name))} bytes is too long for a file name; "
            f"use at most {MAX_NAME_BYTES}"
        )
    if config.model_name not in MODEL_NAMES:
        raise ModelError(
            f"unknown model {config.model_name!r}; choose one of: {', '.join(MODEL_NAMES)}"
        )
    get_group(config.group)  # unknown names fail before any data is read

    dtype = getattr(torch, config.dtype)
    train_set = load_dataset(config.dataset, "train", root=config.root, seed=config.seed)
    val_set = load_dataset(config.dataset, "val", root=config.root, seed=config.seed)
    sample_shape = tuple(train_set.sample_shape)
    group = get_group(config.group, sample_shape)
    data = (
        torch.as_tensor(train_set.x).to(dtype)[: config.limit],
        torch.as_tensor(train_set.y).long()[: config.limit],
        torch.as_tensor(val_set.x).to(dtype),
        torch.as_tensor(val_set.y).long(),
    )
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
    desc = {
        "name": config.model_name,
        "sample_shape": list(sample_shape),
        "num_classes": num_classes,
        "group": group.name,
        "revision": layout_revision(config.model_name),
    }
    run = _Run(config, name, model, optimizer, regularizer, group, desc)
    if out_dir is None:
        return run.fit(data, None, progress)
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


@dataclass
class _Run:
    """One training run's state; :meth:`fit` trains the epochs that remain."""

    config: TrainConfig
    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    regularizer: InvarianceRegularizer | None
    group: Group
    model_desc: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    start_epoch: int = 0

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
        config, model, group = self.config, self.model, self.group
        x_train, y_train, x_val, y_val = data
        history, metrics = self.history, self.metrics
        reporter = ensure_progress(progress)
        reporter.start(config.epochs, f"train {self.name}")
        began = time.perf_counter()
        try:
            if self.start_epoch:
                reporter.advance(self.start_epoch)
            for epoch in range(self.start_epoch, config.epochs):
                stats = self.train_epoch(x_train, y_train, epoch)
                last = epoch + 1 == config.epochs
                val = evaluate(model, x_val, y_val, group, orbit=last)
                if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                    what = "weights became NaN or inf"
                elif not (math.isfinite(stats["loss"]) and math.isfinite(val["loss"])):
                    what = f"training loss {stats['loss']:.3g}, validation loss {val['loss']:.3g}"
                else:
                    what = ""
                if what:
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
                    meta = {
                        "config": config.to_dict(),
                        "epoch": epoch + 1,
                        "history": history,
                        "metrics": metrics,
                        "model": self.model_desc,
                        "name": self.name,
                    }
                    save_checkpoint(path, model, optimizer=self.optimizer, meta=meta)
                reporter.advance(1, loss=stats["loss"], acc=val["accuracy"])
        finally:
            reporter.finish()
        seconds = time.perf_counter() - began
        if not metrics:  # resumed a finished run whose metadata lacks metrics
            metrics = {**evaluate(model, x_val, y_val, group), "epoch": config.epochs}
        model.eval()
        return TrainResult(model, config, history, metrics, path, seconds)

    def train_epoch(self, x: Tensor, y: Tensor, epoch: int) -> dict[str, float]:
        """One pass over ``(x, y)``, ordered and augmented by the generator of ``(seed, epoch)``."""
        config, model, group, regularizer = self.config, self.model, self.group, self.regularizer
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
                loss = ce = F.cross_entropy(logits_e, yb)
                penalty = torch.zeros((), dtype=ce.dtype)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            for key, value in (("loss", loss), ("ce", ce), ("penalty", penalty)):
                sums[key] += float(value.detach()) * xb.shape[0]
            correct += int((logits_e.detach().argmax(dim=1) == yb).sum())
        n = x.shape[0]
        return {**{key: value / n for key, value in sums.items()}, "train_accuracy": correct / n}


#: The old name of :func:`ginvariance.models.build_seeded_model`.
build_training_model = build_seeded_model

__all__ = ["TrainResult", "build_training_model", "epoch_generator", "evaluate", "train"]
