"""Building blocks the networks share: the pixel normalisation every network starts with, the
1x1 convolution as a GEMM (layout-safe and fast on CPU), the Keras separable convolution, and
the channel attention blocks (squeeze-and-excitation, ECA)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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
    NCHW's training images/s at batch 32 on the default widths (BENCHMARKS.md,
    bench/bench_train.py).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.view(self.out_channels, self.in_channels)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # NHWC in memory: one (N*H*W, C) x (C, O) GEMM, output stays channels_last. The
            # stride is taken on the NHWC view, so that its backward (zeros, then the gradient
            # scattered in) is channels_last too: sliced in NCHW terms it came back NCHW, and
            # every residual module's output gradient (shortcut + main) with it, which
            # max-pool and BatchNorm backward then copied back to channels_last at every step:
            # 1.12-1.24x training images/s in fp32, 1.23-1.24x in bf16 (BENCHMARKS.md).
            nhwc = x.permute(0, 2, 3, 1)[:, :: self.stride[0], :: self.stride[1], :]
            return torch.matmul(nhwc, weight.t()).permute(0, 3, 1, 2)
        if self.stride[0] > 1:
            x = x[:, :, :: self.stride[0], :: self.stride[1]]
        n, c, h, w = x.shape
        return torch.matmul(weight, x.reshape(n, c, h * w)).view(n, self.out_channels, h, w)


class SeparableConv(nn.Sequential):
    """Keras SeparableConv2D: depthwise 3x3 (same padding) then pointwise 1x1, no biases."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
            Pointwise(c_in, c_out),
        )


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): each channel scaled by a gate computed from all
    channels' means through a bottleneck (channels / `reduction`, at least 8). The two layers
    are dense on the pooled vector, not 1x1 convolutions: no oneDNN 1x1 kernel (Pointwise)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.reduce = nn.Linear(channels, hidden)
        self.expand = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.expand(F.relu(self.reduce(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None]


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel: the odd number nearest above |log2(C) / gamma + b / gamma|."""
    size = int(abs((math.log2(channels) + b) / gamma))
    return size if size % 2 else size + 1


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al. 2020): each channel scaled by a gate from a 1-D convolution across the
    neighbouring channels' means; a handful of weights, no bottleneck."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        size = eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, size, padding=size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.conv(x.mean(dim=(2, 3))[:, None, :]))
        return x * gate[:, 0, :, None, None]


ATTENTION: dict[str, type[nn.Module]] = {"se": SqueezeExcite, "eca": EfficientChannelAttention}
