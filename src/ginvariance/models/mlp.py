"""A multi-layer perceptron: the least structured baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ginvariance.models.cnn import _check


class MLP(nn.Module):
    """Flatten → linear ``width`` → ReLU → linear ``width`` → ReLU → linear ``K``.

    Parameters
    ----------
    sample_shape:
        Shape ``S`` of one input without the batch axis, e.g. ``(1, 8, 8)`` or ``(1, 40)``.
    num_classes:
        Number of classes ``K``.
    width:
        Hidden units per layer (default 256).

    Maps ``(B, *S)`` → ``(B, K)`` logits.

    Examples
    --------
    >>> import torch
    >>> MLP((1, 8, 8), 10)(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3, 10])
    """

    def __init__(self, sample_shape: Sequence[int], num_classes: int, width: int = 256) -> None:
        super().__init__()
        self.sample_shape = tuple(int(s) for s in sample_shape)
        features = math.prod(self.sample_shape)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(features, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        _check(self, x, self.sample_shape)
        return self.net(x)
