"""Checkpoints: safetensors weights (no code runs on load) and a readable JSON sidecar.

``DIR/NAME.safetensors`` holds the model's ``state_dict`` under its own keys, the optimizer's
state tensors under ``optim.state.{i}.{name}`` and, in the header metadata under
``"ginvariance"``, the JSON of the run's metadata (configuration, epoch, history, metrics, model
description, optimizer hyper-parameters, versions, ``"format": 2``) with ``"sha256"`` over that
metadata (canonical JSON) and every tensor's name, dtype, shape and bytes. ``DIR/NAME.json`` is
a readable copy of the metadata that ginv never reads back. Both are written atomically; every
load goes through :func:`read_checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ginvariance._version import __version__
from ginvariance.checks import is_int as _is_int
from ginvariance.checks import is_number as _is_number
from ginvariance.checks import json_roundtrip
from ginvariance.errors import CheckpointError, GinvarianceError
from ginvariance.io import atomic_write_bytes, atomic_write_json, to_json
from ginvariance.models import layout_revision
from ginvariance.training.config import RESUMABLE_FIELDS, TrainConfig

OPTIM_PREFIX = "optim.state."
FORMAT_VERSION = 2


def versions() -> dict[str, str]:
    """Versions of the software that wrote a result."""
    import safetensors

    return {
        "ginvariance": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "safetensors": safetensors.__version__,
        "torch": torch.__version__,
    }


def sidecar_path(path: str | Path) -> Path:
    """``DIR/NAME.safetensors`` → ``DIR/NAME.json``."""
    p = Path(path)
    return p.with_name(p.stem + ".json")


def _digest(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> str:
    """SHA-256 over ``meta`` (canonical JSON, without its ``sha256``) and every tensor."""
    h = hashlib.sha256()
    h.update(b"ginvariance checkpoint, format 2\n")
    h.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode("ascii"))
    h.update(b"\n")
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        h.update(key.encode("utf-8", "surrogateescape"))
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

    ``path`` ends in ``.safetensors`` (its folder is created); weights that share memory are
    stored twice; ``meta`` is JSON-serializable (the trainer stores config, epoch, history,
    metrics and the model description), and versions are added to it.
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
                value = torch.as_tensor(value)
                tensors[f"{OPTIM_PREFIX}{index}.{slot}"] = value.detach().cpu().contiguous().clone()
        meta["optimizer"] = {
            "class": type(optimizer).__name__,
            "param_groups": state["param_groups"],
        }
    meta["versions"] = versions()
    meta["format"] = FORMAT_VERSION
    try:
        to_json(meta)
        header = json_roundtrip(meta, sort_keys=True)  # as a reader will see it
        header["sha256"] = _digest(tensors, header)
        blob = save(tensors, metadata={"ginvariance": json.dumps(header, sort_keys=True)})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"cannot serialize checkpoint {str(path)!r}: {exc}; pass JSON-serializable metadata"
        ) from None
    atomic_write_bytes(path, blob)
    atomic_write_json(sidecar_path(path), meta)


def _corrupt(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {str(path)!r} {what}; train again or restore it")


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors and the header metadata of a safetensors file, its layout checked."""
    from safetensors.torch import load

    if not path.exists():
        raise CheckpointError(f"no checkpoint at {str(path)!r}; check the path")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a file; give a .safetensors file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r} ({exc.strerror or exc}); check its permissions"
        ) from None
    unreadable = "is not a readable safetensors file ({}); it is corrupt or truncated"
    try:
        tensors = load(data)  # checks the header, dtypes, shapes and that offsets tile the data
    except Exception as exc:  # safetensors raises several types for corrupt files
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise _corrupt(path, unreadable.format(reason)) from None
    size = int.from_bytes(data[:8], "little")  # valid: safetensors has read the header
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError:
        header = None
    metadata = header.get("__metadata__") or {} if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _corrupt(path, unreadable.format("its header is not safetensors JSON"))
    return tensors, metadata


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read and verify a checkpoint, the one reader of ``.safetensors`` files.

    Returns every tensor of the file (weights and ``optim.state.*``) and the verified metadata
    without its ``sha256`` (``{}`` for a safetensors file that ginv did not write). Raises
    :class:`CheckpointError` for a missing or unreadable file, a broken layout, a checksum that
    does not match, an older format, or metadata values ginv never writes.
    """
    path = Path(path)
    tensors, metadata = _read_safetensors(path)
    raw = metadata.get("ginvariance")
    if raw is None:
        return tensors, {}
    try:
        meta = json.loads(raw)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise _corrupt(path, "has corrupt metadata (not a JSON object)")
    version = meta.get("format", 1)
    if version != FORMAT_VERSION:
        if version == 1:
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written by an older ginvariance (checkpoint "
                "format 1, whose checksum does not cover its metadata); train it again with "
                "this version"
            )
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format {version!r}, which this ginvariance cannot "
            "read; use the version that wrote it, or train it again"
        )
    digest = meta.pop("sha256", None)
    if not isinstance(digest, str) or digest != _digest(tensors, meta):
        raise _corrupt(
            path,
            "does not match its checksum (its tensors or its metadata were changed after it "
            "was written)",
        )
    _check_meta(path, meta, tensors)
    return tensors, meta


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The verified metadata of a checkpoint (:func:`read_checkpoint`)."""
    return read_checkpoint(path)[1]


