"""The networks: the mini-Xception of Arriaga, Ploeger & Valdenegro (2017), the course
competition's baseline CNN and torchvision's ResNet-18, all taking raw 48x48 faces.

Every network has the same four handles the stages use: `normalize` (so a checkpoint carries
its preprocessing), `head` (the final map to the 7 logits: what `improve.retrain: head`
re-trains), `top` (the deepest layers below the head: `improve.retrain: top` re-trains them
and the head) and `cam_layer` (the feature block whose maps Grad-CAM weighs).

mini_xception:

stem:    2 x [3x3 conv (no bias, valid) -> BN -> ReLU], 8 filters each
modules: for 16, 32, 64, 128 filters:
           shortcut = 1x1 conv stride 2 (no bias) -> BN
           main     = sepconv 3x3 -> BN -> ReLU -> sepconv 3x3 -> BN -> maxpool 3x3 s2 p1
           out      = main + shortcut (no ReLU after the add)
head:    3x3 conv to 7 channels (bias) -> global average pooling -> logits

56,951 trainable parameters at the paper's widths. The model takes raw pixels (0..255, shape
N x 1 x 48 x 48) and normalises them itself, so a checkpoint carries its preprocessing.

baseline_cnn: the course competition's baseline, spelled out in BaselineCNN.
resnet18: torchvision's resnet18 adapted to 1x48x48 faces (3x3 stride-1 first convolution, no
max-pool, 7 classes), see ResNet18.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise

import torch
from torch import nn

from ferx.labels import ARCHITECTURES, NUM_CLASSES


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "mini_xception"
    # mini_xception only: the residual modules' and the stem's filters
    widths: tuple[int, ...] = (16, 32, 64, 128)
    stem_width: int = 8
    num_classes: int = NUM_CLASSES
    normalize: str = "per_image"  # per_image | dataset | unit
    # dataset mode only: the training set's pixel mean and std (0..255 scale)
    mean: float = 0.0
    std: float = 255.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        # checkpoints written before there was a choice of network are mini-Xceptions
        return cls(**{"arch": "mini_xception", **data, "widths": tuple(data["widths"])})


class Normalize(nn.Module):
    def __init__(self, mode: str, mean: float, std: float) -> None:
        super().__init__()
        if mode not in ("per_image", "dataset", "unit"):
            raise ValueError(f"unknown normalisation {mode!r}")
        self.mode = mode
        self.mean, self.std = float(mean), float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "per_image":
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True)
            return (x - mean) / (std + 1.0)  # +1 grey level keeps flat images finite
        if self.mode == "dataset":
            return (x - self.mean) / self.std
        return x / 255.0


class Pointwise(nn.Conv2d):
    """A 1x1 convolution (no bias), computed as one matrix product.

    Same parameters and state_dict as nn.Conv2d(c_in, c_out, 1, stride), same result. Two
    reasons, both measured on the 2-core CPU this project targets: oneDNN's channels_last 1x1
    convolution corrupted the heap in backward for batch sizes not divisible by 8 (a segfault
    mid-epoch, on the ragged last batch), and its NCHW 1x1 kernel is slow at these channel
    counts (21 ms vs 12 ms for a matmul, forward+backward at 64x16x44x44). As a GEMM over NHWC
    memory the 1x1 convolution is safe and lets the whole model run channels_last: 1.35x
    NCHW's training images/s at batch 32 on the default network (BENCHMARKS.md,
    bench/bench_train.py).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if self.stride[0] > 1:
            x = x[:, :, :: self.stride[0], :: self.stride[1]]
        weight = self.weight.view(self.out_channels, self.in_channels)
        if nhwc:
            # NHWC in memory: one (N*H*W, C) x (C, O) GEMM, output stays channels_last.
            return torch.matmul(x.permute(0, 2, 3, 1), weight.t()).permute(0, 3, 1, 2)
        n, c, h, w = x.shape
        return torch.matmul(weight, x.reshape(n, c, h * w)).view(n, self.out_channels, h, w)


class SeparableConv(nn.Sequential):
    """Keras SeparableConv2D: depthwise 3x3 (same padding) then pointwise 1x1, no biases."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
            Pointwise(c_in, c_out),
        )


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

    @property
    def cam_layer(self) -> nn.Module:
        # Grad-CAM at the second-to-last residual module (64 maps at 6x6 at the paper's
        # widths), not the last (128 maps at 3x3): a 3x3 grid has 16-pixel cells, too coarse
        # to tell the eyes from the mouth on a 48-pixel face; 8-pixel cells can. With one
        # module only (a custom width list) there is no choice.
        blocks = self.residual_modules
        return blocks[-2] if len(blocks) > 1 else blocks[-1]

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
    def top(self) -> nn.Module:
        return self.classifier  # the fully connected layers: 99% of its parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.classifier(self.features(self.normalize(x))))


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
    def top(self) -> nn.Module:
        return self.body.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.normalize(x)))


NETWORKS: dict[str, type[nn.Module]] = {
    "mini_xception": MiniXception,
    "baseline_cnn": BaselineCNN,
    "resnet18": ResNet18,
}
assert tuple(NETWORKS) == ARCHITECTURES  # the names params.yaml accepts, spelled once


def build_model(config: ModelConfig) -> nn.Module:
    """A fresh network of `config.arch` (randomly initialised by torch's current seed)."""
    if config.arch not in NETWORKS:
        raise ValueError(f"unknown architecture {config.arch!r}; known: {', '.join(NETWORKS)}")
    return NETWORKS[config.arch](config)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    total = sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    if not trainable_only:  # the Keras total also counts BatchNorm's running mean and variance
        total += sum(
            b.numel() for name, b in model.named_buffers() if not name.endswith("batches_tracked")
        )
    return total
