"""A model of your own, as `ginv measure --model examples/own_model/model.py:build` loads it.

`build` may declare `sample_shape` (one input's shape, no batch axis: here (1, 8, 8)) and
`num_classes`; ginv passes the ones it declares. BatchNorm and Dropout are fine: ginv measures
in eval mode and restores each submodule's mode afterwards.
"""

from __future__ import annotations

from torch import nn


def build(sample_shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 10) -> nn.Module:
    channels, height, width = sample_shape
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(32 * (height // 2) * (width // 2), num_classes),
    )
