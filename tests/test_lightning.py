"""The Lightning callback, with the invariance regularizer as a plain nn.Module loss."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
import warnings
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ginvariance.data.shifts import get_shift
from ginvariance.errors import ConfigError
from ginvariance.integrations.lightning import InvarianceMonitor
from ginvariance.metrics import invariance_suite
from ginvariance.training import InvarianceRegularizer

N_TRAIN, N_VAL, MAX_SAMPLES = 320, 96, 80


class MemoryLogger(Logger):
    """Keeps every ``log_metrics`` call: ``[(step, {key: value})]``."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.records.append((step, dict(metrics)))

    def values(self, key: str) -> list[float]:
        return [m[key] for _, m in self.records if key in m]


class DigitsModule(pl.LightningModule):
    """A small CNN trained with cross-entropy plus λ times the invariance regularizer."""

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 8 * 8, 10),
        )
        self.regularizer = InvarianceRegularizer("c4", penalty="logit", orbit="full")
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        m, b = self.regularizer.orbit_size, x.shape[0]
        logits = self(self.regularizer.orbit_inputs(x)).reshape(m, b, -1)
        ce = nn.functional.cross_entropy(logits[0], y)
        penalty = self.regularizer(logits)
        self.log("train/penalty", penalty)
        return ce + self.lam * penalty

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val/loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images[: N_TRAIN + N_VAL], dtype=torch.float32).unsqueeze(1) / 16.0
    return x, torch.tensor(data.target[: N_TRAIN + N_VAL], dtype=torch.int64)


def test_monitor_logs_the_suite_of_the_trained_module(tmp_path: Any) -> None:
    x, y = _digits()
    train = DataLoader(TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), batch_size=64, shuffle=True)
    val_x, val_y = x[N_TRAIN:], y[N_TRAIN:]
    val = DataLoader(TensorDataset(val_x, val_y), batch_size=32)
    module, logger = DigitsModule(), MemoryLogger()
    monitor = InvarianceMonitor("c4", shifts=("uniform",), max_samples=MAX_SAMPLES)
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=logger,
        callbacks=[monitor],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        log_every_n_steps=1,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, train, val)

    # one measurement per validation epoch; the sanity check is not measured
    assert [h["epoch"] for h in monitor.history] == [0, 1]
    keys = ("pdi", "li", "sis", "accuracy", "orbit_accuracy", "orbit_consistency")
    for key in keys:
        values = logger.values(f"ginv/{key}")
        assert len(values) == 2 and all(math.isfinite(v) for v in values), key
    for key in ("pdi", "li", "sis", "orbit_consistency"):
        assert len(logger.values(f"ginv/uniform/{key}")) == 2
    assert not logger.values("ginv/uniform/accuracy")  # pure noise has no labels

    # recompute on the same validation samples with the trained module
    xs, ys = val_x[:MAX_SAMPLES], val_y[:MAX_SAMPLES]
    expected_id = invariance_suite(module, xs, "c4", ys)
    expected_uniform = invariance_suite(module, get_shift("uniform")(xs, 0), "c4")
    last = monitor.last
    assert last is not None and last["id"]["n_samples"] == MAX_SAMPLES
    for key in keys:
        assert last["id"][key] == pytest.approx(expected_id[key], rel=1e-12, abs=1e-12)
        logged = logger.values(f"ginv/{key}")[-1]  # float32 in Lightning's logs
        assert logged == pytest.approx(expected_id[key], rel=1e-6, abs=1e-7)
    for key in ("pdi", "li", "sis"):
        assert last["shift"]["uniform"][key] == pytest.approx(expected_uniform[key], rel=1e-12)
        logged = logger.values(f"ginv/uniform/{key}")[-1]
        assert logged == pytest.approx(expected_uniform[key], rel=1e-6, abs=1e-7)
    # the regularizer did its job enough for the numbers to mean something
    assert expected_id["accuracy"] > 0.5
    assert logger.values("train/penalty")


def test_bad_options_fail_before_training() -> None:
    with pytest.raises(ConfigError, match="unknown shift"):
        InvarianceMonitor("c4", shifts=("fog",))
    with pytest.raises(ConfigError, match="max_samples"):
        InvarianceMonitor("c4", max_samples=0)


def test_ginvariance_does_not_import_lightning() -> None:
    code = (
        "import sys, ginvariance, ginvariance.metrics, ginvariance.integrations, "
        "ginvariance.integrations.plots, ginvariance.metrics.layerwise; "
        "assert not any(m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning')) "
        "for m in sys.modules), 'lightning imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_lightning_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "ginvariance.integrations.lightning", raising=False)
    with pytest.raises(ImportError, match="pip install lightning"):
        importlib.import_module("ginvariance.integrations.lightning")
