"""Train the model of `model.py` in plain PyTorch and write what `ginv measure` reads.

    python examples/own_model/train.py

writes, beside this file:

- `test.npz`: the digits test split, `x` float32 `(N, 1, 8, 8)` in [0, 1], `y` int64 `(N,)`;
- `model.safetensors`: the trained weights (a plain state dict).

Training: 20 epochs of Adam on the digits training split, each image turned by a random
multiple of 90° (augmentation: the invariance is *learned*). Seeded: the same weights on every
run of the same machine and library versions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from model import build  # noqa: E402

from ginvariance.data import load_dataset  # noqa: E402


def main(epochs: int = 20, seed: int = 0) -> None:
    torch.manual_seed(seed)
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    np.savez(HERE / "test.npz", x=test.x.numpy().astype(np.float32), y=test.y.numpy())
    model = build(tuple(train.x.shape[1:]), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train.x), generator=generator)
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            x, y = train.x[idx], train.y[idx]
            turns = torch.randint(0, 4, (len(idx),), generator=generator)
            x = torch.cat([torch.rot90(x[turns == k], k, dims=(-2, -1)) for k in range(4)])
            y = torch.cat([y[turns == k] for k in range(4)])
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(test.x).argmax(1) == test.y).float().mean().item()
    save_file(model.state_dict(), str(HERE / "model.safetensors"))
    print(f"test accuracy {accuracy:.3f}; wrote model.safetensors and test.npz in {HERE}")


if __name__ == "__main__":
    main()
