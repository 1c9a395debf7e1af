"""Grad-CAM, guided backprop and guided Grad-CAM for a batch of faces (captum).

With the models, so that the explain stage (ferx/analysis/explain.py: probes, figures) and
`ferx-predict --gradcam` (ferx/deploy) both use it without importing each other.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam

from ferx.labels import IMAGE_SIDE


def _without_inplace_relu(model: torch.nn.Module) -> None:
    # Guided backprop hooks every nn.ReLU; in-place ReLUs break backward hooks.
    for module in model.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False


def explain_batch(model: torch.nn.Module, images: np.ndarray) -> dict[str, np.ndarray]:
    """probabilities (N x 7), predicted class, Grad-CAM (N x 48 x 48, 0..1), guided backprop
    and guided Grad-CAM (N x 48 x 48, signed) for uint8 images N x 48 x 48. The model comes
    back in the mode, layout and ReLUs it came in."""
    from ferx.models.inference import model_kept_as_is

    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    inplace = [m.inplace for m in relus]
    try:
        with model_kept_as_is(model):
            return _explain(model.eval().to(memory_format=torch.contiguous_format), images)
    finally:
        for module, flag in zip(relus, inplace, strict=True):
            module.inplace = flag


def _explain(model: torch.nn.Module, images: np.ndarray) -> dict[str, np.ndarray]:
    _without_inplace_relu(model)
    x = torch.from_numpy(images).float().unsqueeze(1)
    with torch.no_grad():
        probabilities = torch.softmax(model(x), dim=1)
    predicted = probabilities.argmax(dim=1)
    with warnings.catch_warnings():  # captum announces its temporary ReLU hooks; not news
        warnings.simplefilter("ignore", UserWarning)
        cam = LayerGradCam(model, model.cam_layer).attribute(
            x, target=predicted, relu_attributions=True
        )
        cam = LayerAttribution.interpolate(cam.detach(), (IMAGE_SIDE, IMAGE_SIDE), "bilinear")
        guided = (
            GuidedBackprop(model).attribute(x.clone().requires_grad_(), target=predicted).detach()
        )
    return {
        "probabilities": probabilities.numpy(),
        "predicted": predicted.numpy(),
        "gradcam": _unit_range(cam[:, 0].numpy()),
        "guided_backprop": guided[:, 0].numpy(),
        "guided_gradcam": (guided * cam)[:, 0].numpy(),
    }


def _unit_range(maps: np.ndarray) -> np.ndarray:
    """Scale each map to 0..1 (a map that is all zero stays zero)."""
    peak = maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)
