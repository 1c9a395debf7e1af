"""What each block of a network responds to: the strongest feature maps per block for a face.

Each network lists its `blocks` (ferx/models/): the stages from the input side to the last
convolution. For one probe face, a forward hook keeps each block's output; per block the
`MAPS_PER_BLOCK` channels with the highest mean activation are shown, strongest first, each
scaled on its own (the figure says where a block looks, not how strongly across blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ferx.labels import CLASS_NAMES

MAPS_PER_BLOCK = 8


@dataclass(frozen=True)
class BlockMaps:
    block: str  # the network's name for it ("residual 2")
    channels: tuple[int, ...]  # the strongest channels, strongest first
    means: tuple[float, ...]  # their mean activations
    maps: np.ndarray  # (len(channels), h, w) float32
    n_channels: int  # how many the block has


def strongest_maps(
    model: torch.nn.Module, image: np.ndarray, per_block: int = MAPS_PER_BLOCK
) -> tuple[list[BlockMaps], int]:
    """Per block of `model.blocks`, its `per_block` most active maps for one uint8 48x48 face;
    and the predicted class. The model comes back in the mode and layout it came in."""
    from ferx.models.inference import model_kept_as_is

    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach().float().clone())
        )
        for name, module in model.blocks
    ]
    try:
        with model_kept_as_is(model), torch.no_grad():
            model.eval().to(memory_format=torch.contiguous_format)
            logits = model(torch.tensor(image, dtype=torch.float32)[None, None])
    finally:
        for hook in hooks:
            hook.remove()
    result = []
    for name, _ in model.blocks:
        maps = outputs[name][0]  # (C, h, w)
        means = maps.mean(dim=(1, 2))
        # stable order: ties (dead channels, all zero) go by channel index
        order = sorted(range(len(means)), key=lambda c: (-float(means[c]), c))[:per_block]
        result.append(
            BlockMaps(
                block=name,
                channels=tuple(order),
                means=tuple(float(means[c]) for c in order),
                maps=maps[order].contiguous().numpy(),
                n_channels=len(means),
            )
        )
    return result, int(logits.argmax(dim=1))


def plot_activations(
    image: np.ndarray, blocks: list[BlockMaps], path: str | Path, title: str
) -> int:
    """A row per block: the face, then its strongest maps. Returns the number of map panels."""
    from ferx.plots import plt, save_figure

    columns = 1 + max(len(b.channels) for b in blocks)
    fig, axes = plt.subplots(
        len(blocks), columns, figsize=(1.15 * columns, 1.3 * len(blocks) + 0.5), squeeze=False
    )
    panels = 0
    for row, block in zip(axes, blocks, strict=True):
        row[0].imshow(image, cmap="gray", vmin=0, vmax=255)
        side = block.maps.shape[-1]
        row[0].set_ylabel(f"{block.block}\n{block.n_channels} x {side}x{side}", fontsize=7)
        for ax, channel, mean, fmap in zip(
            row[1:], block.channels, block.means, block.maps, strict=False
        ):
            ax.imshow(fmap, cmap="magma")
            ax.set_title(f"#{channel} ({mean:.2f})", fontsize=6)
            panels += 1
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in row[1 + len(block.channels) :]:
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return panels


def activation_record(blocks: list[BlockMaps], probe: str, predicted: int) -> dict:
    """What the figure shows, for metrics/explain/<model>.json."""
    return {
        "probe": probe,
        "predicted": CLASS_NAMES[predicted],
        "blocks": [
            {
                "block": b.block,
                "channels": list(b.channels),
                "mean_activation": [round(m, 4) for m in b.means],
                "of": b.n_channels,
            }
            for b in blocks
        ],
    }