def _check_meta(path: Path, meta: dict[str, Any], tensors: Mapping[str, Tensor]) -> None:
    """Refuse metadata values that ginv never writes, before anything is built from them."""

    def bad(what: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {str(path)!r} has {what} in its metadata, which ginv never writes; "
            "train it again"
        )

    config: TrainConfig | None = None
    if "config" in meta:
        try:
            config = TrainConfig.from_dict(meta["config"])
            config.validate()
        except Exception as exc:
            reason = " ".join(str(exc).split())[:120] or type(exc).__name__
            raise bad(f"an invalid training configuration ({reason})") from None
    if "epoch" in meta:
        epoch = meta["epoch"]
        if not _is_int(epoch) or epoch < 0 or (config is not None and epoch > config.epochs):
            raise bad(f"epoch {epoch!r}")
    if "history" in meta and (
        not isinstance(meta["history"], list)
        or not all(isinstance(h, dict) for h in meta["history"])
    ):
        raise bad("a history that is not a list of epochs")
    if "metrics" in meta and (
        not isinstance(meta["metrics"], dict)
        or not all(_is_number(v) for v in meta["metrics"].values())
    ):
        raise bad("metrics that are not numbers")
    if "name" in meta and not isinstance(meta["name"], str):
        raise bad(f"name {meta['name']!r}")
    info = meta.get("optimizer")
    if info is not None and (
        not isinstance(info, dict)
        or not isinstance(info.get("param_groups"), list)
        or not all(
            isinstance(g, dict)
            and isinstance(g.get("params"), list)
            and all(_is_int(i) for i in g["params"])
            for g in info["param_groups"]
        )
    ):
        raise bad("optimizer state of another shape")
    desc = meta.get("model")
    if desc is None:
        return
    if not isinstance(desc, dict):
        raise bad("a model description that is not an object")
    shape, classes = desc.get("sample_shape"), desc.get("num_classes")
    if not isinstance(desc.get("name"), str):
        raise bad(f"model name {desc.get('name')!r}")
    if not (desc.get("group") is None or isinstance(desc.get("group"), str)):
        raise bad(f"group {desc.get('group')!r}")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 3
        or not all(_is_int(s) and s >= 1 for s in shape)
    ):
        raise bad(f"sample_shape {shape!r}")
    if not _is_int(classes) or classes < 2:
        raise bad(f"num_classes {classes!r}")
    revision, current = desc.get("revision", 1), layout_revision(desc["name"])
    if revision != current:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {desc['name']} model of layout revision "
            f"{revision!r}, whose layers differ from those this ginvariance builds (revision "
            f"{current}); train it again"
        )
    # Every built-in model has at least prod(sample_shape) and num_classes parameters; a
    # description beyond the weights in the file would only allocate a model that cannot
    # match them.
    weights = sum(t.numel() for k, t in tensors.items() if not k.startswith(OPTIM_PREFIX))
    if math.prod(shape) > weights or classes > weights:
        raise bad(
            f"a model description (sample_shape {shape}, num_classes {classes}) far larger "
            f"than its {weights} weights"
        )


