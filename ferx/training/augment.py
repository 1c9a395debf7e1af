"""Batched, per-sample augmentation: one affine resample for flip, rotation, shift and zoom,
then optional random crops and random erasing; and the batch-level mixing (mixup, CutMix) whose
loss mixes two labels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ferx.params import AugmentParams


def augment_batch(
    x: torch.Tensor, params: AugmentParams, generator: torch.Generator
) -> torch.Tensor:
    """Randomly flip, rotate, translate, scale, crop and erase each image of a (N, 1, H, W)
    float batch of 0-255 pixels.

    All randomness comes from `generator`, so a seeded run is repeatable. Flip and the affine
    parts are folded into one 2x3 matrix per image and applied by a single grid_sample. An
    option that is off draws no random numbers, so turning a new one off keeps a run's bits.
    """
    x = _flip_and_warp(x, params, generator)
    if params.crop:
        x = random_crop(x, params.crop, generator)
    if params.erase > 0:
        x = random_erase(x, params.erase, generator)
    return x


def random_crop(x: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """A random side x side window of each image (each its own position): (N, C, side, side)."""
    n, channels, height, width = x.shape
    if side > min(height, width):
        raise ValueError(f"a {side}-pixel crop of {height}x{width} images")
    top = (torch.rand(n, generator=generator) * (height - side + 1)).floor().long()
    left = (torch.rand(n, generator=generator) * (width - side + 1)).floor().long()
    window = torch.arange(side)
    rows = (top[:, None] + window)[:, None, :, None].expand(n, channels, side, width)
    x = x.gather(2, rows)
    cols = (left[:, None] + window)[:, None, None, :].expand(n, channels, side, side)
    return x.gather(3, cols)


@dataclass(frozen=True)
class Mix:
    """A mixed batch's second labels: face i was mixed with face `partner[i]`, and its loss
    is `weight` * loss(label i) + (1 - `weight`) * loss(label partner[i])."""

    partner: torch.Tensor
    weight: float


def mix_batch(
    x: torch.Tensor, params: AugmentParams, generator: torch.Generator
) -> tuple[torch.Tensor, Mix | None]:
    """Mixup or CutMix the batch with itself in a random order (`params.mixup`, `.cutmix`:
    the Beta alphas); (x, None) with no draws when both are off."""
    if not (params.mixup or params.cutmix):
        return x, None
    use_cutmix = params.cutmix > 0 and (
        not params.mixup or bool(torch.rand(1, generator=generator) < 0.5)
    )
    alpha = params.cutmix if use_cutmix else params.mixup
    weight = _beta(alpha, generator)
    partner = torch.randperm(len(x), generator=generator)
    if not use_cutmix:
        return weight * x + (1 - weight) * x[partner], Mix(partner, weight)
    height, width = x.shape[-2:]
    top, bottom, left, right = _cut_box(height, width, weight, generator)
    mixed = x.clone()
    mixed[..., top:bottom, left:right] = x[partner][..., top:bottom, left:right]
    # the weight the pixels actually have: the box is clipped at the border
    kept = 1 - (bottom - top) * (right - left) / (height * width)
    return mixed, Mix(partner, kept)


def _beta(alpha: float, generator: torch.Generator) -> float:
    # torch draws no Beta from a Generator: numpy does, seeded from it (repeatable, resumable)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _cut_box(
    height: int, width: int, weight: float, generator: torch.Generator
) -> tuple[int, int, int, int]:
    """CutMix's box: (1 - weight) of the area around a uniform centre, clipped at the edges."""
    ratio = math.sqrt(1 - weight)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    centre_y = int(torch.randint(0, height, (1,), generator=generator))
    centre_x = int(torch.randint(0, width, (1,), generator=generator))
    top, bottom = max(centre_y - cut_h // 2, 0), min(centre_y + cut_h // 2, height)
    left, right = max(centre_x - cut_w // 2, 0), min(centre_x + cut_w // 2, width)
    return top, bottom, left, right


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
