"""The mini-Xception of Arriaga, Ploeger & Valdenegro (2017), taking raw 48x48 faces.

stem:    2 x [3x3 conv (no bias, valid) -> BN -> ReLU], 8 filters each
modules: for 16, 32, 64, 128 filters:
           shortcut = 1x1 conv stride 2 (no bias) -> BN
           main     = sepconv 3x3 -> BN -> ReLU -> sepconv 3x3 -> BN -> maxpool 3x3 s2 p1
           out      = main + shortcut (no ReLU after the add)
         (train.model.attention: se or eca scales main's channels after its max-pool)
head:    3x3 conv to 7 channels (bias) -> global average pooling -> logits

56,951 trainable parameters at the paper's widths; the default trains it at twice those
widths with ECA (train.model.widths and .attention: 199,687 parameters). The model takes raw
pixels (0..255, shape N x 1 x 48 x 48) and normalises them itself, so a checkpoint carries its
preprocessing.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from ferx.models.config import ModelConfig
from ferx.models.layers import ATTENTION, Normalize, Pointwise, SeparableConv


class ResidualModule(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(Pointwise(c_in, c_out, stride=2), nn.BatchNorm2d(c_out))
        self.main = nn.Sequential(
            SeparableConv(c_in, c_out),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            SeparableConv(c_out, c_out),
            nn.BatchNorm2d(c_out),
            nn.MaxPool2d(3, stride=2, padding=1),
        )

    def add_attention(self, kind: str) -> None:
        """Scale the main branch's channels after its max-pool (se or eca: layers.ATTENTION)."""
        self.main.append(ATTENTION[kind](self.main[-2].num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class MiniXception(nn.Module):
    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig()
        stem = config.stem_width
        self.normalize = Normalize(config.normalize, config.mean, config.std)
        self.stem = nn.Sequential(
            nn.Conv2d(1, stem, 3, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem, stem, 3, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
        )
        widths = (stem, *config.widths)
        self.residual_modules = nn.Sequential(*(ResidualModule(a, b) for a, b in pairwise(widths)))
        # the classifier: a 3x3 convolution to one map per class, then global average pooling
        self.head = nn.Conv2d(widths[-1], config.num_classes, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        if config.attention != "none":
            # built last: every other layer draws the initial weights it draws without it
            for module in self.residual_modules:
                module.add_attention(config.attention)

    @property
    def cam_layer(self) -> nn.Module:
        # Grad-CAM at the second-to-last residual module (64 maps at 6x6 at the paper's
        # widths), not the last (128 maps at 3x3): a 3x3 grid has 16-pixel cells, too coarse
        # to tell the eyes from the mouth on a 48-pixel face; 8-pixel cells can. With one
        # module only (a custom width list) there is no choice.
        blocks = self.residual_modules
        return blocks[-2] if len(blocks) > 1 else blocks[-1]

    @property
    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The stages whose outputs the activation figures show, input side first."""
        modules = [(f"residual {i + 1}", m) for i, m in enumerate(self.residual_modules)]
        return [("stem", self.stem), *modules]

    @property
    def top(self) -> nn.Module:
        # the last two residual modules (11x11 -> 6x6 -> 3x3 maps): about half the FLOPs, but
        # the cheap half on a CPU, where the large early maps dominate the time (an improve
        # epoch of top: 44 s, of all layers: 65 s, 2026-12-01)
        return self.residual_modules[-2:]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual_modules(self.stem(self.normalize(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.head(self.features(x))).flatten(1)