def _split(tensors: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    weights = {k: v for k, v in tensors.items() if not k.startswith(OPTIM_PREFIX)}
    optim = {k: v for k, v in tensors.items() if k.startswith(OPTIM_PREFIX)}
    return weights, optim


def _load_into(path: Path, model: nn.Module, weights: Mapping[str, Tensor]) -> nn.Module:
    """Copy ``weights`` into ``model``, refusing missing or extra keys and other shapes."""
    _check_fits(path, model.state_dict(), weights)
    with torch.no_grad():
        model.load_state_dict(dict(weights), strict=True)
    return model


def _check_fits(path: Path, expected: Mapping[str, Tensor], weights: Mapping[str, Tensor]) -> None:
    """Refuse ``weights`` whose keys, shapes or kinds of dtype differ from ``expected``."""
    parts = [
        f"{word} {', '.join(keys[:4])}" + (" ..." if len(keys) > 4 else "")
        for word, keys in (
            ("missing", sorted(set(expected) - set(weights))),
            ("unexpected", sorted(set(weights) - set(expected))),
        )
        if keys
    ]
    if parts:
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
    """Load the ``.safetensors`` checkpoint ``path`` written by :func:`save_checkpoint`:
    ``(model, meta)``.

    ``model=None`` rebuilds the model from the checkpoint's configuration and model
    description. A ``config`` must equal the checkpoint's (but for ``epochs``, which a resumed
    run may raise), else :class:`CheckpointError`; an ``optimizer`` gets its state back.
    """
    path = Path(path)
    if path.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt"):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a pickle file; training checkpoints are .safetensors "
            "(use load_weights for a .pt state dict)"
        )
    tensors, meta = read_checkpoint(path)
    stored_config = TrainConfig.from_dict(meta["config"]) if "config" in meta else None
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
    weights, optim = _split(tensors)
    if model is None:
        model = _rebuild(path, meta, stored_config, weights)
    _load_into(path, model, weights)
    if optimizer is not None:
        _load_optimizer(path, optimizer, optim, meta)
    return model, meta


def _rebuild(
    path: Path, meta: dict, config: TrainConfig | None, weights: Mapping[str, Tensor]
) -> nn.Module:
    """Build the model that ``meta`` describes, after checking on the ``meta`` device (no
    memory) that it has exactly the shapes of ``weights``."""
    desc = meta.get("model")
    if config is None or not isinstance(desc, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not describe its model; pass the model to load into"
        )
    from ginvariance.models import build_seeded_model

    def build() -> nn.Module:
        return build_seeded_model(
            desc["name"],
            tuple(desc["sample_shape"]),
            desc["num_classes"],
            group=desc.get("group"),
            dtype=config.dtype,
            seed=config.seed,
        )

    try:
        with torch.device("meta"):
            skeleton = build()
    except GinvarianceError:
        raise
    except Exception:  # a model that cannot be built on "meta": the size checks stand
        return build()
    try:
        _check_fits(path, skeleton.state_dict(), weights)
    except CheckpointError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} describes a model ({desc['name']}, sample_shape "
            f"{desc['sample_shape']}, num_classes {desc['num_classes']}) whose weights "
            f"differ from those in the file ({str(exc).split(': ', 1)[-1][:80]}); "
            "train it again"
        ) from None
    return build()


def load_weights(path: str | Path, model: nn.Module) -> nn.Module:
    """Load weights into ``model`` from a ``.safetensors`` file or a ``.pt``/``.pth`` state dict.

    ``.safetensors`` goes through :func:`read_checkpoint` (another program's file is checked
    for its layout only; optimizer entries are ignored); ``.pt``/``.pth`` through
    ``torch.load(weights_only=True)``, which never runs code from the file. Anything else, an
    unsafe or corrupt file, or weights that do not fit ``model`` raise :class:`CheckpointError`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        tensors, _ = read_checkpoint(path)
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
        if isinstance(obj, Mapping):  # a training script's dict that holds the state dict
            inner = [obj[k] for k in ("state_dict", "model_state_dict", "model") if k in obj]
            obj = next((v for v in inner if isinstance(v, Mapping)), obj)
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
