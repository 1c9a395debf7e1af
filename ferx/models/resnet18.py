"""torchvision's ResNet-18, adapted to 48x48 grayscale faces."""

from __future__ import annotations

import torch
from torch import nn

from ferx.models.config import ModelConfig
from ferx.models.layers import Normalize, Pointwise


class ResNet18(nn.Module):
    """torchvision's resnet18, built by torchvision, adapted to 1x48x48 faces as the FER
    reports that train it do: a 3x3 stride-1 first convolution with one input channel and no
    max-pool, so the four stages see 48, 24, 12 and 6 pixels; 7 classes. Its `fc` is our
    `head`. The 1x1 downsampling convolutions become Pointwise (same weights and result): the
    layout-safe GEMM the mini-Xception uses, for the oneDNN reason given there."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        from torchvision.models import resnet18  # ~0.5 s of imports, only for this network

        self.config = config = config or ModelConfig(arch="resnet18")
        self.normalize = Normalize(config.normalize, config.mean, config.std)
        body = resnet18(weights=None, num_classes=config.num_classes)
        body.conv1 = nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
        body.maxpool = nn.Identity()
        for stage in (body.layer2, body.layer3, body.layer4):
            conv = stage[0].downsample[0]
            stage[0].downsample[0] = Pointwise(conv.in_channels, conv.out_channels, conv.stride[0])
        self.head, body.fc = body.fc, nn.Identity()
        self.body = body

    @property
    def cam_layer(self) -> nn.Module:
        return self.body.layer4  # the last residual stage: 512 maps at 6x6

    @property
    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The stages whose outputs the activation figures show: the stem, then layer1-4."""
        body = self.body
        return [("stem", body.relu)] + [
            (f"layer{i}", getattr(body, f"layer{i}")) for i in range(1, 5)
        ]

    @property
    def top(self) -> nn.Module:
        return self.body.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.normalize(x)))
