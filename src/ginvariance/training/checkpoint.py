"""Checkpoints: safetensors weights (no code runs on load) and a readable JSON sidecar.

A checkpoint ``DIR/NAME.safetensors`` holds

* the model's ``state_dict`` under its own keys,
* the optimizer's state tensors under ``optim.state.{i}.{name}`` (for example
  ``optim.state.0.exp_avg``),
* in the safetensors header metadata, under ``"ginvariance"``, the JSON of the run's
  metadata (configuration, epoch, history, metrics, model description, optimizer
  hyper-parameters, versions) and a SHA-256 of the tensor data,

and ``DIR/NAME.json`` is a readable copy of that metadata. Both are written atomically
(temporary file, fsync, rename). The weights file is self-contained, so the pair cannot
disagree in a way that matters: the metadata inside it wins.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ginvariance.errors import CheckpointError
from ginvariance.io import atomic_write_bytes, atomic_write_json, to_json
from ginvariance.training.config import RESUMABLE_FIELDS, TrainConfig

OPTIM_PREFIX = "optim.state."
FORMAT_VERSION = 1


def versions() -> dict[str, str]:
    """Versions of the software that wrote a result."""
    import safetensors

    import ginvariance

    return {
        "ginvariance": ginvariance.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "safetensors": safetensors.__version__,
        "torch": torch.__version__,
    }


def sidecar_path(path: str | Path) -> Path:
    """``DIR/NAME.safetensors`` → ``DIR/NAME.json``."""
    p = Path(path)
    return p.with_name(p.stem + ".json")


def _digest(tensors: Mapping[str, Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    meta: dict[str, Any],
) -> None:
    """Write ``model`` (and ``optimizer``'s state) to ``path`` and the sidecar ``<stem>.json``.

    Parameters
    ----------
    path:
        The ``.safetensors`` file to write; its folder is created if needed.
    model:
        Its ``state_dict`` is stored under its own keys (tensors are copied, so weights
        that share memory are stored twice).
    optimizer:
        Its per-parameter state tensors go under ``optim.state.{i}.{name}``, its
        hyper-parameters into the metadata.
    meta:
        JSON-serializable metadata (the trainer stores config, epoch, history, metrics,
        the model description); versions are added.
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"checkpoint {str(path)!r} must end in .safetensors; give a .safetensors path"
        )
    tensors: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        if key.startswith(OPTIM_PREFIX):
            raise CheckpointError(
                f"model parameter {key!r} clashes with the optimizer's key prefix; rename it"
            )
        tensors[key] = value.detach().cpu().contiguous().clone()
    meta = dict(meta)
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, slots in state["state"].items():
            for slot, value in slots.items():
                if not isinstance(value, Tensor):
                    value = torch.tensor(value)
                tensors[f"{OPTIM_PREFIX}{index}.{slot}"] = value.detach().cpu().contiguous().clone()
        meta["optimizer"] = {
            "class": type(optimizer).__name__,
            "param_groups": state["param_groups"],
        }
    meta["versions"] = versions()
    meta["format"] = FORMAT_VERSION
    header = dict(meta)
    header["sha256"] = _digest(tensors)
    try:
        blob = save(tensors, metadata={"ginvariance": json.dumps(header, sort_keys=True)})
        to_json(meta)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"cannot serialize checkpoint {str(path)!r}: {exc}; pass JSON-serializable metadata"
        ) from None
    atomic_write_bytes(path, blob)
    atomic_write_json(sidecar_path(path), meta)


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import safe_open

    if not path.exists():
        raise CheckpointError(f"no checkpoint at {str(path)!r}; check the path")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a file; give a .safetensors file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as exc:  # safetensors raises several types for corrupt files
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable safetensors file ({reason}); "
            "it is corrupt or truncated: train again or restore it"
        ) from None
    return tensors, metadata


def _read_meta(path: Path, metadata: Mapping[str, str], tensors: Mapping[str, Tensor]) -> dict:
    raw = metadata.get("ginvariance")
    if raw is None:
        side = sidecar_path(path)
        if not side.exists():
            return {}
        try:
            return json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint sidecar {str(side)!r} is not readable JSON ({exc}); "
                "restore or delete it"
            ) from None
    try:
        meta = json.loads(raw)
    except ValueError:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has corrupt metadata; train again or restore it"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} has corrupt metadata; train again")
    digest = meta.pop("sha256", None)
    if digest is not None and digest != _digest(tensors):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt (its tensors do not match their checksum); "
            "train again or restore it"
        )
    return meta


