"""Batched inference: logits for uint8 face tensors, in eval mode, in the fast memory layout."""

from __future__ import annotations

import torch


def memory_format(name: str) -> torch.memory_format:
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    x: torch.Tensor,
    batch_size: int = 128,
    device: torch.device | None = None,
    layout: str = "channels_last",
) -> torch.Tensor:
    """Logits for uint8 images (N x 1 x H x W), in eval mode, in batches; float32 on CPU."""
    device = device or next(model.parameters()).device
    fmt = memory_format(layout)
    was_training = model.training
    model.eval()
    model.to(memory_format=fmt)
    out = [
        model(x[i : i + batch_size].to(device, torch.float32).contiguous(memory_format=fmt))
        .float()
        .cpu()
        for i in range(0, len(x), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 7)
