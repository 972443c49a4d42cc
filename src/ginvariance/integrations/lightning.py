"""A Lightning callback that logs genuine-vs-learned invariance at each validation epoch.

Only this module of :mod:`ginvariance` imports ``lightning`` (``pip install lightning``).

Example
-------
::

    from lightning.pytorch import Trainer
    from ginvariance.integrations.lightning import InvarianceMonitor

    trainer = Trainer(callbacks=[InvarianceMonitor("c4", shifts=("uniform", "noise-0.5"))])
    trainer.fit(module, train_loader, val_loader)
    # logged: ginv/pdi, ginv/li, ginv/sis, ginv/accuracy, ..., ginv/uniform/pdi, ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ginvariance.checks import check_int
from ginvariance.errors import DataError
from ginvariance.groups import Group, get_group
from ginvariance.metrics.measure import measure
from ginvariance.metrics.orbit import DEFAULT_MEMORY_BUDGET

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ginvariance.integrations.lightning needs Lightning; install it with: pip install lightning"
    ) from err

#: Result keys that are counts, not measures: kept in ``history`` but not logged.
_NOT_LOGGED = frozenset({"n_samples"})


def _split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x`` and (if present) ``y`` of a validation batch: a tensor, ``(x, y, ...)`` or a dict."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Sequence) and batch and isinstance(batch[0], torch.Tensor):
        y = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
        return batch[0], y
    if isinstance(batch, Mapping) and isinstance(batch.get("x"), torch.Tensor):
        y = batch.get("y")
        return batch["x"], y if isinstance(y, torch.Tensor) else None
    raise DataError(
        f"InvarianceMonitor cannot read a validation batch of type {type(batch).__name__}; "
        "make the val dataloader yield x, (x, y) or {'x': x, 'y': y}"
    )


class InvarianceMonitor(Callback):
    """Log ``pdi``, ``li``, ``sis`` (and accuracies) of the module at each validation epoch.

    The first ``max_samples`` inputs (and labels) of the first validation dataloader are kept
    as they pass ``on_validation_batch_end``; at the epoch's end ``pl_module`` (which returns
    ``(B, K)`` logits) is measured on them with :func:`ginvariance.measure`, in distribution and
    under each shift, and every measure is logged as ``{prefix}{key}`` (``ginv/pdi``) or
    ``{prefix}{shift}/{key}`` (``ginv/uniform/pdi``; label-free shifts carry no accuracies).
    The sanity check is skipped; the full-precision results stay in :attr:`history` (one dict
    per measured epoch) and :attr:`last` (Lightning logs float32). Under DDP each process keeps
    the first ``max_samples`` of its shard, and every process measures them all, gathered in
    the data set's order (the ``DistributedSampler``'s indices, padding dropped).

    Parameters
    ----------
    group, shifts, seed:
        The group (or its name, e.g. ``"c4"``) and the distribution shifts
        (:mod:`ginvariance.data.shifts`), drawn with ``seed``.
    saliency, max_samples, prefix:
        Also measure ``sis`` (one backward pass); how many validation samples to measure (the
        first seen each epoch); the logged keys' prefix.
    chunk_size, memory_budget:
        Bound the memory of one orbit pass (see :func:`ginvariance.measure`).
    """

    def __init__(
        self,
        group: Group | str,
        shifts: Sequence[str] = ("uniform",),
        *,
        saliency: bool = True,
        max_samples: int = 512,
        prefix: str = "ginv/",
        seed: int = 0,
        chunk_size: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        super().__init__()
        check_int(max_samples, "max_samples")
        if isinstance(shifts, str):
            shifts = (shifts,)
        from ginvariance.data.shifts import get_shift

        for name in shifts:
            get_shift(name)  # fail now, not after an epoch of training
        self.group = get_group(group)
        self.shifts = tuple(shifts)
        self.saliency = saliency
        self.max_samples = max_samples
        self.prefix = prefix
        self.seed = seed
        self.chunk_size = chunk_size
        self.memory_budget = memory_budget
        self.history: list[dict[str, Any]] = []
        self._reset()

    @property
    def last(self) -> dict[str, Any] | None:
        """The most recent results: ``{"epoch", "step", "id": {...}, "shift": {...}}``."""
        return self.history[-1] if self.history else None

    def _reset(self) -> None:
        self._x: list[torch.Tensor] = []
        self._y: list[torch.Tensor] = []
        self._seen, self._labelled = 0, True
        self._indices: list[int] | None = None

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset()
        if trainer.world_size > 1:  # the indices the DistributedSampler gives this process
            loaders = trainer.val_dataloaders
            loader = loaders[0] if isinstance(loaders, list | tuple) and loaders else loaders
            sampler = getattr(loader, "sampler", None)
            if sampler is not None and hasattr(sampler, "num_replicas"):
                self._indices = [int(i) for i in sampler]

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or dataloader_idx != 0 or self._seen >= self.max_samples:
            return
        x, y = _split_batch(batch)
        take = min(self.max_samples - self._seen, x.shape[0])
        self._x.append(x[:take].detach())
        self._labelled = self._labelled and y is not None
        if y is not None:
            self._y.append(y[:take].detach())
        self._seen += take

    def measure_collected(self, pl_module: torch.nn.Module) -> dict[str, Any]:
        """Measure ``pl_module`` on the samples collected this epoch: ``{"id", "shift"}``."""
        if not self._x:
            raise DataError("no validation samples were collected; run a validation epoch first")
        # out of Lightning's inference mode: sis needs autograd, and ordinary tensors (copies)
        with torch.inference_mode(False), torch.enable_grad():
            x = torch.cat(self._x).clone()
            y = torch.cat(self._y).clone() if self._labelled and self._y else None
            x, y = self._gather(x, y)
            report = measure(
                pl_module,
                (x, y) if y is not None else x,
                self.group,
                self.shifts,
                saliency=self.saliency,
                chunk_size=self.chunk_size,
                memory_budget=self.memory_budget,
                seed=self.seed,
            )
        return report.to_dict()

    def _gather(
        self, x: torch.Tensor, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every process's samples, in the data set's order (one process: ``x, y``)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return x, y
        index = None if self._indices is None else self._indices[: x.shape[0]]
        mine = (x.cpu(), None if y is None else y.cpu(), index)
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, mine)
        xs = torch.cat([p[0] for p in parts])
        ys = None if any(p[1] is None for p in parts) else torch.cat([p[1] for p in parts])
        if all(p[2] is not None and len(p[2]) == len(p[0]) for p in parts):
            order: dict[int, int] = {}  # global index → first row holding it
            for row, i in enumerate(i for p in parts for i in p[2]):
                order.setdefault(int(i), row)
            rows = torch.tensor([order[i] for i in sorted(order)], dtype=torch.long)
            xs, ys = xs[rows], None if ys is None else ys[rows]
        return xs.to(x.device), None if ys is None or y is None else ys.to(y.device)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self._x:
            return
        results = self.measure_collected(pl_module)
        self.history.append(
            {"epoch": trainer.current_epoch, "step": trainer.global_step, **results}
        )
        # an undefined measure (None, e.g. sis without an input gradient) stays in the history
        parts = {"": results["id"], **{f"{s}/": v for s, v in results["shift"].items()}}
        for where, values in parts.items():
            for key, value in values.items():
                if key not in _NOT_LOGGED and value is not None:
                    name = f"{self.prefix}{where}{key}"
                    pl_module.log(name, float(value), on_step=False, on_epoch=True)
        self._reset()


__all__ = ["InvarianceMonitor"]
