"""Batched inference: logits for uint8 face tensors, in eval mode, in the fast memory layout;
and test-time augmentation (TTA), which averages the class probabilities of several views."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ferx.params import TTA_VIEWS


def memory_format(name: str) -> torch.memory_format:
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


@contextmanager
def model_kept_as_is(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Inside: switch `model` to eval mode or another memory layout at will; after: every
    module's train/eval mode and every parameter's and buffer's tensor are as they were. A
    helper that measures or exports a model must not hand back a different one (a training
    loop would carry on in eval mode, or in a layout it did not choose)."""
    modes = [(module, module.training) for module in model.modules()]
    parameters = [(p, p.data) for p in model.parameters()]
    buffers = [
        (module, name, tensor)
        for module in model.modules()
        for name, tensor in module._buffers.items()
    ]
    try:
        yield model
    finally:
        for parameter, data in parameters:
            parameter.data = data  # .to(memory_format) swaps .data and keeps the Parameter
        for module, name, tensor in buffers:
            module._buffers[name] = tensor  # .to() puts new buffer tensors in their place
        for module, training in modes:
            module.training = training


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
    with model_kept_as_is(model):
        model.eval()
        # outside inference mode: a layout change made inside it would turn the parameters
        # into inference tensors, which autograd refuses if the model is trained afterwards
        model.to(memory_format=fmt)
        with torch.inference_mode():
            out = [
                model(x[i : i + batch_size].to(device, torch.float32).contiguous(memory_format=fmt))
                .float()
                .cpu()
                for i in range(0, len(x), batch_size)
            ]
    return torch.cat(out) if out else torch.empty(0, 7)


def tta_views(x: torch.Tensor, tta: str, shift: int = 2) -> list[torch.Tensor]:
    """The views of a batch (N x 1 x H x W) that `tta` averages: none: the image; flip: the
    image and its mirror; flip_shift: both, each also moved `shift` pixels up, down, left and
    right (edges repeated, so no black border appears): 10 views."""
    if tta not in TTA_VIEWS:
        raise ValueError(f"unknown TTA {tta!r}; known: {', '.join(TTA_VIEWS)}")
    images = [x] if tta == "none" else [x, x.flip(-1)]
    if tta != "flip_shift":
        return images
    views = []
    for image in images:
        padded = F.pad(image.float(), (shift, shift, shift, shift), mode="replicate")
        h, w = image.shape[-2:]
        views.append(image)
        for dy, dx in ((-shift, 0), (shift, 0), (0, -shift), (0, shift)):
            top, left = shift + dy, shift + dx
            views.append(padded[..., top : top + h, left : left + w].to(image.dtype))
    return views


def window_views(x: torch.Tensor, side: int, tta: str, shift: int = 2) -> list[torch.Tensor]:
    """The views of `tta_views`, as side x side windows of the faces instead of the whole
    faces: the centre window (none); it and its mirror's (flip); both, each also with the
    window moved `shift` pixels up, down, left and right inside the face (flip_shift: 10
    views, every pixel a real one; the mirrored views are the windows' mirrors). The view
    nearest to what a network trained on random side x side crops (train.augment.crop) saw."""
    if tta not in TTA_VIEWS:
        raise ValueError(f"unknown TTA {tta!r}; known: {', '.join(TTA_VIEWS)}")
    h, w = x.shape[-2:]
    if not 0 < side <= min(h, w):
        raise ValueError(f"a {side}-pixel window of {h}x{w} faces")
    top, left = (h - side) // 2, (w - side) // 2
    if tta == "flip_shift" and shift > min(top, left, h - side - top, w - side - left):
        raise ValueError(
            f"a {side}-pixel window of {h}x{w} faces has room to move {min(top, left)} pixels, "
            f"not {shift}"
        )
    moves = [(0, 0)]
    if tta == "flip_shift":
        moves += [(-shift, 0), (shift, 0), (0, -shift), (0, shift)]
    windows = [x[..., top + dy : top + dy + side, left + dx : left + dx + side] for dy, dx in moves]
    mirrored = [] if tta == "none" else [w.flip(-1) for w in windows]  # each window's mirror
    return [view.contiguous() for view in windows + mirrored]


def predict_tta(
    model: torch.nn.Module,
    x: torch.Tensor,
    tta: str,
    shift: int = 2,
    batch_size: int = 128,
    device: torch.device | None = None,
    layout: str = "channels_last",
    window: int = 0,
) -> torch.Tensor:
    """Log of the class probabilities averaged over the views: usable as logits (argmax,
    cross-entropy). With tta "none" this is log_softmax of predict_logits, same predictions.
    `window` > 0: the views are window x window windows of the faces (`window_views`)."""
    views = window_views(x, window, tta, shift) if window else tta_views(x, tta, shift)
    probabilities = sum(
        torch.softmax(predict_logits(model, view, batch_size, device, layout), dim=1)
        for view in views
    )
    return torch.log(probabilities / TTA_VIEWS[tta])
