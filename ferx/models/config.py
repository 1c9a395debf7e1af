"""What a model file records to rebuild its network: the architecture and its settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ferx.labels import NUM_CLASSES


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "mini_xception"
    # mini_xception only: the residual modules' and the stem's filters
    widths: tuple[int, ...] = (16, 32, 64, 128)
    stem_width: int = 8
    attention: str = "none"  # mini_xception only: none | se | eca (ferx/models/layers.py)
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
        # checkpoints written before there was a choice of network are mini-Xceptions, and
        # those written before attention have none
        return cls(**{"arch": "mini_xception", **data, "widths": tuple(data["widths"])})
