"""Training towards genuine invariance: the invariance regularizer, the trainer, checkpoints.

* :class:`InvarianceRegularizer` — an ``nn.Module`` loss on the logits of an orbit,
  usable in any training loop; :func:`regularized_loss` — cross-entropy plus ``λ`` times
  it, from one forward pass over the orbit.
* :func:`train` — one model in one of :data:`MODES` (``plain``, ``augmented``,
  ``regularized``, ``weight-tied``), deterministic and resumable.
* :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`load_weights` — safetensors
  checkpoints with a JSON sidecar; nothing executes code on load, and every load goes
  through :func:`read_checkpoint`, which verifies the checksum over metadata and tensors.
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
