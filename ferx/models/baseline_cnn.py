"""The course competition's baseline CNN."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from ferx.models.config import ModelConfig
from ferx.models.layers import Normalize


class BaselineCNN(nn.Module):
    """The course competition's baseline: 3x3 convolutions (padding 1) in three blocks, each
    ending in a 2x2 max-pool (48 -> 24 -> 12 -> 6), then five fully connected layers halving
    from 256*6*6 = 9216 inputs: 2304, 1152, 576, 288, 144, and the 7 logits. The ReLUs are
    where the competition puts them (none between the first two convolutions). 25.9 M
    parameters, nearly all in the first linear layer."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModelConfig(arch="baseline_cnn")
        self.normalize = Normalize(config.normalize, config.mean, config.std)
        relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.Conv2d(8, 32, 3, padding=1),
            relu(),
            nn.Conv2d(32, 64, 3, padding=1),
            relu(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.Conv2d(128, 128, 3, padding=1),
            relu(),
            nn.MaxPool2d(2),
            nn.Conv2d(128, 256, 3, padding=1),
            relu(),
            nn.Conv2d(256, 256, 3, padding=1),
            relu(),  # Grad-CAM reads this: the last convolution's 256 maps at 12x12
            nn.MaxPool2d(2),
        )
        sizes = (256 * 6 * 6, 2304, 1152, 576, 288, 144)
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in pairwise(sizes):
            layers += [nn.Linear(a, b), relu()]
        self.classifier = nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-1], config.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation, as torchvision's VGG does. With torch's default (uniform, a third
        of He's variance) the signal shrinks through these 13 layers with no normalisation
        until what reaches the head barely depends on the face (~3,000x less spread). Hidden
        layers keep their variance under ReLU; the head starts near zero so the first logits
        are near uniform. This alone does not make it learn FER2013 under the default recipe
        (see the README's Architectures section)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.head.weight, std=0.01)

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-2]

    @property
    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The stages whose outputs the activation figures show: each ReLU after a
        convolution (48, 48, 24, 12 and 12 pixels)."""
        relus = [m for m in self.features if isinstance(m, nn.ReLU)]
        return [(f"relu {i + 1}", m) for i, m in enumerate(relus)]

    @property
    def top(self) -> nn.Module:
        return self.classifier  # the fully connected layers: 99% of its parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.classifier(self.features(self.normalize(x))))
