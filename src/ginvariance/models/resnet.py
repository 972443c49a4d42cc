"""A ResNet-18-style classifier for small images, in plain torch (the CIFAR layout of He et al.
2016, described in the README). Batch norm makes it depend on its mode: measure it in eval mode
(``measure`` does).
"""

from __future__ import annotations

import torch
from torch import nn

from ginvariance.errors import ModelError


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and a residual connection.

    ``(B, c_in, H, W)`` → ``(B, c_out, ⌈H/s⌉, ⌈W/s⌉)``; the shortcut is a 1×1 convolution
    with batch norm when the shape changes, the identity otherwise.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-18 layout (2, 2, 2, 2 basic blocks) for ``(C, H, W)`` images.

    Parameters
    ----------
    sample_shape:
        ``(C, H, W)`` or ``(H, W)`` (one channel).
    num_classes:
        ``K``; the model maps ``(B, *sample_shape)`` → ``(B, K)`` logits.
    width:
        Channels of the first stage ``w`` (64 for ResNet-18).
    blocks:
        Basic blocks per stage.
    """

    def __init__(
        self,
        sample_shape: tuple[int, ...],
        num_classes: int,
        width: int = 64,
        blocks: tuple[int, ...] = (2, 2, 2, 2),
    ) -> None:
        super().__init__()
        shape = tuple(sample_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3:
            raise ModelError(
                f"'resnet' takes images (C, H, W) or (H, W), got shape {tuple(sample_shape)}; "
                "use 'cnn' or 'mlp' for signals"
            )
        self.sample_shape = tuple(sample_shape)
        self.width = width
        channels = shape[0]
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        c_in = width
        for i, count in enumerate(blocks):
            c_out = width * 2**i
            for j in range(count):
                stages.append(BasicBlock(c_in, c_out, stride=2 if i > 0 and j == 0 else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and len(self.sample_shape) == 2:
            x = x.unsqueeze(1)
        features = self.pool(self.stages(self.stem(x)))
        return self.head(features.flatten(1))


__all__ = ["BasicBlock", "ResNet"]
