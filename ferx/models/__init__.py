"""The networks, one file per family, behind a small registry: `build_model(ModelConfig)`.

mini_xception.py: the mini-Xception of Arriaga, Ploeger & Valdenegro (2017); baseline_cnn.py:
the course competition's baseline; resnet18.py: torchvision's ResNet-18 adapted to 48x48
faces; layers.py: what they share. All take raw pixels (0..255, N x 1 x 48 x 48) and
normalise them themselves, so a model file carries its preprocessing.

Every network has the same four handles the stages use: `normalize`, `head` (the final map
to the 7 logits: what `improve.retrain: head` re-trains), `top` (the deepest layers below the
head: `improve.retrain: top` re-trains them and the head) and `cam_layer` (the feature block
whose maps Grad-CAM weighs). Model files and their loading: checkpoint.py; running a model
in batches, with test-time augmentation: inference.py.
"""

from __future__ import annotations

from torch import nn

from ferx.labels import ARCHITECTURES
from ferx.models.baseline_cnn import BaselineCNN
from ferx.models.config import ModelConfig
from ferx.models.layers import Normalize, Pointwise, SeparableConv
from ferx.models.mini_xception import MiniXception, ResidualModule
from ferx.models.resnet18 import ResNet18

__all__ = [
    "NETWORKS",
    "BaselineCNN",
    "MiniXception",
    "ModelConfig",
    "Normalize",
    "Pointwise",
    "ResNet18",
    "ResidualModule",
    "SeparableConv",
    "build_model",
    "count_parameters",
]

# the registry: architecture name (train.model.arch) -> network class
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
