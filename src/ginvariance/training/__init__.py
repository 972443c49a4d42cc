"""Training towards genuine invariance: the invariance regularizer (an ``nn.Module`` loss for
any training loop), :func:`train` (one model in one of :data:`MODES`, deterministic and
resumable) and safetensors checkpoints that run no code on load and are verified on every read.
"""

from __future__ import annotations

from ginvariance.training.checkpoint import (
    checkpoint_meta,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    sidecar_path,
    versions,
)
from ginvariance.training.config import (
    CALIBRATED_LAM,
    DTYPES,
    MODES,
    ORBITS,
    PENALTIES,
    TrainConfig,
)
from ginvariance.training.regularizer import InvarianceRegularizer, regularized_loss
from ginvariance.training.trainer import TrainResult, epoch_generator, evaluate, train

__all__ = [
    "CALIBRATED_LAM",
    "DTYPES",
    "MODES",
    "ORBITS",
    "PENALTIES",
    "InvarianceRegularizer",
    "TrainConfig",
    "TrainResult",
    "checkpoint_meta",
    "epoch_generator",
    "evaluate",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "regularized_loss",
    "save_checkpoint",
    "sidecar_path",
    "train",
    "versions",
]
