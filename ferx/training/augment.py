"""Batched, per-sample augmentation: one affine resample for flip, rotation, shift and zoom,
then optional random erasing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ferx.params import AugmentParams


def augment_batch(
    x: torch.Tensor, params: AugmentParams, generator: torch.Generator
) -> torch.Tensor:
    """Randomly flip, rotate, translate, scale and erase each image of a (N, 1, H, W) float
    batch of 0-255 pixels.

    All randomness comes from `generator`, so a seeded run is repeatable. Flip and the affine
    parts are folded into one 2x3 matrix per image and applied by a single grid_sample.
    """
    x = _flip_and_warp(x, params, generator)
    if params.erase > 0:
        x = random_erase(x, params.erase, generator)
    return x


def random_erase(
    x: torch.Tensor,
    probability: float,
    generator: torch.Generator,
    area: tuple[float, float] = (0.02, 0.33),
    aspect: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """With `probability`, replace one rectangle of each image by uniform 0-255 noise.

    torchvision's RandomErasing draws the same ranges (area fraction, log-uniform aspect
    ratio) but one image at a time; here the whole batch is one set of draws and one mask.
    """
    n, _, height, width = x.shape
    chosen = torch.rand(n, generator=generator) < probability
    fraction = area[0] + torch.rand(n, generator=generator) * (area[1] - area[0])
    log_low, log_high = math.log(aspect[0]), math.log(aspect[1])
    ratio = torch.exp(log_low + torch.rand(n, generator=generator) * (log_high - log_low))
    pixels = fraction * height * width
    box_h = torch.sqrt(pixels * ratio).round().clamp(1, height).long()
    box_w = torch.sqrt(pixels / ratio).round().clamp(1, width).long()
    top = (torch.rand(n, generator=generator) * (height - box_h + 1)).floor().long()
    left = (torch.rand(n, generator=generator) * (width - box_w + 1)).floor().long()
    rows = torch.arange(height)[None, :, None]
    cols = torch.arange(width)[None, None, :]
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + box_h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + box_w)[:, None, None])
        & chosen[:, None, None]
    )[:, None]
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype) * 255
    return torch.where(inside, noise, x)


def _flip_and_warp(
    x: torch.Tensor, params: AugmentParams, generator: torch.Generator
) -> torch.Tensor:
    n = x.shape[0]
    flip = torch.ones(n)
    if params.hflip:
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    if params.rotate_deg == 0 and params.translate == 0 and params.scale == 0:
        flipped = flip < 0
        return torch.where(flipped[:, None, None, None], x.flip(-1), x) if params.hflip else x

    def uniform(half_width: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * half_width

    angle = uniform(math.radians(params.rotate_deg))
    zoom = 1 + uniform(params.scale)
    shift_x, shift_y = uniform(2 * params.translate), uniform(2 * params.translate)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # theta maps output coordinates to input ones (in [-1, 1]); the flip mirrors the input x.
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin * flip, shift_x], dim=1),
            torch.stack([sin, cos, shift_y], dim=1),
        ],
        dim=1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
