"""InvarianceMonitor under Lightning: ``python ddp_monitor_script.py OUT DEVICES``.

Validates a tiny float64 module once with the monitor on ``DEVICES`` CPU processes
(``strategy="ddp"`` when more than one: Lightning re-runs this script for every other
rank) and writes what each rank logged to ``OUT/rank-<r>.json``. ``tests/test_distributed.py``
calls :func:`run` with ``strategy="ddp_fork"`` (the same DDP strategy, its processes forked
from the test instead of re-running a script that imports Lightning again) and with one
process for the reference.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ginvariance.integrations.lightning import InvarianceMonitor

N_VAL = 16


class WriteLogged(pl.Callback):
    """Writes what this rank logged (and the monitor's full-precision result) to a file."""

    def __init__(self, out: Path, monitor: InvarianceMonitor) -> None:
        self.out, self.monitor = out, monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics.items()
        logged = {k: float(v) for k, v in metrics if k.startswith("ginv/")}
        result = {"logged": logged, "history": self.monitor.last, "rank": trainer.global_rank}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank-{trainer.global_rank}.json").write_text(json.dumps(result))


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        pass


def data() -> DataLoader:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(N_VAL, 1, 4, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (N_VAL,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=3, shuffle=False)


def run(out: Path, devices: int, strategy: str = "ddp") -> None:
    """Validate once; every rank writes its logged ``ginv/`` values to ``OUT/rank-<r>.json``."""
    torch.set_num_threads(1)
    monitor = InvarianceMonitor("c4", shifts=("noise-0.1", "invert"), max_samples=64)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=strategy if devices > 1 else "auto",
        callbacks=[monitor, WriteLogged(out, monitor)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.validate(Tiny(), data(), verbose=False)


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]))
