"""The deploy graph: a trained network rewritten into its inference form before it is exported.

Training wants the 1x1 convolution as a matrix product (ferx.models.layers.Pointwise: safe and
fast for oneDNN's backward on this CPU) and BatchNorm as a layer of its own. Exported as is,
that is Reshape + MatMul + Slice around every 1x1 convolution, layout reorders around each
MatMul, and BatchNorm nodes ONNX Runtime cannot fold into a MatMul: 100 nodes for the paper's
network and about half the speed of the same weights as plain convolutions (issue 43's
measurements, 2026-12-05). Here each Pointwise becomes the `nn.Conv2d` it is equal to, and each
BatchNorm that follows a convolution is folded into it (torch.fx's conv-BN fusion), so the graph
holds convolutions with biases and nothing to fold at load time. The logits are the trained
model's to float rounding; the export stage checks them against it on PrivateTest.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ferx.models.layers import Pointwise


def plain_convolutions(model: nn.Module) -> nn.Module:
    """`model` (changed in place) with every Pointwise replaced by the nn.Conv2d it computes."""
    for name, child in model.named_children():
        if isinstance(child, Pointwise):
            weight = child.weight
            conv = nn.Conv2d(
                child.in_channels,
                child.out_channels,
                1,
                stride=child.stride,
                bias=False,
                device=weight.device,
                dtype=weight.dtype,
            ).train(child.training)
            with torch.no_grad():
                conv.weight.copy_(weight)
            setattr(model, name, conv)
        else:
            plain_convolutions(child)
    return model


def deploy_form(model: nn.Module) -> nn.Module:
    """A copy of `model` in its inference form: eval mode, contiguous layout, 1x1 layers as
    convolutions, BatchNorm folded into the convolution before it. The caller's model is not
    touched. Keeps the network's `config` (what the exported file's metadata names)."""
    from torch.fx.experimental.optimization import fuse

    plain = plain_convolutions(copy.deepcopy(model)).eval()  # fusion folds eval-mode BN only
    plain.to(memory_format=torch.contiguous_format)
    deployed = fuse(plain, inplace=True)  # traces the network, folds each conv -> BN pair
    deployed.config = getattr(model, "config", None)
    return deployed.eval()