def _split(tensors: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    weights = {k: v for k, v in tensors.items() if not k.startswith(OPTIM_PREFIX)}
    optim = {k: v for k, v in tensors.items() if k.startswith(OPTIM_PREFIX)}
    return weights, optim


def _load_into(path: Path, model: nn.Module, weights: Mapping[str, Tensor]) -> nn.Module:
    """Copy ``weights`` into ``model``, refusing missing or extra keys and other shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}" + (" ..." if len(missing) > 4 else ""))
        if extra:
            parts.append(f"unexpected {', '.join(extra[:4])}" + (" ..." if len(extra) > 4 else ""))
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the model ({'; '.join(parts)}); "
            "load it into the model it was trained with"
        )
    for key, value in expected.items():
        if tuple(weights[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not match the model: {key} has shape "
                f"{tuple(weights[key].shape)} in the file and {tuple(value.shape)} in the model; "
                "load it into the model it was trained with"
            )
        if weights[key].is_floating_point() != value.is_floating_point():
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not match the model: {key} has dtype "
                f"{weights[key].dtype} in the file and {value.dtype} in the model"
            )
    with torch.no_grad():
        model.load_state_dict(dict(weights), strict=True)
    return model


def _load_optimizer(
    path: Path, optimizer: torch.optim.Optimizer, optim: Mapping[str, Tensor], meta: dict
) -> None:
    info = meta.get("optimizer")
    if info is None:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds no optimizer state; it cannot be resumed, "
            "train again without --resume"
        )
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in optim.items():
        index, _, slot = key[len(OPTIM_PREFIX) :].partition(".")
        state.setdefault(int(index), {})[slot] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has optimizer state that does not fit ({exc}); "
            "train again without --resume"
        ) from None


def load_checkpoint(
    path: str | Path,
    model: nn.Module | None = None,
    *,
    config: TrainConfig | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path:
        The ``.safetensors`` file.
    model:
        The model to load into; ``None`` rebuilds it from the configuration and model
        description stored in the checkpoint (:func:`ginvariance.models.build_model`).
    config:
        When given, the checkpoint's configuration must equal it (except ``epochs``,
        which a resumed run may raise), else :class:`CheckpointError`.
    optimizer:
        When given, its state is restored too.

    Returns
    -------
    (model, meta):
        The model with the checkpoint's weights, and the checkpoint's metadata.

    Raises
    ------
    CheckpointError
        A missing, non-safetensors, corrupt or truncated file, missing or extra keys,
        other shapes, or a configuration that differs.
    """
    path = Path(path)
    if path.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt"):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a pickle file; training checkpoints are .safetensors "
            "(use load_weights for a .pt state dict)"
        )
    tensors, metadata = _read_safetensors(path)
    meta = _read_meta(path, metadata, tensors)
    stored_config: TrainConfig | None = None
    if "config" in meta:
        try:
            stored_config = TrainConfig.from_dict(meta["config"])
        except Exception:
            raise CheckpointError(
                f"checkpoint {str(path)!r} records a configuration this version cannot read; "
                "train again"
            ) from None
    if config is not None:
        if stored_config is None:
            raise CheckpointError(
                f"checkpoint {str(path)!r} records no training configuration; "
                "use another --out or drop --resume"
            )
        diffs = config.differences(stored_config, ignore=RESUMABLE_FIELDS)
        if diffs:
            raise CheckpointError(
                f"checkpoint {str(path)!r} was trained with a different configuration "
                f"({'; '.join(diffs)} differs); use another --out or drop --resume"
            )
    if model is None:
        model = _rebuild(path, meta, stored_config)
    weights, optim = _split(tensors)
    _load_into(path, model, weights)
    if optimizer is not None:
        _load_optimizer(path, optimizer, optim, meta)
    return model, meta


def _rebuild(path: Path, meta: dict, config: TrainConfig | None) -> nn.Module:
    desc = meta.get("model")
    if config is None or not isinstance(desc, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not describe its model; pass the model to load into"
        )
    from ginvariance.training.trainer import build_training_model

    try:
        return build_training_model(
            desc["name"],
            tuple(desc["sample_shape"]),
            int(desc["num_classes"]),
            group=desc.get("group"),
            dtype=config.dtype,
            seed=config.seed,
        )
    except KeyError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has an incomplete model description (no {exc}); "
            "pass the model to load into"
        ) from None


def load_weights(path: str | Path, model: nn.Module) -> nn.Module:
    """Load weights into ``model`` from a ``.safetensors`` file or a ``.pt``/``.pth`` state dict.

    ``.safetensors`` files are read as tensors only (optimizer entries are ignored).
    ``.pt``/``.pth`` files are read with ``torch.load(weights_only=True)``, which refuses
    any pickle that would build objects other than tensors and containers (and so never
    runs code from the file). Anything else is refused.

    Raises
    ------
    CheckpointError
        Another file type, an unsafe or corrupt file, or weights that do not fit ``model``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        tensors, _ = _read_safetensors(path)
        weights, _ = _split(tensors)
        return _load_into(path, model, weights)
    if suffix in (".pt", ".pth"):
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {str(path)!r}; check the path")
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            reason = " ".join(str(exc).split())[:100]
            raise CheckpointError(
                f"refused to load {str(path)!r}: it is not a plain tensor state dict ({reason}); "
                "save weights with safetensors or torch.save(model.state_dict())"
            ) from None
        if isinstance(obj, Mapping):
            for key in ("state_dict", "model_state_dict", "model"):
                if key in obj and isinstance(obj[key], Mapping):
                    obj = obj[key]
                    break
        if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
        ):
            raise CheckpointError(
                f"{str(path)!r} does not hold a state dict of tensors; "
                "save it with torch.save(model.state_dict())"
            )
        return _load_into(path, model, obj)
    raise CheckpointError(
        f"cannot load weights from {str(path)!r}: use a .safetensors file "
        "(or a .pt/.pth state dict)"
    )


__all__ = ["load_checkpoint", "load_weights", "save_checkpoint", "sidecar_path", "versions"]
