"""Time tmeasures' normalized-variance invariance of the final logits; print one JSON line.

Runs inside tmeasures' own virtual environment (made by ``benchmarks/bench.py``), so it
imports only torch, numpy, safetensors and tmeasures — never ``ginvariance``. The parent
writes to FOLDER:

* ``config.json``: ``layers`` (a plain conv net as a list of layers), ``threads``,
  ``batch_size``, ``repeats``, ``order`` (4: the group c4);
* ``model.safetensors``: the weights of that ``nn.Sequential``;
* ``data.npz``: ``x`` ``(N, C, H, W)`` float32.

The group is given to tmeasures as an exact transformation set: ``torch.rot90`` by
``k·90°``, ``k = 0..3`` (tmeasures' own rotation treats its parameter in degrees as
radians and interpolates with ``grid_sample``). The measure is
``tm.pytorch.NormalizedVarianceInvariance()`` on one activation, the logits:
per logit unit, ``mean_x std_g z / mean_g std_x z``. The first call is untimed (its result
is returned for the parent to check against its own computation); then ``repeats`` timed
calls with the parent's batch size (the suite's images per chunk) and as many with
tmeasures' default batch size, 32, interleaved. For reference, a bare forward over the
orbit in the same process is timed too.

Usage::

    .../tmeasures-venv/bin/python benchmarks/tmeasures_worker.py FOLDER
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import tmeasures as tm
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

#: tmeasures' own default batch size (``PyTorchMeasureOptions(batch_size=32)``).
DEFAULT_BATCH = 32


def build(layers: list[dict]) -> nn.Sequential:
    """The ``nn.Sequential`` described by the parent's layer list."""
    modules: list[nn.Module] = []
    for layer in layers:
        kind = layer["type"]
        if kind == "conv2d":
            k, p = tuple(layer["kernel"]), tuple(layer["padding"])
            modules.append(nn.Conv2d(layer["in"], layer["out"], k, padding=p))
        elif kind == "relu":
            modules.append(nn.ReLU())
        elif kind == "maxpool2d":
            modules.append(nn.MaxPool2d(layer["kernel"]))
        elif kind == "avgpool2d":
            modules.append(nn.AvgPool2d(layer["kernel"]))
        elif kind == "flatten":
            modules.append(nn.Flatten())
        elif kind == "linear":
            modules.append(nn.Linear(layer["in"], layer["out"]))
        else:
            raise ValueError(f"unknown layer type {kind!r}")
    return nn.Sequential(*modules)


class Rot90(tm.pytorch.PyTorchTransformation):
    """Exact rotation by ``k·90°`` of a ``(C, H, W)`` sample."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rot90(x, self.k, dims=(-2, -1))

    def parameters(self) -> torch.Tensor:  # type: ignore[override]
        return torch.tensor([float(self.k)])

    def inverse(self) -> Rot90:
        return Rot90((-self.k) % 4)


class C4(tm.pytorch.PyTorchTransformationSet):
    """The four exact rotations by multiples of 90°."""

    def __init__(self) -> None:
        super().__init__([Rot90(k) for k in range(4)])

    def id(self) -> str:
        return "c4-rot90"

    def valid_input(self, shape: tuple[int, ...]) -> bool:
        return len(shape) >= 2 and shape[-1] == shape[-2]

    def copy(self) -> C4:
        return C4()


class Logits(tm.pytorch.ActivationsModule):
    """Exposes one activation to tmeasures: the model's final logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def activation_names(self) -> list[str]:
        return ["logits"]

    def forward_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.net(x)]


class Samples(Dataset):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def main(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text())
    torch.set_num_threads(int(config["threads"]))
    logging.getLogger("tmeasures").setLevel(logging.ERROR)
    net = build(config["layers"])
    net.load_state_dict(load_file(str(folder / "model.safetensors")))
    net.eval()
    x = torch.from_numpy(np.load(folder / "data.npz")["x"])
    model, data, group = Logits(net).eval(), Samples(x), C4()
    measure = tm.pytorch.NormalizedVarianceInvariance()
    batch = int(config["batch_size"])

    def options(batch_size: int) -> tm.pytorch.PyTorchMeasureOptions:
        return tm.pytorch.PyTorchMeasureOptions(batch_size=batch_size, num_workers=0, verbose=False)

    result = measure.eval(data, group, model, options(batch))  # untimed: checked by the parent
    per_unit = result.layers[0].double().flatten()
    times: dict[int, list[float]] = {batch: [], DEFAULT_BATCH: []}
    for _ in range(int(config["repeats"])):
        for size in times:
            began = time.perf_counter()
            measure.eval(data, group, model, options(size))
            times[size].append(time.perf_counter() - began)

    # the floor in this process: one forward over the orbit, in the same batch size
    orbit = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
    forward = []
    with torch.no_grad():
        for _ in range(max(3, int(config["repeats"]))):
            began = time.perf_counter()
            for s in range(0, orbit.shape[0], batch):
                net(orbit[s : s + batch])
            forward.append(time.perf_counter() - began)
    return {
        "version": importlib.metadata.version("tmeasures"),
        "measure": repr(measure),
        "batch_size": batch,
        "per_unit": per_unit.tolist(),
        "value": float(per_unit.mean()),
        "times_s": times[batch],
        "median_s": statistics.median(times[batch]),
        "default_batch_size": DEFAULT_BATCH,
        "default_batch_median_s": statistics.median(times[DEFAULT_BATCH]),
        "forward_median_s": statistics.median(forward),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
