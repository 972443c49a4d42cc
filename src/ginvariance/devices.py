"""Where a model and its data live: device names, moving batches, precision, memory budgets.

Measures and training run on the device of the model's parameters (:func:`model_device`) and
move every batch there (:func:`move`); README, "Devices", says what a user sees.
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from ginvariance.errors import DeviceError

#: The names ``--device`` accepts (``cuda:N`` for any ``N``).
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
#: The names ``--precision`` accepts and the autocast dtype of each (``None``: no autocast;
#: every measure is still reduced in float64).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
#: Share of a CUDA device's free memory that one chunk of work may use.
CUDA_BUDGET_SHARE = 0.25
#: The memory budget of one chunk on CPU and MPS (bytes).
HOST_BUDGET = 256 * 2**20

_CUDA_N = re.compile(r"^cuda:(\d+)$")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """The ``torch.device`` for ``name``; :class:`DeviceError` if unknown or unavailable.

    ``name`` is one of :data:`DEVICE_NAMES` or a ``torch.device``; ``"auto"`` or ``None`` is
    CUDA device 0 when CUDA is available, else the CPU.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if not isinstance(name, str):
        raise DeviceError(f"device must be a name such as 'cpu' or 'cuda:0', got {name!r}")
    text = name.strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise DeviceError(
                "--device mps is not available here (no Apple GPU, or this torch was built "
                "without MPS); use --device cpu or auto"
            )
        return torch.device("mps")
    match = _CUDA_N.match(text)
    if text == "cuda" or match:
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {name} is not available: this torch sees no CUDA GPU "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
                "use --device cpu or auto"
            )
        index = int(match.group(1)) if match else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(
                f"--device {name}: this machine has {count} CUDA device(s), cuda:0..cuda:"
                f"{count - 1}; pick one of those"
            )
        return torch.device("cuda", index)
    raise DeviceError(
        f"unknown device {name!r}; choose one of: {', '.join(DEVICE_NAMES)} (N a GPU number)"
    )


def model_device(model: Any) -> torch.device:
    """The one device that holds ``model``'s parameters and buffers (CPU when it has none);
    :class:`DeviceError` when they sit on several (where would the data go?)."""
    tensors = [*model.parameters(), *model.buffers()] if isinstance(model, nn.Module) else []
    devices = {t.device for t in tensors} or {torch.device("cpu")}
    if len(devices) > 1:
        names = ", ".join(sorted(str(d) for d in devices))
        raise DeviceError(
            f"the model's parameters sit on several devices ({names}); move it to one with "
            "model.to(device) before measuring (model-parallel models are not supported)"
        )
    return devices.pop()


def move(x: Any, device: torch.device) -> Any:
    """``x`` (a tensor, or a tuple / list / dict of them; others unchanged) on ``device``;
    non-blocking only from pinned host memory to CUDA, a no-op for a tensor already there."""
    if isinstance(x, torch.Tensor):
        if x.device == device:
            return x
        pinned = device.type == "cuda" and x.device.type == "cpu" and x.is_pinned()
        return x.to(device, non_blocking=pinned)
    if isinstance(x, tuple | list):
        return type(x)(move(v, device) for v in x)
    if isinstance(x, dict):
        return {k: move(v, device) for k, v in x.items()}
    return x


def check_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (``None`` for ``fp32``);
    :class:`DeviceError` for an unknown name or one that a small convolution cannot run."""
    if precision not in PRECISIONS:
        raise DeviceError(
            f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}"
        )
    dtype = PRECISIONS[precision]
    if dtype is None:
        return None
    if not torch.amp.is_autocast_available(device.type):
        raise DeviceError(
            f"--precision {precision} needs torch.autocast, which this torch does not "
            f"support on {device.type}; use --precision fp32"
        )
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise DeviceError(
            f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
            "use --precision fp16 or fp32"
        )
    try:
        with torch.autocast(device.type, dtype=dtype):
            probe = nn.functional.conv2d(
                torch.ones(1, 1, 3, 3, device=device), torch.ones(1, 1, 2, 2, device=device)
            )
        if probe.dtype != dtype:
            raise RuntimeError(f"autocast produced {probe.dtype}")
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:120]
        raise DeviceError(
            f"--precision {precision} does not run on {device} under torch {torch.__version__} "
            f"({reason}); use --precision fp32"
        ) from None
    return dtype


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """``torch.autocast(device.type, dtype)``, or a context that does nothing for ``None``."""
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def memory_budget(device: torch.device, default: int = HOST_BUDGET) -> int:
    """Bytes one chunk of work may use on ``device``: on CUDA :data:`CUDA_BUDGET_SHARE` of the
    memory free now, at least ``default``; elsewhere ``default``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(default, int(free * CUDA_BUDGET_SHARE))
    return default


def deterministic(device: torch.device) -> None:
    """Ask for deterministic kernels on CUDA (cuDNN without autotuning, a fixed cuBLAS
    workspace; operations without one warn instead of failing). On CPU every kernel
    ginvariance uses is already deterministic for a fixed thread count."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


__all__ = [
    "DEVICE_NAMES",
    "PRECISIONS",
    "autocast",
    "check_precision",
    "deterministic",
    "memory_budget",
    "model_device",
    "move",
    "resolve_device",
]
